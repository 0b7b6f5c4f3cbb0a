package codec

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
)

// Rows reach PostgreSQL by COPY ... FROM STDIN in the text format. Every
// value is written in PostgreSQL's own text form, which the column type's
// input function reads back exactly; this is what lets a column keep the
// source's type (uuid, inet, interval, multi-dimensional arrays, ...) even
// when the batch carries it as a STRING, with no cast step after the copy.

// appendFunc appends the text form of non-null value i of v (not yet
// escaped for COPY).
type TextEncoder func(out []byte, v *records.Vec, i int) []byte

// appender returns how values of Parquet type t are written.
func TextEncoderFor(t records.ParquetType) (TextEncoder, error) {
	switch t.Logical {
	case records.LogicalDecimal:
		scale := t.Scale
		switch t.Physical {
		case records.PhysicalInt32:
			return func(out []byte, v *records.Vec, i int) []byte { return appendDecimal(out, int64(v.I32[i]), scale) }, nil
		case records.PhysicalInt64:
			return func(out []byte, v *records.Vec, i int) []byte { return appendDecimal(out, v.I64[i], scale) }, nil
		case records.PhysicalFixedLenByteArray, records.PhysicalByteArray:
			return func(out []byte, v *records.Vec, i int) []byte { return appendBigDecimal(out, v.Bytes(i), scale) }, nil
		}
	case records.LogicalDate:
		return func(out []byte, v *records.Vec, i int) []byte { return appendDate(out, int64(v.I32[i])) }, nil
	case records.LogicalTime:
		return func(out []byte, v *records.Vec, i int) []byte { return appendTime(out, v.I64[i]) }, nil
	case records.LogicalTimestamp:
		tz := t.AdjustedToUTC
		return func(out []byte, v *records.Vec, i int) []byte { return AppendTimestamp(out, v.I64[i], tz) }, nil
	case records.LogicalList:
		if t.Element == nil || t.Element.Physical == records.PhysicalGroup {
			break
		}
		elem, err := TextEncoderFor(*t.Element)
		if err != nil {
			return nil, err
		}
		return func(out []byte, v *records.Vec, i int) []byte { return appendArray(out, v.List, i, elem, ',') }, nil
	}
	switch t.Physical {
	case records.PhysicalBoolean:
		return func(out []byte, v *records.Vec, i int) []byte {
			if v.Bool[i] {
				return append(out, 't')
			}
			return append(out, 'f')
		}, nil
	case records.PhysicalInt32:
		return func(out []byte, v *records.Vec, i int) []byte { return strconv.AppendInt(out, int64(v.I32[i]), 10) }, nil
	case records.PhysicalInt64:
		return func(out []byte, v *records.Vec, i int) []byte { return strconv.AppendInt(out, v.I64[i], 10) }, nil
	case records.PhysicalFloat:
		return func(out []byte, v *records.Vec, i int) []byte { return appendFloatText(out, float64(v.F32[i]), 32) }, nil
	case records.PhysicalDouble:
		return func(out []byte, v *records.Vec, i int) []byte { return appendFloatText(out, v.F64[i], 64) }, nil
	case records.PhysicalByteArray:
		if t.Logical == records.LogicalNone {
			return func(out []byte, v *records.Vec, i int) []byte { return appendBytea(out, v.Bytes(i)) }, nil
		}
		return func(out []byte, v *records.Vec, i int) []byte { return append(out, v.Bytes(i)...) }, nil
	}
	return nil, fmt.Errorf("cannot write Parquet type %s to PostgreSQL", t.Name)
}

// columnAppender is appender for a column of SQL type typ (columnType's
// spelling): the elements of a box array are separated by ';', box's
// array delimiter, since a box's text holds commas.
func ColumnTextEncoder(t records.ParquetType, typ string) (TextEncoder, error) {
	if !IsBoxArray(typ) || t.Logical != records.LogicalList || t.Element == nil {
		return TextEncoderFor(t)
	}
	elem, err := TextEncoderFor(*t.Element)
	if err != nil {
		return nil, err
	}
	return func(out []byte, v *records.Vec, i int) []byte { return appendArray(out, v.List, i, elem, ';') }, nil
}

// isBoxArray reports whether SQL type typ is box[].
func IsBoxArray(typ string) bool {
	p, ok := parseSourceType(typ)
	return ok && p.base == "box" && p.arrays == 1
}

// appendDecimal writes an unscaled value with its scale as a decimal
// number.
func appendDecimal(out []byte, unscaled int64, scale int) []byte {
	if scale <= 0 {
		return strconv.AppendInt(out, unscaled, 10)
	}
	neg := unscaled < 0
	var buf [20]byte
	var digits []byte
	if neg {
		// -unscaled overflows for MinInt64: format the unsigned magnitude.
		digits = strconv.AppendUint(buf[:0], uint64(-(unscaled+1))+1, 10)
	} else {
		digits = strconv.AppendUint(buf[:0], uint64(unscaled), 10)
	}
	return placePoint(out, neg, digits, scale)
}

// appendBigDecimal writes a big-endian two's complement unscaled value.
func appendBigDecimal(out []byte, b []byte, scale int) []byte {
	var buf [40]byte
	neg, digits := twosDigits(&buf, b)
	if scale <= 0 {
		if neg {
			out = append(out, '-')
		}
		return append(out, digits...)
	}
	return placePoint(out, neg, digits, scale)
}

func placePoint(out []byte, neg bool, digits []byte, scale int) []byte {
	if neg {
		out = append(out, '-')
	}
	if len(digits) <= scale {
		out = append(out, '0', '.')
		for range scale - len(digits) {
			out = append(out, '0')
		}
		return append(out, digits...)
	}
	out = append(out, digits[:len(digits)-scale]...)
	out = append(out, '.')
	return append(out, digits[len(digits)-scale:]...)
}

// appendDate writes days since 1970-01-01 as PostgreSQL's ISO date, years
// before 1 as "BC".
func appendDate(out []byte, days int64) []byte {
	t := time.Unix(days*86400, 0).UTC()
	out = appendYMD(out, t)
	if t.Year() <= 0 {
		out = append(out, " BC"...)
	}
	return out
}

// appendTime writes microseconds since midnight (24:00:00 included).
func appendTime(out []byte, us int64) []byte {
	out = appendPadded(out, us/3_600_000_000, 2)
	out = append(out, ':')
	out = appendPadded(out, us/60_000_000%60, 2)
	out = append(out, ':')
	out = appendPadded(out, us/1_000_000%60, 2)
	out = append(out, '.')
	return appendPadded(out, us%1_000_000, 6)
}

// appendTimestamp writes microseconds since 1970-01-01 00:00 (UTC for
// timestamptz).
func AppendTimestamp(out []byte, us int64, tz bool) []byte {
	day := us / microsPerDay
	rem := us % microsPerDay
	if rem < 0 {
		day--
		rem += microsPerDay
	}
	t := time.Unix(day*86400, 0).UTC()
	out = appendYMD(out, t)
	out = append(out, ' ')
	out = appendTime(out, rem)
	if tz {
		out = append(out, "+00"...)
	}
	if t.Year() <= 0 {
		out = append(out, " BC"...)
	}
	return out
}

// appendBytea writes bytea's hex form.
func appendBytea(out []byte, b []byte) []byte {
	out = append(out, '\\', 'x')
	for _, c := range b {
		out = append(out, hexDigits[c>>4], hexDigits[c&15])
	}
	return out
}

// appendArray writes a one-dimensional array literal, every element
// quoted (array_in accepts quoted elements of any type).
func appendArray(out []byte, l *records.ListVec, i int, elem TextEncoder, delim byte) []byte {
	out = append(out, '{')
	for j := l.Offsets[i]; j < l.Offsets[i+1]; j++ {
		if j > l.Offsets[i] {
			out = append(out, delim)
		}
		if l.Elem.IsNull(int(j)) {
			out = append(out, "NULL"...)
			continue
		}
		out = append(out, '"')
		start := len(out)
		out = elem(out, &l.Elem, int(j))
		if n := needArrayEscape(out[start:]); n > 0 {
			// Rare: make room for the backslashes and escape from the end.
			text := len(out) - start
			out = append(out, make([]byte, n)...)
			w := len(out)
			for k := start + text - 1; k >= start; k-- {
				c := out[k]
				w--
				out[w] = c
				if c == '"' || c == '\\' {
					w--
					out[w] = '\\'
				}
			}
		}
		out = append(out, '"')
	}
	return append(out, '}')
}

// needArrayEscape counts the characters of an array element that need a
// backslash inside quotes.
func needArrayEscape(s []byte) int {
	n := 0
	for _, c := range s {
		if c == '"' || c == '\\' {
			n++
		}
	}
	return n
}

// appendCopyEscaped appends s escaped for COPY's text format.
func appendCopyEscaped(out, s []byte) []byte {
	for _, c := range s {
		switch c {
		case '\\':
			out = append(out, '\\', '\\')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			out = append(out, c)
		}
	}
	return out
}

// rowReader streams a batch as COPY text, a row at a time, so that memory
// holds the batch and a chunk of text, never the batch's whole text.
type TextRowReader struct {
	B       *records.Batch
	Cols    []int // batch column of each COPY column, before the extras
	Enc     []TextEncoder
	Extra   func(out []byte, row int) []byte // columns after the batch's (tab-led), or nil
	row     int
	buf     []byte
	off     int
	scratch []byte
	rows    int64
}

func (r *TextRowReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.row >= r.B.N {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for r.row < r.B.N && len(r.buf) < 256<<10 {
			r.buf = r.appendRow(r.buf, r.row)
			r.row++
			r.rows++
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *TextRowReader) appendRow(out []byte, row int) []byte {
	for k, ci := range r.Cols {
		if k > 0 {
			out = append(out, '\t')
		}
		v := &r.B.Cols[ci]
		if v.Unchanged != nil && row < len(v.Unchanged) && v.Unchanged[row] {
			out = append(out, '\\', 'N')
			continue
		}
		if text, ok := v.ExactAt(row); ok {
			// The source's exact text form of a value the Parquet type
			// does not hold (infinity, NaN, an array's bounds).
			out = appendCopyEscaped(out, text)
			continue
		}
		if v.IsNull(row) {
			out = append(out, '\\', 'N')
			continue
		}
		r.scratch = r.Enc[k](r.scratch[:0], v, row)
		out = appendCopyEscaped(out, r.scratch)
	}
	if r.Extra != nil {
		out = r.Extra(out, row)
	}
	return append(out, '\n')
}

// copied is the number of rows read so far.
func (r *TextRowReader) Copied() int64 { return r.rows }
