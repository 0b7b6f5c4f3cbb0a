package codec

import (
	"fmt"
	"math"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/records"
)

// This file decodes PostgreSQL's text form of a value (what logical
// replication sends) into the Parquet type the mapping gives its column,
// so that a row streamed by CDC has the same values as the row read by a
// binary COPY snapshot (decoder.go).
//
// The text forms are those of a session with streamSettings: DateStyle
// ISO, IntervalStyle postgres, TimeZone UTC, extra_float_digits 3 (the
// shortest text that reads back as the same float) and bytea_output hex.
// The decoders still accept what other settings would print where that
// costs nothing (any time zone offset, bytea's escape format).

// textKind is what a textDecoder decodes.
type textKind uint8

const (
	textBool textKind = iota
	textInt16
	textInt32
	textInt64
	textFloat32
	textFloat64
	textDecimal32    // DECIMAL(p<=9) as INT32
	textDecimal64    // DECIMAL(p<=18) as INT64
	textDecimalFixed // DECIMAL(p<=38) as FIXED_LEN_BYTE_ARRAY
	textBytes        // STRING and JSON: the text as it is
	textBytea        // BYTE_ARRAY: bytea's hex (or escape) format
	textDate
	textTime
	textTimestamp
	textTimestampTZ
	textList
)

// textDecoder appends values given in their text form to a Vec of a
// column's Parquet type. A value the type cannot hold (numeric NaN or
// ±Infinity in a DECIMAL column, a numeric with more digits than the
// column, ±infinity dates and timestamps, a multi-dimensional array in a
// LIST column) is appended as NULL and counted, as the binary decoder does.
type textDecoder struct {
	kind textKind
	// precision, scale and width (bytes) of a DECIMAL.
	precision, scale, width int
	// delim separates the elements of a LIST's text form: ',' for every
	// type but box.
	delim byte
	elem  *textDecoder
	// buf holds an array element while it is unescaped.
	buf []byte
}

// newTextDecoder returns the decoder of a column of PostgreSQL type t (for
// the delimiter of array elements; nil is taken as a type with ',')
// written as pt.
func newTextDecoder(pt records.ParquetType, t *PGType) (*textDecoder, error) {
	d := &textDecoder{}
	switch pt.Physical {
	case records.PhysicalBoolean:
		d.kind = textBool
	case records.PhysicalInt32:
		switch pt.Logical {
		case records.LogicalNone:
			d.kind = textInt32
		case records.LogicalInt16:
			d.kind = textInt16
		case records.LogicalDate:
			d.kind = textDate
		case records.LogicalDecimal:
			d.kind = textDecimal32
		default:
			return nil, fmt.Errorf("no text decoder for %s", pt.Name)
		}
	case records.PhysicalInt64:
		switch pt.Logical {
		case records.LogicalNone:
			d.kind = textInt64
		case records.LogicalTime:
			d.kind = textTime
		case records.LogicalTimestamp:
			d.kind = textTimestamp
			if pt.AdjustedToUTC {
				d.kind = textTimestampTZ
			}
		case records.LogicalDecimal:
			d.kind = textDecimal64
		default:
			return nil, fmt.Errorf("no text decoder for %s", pt.Name)
		}
	case records.PhysicalFloat:
		d.kind = textFloat32
	case records.PhysicalDouble:
		d.kind = textFloat64
	case records.PhysicalByteArray:
		switch pt.Logical {
		case records.LogicalString, records.LogicalJSON:
			d.kind = textBytes
		case records.LogicalNone:
			d.kind = textBytea
		default:
			return nil, fmt.Errorf("no text decoder for %s", pt.Name)
		}
	case records.PhysicalFixedLenByteArray:
		if pt.Logical != records.LogicalDecimal {
			return nil, fmt.Errorf("no text decoder for %s", pt.Name)
		}
		d.kind = textDecimalFixed
		d.width = pt.Length
		if d.width < 1 || d.width > 16 {
			return nil, fmt.Errorf("no text decoder for %s of %d bytes", pt.Name, pt.Length)
		}
	case records.PhysicalGroup:
		if pt.Logical != records.LogicalList || pt.Element == nil {
			return nil, fmt.Errorf("no text decoder for %s", pt.Name)
		}
		var elemType *PGType
		if b := BaseType(t); b != nil {
			elemType = ArrayElem(b)
		}
		elem, err := newTextDecoder(*pt.Element, elemType)
		if err != nil {
			return nil, err
		}
		if elem.kind == textList {
			return nil, fmt.Errorf("no text decoder for %s: lists of lists are not written", pt.Name)
		}
		d.kind, d.elem, d.delim = textList, elem, ','
		if b := BaseType(elemType); b != nil && b.OID == pgtype.BoxOID {
			d.delim = ';'
		}
	default:
		return nil, fmt.Errorf("no text decoder for %s", pt.Name)
	}
	if pt.Logical == records.LogicalDecimal {
		d.precision, d.scale = pt.Precision, pt.Scale
		if d.precision < 1 || d.precision > MaxDecimalPrecision || d.scale < 0 || d.scale > d.precision {
			return nil, fmt.Errorf("no text decoder for %s", pt.Name)
		}
	}
	return d, nil
}

// decode appends the value whose text form is s to v, counting the values
// set to NULL in *nulled.
func (d *textDecoder) decode(v *records.Vec, s []byte, nulled *int) error {
	switch d.kind {
	case textBool:
		if len(s) == 1 && (s[0] == 't' || s[0] == 'f') {
			v.AppendBool(s[0] == 't')
			return nil
		}
		return textError("boolean", s)
	case textInt16:
		x, ok := parseTextInt(s, math.MinInt16, math.MaxInt16)
		if !ok {
			return textError("smallint", s)
		}
		v.AppendInt32(int32(x))
	case textInt32:
		x, ok := parseTextInt(s, math.MinInt32, math.MaxInt32)
		if !ok {
			return textError("integer", s)
		}
		v.AppendInt32(int32(x))
	case textInt64:
		x, ok := parseTextInt(s, math.MinInt64, math.MaxInt64)
		if !ok {
			return textError("bigint", s)
		}
		v.AppendInt64(x)
	case textFloat32:
		x, ok := parseTextFloat(s, 32)
		if !ok {
			return textError("real", s)
		}
		v.AppendFloat32(float32(x))
	case textFloat64:
		x, ok := parseTextFloat(s, 64)
		if !ok {
			return textError("double precision", s)
		}
		v.AppendFloat64(x)
	case textDecimal32, textDecimal64, textDecimalFixed:
		return d.decodeDecimal(v, s, nulled)
	case textBytes:
		if len(v.Data)+len(s) > maxArenaBytes {
			return errArenaFull
		}
		v.AppendBytes(s)
	case textBytea:
		return decodeBytea(v, s)
	case textDate:
		if isInfinityText(s) {
			v.AppendNull()
			*nulled++
			return nil
		}
		days, ok := parseTextDate(s)
		if !ok {
			return textError("date", s)
		}
		v.AppendInt32(int32(days))
	case textTime:
		us, ok := parseTextTime(s)
		if !ok {
			return textError("time", s)
		}
		v.AppendInt64(us)
	case textTimestamp, textTimestampTZ:
		if isInfinityText(s) {
			v.AppendNull()
			*nulled++
			return nil
		}
		us, ok := parseTextTimestamp(s, d.kind == textTimestampTZ)
		if !ok {
			return textError("timestamp", s)
		}
		// As the binary decoder: a timestamp of PostgreSQL's last 30 years (beyond
		// 294246 AD) does not fit in Parquet's microseconds since 1970.
		if us >= math.MaxInt64-PGEpochMicros {
			v.AppendNull()
			*nulled++
			return nil
		}
		v.AppendInt64(us + PGEpochMicros)
	case textList:
		return d.decodeList(v, s, nulled)
	default:
		return fmt.Errorf("unknown text decoder %d", d.kind)
	}
	return nil
}

// textError reports a value that is not the text form of its type,
// quoting at most its first 40 bytes.
func textError(typ string, s []byte) error {
	const show = 40
	if len(s) > show {
		return fmt.Errorf("invalid %s value %q...", typ, s[:show])
	}
	return fmt.Errorf("invalid %s value %q", typ, s)
}

// textMark remembers the length of a Vec, to take back the elements of a
// list value that failed part-way.
type textMark struct {
	n, data int
	valid   bool
	list    *textMark
}

func markVec(v *records.Vec) textMark {
	m := textMark{n: v.Len(), data: len(v.Data), valid: v.Valid != nil}
	if v.List != nil {
		inner := markVec(&v.List.Elem)
		m.list = &inner
	}
	return m
}

func (m textMark) restore(v *records.Vec) {
	n := m.n
	switch {
	case v.Bool != nil:
		v.Bool = v.Bool[:n]
	case v.I32 != nil:
		v.I32 = v.I32[:n]
	case v.I64 != nil:
		v.I64 = v.I64[:n]
	case v.F32 != nil:
		v.F32 = v.F32[:n]
	case v.F64 != nil:
		v.F64 = v.F64[:n]
	case v.Offsets != nil:
		v.Offsets = v.Offsets[:n+1]
		v.Data = v.Data[:m.data]
	case v.List != nil:
		v.List.Offsets = v.List.Offsets[:n+1]
		if m.list != nil {
			m.list.restore(&v.List.Elem)
		}
	}
	if v.Valid != nil {
		if m.valid {
			v.Valid = v.Valid[:n]
		} else {
			// Valid was allocated by a null appended since: every value
			// before it was valid.
			v.Valid = nil
		}
	}
}

// TextDecoder appends values given in PostgreSQL's text form to a Vec of
// a Parquet type, exactly as the stream decodes pgoutput's values: the
// PostgreSQL warehouse reads its own tables back with it, so that a value
// read back is the value written. The text forms are those of a session
// with SessionSettings.
type TextDecoder struct {
	d *textDecoder
}

// SessionSettings are the SET statements that make a session print values
// in the text forms TextDecoder reads.
const SessionSettings = `SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET extra_float_digits = 3;
SET bytea_output = 'hex'`

// NewTextDecoder returns the decoder of values of Parquet type pt.
func NewTextDecoder(pt records.ParquetType) (*TextDecoder, error) {
	d, err := newTextDecoder(pt, nil)
	if err != nil {
		return nil, err
	}
	return &TextDecoder{d: d}, nil
}

// NewColumnTextDecoder is NewTextDecoder for a column of PostgreSQL type
// t (nil when unknown), as the CDC stream decodes pgoutput's values: t
// says which array elements are separated by ';' (box) rather than ','.
func NewColumnTextDecoder(pt records.ParquetType, t *PGType) (*TextDecoder, error) {
	d, err := newTextDecoder(pt, t)
	if err != nil {
		return nil, err
	}
	return &TextDecoder{d: d}, nil
}

// NewListTextDecoder is NewTextDecoder for a LIST whose array text form
// separates its elements by delim (';' for arrays of box, ',' for every
// other type).
func NewListTextDecoder(pt records.ParquetType, delim byte) (*TextDecoder, error) {
	d, err := newTextDecoder(pt, nil)
	if err != nil {
		return nil, err
	}
	if d.kind == textList {
		d.delim = delim
	}
	return &TextDecoder{d: d}, nil
}

// Decode appends the value whose text form is s to v; a value the type
// cannot hold (an infinite date, a NaN in a DECIMAL) is appended as NULL
// and counted in v.Nulled.
//
// Such a value, and an array whose bounds or dimensions a LIST does not
// keep, also gets its exact text form (records.Vec.SetExact): s.
func (d *TextDecoder) Decode(v *records.Vec, s []byte) error {
	return d.d.DecodeColumn(v, s)
}

// DecodeColumn decodes the text form s of a batch column's value,
// keeping s as its exact text form when the Parquet type does not hold
// the value exactly (exact.go).
func (d *textDecoder) DecodeColumn(v *records.Vec, s []byte) error {
	before := v.Nulled
	if err := d.decode(v, s, &v.Nulled); err != nil {
		return err
	}
	if nulled := v.Nulled - before; nulled > 0 || d.kind == textList && len(s) > 0 && s[0] == '[' {
		v.SetExact(s, nulled)
	}
	return nil
}
