package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

// diag is the part of a diagnostic the tests assert: what it says and the
// line it points at.
type diag struct {
	Severity string
	Summary  string
	Line     int
}

func summarize(diags hcl.Diagnostics) []diag {
	var out []diag
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		line := 0
		if d.Subject != nil {
			line = d.Subject.Start.Line
		}
		out = append(out, diag{sev, d.Summary, line})
	}
	return out
}

// writeConfig writes files into a fresh directory and returns it.
func writeConfig(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func load(t *testing.T, src string, opts Options) (*Config, hcl.Diagnostics) {
	t.Helper()
	if opts.LookupEnv == nil {
		opts.LookupEnv = noEnv
	}
	return Load(writeConfig(t, map[string]string{"main.hcl": src}), opts)
}

const pgHead = `source "postgres" "prod" {
  host = "db"
`

// TestStaticErrors has one case per static check of the issue; each asserts
// the summary and the line, and a part of the detail that tells the user
// what to do.
func TestStaticErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		opts   Options
		want   []diag
		detail string // a substring of the first diagnostic's detail
	}{
		{
			name:   "unknown attribute with suggestion",
			src:    pgHead + "  pasword = \"x\"\n}\n",
			want:   []diag{{"error", "Unsupported argument", 3}},
			detail: `Did you mean "password"?`,
		},
		{
			name:   "unknown block with suggestion",
			src:    pgHead + "  tabel \"orders\" {\n    sync = \"full_refresh\"\n  }\n}\n",
			want:   []diag{{"error", "Unsupported block type", 3}},
			detail: `Did you mean "table"?`,
		},
		{
			name:   "unknown top-level block",
			src:    "sources \"postgres\" \"x\" {}\n",
			want:   []diag{{"error", "Unsupported block type", 1}},
			detail: `Did you mean "source"?`,
		},
		{
			name:   "unknown source type",
			src:    "source \"postgress\" \"x\" {}\n",
			want:   []diag{{"error", "Unknown source type", 1}},
			detail: `Did you mean "postgres"?`,
		},
		{
			name: "duplicate source",
			src:  "source \"postgres\" \"a\" {}\nsource \"postgres\" \"a\" {}\n",
			want: []diag{{"error", "Duplicate source", 2}},
		},
		{
			name: "duplicate table, qualified and not",
			src:  pgHead + "  table \"orders\" { sync = \"full_refresh\" }\n  table \"public.orders\" { sync = \"full_refresh\" }\n}\n",
			want: []diag{{"error", "Duplicate table", 4}},
		},
		{
			name:   "unknown sync type",
			src:    pgHead + "  table \"orders\" {\n    sync = \"incremntal\"\n  }\n}\n",
			want:   []diag{{"error", `Unknown sync type "incremntal"`, 4}},
			detail: `Did you mean "incremental"?`,
		},
		{
			name:   "missing sync",
			src:    pgHead + "  table \"orders\" {}\n}\n",
			want:   []diag{{"error", "Missing required argument", 3}},
			detail: `"sync" is required`,
		},
		{
			name:   "incremental without incremental_field",
			src:    pgHead + "  table \"orders\" {\n    sync = \"incremental\"\n  }\n}\n",
			want:   []diag{{"error", "Missing incremental_field", 4}},
			detail: "sluice inspect postgres.prod",
		},
		{
			name: "append without incremental_field",
			src:  pgHead + "  table \"events\" {\n    sync = \"append\"\n  }\n}\n",
			want: []diag{{"error", "Missing incremental_field", 4}},
		},
		{
			name: "cdc_output on a non-cdc table",
			src:  pgHead + "  table \"orders\" {\n    sync = \"full_refresh\"\n    cdc_output = \"both\"\n  }\n}\n",
			want: []diag{{"error", "cdc_output on a table that is not cdc", 5}},
		},
		{
			name: "historical_load on a full_refresh table",
			src:  pgHead + "  table \"orders\" {\n    sync = \"full_refresh\"\n    historical_load = false\n  }\n}\n",
			want: []diag{{"error", "historical_load on a table that does not load history", 5}},
		},
		{
			name: "historical_load on an xmin table",
			src:  pgHead + "  table \"orders\" {\n    sync = \"xmin\"\n    historical_load = true\n  }\n}\n",
			want: []diag{{"error", "historical_load on a table that does not load history", 5}},
		},
		{
			name: "historical_load = false on a stripe table",
			src:  "source \"stripe\" \"billing\" {\n  api_key = \"sk_test\"\n  table \"charges\" {\n    sync = \"incremental\"\n    historical_load = false\n  }\n}\n",
			want: []diag{{"error", "historical_load not available", 5}},
		},
		{
			name:   "batch_size on a full_refresh table",
			src:    pgHead + "  table \"orders\" {\n    sync = \"full_refresh\"\n    batch_size = 10000\n  }\n}\n",
			want:   []diag{{"error", "batch_size on a full_refresh table", 5}},
			detail: "incremental, append and xmin",
		},
		{
			name: "batch_size on a cdc table",
			src:  pgHead + "  table \"orders\" {\n    sync = \"cdc\"\n    batch_size = 10000\n  }\n}\n",
			want: []diag{{"error", "batch_size on a cdc table", 5}},
		},
		{
			name:   "batch_size too small",
			src:    pgHead + "  table \"orders\" {\n    sync = \"xmin\"\n    batch_size = 999\n  }\n}\n",
			want:   []diag{{"error", "Invalid value", 5}},
			detail: "from 1000 to 100000000",
		},
		{
			name:   "bad cdc_output",
			src:    pgHead + "  table \"orders\" {\n    sync = \"cdc\"\n    cdc_output = \"histroy\"\n  }\n}\n",
			want:   []diag{{"error", `Invalid cdc output "histroy"`, 5}},
			detail: `Did you mean "history"?`,
		},
		{
			name: "webhook table on a source without webhooks",
			src:  pgHead + "  table \"orders\" {\n    sync = \"webhook\"\n  }\n}\n",
			want: []diag{{"error", "Webhooks not supported", 4}},
		},
		{
			name:   "webhook table without a webhook block",
			src:    "source \"stripe\" \"billing\" {\n  api_key = \"sk_test\"\n  table \"charges\" {\n    sync = \"webhook\"\n  }\n}\n",
			want:   []diag{{"error", "Missing webhook block", 4}},
			detail: "webhook {",
		},
		{
			name: "cdc on stripe",
			src:  "source \"stripe\" \"billing\" {\n  api_key = \"sk_test\"\n  table \"charges\" {\n    sync = \"cdc\"\n  }\n}\n",
			want: []diag{{"error", "Sync type not available", 4}},
		},
		{
			name: "stripe without api_key",
			src:  "source \"stripe\" \"billing\" {\n}\n",
			want: []diag{{"error", "Missing api_key", 1}},
		},
		{
			name:   "bad prefix",
			src:    pgHead + "  prefix = \"Prod-DB\"\n}\n",
			want:   []diag{{"error", "Invalid prefix", 3}},
			detail: "lowercase",
		},
		{
			name: "prefix starting with a digit",
			src:  pgHead + "  prefix = \"1prod\"\n}\n",
			want: []diag{{"error", "Invalid prefix", 3}},
		},
		{
			name:   "two sources with the same default prefix",
			src:    "source \"postgres\" \"a\" {}\n\nsource \"postgres\" \"b\" {}\n",
			want:   []diag{{"error", "Duplicate prefix", 3}},
			detail: `defaults to the source type, "postgres"`,
		},
		{
			name: "two sources with the same explicit prefix",
			src:  "source \"postgres\" \"a\" {\n  prefix = \"x\"\n}\nsource \"postgres\" \"b\" {\n  prefix = \"x\"\n}\n",
			want: []diag{{"error", "Duplicate prefix", 5}},
		},
		{
			name:   "warehouse name collision across sources",
			src:    "source \"postgres\" \"a\" {\n  prefix = \"a\"\n  table \"b_c\" { sync = \"full_refresh\" }\n}\nsource \"postgres\" \"b\" {\n  prefix = \"a_b\"\n  table \"c\" { sync = \"full_refresh\" }\n}\n",
			want:   []diag{{"error", "Warehouse table name collision", 7}},
			detail: `"a_b_c"`,
		},
		{
			name:   "history table collides with a table",
			src:    pgHead + "  prefix = \"p\"\n  cdc {}\n  table \"orders\" {\n    sync       = \"cdc\"\n    cdc_output = \"both\"\n  }\n  table \"orders_cdc\" { sync = \"full_refresh\" }\n}\n",
			want:   []diag{{"error", "Warehouse table name collision", 9}},
			detail: `"p_orders_cdc"`,
		},
		{
			name: "names cut to 63 bytes collide in a postgres warehouse",
			src: "warehouse {\n  backend = \"postgres\"\n  url     = \"postgres://wh\"\n}\n" + pgHead + "  prefix = \"" + strings.Repeat("p", 40) + "\"\n" +
				"  table \"" + strings.Repeat("t", 40) + "\" { sync = \"full_refresh\" }\n" +
				"  table \"" + PostgresTableName(strings.Repeat("p", 40) + "_" + strings.Repeat("t", 40))[41:] + "\" { sync = \"full_refresh\" }\n}\n",
			want:   []diag{{"error", "Warehouse table name collision", 9}},
			detail: "cut and end with a hash",
		},
		{
			name:   "bad source frequency",
			src:    pgHead + "  frequency = \"6 hours\"\n}\n",
			want:   []diag{{"error", "Invalid frequency", 3}},
			detail: "such as 30m, 6h or 1d",
		},
		{
			name: "bad table frequency",
			src:  pgHead + "  table \"t\" {\n    sync = \"full_refresh\"\n    frequency = \"daily@25:00\"\n  }\n}\n",
			want: []diag{{"error", "Invalid frequency", 5}},
		},
		{
			name:   "frequency too short",
			src:    pgHead + "  frequency = \"10s\"\n}\n",
			want:   []diag{{"error", "Invalid frequency", 3}},
			detail: "minimum",
		},
		{
			name: "bad size",
			src:  pgHead + "  cdc {\n    lag_warning = \"1 gigabyte\"\n  }\n}\n",
			want: []diag{{"error", "Invalid size", 4}},
		},
		{
			name:   "lag_warning not below lag_critical",
			src:    pgHead + "  cdc {\n    lag_warning = \"20GiB\"\n  }\n}\n",
			want:   []diag{{"error", "Lag thresholds out of order", 4}},
			detail: "lag_warning (20GiB) must be smaller than lag_critical (10GiB)",
		},
		{
			name: "bad slot name",
			src:  pgHead + "  cdc {\n    slot = \"Sluice-Prod\"\n  }\n}\n",
			want: []diag{{"error", "Invalid slot name", 4}},
		},
		{
			name:   "bad sslmode",
			src:    pgHead + "  sslmode = \"required\"\n}\n",
			want:   []diag{{"error", `Invalid sslmode "required"`, 3}},
			detail: `Did you mean "require"?`,
		},
		{
			name: "port out of range",
			src:  pgHead + "  port = 70000\n}\n",
			want: []diag{{"error", "Invalid value", 3}},
		},
		{
			name: "wrong attribute type",
			src:  pgHead + "  port = \"five\"\n}\n",
			want: []diag{{"error", "Incorrect attribute value type", 3}},
		},
		{
			name: "ssh tunnel without credentials",
			src:  pgHead + "  ssh_tunnel {\n    host = \"b\"\n    user = \"u\"\n  }\n}\n",
			want: []diag{{"error", "Missing SSH credentials", 3}},
		},
		{
			name: "ssh tunnel ignoring host keys warns",
			src:  pgHead + "  ssh_tunnel {\n    host = \"b\"\n    user = \"u\"\n    password = \"p\"\n    insecure_ignore_host_key = true\n  }\n}\n",
			want: []diag{{"warning", "SSH host key not checked", 7}},
		},
		{
			name:   "unknown variable",
			src:    pgHead + "  password = var.pg_pasword\n}\nvariable \"pg_password\" {\n  default = \"x\"\n}\n",
			want:   []diag{{"error", "Reference to undeclared input variable", 3}},
			detail: `Did you mean "pg_password"?`,
		},
		{
			name:   "missing required variable",
			src:    "variable \"pg_password\" {\n  type = string\n}\n" + pgHead + "  password = var.pg_password\n}\n",
			want:   []diag{{"error", "No value for required variable", 1}},
			detail: "SLUICE_VAR_pg_password",
		},
		{
			name: "-var for an undeclared variable",
			src:  pgHead + "}\n",
			opts: Options{Vars: []string{"nope=1"}},
			want: []diag{{"error", "Value for undeclared variable", 0}},
		},
		{
			name: "-var without a value",
			src:  pgHead + "}\n",
			opts: Options{Vars: []string{"novalue"}},
			want: []diag{{"error", "Invalid -var option", 0}},
		},
		{
			name: "-var of the wrong type",
			src:  "variable \"n\" {\n  type = number\n}\n" + pgHead + "  port = var.n\n}\n",
			opts: Options{Vars: []string{"n=abc"}},
			want: []diag{{"error", "Invalid value for variable", 0}},
		},
		{
			name:   "cycle in locals",
			src:    "locals {\n  a = local.b\n  b = \"${local.c}x\"\n  c = local.a\n}\n",
			want:   []diag{{"error", "Cycle in local values", 2}},
			detail: "local.a -> local.b -> local.c -> local.a",
		},
		{
			name: "self-referencing local",
			src:  "locals {\n  a = local.a\n}\n",
			want: []diag{{"error", "Cycle in local values", 2}},
		},
		{
			name: "undeclared local",
			src:  "locals {\n  a = local.nope\n}\n",
			want: []diag{{"error", "Reference to undeclared local value", 2}},
		},
		{
			name:   "env() of an unset variable",
			src:    "source \"stripe\" \"b\" {\n  api_key = env(\"STRIPE_API_KEY\")\n}\n",
			want:   []diag{{"error", "Invalid function argument", 2}},
			detail: "STRIPE_API_KEY is not set",
		},
		{
			name:   "file() of a missing file",
			src:    pgHead + "  sslrootcert = file(\"nope.crt\")\n}\n",
			want:   []diag{{"error", "Invalid function argument", 3}},
			detail: "no such file",
		},
		{
			name: "duplicate state block",
			src:  "state {}\nstate {}\n",
			want: []diag{{"error", "Duplicate state block", 2}},
		},
		{
			name:   "bad state backend",
			src:    "state {\n  backend = \"s3\"\n}\n",
			want:   []diag{{"error", `Invalid backend "s3"`, 2}},
			detail: "local, postgres",
		},
		{
			name: "postgres state without url",
			src:  "state {\n  backend = \"postgres\"\n}\n",
			want: []diag{{"error", "Missing state URL", 1}},
		},
		{
			name:   "a fleet writing a local Parquet warehouse",
			src:    "state {\n  backend = \"postgres\"\n  url = \"postgres://h/d\"\n}\nwarehouse {\n  backend = \"parquet\"\n}\n",
			want:   []diag{{"error", "A fleet of runners needs a shared warehouse", 5}},
			detail: "runner { fleet = false }",
		},
		{
			name: "a fleet with the default Parquet warehouse",
			src:  "state {\n  backend = \"postgres\"\n  url = \"postgres://h/d\"\n}\n",
			want: []diag{{"error", "A fleet of runners needs a shared warehouse", 1}},
		},
		{
			name: "one runner on postgres state with a Parquet warehouse",
			src:  "state {\n  backend = \"postgres\"\n  url = \"postgres://h/d\"\n}\nrunner {\n  fleet = false\n}\n",
			want: nil,
		},
		{
			name: "a fleet of the local state backend",
			src:  "runner {\n  fleet = true\n}\n",
			want: []diag{{"error", "A fleet needs the postgres state backend", 2}},
		},
		{
			name: "runner concurrency zero",
			src:  "runner {\n  concurrency = 0\n}\n",
			want: []diag{{"error", "Invalid value", 2}},
		},
		{
			name: "bad table pattern",
			src:  pgHead + "  tables \"audit_[\" {\n    sync = \"full_refresh\"\n  }\n}\n",
			want: []diag{{"error", "Invalid table pattern", 3}},
		},
		{
			name: "bad exclude pattern",
			src:  pgHead + "  tables \"audit_*\" {\n    sync    = \"full_refresh\"\n    exclude = [\"a[\"]\n  }\n}\n",
			want: []diag{{"error", "Invalid exclude pattern", 5}},
		},
		{
			name: "a pattern's attributes are checked as a table's",
			src:  pgHead + "  tables \"*\" {\n    sync = \"incremental\"\n  }\n}\n",
			want: []diag{{"error", "Missing incremental_field", 4}},
		},
		{
			name: "bad table name",
			src:  pgHead + "  table \"a.b.c\" { sync = \"full_refresh\" }\n}\n",
			want: []diag{{"error", "Invalid table name", 3}},
		},
		{
			name: "webhook url with a query",
			src:  "source \"stripe\" \"b\" {\n  api_key = \"k\"\n  webhook {\n    url = \"https://x.example.com/?a=b\"\n  }\n}\n",
			want: []diag{{"error", "Invalid webhook URL", 4}},
		},
		{
			name: "incremental_field on a full_refresh table warns",
			src:  pgHead + "  table \"t\" {\n    sync = \"full_refresh\"\n    incremental_field = \"id\"\n  }\n}\n",
			want: []diag{{"warning", "incremental_field ignored", 5}},
		},
		{
			name: "duplicate primary key column",
			src:  pgHead + "  table \"t\" {\n    sync = \"full_refresh\"\n    primary_key = [\"id\", \"id\"]\n  }\n}\n",
			want: []diag{{"error", "Duplicate column", 5}},
		},
		{
			name: "syntax error",
			src:  "source \"postgres\" \"x\" {\n  host = \n}\n",
			want: []diag{{"error", "Invalid expression", 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := load(t, tt.src, tt.opts)
			if diff := cmp.Diff(tt.want, summarize(diags)); diff != "" {
				t.Fatalf("diagnostics (-want +got):\n%s\nall: %v", diff, diags)
			}
			if tt.detail != "" && !strings.Contains(diags[0].Detail, tt.detail) {
				t.Errorf("detail %q does not contain %q", diags[0].Detail, tt.detail)
			}
			for _, d := range diags {
				if d.Subject != nil && d.Subject.Filename != "main.hcl" {
					t.Errorf("diagnostic %q names file %q, want main.hcl", d.Summary, d.Subject.Filename)
				}
			}
		})
	}
}

// TestAllErrorsAtOnce checks that one broken file yields every error, not
// just the first: the user fixes them in one pass.
func TestAllErrorsAtOnce(t *testing.T) {
	src, err := os.ReadFile("testdata/many-errors.hcl")
	if err != nil {
		t.Fatal(err)
	}
	_, diags := load(t, string(src), Options{})
	want := []diag{
		{"error", "Unsupported argument", 4},
		{"error", "Invalid frequency", 5},
		{"error", `Unknown sync type "incremntal"`, 8},
		{"error", "Missing incremental_field", 11},
		{"error", "Webhooks not supported", 14},
		{"error", "Invalid prefix", 19},
	}
	if diff := cmp.Diff(want, summarize(diags)); diff != "" {
		t.Fatalf("diagnostics (-want +got):\n%s", diff)
	}
}

func TestDefaults(t *testing.T) {
	cfg, diags := load(t, `
source "postgres" "prod-eu" {
  host = "db"
  table "orders" { sync = "full_refresh" }
  table "events" { sync = "cdc" }
}
source "stripe" "billing" {
  api_key = "sk_test"
  table "customers" { sync = "incremental" }
}
`, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pg := cfg.Sources[0]
	type summary struct {
		Prefix, SSLMode, Schema, Publication, Slot, Management string
		Frequency                                              string
		LagWarning, LagCritical                                int64
		AutoDropSlot                                           bool
		TableFreq, CDCOutput, NewColumns, StripeCursor         string
		Enabled                                                bool
		State, StatePath, Warehouse, WarehousePath, Listen     string
		Concurrency                                            int
	}
	got := summary{
		Prefix: pg.Prefix, SSLMode: pg.Postgres.SSLMode, Schema: pg.Postgres.Schema,
		Publication: pg.Postgres.CDC.Publication, Slot: pg.Postgres.CDC.Slot, Management: pg.Postgres.CDC.Management,
		Frequency: pg.Frequency.String(), LagWarning: pg.Postgres.CDC.LagWarning, LagCritical: pg.Postgres.CDC.LagCritical,
		AutoDropSlot: pg.Postgres.CDC.AutoDropSlot, TableFreq: pg.Tables[0].Frequency.String(),
		CDCOutput: string(pg.Tables[1].CDCOutput), NewColumns: string(pg.Tables[0].NewColumns),
		StripeCursor: cfg.Sources[1].Tables[0].IncrementalField, Enabled: pg.Tables[0].Enabled,
		State: cfg.State.Backend, StatePath: cfg.State.Path, Warehouse: cfg.Warehouse.Backend, WarehousePath: cfg.Warehouse.Path,
		Listen: cfg.Runner.Listen, Concurrency: cfg.Runner.Concurrency,
	}
	want := summary{
		Prefix: "postgres", SSLMode: "require", Schema: "public",
		Publication: "sluice_pub_prod_eu", Slot: "sluice_prod_eu", Management: "managed",
		Frequency: "6h", LagWarning: 1 << 30, LagCritical: 10 << 30, AutoDropSlot: true,
		TableFreq: "6h", CDCOutput: "consolidated", NewColumns: "sync_forward", StripeCursor: "created", Enabled: true,
		State: "local", StatePath: ".sluice/state.json", Warehouse: "parquet", WarehousePath: "warehouse",
		Listen: "127.0.0.1:8080", Concurrency: 4,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if got, want := cfg.Sources[1].Prefix, "stripe"; got != want {
		t.Errorf("stripe prefix = %q, want %q", got, want)
	}
}

func TestConnectionStringKeepsItsSSLMode(t *testing.T) {
	cfg, diags := load(t, `source "postgres" "p" {
  connection_string = "postgres://u@h/db?sslmode=disable"
}`, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := cfg.Sources[0].Postgres.SSLMode; got != "" {
		t.Errorf("SSLMode = %q, want empty so the connection string's sslmode applies", got)
	}
}

// TestSensitiveTracking checks that a value derived from a sensitive
// variable, through locals, templates and functions, is flagged, and that
// secret attributes are flagged whatever their origin.
func TestSensitiveTracking(t *testing.T) {
	cfg, diags := load(t, `
variable "pw" {
  type      = string
  sensitive = true
}
variable "db" {
  type    = string
  default = "app"
}
locals {
  host = "db-${upper(var.pw)}.example.com"
}
source "postgres" "prod" {
  host     = local.host
  database = var.db
  user     = lower(var.pw)
  password = "literal"
  ssh_tunnel {
    host     = "bastion"
    user     = "u"
    password = "p"
  }
}
`, Options{Vars: []string{"pw=Secret"}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := cfg.Sources[0]
	want := map[string]bool{"host": true, "user": true, "password": true, "ssh_tunnel.password": true}
	if diff := cmp.Diff(want, s.Sensitive); diff != "" {
		t.Errorf("sensitive attributes (-want +got):\n%s", diff)
	}
	if s.Postgres.Host != "db-SECRET.example.com" || s.Postgres.User != "secret" || s.Postgres.Database != "app" {
		t.Errorf("values: host=%q user=%q database=%q", s.Postgres.Host, s.Postgres.User, s.Postgres.Database)
	}
}

// TestVariablePrecedence follows Terraform: default < SLUICE_VAR_ <
// -var-file (in order) < -var (in order).
func TestVariablePrecedence(t *testing.T) {
	dir := writeConfig(t, map[string]string{
		"main.hcl": `
variable "a" { default = "default" }
variable "b" { default = "default" }
variable "c" { default = "default" }
variable "d" { default = "default" }
variable "e" { default = "default" }
variable "tables" {
  type    = list(string)
  default = []
}
variable "port" {
  type    = number
  default = 1
}
`,
	})
	varFile1 := filepath.Join(t.TempDir(), "one.sluicevars")
	varFile2 := filepath.Join(t.TempDir(), "two.sluicevars")
	os.WriteFile(varFile1, []byte("c = \"file1\"\nd = \"file1\"\n"), 0o644)
	os.WriteFile(varFile2, []byte("d = \"file2\"\n"), 0o644)
	cfg, diags := Load(dir, Options{
		LookupEnv: envOf(map[string]string{"SLUICE_VAR_b": "env", "SLUICE_VAR_c": "env", "SLUICE_VAR_port": "5433", "SLUICE_VAR_undeclared": "ignored"}),
		VarFiles:  []string{varFile1, varFile2},
		Vars:      []string{"e=flag1", "e=flag2", `tables=["a", "b"]`},
	})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := map[string]string{}
	for name, v := range cfg.Variables {
		switch name {
		case "tables":
			got[name] = v.Value.GoString()
		case "port":
			got[name] = v.Value.AsBigFloat().String()
		default:
			got[name] = v.Value.AsString()
		}
	}
	want := map[string]string{
		"a": "default", "b": "env", "c": "file1", "d": "file2", "e": "flag2",
		"tables": `cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")})`,
		"port":   "5433",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("variable values (-want +got):\n%s", diff)
	}
}

func TestVarFileErrorsNameTheFile(t *testing.T) {
	dir := writeConfig(t, map[string]string{"main.hcl": `variable "a" { default = "x" }`})
	vf := filepath.Join(t.TempDir(), "prod.sluicevars")
	os.WriteFile(vf, []byte("a = \"ok\"\nbogus = 1\n"), 0o644)
	_, diags := Load(dir, Options{LookupEnv: noEnv, VarFiles: []string{vf}})
	want := []diag{{"error", "Value for undeclared variable", 2}}
	if diff := cmp.Diff(want, summarize(diags)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if diags[0].Subject.Filename != vf {
		t.Errorf("filename = %q, want %q", diags[0].Subject.Filename, vf)
	}
}

func TestFunctions(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	os.WriteFile(filepath.Join(home, "key.pem"), []byte("KEY"), 0o600)
	dir := writeConfig(t, map[string]string{
		"main.hcl": `
locals {
  names = split(",", "a,b")
}
source "postgres" "p" {
  host        = env("PGHOST_TEST", "fallback")
  user        = env("SET_VAR")
  database    = join("_", concat(local.names, ["c"]))
  sslrootcert = base64encode(file("ca.crt"))
  ssh_tunnel {
    host        = "b"
    user        = trimspace("  u  ")
    private_key = file("~/key.pem")
  }
  table "t" {
    sync    = "full_refresh"
    columns = jsondecode("[\"x\", \"y\"]")
  }
}
`,
		"ca.crt": "CA",
	})
	cfg, diags := Load(dir, Options{LookupEnv: envOf(map[string]string{"SET_VAR": "from-env"})})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pg := cfg.Sources[0].Postgres
	got := []string{pg.Host, pg.User, pg.Database, pg.SSLRootCert, pg.SSHTunnel.User, pg.SSHTunnel.PrivateKey, strings.Join(cfg.Sources[0].Tables[0].Columns, ",")}
	want := []string{"fallback", "from-env", "a_b_c", "Q0E=", "u", "KEY", "x,y"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestQualifiedTables(t *testing.T) {
	cfg, diags := load(t, `source "postgres" "p" {
  prefix = "pg"
  table "orders" { sync = "full_refresh" }
  table "sales.Orders" { sync = "full_refresh" }
  table "\"Sales\".\"Order.Items\"" { sync = "full_refresh" }
}`, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got [][3]string
	for _, tb := range cfg.Sources[0].Tables {
		got = append(got, [3]string{tb.Schema, tb.Table, tb.WarehouseName(cfg.Sources[0])})
	}
	want := [][3]string{
		{"", "orders", "pg_orders"},
		{"sales", "Orders", "pg_sales_orders"},
		{"Sales", "Order.Items", "pg_sales_order_items"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestBadInput feeds what a user might leave in a config directory by
// mistake: each gives one clear diagnostic and no panic.
func TestBadInput(t *testing.T) {
	big := strings.Repeat("# comment line to fill the file up\n", (10<<20)/35+1)
	garbage := strings.Repeat("this is not HCL at all, it's prose; (really) {\n", 2000)
	tests := []struct {
		name  string
		files map[string]string
		want  []diag
	}{
		{"empty directory", map[string]string{}, []diag{{"error", "No configuration files", 0}}},
		{"binary file", map[string]string{"x.hcl": "\x7fELF\x02\x01\x01\x00\x00\x00"}, []diag{{"error", "Configuration file is not text", 1}}},
		{"invalid utf-8", map[string]string{"x.hcl": "a = \"\xff\xfe\"\n"}, []diag{{"error", "Configuration file is not text", 1}}},
		{"10 MB file", map[string]string{"x.hcl": big}, []diag{{"error", "Configuration file too large", 1}}},
		{"only other files", map[string]string{"notes.txt": "hello"}, []diag{{"error", "No configuration files", 0}}},
		{"empty file", map[string]string{"x.hcl": ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Load(writeConfig(t, tt.files), Options{LookupEnv: noEnv})
			if diff := cmp.Diff(tt.want, summarize(diags)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("not HCL", func(t *testing.T) {
		_, diags := Load(writeConfig(t, map[string]string{"x.hcl": garbage}), Options{LookupEnv: noEnv})
		if !diags.HasErrors() {
			t.Fatal("no error for prose")
		}
		if len(diags) > maxDiagnosticsPerFile+1 {
			t.Errorf("%d diagnostics for one garbage file; want at most %d", len(diags), maxDiagnosticsPerFile+1)
		}
		if diags[0].Subject == nil || diags[0].Subject.Filename != "x.hcl" || diags[0].Subject.Start.Line != 1 {
			t.Errorf("first diagnostic does not point at x.hcl line 1: %v", diags[0])
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		_, diags := Load(filepath.Join(t.TempDir(), "nope"), Options{LookupEnv: noEnv})
		want := []diag{{"error", "Cannot read the configuration directory", 0}}
		if diff := cmp.Diff(want, summarize(diags)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestExamplesAreValid(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	os.WriteFile(keyFile, []byte("not a real key"), 0o600)
	tests := []struct {
		dir  string
		opts Options
	}{
		{"../examples/quickstart", Options{LookupEnv: noEnv}},
		{"../examples/full", Options{
			LookupEnv: envOf(map[string]string{"STRIPE_API_KEY": "sk_test_x", "SLUICE_VAR_pg_password": "pw"}),
			Vars:      []string{"bastion_key_path=" + keyFile},
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.dir), func(t *testing.T) {
			cfg, diags := Load(tt.dir, tt.opts)
			if len(diags) > 0 {
				t.Fatalf("diagnostics: %v", diags)
			}
			if len(cfg.Sources) == 0 {
				t.Fatal("no sources")
			}
			// The examples are also formatted canonically.
			for name, f := range cfg.Files {
				if out, _ := Format(f.Bytes, name); string(out) != string(f.Bytes) {
					t.Errorf("%s is not formatted; run sluice fmt", name)
				}
			}
		})
	}
}

func TestAllowMissingVariables(t *testing.T) {
	cfg, diags := load(t, "variable \"pw\" {}\nstate {\n  path = \"s.json\"\n}\nsource \"postgres\" \"p\" {\n  password = var.pw\n}\n", Options{AllowMissingVariables: true})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	if cfg.State.Path != "s.json" {
		t.Errorf("state path = %q", cfg.State.Path)
	}
}

// TestNoConfigurationWording names the directory once, properly, and says
// what to do, whether it is the current directory or one given by -chdir.
func TestNoConfigurationWording(t *testing.T) {
	dir := t.TempDir()
	_, diags := Load(dir, Options{LookupEnv: noEnv})
	if len(diags) != 1 {
		t.Fatalf("got %d diagnostics, want 1: %v", len(diags), diags)
	}
	want := "There are no *.hcl files in " + dir + ";"
	if d := diags[0].Detail; !strings.HasPrefix(d, want) || !strings.Contains(d, "-chdir=DIR") || !strings.Contains(d, "sluice init") {
		t.Errorf("detail %q, want it to start with %q and say what to do", d, want)
	}
	t.Chdir(dir)
	_, diags = Load(".", Options{LookupEnv: noEnv})
	want = "There are no *.hcl files in the current directory (" + dir + ");"
	if d := diags[0].Detail; !strings.HasPrefix(d, want) || strings.Contains(d, "directory the current") {
		t.Errorf("detail %q, want it to start with %q", d, want)
	}
}

func TestHistoricalLoad(t *testing.T) {
	cfg, diags := load(t, `
source "postgres" "prod" {
  host = "db"
  table "orders" { sync = "cdc" }
  table "events" {
    sync            = "cdc"
    historical_load = false
  }
  table "logs" {
    sync              = "append"
    incremental_field = "at"
    historical_load   = false
  }
}
`, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got []bool
	for _, tb := range cfg.Sources[0].Tables {
		got = append(got, tb.HistoricalLoad)
	}
	if diff := cmp.Diff([]bool{true, false, false}, got); diff != "" {
		t.Errorf("historical_load (-want +got):\n%s", diff)
	}
}
