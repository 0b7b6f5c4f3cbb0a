package planner

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var testKey = []byte("0123456789abcdef0123456789abcdef")

// baseConfig is the configuration most cases start from and edit.
const baseConfig = `
variable "pw" {
  type      = string
  sensitive = true
  default   = "hunter2"
}
source "postgres" "prod" {
  prefix   = "pg"
  host     = "db.example.com"
  database = "app"
  password = var.pw

  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "events" {
    sync = "cdc"
  }
  table "customers" {
    sync = "full_refresh"
  }
}
`

func loadConfig(t *testing.T, src string, vars ...string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(dir, config.Options{Vars: vars, LookupEnv: func(string) (string, bool) { return "", false }})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg
}

func rows(n int64) *int64 { return &n }

func col(name, typ string, nullable bool) providers.Column {
	return providers.Column{Name: name, Type: typ, Nullable: nullable, ParquetType: "X"}
}

// observed is the live database the cases plan against.
func observed() *providers.Observed {
	all := []string{"full_refresh", "incremental", "append", "cdc", "xmin"}
	return &providers.Observed{
		Source:        "postgres.prod",
		ServerVersion: 150004,
		Tables: []providers.Table{
			{Schema: "public", Name: "orders", Kind: providers.KindTable, EstimatedRows: rows(1000), PrimaryKey: []string{"id"},
				Columns:           []providers.Column{col("id", "bigint", false), col("status", "text", true), col("total", "numeric(12,2)", true), col("updated_at", "timestamp with time zone", false)},
				IncrementalFields: []providers.IncrementalField{{Name: "id", Type: "bigint", Indexed: true}, {Name: "updated_at", Type: "timestamp with time zone", Indexed: true}},
				SyncTypes:         all},
			{Schema: "public", Name: "events", Kind: providers.KindTable, EstimatedRows: rows(50_000_000), PrimaryKey: []string{"id"},
				Columns:           []providers.Column{col("id", "bigint", false), col("kind", "text", true), col("created_at", "timestamp with time zone", true)},
				IncrementalFields: []providers.IncrementalField{{Name: "id", Type: "bigint", Indexed: true}, {Name: "created_at", Type: "timestamp with time zone", Nullable: true}},
				SyncTypes:         all},
			{Schema: "public", Name: "customers", Kind: providers.KindTable, EstimatedRows: rows(200), PrimaryKey: []string{"id"},
				Columns:   []providers.Column{col("id", "bigint", false), col("email", "text", false)},
				SyncTypes: []string{"full_refresh", "cdc", "xmin"}},
			{Schema: "public", Name: "nokey", Kind: providers.KindTable,
				Columns:           []providers.Column{col("a", "integer", true)},
				IncrementalFields: []providers.IncrementalField{{Name: "a", Type: "integer", Nullable: true, Indexed: true}},
				SyncTypes:         []string{"full_refresh", "append"}},
			// What inspect shows of a table without a key whose block
			// declares one.
			{Schema: "public", Name: "declared", Kind: providers.KindTable,
				Columns:           []providers.Column{col("a", "integer", false)},
				IncrementalFields: []providers.IncrementalField{{Name: "a", Type: "integer", Indexed: true}},
				SyncTypes:         []string{"full_refresh", "incremental", "append", "xmin"}},
			{Schema: "public", Name: "secret", Kind: providers.KindTable, PrimaryKey: []string{"id"},
				Columns:     []providers.Column{col("id", "bigint", false), col("pub", "text", true), col("priv", "text", true)},
				SyncTypes:   []string{"full_refresh", "cdc", "xmin"},
				SelectGrant: `GRANT SELECT ON "public"."secret" TO "sluice";`, ReadableColumns: []string{"id", "pub"}},
			{Schema: "public", Name: "secret_mv", Kind: providers.KindMaterializedView,
				Columns:     []providers.Column{col("pub", "text", true), col("priv", "text", true)},
				SyncTypes:   []string{"full_refresh"},
				SelectGrant: `GRANT SELECT ON "public"."secret_mv" TO "sluice";`, ReadableColumns: []string{"pub"}},
			{Schema: "public", Name: "empty_mv", Kind: providers.KindMaterializedView,
				Columns: []providers.Column{col("x", "integer", true)}, SyncTypes: []string{"full_refresh"}, Unpopulated: true},
			{Schema: "public", Name: "Mixed", Kind: providers.KindTable, PrimaryKey: []string{"id"},
				Columns: []providers.Column{col("id", "bigint", false)}, SyncTypes: []string{"full_refresh", "cdc", "xmin"}},
			{Schema: "public", Name: "v_orders", Kind: providers.KindView,
				Columns: []providers.Column{col("id", "bigint", true)}, SyncTypes: []string{"full_refresh"}},
		},
		Publication: &providers.Publication{Name: "sluice_pub_prod", Tables: []string{"public.events"}, PublishViaPartitionRoot: true},
		Slot:        &providers.Slot{Name: "sluice_prod", Plugin: "pgoutput", WALStatus: "reserved", LagBytes: 1024},
		Checks:      []providers.Check{{Check: "wal_level", OK: true, Message: "wal_level is logical"}},
	}
}

// recorded is the state apply would leave after applying cfg against obs:
// what a second plan compares with.
func recorded(t *testing.T, cfg *config.Config, obs *providers.Observed) *state.State {
	t.Helper()
	st := state.New()
	for _, src := range cfg.Sources {
		ds := DesiredSource(src, obs, testKey)
		if src.Postgres != nil {
			ds.Resources.Management = src.Postgres.CDC.Management
			if want := CDCTables(src); len(want) > 0 {
				ds.Resources.Publication = &state.PublicationState{Name: src.Postgres.CDC.Publication, Tables: want}
				ds.Resources.Slot = &state.SlotState{Name: src.Postgres.CDC.Slot, Plugin: "pgoutput", CreatedLSN: "0/1"}
			}
		}
		st.Sources[src.Address()] = ds
	}
	return st
}

func plan(t *testing.T, cfg *config.Config, st *state.State, obs *providers.Observed, targets ...string) *Plan {
	t.Helper()
	in := Input{Config: cfg, State: st, FingerprintKey: testKey, Targets: targets}
	if obs != nil {
		in.Observed = map[string]*providers.Observed{"postgres.prod": obs}
	}
	return Make(in)
}

// brief renders a plan as lines a case can list: "ACTION KIND ADDRESS:
// reason; reason" and "drift ADDRESS: detail".
func brief(p *Plan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, fmt.Sprintf("%s %s %s: %s", c.Action, c.Kind, c.Address, strings.Join(c.Reasons, "; ")))
	}
	for _, d := range p.Drift {
		out = append(out, fmt.Sprintf("drift %s: %s", d.Address, d.Detail))
	}
	for _, d := range p.Diagnostics {
		sev := "error"
		if d.Severity != 1 {
			sev = "warning"
		}
		line := 0
		if d.Subject != nil {
			line = d.Subject.Start.Line
		}
		out = append(out, fmt.Sprintf("%s line %d: %s", sev, line, d.Summary))
	}
	return out
}

func TestNewSource(t *testing.T) {
	cfg := loadConfig(t, baseConfig)
	obs := observed()
	obs.Publication, obs.Slot = nil, nil
	got := brief(plan(t, cfg, nil, obs))
	want := []string{
		"create source postgres.prod: new source",
		`create publication postgres.prod: cdc tables need publication "sluice_pub_prod"`,
		`create slot postgres.prod: cdc tables need replication slot "sluice_prod" (pgoutput)`,
		"create table postgres.prod/customers: new table: initial sync",
		"create table postgres.prod/events: new table: initial sync",
		"create table postgres.prod/orders: new table: initial sync",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestPlanAfterApplyIsEmpty is invariant 7: for every fixture, planning
// again against what apply recorded shows nothing.
func TestPlanAfterApplyIsEmpty(t *testing.T) {
	fixtures := map[string]string{
		"base": baseConfig,
		"quoted and disabled": `source "postgres" "prod" {
  table "Mixed" { sync = "cdc" }
  table "nokey" {
    sync    = "full_refresh"
    enabled = false
  }
  table "orders" {
    sync              = "append"
    incremental_field = "id"
    columns           = ["id", "status"]
    primary_key       = ["id"]
    frequency         = "daily@03:00"
  }
}`,
		"self managed": `source "postgres" "prod" {
  cdc {
    management = "self_managed"
  }
  table "events" { sync = "cdc" }
}`,
		"no cdc": `source "postgres" "prod" {
  connection_string = "postgres://u:secret@h/db"
  table "v_orders" { sync = "full_refresh" }
}`,
	}
	for name, src := range fixtures {
		t.Run(name, func(t *testing.T) {
			cfg := loadConfig(t, src)
			obs := observed()
			st := recorded(t, cfg, obs)
			if obs.Publication != nil && st.Sources["postgres.prod"].Resources.Publication != nil {
				obs.Publication.Tables = st.Sources["postgres.prod"].Resources.Publication.Tables
			}
			p := plan(t, cfg, st, obs)
			if got := brief(p); len(got) != 0 {
				t.Errorf("plan after apply is not empty:\n%s", strings.Join(got, "\n"))
			}
			if !p.Empty() {
				t.Error("Empty() = false")
			}
			// Without a refresh too.
			if got := brief(plan(t, cfg, st, nil)); len(got) != 0 {
				t.Errorf("plan -refresh=false after apply is not empty:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

// TestChanges has one case per kind of change of the issue: each edits the
// base configuration after it was applied.
func TestChanges(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		vars []string
		want []string
	}{
		{
			name: "prefix change renames every warehouse table",
			edit: func(s string) string { return strings.Replace(s, `prefix   = "pg"`, `prefix   = "pg2"`, 1) },
			want: []string{
				`replace source postgres.prod: prefix changes from "pg" to "pg2": every warehouse table of the source is renamed`,
				"replace table postgres.prod/customers: warehouse table renamed from pg_customers to pg2_customers",
				"replace table postgres.prod/events: warehouse table renamed from pg_events to pg2_events",
				"replace table postgres.prod/orders: warehouse table renamed from pg_orders to pg2_orders",
			},
		},
		{
			name: "connection change",
			edit: func(s string) string { return strings.Replace(s, `"db.example.com"`, `"db2.example.com"`, 1) },
			want: []string{`update source postgres.prod: host changes from "db.example.com" to "db2.example.com"`},
		},
		{
			name: "password change",
			vars: []string{"pw=correct horse"},
			want: []string{"update source postgres.prod: password (sensitive value changed)"},
		},
		{
			name: "table removed",
			edit: func(s string) string {
				return strings.Replace(s, "  table \"customers\" {\n    sync = \"full_refresh\"\n  }\n", "", 1)
			},
			want: []string{"delete table postgres.prod/customers: removed from the configuration: syncing stops; warehouse table pg_customers is kept"},
		},
		{
			name: "cdc table disabled leaves the publication",
			edit: func(s string) string {
				return strings.Replace(s, "    sync = \"cdc\"\n", "    sync = \"cdc\"\n    enabled = false\n", 1)
			},
			want: []string{
				"delete publication postgres.prod: no cdc tables left: the publication is dropped",
				"delete slot postgres.prod: no cdc tables left: the replication slot is dropped so that it retains no WAL",
				"update table postgres.prod/events: disabled: syncing stops; the warehouse table is kept",
			},
		},
		{
			name: "sync type change",
			edit: func(s string) string { return strings.Replace(s, `sync = "full_refresh"`, `sync = "cdc"`, 1) },
			want: []string{
				"update publication postgres.prod: add table public.customers",
				"resync table postgres.prod/customers: sync type changes from full_refresh to cdc",
			},
		},
		{
			name: "historical_load turned off on a loaded table",
			edit: func(s string) string {
				return strings.Replace(s, "    sync = \"cdc\"\n", "    sync = \"cdc\"\n    historical_load = false\n", 1)
			},
			want: []string{"update table postgres.prod/events: historical_load changes from true to false: what the warehouse holds is kept; a later resync starts without the history (`sluice resync -historical` loads it)"},
		},
		{
			name: "incremental_field change",
			edit: func(s string) string { return strings.Replace(s, `"updated_at"`, `"id"`, 1) },
			want: []string{`resync table postgres.prod/orders: incremental_field changes from "updated_at" to "id"`},
		},
		{
			name: "columns added, sync_forward",
			edit: func(s string) string {
				return strings.Replace(s, `incremental_field = "updated_at"`, `incremental_field = "updated_at"
    columns = ["id", "status", "updated_at"]`, 1)
			},
			want: []string{"update table postgres.prod/orders: columns removed from the selection (columns not listed): no longer synced, existing data kept"},
		},
		{
			name: "primary_key change",
			edit: func(s string) string {
				return strings.Replace(s, `incremental_field = "updated_at"`, `incremental_field = "updated_at"
    primary_key = ["id", "status"]`, 1)
			},
			want: []string{"resync table postgres.prod/orders: primary key changes from (id) to (id, status)"},
		},
		{
			name: "cdc_output change",
			edit: func(s string) string {
				return strings.Replace(s, "    sync = \"cdc\"\n", "    sync = \"cdc\"\n    cdc_output = \"both\"\n", 1)
			},
			want: []string{"resync table postgres.prod/events: cdc_output changes from consolidated to both: the history table is rebuilt"},
		},
		{
			name: "batch_size set: an update, no resync",
			edit: func(s string) string {
				return strings.Replace(s, `incremental_field = "updated_at"`, `incremental_field = "updated_at"
    batch_size = 50000`, 1)
			},
			want: []string{"update table postgres.prod/orders: batch_size changes from no limit to 50000"},
		},
		{
			name: "frequency change",
			edit: func(s string) string {
				return strings.Replace(s, `database = "app"`, `database = "app"
  frequency = "1h"`, 1)
			},
			want: []string{
				`update source postgres.prod: frequency changes from "6h" to "1h"`,
				"update table postgres.prod/customers: frequency changes from 6h to 1h",
				"update table postgres.prod/events: frequency changes from 6h to 1h",
				"update table postgres.prod/orders: frequency changes from 6h to 1h",
			},
		},
		{
			name: "source removed",
			edit: func(string) string { return `variable "pw" { default = "x" }` + "\n" },
			want: []string{
				"delete source postgres.prod: removed from the configuration; warehouse data is kept; drops replication slot sluice_prod and publication sluice_pub_prod",
				"delete table postgres.prod/customers: removed from the configuration: syncing stops; warehouse table pg_customers is kept",
				"delete table postgres.prod/events: removed from the configuration: syncing stops; warehouse table pg_events is kept",
				"delete table postgres.prod/orders: removed from the configuration: syncing stops; warehouse table pg_orders is kept",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := loadConfig(t, baseConfig)
			obs := observed()
			st := recorded(t, base, obs)
			src := baseConfig
			if tt.edit != nil {
				src = tt.edit(src)
			}
			cfg := loadConfig(t, src, tt.vars...)
			p := plan(t, cfg, st, obs)
			if diff := cmp.Diff(tt.want, brief(p)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestColumnsAddedToSelection(t *testing.T) {
	const narrow = `source "postgres" "prod" {
  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
    columns           = ["id", "updated_at"]
    new_columns       = "%s"
  }
}`
	for _, tt := range []struct{ mode, want string }{
		{"sync_forward", "update table postgres.prod/orders: columns added to the selection (status): synced from now on"},
		{"full_resync", "resync table postgres.prod/orders: columns added to the selection (status); new_columns = full_resync"},
	} {
		obs := observed()
		st := recorded(t, loadConfig(t, fmt.Sprintf(narrow, tt.mode)), obs)
		cfg := loadConfig(t, strings.Replace(fmt.Sprintf(narrow, tt.mode), `["id", "updated_at"]`, `["id", "status", "updated_at"]`, 1))
		if diff := cmp.Diff([]string{tt.want}, brief(plan(t, cfg, st, obs))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.mode, diff)
		}
	}
}

func TestReenableCDCResyncs(t *testing.T) {
	disabled := strings.Replace(baseConfig, "    sync = \"cdc\"\n", "    sync = \"cdc\"\n    enabled = false\n", 1)
	obs := observed()
	st := recorded(t, loadConfig(t, disabled), obs)
	obs.Publication, obs.Slot = nil, nil
	got := brief(plan(t, loadConfig(t, baseConfig), st, obs))
	want := []string{
		`create publication postgres.prod: cdc tables need publication "sluice_pub_prod"`,
		`create slot postgres.prod: cdc tables need replication slot "sluice_prod" (pgoutput)`,
		"resync table postgres.prod/events: enabled again: changes made while it was disabled were not captured",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestLiveErrors has one case per error that needs the live source; each
// points at the offending line.
func TestLiveErrors(t *testing.T) {
	tests := []struct {
		name   string
		table  string // a table block added to a source with nothing else
		checks []providers.Check
		want   []string
		detail string
	}{
		{name: "table does not exist", table: `table "ordres" { sync = "full_refresh" }`,
			want: []string{"create table postgres.prod/ordres: new table: initial sync", "error line 2: Table does not exist"}, detail: `Did you mean "public.orders"?`},
		{name: "case matters", table: `table "mixed" { sync = "full_refresh" }`,
			want: []string{"create table postgres.prod/mixed: new table: initial sync", "error line 2: Table does not exist"}, detail: `the table is "Mixed"`},
		{name: "incremental_field missing", table: "table \"orders\" {\n  sync = \"incremental\"\n  incremental_field = \"updatd_at\"\n}",
			want: []string{"create table postgres.prod/orders: new table: initial sync", "error line 4: Column does not exist"}, detail: `Did you mean "updated_at"?`},
		{name: "incremental_field not a cursor type", table: "table \"orders\" {\n  sync = \"incremental\"\n  incremental_field = \"status\"\n}",
			want: []string{"create table postgres.prod/orders: new table: initial sync", "error line 4: Not a cursor column"}, detail: "Candidates: id, updated_at"},
		{name: "cdc without a key", table: "table \"nokey\" {\n  sync = \"cdc\"\n}",
			want: []string{"create table postgres.prod/nokey: new table: initial sync", "error line 3: CDC needs a primary key"}},
		{name: "sync type the table cannot do", table: "table \"v_orders\" {\n  sync = \"xmin\"\n}",
			want: []string{"create table postgres.prod/v_orders: new table: initial sync", "error line 3: Sync type not available for this table"}},
		{name: "columns naming missing columns", table: "table \"orders\" {\n  sync = \"full_refresh\"\n  columns = [\"id\", \"totl\"]\n}",
			want: []string{"create table postgres.prod/orders: new table: initial sync", "error line 4: Column does not exist"}, detail: `Did you mean "total"?`},
		{name: "hash naming missing columns", table: "table \"orders\" {\n  sync = \"full_refresh\"\n  hash = [\"id\", \"emial\"]\n}\nhash_salt = \"s\"",
			want: []string{"create table postgres.prod/orders: new table: initial sync", "error line 4: Column does not exist"}, detail: `hash names column "emial"`},
		{name: "primary_key naming missing columns", table: "table \"orders\" {\n  sync = \"full_refresh\"\n  primary_key = [\"uuid\"]\n}",
			want: []string{"create table postgres.prod/orders: new table: initial sync", "error line 4: Column does not exist"}},
		{name: "cdc while check fails", table: "table \"events\" {\n  sync = \"cdc\"\n}",
			checks: []providers.Check{{Check: "wal_level", OK: false, Message: "wal_level is replica", Fix: "set wal_level = logical"}},
			want:   []string{"create table postgres.prod/events: new table: initial sync", "error line 1: CDC prerequisites not met"}, detail: "wal_level: wal_level is replica (fix: set wal_level = logical)"},
		{name: "incremental without a key", table: "table \"nokey\" {\n  sync = \"incremental\"\n  incremental_field = \"a\"\n}",
			want: []string{"create table postgres.prod/nokey: new table: initial sync", "error line 2: A merge needs a primary key", "warning line 4: Nullable cursor column"}, detail: `Declare the key in the table block (primary_key = ["...`},
		{name: "xmin without a key", table: "table \"nokey\" {\n  sync = \"xmin\"\n}",
			want: []string{"create table postgres.prod/nokey: new table: initial sync", "error line 2: A merge needs a primary key"}},
		{name: "incremental on a view", table: "table \"v_orders\" {\n  sync = \"incremental\"\n  incremental_field = \"id\"\n}",
			want: []string{"create table postgres.prod/v_orders: new table: initial sync", "error line 2: A merge needs a primary key", "error line 4: Not a cursor column"}, detail: "is a view, which has no primary key"},
		{name: "incremental with a declared key", table: "table \"declared\" {\n  sync = \"incremental\"\n  incremental_field = \"a\"\n  primary_key = [\"a\"]\n}",
			want: []string{"create table postgres.prod/declared: new table: initial sync"}},
		{name: "append without a key", table: "table \"nokey\" {\n  sync = \"append\"\n  incremental_field = \"a\"\n}",
			want: []string{"create table postgres.prod/nokey: new table: initial sync", "warning line 4: Nullable cursor column"}},
		{name: "table the user may not read", table: "table \"secret\" {\n  sync = \"full_refresh\"\n}",
			want: []string{"create table postgres.prod/secret: new table: initial sync", "error line 2: Permission denied"}, detail: `GRANT SELECT ON "public"."secret" TO "sluice";`},
		{name: "column privileges do not let a table be locked", table: "table \"secret\" {\n  sync = \"full_refresh\"\n  columns = [\"pub\"]\n}",
			want: []string{"create table postgres.prod/secret: new table: initial sync", "error line 2: Permission denied"}, detail: "a read locks the table"},
		{name: "columns the user may read of a materialized view", table: "table \"secret_mv\" {\n  sync = \"full_refresh\"\n  columns = [\"pub\"]\n}",
			want: []string{"create table postgres.prod/secret_mv: new table: initial sync"}},
		{name: "a column of a materialized view the user may not read", table: "table \"secret_mv\" {\n  sync = \"full_refresh\"\n}",
			want: []string{"create table postgres.prod/secret_mv: new table: initial sync", "error line 2: Permission denied"}, detail: `not "priv"`},
		{name: "disabled table the user may not read", table: "table \"secret\" {\n  sync = \"full_refresh\"\n  enabled = false\n}",
			want: []string{"create table postgres.prod/secret: new table, disabled: recorded, not synced"}},
		{name: "materialized view never populated", table: "table \"empty_mv\" {\n  sync = \"full_refresh\"\n}",
			want: []string{"create table postgres.prod/empty_mv: new table: initial sync", "error line 2: Materialized view not populated"}, detail: `REFRESH MATERIALIZED VIEW "public"."empty_mv";`},
		{name: "nullable cursor warns", table: "table \"events\" {\n  sync = \"append\"\n  incremental_field = \"created_at\"\n  frequency = \"1h\"\n}",
			want: []string{"create table postgres.prod/events: new table: initial sync", "warning line 4: Cursor column without an index", "warning line 4: Nullable cursor column"}},
		{name: "large table synced often", table: "table \"events\" {\n  sync = \"full_refresh\"\n  frequency = \"15m\"\n}",
			want: []string{"create table postgres.prod/events: new table: initial sync", "warning line 4: Large table synced often"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadConfig(t, "source \"postgres\" \"prod\" {\n"+tt.table+"\n}\n")
			obs := observed()
			if tt.checks != nil {
				obs.Checks = tt.checks
			}
			// Record the source itself so that only the table is new.
			st := recorded(t, cfg, obs)
			for _, s := range st.Sources {
				s.Tables = map[string]*state.Table{}
			}
			p := plan(t, cfg, st, obs)
			got := brief(p)
			var kept []string
			for _, g := range got {
				if !strings.Contains(g, " publication ") && !strings.Contains(g, " slot ") {
					kept = append(kept, g)
				}
			}
			if diff := cmp.Diff(tt.want, kept); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tt.detail != "" {
				found := false
				for _, d := range p.Diagnostics {
					found = found || strings.Contains(d.Detail, tt.detail)
				}
				if !found {
					t.Errorf("no diagnostic detail contains %q: %v", tt.detail, p.Diagnostics)
				}
			}
		})
	}
}

// TestDrift has one case per kind of drift: the live source changed after
// apply recorded it.
func TestDrift(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*providers.Observed)
		want   []string
	}{
		{
			name:   "table missing from the publication",
			break_: func(o *providers.Observed) { o.Publication.Tables = nil },
			want: []string{
				"update publication postgres.prod: add table public.events",
				"drift postgres.prod: table public.events missing from publication sluice_pub_prod",
			},
		},
		{
			name:   "extra table in a managed publication",
			break_: func(o *providers.Observed) { o.Publication.Tables = append(o.Publication.Tables, "public.orders") },
			want: []string{
				"update publication postgres.prod: drop table public.orders",
				"drift postgres.prod: extra table public.orders in managed publication sluice_pub_prod",
			},
		},
		{
			name:   "publication missing",
			break_: func(o *providers.Observed) { o.Publication = nil },
			want: []string{
				"create publication postgres.prod: recreate: missing at the source; add table public.events",
				"drift postgres.prod: publication sluice_pub_prod is missing at the source",
			},
		},
		{
			name:   "slot missing",
			break_: func(o *providers.Observed) { o.Slot = nil },
			want: []string{
				"create slot postgres.prod: recreate: missing at the source; the changes it held are lost, so cdc tables are resynced",
				"resync table postgres.prod/events: the replication slot was lost or replaced: changes since the last sync cannot be streamed",
				"drift postgres.prod: replication slot sluice_prod is missing at the source",
			},
		},
		{
			name:   "slot invalidated",
			break_: func(o *providers.Observed) { o.Slot.WALStatus = "lost" },
			want: []string{
				"replace slot postgres.prod: recreate the invalidated slot; cdc tables are resynced",
				"resync table postgres.prod/events: the replication slot was lost or replaced: changes since the last sync cannot be streamed",
				"drift postgres.prod: replication slot sluice_prod was invalidated (wal_status = lost): the WAL it needed is gone",
			},
		},
		{
			name:   "slot lag over warning",
			break_: func(o *providers.Observed) { o.Slot.LagBytes = 2 << 30 },
			want:   []string{"drift postgres.prod: replication slot sluice_prod lags 2GiB behind, over lag_warning (1GiB)"},
		},
		{
			name:   "slot lag over critical",
			break_: func(o *providers.Observed) { o.Slot.LagBytes = 11 << 30 },
			want:   []string{"drift postgres.prod: replication slot sluice_prod lags 11GiB behind, over lag_critical (10GiB)"},
		},
		{
			name: "column dropped",
			break_: func(o *providers.Observed) {
				o.Tables[0].Columns = append(o.Tables[0].Columns[:1:1], o.Tables[0].Columns[2:]...)
			},
			want: []string{
				`update table postgres.prod/orders: column "status" dropped at the source: NULL from now on`,
				`drift postgres.prod/orders: column "status" was dropped at the source`,
			},
		},
		{
			name:   "column retyped",
			break_: func(o *providers.Observed) { o.Tables[0].Columns[2].Type = "numeric(14,2)" },
			want: []string{
				`resync table postgres.prod/orders: column "total" changed type from numeric(12,2) to numeric(14,2): a type change is a resync`,
				`drift postgres.prod/orders: column "total" changed type at the source from numeric(12,2) to numeric(14,2)`,
			},
		},
		{
			name: "column added at the source",
			break_: func(o *providers.Observed) {
				o.Tables[2].Columns = append(o.Tables[2].Columns, col("phone", "text", true))
			},
			want: []string{`update table postgres.prod/customers: new column "phone" at the source: synced from now on (new_columns = sync_forward)`},
		},
		{
			name:   "table dropped at the source",
			break_: func(o *providers.Observed) { o.Tables = o.Tables[1:] },
			want: []string{
				"drift postgres.prod/orders: table public.orders no longer exists at the source",
				"error line 13: Table does not exist",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadConfig(t, baseConfig)
			obs := observed()
			st := recorded(t, cfg, obs)
			tt.break_(obs)
			p := plan(t, cfg, st, obs)
			if diff := cmp.Diff(tt.want, brief(p)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestDroppedTable: a cdc table dropped at the source (which removes it
// from the publication) and then removed from the configuration is a
// plain delete, with no drift left to report.
func TestDroppedTable(t *testing.T) {
	twoCDC := strings.Replace(baseConfig, `table "customers" {
    sync = "full_refresh"`, `table "customers" {
    sync = "cdc"`, 1)
	obs := observed()
	obs.Publication.Tables = []string{"public.customers", "public.events"}
	st := recorded(t, loadConfig(t, twoCDC), obs)

	obs.Tables = slices.DeleteFunc(obs.Tables, func(tb providers.Table) bool { return tb.Name == "events" })
	obs.Publication.Tables = []string{"public.customers"}
	// With its block still there, the plan fails on it.
	p := plan(t, loadConfig(t, twoCDC), st, obs)
	if !p.HasErrors() || !strings.Contains(p.Diagnostics[0].Detail, "remove this table block and run `sluice apply`") {
		t.Errorf("a block naming a dropped table: %v", p.Diagnostics)
	}
	withoutEvents := strings.Replace(twoCDC, `table "events" {
    sync = "cdc"
  }`, "", 1)
	got := brief(plan(t, loadConfig(t, withoutEvents), st, obs))
	want := []string{"delete table postgres.prod/events: removed from the configuration: syncing stops; warehouse table pg_events is kept; the table no longer exists at the source"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTargets(t *testing.T) {
	cfg := loadConfig(t, baseConfig)
	obs := observed()
	obs.Publication, obs.Slot = nil, nil
	tests := []struct {
		targets []string
		want    []string
	}{
		{[]string{"postgres.prod/orders"}, []string{
			"create source postgres.prod: new source",
			`create publication postgres.prod: cdc tables need publication "sluice_pub_prod"`,
			`create slot postgres.prod: cdc tables need replication slot "sluice_prod" (pgoutput)`,
			"create table postgres.prod/orders: new table: initial sync",
		}},
		{[]string{"postgres.other"}, nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, brief(plan(t, cfg, nil, obs, tt.targets...))); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tt.targets, diff)
		}
	}
}

// TestSecretsNeverInPlan renders every form of a plan whose password
// changed and looks for the password.
func TestSecretsNeverInPlan(t *testing.T) {
	cfg := loadConfig(t, baseConfig, "pw=s3cret-value")
	obs := observed()
	for _, st := range []*state.State{nil, recorded(t, loadConfig(t, baseConfig), obs)} {
		p := plan(t, cfg, st, obs)
		var out bytes.Buffer
		WriteText(&out, p, TextOptions{})
		WriteMarkdown(&out, p)
		WriteJSON(&out, p, cfg.Files)
		if strings.Contains(out.String(), "s3cret-value") {
			t.Fatalf("the password appears in the rendered plan:\n%s", out.String())
		}
	}
}

func TestHashes(t *testing.T) {
	cfg := loadConfig(t, baseConfig)
	obs := observed()
	p1 := plan(t, cfg, nil, obs)
	// Row estimates and lag move on their own: not a reason to go stale.
	obs.Tables[0].EstimatedRows = rows(99)
	obs.Slot.LagBytes = 5
	p2 := plan(t, cfg, nil, obs)
	if p1.ObservedHash != p2.ObservedHash {
		t.Error("observed hash changed with row estimates or lag")
	}
	obs.Tables[0].Columns = obs.Tables[0].Columns[:2]
	if plan(t, cfg, nil, obs).ObservedHash == p1.ObservedHash {
		t.Error("observed hash did not change with a dropped column")
	}
	if p1.ConfigHash != plan(t, loadConfig(t, "\n\n"+baseConfig), nil, observed()).ConfigHash {
		t.Error("config hash changed with formatting")
	}
	if p1.ConfigHash == plan(t, loadConfig(t, baseConfig, "pw=other"), nil, observed()).ConfigHash {
		t.Error("config hash did not change with the password")
	}
}

// TestRender compares every rendering of a plan rich in changes and drift
// with golden files (go test -update rewrites them).
func TestRender(t *testing.T) {
	base := loadConfig(t, baseConfig)
	obs := observed()
	st := recorded(t, base, obs)
	obs.Publication.Tables = nil
	obs.Tables[0].Columns[2].Type = "numeric(14,2)"
	edited := strings.Replace(baseConfig, `sync = "full_refresh"`, `sync = "cdc"`, 1)
	edited = strings.Replace(edited, `host     = "db.example.com"`, `host     = "db2.example.com"`, 1)
	cfg := loadConfig(t, edited, "pw=changed")
	p := plan(t, cfg, st, obs)
	for _, r := range []struct {
		file  string
		write func(*bytes.Buffer)
	}{
		{"plan.txt", func(b *bytes.Buffer) { WriteText(b, p, TextOptions{}) }},
		{"plan.md", func(b *bytes.Buffer) { WriteMarkdown(b, p) }},
		{"plan.json", func(b *bytes.Buffer) { WriteJSON(b, p, cfg.Files) }},
		{"empty.txt", func(b *bytes.Buffer) { WriteText(b, &Plan{}, TextOptions{}) }},
	} {
		var b bytes.Buffer
		r.write(&b)
		path := filepath.Join("testdata", r.file)
		if *update {
			os.MkdirAll("testdata", 0o755)
			os.WriteFile(path, b.Bytes(), 0o644)
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test -update creates it)", err)
		}
		if diff := cmp.Diff(string(want), b.String()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", path, diff)
		}
	}
}

func TestSavedPlanOnAnEmptyStateIsNotStale(t *testing.T) {
	cfg := loadConfig(t, baseConfig)
	first := plan(t, cfg, state.New(), observed())
	again := plan(t, cfg, state.New(), observed())
	if first.StateLineage == again.StateLineage {
		t.Fatal("test needs two fresh lineages")
	}
	if why := (&Saved{Plan: first}).Stale(again); why != "" {
		t.Errorf("stale: %s", why)
	}
	st := state.New()
	st.Serial = 3
	if why := (&Saved{Plan: first}).Stale(plan(t, cfg, st, observed())); why == "" {
		t.Error("a plan of an empty state applied to a written one is not stale")
	}
}

// TestHistoricalLoadOff: a new table without historical load says how it
// starts, shows the attribute, and a resync of one warns that it starts
// again without its history.
func TestHistoricalLoadOff(t *testing.T) {
	off := strings.Replace(baseConfig, "    incremental_field = \"updated_at\"\n", "    incremental_field = \"updated_at\"\n    historical_load   = false\n", 1)
	off = strings.Replace(off, "    sync = \"cdc\"\n", "    sync = \"cdc\"\n    historical_load = false\n", 1)
	p := plan(t, loadConfig(t, off), nil, observed())
	var got []string
	for _, c := range p.Changes {
		if c.Kind == KindTable && c.After["historical_load"] == false {
			got = append(got, c.Address+": "+strings.Join(c.Reasons, "; "))
		}
	}
	want := []string{
		"postgres.prod/events: new table, historical_load = false: no snapshot; created empty, then the changes streamed from the replication slot's position",
		"postgres.prod/orders: new table, historical_load = false: apply records the greatest updated_at now; the first sync reads only the rows past it",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("creates (-want +got):\n%s", diff)
	}

	st := recorded(t, loadConfig(t, off), observed())
	p = plan(t, loadConfig(t, strings.Replace(off, `"updated_at"`, `"id"`, 1)), st, observed())
	got = nil
	for _, c := range p.Changes {
		got = append(got, fmt.Sprintf("%s %s: %s", c.Action, c.Address, strings.Join(c.Warnings, "; ")))
	}
	want = []string{"resync postgres.prod/orders: historical_load = false: the resync starts the table again without its history (emptied, then what changes after it); `sluice resync -historical postgres.prod/orders` after apply loads the history instead"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resync (-want +got):\n%s", diff)
	}
}
