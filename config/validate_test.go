package config

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidateWithoutSecrets loads configurations as validate does on a
// pull request from a fork: no variable values, no environment, no key
// files. Values that are not known are skipped by every check that needs
// them; every static error is still reported, with its line.
func TestValidateWithoutSecrets(t *testing.T) {
	const vars = `variable "pw" {
  type      = string
  sensitive = true
}
variable "x" {}
variable "l" {
  type = list(string)
}
`
	// Line numbers below count from the end of vars (8 lines).
	tests := []struct {
		name string
		src  string
		want []diag
	}{
		{
			name: "unset variable, env and file are no error",
			src: vars + `source "postgres" "p" {
  host     = env("PGHOST")
  password = var.pw
  ssh_tunnel {
    host        = "b"
    user        = "u"
    private_key = file("/nonexistent/id_ed25519")
  }
  table "t" { sync = "full_refresh" }
}
`,
		},
		{
			name: "static error next to an unset variable keeps its range",
			src: vars + `source "postgres" "p" {
  password = var.pw
  table "t" { sync = "incremental_typo" }
}
`,
			want: []diag{{"error", `Unknown sync type "incremental_typo"`, 11}},
		},
		{
			name: "unknown where a check needs the value",
			src: vars + `source "postgres" "p" {
  port = var.x
  frequency = var.x
  sslmode = var.x
  cdc {
    lag_warning  = var.x
    lag_critical = "512MiB"
  }
  table "t" {
    sync = var.x
    primary_key = [var.x]
    frequency = "${var.x}m"
  }
}
`,
		},
		{
			name: "type error on an unknown of a known type",
			src: vars + `source "postgres" "p" {
  host = var.l
  table "t" { sync = "full_refresh" }
}
`,
			want: []diag{{"error", "Incorrect attribute value type", 10}},
		},
		{
			name: "errors on known values are still reported",
			src: vars + `source "postgres" "p" {
  password = var.pw
  port = 70000
  frequency = "1s"
  table "t" { sync = "full_refresh" }
  table "t" { sync = "full_refresh" }
}
source "stripe" "s" {
  api_key = env("STRIPE_API_KEY")
  pasword = "x"
  table "t" { sync = "cdc" }
}
`,
			want: []diag{
				{"error", "Invalid frequency", 12},
				{"error", "Invalid value", 11},
				{"error", "Unsupported argument", 18},
				{"error", "Sync type not available", 19},
				{"error", "Duplicate table", 14},
			},
		},
		{
			name: "unknown prefix and schema make no collision",
			src: vars + `source "postgres" "a" {
  prefix = var.x
  schema = var.x
  table "t" { sync = "full_refresh" }
  table "other.t" { sync = "full_refresh" }
}
source "postgres" "b" {
  table "t" { sync = "full_refresh" }
}
warehouse {
  backend = var.x
  url     = env("WAREHOUSE_URL")
}
`,
		},
		{
			name: "unknown backend is not another backend",
			src: vars + `warehouse {
  backend = var.x
  url     = "postgres://w@h/db"
  schema  = "raw"
}
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := load(t, tt.src, Options{Validate: true})
			if diff := cmp.Diff(tt.want, summarize(diags)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidateKeepsSensitivity checks that values derived from a sensitive
// variable without a value are still treated as secrets.
func TestValidateKeepsSensitivity(t *testing.T) {
	cfg, diags := load(t, `variable "pw" {
  sensitive = true
}
source "postgres" "p" {
  user = "u-${var.pw}"
  host = "h"
  table "t" { sync = "full_refresh" }
}
`, Options{Validate: true})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	if s := cfg.Source("postgres.p"); s == nil || !s.Sensitive["user"] || s.Sensitive["host"] {
		t.Errorf("sensitive = %v, want user only", s.Sensitive)
	}
}

// TestLoadStillNeedsSecrets: outside validate, a variable without a value,
// an unset env() and a missing file are errors, as before.
func TestLoadStillNeedsSecrets(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	_, diags := Load("../examples/full", Options{LookupEnv: noEnv})
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary)
	}
	want := []string{"No value for required variable", "Invalid function argument", "Invalid function argument"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestValidateExampleWithoutSecrets is `sluice validate` of examples/full
// on a machine without its secrets or its bastion key.
func TestValidateExampleWithoutSecrets(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/id_ed25519
	cfg, diags := Load("../examples/full", Options{LookupEnv: noEnv, Validate: true})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	if len(cfg.Sources) != 2 {
		t.Fatalf("%d sources, want 2", len(cfg.Sources))
	}
	pg := cfg.Source("postgres.prod")
	if !pg.Sensitive["password"] || !pg.Sensitive["ssh_tunnel.private_key"] {
		t.Errorf("sensitive = %v", pg.Sensitive)
	}
	if got := filepath.Base(cfg.Dir); got != "full" {
		t.Errorf("dir %q", cfg.Dir)
	}
}
