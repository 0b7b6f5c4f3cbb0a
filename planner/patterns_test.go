package planner

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// TestExpandPatterns: every live table a tables block matches, and no
// table block declares, is planned with the block's attributes; the first
// matching block wins; excludes, views and other schemas are left out
// unless a block names them; without introspection the recorded tables
// stand for the live ones.
func TestExpandPatterns(t *testing.T) {
	cfg := loadConfig(t, `
source "postgres" "app" {
  host     = "db"
  database = "app"
  user     = "u"
  table "audit_keep" {
    sync = "full_refresh"
    enabled = false
  }
  tables "audit_*" {
    sync    = "full_refresh"
    exclude = ["audit_tmp*"]
  }
  tables "*" {
    sync              = "incremental"
    incremental_field = "updated_at"
    frequency         = "1h"
  }
  tables "sales.\"Order*\"" {
    sync = "cdc"
  }
}
`)
	src := cfg.Sources[0]
	tbl := func(schema, name, kind string) providers.Table {
		return providers.Table{Schema: schema, Name: name, Kind: kind}
	}
	obs := &providers.Observed{Tables: []providers.Table{
		tbl("public", "audit_a", providers.KindTable),
		tbl("public", "audit_keep", providers.KindTable),
		tbl("public", "audit_tmp1", providers.KindTable),
		tbl("public", "audit_v", providers.KindView),
		tbl("public", "orders", providers.KindPartitionedTable),
		tbl("sales", "Order Items", providers.KindTable),
		tbl("sales", "regions", providers.KindTable),
	}}
	type row struct{ Name, Sync, Pattern, Field string }
	var got []row
	for _, tb := range ExpandPatterns(src, obs, nil).Tables {
		got = append(got, row{tb.Name, string(tb.Sync), tb.Pattern, tb.IncrementalField})
	}
	want := []row{
		{"audit_keep", "full_refresh", "", ""},
		{"audit_a", "full_refresh", "audit_*", ""},
		// audit_tmp1 is excluded from audit_*, so the next block takes it.
		{"audit_tmp1", "incremental", "*", "updated_at"},
		{"orders", "incremental", "*", "updated_at"},
		{"sales.Order Items", "cdc", `sales."Order*"`, ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("expanded tables (-want +got):\n%s", diff)
	}
	if len(src.Tables) != 1 {
		t.Errorf("ExpandPatterns changed the configuration: %d tables", len(src.Tables))
	}

	// plan -refresh=false: the recorded tables stand for the live ones.
	rs := &state.Source{Tables: map[string]*state.Table{
		"audit_a": {Name: "audit_a", Schema: "public", Table: "audit_a"},
	}}
	got = nil
	for _, tb := range ExpandPatterns(src, nil, rs).Tables {
		got = append(got, row{tb.Name, string(tb.Sync), tb.Pattern, tb.IncrementalField})
	}
	if diff := cmp.Diff([]row{{"audit_keep", "full_refresh", "", ""}, {"audit_a", "full_refresh", "audit_*", ""}}, got); diff != "" {
		t.Errorf("without introspection (-want +got):\n%s", diff)
	}
}
