package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"

	"github.com/sluice-dev/sluice/internal/records"
)

// This file decodes PostgreSQL's binary formats into record batches: the
// binary COPY stream of snapshots, and the binary result fields of cursor
// reads, which encode each value the same way. Only the types the mapping
// keeps as such are decoded; every other type is read as its text form
// (planColumn casts it in the select list), so that a STRING column always
// holds PostgreSQL's text output.
//
// Values are appended straight into the batch's arenas: no allocation per
// value, and none at all once a batch has grown to its working size.

// decKind is what a decoder decodes.
type decKind uint8

const (
	decBool decKind = iota
	decInt2
	decInt4
	decInt8
	decFloat4
	decFloat8
	decNumeric32    // DECIMAL(p<=9) as INT32
	decNumeric64    // DECIMAL(p<=18) as INT64
	decNumericFixed // DECIMAL(p<=38) as FIXED_LEN_BYTE_ARRAY
	decNumericText  // numeric without a usable precision, as its exact text
	decBytes        // text-like types, bytea, json, text casts: the bytes as sent
	decJSONB        // jsonb: a version byte, then the text
	decDate
	decTime
	decTimestamp
	decUUID
	decList     // one-dimensional array
	decTextList // an array's text form, split by a textDecoder
)

// decoder decodes one column's (or array element's) binary values.
type Decoder struct {
	kind decKind
	// scale and precision of a DECIMAL; width of its FIXED_LEN value.
	scale, precision, width int
	// elem decodes the elements of a list.
	elem *Decoder
	// text decodes the text form of a list (decTextList). It has scratch
	// space: clone decoders (tableInfo.decoders) for each reader.
	text *textDecoder
	// bytea marks a decBytes decoder of bytea values, whose text form
	// (exactText) is not their bytes.
	bytea bool
	// buf holds an exact text form while it is built.
	buf []byte
}

// Clone returns a copy that shares no scratch space with d.
func (d *Decoder) Clone() *Decoder {
	c := *d
	c.buf = nil
	if d.elem != nil {
		c.elem = d.elem.Clone()
	}
	if d.text != nil {
		t := *d.text
		t.buf = nil
		if d.text.elem != nil {
			e := *d.text.elem
			e.buf = nil
			t.elem = &e
		}
		c.text = &t
	}
	return &c
}

// CloneFor is Clone for a column of Parquet type pt: bytea elements are
// written as their hex text when an array's exact text form is needed
// (exact.go).
func (d *Decoder) CloneFor(pt records.ParquetType) *Decoder {
	c := d.Clone()
	if c.kind == decList && c.elem != nil && c.elem.kind == decBytes {
		if e := pt.Element; e != nil && e.Physical == records.PhysicalByteArray && e.Logical == records.LogicalNone {
			c.elem.bytea = true
		}
	}
	return c
}

// PostgreSQL's epoch is 2000-01-01, Parquet's (Unix's) 1970-01-01.
const (
	pgEpochDays   = 10957
	PGEpochMicros = pgEpochDays * 86400 * 1000000
)

// Binary numeric sign words.
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
	// numericDscaleMask is the part of the dscale word that is the scale.
	numericDscaleMask = 0x3FFF
	numericMaxDigit   = 9999
)

// maxArrayDims is PostgreSQL's MAXDIM.
const maxArrayDims = 6

// maxArenaBytes is how much a byte arena (whose offsets are int32) may
// hold; a batch is cut long before (see batchBytes).
const maxArenaBytes = math.MaxInt32

var errArenaFull = errors.New("a batch holds more than 2 GiB of values in one column; lower the batch size")

// decode appends the non-null binary value b to v. A value the Parquet
// type cannot hold (numeric NaN or ±Infinity in a DECIMAL column, a
// numeric with more digits than the column, ±infinity dates and
// timestamps, a multi-dimensional value in a LIST column) is appended as
// NULL and counted in *nulled.
func (d *Decoder) decode(v *records.Vec, b []byte, nulled *int) error {
	switch d.kind {
	case decBool:
		if len(b) != 1 {
			return lenError("boolean", len(b), 1)
		}
		v.AppendBool(b[0] != 0)
	case decInt2:
		if len(b) != 2 {
			return lenError("smallint", len(b), 2)
		}
		v.AppendInt32(int32(int16(binary.BigEndian.Uint16(b))))
	case decInt4:
		if len(b) != 4 {
			return lenError("integer", len(b), 4)
		}
		v.AppendInt32(int32(binary.BigEndian.Uint32(b)))
	case decInt8:
		if len(b) != 8 {
			return lenError("bigint", len(b), 8)
		}
		v.AppendInt64(int64(binary.BigEndian.Uint64(b)))
	case decFloat4:
		if len(b) != 4 {
			return lenError("real", len(b), 4)
		}
		v.AppendFloat32(math.Float32frombits(binary.BigEndian.Uint32(b)))
	case decFloat8:
		if len(b) != 8 {
			return lenError("double precision", len(b), 8)
		}
		v.AppendFloat64(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case decNumeric32, decNumeric64, decNumericFixed:
		return d.decodeDecimal(v, b, nulled)
	case decNumericText:
		n, err := parseNumeric(b)
		if err != nil {
			return err
		}
		if len(v.Data)+n.textLen() > maxArenaBytes {
			return errArenaFull
		}
		v.Data = n.appendText(v.Data)
		endBytes(v)
	case decBytes:
		return appendBytes(v, b)
	case decJSONB:
		if len(b) < 1 || b[0] != 1 {
			return errors.New("jsonb value without version 1 header")
		}
		return appendBytes(v, b[1:])
	case decDate:
		if len(b) != 4 {
			return lenError("date", len(b), 4)
		}
		raw := int32(binary.BigEndian.Uint32(b))
		days := int64(raw) + pgEpochDays
		// ±infinity are the extreme int32 values.
		if raw == math.MinInt32 || raw == math.MaxInt32 || days > math.MaxInt32 {
			v.AppendNull()
			*nulled++
			return nil
		}
		v.AppendInt32(int32(days))
	case decTime:
		if len(b) != 8 {
			return lenError("time", len(b), 8)
		}
		v.AppendInt64(int64(binary.BigEndian.Uint64(b)))
	case decTimestamp:
		if len(b) != 8 {
			return lenError("timestamp", len(b), 8)
		}
		us := int64(binary.BigEndian.Uint64(b))
		// ±infinity are the extreme int64 values; nothing near them is a
		// valid timestamp, so the shift never overflows for real values.
		if us >= math.MaxInt64-PGEpochMicros || us == math.MinInt64 {
			v.AppendNull()
			*nulled++
			return nil
		}
		v.AppendInt64(us + PGEpochMicros)
	case decUUID:
		if len(b) != 16 {
			return lenError("uuid", len(b), 16)
		}
		if len(v.Data)+36 > maxArenaBytes {
			return errArenaFull
		}
		v.Data = appendUUID(v.Data, b)
		endBytes(v)
	case decList:
		return d.decodeArray(v, b, nulled)
	case decTextList:
		return d.text.decode(v, b, nulled)
	default:
		return fmt.Errorf("unknown decoder %d", d.kind)
	}
	return nil
}

func lenError(typ string, got, want int) error {
	return fmt.Errorf("%s value of %d bytes, want %d", typ, got, want)
}

// appendBytes appends a byte value, refusing to overflow the arena's
// int32 offsets.
func appendBytes(v *records.Vec, b []byte) error {
	if len(v.Data)+len(b) > maxArenaBytes {
		return errArenaFull
	}
	v.AppendBytes(b)
	return nil
}

// endBytes closes a byte value whose bytes were appended to v.Data in
// place, as AppendBytes would have.
func endBytes(v *records.Vec) {
	if v.Valid != nil {
		v.Valid = append(v.Valid, true)
	}
	v.Offsets = append(v.Offsets, int32(len(v.Data)))
}

const hexDigits = "0123456789abcdef"

// appendUUID appends the canonical form of a uuid: lowercase hex,
// 8-4-4-4-12.
func appendUUID(dst, b []byte) []byte {
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// decodeArray decodes a binary array: ndim, has-null flag, element type,
// (length, lower bound) per dimension, then each element as a length
// (-1 for NULL) and its bytes. A one-dimensional array becomes a list (its
// lower bound is not kept); an empty one an empty list; one of more
// dimensions, which a LIST column cannot hold, NULL.
func (d *Decoder) decodeArray(v *records.Vec, b []byte, nulled *int) error {
	if len(b) < 12 {
		return errors.New("array value shorter than its header")
	}
	ndim := int32(binary.BigEndian.Uint32(b))
	flags := int32(binary.BigEndian.Uint32(b[4:]))
	if ndim < 0 || ndim > maxArrayDims {
		return fmt.Errorf("array of %d dimensions", ndim)
	}
	if flags != 0 && flags != 1 {
		return fmt.Errorf("array with flags %#x", flags)
	}
	p := 12
	if len(b)-p < 8*int(ndim) {
		return errors.New("array value shorter than its dimensions")
	}
	count := 0
	if ndim > 0 {
		count = 1
	}
	for i := int32(0); i < ndim; i++ {
		n := int32(binary.BigEndian.Uint32(b[p:]))
		p += 8 // the lower bound is not kept
		if n < 0 {
			return fmt.Errorf("array dimension of length %d", n)
		}
		// Every element takes at least its 4-byte length: more elements
		// than that cannot be in the value (and must not be looped over).
		if n > 0 && count > (len(b)-p)/4/int(n) {
			return errors.New("array value shorter than its elements")
		}
		count *= int(n)
	}
	if ndim > 1 {
		// Check the value is well formed before dropping it.
		for range count {
			n, err := elemLen(b, p)
			if err != nil {
				return err
			}
			p += 4 + max(n, 0)
		}
		if p != len(b) {
			return errors.New("array value with trailing bytes")
		}
		v.AppendNull()
		*nulled++
		return nil
	}
	elems := &v.List.Elem
	for range count {
		n, err := elemLen(b, p)
		if err != nil {
			return err
		}
		p += 4
		if n < 0 {
			elems.AppendNull()
			continue
		}
		if err := d.elem.decode(elems, b[p:p+n], nulled); err != nil {
			return fmt.Errorf("array element: %w", err)
		}
		p += n
	}
	if p != len(b) {
		return errors.New("array value with trailing bytes")
	}
	v.EndList()
	return nil
}

// elemLen reads the length of the array element at p, -1 for NULL,
// checking that its bytes are there.
func elemLen(b []byte, p int) (int, error) {
	if len(b)-p < 4 {
		return 0, errors.New("array value shorter than its elements")
	}
	n := int(int32(binary.BigEndian.Uint32(b[p:])))
	switch {
	case n == -1:
		return -1, nil
	case n < 0:
		return 0, fmt.Errorf("array element of length %d", n)
	case n > len(b)-p-4:
		return 0, errors.New("array element longer than the array value")
	}
	return n, nil
}

// numeric is a parsed binary numeric: sign, weight (of the first digit,
// in powers of 10000), display scale and base-10000 digits (still in their
// big-endian encoding).
type numeric struct {
	sign    uint16
	weight  int
	dscale  int
	ndigits int
	digits  []byte
}

func (n *numeric) digit(i int) int { return int(binary.BigEndian.Uint16(n.digits[2*i:])) }

// parseNumeric checks a binary numeric as numeric_recv does.
func parseNumeric(b []byte) (numeric, error) {
	if len(b) < 8 {
		return numeric{}, errors.New("numeric value shorter than its header")
	}
	nd := int(int16(binary.BigEndian.Uint16(b)))
	if nd < 0 || len(b) != 8+2*nd {
		return numeric{}, fmt.Errorf("numeric value of %d bytes with %d digits", len(b), nd)
	}
	n := numeric{
		ndigits: nd,
		weight:  int(int16(binary.BigEndian.Uint16(b[2:]))),
		sign:    binary.BigEndian.Uint16(b[4:]),
		digits:  b[8:],
	}
	ds := binary.BigEndian.Uint16(b[6:])
	if ds&numericDscaleMask != ds {
		return numeric{}, fmt.Errorf("numeric value with display scale word %#x", ds)
	}
	n.dscale = int(ds)
	switch n.sign {
	case numericPos, numericNeg:
	case numericNaN, numericPInf, numericNInf:
		if nd != 0 {
			return numeric{}, errors.New("special numeric value with digits")
		}
	default:
		return numeric{}, fmt.Errorf("numeric value with sign %#x", n.sign)
	}
	for i := range nd {
		if n.digit(i) > numericMaxDigit {
			return numeric{}, fmt.Errorf("numeric digit %d", n.digit(i))
		}
	}
	return n, nil
}

func (n *numeric) special() bool { return n.sign != numericPos && n.sign != numericNeg }

// textLen bounds the length of the text form.
func (n *numeric) textLen() int {
	return 12 + 4*(max(n.weight, 0)+1) + n.dscale + 4
}

// appendText appends the text form exactly as numeric_out writes it
// (get_str_from_var): the integer digits without leading zeros, then
// dscale fractional digits.
func (n *numeric) appendText(dst []byte) []byte {
	switch n.sign {
	case numericNaN:
		return append(dst, "NaN"...)
	case numericPInf:
		return append(dst, "Infinity"...)
	case numericNInf:
		return append(dst, "-Infinity"...)
	case numericNeg:
		dst = append(dst, '-')
	}
	d := 0
	if n.weight < 0 {
		d = n.weight + 1
		dst = append(dst, '0')
	} else {
		for d = 0; d <= n.weight; d++ {
			dig := 0
			if d < n.ndigits {
				dig = n.digit(d)
			}
			if d == 0 {
				// Leading zeros of the first digit are not written.
				dst = appendInt(dst, dig)
				continue
			}
			dst = append(dst, byte('0'+dig/1000), byte('0'+dig/100%10), byte('0'+dig/10%10), byte('0'+dig%10))
		}
	}
	if n.dscale > 0 {
		dst = append(dst, '.')
		end := len(dst) + n.dscale
		for i := 0; i < n.dscale; i += 4 {
			dig := 0
			if d >= 0 && d < n.ndigits {
				dig = n.digit(d)
			}
			dst = append(dst, byte('0'+dig/1000), byte('0'+dig/100%10), byte('0'+dig/10%10), byte('0'+dig%10))
			d++
		}
		dst = dst[:end]
	}
	return dst
}

func appendInt(dst []byte, x int) []byte {
	if x >= 10 {
		dst = appendInt(dst, x/10)
	}
	return append(dst, byte('0'+x%10))
}

// pow10u64 holds 10^0 .. 10^19.
var pow10u64 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// u128 is an unsigned 128-bit integer.
type u128 struct{ hi, lo uint64 }

// mul multiplies by m, reporting overflow.
func (x u128) mul(m uint64) (u128, bool) {
	hh, hl := bits.Mul64(x.hi, m)
	lh, ll := bits.Mul64(x.lo, m)
	hi, carry := bits.Add64(hl, lh, 0)
	return u128{hi, ll}, hh == 0 && carry == 0
}

func (x u128) add(a uint64) (u128, bool) {
	lo, carry := bits.Add64(x.lo, a, 0)
	hi, c2 := bits.Add64(x.hi, 0, carry)
	return u128{hi, lo}, c2 == 0
}

// mulPow10 multiplies by 10^e, reporting overflow.
func (x u128) mulPow10(e int) (u128, bool) {
	if x.hi == 0 && x.lo == 0 {
		return x, true
	}
	for e > 0 {
		s := min(e, 19)
		var ok bool
		if x, ok = x.mul(pow10u64[s]); !ok {
			return x, false
		}
		e -= s
	}
	return x, true
}

func (x u128) less(y u128) bool { return x.hi < y.hi || x.hi == y.hi && x.lo < y.lo }

// negate is -x in two's complement: invert and add one.
func (x u128) negate() u128 {
	x, _ = u128{^x.hi, ^x.lo}.add(1)
	return x
}

// twosComplement reads a big-endian two's complement integer of up to 16
// bytes (a DECIMAL's FIXED_LEN_BYTE_ARRAY) as its magnitude and sign.
func twosComplement(b []byte) (mag u128, neg bool) {
	neg = len(b) > 0 && b[0]&0x80 != 0
	if neg {
		mag = u128{math.MaxUint64, math.MaxUint64} // sign extension
	}
	for _, c := range b {
		mag = u128{mag.hi<<8 | mag.lo>>56, mag.lo<<8 | uint64(c)}
	}
	if neg {
		mag = mag.negate()
	}
	return mag, neg
}

// twosDigits returns the sign and the decimal digits of the magnitude of
// a big-endian two's complement integer (a DECIMAL's unscaled value),
// without allocating for up to 16 bytes; buf holds the digits.
func twosDigits(buf *[40]byte, b []byte) (neg bool, digits []byte) {
	if len(b) > 16 {
		n := new(big.Int).SetBytes(b)
		if b[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		return n.Sign() < 0, n.Abs(n).Append(nil, 10)
	}
	mag, neg := twosComplement(b)
	return neg, mag.appendDigits(buf)
}

// appendDigits writes x in decimal, without leading zeros, at the end of
// buf and returns them.
func (x u128) appendDigits(buf *[40]byte) []byte {
	const e19 = 10_000_000_000_000_000_000
	hi, lo := x.hi, x.lo
	i := len(buf)
	chunks := 0
	for hi != 0 {
		var r uint64
		hi, r = hi/e19, hi%e19
		lo, r = bits.Div64(r, lo, e19)
		for range 19 {
			i--
			buf[i] = byte('0' + r%10)
			r /= 10
		}
		chunks++
	}
	if lo != 0 || chunks == 0 {
		for {
			i--
			buf[i] = byte('0' + lo%10)
			lo /= 10
			if lo == 0 {
				break
			}
		}
	}
	return buf[i:]
}

// pow10u128 holds 10^0 .. 10^38.
var pow10u128 = func() (p [39]u128) {
	p[0] = u128{0, 1}
	for i := 1; i < len(p); i++ {
		p[i], _ = p[i-1].mul(10)
	}
	return p
}()

// unscaled returns |n| * 10^scale as an integer, and false when that is
// not an integer (more fractional digits than scale) or does not fit in
// 128 bits.
func (n *numeric) unscaled(scale int) (u128, bool) {
	var acc u128
	cur := 0 // the power of 10 that acc's unit stands for
	first := true
	for i := range n.ndigits {
		dig := uint64(n.digit(i))
		e := 4*(n.weight-i) + scale
		var c uint64
		ce := 0
		switch {
		case e >= 0:
			c, ce = dig, e
		case e > -4:
			p := pow10u64[-e]
			if dig%p != 0 {
				return acc, false
			}
			c = dig / p
		default:
			if dig != 0 {
				return acc, false
			}
			continue
		}
		if first {
			acc, cur, first = u128{0, c}, ce, false
			continue
		}
		var ok bool
		if acc, ok = acc.mulPow10(cur - ce); !ok {
			return acc, false
		}
		if acc, ok = acc.add(c); !ok {
			return acc, false
		}
		cur = ce
	}
	if cur > 38 && !(acc.hi == 0 && acc.lo == 0) {
		return acc, false
	}
	return acc.mulPow10(cur)
}

// decodeDecimal decodes a numeric into a DECIMAL(precision, scale) as the
// unscaled integer.
func (d *Decoder) decodeDecimal(v *records.Vec, b []byte, nulled *int) error {
	n, err := parseNumeric(b)
	if err != nil {
		return err
	}
	if n.special() {
		v.AppendNull()
		*nulled++
		return nil
	}
	mag, ok := n.unscaled(d.scale)
	if !ok || !mag.less(pow10u128[d.precision]) {
		v.AppendNull()
		*nulled++
		return nil
	}
	phys := records.PhysicalFixedLenByteArray
	switch d.kind {
	case decNumeric32:
		phys = records.PhysicalInt32
	case decNumeric64:
		phys = records.PhysicalInt64
	}
	return appendUnscaled(v, phys, d.width, n.sign == numericNeg, mag)
}

// appendUnscaled appends the DECIMAL whose unscaled value is mag (negated
// when neg), of fewer digits than the column's precision, in the
// column's physical type: INT32, INT64, or a big-endian two's complement
// of width bytes.
func appendUnscaled(v *records.Vec, phys records.Physical, width int, neg bool, mag u128) error {
	switch phys {
	case records.PhysicalInt32:
		x := int32(mag.lo) // < 10^9
		if neg {
			x = -x
		}
		v.AppendInt32(x)
	case records.PhysicalInt64:
		x := int64(mag.lo) // < 10^18
		if neg {
			x = -x
		}
		v.AppendInt64(x)
	default:
		if neg {
			mag = mag.negate()
		}
		var buf [16]byte
		binary.BigEndian.PutUint64(buf[:8], mag.hi)
		binary.BigEndian.PutUint64(buf[8:], mag.lo)
		return appendBytes(v, buf[16-width:])
	}
	return nil
}

// numericEqual reports whether two binary numerics hold the same value:
// PostgreSQL stores numerics without leading or trailing zero digits, so
// they are equal when all but their display scales are.
func NumericEqual(a, b []byte) bool {
	if len(a) < 8 || len(b) < 8 {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(a[:6], b[:6]) && bytes.Equal(a[8:], b[8:])
}

// CopySignature starts every binary COPY stream.
const CopySignature = "PGCOPY\n\xff\r\n\x00"

var copySignature = []byte(CopySignature)

// copyHeaderLen is the signature, the flags and the extension length.
const copyHeaderLen = 11 + 4 + 4

// copyFlagOIDs is the flag of a stream whose tuples carry OIDs; the other
// flags of the high half are critical: a reader that does not know them
// must stop.
const copyFlagOIDs = 1 << 16

// RowSink receives the rows a decoder completes.
type RowSink interface {
	// Batch is the batch rows are decoded into.
	Batch() *records.Batch
	// RowDone is called after each row with its size on the wire.
	RowDone(size int) error
}

// CopyStream decodes a binary COPY stream, written to it in pieces of any
// size (pgconn's CopyTo writes each CopyData message's payload; a row
// may span several), into the sink's batch.
//
// Memory is bounded by the rows: a row is decoded once all of its bytes
// have arrived, and only the bytes of an incomplete row are kept, never
// buffers sized from the lengths the stream announces.
type CopyStream struct {
	cols []*Decoder
	sink RowSink
	// header and done record that the header and the trailer were read.
	header, done bool
	// carry holds the start of an incomplete row (or header).
	carry []byte
}

func NewCopyStream(cols []*Decoder, sink RowSink) *CopyStream {
	return &CopyStream{cols: cols, sink: sink}
}

// Reset readies the stream for another COPY into the same sink.
func (s *CopyStream) Reset() {
	s.header, s.done, s.carry = false, false, s.carry[:0]
}

// Write decodes the complete rows of p (after what an earlier Write left
// incomplete) and keeps the rest for the next Write.
func (s *CopyStream) Write(p []byte) (int, error) {
	if len(s.carry) > 0 {
		s.carry = append(s.carry, p...)
		used, err := s.parse(s.carry)
		if err != nil {
			return 0, err
		}
		s.carry = s.carry[:copy(s.carry, s.carry[used:])]
		return len(p), nil
	}
	used, err := s.parse(p)
	if err != nil {
		return 0, err
	}
	if used < len(p) {
		s.carry = append(s.carry, p[used:]...)
	}
	return len(p), nil
}

// Finish checks that the stream ended where it should: after its trailer.
func (s *CopyStream) Finish() error {
	if !s.done {
		if !s.header {
			return errors.New("COPY stream ended before its header")
		}
		return errors.New("COPY stream ended in the middle of a row")
	}
	return nil
}

// parse decodes the complete rows at the start of buf and returns how
// many bytes they took.
func (s *CopyStream) parse(buf []byte) (int, error) {
	pos := 0
	if !s.header {
		if len(buf) < copyHeaderLen {
			if !bytes.HasPrefix(copySignature, buf[:min(len(buf), len(copySignature))]) {
				return 0, errors.New("not a binary COPY stream")
			}
			return 0, nil
		}
		if !bytes.Equal(buf[:len(copySignature)], copySignature) {
			return 0, errors.New("not a binary COPY stream")
		}
		flags := binary.BigEndian.Uint32(buf[11:])
		if flags&copyFlagOIDs != 0 {
			return 0, errors.New("binary COPY stream with OIDs")
		}
		if flags>>16 != 0 {
			return 0, fmt.Errorf("binary COPY stream with unknown critical flags %#x", flags)
		}
		ext := int32(binary.BigEndian.Uint32(buf[15:]))
		if ext < 0 {
			return 0, fmt.Errorf("binary COPY header extension of length %d", ext)
		}
		if len(buf)-copyHeaderLen < int(ext) {
			return 0, nil
		}
		pos = copyHeaderLen + int(ext)
		s.header = true
	}
	for pos < len(buf) {
		if s.done {
			return 0, errors.New("data after the end of the binary COPY stream")
		}
		if len(buf)-pos < 2 {
			break
		}
		nf := int16(binary.BigEndian.Uint16(buf[pos:]))
		if nf == -1 {
			s.done = true
			pos += 2
			continue
		}
		if int(nf) != len(s.cols) {
			return 0, fmt.Errorf("binary COPY row of %d fields, want %d", nf, len(s.cols))
		}
		end, complete, err := s.rowEnd(buf, pos+2)
		if err != nil {
			return 0, err
		}
		if !complete {
			break
		}
		if err := s.decodeRow(buf[pos+2 : end]); err != nil {
			return 0, err
		}
		if err := s.sink.RowDone(end - pos); err != nil {
			return 0, err
		}
		pos = end
	}
	return pos, nil
}

// rowEnd finds where the row whose fields start at p ends, or reports
// that its bytes have not all arrived.
func (s *CopyStream) rowEnd(buf []byte, p int) (int, bool, error) {
	for range s.cols {
		if len(buf)-p < 4 {
			return 0, false, nil
		}
		n := int32(binary.BigEndian.Uint32(buf[p:]))
		p += 4
		if n == -1 {
			continue
		}
		if n < 0 {
			return 0, false, fmt.Errorf("binary COPY field of length %d", n)
		}
		if len(buf)-p < int(n) {
			return 0, false, nil
		}
		p += int(n)
	}
	return p, true, nil
}

// decodeRow decodes the fields of a complete row.
func (s *CopyStream) decodeRow(row []byte) error {
	b := s.sink.Batch()
	p := 0
	for i, d := range s.cols {
		n := int32(binary.BigEndian.Uint32(row[p:]))
		p += 4
		v := &b.Cols[i]
		if n == -1 {
			v.AppendNull()
			continue
		}
		if err := d.DecodeColumn(v, row[p:p+int(n)]); err != nil {
			return fmt.Errorf("column %s: %w", colName(b.Schema, i), err)
		}
		p += int(n)
	}
	b.N++
	return nil
}

// DecodeRow decodes one row of binary result fields (nil for NULL),
// as pgconn's ResultReader gives them.
func DecodeRow(cols []*Decoder, b *records.Batch, vals [][]byte) error {
	if len(vals) != len(cols) {
		return fmt.Errorf("row of %d fields, want %d", len(vals), len(cols))
	}
	for i, d := range cols {
		v := &b.Cols[i]
		if vals[i] == nil {
			v.AppendNull()
			continue
		}
		if err := d.DecodeColumn(v, vals[i]); err != nil {
			return fmt.Errorf("column %s: %w", colName(b.Schema, i), err)
		}
	}
	b.N++
	return nil
}

// colName names column i of a schema for messages.
func colName(s *records.Schema, i int) string {
	if s == nil || i >= len(s.Columns) {
		return fmt.Sprint(i + 1)
	}
	return fmt.Sprintf("%q", s.Columns[i].Name)
}
