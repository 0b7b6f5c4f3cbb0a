package recordstest

import (
	"encoding/hex"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/records"
)

// Render is value i of v, of Parquet type t, as tests compare values:
// NULL, true/false, decimal integers (a DECIMAL's unscaled value), the
// shortest float, bytes in hex, strings as they are, lists as [a,b].
func Render(v *records.Vec, t records.ParquetType, i int) string {
	if v.IsNull(i) {
		return "NULL"
	}
	switch t.Physical {
	case records.PhysicalBoolean:
		return strconv.FormatBool(v.Bool[i])
	case records.PhysicalInt32:
		return strconv.FormatInt(int64(v.I32[i]), 10)
	case records.PhysicalInt64:
		return strconv.FormatInt(v.I64[i], 10)
	case records.PhysicalFloat:
		return strconv.FormatFloat(float64(v.F32[i]), 'g', -1, 32)
	case records.PhysicalDouble:
		switch f := v.F64[i]; {
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		return strconv.FormatFloat(v.F64[i], 'g', -1, 64)
	case records.PhysicalFixedLenByteArray:
		// A big-endian two's complement unscaled decimal.
		b := v.Bytes(i)
		n := new(big.Int).SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		return n.String()
	case records.PhysicalGroup:
		var parts []string
		for j := v.List.Offsets[i]; j < v.List.Offsets[i+1]; j++ {
			parts = append(parts, Render(&v.List.Elem, *t.Element, int(j)))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	if t.Logical == records.LogicalNone {
		return hex.EncodeToString(v.Bytes(i))
	}
	return string(v.Bytes(i))
}

// RenderRows renders the given rows of b (the first n columns), one
// string each, the columns' Render joined by " | ".
func RenderRows(b *records.Batch, rows []int32, n int) []string {
	var out []string
	for _, r := range rows {
		var parts []string
		for c := range n {
			parts = append(parts, Render(&b.Cols[c], b.Schema.Columns[c].Type, int(r)))
		}
		out = append(out, strings.Join(parts, " | "))
	}
	return out
}

// AllRows is the row numbers of b, 0 to b.N-1, for RenderRows.
func AllRows(b *records.Batch) []int32 {
	rows := make([]int32, b.N)
	for i := range rows {
		rows[i] = int32(i)
	}
	return rows
}
