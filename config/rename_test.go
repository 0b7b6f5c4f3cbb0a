package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRename: the rename attribute decodes into Table.Rename, and validate
// refuses what can be known to be wrong without the source, on the rename
// attribute's line.
func TestRename(t *testing.T) {
	tests := []struct {
		name  string
		table string // the table block's body; rename is on line 5
		want  []diag
		ren   map[string]string
	}{
		{
			name:  "rename",
			table: "sync = \"cdc\"\n    rename = { email = \"customer_email\", id = \"customer_id\" }",
			ren:   map[string]string{"email": "customer_email", "id": "customer_id"},
		},
		{
			name:  "renamed cursor and key with columns",
			table: "sync = \"incremental\"\n    rename = { updated_at = \"changed\", id = \"key\" }\n    incremental_field = \"updated_at\"\n    primary_key = [\"id\"]\n    columns = [\"name\"]",
			ren:   map[string]string{"updated_at": "changed", "id": "key"},
		},
		{
			name:  "a chain is no collision",
			table: "sync = \"full_refresh\"\n    rename = { a = \"b\", b = \"c\" }",
			ren:   map[string]string{"a": "b", "b": "c"},
		},
		{
			name:  "empty new name",
			table: "sync = \"full_refresh\"\n    rename = { email = \"\" }",
			want:  []diag{{"error", "Empty column name", 5}},
		},
		{
			name:  "empty source name",
			table: "sync = \"full_refresh\"\n    rename = { \"\" = \"x\" }",
			want:  []diag{{"error", "Empty column name", 5}},
		},
		{
			name:  "two columns to one name",
			table: "sync = \"full_refresh\"\n    rename = { a = \"x\", b = \"x\" }",
			want:  []diag{{"error", "Two columns renamed to one name", 5}},
		},
		{
			name:  "to a kept column of the selection",
			table: "sync = \"full_refresh\"\n    rename = { a = \"b\" }\n    columns = [\"a\", \"b\"]",
			want:  []diag{{"error", "Rename to an existing column", 5}},
		},
		{
			name:  "to the key",
			table: "sync = \"full_refresh\"\n    rename = { a = \"id\" }\n    primary_key = [\"id\"]",
			want:  []diag{{"error", "Rename to an existing column", 5}},
		},
		{
			name:  "to the cursor",
			table: "sync = \"incremental\"\n    rename = { a = \"at\" }\n    incremental_field = \"at\"",
			want:  []diag{{"error", "Rename to an existing column", 5}},
		},
		{
			name:  "of a column not in columns",
			table: "sync = \"full_refresh\"\n    rename = { c = \"x\" }\n    columns = [\"a\", \"b\"]",
			want:  []diag{{"error", "Rename of a column not synced", 5}},
		},
		{
			name:  "to a metadata column",
			table: "sync = \"full_refresh\"\n    rename = { a = \"_sluice_synced_at\" }",
			want:  []diag{{"error", "Rename to a metadata column", 5}},
		},
		{
			name:  "of a metadata column",
			table: "sync = \"cdc\"\n    rename = { _sluice_deleted = \"gone\" }",
			want:  []diag{{"error", "Rename of a metadata column", 5}},
		},
		{
			name:  "to valid_from of a history table",
			table: "sync = \"cdc\"\n    cdc_output = \"both\"\n    rename = { a = \"valid_from\" }",
			want:  []diag{{"error", "Rename to a metadata column", 6}},
		},
		{
			name:  "valid_to is an ordinary name without a history table",
			table: "sync = \"cdc\"\n    rename = { a = \"valid_to\" }",
			ren:   map[string]string{"a": "valid_to"},
		},
		{
			name:  "not a map of strings",
			table: "sync = \"full_refresh\"\n    rename = [\"a\"]",
			want:  []diag{{"error", "Incorrect attribute value type", 5}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := load(t, pgHead+"  table \"customers\" {\n    "+tc.table+"\n  }\n}\n", Options{})
			if diff := cmp.Diff(tc.want, summarize(diags)); diff != "" {
				t.Fatalf("diagnostics (-want +got):\n%s\n%v", diff, diags)
			}
			if tc.want != nil {
				return
			}
			tbl := cfg.Source("postgres.prod").Table("customers")
			if diff := cmp.Diff(tc.ren, tbl.Rename); diff != "" {
				t.Errorf("Rename (-want +got):\n%s", diff)
			}
			for from, to := range tc.ren {
				if got := tbl.WarehouseColumn(from); got != to {
					t.Errorf("WarehouseColumn(%q) = %q, want %q", from, got, to)
				}
			}
		})
	}
}
