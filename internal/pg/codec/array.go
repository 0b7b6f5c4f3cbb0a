package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/sluice-dev/sluice/internal/records"
)

// One-dimensional arrays (LIST): the binary array and its exact text
// form, the text form's elements, and both COPY forms of a list.

// maxArrayDims is PostgreSQL's MAXDIM.
const maxArrayDims = 6

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

// IsBoxArray reports whether SQL type typ is box[].
func IsBoxArray(typ string) bool {
	p, ok := parseSourceType(typ)
	return ok && p.base == "box" && p.arrays == 1
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

// appendArrayText appends the text form of a binary array: its bounds
// when one is not 1, then the elements in nested braces, each quoted
// (which the input of any element type accepts).
func (d *Decoder) appendArrayText(dst, b []byte) ([]byte, error) {
	if len(b) < 12 {
		return dst, errors.New("array value shorter than its header")
	}
	ndim := int(int32(binary.BigEndian.Uint32(b)))
	if ndim < 0 || ndim > maxArrayDims || len(b) < 12+8*ndim {
		return dst, fmt.Errorf("array of %d dimensions", ndim)
	}
	if ndim == 0 {
		return append(dst, "{}"...), nil
	}
	var dims, lbs [maxArrayDims]int
	bounds := false
	for i := range ndim {
		dims[i] = int(int32(binary.BigEndian.Uint32(b[12+8*i:])))
		lbs[i] = int(int32(binary.BigEndian.Uint32(b[16+8*i:])))
		if dims[i] < 0 {
			return dst, fmt.Errorf("array dimension of length %d", dims[i])
		}
		bounds = bounds || lbs[i] != 1
	}
	if bounds {
		for i := range ndim {
			dst = append(dst, '[')
			dst = strconv.AppendInt(dst, int64(lbs[i]), 10)
			dst = append(dst, ':')
			dst = strconv.AppendInt(dst, int64(lbs[i]+dims[i]-1), 10)
			dst = append(dst, ']')
		}
		dst = append(dst, '=')
	}
	p := 12 + 8*ndim
	var err error
	dst, p, err = d.appendDimText(dst, b, p, dims[:ndim])
	if err != nil {
		return dst, err
	}
	if p != len(b) {
		return dst, errors.New("array value with trailing bytes")
	}
	return dst, nil
}

// appendDimText appends the elements of one dimension (dims[0] of them,
// each an array of the remaining dimensions) starting at p.
func (d *Decoder) appendDimText(dst, b []byte, p int, dims []int) ([]byte, int, error) {
	dst = append(dst, '{')
	for i := range dims[0] {
		if i > 0 {
			dst = append(dst, ',')
		}
		if len(dims) > 1 {
			var err error
			if dst, p, err = d.appendDimText(dst, b, p, dims[1:]); err != nil {
				return dst, p, err
			}
			continue
		}
		n, err := elemLen(b, p)
		if err != nil {
			return dst, p, err
		}
		p += 4
		if n < 0 {
			dst = append(dst, "NULL"...)
			continue
		}
		start := len(dst)
		if dst, err = d.elem.appendText(dst, b[p:p+n]); err != nil {
			return dst, p, fmt.Errorf("array element: %w", err)
		}
		dst = quoteArrayElem(dst, start)
		p += n
	}
	return append(dst, '}'), p, nil
}

// quoteArrayElem quotes the element text dst[start:] in place, escaping
// its quotes and backslashes.
func quoteArrayElem(dst []byte, start int) []byte {
	extra := 2
	for _, c := range dst[start:] {
		if c == '"' || c == '\\' {
			extra++
		}
	}
	n := len(dst)
	for range extra {
		dst = append(dst, 0)
	}
	w := len(dst) - 1
	dst[w] = '"'
	w--
	for r := n - 1; r >= start; r-- {
		c := dst[r]
		dst[w] = c
		w--
		if c == '"' || c == '\\' {
			dst[w] = '\\'
			w--
		}
	}
	dst[w] = '"'
	return dst
}

// errTextMultiDim marks an array value of more than one dimension.
var errTextMultiDim = errors.New("multi-dimensional array")

// decodeList decodes an array's text form, "{1,NULL,"a b","q\"x"}",
// optionally preceded by its bounds ("[0:2]={...}"), into a list. A
// multi-dimensional value becomes NULL and is counted, as the decoder of binary arrays does.
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
