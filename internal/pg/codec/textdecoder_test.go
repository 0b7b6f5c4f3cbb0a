package codec

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
)

// Parquet types of the mapping, as the decoders get them.
var (
	tdBool     = ParquetBoolean
	tdInt16    = ParquetInt16
	tdInt32    = ParquetInt32
	tdInt64    = ParquetInt64
	tdFloat    = ParquetFloat
	tdDouble   = ParquetDouble
	tdString   = ParquetString
	tdJSON     = ParquetJSON
	tdBytes    = ParquetBytes
	tdDate     = ParquetDate
	tdTime     = ParquetTime
	tdTS       = ParquetTimestamp
	tdTSTZ     = ParquetTimestampTZ
	tdDec9_2   = decimalType(9, 2)
	tdDec18_4  = decimalType(18, 4)
	tdDec38_10 = decimalType(38, 10)
	tdDec20_0  = decimalType(20, 0)
)

func tdList(elem records.ParquetType) records.ParquetType {
	return records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &elem, Name: "LIST<" + elem.Name + ">"}
}

// tdNulled stands for a value decoded as NULL and counted.
type tdNulled struct{}

// tdNulledIn is a list with N elements decoded as NULL and counted.
type tdNulledIn struct {
	N     int
	Value any
}

// tdDecode decodes one value with a fresh decoder, returning the value,
// nulled{} for a counted NULL, or the error.
func tdDecode(t *testing.T, pt records.ParquetType, pg *PGType, s string) any {
	t.Helper()
	d, err := newTextDecoder(pt, pg)
	if err != nil {
		t.Fatal(err)
	}
	b := records.NewBatch(&records.Schema{Columns: []records.Column{{Name: "c", Type: pt}}}, 1)
	v := &b.Cols[0]
	n := 0
	if err := d.decode(v, []byte(s), &n); err != nil {
		return err
	}
	if v.Len() != 1 {
		t.Fatalf("%q: %d values appended", s, v.Len())
	}
	switch {
	case n > 0 && v.IsNull(0):
		return tdNulled{}
	case n > 0:
		return tdNulledIn{n, recordstest.Value(v, pt, 0)}
	}
	return recordstest.Value(v, pt, 0)
}

func tdDays(y int, m time.Month, d int) int32 {
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func tdMicros(y int, m time.Month, d, hh, mm, ss, us int) int64 {
	return time.Date(y, m, d, hh, mm, ss, us*1000, time.UTC).UnixMicro()
}

func TestTextDecode(t *testing.T) {
	anErr := errors.New("error")
	tests := []struct {
		name string
		pt   records.ParquetType
		pg   *PGType
		in   string
		want any // anErr for any error
	}{
		{"bool true", tdBool, nil, "t", true},
		{"bool false", tdBool, nil, "f", false},
		{"bool word", tdBool, nil, "true", anErr},
		{"int16", tdInt16, nil, "-32768", int32(-32768)},
		{"int16 overflow", tdInt16, nil, "32768", anErr},
		{"int32", tdInt32, nil, "2147483647", int32(math.MaxInt32)},
		{"int32 min", tdInt32, nil, "-2147483648", int32(math.MinInt32)},
		{"int32 overflow", tdInt32, nil, "2147483648", anErr},
		{"int64 min", tdInt64, nil, "-9223372036854775808", int64(math.MinInt64)},
		{"int64 max", tdInt64, nil, "9223372036854775807", int64(math.MaxInt64)},
		{"int64 overflow", tdInt64, nil, "9223372036854775808", anErr},
		{"int empty", tdInt64, nil, "", anErr},
		{"int sign only", tdInt64, nil, "-", anErr},
		{"int junk", tdInt32, nil, "12a", anErr},
		{"real", tdFloat, nil, "1.1", float32(1.1)},
		{"real inf", tdFloat, nil, "-Infinity", float32(math.Inf(-1))},
		{"double", tdDouble, nil, "0.30000000000000004", 0.30000000000000004},
		{"double exp", tdDouble, nil, "1e+308", 1e308},
		{"double inf", tdDouble, nil, "Infinity", math.Inf(1)},
		{"double hex refused", tdDouble, nil, "0x1p-2", anErr},
		{"decimal", tdDec9_2, nil, "-12.30", int32(-1230)},
		{"decimal no point", tdDec9_2, nil, "7", int32(700)},
		{"decimal short fraction", tdDec9_2, nil, "0.5", int32(50)},
		{"decimal zero", tdDec9_2, nil, "0.00", int32(0)},
		{"decimal max", tdDec9_2, nil, "9999999.99", int32(999999999)},
		{"decimal too wide", tdDec9_2, nil, "10000000.00", tdNulled{}},
		{"decimal too precise", tdDec9_2, nil, "1.234", tdNulled{}},
		{"decimal trailing zeros", tdDec9_2, nil, "1.2300", int32(123)},
		{"decimal NaN", tdDec9_2, nil, "NaN", tdNulled{}},
		{"decimal Infinity", tdDec18_4, nil, "Infinity", tdNulled{}},
		{"decimal -Infinity", tdDec18_4, nil, "-Infinity", tdNulled{}},
		{"decimal64", tdDec18_4, nil, "-99999999999999.9999", int64(-999999999999999999)},
		{"decimal fixed", tdDec38_10, nil, "-1234567890123456789012345678.0123456789", "-12345678901234567890123456780123456789"},
		{"decimal fixed max", tdDec38_10, nil, "9999999999999999999999999999.9999999999", "99999999999999999999999999999999999999"},
		{"decimal fixed small", tdDec20_0, nil, "-1", "-1"},
		{"decimal junk", tdDec9_2, nil, "1.2.3", anErr},
		{"decimal empty", tdDec9_2, nil, "", anErr},
		{"decimal point only", tdDec9_2, nil, ".", anErr},
		{"string", tdString, nil, "héllo, wörld ✓", "héllo, wörld ✓"},
		{"string empty", tdString, nil, "", ""},
		{"json", tdJSON, nil, `{"a": [1, 2]}`, `{"a": [1, 2]}`},
		{"bytea hex", tdBytes, nil, `\x00ff7f`, []byte("\x00\xff\x7f")},
		{"bytea hex upper", tdBytes, nil, `\xDEAD`, []byte("\xde\xad")},
		{"bytea empty", tdBytes, nil, `\x`, []byte(nil)},
		{"bytea odd", tdBytes, nil, `\x0`, anErr},
		{"bytea escape", tdBytes, nil, `a\\b\000\377`, []byte("a\\b\x00\xff")},
		{"bytea bad escape", tdBytes, nil, `\q`, anErr},
		{"date", tdDate, nil, "2026-11-21", tdDays(2026, 11, 21)},
		{"date epoch", tdDate, nil, "1970-01-01", int32(0)},
		{"date pre-1970", tdDate, nil, "1969-12-31", int32(-1)},
		{"date leap", tdDate, nil, "2000-02-29", tdDays(2000, 2, 29)},
		{"date not leap", tdDate, nil, "1900-02-29", anErr},
		{"date BC", tdDate, nil, "0044-03-15 BC", tdDays(-43, 3, 15)},
		{"date 1 BC", tdDate, nil, "0001-12-31 BC", tdDays(0, 12, 31)},
		{"date far", tdDate, nil, "5874897-12-31", tdDays(5874897, 12, 31)},
		{"date first", tdDate, nil, "4714-11-24 BC", tdDays(-4713, 11, 24)},
		{"date infinity", tdDate, nil, "infinity", tdNulled{}},
		{"date -infinity", tdDate, nil, "-infinity", tdNulled{}},
		{"date junk", tdDate, nil, "2026-1-21", anErr},
		{"time", tdTime, nil, "13:14:15.5", int64(((13*60+14)*60+15)*1e6 + 500000)},
		{"time midnight", tdTime, nil, "00:00:00", int64(0)},
		{"time 24", tdTime, nil, "24:00:00", int64(86400e6)},
		{"time 25", tdTime, nil, "25:00:00", anErr},
		{"time micro", tdTime, nil, "00:00:00.000001", int64(1)},
		{"time too precise", tdTime, nil, "00:00:00.0000001", anErr},
		{"timestamp", tdTS, nil, "2026-11-21 10:00:00.123456", tdMicros(2026, 11, 21, 10, 0, 0, 123456)},
		{"timestamp pre-1970", tdTS, nil, "1900-01-01 00:00:00", tdMicros(1900, 1, 1, 0, 0, 0, 0)},
		{"timestamp BC", tdTS, nil, "0044-03-15 12:00:00 BC", tdMicros(-43, 3, 15, 12, 0, 0, 0)},
		{"timestamp offset refused", tdTS, nil, "2026-11-21 10:00:00+00", anErr},
		{"timestamp infinity", tdTS, nil, "infinity", tdNulled{}},
		{"timestamp last", tdTS, nil, "294276-12-31 23:59:59.999999", tdNulled{}},
		{"timestamp late", tdTS, nil, "294200-12-31 23:59:59", tdMicros(294200, 12, 31, 23, 59, 59, 0)},
		{"timestamptz utc", tdTSTZ, nil, "2026-11-21 10:00:00+00", tdMicros(2026, 11, 21, 10, 0, 0, 0)},
		{"timestamptz offset", tdTSTZ, nil, "2026-11-21 10:00:00.5+05:30", tdMicros(2026, 11, 21, 4, 30, 0, 500000)},
		{"timestamptz negative offset", tdTSTZ, nil, "2026-11-21 10:00:00-03:00:15", tdMicros(2026, 11, 21, 13, 0, 15, 0)},
		{"timestamptz BC", tdTSTZ, nil, "0044-03-15 12:00:00+00 BC", tdMicros(-43, 3, 15, 12, 0, 0, 0)},
		{"timestamptz no offset", tdTSTZ, nil, "2026-11-21 10:00:00", anErr},
		{"timestamptz -infinity", tdTSTZ, nil, "-infinity", tdNulled{}},
		{"list ints", tdList(tdInt32), nil, "{1,-2,NULL,3}", []any{int32(1), int32(-2), nil, int32(3)}},
		{"list empty", tdList(tdInt32), nil, "{}", []any{}},
		{"list strings", tdList(tdString), nil, `{a,"b c",NULL,"NULL","q\"x","back\\slash",""}`,
			[]any{"a", "b c", nil, "NULL", `q"x`, `back\slash`, ""}},
		{"list unicode", tdList(tdString), nil, `{héllo,"wörld, ✓"}`, []any{"héllo", "wörld, ✓"}},
		{"list bounds", tdList(tdInt32), nil, "[0:1]={7,8}", []any{int32(7), int32(8)}},
		{"list multi-dimensional", tdList(tdInt32), nil, "{{1,2},{3,4}}", tdNulled{}},
		{"list multi-dimensional bounds", tdList(tdInt32), nil, "[0:1][1:1]={{1},{2}}", tdNulled{}},
		{"list dates", tdList(tdDate), nil, "{2026-11-21,infinity}", tdNulledIn{1, []any{tdDays(2026, 11, 21), nil}}},
		{"list decimals", tdList(tdDec9_2), nil, "{1.50,-0.01}", []any{int32(150), int32(-1)}},
		{"list bytea", tdList(tdBytes), nil, `{"\\x00ff",NULL}`, []any{[]byte("\x00\xff"), nil}},
		{"list timestamps", tdList(tdTSTZ), nil, `{"2026-11-21 10:00:00+00"}`, []any{tdMicros(2026, 11, 21, 10, 0, 0, 0)}},
		{"list box", tdList(tdString), &PGType{OID: pgtype.BoxArrayOID, Category: 'A', Elem: &PGType{OID: pgtype.BoxOID}},
			"{(1,1),(0,0);(2,2),(1,1)}", []any{"(1,1),(0,0)", "(2,2),(1,1)"}},
		{"list bad element", tdList(tdInt32), nil, "{1,x}", anErr},
		{"list unterminated", tdList(tdString), nil, `{"a}`, anErr},
		{"list no braces", tdList(tdInt32), nil, "1,2", anErr},
		{"list unbalanced", tdList(tdInt32), nil, "{{1,2}", anErr},
		{"list empty element", tdList(tdString), nil, "{a,,b}", anErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tdDecode(t, tt.pt, tt.pg, tt.in)
			if tt.want == anErr {
				if _, ok := got.(error); !ok {
					t.Fatalf("%q: got %#v, want an error", tt.in, got)
				}
				return
			}
			if err, ok := got.(error); ok {
				t.Fatalf("%q: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("%q (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// TestTextDecodeNaN checks NaN apart: cmp cannot tell float32 NaN from
// float64 NaN by type alone.
func TestTextDecodeNaN(t *testing.T) {
	if got, ok := tdDecode(t, tdFloat, nil, "NaN").(float32); !ok || !math.IsNaN(float64(got)) {
		t.Errorf("real NaN: %v", got)
	}
	if got, ok := tdDecode(t, tdDouble, nil, "NaN").(float64); !ok || !math.IsNaN(got) {
		t.Errorf("double NaN: %v", got)
	}
}

// TestTextDecodeErrorsLeaveVec checks that a value that fails part-way
// takes nothing into the Vec: no bytes, no list elements, no validity.
func TestTextDecodeErrorsLeaveVec(t *testing.T) {
	for _, tc := range []struct {
		pt records.ParquetType
		in string
	}{
		{tdList(tdString), `{a,NULL,"b`},
		{tdList(tdInt32), `{1,NULL,x}`},
		{tdBytes, `\xabz0`},
		{tdBytes, `ab\9`},
	} {
		d, err := newTextDecoder(tc.pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := records.NewBatch(&records.Schema{Columns: []records.Column{{Name: "c", Type: tc.pt}}}, 1)
		v := &b.Cols[0]
		n := 0
		if err := d.decode(v, []byte(tc.in), &n); err == nil {
			t.Fatalf("%q: no error", tc.in)
		}
		if v.Len() != 0 || len(v.Data) != 0 || v.Valid != nil {
			t.Errorf("%q: left %d values, %d bytes, validity %v", tc.in, v.Len(), len(v.Data), v.Valid)
		}
		if v.List != nil && (v.List.Elem.Len() != 0 || v.List.Elem.Valid != nil || len(v.List.Elem.Data) != 0) {
			t.Errorf("%q: left %d list elements", tc.in, v.List.Elem.Len())
		}
	}
}

// TestDaysFromCivil checks the calendar against time's over a wide range.
func TestDaysFromCivil(t *testing.T) {
	for y := -4713; y <= 12000; y += 7 {
		for m := time.January; m <= time.December; m++ {
			want := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400
			if got := daysFromCivil(int64(y), int64(m), 1); got != want {
				t.Fatalf("%d-%d-01: %d, want %d", y, m, got, want)
			}
		}
	}
}

// FuzzTextDecode feeds arbitrary text to every decoder: an error or one
// value, never a panic, and a failed value leaves the Vec as it was.
func FuzzTextDecode(f *testing.F) {
	types := []records.ParquetType{tdBool, tdInt16, tdInt32, tdInt64, tdFloat, tdDouble, tdDec9_2, tdDec18_4,
		tdDec38_10, tdString, tdBytes, tdDate, tdTime, tdTS, tdTSTZ,
		tdList(tdInt32), tdList(tdString), tdList(tdDec38_10), tdList(tdTSTZ), tdList(tdBytes)}
	for _, s := range []string{"t", "-12", "1.5", "NaN", "-1234.5678", `\x00ff`, `a\\b\001`, "2026-11-21",
		"0044-03-15 BC", "24:00:00", "2026-11-21 10:00:00.5+05:30", "infinity", `{1,NULL,"a b","q\"x"}`,
		"[0:1]={1,2}", "{{1},{2}}", "{}", `{"2026-11-21 10:00:00+00 BC"}`} {
		for i := range types {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		pt := types[int(which)%len(types)]
		d, err := newTextDecoder(pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := records.NewBatch(&records.Schema{Columns: []records.Column{{Name: "c", Type: pt}}}, 2)
		v := &b.Cols[0]
		n := 0
		if err := d.decode(v, []byte("garbage that fails"), &n); err == nil && pt.Physical != records.PhysicalByteArray {
			t.Fatalf("%s: garbage decoded", pt.Name)
		}
		v.AppendNull()
		before, data := v.Len(), len(v.Data)
		err = d.decode(v, in, &n)
		switch {
		case err != nil && (v.Len() != before || len(v.Data) != data):
			t.Fatalf("%s %q: failed value left %d values, %d bytes (was %d, %d)", pt.Name, in, v.Len(), len(v.Data), before, data)
		case err == nil && v.Len() != before+1:
			t.Fatalf("%s %q: %d values appended", pt.Name, in, v.Len()-before)
		case v.Valid != nil && len(v.Valid) != v.Len():
			t.Fatalf("%s %q: %d validity marks for %d values", pt.Name, in, len(v.Valid), v.Len())
		}
		if pt.Physical == records.PhysicalGroup {
			l := v.List
			if len(l.Offsets) != v.Len()+1 || int(l.Offsets[len(l.Offsets)-1]) != l.Elem.Len() {
				t.Fatalf("%s %q: list offsets %v for %d elements", pt.Name, in, l.Offsets, l.Elem.Len())
			}
		}
	})
}
