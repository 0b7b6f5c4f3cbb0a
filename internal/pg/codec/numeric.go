package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"

	"github.com/sluice-dev/sluice/internal/records"
)

// numeric, and the DECIMAL it maps to: the binary form (base-10000
// digits) and the text form, decoded into an unscaled 128-bit integer
// and encoded from one, with the exact text numeric_out prints.

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

// NumericEqual reports whether two binary numerics hold the same value:
// PostgreSQL stores numerics without leading or trailing zero digits, so
// they are equal when all but their display scales are.
func NumericEqual(a, b []byte) bool {
	if len(a) < 8 || len(b) < 8 {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(a[:6], b[:6]) && bytes.Equal(a[8:], b[8:])
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

// numericMaxScale is the largest display scale numeric's header holds (14
// bits); numeric_recv refuses more.
const numericMaxScale = 0x3FFF

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
		// expression gets here; as in the binary decoder, it is not silently cut.
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
