package stripe

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
)

func TestAppendValue(t *testing.T) {
	tests := []struct {
		name   string
		kind   kind
		raw    string
		want   any // nil: NULL
		nulled bool
	}{
		{"string", kString, `"usd"`, "usd", false},
		{"string with escapes", kString, `"caf\u00e9 \"x\""`, `café "x"`, false},
		{"string null", kString, `null`, nil, false},
		{"string absent", kString, ``, nil, false},
		{"string given a number", kString, `5`, nil, true},
		{"reference id", kRef, `"cus_1"`, "cus_1", false},
		{"reference expanded", kRef, `{"id":"cus_1","object":"customer"}`, "cus_1", false},
		{"reference object without id", kRef, `{"object":"customer"}`, nil, true},
		{"reference given a number", kRef, `7`, nil, true},
		{"integer", kInt, `-1999`, int64(-1999), false},
		{"integer beyond int64", kInt, `9223372036854775808`, nil, true},
		{"integer with exponent", kInt, `1e3`, int64(1000), false},
		{"integer with a fraction", kInt, `1.5`, nil, true},
		{"integer given a string", kInt, `"100"`, nil, true},
		{"integer given a bool", kInt, `true`, nil, true},
		{"number", kFloat, `0.25`, 0.25, false},
		{"number given a string", kFloat, `"0.25"`, nil, true},
		{"boolean", kBool, `true`, true, false},
		{"boolean given a string", kBool, `"true"`, nil, true},
		{"timestamp", kTime, `1700000000`, time.Unix(1700000000, 0).UTC(), false},
		{"timestamp before 1970", kTime, `-86400`, time.Unix(-86400, 0).UTC(), false},
		{"timestamp out of range", kTime, `9300000000000`, nil, true},
		{"timestamp given a string", kTime, `"2024-01-01"`, nil, true},
		{"object sorted, compact, big numbers and HTML kept", kObject, "{ \"b\": 12345678901234567890123,\n \"a\": {\"z\": [1, 2.50, \"<&>\"], \"y\": null} }",
			`{"a":{"y":null,"z":[1,2.50,"<&>"]},"b":12345678901234567890123}`, false},
		{"array", kArray, `[ {"b":1,"a":2} ]`, `[{"a":2,"b":1}]`, false},
		{"object given a string is kept as JSON", kObject, `"x"`, `"x"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &records.Schema{Columns: []records.Column{{Name: "v", Type: tt.kind.parquet()}}}
			b := records.NewBatch(s, 1)
			obj := map[string]json.RawMessage{}
			if tt.raw != "" {
				obj["v"] = json.RawMessage(tt.raw)
			}
			var scratch bytes.Buffer
			appendRow(b, []field{{"v", tt.kind}}, obj, &scratch)
			got := rowMaps(b)[0]["v"]
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
			if (b.Cols[0].Nulled == 1) != tt.nulled {
				t.Errorf("Nulled = %d, want nulled %v", b.Cols[0].Nulled, tt.nulled)
			}
		})
	}
}

func TestTableForObject(t *testing.T) {
	for _, table := range Tables() {
		o := objects[table]
		got, ok := TableForObject(o.object)
		if !ok || got != table {
			t.Errorf("TableForObject(%q) = %q, %v; want %q", o.object, got, ok, table)
		}
		if o.path != "/v1/"+table || o.fields[0] != (field{"id", kString}) || o.fields[1] != (field{"created", kTime}) {
			t.Errorf("%s: path %s, first fields %v", table, o.path, o.fields[:2])
		}
		seen := map[string]bool{}
		for _, f := range o.fields {
			if seen[f.name] {
				t.Errorf("%s lists %s twice", table, f.name)
			}
			seen[f.name] = true
		}
	}
	if _, ok := TableForObject("balance"); ok {
		t.Error("balance is not a synced object")
	}
}
