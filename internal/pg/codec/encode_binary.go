package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluice-dev/sluice/internal/records"
)

// COPY's binary format. The text format makes the server parse every value
// with the type's input function; the binary format hands it the value
// already in the type's send form, which its receive function only checks.
// The receive functions get the column's typmod, as the input functions
// do, so numeric(p,s) rounds, character(n) pads and character varying(n)
// rejects long values in exactly the same way: a batch reads back the
// same in both formats (binary_test.go checks it value by value against
// the text format).
//
// Only types whose send form is simple and fixed are written here; for any
// other column binaryAppender says so and the caller keeps the text format
// for the whole table, since one COPY has one format.

// binaryAppendFunc appends the binary (send) form of non-null value i of v,
// without the length word.
type BinaryEncoder func(out []byte, v *records.Vec, i int) ([]byte, error)

// usecsPerDay is time's upper bound: 24:00:00 is valid.
const usecsPerDay = 86_400_000_000

// The range date_recv and timestamp_recv accept (IS_VALID_DATE,
// IS_VALID_TIMESTAMP), in days and µs since 1970-01-01: 4714-11-24 BC to
// 5874897-12-31 for dates, 4714-11-24 00:00 BC onwards for timestamps
// (their end, 294277-01-01, lies beyond math.MaxInt64 µs after 1970). The
// encoders check it themselves because moving a value to the 2000 epoch
// could wrap, and the ends of the int32 and int64 ranges mean ±infinity
// there, which no batch value means.
const (
	minDateDays    = -2451545 + pgEpochDays
	endDateDays    = 2145031949 + pgEpochDays
	minTimestampUs = -211813488000000000 + PGEpochMicros
)

// numericMaxScale is the largest display scale numeric's header holds (14
// bits); numeric_recv refuses more.
const numericMaxScale = 0x3FFF

// binaryAppender returns how values of Parquet type t are written in
// COPY's binary format into a column of SQL type typ (format_type's
// spelling, exactly as columnType returns it: "integer", "numeric(12,2)",
// "numeric", "character(3)", "character varying(20)", "timestamp with time
// zone", "text[]", "uuid", "jsonb" ...). ok is false when the pair has no
// binary form here; the caller then copies the whole table in the text
// format.
func ColumnBinaryEncoder(t records.ParquetType, typ string) (f BinaryEncoder, ok bool) {
	p, ok := parseSourceType(typ)
	if !ok {
		return nil, false
	}
	switch p.arrays {
	case 0:
		f, _, ok := scalarBinaryAppender(t, p)
		return f, ok
	case 1:
		// Multi-dimensional arrays travel as STRING (SPEC §5): only a LIST
		// is an array here.
		if t.Logical != records.LogicalList || t.Physical != records.PhysicalGroup || t.Element == nil {
			return nil, false
		}
		p.arrays = 0
		elem, oid, ok := scalarBinaryAppender(*t.Element, p)
		if !ok {
			return nil, false
		}
		return func(out []byte, v *records.Vec, i int) ([]byte, error) {
			return appendBinaryArray(out, v.List, i, oid, elem)
		}, true
	}
	return nil, false
}

// scalarBinaryAppender is binaryAppender for a type that is not an array;
// oid is the type's OID, which an array of it names.
func scalarBinaryAppender(t records.ParquetType, p parsedType) (f BinaryEncoder, oid uint32, ok bool) {
	bytesOf := func(logical ...records.Logical) bool {
		if t.Physical != records.PhysicalByteArray {
			return false
		}
		for _, l := range logical {
			if t.Logical == l {
				return true
			}
		}
		return false
	}
	plain := func(ph records.Physical) bool { return t.Physical == ph && t.Logical == records.LogicalNone }
	switch p.base {
	case "boolean":
		if plain(records.PhysicalBoolean) {
			return appendBinaryBool, pgtype.BoolOID, true
		}
	case "smallint":
		if t.Physical == records.PhysicalInt32 && t.Logical == records.LogicalInt16 {
			return appendBinaryInt2, pgtype.Int2OID, true
		}
	case "integer":
		if plain(records.PhysicalInt32) {
			return appendBinaryInt4, pgtype.Int4OID, true
		}
	case "bigint":
		if plain(records.PhysicalInt64) {
			return appendBinaryInt8, pgtype.Int8OID, true
		}
	case "real":
		if plain(records.PhysicalFloat) {
			return appendBinaryFloat4, pgtype.Float4OID, true
		}
	case "double precision":
		if plain(records.PhysicalDouble) {
			return appendBinaryFloat8, pgtype.Float8OID, true
		}
	case "numeric":
		if f, ok := numericBinaryAppender(t); ok {
			return f, pgtype.NumericOID, true
		}
	case "text", "character varying", "character":
		// The raw text, as the text format writes it: textrecv, varcharrecv
		// and bpcharrecv check the encoding and apply the length exactly
		// as the input functions do.
		if bytesOf(records.LogicalString) {
			oid := map[string]uint32{"text": pgtype.TextOID, "character varying": pgtype.VarcharOID, "character": pgtype.BPCharOID}[p.base]
			return appendBinaryRaw, oid, true
		}
	case "json":
		if bytesOf(records.LogicalString, records.LogicalJSON) {
			return appendBinaryRaw, pgtype.JSONOID, true
		}
	case "jsonb":
		if bytesOf(records.LogicalString, records.LogicalJSON) {
			return appendBinaryJSONB, pgtype.JSONBOID, true
		}
	case "bytea":
		if bytesOf(records.LogicalNone) {
			return appendBinaryRaw, pgtype.ByteaOID, true
		}
	case "date":
		if t.Physical == records.PhysicalInt32 && t.Logical == records.LogicalDate {
			return appendBinaryDate, pgtype.DateOID, true
		}
	case "time":
		// timetz has another binary form (and family ""): text.
		if p.tz != " with time zone" && t.Physical == records.PhysicalInt64 && t.Logical == records.LogicalTime {
			return appendBinaryTime, pgtype.TimeOID, true
		}
	case "timestamp":
		if t.Physical == records.PhysicalInt64 && t.Logical == records.LogicalTimestamp && t.AdjustedToUTC == (p.tz == " with time zone") {
			if t.AdjustedToUTC {
				return appendBinaryTimestamp, pgtype.TimestamptzOID, true
			}
			return appendBinaryTimestamp, pgtype.TimestampOID, true
		}
	case "uuid":
		if bytesOf(records.LogicalString) {
			return appendBinaryUUID, pgtype.UUIDOID, true
		}
	}
	return nil, 0, false
}

// numericBinaryAppender returns how a DECIMAL or a STRING holding a
// number is written as numeric.
func numericBinaryAppender(t records.ParquetType) (BinaryEncoder, bool) {
	if t.Logical == records.LogicalString && t.Physical == records.PhysicalByteArray {
		return appendBinaryNumericText, true
	}
	// Parquet's scale is 0 to the precision; the text format would write
	// a negative one's unscaled value as is, so such a column keeps the
	// text format rather than reading back differently.
	if t.Logical != records.LogicalDecimal || t.Scale < 0 || t.Scale > numericMaxScale {
		return nil, false
	}
	scale := t.Scale
	switch t.Physical {
	case records.PhysicalInt32:
		return func(out []byte, v *records.Vec, i int) ([]byte, error) {
			return appendNumericInt(out, int64(v.I32[i]), scale)
		}, true
	case records.PhysicalInt64:
		return func(out []byte, v *records.Vec, i int) ([]byte, error) {
			return appendNumericInt(out, v.I64[i], scale)
		}, true
	case records.PhysicalFixedLenByteArray, records.PhysicalByteArray:
		return func(out []byte, v *records.Vec, i int) ([]byte, error) {
			return appendNumericTwos(out, v.Bytes(i), scale)
		}, true
	}
	return nil, false
}

// appendBinaryBool writes boolsend's single byte.
func appendBinaryBool(out []byte, v *records.Vec, i int) ([]byte, error) {
	if v.Bool[i] {
		return append(out, 1), nil
	}
	return append(out, 0), nil
}

// appendBinaryInt2 writes an INT16 value, checking the range that its
// INT32 storage does not enforce.
func appendBinaryInt2(out []byte, v *records.Vec, i int) ([]byte, error) {
	x := v.I32[i]
	if x < math.MinInt16 || x > math.MaxInt16 {
		// The text format would fail on it too; two bytes must not wrap.
		return out, fmt.Errorf("value %d out of range for type smallint", x)
	}
	return binary.BigEndian.AppendUint16(out, uint16(int16(x))), nil
}

// appendBinaryInt4 writes an INT32 value as integer.
func appendBinaryInt4(out []byte, v *records.Vec, i int) ([]byte, error) {
	return binary.BigEndian.AppendUint32(out, uint32(v.I32[i])), nil
}

// appendBinaryInt8 writes an INT64 value as bigint.
func appendBinaryInt8(out []byte, v *records.Vec, i int) ([]byte, error) {
	return binary.BigEndian.AppendUint64(out, uint64(v.I64[i])), nil
}

// appendBinaryFloat4 writes the IEEE bits, so that NaN, the infinities
// and -0 need no spelling.
func appendBinaryFloat4(out []byte, v *records.Vec, i int) ([]byte, error) {
	return binary.BigEndian.AppendUint32(out, math.Float32bits(v.F32[i])), nil
}

// appendBinaryFloat8 writes the IEEE bits, as appendBinaryFloat4 does.
func appendBinaryFloat8(out []byte, v *records.Vec, i int) ([]byte, error) {
	return binary.BigEndian.AppendUint64(out, math.Float64bits(v.F64[i])), nil
}

// appendBinaryRaw writes the bytes as they are: the send form of text,
// character varying, character, json and bytea.
func appendBinaryRaw(out []byte, v *records.Vec, i int) ([]byte, error) {
	return append(out, v.Bytes(i)...), nil
}

// appendBinaryJSONB writes jsonb's send form: a version byte, then the
// text, which jsonb_recv parses as jsonb_in would.
func appendBinaryJSONB(out []byte, v *records.Vec, i int) ([]byte, error) {
	out = append(out, 1)
	return append(out, v.Bytes(i)...), nil
}

// appendBinaryDate moves a DATE to PostgreSQL's epoch, refusing what
// date_recv would (and what would wrap into ±infinity).
func appendBinaryDate(out []byte, v *records.Vec, i int) ([]byte, error) {
	d := int64(v.I32[i])
	if d < minDateDays || d >= endDateDays {
		return out, fmt.Errorf("date out of range: %d days from 1970-01-01", d)
	}
	return binary.BigEndian.AppendUint32(out, uint32(int32(d-pgEpochDays))), nil
}

// appendBinaryTime writes microseconds since midnight, 24:00:00 included
// as time_recv allows.
func appendBinaryTime(out []byte, v *records.Vec, i int) ([]byte, error) {
	us := v.I64[i]
	if us < 0 || us > usecsPerDay {
		return out, fmt.Errorf("time out of range: %d microseconds from midnight", us)
	}
	return binary.BigEndian.AppendUint64(out, uint64(us)), nil
}

// appendBinaryTimestamp moves a TIMESTAMP to PostgreSQL's epoch; both
// timestamp and timestamptz hold UTC microseconds.
func appendBinaryTimestamp(out []byte, v *records.Vec, i int) ([]byte, error) {
	us := v.I64[i]
	if us < minTimestampUs {
		return out, fmt.Errorf("timestamp out of range: %d microseconds from 1970-01-01", us)
	}
	return binary.BigEndian.AppendUint64(out, uint64(us-PGEpochMicros)), nil
}

// appendBinaryUUID parses a uuid as uuid_in does: 32 hex digits of either
// case, optionally in braces, with an optional hyphen after any group of
// four digits but the last.
func appendBinaryUUID(out []byte, v *records.Vec, i int) ([]byte, error) {
	s := v.Bytes(i)
	src := s
	braces := len(src) > 0 && src[0] == '{'
	if braces {
		src = src[1:]
	}
	var u [16]byte
	p := 0
	for k := range u {
		if p+2 > len(src) {
			return out, inputSyntaxError("uuid", s)
		}
		hi, ok1 := unhexDigit(src[p])
		lo, ok2 := unhexDigit(src[p+1])
		if !ok1 || !ok2 {
			return out, inputSyntaxError("uuid", s)
		}
		u[k] = hi<<4 | lo
		p += 2
		if p < len(src) && src[p] == '-' && k%2 == 1 && k < len(u)-1 {
			p++
		}
	}
	if braces {
		if p >= len(src) || src[p] != '}' {
			return out, inputSyntaxError("uuid", s)
		}
		p++
	}
	if p != len(src) {
		return out, inputSyntaxError("uuid", s)
	}
	return append(out, u[:]...), nil
}

// inputSyntaxError is the error for a value its type cannot read, worded as
// PostgreSQL words it; the value is quoted (and cut) so that the message
// stays one short line of valid UTF-8 even for binary junk, as it travels
// back through the server in CopyFail.
func inputSyntaxError(typ string, s []byte) error {
	return fmt.Errorf("invalid input syntax for type %s: %s", typ, quoteBadValue(s))
}

// quoteBadValue quotes a rejected value for an error, cut at 64 bytes.
func quoteBadValue(s []byte) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(string(s[:limit])) + "..."
	}
	return strconv.Quote(string(s))
}

// appendNumericInt writes a DECIMAL held as an unscaled integer, with the
// display scale its text form (appendDecimal) has.
func appendNumericInt(out []byte, unscaled int64, scale int) ([]byte, error) {
	var buf [20]byte
	m := uint64(unscaled)
	neg := unscaled < 0
	if neg {
		m = -m // two's complement: right for math.MinInt64 too
	}
	digits := strconv.AppendUint(buf[:0], m, 10)
	return appendNumeric(out, neg, digits, nil, len(digits)-1-scale, scale)
}

// appendNumericTwos writes a DECIMAL held as a big-endian two's complement
// unscaled value (FIXED_LEN_BYTE_ARRAY), of up to 16 bytes without
// allocating.
func appendNumericTwos(out []byte, b []byte, scale int) ([]byte, error) {
	var buf [40]byte
	neg, digits := twosDigits(&buf, b)
	return appendNumeric(out, neg, digits, nil, len(digits)-1-scale, scale)
}

// appendBinaryNumericText parses a number as numeric_in does: numeric's
// text output (digits, an optional sign and point, NaN, Infinity,
// -Infinity) and everything else numeric_in has accepted in every
// version since PostgreSQL 14: surrounding white space, a leading '+', an
// exponent ("1.5e-3", "1E+5"), "inf" and the other spellings of infinity
// in any case. What some versions only accept (white space after the 'e'
// in 15, underscores, "0x1F" in 16 and later) is an error here, as is a
// value whose display scale or weight numeric cannot store.
func appendBinaryNumericText(out []byte, v *records.Vec, i int) ([]byte, error) {
	s := v.Bytes(i)
	n, err := parseNumericText(s)
	if err != nil {
		return out, err
	}
	if n.special != 0 {
		return appendNumericHeader(out, 0, 0, n.special, 0), nil
	}
	out, err = appendNumeric(out, n.neg, n.intDigits, n.fracDigits, n.dweight, n.dscale)
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, quoteBadValue(s))
	}
	return out, nil
}

// numericText is a number parsed from its text form: its digits are
// intDigits then fracDigits, the first one of weight 10^dweight.
type numericText struct {
	special         uint16 // numericNaN, numericPInf, numericNInf or 0
	neg             bool
	intDigits       []byte
	fracDigits      []byte
	dweight, dscale int
}

// maxNumericExponent bounds the exponent as numeric_in does (INT_MAX/2),
// which keeps the weight arithmetic far from overflow.
const maxNumericExponent = math.MaxInt32 / 2

// numericSpecials are the words numeric_in reads, in its order:
// "Infinity" before "inf", so that "infinity" is one word and "infinit"
// is junk after "inf".
var numericSpecials = []struct {
	word string
	sign uint16
}{
	{"nan", numericNaN}, {"infinity", numericPInf}, {"+infinity", numericPInf}, {"-infinity", numericNInf},
	{"inf", numericPInf}, {"+inf", numericPInf}, {"-inf", numericNInf},
}

// parseNumericText splits a number's text as set_var_from_str does,
// computing the weight of its first digit and its display scale.
func parseNumericText(s []byte) (numericText, error) {
	var n numericText
	p := 0
	for p < len(s) && cIsSpace(s[p]) {
		p++
	}
	// A digit in the first two characters is a number, never a word: the
	// common case skips the words.
	word := !(p < len(s) && isASCIIDigit(s[p]) || p+1 < len(s) && isASCIIDigit(s[p+1]))
	for k := 0; word && k < len(numericSpecials); k++ {
		if sp := numericSpecials[k]; hasPrefixFold(s[p:], sp.word) {
			if !onlySpaces(s[p+len(sp.word):]) {
				return n, inputSyntaxError("numeric", s)
			}
			n.special = sp.sign
			return n, nil
		}
	}
	switch {
	case p < len(s) && s[p] == '+':
		p++
	case p < len(s) && s[p] == '-':
		n.neg = true
		p++
	}
	start := p
	for p < len(s) && isASCIIDigit(s[p]) {
		p++
	}
	n.intDigits = s[start:p]
	if p < len(s) && s[p] == '.' {
		p++
		start = p
		for p < len(s) && isASCIIDigit(s[p]) {
			p++
		}
		n.fracDigits = s[start:p]
	}
	if len(n.intDigits)+len(n.fracDigits) == 0 {
		return n, inputSyntaxError("numeric", s)
	}
	n.dweight = len(n.intDigits) - 1
	n.dscale = len(n.fracDigits)
	if p < len(s) && (s[p] == 'e' || s[p] == 'E') {
		p++
		eneg := false
		switch {
		case p < len(s) && s[p] == '+':
			p++
		case p < len(s) && s[p] == '-':
			eneg = true
			p++
		}
		if p == len(s) || !isASCIIDigit(s[p]) {
			return n, inputSyntaxError("numeric", s)
		}
		exp := 0
		for ; p < len(s) && isASCIIDigit(s[p]); p++ {
			exp = exp*10 + int(s[p]-'0')
			if exp >= maxNumericExponent {
				return n, fmt.Errorf("value overflows numeric format: %s", quoteBadValue(s))
			}
		}
		if eneg {
			exp = -exp
		}
		n.dweight += exp
		n.dscale = max(n.dscale-exp, 0)
	}
	if !onlySpaces(s[p:]) {
		return n, inputSyntaxError("numeric", s)
	}
	return n, nil
}

// cIsSpace is C's isspace in the C locale, which numeric_in skips.
func cIsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// isASCIIDigit is C's isdigit.
func isASCIIDigit(c byte) bool { return '0' <= c && c <= '9' }

// onlySpaces reports whether s is white space only: what numeric_in
// accepts after a number.
func onlySpaces(s []byte) bool {
	for _, c := range s {
		if !cIsSpace(c) {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether s starts with word (lower case ASCII),
// ignoring case as pg_strncasecmp does.
func hasPrefixFold(s []byte, word string) bool {
	if len(s) < len(word) {
		return false
	}
	for k := range len(word) {
		c := s[k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != word[k] {
			return false
		}
	}
	return true
}

// appendNumeric writes numeric's send form of the number whose decimal
// digits are a then b (leading zeros allowed), the first of weight
// 10^dweight, with display scale dscale (no digit lies beyond it). It
// groups the digits in base 10000 as numeric_in's set_var_from_str does
// and strips zero groups as make_result does, so that the server stores
// the value the text form would have given.
func appendNumeric(out []byte, neg bool, a, b []byte, dweight, dscale int) ([]byte, error) {
	if dscale < 0 || dscale > numericMaxScale {
		return out, errors.New("value overflows numeric format")
	}
	var weight int
	if dweight >= 0 {
		weight = (dweight+4)/4 - 1
	} else {
		weight = -((-dweight-1)/4 + 1)
	}
	// offset zeros before the first digit align it in its group.
	offset := (weight+1)*4 - (dweight + 1)
	nd := len(a) + len(b)
	groups := (nd + offset + 3) / 4
	head := len(out)
	out = append(out, 0, 0, 0, 0, 0, 0, 0, 0)
	start := len(out)
	pos := -offset
	for range groups {
		g := 0
		for range 4 {
			d := 0
			switch {
			case pos < 0 || pos >= nd:
			case pos < len(a):
				d = int(a[pos] - '0')
			default:
				d = int(b[pos-len(a)] - '0')
			}
			g = g*10 + d
			pos++
		}
		if g == 0 && len(out) == start {
			weight-- // a leading zero group
			continue
		}
		out = append(out, byte(g>>8), byte(g))
	}
	for len(out) > start && out[len(out)-1] == 0 && out[len(out)-2] == 0 {
		out = out[:len(out)-2]
	}
	ndigits := (len(out) - start) / 2
	if ndigits == 0 {
		weight, neg = 0, false
	}
	if weight < math.MinInt16 || weight > math.MaxInt16 || ndigits > math.MaxUint16 {
		return out[:head], errors.New("value overflows numeric format")
	}
	sign := uint16(numericPos)
	if neg {
		sign = numericNeg
	}
	putNumericHeader(out[head:start], ndigits, weight, sign, dscale)
	return out, nil
}

// appendNumericHeader appends a numeric header (for NaN and the
// infinities, the whole value).
func appendNumericHeader(out []byte, ndigits, weight int, sign uint16, dscale int) []byte {
	out = append(out, 0, 0, 0, 0, 0, 0, 0, 0)
	putNumericHeader(out[len(out)-8:], ndigits, weight, sign, dscale)
	return out
}

// putNumericHeader fills numeric's 8-byte header: digit count, weight,
// sign, display scale.
func putNumericHeader(h []byte, ndigits, weight int, sign uint16, dscale int) {
	binary.BigEndian.PutUint16(h[0:], uint16(ndigits))
	binary.BigEndian.PutUint16(h[2:], uint16(int16(weight)))
	binary.BigEndian.PutUint16(h[4:], sign)
	binary.BigEndian.PutUint16(h[6:], uint16(dscale))
}

// appendBinaryArray writes array_send's form of list value i: dimensions,
// a has-null flag, the element OID, one (length, lower bound 1) pair,
// then each element with its length word (-1 for NULL). An empty list is
// an array of zero dimensions, which is how '{}' is stored.
func appendBinaryArray(out []byte, l *records.ListVec, i int, oid uint32, elem BinaryEncoder) ([]byte, error) {
	if l == nil || i+1 >= len(l.Offsets) {
		return out, errors.New("list value without offsets")
	}
	lo, hi := int(l.Offsets[i]), int(l.Offsets[i+1])
	if lo < 0 || hi < lo {
		return out, fmt.Errorf("list value with offsets %d..%d", lo, hi)
	}
	if lo == hi {
		out = binary.BigEndian.AppendUint32(out, 0) // ndim
		out = binary.BigEndian.AppendUint32(out, 0) // no nulls
		return binary.BigEndian.AppendUint32(out, oid), nil
	}
	hasNull := uint32(0)
	for j := lo; j < hi; j++ {
		if l.Elem.IsNull(j) {
			hasNull = 1
			break
		}
	}
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, hasNull)
	out = binary.BigEndian.AppendUint32(out, oid)
	out = binary.BigEndian.AppendUint32(out, uint32(hi-lo))
	out = binary.BigEndian.AppendUint32(out, 1) // lower bound
	for j := lo; j < hi; j++ {
		if l.Elem.IsNull(j) {
			out = binary.BigEndian.AppendUint32(out, math.MaxUint32) // -1
			continue
		}
		var err error
		if out, err = appendBinaryValue(out, &l.Elem, j, elem); err != nil {
			return out, fmt.Errorf("element %d: %w", j-lo+1, err)
		}
	}
	return out, nil
}

// appendBinaryValue appends a non-null value with its length word.
func appendBinaryValue(out []byte, v *records.Vec, i int, enc BinaryEncoder) ([]byte, error) {
	at := len(out)
	out = append(out, 0, 0, 0, 0)
	out, err := enc(out, v, i)
	if err != nil {
		return out[:at], err
	}
	n := len(out) - at - 4
	if n > math.MaxInt32 {
		return out[:at], fmt.Errorf("value of %d bytes: a field holds 2 GiB at most", n)
	}
	binary.BigEndian.PutUint32(out[at:], uint32(n))
	return out, nil
}

// appendBinaryInt64Field appends a bigint field with its length word.
func AppendBinaryInt64Field(out []byte, x int64) []byte {
	out = binary.BigEndian.AppendUint32(out, 8)
	return binary.BigEndian.AppendUint64(out, uint64(x))
}

// appendBinaryInt4ArrayField appends an integer[] field with its length
// word: NULL for nil xs, '{}' for an empty one. The xs are column
// positions, far inside int32.
func AppendBinaryInt4ArrayField(out []byte, xs []int) []byte {
	if xs == nil {
		return appendBinaryNullField(out)
	}
	if len(xs) == 0 {
		out = binary.BigEndian.AppendUint32(out, 12)
		out = binary.BigEndian.AppendUint32(out, 0)
		out = binary.BigEndian.AppendUint32(out, 0)
		return binary.BigEndian.AppendUint32(out, pgtype.Int4OID)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(20+8*len(xs)))
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, 0)
	out = binary.BigEndian.AppendUint32(out, pgtype.Int4OID)
	out = binary.BigEndian.AppendUint32(out, uint32(len(xs)))
	out = binary.BigEndian.AppendUint32(out, 1)
	for _, x := range xs {
		out = binary.BigEndian.AppendUint32(out, 4)
		out = binary.BigEndian.AppendUint32(out, uint32(int32(x)))
	}
	return out
}

// appendBinaryTimestampField appends a timestamptz field with its length
// word; unixMicros is a clock reading (time.Now().UnixMicro()), far inside
// timestamptz's range.
func AppendBinaryTimestampField(out []byte, unixMicros int64) []byte {
	out = binary.BigEndian.AppendUint32(out, 8)
	return binary.BigEndian.AppendUint64(out, uint64(unixMicros-PGEpochMicros))
}

// appendBinaryNullField appends a NULL field.
func appendBinaryNullField(out []byte) []byte {
	return binary.BigEndian.AppendUint32(out, math.MaxUint32) // -1
}

// binaryHeader starts every COPY binary stream: the signature, the flags
// (no OIDs) and the length of the header extension (none).
const binaryHeader = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"

// binaryTrailer ends it: a field count of -1.
const binaryTrailer = "\xff\xff"

// binaryBufferSize is how much of the stream is built before it is handed
// to the connection: large enough that the per-chunk work is noise, small
// enough that a batch's whole stream is never in memory.
const binaryBufferSize = 256 << 10

// binaryRowReader streams a batch as one complete COPY binary stream, a
// chunk of rows at a time, as rowReader does for the text format. Unlike
// text, a value can fail to encode (a malformed uuid or number, an
// out-of-range date); Read then returns the error, which makes the COPY
// fail as a whole (pgconn sends CopyFail with its message).
type BinaryRowReader struct {
	B     *records.Batch
	Cols  []int // batch column of each COPY column, before the extras
	Enc   []BinaryEncoder
	Extra func(out []byte, row int) []byte // fields after the batch's, each with its length word, or nil
	// nExtra is how many fields extra appends.
	NExtra int
	rows   int64

	row     int
	started bool // the header is written
	done    bool // the trailer is written
	err     error
	buf     []byte
	off     int
}

// Read implements io.Reader.
func (r *BinaryRowReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.fill()
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// fill builds the next chunk of the stream, or records the error that
// ends it.
func (r *BinaryRowReader) fill() {
	r.buf, r.off = r.buf[:0], 0
	if !r.started {
		fields := len(r.Cols) + r.NExtra
		if len(r.Enc) != len(r.Cols) || fields > math.MaxInt16 || r.NExtra < 0 {
			r.err = fmt.Errorf("COPY of %d columns with %d encoders and %d extra fields", len(r.Cols), len(r.Enc), r.NExtra)
			return
		}
		if r.buf == nil {
			r.buf = make([]byte, 0, binaryBufferSize+binaryBufferSize/4)
		}
		r.buf = append(r.buf, binaryHeader...)
		r.started = true
	}
	for r.row < r.B.N && len(r.buf) < binaryBufferSize {
		var err error
		if r.buf, err = r.appendRow(r.buf, r.row); err != nil {
			r.buf, r.err = r.buf[:0], err
			return
		}
		r.row++
		r.rows++
	}
	if r.row >= r.B.N {
		r.buf = append(r.buf, binaryTrailer...)
		r.done = true
	}
}

// appendRow appends one tuple: the field count, each field (NULL for a
// null or unchanged value), then the extras.
func (r *BinaryRowReader) appendRow(out []byte, row int) ([]byte, error) {
	out = binary.BigEndian.AppendUint16(out, uint16(len(r.Cols)+r.NExtra))
	for k, ci := range r.Cols {
		if ci < 0 || ci >= len(r.B.Cols) {
			return out, fmt.Errorf("COPY column %d is batch column %d of %d", k, ci, len(r.B.Cols))
		}
		v := &r.B.Cols[ci]
		if v.IsNull(row) || (v.Unchanged != nil && row < len(v.Unchanged) && v.Unchanged[row]) {
			out = appendBinaryNullField(out)
			continue
		}
		var err error
		if out, err = appendBinaryValue(out, v, row, r.Enc[k]); err != nil {
			return out, fmt.Errorf("column %s, row %d of the batch: %w", r.columnName(ci), row+1, err)
		}
	}
	if r.Extra != nil {
		out = r.Extra(out, row)
	}
	return out, nil
}

// columnName names batch column ci for an error.
func (r *BinaryRowReader) columnName(ci int) string {
	if s := r.B.Schema; s != nil && ci < len(s.Columns) {
		return strconv.Quote(s.Columns[ci].Name)
	}
	return strconv.Itoa(ci + 1)
}

// copied is the number of rows read so far.
func (r *BinaryRowReader) Copied() int64 { return r.rows }
