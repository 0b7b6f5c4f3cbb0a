package codec

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestTwosDigits checks the 128-bit path of twosDigits, which both
// encoders of a FIXED_LEN DECIMAL use, against math/big for every width
// and the values at the ends of each.
func TestTwosDigits(t *testing.T) {
	want := func(b []byte) (bool, string) {
		n := new(big.Int).SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		return n.Sign() < 0, new(big.Int).Abs(n).String()
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var cases [][]byte
	for width := 0; width <= 17; width++ {
		for _, fill := range []byte{0x00, 0xFF, 0x7F, 0x80} {
			b := make([]byte, width)
			for i := range b {
				b[i] = fill
			}
			// The largest and the smallest value of the width: 7FFF...
			// and 8000...
			switch fill {
			case 0x7F:
				for i := 1; i < width; i++ {
					b[i] = 0xFF
				}
			case 0x80:
				for i := 1; i < width; i++ {
					b[i] = 0x00
				}
			}
			cases = append(cases, b)
		}
		for range 200 {
			b := make([]byte, width)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			cases = append(cases, b)
		}
	}
	for _, b := range cases {
		var buf [40]byte
		neg, digits := twosDigits(&buf, b)
		wneg, wdigits := want(b)
		if neg != wneg || string(digits) != wdigits {
			t.Errorf("twosDigits(%x) = %v %s, want %v %s", b, neg, digits, wneg, wdigits)
		}
	}
}
