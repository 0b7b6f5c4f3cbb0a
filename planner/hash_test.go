package planner

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hashConfig is baseConfig with a salted source and a hashed customers
// table.
var hashConfig = strings.NewReplacer(
	`source "postgres" "prod" {`, "variable \"salt\" {\n  type      = string\n  sensitive = true\n  default   = \"first-salt\"\n}\nsource \"postgres\" \"prod\" {\n  hash_salt = var.salt",
	"    sync = \"full_refresh\"\n", "    sync = \"full_refresh\"\n    hash = [\"id\"]\n",
).Replace(baseConfig)

// TestHashChanges: a changed hash list, and a changed hash_salt for the
// tables with hash columns, are resyncs; the salt shows only as a
// sensitive value changed.
func TestHashChanges(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		vars []string
		want []string
	}{
		{name: "unchanged"},
		{
			name: "hash list changed",
			edit: func(s string) string { return strings.Replace(s, `hash = ["id"]`, `hash = ["id", "email"]`, 1) },
			want: []string{"resync table postgres.prod/customers: hash columns change from (id) to (id, email): the table is reloaded so that every row holds the same form"},
		},
		{
			name: "hash removed",
			edit: func(s string) string { return strings.Replace(s, "    hash = [\"id\"]\n", "", 1) },
			want: []string{"resync table postgres.prod/customers: hash columns change from (id) to (): the table is reloaded so that every row holds the same form"},
		},
		{
			name: "salt changed",
			vars: []string{"salt=second-salt"},
			want: []string{
				"update source postgres.prod: hash_salt (sensitive value changed)",
				"resync table postgres.prod/customers: hash_salt changed: the hash columns are computed again",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := observed()
			st := recorded(t, loadConfig(t, hashConfig), obs)
			if got := st.Sources["postgres.prod"].Tables["customers"].Hash; !cmp.Equal(got, []string{"id"}) {
				t.Fatalf("recorded hash = %q", got)
			}
			src := hashConfig
			if tt.edit != nil {
				src = tt.edit(src)
			}
			cfg := loadConfig(t, src, tt.vars...)
			p := plan(t, cfg, st, obs)
			if diff := cmp.Diff(tt.want, brief(p)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			var out bytes.Buffer
			WriteText(&out, p, TextOptions{})
			WriteJSON(&out, p, cfg.Files)
			if strings.Contains(out.String(), "-salt") {
				t.Errorf("the salt appears in the plan:\n%s", out.String())
			}
		})
	}
}
