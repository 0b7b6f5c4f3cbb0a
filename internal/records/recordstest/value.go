package recordstest

import (
	"math/big"
	"slices"

	"github.com/sluice-dev/sluice/internal/records"
)

// Value is value i of a vector as a plain Go value: nil for NULL,
// strings for STRING and JSON, the unscaled integer as a string for a
// FIXED_LEN decimal, []any for a list.
func Value(v *records.Vec, t records.ParquetType, i int) any {
	if v.IsNull(i) {
		return nil
	}
	switch t.Physical {
	case records.PhysicalBoolean:
		return v.Bool[i]
	case records.PhysicalInt32:
		return v.I32[i]
	case records.PhysicalInt64:
		return v.I64[i]
	case records.PhysicalFloat:
		return v.F32[i]
	case records.PhysicalDouble:
		return v.F64[i]
	case records.PhysicalFixedLenByteArray:
		return fixedDecimal(v.Bytes(i))
	case records.PhysicalGroup:
		out := []any{}
		for j := v.List.Offsets[i]; j < v.List.Offsets[i+1]; j++ {
			out = append(out, Value(&v.List.Elem, *t.Element, int(j)))
		}
		return out
	}
	if t.Logical == records.LogicalNone {
		return slices.Clone(v.Bytes(i))
	}
	return string(v.Bytes(i))
}

// fixedDecimal shows a FIXED_LEN_BYTE_ARRAY decimal as its unscaled
// integer.
func fixedDecimal(b []byte) string {
	x := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return x.String()
}
