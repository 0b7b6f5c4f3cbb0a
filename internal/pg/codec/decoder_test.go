package codec

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/records"
)

// TestDecodeMalformedValues feeds decoders values no server sends.
func TestDecodeMalformedValues(t *testing.T) {
	u16 := func(xs ...int) []byte {
		var out []byte
		for _, x := range xs {
			out = binary.BigEndian.AppendUint16(out, uint16(x))
		}
		return out
	}
	u32 := func(xs ...int) []byte {
		var out []byte
		for _, x := range xs {
			out = binary.BigEndian.AppendUint32(out, uint32(x))
		}
		return out
	}
	dec := &Decoder{kind: decNumeric64, precision: 18, scale: 4}
	list := &Decoder{kind: decList, elem: &Decoder{kind: decInt4}}
	cases := []struct {
		name string
		d    *Decoder
		val  []byte
		want string
	}{
		{"numeric short", dec, u16(1, 0), "shorter than its header"},
		{"numeric digits count", dec, u16(2, 0, 0, 0, 1), "with 2 digits"},
		{"numeric negative count", dec, u16(-1, 0, 0, 0), "with -1 digits"},
		{"numeric digit", dec, u16(1, 0, 0, 0, 10000), "numeric digit 10000"},
		{"numeric sign", dec, u16(1, 0, 0x1234, 0, 1), "sign 0x1234"},
		{"numeric dscale", dec, u16(1, 0, 0, 0x8000, 1), "display scale"},
		{"numeric NaN digits", dec, u16(1, 0, 0xC000, 0, 1), "special numeric value with digits"},
		{"array short", list, u32(1, 0), "shorter than its header"},
		{"array dims", list, u32(7, 0, 23), "7 dimensions"},
		{"array flags", list, u32(1, 2, 23, 1, 1), "flags"},
		{"array dim length", list, u32(1, 0, 23, -1, 1), "dimension of length -1"},
		{"array too many elements", list, u32(1, 0, 23, 1<<30, 1), "shorter than its elements"},
		{"array overflowing dims", list, u32(2, 0, 23, 1<<16, 1, 1<<16, 1), "shorter than its elements"},
		{"array element length", list, u32(1, 0, 23, 1, 1, -2), "element of length -2"},
		{"array element too long", list, u32(1, 0, 23, 1, 1, 100), "longer than the array"},
		{"array trailing", list, u32(1, 0, 23, 1, 1, 4, 5, 9), "trailing"},
		{"array element", list, u32(1, 0, 23, 1, 1, 2, 5), "integer value of 2 bytes"},
		{"jsonb version", &Decoder{kind: decJSONB}, []byte{2, '1'}, "version"},
		{"uuid", &Decoder{kind: decUUID}, []byte{1, 2}, "uuid value of 2 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pt := records.ParquetType{Physical: records.PhysicalInt64}
			if c.d.kind == decList {
				pt = records.ParquetType{Physical: records.PhysicalGroup, Element: &records.ParquetType{Physical: records.PhysicalInt32}}
			} else if c.d.kind != decNumeric64 {
				pt = records.ParquetType{Physical: records.PhysicalByteArray}
			}
			b := records.NewBatch(&records.Schema{Columns: []records.Column{{Name: "c", Type: pt}}}, 1)
			var nulled int
			err := c.d.decode(&b.Cols[0], c.val, &nulled)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got error %v, want %q", err, c.want)
			}
		})
	}
}
