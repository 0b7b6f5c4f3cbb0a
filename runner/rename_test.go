package runner

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

func TestColumnRenames(t *testing.T) {
	cols := func(names ...string) *records.Schema {
		s := &records.Schema{}
		for i := 0; i < len(names); i += 2 {
			s.Columns = append(s.Columns, records.Column{Name: names[i], SourceName: names[i+1]})
		}
		return s
	}
	tests := []struct {
		name    string
		stored  *records.Schema
		rename  map[string]string
		want    []warehouse.ColumnRename
		wantErr bool
	}{
		{name: "never committed"},
		{name: "nothing renamed", stored: cols("id", "", "email", "", "_sluice_synced_at", "")},
		{name: "as recorded", stored: cols("id", "", "customer_email", "email"), rename: map[string]string{"email": "customer_email"}},
		{name: "rename added", stored: cols("id", "", "email", "", "_sluice_lsn", ""), rename: map[string]string{"email": "customer_email", "id": "key"},
			want: []warehouse.ColumnRename{{From: "id", To: "key", Source: "id"}, {From: "email", To: "customer_email", Source: "email"}}},
		{name: "rename changed", stored: cols("customer_email", "email"), rename: map[string]string{"email": "contact"},
			want: []warehouse.ColumnRename{{From: "customer_email", To: "contact", Source: "email"}}},
		{name: "rename removed", stored: cols("customer_email", "email"),
			want: []warehouse.ColumnRename{{From: "customer_email", To: "email"}}},
		{name: "a chain in order", stored: cols("a", "", "b", ""), rename: map[string]string{"a": "b", "b": "c"},
			want: []warehouse.ColumnRename{{From: "b", To: "c", Source: "b"}, {From: "a", To: "b", Source: "a"}}},
		{name: "exchanged names", stored: cols("a", "", "b", ""), rename: map[string]string{"a": "b", "b": "a"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := columnRenames(tc.stored, tc.rename)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("renames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenamer(t *testing.T) {
	var none *renamer = newRenamer(nil)
	src := &records.Schema{Columns: []records.Column{{Name: "id"}, {Name: "email"}, {Name: "_sluice_cdc_op"}}, PrimaryKey: []string{"email"}}
	if none.schema(src) != src {
		t.Error("no rename changed the schema")
	}
	r := newRenamer(map[string]string{"email": "customer_email"})
	got := r.schema(src)
	want := &records.Schema{Columns: []records.Column{{Name: "id"}, {Name: "customer_email", SourceName: "email"}, {Name: "_sluice_cdc_op"}}, PrimaryKey: []string{"customer_email"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("schema (-want +got):\n%s", diff)
	}
	if src.Columns[1].Name != "email" || src.PrimaryKey[0] != "email" {
		t.Error("the provider's schema was changed")
	}
	if r.schema(src) != got {
		t.Error("the same schema renamed twice gives two schemas")
	}
	b := records.NewBatch(src, 1)
	if rb := r.batch(b); rb.Schema != got || b.Schema != src || &rb.Cols[0] != &b.Cols[0] {
		t.Error("batch: want a copy sharing the vectors under the renamed schema")
	}
}
