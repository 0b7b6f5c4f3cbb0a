package planner

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRenamePlans: a changed rename renames warehouse columns in place
// where the warehouse can (PostgreSQL, Iceberg), and reloads the table
// where it cannot (Parquet) or where the renames exchange names.
func TestRenamePlans(t *testing.T) {
	warehouses := map[string]string{
		"parquet":  "",
		"postgres": "warehouse {\n  backend = \"postgres\"\n  url = \"postgres://wh/db\"\n}\n",
		"iceberg":  "warehouse {\n  backend = \"iceberg\"\n  path = \"lake\"\n}\n",
	}
	const head = "source \"postgres\" \"prod\" {\n  host = \"db\"\n  table \"customers\" {\n    sync = \"cdc\"\n"
	tests := []struct {
		name          string
		before, after string // the rename lines of the table block
		want          map[string][]string
	}{
		{
			name:  "a rename added",
			after: `rename = { email = "customer_email" }`,
			want: map[string][]string{
				"parquet":  {`resync table postgres.prod/customers: warehouse column "email" renamed to "customer_email": the Parquet warehouse cannot rename a column in place, so the table is reloaded`},
				"postgres": {`update table postgres.prod/customers: warehouse column "email" renamed to "customer_email": renamed in place at the next sync, rows kept`},
				"iceberg":  {`update table postgres.prod/customers: warehouse column "email" renamed to "customer_email": renamed in place at the next sync, rows kept`},
			},
		},
		{
			name:   "a rename changed, the key renamed too",
			before: `rename = { email = "customer_email" }`,
			after:  `rename = { email = "contact", id = "customer_id" }`,
			want: map[string][]string{
				"parquet": {`resync table postgres.prod/customers: warehouse column "customer_email" renamed to "contact" (source column "email"): the Parquet warehouse cannot rename a column in place, so the table is reloaded; ` +
					`warehouse column "id" renamed to "customer_id": the Parquet warehouse cannot rename a column in place, so the table is reloaded`},
				"postgres": {`update table postgres.prod/customers: warehouse column "customer_email" renamed to "contact" (source column "email"): renamed in place at the next sync, rows kept; ` +
					`warehouse column "id" renamed to "customer_id": renamed in place at the next sync, rows kept`},
			},
		},
		{
			name:   "a rename removed",
			before: `rename = { email = "customer_email" }`,
			want: map[string][]string{
				"iceberg": {`update table postgres.prod/customers: warehouse column "customer_email" renamed to "email" (source column "email"): renamed in place at the next sync, rows kept`},
			},
		},
		{
			name:  "names exchanged",
			after: `rename = { email = "id", id = "email" }`,
			want: map[string][]string{
				"postgres": {`resync table postgres.prod/customers: warehouse column "email" renamed to "id": the renames exchange column names, so the table is reloaded; ` +
					`warehouse column "id" renamed to "email": the renames exchange column names, so the table is reloaded`},
			},
		},
		{
			name:   "unchanged",
			before: `rename = { email = "customer_email" }`,
			after:  `rename = { email = "customer_email" }`,
			want:   map[string][]string{"parquet": nil, "postgres": nil},
		},
	}
	for _, tc := range tests {
		for backend, want := range tc.want {
			t.Run(tc.name+"/"+backend, func(t *testing.T) {
				obs := observed()
				obs.Publication.Tables = []string{"public.customers"}
				before := loadConfig(t, warehouses[backend]+head+"    "+tc.before+"\n  }\n}\n")
				st := recorded(t, before, obs)
				after := loadConfig(t, warehouses[backend]+head+"    "+tc.after+"\n  }\n}\n")
				if diff := cmp.Diff(want, brief(plan(t, after, st, obs))); diff != "" {
					t.Errorf("plan (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestRenameLiveErrors: plan refuses a rename of a column the live table
// lacks, and one to the name of a live column kept under its own.
func TestRenameLiveErrors(t *testing.T) {
	tests := []struct {
		name, rename string
		want         []string
	}{
		{"missing column", `rename = { emial = "customer_email" }`, []string{"error line 5: Column does not exist"}},
		{"to a live column", `rename = { email = "id" }`, []string{"error line 5: Rename to an existing column"}},
		{"to a live column renamed too", `rename = { email = "id", id = "customer_id" }`, nil},
		{"too long for PostgreSQL", `rename = { email = "` + strings.Repeat("x", 64) + `" }`, []string{"error line 9: Column name too long"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wh := ""
			if strings.Contains(tc.name, "PostgreSQL") {
				wh = "warehouse {\n  backend = \"postgres\"\n  url = \"postgres://wh/db\"\n}\n"
			}
			cfg := loadConfig(t, wh+"source \"postgres\" \"prod\" {\n  host = \"db\"\n  table \"customers\" {\n    sync = \"full_refresh\"\n    "+tc.rename+"\n  }\n}\n")
			want := append([]string{"create source postgres.prod: new source", "create table postgres.prod/customers: new table: initial sync"}, tc.want...)
			if diff := cmp.Diff(want, brief(plan(t, cfg, nil, observed()))); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}
