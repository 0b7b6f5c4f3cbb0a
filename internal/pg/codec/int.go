package codec

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sluice-dev/sluice/internal/records"
)

// smallint, integer and bigint.

func appendInt(dst []byte, x int) []byte {
	if x >= 10 {
		dst = appendInt(dst, x/10)
	}
	return append(dst, byte('0'+x%10))
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
