package codec

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
)

// TestOutputTextMatchesServer: OutputTextEncoder writes what PostgreSQL's
// output function prints for the same value (what psql shows, and
// `SELECT value::text` for every type but boolean, whose cast to text
// says "true"), with DateStyle ISO and TimeZone UTC: the server is the
// oracle. Each value
// reaches the server in the input form TextEncoderFor writes.
func TestOutputTextMatchesServer(t *testing.T) {
	conn := pgtest.Connect(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 1; SET bytea_output = 'hex'"); err != nil {
		t.Fatal(err)
	}
	micros := func(y int, m time.Month, d, hh, mm, ss, us int) int64 {
		return time.Date(y, m, d, hh, mm, ss, us*1000, time.UTC).UnixMicro()
	}
	dec := func(p, s int) records.ParquetType {
		ph := records.PhysicalInt64
		if p <= 9 {
			ph = records.PhysicalInt32
		}
		return records.ParquetType{Physical: ph, Logical: records.LogicalDecimal, Precision: p, Scale: s, Name: "DECIMAL"}
	}
	list := func(e records.ParquetType) records.ParquetType {
		return records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &e, Name: "LIST"}
	}
	tests := []struct {
		sqlType string
		typ     records.ParquetType
		vals    []any
	}{
		{"integer", ParquetInt32, []any{int32(0), int32(-42), int32(math.MaxInt32)}},
		{"smallint", ParquetInt16, []any{int32(-7)}},
		{"bigint", ParquetInt64, []any{int64(math.MinInt64), int64(1234567890123)}},
		{"numeric(12,2)", dec(12, 2), []any{int64(1250), int64(-5), int64(0)}},
		{"numeric(5,0)", dec(5, 0), []any{int32(12345)}},
		{"numeric", ParquetString, []any{"3.14159265358979323846264338327950288", "NaN", "-0.000100"}},
		{"real", ParquetFloat, []any{float32(1234567), float32(123456), float32(0.1), float32(1e-5), float32(-0.0001), float32(math.Inf(1)), float32(math.NaN())}},
		{"double precision", ParquetDouble, []any{0.1, 1234567.0, 123456789012345.0, 1e15, 1e-5, 0.0001, 1.0 / 3, -2.5e300, math.Inf(-1), 0.0}},
		{"text", ParquetString, []any{"", "plain", "with \"quotes\" and \\ and\nnewline", "ünïcødé"}},
		{"character varying(10)", ParquetString, []any{"abc"}},
		{"uuid", ParquetString, []any{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}},
		{"boolean", ParquetBoolean, []any{true, false}},
		{"bytea", ParquetBytes, []any{[]byte{}, []byte{0, 1, 0xfe, 'a'}}},
		{"json", ParquetJSON, []any{`{"b": 1,  "a": [true, null]}`}},
		{"jsonb", ParquetJSON, []any{`{"a": [true, null], "b": 1}`}},
		{"date", ParquetDate, []any{int32(0), int32(19000), int32(-800000)}},
		{"time without time zone", ParquetTime, []any{int64(0), int64(3_723_000_000), int64(3_723_450_000), int64(86_399_999_999)}},
		{"timestamp without time zone", ParquetTimestamp, []any{micros(2026, 1, 2, 3, 4, 5, 0), micros(2026, 1, 2, 3, 4, 5, 120000), micros(1, 1, 1, 0, 0, 0, 1), micros(0, 6, 1, 12, 0, 0, 0)}},
		{"timestamp with time zone", ParquetTimestampTZ, []any{micros(2026, 12, 7, 13, 18, 54, 0), micros(1999, 12, 31, 23, 59, 59, 999999), micros(-100, 3, 1, 0, 0, 0, 500000)}},
		{"integer[]", list(ParquetInt32), []any{[]any{int32(1), nil, int32(3)}, []any{}}},
		{"text[]", list(ParquetString), []any{[]any{"a", "b c", "", "NULL", "null", `q"uote`, `back\slash`, "{brace}", "x,y", nil}}},
		{"double precision[]", list(ParquetDouble), []any{[]any{1234567.0, 0.5}}},
		{"timestamp with time zone[]", list(ParquetTimestampTZ), []any{[]any{micros(2026, 1, 1, 0, 0, 0, 0), micros(2026, 1, 1, 0, 0, 0, 10)}}},
		{"numeric(12,2)[]", list(dec(12, 2)), []any{[]any{int64(100), int64(-1)}}},
		{"uuid[]", list(ParquetString), []any{[]any{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}}},
		{"boolean[]", list(ParquetBoolean), []any{[]any{true, false}}},
		{"bytea[]", list(ParquetBytes), []any{[]any{[]byte{1, 2}}}},
		{"jsonb[]", list(ParquetJSON), []any{[]any{`{"a": 1}`, `"s"`}}},
		{"interval", ParquetString, []any{"1 day 02:03:04"}},
	}
	for _, tt := range tests {
		t.Run(tt.sqlType, func(t *testing.T) {
			b := oneColumnBatch(t, tt.typ, tt.sqlType, tt.vals)
			in, err := ColumnTextEncoder(tt.typ, tt.sqlType)
			if err != nil {
				t.Fatal(err)
			}
			out, err := OutputTextEncoder(tt.typ, tt.sqlType)
			if err != nil {
				t.Fatal(err)
			}
			v := &b.Cols[0]
			for i := range b.N {
				input := string(in(nil, v, i))
				// The text result format is the type's output function.
				want := pgtest.QueryText(t, conn, "SELECT $1::"+tt.sqlType, input)[0][0]
				if got := string(out(nil, v, i)); got != want {
					t.Errorf("value %d (input %q): got %q, PostgreSQL prints %q", i, input, got, want)
				}
			}
		})
	}
}

// TestOutputTextUsesExact: a value the batch carries with its exact text
// (numeric NaN in a DECIMAL column, infinity) is written as that text.
func TestOutputTextUsesExact(t *testing.T) {
	var v records.Vec
	v.I64 = []int64{}
	v.AppendNull()
	v.SetExact([]byte("infinity"), 1)
	v.AppendInt64(0)
	enc, err := OutputTextEncoder(ParquetTimestampTZ, "timestamp with time zone")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(enc(nil, &v, 0)); got != "infinity" {
		t.Errorf("exact value: %q", got)
	}
	if got := string(enc(nil, &v, 1)); got != "1970-01-01 00:00:00+00" {
		t.Errorf("plain value: %q", got)
	}
}
