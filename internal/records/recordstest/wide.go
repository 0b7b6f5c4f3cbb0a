// Package recordstest builds record batches for tests and benchmarks of
// the packages that move them.
package recordstest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
)

var (
	text    = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalString, Name: "STRING"}
	tstz    = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}
	textArr = records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &text, Name: "LIST<STRING>"}
)

// WideSchema is the 11-column table of the benchmarks (bigint, int, text,
// numeric(12,2), char(3), bool, jsonb, uuid, text[], two timestamptz):
// what a typical orders table maps to (SPEC §5).
var WideSchema = &records.Schema{
	Columns: []records.Column{
		{Name: "id", Type: records.ParquetType{Physical: records.PhysicalInt64, Name: "INT64"}, SourceType: "bigint"},
		{Name: "quantity", Type: records.ParquetType{Physical: records.PhysicalInt32, Name: "INT32"}, SourceType: "integer", Nullable: true},
		{Name: "name", Type: text, SourceType: "text", Nullable: true},
		{Name: "amount", Type: records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalDecimal, Precision: 12, Scale: 2, Name: "DECIMAL(12,2)"}, SourceType: "numeric(12,2)", Nullable: true},
		{Name: "currency", Type: text, SourceType: "character(3)", Nullable: true},
		{Name: "paid", Type: records.ParquetType{Physical: records.PhysicalBoolean, Name: "BOOLEAN"}, SourceType: "boolean", Nullable: true},
		{Name: "attrs", Type: records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalJSON, Name: "JSON"}, SourceType: "jsonb", Nullable: true},
		{Name: "ref", Type: text, SourceType: "uuid", Nullable: true},
		{Name: "tags", Type: textArr, SourceType: "text[]", Nullable: true},
		{Name: "created_at", Type: tstz, SourceType: "timestamp with time zone", Nullable: true},
		{Name: "updated_at", Type: tstz, SourceType: "timestamp with time zone", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

var words = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa"}

// WideBatch builds n rows of WideSchema with ids from first; rng makes the
// values vary as real data does (nulls included).
func WideBatch(rng *rand.Rand, first int64, n int) *records.Batch {
	b := records.NewBatch(WideSchema, n)
	c := b.Cols
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	var scratch []byte
	for i := range n {
		c[0].AppendInt64(first + int64(i))
		c[1].AppendInt32(int32(rng.IntN(1000)))
		scratch = fmt.Appendf(scratch[:0], "%s %s %d", words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000))
		c[2].AppendBytes(scratch)
		if rng.IntN(20) == 0 {
			c[3].AppendNull()
		} else {
			c[3].AppendInt64(rng.Int64N(1_000_000_00))
		}
		c[4].AppendString([]string{"EUR", "USD", "GBP", "JPY"}[rng.IntN(4)])
		c[5].AppendBool(rng.IntN(2) == 0)
		scratch = fmt.Appendf(scratch[:0], `{"source": "%s", "score": %d, "flags": [%d, %d]}`, words[rng.IntN(len(words))], rng.IntN(1000), rng.IntN(9), rng.IntN(9))
		c[6].AppendBytes(scratch)
		u, v := rng.Uint64(), rng.Uint64()
		scratch = fmt.Appendf(scratch[:0], "%08x-%04x-4%03x-a%03x-%012x", u>>32, (u>>16)&0xffff, u&0xfff, v>>52, v&0xffffffffffff)
		c[7].AppendBytes(scratch)
		for range rng.IntN(4) {
			c[8].List.Elem.AppendString(words[rng.IntN(len(words))])
		}
		c[8].EndList()
		t := base + rng.Int64N(365*24*3600*1_000_000)
		c[9].AppendInt64(t)
		if rng.IntN(10) == 0 {
			c[10].AppendNull()
		} else {
			c[10].AppendInt64(t + rng.Int64N(3600*1_000_000))
		}
		b.N++
	}
	return b
}
