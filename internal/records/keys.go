package records

import (
	"encoding/binary"
	"math"
)

// AppendKey appends the encoded key of row i, built from the columns at
// positions cols (usually Schema.KeyIndexes), to dst and returns the
// extended slice.
//
// The encoding is injective (two rows have the same encoding exactly when
// their key values are equal) and order-preserving for keys of one schema:
// comparing encodings with bytes.Compare orders rows by their key values
// column by column, nulls first, as PostgreSQL orders integers, booleans,
// dates, timestamps and decimals (text compares by bytes, as in the C
// collation); values with an exact text form (Vec.Exact: infinity, NaN)
// come last, by that text. That lets the warehouse keep key ranges per file and tests
// compare keys without decoding them. The encoding is persistent (it decides
// which hash bucket a row lives in): changing it changes every table's
// layout.
func (b *Batch) AppendKey(dst []byte, i int, cols []int) []byte {
	for _, c := range cols {
		dst = appendKeyValue(dst, &b.Cols[c], b.Schema.Columns[c].Type, i)
	}
	return dst
}

func appendKeyValue(dst []byte, v *Vec, t ParquetType, i int) []byte {
	if text, ok := v.ExactAt(i); ok {
		// A value the Parquet type does not hold exactly (an infinite
		// timestamp, written as NULL) is told from NULL and from the
		// others by its exact text form; it sorts after every value.
		dst = append(dst, 2)
		return appendEscaped(dst, text)
	}
	if v.IsNull(i) {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	switch t.Physical {
	case PhysicalBoolean:
		if v.Bool[i] {
			return append(dst, 1)
		}
		return append(dst, 0)
	case PhysicalInt32:
		return binary.BigEndian.AppendUint32(dst, uint32(v.I32[i])^(1<<31))
	case PhysicalInt64:
		return binary.BigEndian.AppendUint64(dst, uint64(v.I64[i])^(1<<63))
	case PhysicalFloat:
		return binary.BigEndian.AppendUint32(dst, orderedFloat32(v.F32[i]))
	case PhysicalDouble:
		return binary.BigEndian.AppendUint64(dst, orderedFloat64(v.F64[i]))
	case PhysicalFixedLenByteArray:
		// A big-endian two's complement decimal of the column's fixed
		// width: flipping the sign bit makes byte order numeric order.
		val := v.Data[v.Offsets[i]:v.Offsets[i+1]]
		if len(val) == 0 {
			return dst
		}
		dst = append(dst, val[0]^0x80)
		return append(dst, val[1:]...)
	case PhysicalGroup:
		elem := ParquetType{Physical: PhysicalByteArray}
		if t.Element != nil {
			elem = *t.Element
		}
		l := v.List
		for j := l.Offsets[i]; j < l.Offsets[i+1]; j++ {
			dst = append(dst, 1) // one more element
			dst = appendKeyValue(dst, &l.Elem, elem, int(j))
		}
		return append(dst, 0) // end of list sorts before any element
	default: // BYTE_ARRAY
		return appendEscaped(dst, v.Data[v.Offsets[i]:v.Offsets[i+1]])
	}
}

// appendEscaped writes a byte string so that no encoding is a prefix of
// another and byte order is kept: 0x00 becomes 0x00 0xFF and the string
// ends with 0x00 0x01.
func appendEscaped(dst, val []byte) []byte {
	for _, c := range val {
		if c == 0 {
			dst = append(dst, 0, 0xFF)
			continue
		}
		dst = append(dst, c)
	}
	return append(dst, 0, 1)
}

func orderedFloat32(f float32) uint32 {
	if f == 0 {
		f = 0 // -0 and +0 are the same key
	}
	u := math.Float32bits(f)
	if u&(1<<31) != 0 {
		return ^u
	}
	return u | 1<<31
}

func orderedFloat64(f float64) uint64 {
	if f == 0 {
		f = 0
	}
	u := math.Float64bits(f)
	if u&(1<<63) != 0 {
		return ^u
	}
	return u | 1<<63
}

// KeyHash is the hash of an encoded key (AppendKey) that assigns rows to
// buckets. Like the encoding it is persistent: FNV-1a (64 bits) followed by
// the MurmurHash3 finalizer, so that the low bits, which pick the bucket,
// depend on every byte of the key.
func KeyHash(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
