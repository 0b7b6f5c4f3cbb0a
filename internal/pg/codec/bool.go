package codec

import "github.com/sluice-dev/sluice/internal/records"

// boolean: decoded inline by the dispatchers (decoder.go,
// textdecoder.go); its binary COPY form here.

// appendBinaryBool writes boolsend's single byte.
func appendBinaryBool(out []byte, v *records.Vec, i int) ([]byte, error) {
	if v.Bool[i] {
		return append(out, 1), nil
	}
	return append(out, 0), nil
}
