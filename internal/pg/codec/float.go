package codec

import (
	"encoding/binary"
	"math"
	"strconv"
	"unsafe"

	"github.com/sluice-dev/sluice/internal/records"
)

// real and double precision: IEEE bits in binary, the shortest exact
// text otherwise.

// appendBinaryFloat4 writes the IEEE bits, so that NaN, the infinities
// and -0 need no spelling.
func appendBinaryFloat4(out []byte, v *records.Vec, i int) ([]byte, error) {
	return binary.BigEndian.AppendUint32(out, math.Float32bits(v.F32[i])), nil
}

// appendBinaryFloat8 writes the IEEE bits, as appendBinaryFloat4 does.
func appendBinaryFloat8(out []byte, v *records.Vec, i int) ([]byte, error) {
	return binary.BigEndian.AppendUint64(out, math.Float64bits(v.F64[i])), nil
}

func appendFloatText(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	// The shortest text that reads back as the same float.
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
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
