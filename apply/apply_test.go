package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/planner"
	"github.com/sluice-dev/sluice/state"
)

const testConfig = `source "postgres" "prod" {
  prefix = "pg"
  host   = "db.example.com"
  table "orders" {
    sync      = "full_refresh"
    frequency = "2h"
  }
}
`

func loadConfig(t *testing.T, src string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(dir, config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg
}

// TestExecuteAppliesThePlan: apply records what the plan's changes say
// (Change.Planned), not the configuration read again: a configuration
// edited after planning changes nothing that is recorded. (Apply reads the
// configuration only to connect, which a full_refresh table does not need.)
func TestExecuteAppliesThePlan(t *testing.T) {
	ctx := context.Background()
	key := []byte("0123456789abcdef0123456789abcdef")
	cfg := loadConfig(t, testConfig)
	st := state.New()
	p := planner.Make(planner.Input{Config: cfg, State: st, FingerprintKey: key})
	if len(p.Changes) != 2 {
		t.Fatalf("plan: %d changes, want the source and its table", len(p.Changes))
	}
	// The files change between plan and apply.
	edited := loadConfig(t, strings.NewReplacer(`"2h"`, `"5h"`, "db.example.com", "db2.example.com").Replace(testConfig))
	backend := state.NewLocal(filepath.Join(t.TempDir(), "state.json"))
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	if _, err := Execute(ctx, p, Options{Config: edited, State: st, Backend: backend, FingerprintKey: key, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	got, err := backend.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs := got.Sources["postgres.prod"]
	if rs == nil || rs.Tables["orders"] == nil {
		t.Fatalf("state after apply: %+v", got.Sources)
	}
	if h := rs.Settings["host"]; h != "db.example.com" {
		t.Errorf("host recorded %q, want the planned db.example.com", h)
	}
	tb := rs.Tables["orders"]
	if f := tb.Frequency.String(); f != "2h" {
		t.Errorf("frequency recorded %q, want the planned 2h", f)
	}
	if tb.WarehouseTable != "pg_orders" || tb.Sync != config.SyncFullRefresh || !tb.AppliedAt.Equal(now) {
		t.Errorf("table recorded %+v", tb)
	}
	// With the configuration it was planned from, plan after apply is empty.
	if again := planner.Make(planner.Input{Config: cfg, State: got, FingerprintKey: key}); !again.Empty() {
		t.Errorf("plan after apply: %+v", again.Changes)
	}
}

// TestExecuteRefusesUnplanned: a change that does not say what it records
// (made by hand, or from an older saved plan) is an error, not a guess.
func TestExecuteRefusesUnplanned(t *testing.T) {
	ctx := context.Background()
	cfg := loadConfig(t, testConfig)
	p := planner.Make(planner.Input{Config: cfg, State: state.New(), FingerprintKey: []byte("k")})
	for i := range p.Changes {
		p.Changes[i].Planned = nil
	}
	backend := state.NewLocal(filepath.Join(t.TempDir(), "state.json"))
	_, err := Execute(ctx, p, Options{Config: cfg, State: state.New(), Backend: backend})
	if err == nil || !strings.Contains(err.Error(), "make a new plan") {
		t.Errorf("Execute: %v, want an error asking for a new plan", err)
	}
}
