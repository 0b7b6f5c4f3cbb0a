package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHashColumns: hash needs the source's hash_salt, names each column
// once, and with columns set only columns the table reads; the salt is a
// secret that no diagnostic shows.
func TestHashColumns(t *testing.T) {
	const salt = "s3cr3t-pepper"
	tests := []struct {
		name     string
		src      string
		validate bool
		want     []diag
		hash     []string
	}{
		{
			name: "hash with salt",
			src: `source "postgres" "p" {
  hash_salt = "` + salt + `"
  table "t" {
    sync = "full_refresh"
    hash = ["name", "email"]
  }
}
`,
			hash: []string{"name", "email"},
		},
		{
			name: "hash without salt",
			src: `source "postgres" "p" {
  table "t" {
    sync = "cdc"
    hash = ["email"]
  }
}
`,
			want: []diag{{"error", "Missing hash_salt", 4}},
			hash: []string{"email"},
		},
		{
			name: "salt from a sensitive variable unknown at validate",
			src: `variable "salt" {
  type      = string
  sensitive = true
}
source "postgres" "p" {
  hash_salt = var.salt
  table "t" {
    sync = "cdc"
    hash = ["email"]
  }
}
`,
			validate: true,
			hash:     []string{"email"},
		},
		{
			name: "empty salt",
			src: `source "postgres" "p" {
  hash_salt = ""
  table "t" { sync = "full_refresh" }
}
`,
			want: []diag{{"error", "Empty hash_salt", 2}},
		},
		{
			name: "duplicate and empty names",
			src: `source "postgres" "p" {
  hash_salt = "` + salt + `"
  table "t" {
    sync = "full_refresh"
    hash = ["a", "a", ""]
  }
}
`,
			want: []diag{{"error", "Duplicate column", 5}, {"error", "Empty column name", 5}},
			hash: []string{"a", "a", ""},
		},
		{
			name: "column outside columns",
			src: `source "postgres" "p" {
  hash_salt = "` + salt + `"
  table "t" {
    sync              = "incremental"
    incremental_field = "at"
    primary_key       = ["id"]
    columns           = ["name"]
    hash              = ["name", "id", "at", "email"]
  }
}
`,
			want: []diag{{"error", "Hash column not synced", 8}},
			hash: []string{"name", "id", "at", "email"},
		},
		{
			name: "stripe source",
			src: `source "stripe" "s" {
  api_key = "sk_test_x"
  table "customers" {
    sync = "full_refresh"
    hash = ["email"]
  }
}
`,
			want: []diag{{"error", "hash not available", 5}},
			hash: []string{"email"},
		},
		{
			name: "hash_salt is no stripe attribute",
			src: `source "stripe" "s" {
  api_key   = "sk_test_x"
  hash_salt = "` + salt + `"
  table "customers" { sync = "full_refresh" }
}
`,
			want: []diag{{"error", "Unsupported argument", 3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := load(t, tt.src, Options{Validate: tt.validate})
			if diff := cmp.Diff(tt.want, summarize(diags)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			for _, d := range diags {
				if strings.Contains(d.Detail, salt) || strings.Contains(d.Summary, salt) {
					t.Errorf("a diagnostic shows the salt: %s: %s", d.Summary, d.Detail)
				}
			}
			if cfg == nil || len(cfg.Sources) == 0 || len(cfg.Sources[0].Tables) == 0 {
				return
			}
			src := cfg.Sources[0]
			if diff := cmp.Diff(tt.hash, src.Tables[0].Hash); diff != "" {
				t.Errorf("Hash (-want +got):\n%s", diff)
			}
			if _, set := src.Attrs["hash_salt"]; set && !src.Sensitive["hash_salt"] {
				t.Error("hash_salt is not marked sensitive")
			}
		})
	}
}
