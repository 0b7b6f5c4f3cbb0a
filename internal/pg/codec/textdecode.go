package codec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/records"
)

// This file decodes PostgreSQL's text form of a value (what logical
// replication sends) into the Parquet type the mapping gives its column,
// so that a row streamed by CDC has the same values as the row read by a
// binary COPY snapshot (copy.go).
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
// LIST column) is appended as NULL and counted, as copy.go does.
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
		// As copy.go: a timestamp of PostgreSQL's last 30 years (beyond
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

// parseTextInt parses a decimal integer within [lo, hi].
func parseTextInt(s []byte, lo, hi int64) (int64, bool) {
	neg := false
	i := 0
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		i = 1
	}
	if i == len(s) {
		return 0, false
	}
	// Accumulate the magnitude as unsigned, so that MinInt64 parses.
	var u uint64
	limit := uint64(hi)
	if neg {
		limit = uint64(-(lo + 1)) + 1
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (limit-uint64(c-'0'))/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		return -int64(u-1) - 1, true
	}
	return int64(u), true
}

// parseTextFloat parses float text: digits, NaN, Infinity and -Infinity.
func parseTextFloat(s []byte, bitSize int) (float64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	for _, c := range s {
		// strconv also takes hexadecimal floats and underscores, which
		// PostgreSQL never prints.
		if c == '_' || c == 'x' || c == 'X' || c == 'p' || c == 'P' {
			return 0, false
		}
	}
	// strconv does not keep the string (its error does, and is dropped),
	// so it may look at s without a copy.
	x, err := strconv.ParseFloat(unsafe.String(&s[0], len(s)), bitSize)
	if err != nil {
		return 0, false
	}
	return x, true
}

// isInfinityText recognizes the text of an infinite date or timestamp.
func isInfinityText(s []byte) bool {
	return string(s) == "infinity" || string(s) == "-infinity"
}

// decodeDecimal decodes numeric text ("-12.30", "NaN", "Infinity") into
// the unscaled integer of a DECIMAL(precision, scale).
func (d *textDecoder) decodeDecimal(v *records.Vec, s []byte, nulled *int) error {
	switch string(s) {
	case "NaN", "Infinity", "-Infinity":
		v.AppendNull()
		*nulled++
		return nil
	}
	neg := false
	i := 0
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		i++
	}
	var mag u128
	digits := 0 // significant digits accumulated in mag
	frac := -1  // digits after the point, -1 before the point
	overflow := false
	sawDigit := false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			if frac >= 0 {
				frac++
				if frac > d.scale {
					// numeric_out prints the column's scale; more
					// digits are only acceptable as zeros.
					if c != '0' {
						overflow = true
					}
					continue
				}
			}
			if digits == 0 && c == '0' {
				continue
			}
			digits++
			if digits > MaxDecimalPrecision {
				overflow = true
				continue
			}
			mag, _ = mag.mul(10)
			mag, _ = mag.add(uint64(c - '0'))
		case c == '.' && frac < 0:
			frac = 0
		default:
			return textError("numeric", s)
		}
	}
	if !sawDigit {
		return textError("numeric", s)
	}
	pad := d.scale - max(frac, 0)
	if !overflow && digits > 0 {
		if digits+pad > MaxDecimalPrecision {
			overflow = true
		} else {
			mag, _ = mag.mulPow10(pad)
		}
	}
	if overflow || !mag.less(pow10u128[d.precision]) {
		// More digits than the column holds: PostgreSQL enforces the
		// precision, so only a value of a domain or a typmod-less
		// expression gets here; as copy.go, it is not silently cut.
		v.AppendNull()
		*nulled++
		return nil
	}
	phys := records.PhysicalFixedLenByteArray
	switch d.kind {
	case textDecimal32:
		phys = records.PhysicalInt32
	case textDecimal64:
		phys = records.PhysicalInt64
	}
	return appendUnscaled(v, phys, d.width, neg, mag)
}

// decodeBytea decodes bytea's hex format (\x0a1b...) or, should the
// session print it, its escape format (\\ and \ooo octal escapes).
func decodeBytea(v *records.Vec, s []byte) error {
	if len(v.Data)+len(s) > maxArenaBytes {
		return errArenaFull
	}
	start := len(v.Data)
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
		h := s[2:]
		if len(h)%2 != 0 {
			return textError("bytea", s)
		}
		for i := 0; i < len(h); i += 2 {
			hi, ok1 := unhexDigit(h[i])
			lo, ok2 := unhexDigit(h[i+1])
			if !ok1 || !ok2 {
				v.Data = v.Data[:start]
				return textError("bytea", s)
			}
			v.Data = append(v.Data, hi<<4|lo)
		}
	} else {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c != '\\' {
				v.Data = append(v.Data, c)
				continue
			}
			switch {
			case i+1 < len(s) && s[i+1] == '\\':
				v.Data = append(v.Data, '\\')
				i++
			case i+3 < len(s) && isOctalDigit(s[i+1]) && s[i+1] <= '3' && isOctalDigit(s[i+2]) && isOctalDigit(s[i+3]):
				v.Data = append(v.Data, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
				i += 3
			default:
				v.Data = v.Data[:start]
				return textError("bytea", s)
			}
		}
	}
	endBytes(v)
	return nil
}

func unhexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isOctalDigit(c byte) bool { return '0' <= c && c <= '7' }

// Date and time ranges: PostgreSQL's dates run from 4713 BC to 5874897
// AD; nothing outside (or a year of more digits) is a value it prints.
const (
	minTextYear = -4713
	maxTextYear = 5874898
)

// parseTextDate parses "2026-11-21" or "0044-03-15 BC" into days since
// 1970-01-01.
func parseTextDate(s []byte) (int64, bool) {
	s, bc := cutTextBC(s)
	days, rest, ok := parseTextYMD(s, bc)
	if !ok || len(rest) != 0 {
		return 0, false
	}
	return days, true
}

// cutTextBC removes a trailing " BC".
func cutTextBC(s []byte) ([]byte, bool) {
	if n := len(s); n > 3 && string(s[n-3:]) == " BC" {
		return s[:n-3], true
	}
	return s, false
}

// parseTextYMD parses "YYYY-MM-DD" (four or more year digits) at the start of
// s into days since 1970-01-01 of the proleptic Gregorian calendar (1 BC
// is year 0), and returns what follows.
func parseTextYMD(s []byte, bc bool) (days int64, rest []byte, ok bool) {
	i := 0
	var year int64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		year = year*10 + int64(s[i]-'0')
		i++
		if i > 7 {
			return 0, nil, false
		}
	}
	if i < 4 || len(s) < i+6 || s[i] != '-' || s[i+3] != '-' {
		return 0, nil, false
	}
	month, ok1 := textTwoDigits(s[i+1:])
	day, ok2 := textTwoDigits(s[i+4:])
	if !ok1 || !ok2 {
		return 0, nil, false
	}
	if bc {
		if year == 0 {
			return 0, nil, false
		}
		year = 1 - year
	}
	if year < minTextYear || year > maxTextYear || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) {
		return 0, nil, false
	}
	return daysFromCivil(year, month, day), s[i+6:], true
}

func textTwoDigits(s []byte) (int64, bool) {
	if len(s) < 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int64(s[0]-'0')*10 + int64(s[1]-'0'), true
}

func daysInMonth(year, month int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts the days from 1970-01-01 to y-m-d (Howard
// Hinnant's algorithm, exact for every proleptic Gregorian date).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

const (
	microsPerSecond = 1_000_000
	microsPerDay    = 86400 * microsPerSecond
)

// parseTextTime parses "HH:MM:SS[.ffffff]" (24:00:00 included) into
// microseconds since midnight.
func parseTextTime(s []byte) (int64, bool) {
	us, rest, ok := parseTextHMS(s)
	if !ok || len(rest) != 0 {
		return 0, false
	}
	return us, true
}

func parseTextHMS(s []byte) (us int64, rest []byte, ok bool) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' {
		return 0, nil, false
	}
	h, ok1 := textTwoDigits(s)
	m, ok2 := textTwoDigits(s[3:])
	sec, ok3 := textTwoDigits(s[6:])
	if !ok1 || !ok2 || !ok3 || h > 24 || m > 59 || sec > 60 {
		return 0, nil, false
	}
	us = ((h*60+m)*60 + sec) * microsPerSecond
	i := 8
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		var frac int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start >= 6 {
				return 0, nil, false
			}
			frac = frac*10 + int64(s[i]-'0')
			i++
		}
		if i == start {
			return 0, nil, false
		}
		for n := i - start; n < 6; n++ {
			frac *= 10
		}
		us += frac
	}
	if us > microsPerDay {
		return 0, nil, false
	}
	return us, s[i:], true
}

// parseTextTimestamp parses "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]"
// into microseconds since 2000-01-01 (PostgreSQL's epoch, in which every
// timestamp it holds fits in an int64), UTC when tz is set.
func parseTextTimestamp(s []byte, tz bool) (int64, bool) {
	s, bc := cutTextBC(s)
	days, rest, ok := parseTextYMD(s, bc)
	if !ok || len(rest) < 1 || rest[0] != ' ' {
		return 0, false
	}
	tod, rest, ok := parseTextHMS(rest[1:])
	if !ok {
		return 0, false
	}
	var offset int64 // seconds east of UTC
	if tz {
		if offset, ok = parseTextOffset(rest); !ok {
			return 0, false
		}
	} else if len(rest) != 0 {
		return 0, false
	}
	days -= pgEpochDays
	if days > maxTimestampDays || days < -maxTimestampDays {
		return 0, false
	}
	return days*microsPerDay + tod - offset*microsPerSecond, true
}

// maxTimestampDays bounds the days (from 2000-01-01) of a timestamp, far
// beyond PostgreSQL's 294276 AD, so that adding the time of day and an
// offset (less than two days together) cannot overflow.
const maxTimestampDays = math.MaxInt64/microsPerDay - 2

// parseTextOffset parses a time zone offset: +HH, +HH:MM or +HH:MM:SS.
func parseTextOffset(s []byte) (int64, bool) {
	if len(s) < 3 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	h, ok := textTwoDigits(s[1:])
	if !ok {
		return 0, false
	}
	secs := h * 3600
	rest := s[3:]
	for _, mult := range []int64{60, 1} {
		if len(rest) == 0 {
			break
		}
		if rest[0] != ':' {
			return 0, false
		}
		n, ok := textTwoDigits(rest[1:])
		if !ok || n > 59 {
			return 0, false
		}
		secs += n * mult
		rest = rest[3:]
	}
	if len(rest) != 0 || h > 15 {
		return 0, false
	}
	if s[0] == '-' {
		secs = -secs
	}
	return secs, true
}

// errTextMultiDim marks an array value of more than one dimension.
var errTextMultiDim = errors.New("multi-dimensional array")

// decodeList decodes an array's text form, "{1,NULL,"a b","q\"x"}",
// optionally preceded by its bounds ("[0:2]={...}"), into a list. A
// multi-dimensional value becomes NULL and is counted, as copy.go does.
func (d *textDecoder) decodeList(v *records.Vec, s []byte, nulled *int) error {
	if len(s) > 0 && s[0] == '[' {
		// Bounds decoration, printed when a lower bound is not 1; the
		// list keeps no lower bound. More than one bound pair is more
		// than one dimension, found below.
		eq := -1
		for i, c := range s {
			if c == '=' {
				eq = i
				break
			}
			if c == '{' || c == '"' {
				break
			}
		}
		if eq < 0 {
			return textError("array", s)
		}
		s = s[eq+1:]
	}
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return textError("array", s)
	}
	elems := &v.List.Elem
	mark := markVec(elems)
	err := d.scanElements(s[1:len(s)-1], func(val []byte, null bool) error {
		if null {
			elems.AppendNull()
			return nil
		}
		return d.elem.decode(elems, val, nulled)
	})
	if errors.Is(err, errTextMultiDim) {
		mark.restore(elems)
		if !wellFormedArrayText(s) {
			return textError("array", s)
		}
		v.AppendNull()
		*nulled++
		return nil
	}
	if err != nil {
		mark.restore(elems)
		return fmt.Errorf("array element: %w", err)
	}
	v.EndList()
	return nil
}

// scanElements calls fn with each element of the inside of an array's
// braces, unescaped (null reports an unquoted NULL).
func (d *textDecoder) scanElements(s []byte, fn func(val []byte, null bool) error) error {
	if len(s) == 0 {
		return nil
	}
	i := 0
	for {
		// One element, then a delimiter or the end.
		for i < len(s) && isArraySpace(s[i]) {
			i++
		}
		if i < len(s) && s[i] == '{' {
			return errTextMultiDim
		}
		d.buf = d.buf[:0]
		quoted := false
		if i < len(s) && s[i] == '"' {
			quoted = true
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				i++
				if c == '\\' {
					if i == len(s) {
						return errors.New("array element ends in a backslash")
					}
					d.buf = append(d.buf, s[i])
					i++
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				d.buf = append(d.buf, c)
			}
			if !closed {
				return errors.New("unterminated quoted array element")
			}
			for i < len(s) && isArraySpace(s[i]) {
				i++
			}
		} else {
			// Unquoted: up to the delimiter, backslash escapes allowed,
			// surrounding white space not part of the value.
			lastSignificant := 0
			for i < len(s) && s[i] != d.delim {
				c := s[i]
				i++
				switch c {
				case '"', '{', '}':
					return fmt.Errorf("unexpected %q in an array element", c)
				case '\\':
					if i == len(s) {
						return errors.New("array element ends in a backslash")
					}
					d.buf = append(d.buf, s[i])
					i++
					lastSignificant = len(d.buf)
					continue
				}
				d.buf = append(d.buf, c)
				if !isArraySpace(c) {
					lastSignificant = len(d.buf)
				}
			}
			d.buf = d.buf[:lastSignificant]
			if len(d.buf) == 0 {
				return errors.New("empty unquoted array element")
			}
		}
		null := !quoted && len(d.buf) == 4 && (string(d.buf) == "NULL" || equalFoldASCII(d.buf, "null"))
		if err := fn(d.buf, null); err != nil {
			return err
		}
		if i == len(s) {
			return nil
		}
		if s[i] != d.delim {
			return fmt.Errorf("unexpected %q after an array element", s[i])
		}
		i++
	}
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// wellFormedArrayText checks the braces and quotes of a multi-dimensional
// array's text balance, so that garbage is an error and not a NULL.
func wellFormedArrayText(s []byte) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			if i >= len(s) {
				return false
			}
		case '{':
			depth++
			if depth > maxArrayDims {
				return false
			}
		case '}':
			depth--
			if depth < 0 || depth == 0 && i != len(s)-1 {
				return false
			}
		}
	}
	return depth == 0
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

// decodeColumn decodes the text form s of a batch column's value,
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
