package codec

import (
	"math"
	"strconv"

	"github.com/sluice-dev/sluice/internal/records"
)

// PostgreSQL's text output form. TextEncoderFor writes what the input
// functions read back (COPY into the warehouse), which need not be what
// the output functions print: 1234567::real is "1.234567e+06", a
// timestamp has no trailing fractional zeros, an array quotes only the
// elements that need it. OutputTextEncoder writes exactly what
// `SELECT value::text` shows in a session with DateStyle = ISO,
// TimeZone = UTC, extra_float_digits = 1 (the default since PostgreSQL
// 12) and bytea_output = hex, so that a value derived from the text (a
// hash column) can be computed again in SQL.

// OutputTextEncoder returns how a non-null value of a column of Parquet
// type t and source type typ (format_type's spelling) is written in
// PostgreSQL's text output form. A value that the batch carries with its
// exact text (Vec.ExactAt: numeric NaN, ±infinity, arrays with bounds) is
// written as that text.
func OutputTextEncoder(t records.ParquetType, typ string) (TextEncoder, error) {
	delim := byte(',')
	if IsBoxArray(typ) {
		delim = ';'
	}
	enc, err := outputEncoder(t, delim)
	if err != nil {
		return nil, err
	}
	return func(out []byte, v *records.Vec, i int) []byte {
		if text, ok := v.ExactAt(i); ok {
			return append(out, text...)
		}
		return enc(out, v, i)
	}, nil
}

func outputEncoder(t records.ParquetType, delim byte) (TextEncoder, error) {
	switch t.Logical {
	case records.LogicalTime:
		return func(out []byte, v *records.Vec, i int) []byte {
			return trimFraction(appendTime(out, v.I64[i]), len(out))
		}, nil
	case records.LogicalTimestamp:
		tz := t.AdjustedToUTC
		return func(out []byte, v *records.Vec, i int) []byte { return appendOutputTimestamp(out, v.I64[i], tz) }, nil
	case records.LogicalList:
		if t.Element == nil || t.Element.Physical == records.PhysicalGroup {
			break
		}
		elem, err := outputEncoder(*t.Element, delim)
		if err != nil {
			return nil, err
		}
		return func(out []byte, v *records.Vec, i int) []byte { return appendOutputArray(out, v.List, i, elem, delim) }, nil
	case records.LogicalNone:
		switch t.Physical {
		case records.PhysicalFloat:
			return func(out []byte, v *records.Vec, i int) []byte { return appendOutputFloat(out, float64(v.F32[i]), 32) }, nil
		case records.PhysicalDouble:
			return func(out []byte, v *records.Vec, i int) []byte { return appendOutputFloat(out, v.F64[i], 64) }, nil
		}
	}
	return TextEncoderFor(t)
}

// appendOutputFloat writes float4out's and float8out's shortest form:
// fixed notation for decimal exponents from -4 up to 6 (real) or 15
// (double precision), exponent notation outside.
func appendOutputFloat(out []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendFloatText(out, f, bits)
	}
	limit := 15
	if bits == 32 {
		limit = 6
	}
	e := strconv.AppendFloat(nil, f, 'e', -1, bits)
	exp := 0
	for k := len(e) - 1; k >= 0; k-- {
		if e[k] == 'e' {
			exp, _ = strconv.Atoi(string(e[k+1:]))
			break
		}
	}
	if f != 0 && (exp < -4 || exp >= limit) {
		return append(out, e...)
	}
	return strconv.AppendFloat(out, f, 'f', -1, bits)
}

// appendOutputTimestamp writes timestamp_out's ISO form: no fractional
// digits when the microseconds are zero, no trailing zeros otherwise.
func appendOutputTimestamp(out []byte, us int64, tz bool) []byte {
	start := len(out)
	out = AppendTimestamp(out, us, tz)
	// AppendTimestamp ends with ".ffffff", then "+00" and " BC" as they
	// apply: trim the fraction in place.
	suffix := 0
	if tz {
		suffix += len("+00")
	}
	if n := len(out) - start; n >= 3 && string(out[len(out)-3:]) == " BC" {
		suffix += 3
	}
	tail := append([]byte(nil), out[len(out)-suffix:]...)
	out = trimFraction(out[:len(out)-suffix], start)
	return append(out, tail...)
}

// trimFraction removes the trailing zeros of the ".ffffff" that ends
// out[start:], and the point when nothing is left of it.
func trimFraction(out []byte, start int) []byte {
	dot := len(out) - 7
	if dot < start || out[dot] != '.' {
		return out
	}
	for len(out) > dot+1 && out[len(out)-1] == '0' {
		out = out[:len(out)-1]
	}
	if len(out) == dot+1 {
		out = out[:dot]
	}
	return out
}

// appendOutputArray writes array_out's form of a one-dimensional array:
// elements quoted only when empty, "NULL", or holding a quote, a
// backslash, a brace, the delimiter or white space.
func appendOutputArray(out []byte, l *records.ListVec, i int, elem TextEncoder, delim byte) []byte {
	out = append(out, '{')
	var buf []byte
	for j := l.Offsets[i]; j < l.Offsets[i+1]; j++ {
		if j > l.Offsets[i] {
			out = append(out, delim)
		}
		if l.Elem.IsNull(int(j)) {
			out = append(out, "NULL"...)
			continue
		}
		buf = elem(buf[:0], &l.Elem, int(j))
		if !arrayNeedsQuotes(buf, delim) {
			out = append(out, buf...)
			continue
		}
		out = append(out, '"')
		for _, c := range buf {
			if c == '"' || c == '\\' {
				out = append(out, '\\')
			}
			out = append(out, c)
		}
		out = append(out, '"')
	}
	return append(out, '}')
}

func arrayNeedsQuotes(s []byte, delim byte) bool {
	if len(s) == 0 || (len(s) == 4 && (s[0]|0x20) == 'n' && (s[1]|0x20) == 'u' && (s[2]|0x20) == 'l' && (s[3]|0x20) == 'l') {
		return true
	}
	for _, c := range s {
		switch c {
		case '"', '\\', '{', '}', delim, ' ', '\t', '\n', '\r', '\v', '\f':
			return true
		}
	}
	return false
}
