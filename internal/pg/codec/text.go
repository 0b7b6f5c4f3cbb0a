package codec

import "github.com/sluice-dev/sluice/internal/records"

// text, bytea, uuid and json: the forms that are bytes, hex or both.

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

// appendBytea writes bytea's hex form.
func appendBytea(out []byte, b []byte) []byte {
	out = append(out, '\\', 'x')
	for _, c := range b {
		out = append(out, hexDigits[c>>4], hexDigits[c&15])
	}
	return out
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
