package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		in      string
		want    Schedule
		wantErr bool
	}{
		{in: "5m", want: Schedule{Interval: 5 * time.Minute}},
		{in: "1h", want: Schedule{Interval: time.Hour}},
		{in: "1h30m", want: Schedule{Interval: 90 * time.Minute}},
		{in: "24h", want: Schedule{Interval: 24 * time.Hour}},
		{in: "7d", want: Schedule{Interval: 7 * 24 * time.Hour}},
		{in: "1d12h", want: Schedule{Interval: 36 * time.Hour}},
		{in: "daily@02:30", want: Schedule{Daily: true, At: 2*time.Hour + 30*time.Minute}},
		{in: "daily@00:00", want: Schedule{Daily: true}},
		{in: "daily@23:59", want: Schedule{Daily: true, At: 23*time.Hour + 59*time.Minute}},
		{in: "daily@24:00", wantErr: true},
		{in: "daily@2:30", wantErr: true},
		{in: "daily@", wantErr: true},
		{in: "30s", wantErr: true}, // below the minimum
		{in: "-1h", wantErr: true},
		{in: "", wantErr: true},
		{in: "hourly", wantErr: true},
		{in: "1x", wantErr: true},
		{in: "d", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSchedule(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseSchedule(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseSchedule(%q) (-want +got):\n%s", tt.in, diff)
		}
		if err == nil {
			if again, _ := ParseSchedule(got.String()); again != got {
				t.Errorf("String() of %q = %q does not parse back", tt.in, got.String())
			}
		}
	}
}

func TestScheduleNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	daily := Schedule{Daily: true, At: 2*time.Hour + 30*time.Minute}
	tests := []struct {
		s    Schedule
		last string
		want string
	}{
		{Schedule{Interval: time.Hour}, "2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z"},
		{daily, "2026-11-21T01:00:00Z", "2026-11-21T02:30:00Z"},
		{daily, "2026-11-21T02:30:00Z", "2026-11-22T02:30:00Z"},
		{daily, "2026-11-21T23:00:00Z", "2026-11-22T02:30:00Z"},
		{daily, "2026-11-21T04:00:00+03:00", "2026-11-21T02:30:00Z"}, // 01:00 UTC
	}
	for _, tt := range tests {
		if got := tt.s.Next(at(tt.last)); !got.Equal(at(tt.want)) {
			t.Errorf("%s.Next(%s) = %s, want %s", tt.s, tt.last, got, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "1GiB", want: 1 << 30},
		{in: "10GiB", want: 10 << 30},
		{in: "512MiB", want: 512 << 20},
		{in: "1.5GiB", want: 3 << 29},
		{in: "10GB", want: 10e9},
		{in: "100kb", want: 100e3},
		{in: "1024", want: 1024},
		{in: "1024B", want: 1024},
		{in: " 2 TiB ", want: 2 << 40},
		{in: "0", wantErr: true},
		{in: "GiB", wantErr: true},
		{in: "1 gigabyte", wantErr: true},
		{in: "-1GiB", wantErr: true},
		{in: "1e99GiB", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if got := FormatSize(10 << 30); got != "10GiB" {
		t.Errorf("FormatSize = %q", got)
	}
}

func TestParseTableName(t *testing.T) {
	tests := []struct {
		in            string
		schema, table string
		wantErr       bool
	}{
		{in: "orders", table: "orders"},
		{in: "sales.orders", schema: "sales", table: "orders"},
		{in: "Sales.Orders", schema: "Sales", table: "Orders"},
		{in: `"my.schema"."my.table"`, schema: "my.schema", table: "my.table"},
		{in: `"a""b"`, table: `a"b`},
		{in: `public."Order Items"`, schema: "public", table: "Order Items"},
		{in: "ümlaut.täble", schema: "ümlaut", table: "täble"},
		{in: "", wantErr: true},
		{in: "a.", wantErr: true},
		{in: ".a", wantErr: true},
		{in: "a.b.c", wantErr: true},
		{in: `"unterminated`, wantErr: true},
		{in: `a"b`, wantErr: true},
		{in: `"a"b`, wantErr: true},
		{in: string(make([]byte, 64)), wantErr: true},
	}
	for _, tt := range tests {
		schema, table, err := ParseTableName(tt.in)
		if (err != nil) != tt.wantErr || schema != tt.schema || table != tt.table {
			t.Errorf("ParseTableName(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, schema, table, err, tt.schema, tt.table, tt.wantErr)
		}
	}
}

func TestWarehouseName(t *testing.T) {
	tests := []struct {
		prefix, sourceSchema, schema, table, want string
	}{
		{"postgres_prod", "public", "", "orders", "postgres_prod_orders"},
		{"postgres_prod", "public", "public", "orders", "postgres_prod_orders"},
		{"postgres_prod", "public", "sales", "orders", "postgres_prod_sales_orders"},
		{"pg", "public", "", "Order Items", "pg_order_items"},
		{"pg", "public", "Sales-EU", "Ärger", "pg_sales_eu__rger"},
		{"pg", "", "public", "t", "pg_public_t"},
	}
	for _, tt := range tests {
		if got := WarehouseName(tt.prefix, tt.sourceSchema, tt.schema, tt.table); got != tt.want {
			t.Errorf("WarehouseName(%q, %q, %q, %q) = %q, want %q", tt.prefix, tt.sourceSchema, tt.schema, tt.table, got, tt.want)
		}
	}
}

func TestQualifiedNameRoundTrips(t *testing.T) {
	for _, pair := range [][2]string{{"public", "orders"}, {"Sales", "Order.Items"}, {"a.b", `c"d`}, {"", "t"}, {"s", `"`}} {
		q := QualifiedName(pair[0], pair[1])
		schema, table, err := ParseTableName(q)
		if err != nil || schema != pair[0] || table != pair[1] {
			t.Errorf("QualifiedName(%q, %q) = %q, parses back as %q, %q, %v", pair[0], pair[1], q, schema, table, err)
		}
	}
}

// TestPlanhatFrequencies: the frequency forms Planhat users write (5m, 1h,
// daily@HH:MM) parse from a table block and schedule the next sync as
// they expect.
func TestPlanhatFrequencies(t *testing.T) {
	last := time.Date(2026, 11, 21, 10, 7, 0, 0, time.UTC)
	tests := []struct {
		freq string
		want time.Time
	}{
		{"5m", last.Add(5 * time.Minute)},
		{"1h", last.Add(time.Hour)},
		{"daily@06:15", time.Date(2026, 11, 22, 6, 15, 0, 0, time.UTC)}, // already past today
		{"daily@23:45", time.Date(2026, 11, 21, 23, 45, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		cfg, diags := load(t, pgHead+"  table \"orders\" {\n    sync = \"full_refresh\"\n    frequency = \""+tt.freq+"\"\n  }\n}\n", Options{})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", tt.freq, diags)
		}
		sch := cfg.Sources[0].Tables[0].Frequency
		if sch.String() != tt.freq {
			t.Errorf("frequency %q reads back as %q", tt.freq, sch.String())
		}
		if got := sch.Next(last); !got.Equal(tt.want) {
			t.Errorf("%s: next sync after %s = %s, want %s", tt.freq, last, got, tt.want)
		}
	}
}

// TestBatchSize: batch_size decodes on the tables that can resume a read;
// unset is no limit.
func TestBatchSize(t *testing.T) {
	cfg, diags := load(t, pgHead+`  table "a" {
    sync              = "incremental"
    incremental_field = "at"
    batch_size        = 200000
  }
  table "b" {
    sync              = "append"
    incremental_field = "at"
    batch_size        = 1000
  }
  table "c" {
    sync       = "xmin"
    batch_size = 100000000
  }
  table "d" {
    sync              = "incremental"
    incremental_field = "at"
  }
}
`, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got []int
	for _, tb := range cfg.Sources[0].Tables {
		got = append(got, tb.BatchSize)
	}
	if diff := cmp.Diff([]int{200000, 1000, 100000000, 0}, got); diff != "" {
		t.Errorf("batch sizes (-want +got):\n%s", diff)
	}
}
