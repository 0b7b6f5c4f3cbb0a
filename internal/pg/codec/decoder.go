package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/records"
)

// This file decodes PostgreSQL's binary formats into record batches: the
// binary COPY stream of snapshots, and the binary result fields of cursor
// reads, which encode each value the same way. Only the types the mapping
// keeps as such are decoded; every other type is read as its text form
// (the source casts it in the select list; see ColumnDecoder), so that a
// STRING column always holds PostgreSQL's text output.
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

// Decoder decodes one column's (or array element's) binary values.
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
// (exact.go, array.go).
func (d *Decoder) CloneFor(pt records.ParquetType) *Decoder {
	c := d.Clone()
	if c.kind == decList && c.elem != nil && c.elem.kind == decBytes {
		if e := pt.Element; e != nil && e.Physical == records.PhysicalByteArray && e.Logical == records.LogicalNone {
			c.elem.bytea = true
		}
	}
	return c
}

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

// ColumnDecoder chooses how a column of type t, mapped to pt, is read:
// its binary format decoded (resultOID, the base type, is what the server
// sends) when the decoder knows it, else its text form (asText; the
// server sends text), which is what the mapping makes of every type
// Parquet has no equivalent for. A LIST of such elements is read as the
// array's text form and split by the decoder of logical replication's
// text (textdecoder.go), so that both paths make the same elements of it.
// Domains are read as their base type.
func ColumnDecoder(t *PGType, pt records.ParquetType) (dec *Decoder, asText bool, resultOID uint32, err error) {
	b := BaseType(t)
	if pt.Physical == records.PhysicalGroup {
		if pt.Element == nil {
			return nil, false, 0, errors.New("LIST type without an element type")
		}
		var elem *PGType
		if b != nil {
			elem = BaseType(ArrayElem(b))
		}
		if d, ok := nativeDecoder(elem, *pt.Element); ok {
			return &Decoder{kind: decList, elem: d}, false, b.OID, nil
		}
		td, err := newTextDecoder(pt, t)
		if err != nil {
			return nil, false, 0, err
		}
		return &Decoder{kind: decTextList, text: td}, true, pgtype.TextOID, nil
	}
	if d, ok := nativeDecoder(b, pt); ok {
		return d, false, b.OID, nil
	}
	if isString(pt) {
		return &Decoder{kind: decBytes}, true, pgtype.TextOID, nil
	}
	return nil, false, 0, fmt.Errorf("no decoder for %s as %s", t, pt.Name)
}

func isString(pt records.ParquetType) bool {
	return pt.Physical == records.PhysicalByteArray && pt.Logical == records.LogicalString
}

// nativeDecoder returns the decoder of the binary format of a (base)
// type into its Parquet type, when sluice decodes it.
func nativeDecoder(b *PGType, pt records.ParquetType) (*Decoder, bool) {
	if b == nil {
		return nil, false
	}
	phys, logical := pt.Physical, pt.Logical
	var d *Decoder
	switch b.OID {
	case pgtype.BoolOID:
		if phys == records.PhysicalBoolean {
			d = &Decoder{kind: decBool}
		}
	case pgtype.Int2OID:
		if phys == records.PhysicalInt32 {
			d = &Decoder{kind: decInt2}
		}
	case pgtype.Int4OID:
		if phys == records.PhysicalInt32 {
			d = &Decoder{kind: decInt4}
		}
	case pgtype.Int8OID:
		if phys == records.PhysicalInt64 {
			d = &Decoder{kind: decInt8}
		}
	case pgtype.Float4OID:
		if phys == records.PhysicalFloat {
			d = &Decoder{kind: decFloat4}
		}
	case pgtype.Float8OID:
		if phys == records.PhysicalDouble {
			d = &Decoder{kind: decFloat8}
		}
	case pgtype.NumericOID:
		switch {
		case logical == records.LogicalDecimal:
			d = decimalDecoder(pt)
		case isString(pt):
			d = &Decoder{kind: decNumericText}
		}
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		if isString(pt) {
			d = &Decoder{kind: decBytes}
		}
	case pgtype.ByteaOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalNone {
			d = &Decoder{kind: decBytes}
		}
	case pgtype.JSONOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalJSON {
			d = &Decoder{kind: decBytes}
		}
	case pgtype.JSONBOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalJSON {
			d = &Decoder{kind: decJSONB}
		}
	case pgtype.DateOID:
		if phys == records.PhysicalInt32 && logical == records.LogicalDate {
			d = &Decoder{kind: decDate}
		}
	case pgtype.TimeOID:
		if phys == records.PhysicalInt64 && logical == records.LogicalTime {
			d = &Decoder{kind: decTime}
		}
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		if phys == records.PhysicalInt64 && logical == records.LogicalTimestamp {
			d = &Decoder{kind: decTimestamp}
		}
	case pgtype.UUIDOID:
		if isString(pt) {
			d = &Decoder{kind: decUUID}
		}
	default:
		// Enum labels and citext are sent as text.
		if (b.Type == 'e' || b.Type == 'b' && b.Name == citextTypeName) && isString(pt) {
			d = &Decoder{kind: decBytes}
		}
	}
	return d, d != nil
}

// decimalDecoder decodes numeric into a DECIMAL's physical type.
func decimalDecoder(pt records.ParquetType) *Decoder {
	d := &Decoder{scale: pt.Scale, precision: pt.Precision}
	switch pt.Physical {
	case records.PhysicalInt32:
		d.kind = decNumeric32
	case records.PhysicalInt64:
		d.kind = decNumeric64
	case records.PhysicalFixedLenByteArray:
		if pt.Length < 1 || pt.Length > 16 || pt.Precision > MaxDecimalPrecision {
			return nil
		}
		d.kind, d.width = decNumericFixed, pt.Length
	default:
		return nil
	}
	if pt.Scale < 0 || pt.Precision < 1 || pt.Precision > MaxDecimalPrecision {
		return nil
	}
	return d
}
