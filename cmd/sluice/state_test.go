package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/state"
)

const stateTestConfig = `state {
  backend = "local"
  path    = "st/state.json"
}

source "postgres" "prod" {
  host    = "db.example.com"
  sslmode = "disable"
  table "orders" { sync = "full_refresh" }
}
`

// stateDir writes a configuration with a local state into a temporary
// directory and seeds the state; it returns the directory and the backend.
func stateDir(t *testing.T, seed *state.State) (string, *state.Local) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(stateTestConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	b := state.NewLocal(filepath.Join(dir, "st", "state.json"))
	if seed != nil {
		if err := b.Write(context.Background(), seed); err != nil {
			t.Fatal(err)
		}
	}
	return dir, b
}

func seededState() *state.State {
	st := state.New()
	st.Sources["postgres.prod"] = &state.Source{
		Address: "postgres.prod", Type: "postgres", Name: "prod",
		Resources: state.Resources{
			Management:  "managed",
			Slot:        &state.SlotState{Name: "sluice_prod", Plugin: "pgoutput"},
			Publication: &state.PublicationState{Name: "sluice_pub_prod"},
		},
		Tables: map[string]*state.Table{
			"orders":       {Name: "orders"},
			"sales.orders": {Name: "sales.orders"},
			"Customers":    {Name: "Customers"},
		},
	}
	st.Sources["postgres.prod-eu"] = &state.Source{Address: "postgres.prod-eu", Type: "postgres", Name: "prod-eu",
		Tables: map[string]*state.Table{"orders": {Name: "orders"}}}
	st.Sources["stripe.billing"] = &state.Source{Address: "stripe.billing", Type: "stripe", Name: "billing",
		Resources: state.Resources{Webhook: &state.WebhookState{ID: "we_123", Created: true}},
		Tables:    map[string]*state.Table{"charges": {Name: "charges"}}}
	return st
}

func TestStateList(t *testing.T) {
	dir, _ := stateDir(t, seededState())
	code, out, errOut := sluice(t, "", "-chdir="+dir, "state", "list")
	want := `postgres.prod
postgres.prod/Customers
postgres.prod/orders
postgres.prod/sales.orders
postgres.prod-eu
postgres.prod-eu/orders
stripe.billing
stripe.billing/charges
`
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	empty, _ := stateDir(t, nil)
	if code, out, errOut := sluice(t, "", "-chdir="+empty, "state", "list"); code != 0 || out != "" || errOut != "" {
		t.Errorf("no state: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(empty, "st")); err == nil {
		t.Error("state list created the state directory")
	}

	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "main.hcl"), []byte("state {\n  backend = \"s3\"\n}\n"), 0o644)
	if code, _, errOut := sluice(t, "", "-chdir="+broken, "-no-color", "state", "list"); code != 1 || !strings.Contains(errOut, "backend") {
		t.Errorf("invalid config: exit %d, stderr %q", code, errOut)
	}

	corrupt, b := stateDir(t, nil)
	os.MkdirAll(filepath.Dir(b.Path()), 0o700)
	os.WriteFile(b.Path(), []byte("{oops"), 0o600)
	if code, _, errOut := sluice(t, "", "-chdir="+corrupt, "state", "list"); code != 1 || !strings.Contains(errOut, "state.json:1:2") {
		t.Errorf("corrupt state: exit %d, stderr %q", code, errOut)
	}
}

func TestStateSubcommands(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{args: []string{"state"}, wantCode: 1, wantErr: "needs a subcommand"},
		{args: []string{"state", "lst"}, wantCode: 1, wantErr: `Did you mean "list"?`},
		{args: []string{"state", "-h"}, wantCode: 0, wantOut: "rm ADDR"},
		{args: []string{"state", "rm", "-h"}, wantCode: 0, wantOut: "-lock-timeout"},
		{args: []string{"state", "list", "extra"}, wantCode: 1, wantErr: "no arguments"},
		{args: []string{"state", "rm"}, wantCode: 1, wantErr: "needs the address"},
		{args: []string{"force-unlock"}, wantCode: 1, wantErr: "exactly one argument"},
		{args: []string{"force-unlock", "-h"}, wantCode: 0, wantOut: "-force"},
	}
	for _, tt := range tests {
		code, out, errOut := sluice(t, "", tt.args...)
		if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tt.args, code, out, errOut)
		}
	}
}

func TestStateRm(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   string
		wantErr   []string
		wantAddrs []string // recorded afterwards; nil: unchanged
	}{
		{
			name: "table", args: []string{"postgres.prod/sales.orders"},
			wantOut:   "Removed postgres.prod/sales.orders\nSuccessfully removed 1 address(es) from the state.\n",
			wantAddrs: []string{"postgres.prod", "postgres.prod/Customers", "postgres.prod/orders", "postgres.prod-eu", "postgres.prod-eu/orders", "stripe.billing", "stripe.billing/charges"},
		},
		{
			name: "source with its tables", args: []string{"postgres.prod"},
			wantOut: "Removed postgres.prod\nRemoved postgres.prod/Customers\nRemoved postgres.prod/orders\nRemoved postgres.prod/sales.orders\nSuccessfully removed 4 address(es) from the state.\n",
			wantErr: []string{`Warning: postgres.prod's replication slot "sluice_prod" and publication "sluice_pub_prod" still exist`,
				"pg_drop_replication_slot('sluice_prod')"},
			wantAddrs: []string{"postgres.prod-eu", "postgres.prod-eu/orders", "stripe.billing", "stripe.billing/charges"},
		},
		{
			name: "several, overlapping", args: []string{"stripe.billing/charges", "stripe.billing", "postgres.prod-eu/orders"},
			wantOut:   "Removed stripe.billing/charges\nRemoved stripe.billing\nRemoved postgres.prod-eu/orders\nSuccessfully removed 3 address(es) from the state.\n",
			wantErr:   []string{"webhook endpoint we_123"},
			wantAddrs: []string{"postgres.prod", "postgres.prod/Customers", "postgres.prod/orders", "postgres.prod/sales.orders", "postgres.prod-eu"},
		},
		{
			name: "dry run", args: []string{"-dry-run", "postgres.prod/orders"},
			wantOut: "Would remove postgres.prod/orders\n",
		},
		{
			name: "unknown", args: []string{"postgres.prod/ordrs"}, wantCode: 1,
			wantErr: []string{`"postgres.prod/ordrs" is not in the state. Did you mean "postgres.prod/orders"?`,
				"Recorded addresses: postgres.prod, postgres.prod/Customers,", "Nothing was removed."},
		},
		{
			name: "one unknown among several", args: []string{"postgres.prod/orders", "postgres.nope"}, wantCode: 1,
			wantErr: []string{`"postgres.nope" is not in the state`, "Nothing was removed."},
		},
		{
			name: "flags after the address", args: []string{"postgres.prod/orders", "-lock-timeout=1s"},
			wantOut:   "Removed postgres.prod/orders\n",
			wantAddrs: []string{"postgres.prod", "postgres.prod/Customers", "postgres.prod/sales.orders", "postgres.prod-eu", "postgres.prod-eu/orders", "stripe.billing", "stripe.billing/charges"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, b := stateDir(t, seededState())
			before, _ := os.ReadFile(b.Path())
			code, out, errOut := sluice(t, "", append([]string{"-chdir=" + dir, "state", "rm"}, tt.args...)...)
			if code != tt.wantCode || !strings.HasPrefix(out, tt.wantOut) {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not contain %q", errOut, w)
				}
			}
			after, _ := os.ReadFile(b.Path())
			if tt.wantAddrs == nil {
				if !bytes.Equal(before, after) {
					t.Error("the state changed")
				}
				return
			}
			st, err := b.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantAddrs, stateAddrs(st)); diff != "" {
				t.Errorf("recorded afterwards (-want +got):\n%s", diff)
			}
			if st.Serial != 2 {
				t.Errorf("serial %d, want 2", st.Serial)
			}
			if _, err := os.Stat(b.LockPath()); err == nil {
				t.Error("the lock file was left behind")
			}
		})
	}

	t.Run("empty state", func(t *testing.T) {
		dir, _ := stateDir(t, nil)
		code, _, errOut := sluice(t, "", "-chdir="+dir, "state", "rm", "postgres.prod")
		if code != 1 || !strings.Contains(errOut, "Nothing is recorded in the state") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

func TestStateRmLocking(t *testing.T) {
	ctx := context.Background()
	dir, b := stateDir(t, seededState())
	holder := state.NewLocal(b.Path())
	info := state.NewLockInfo("apply")
	unlock, err := holder.Lock(ctx, info, 0)
	if err != nil {
		t.Fatal(err)
	}

	code, _, errOut := sluice(t, "", "-chdir="+dir, "state", "rm", "postgres.prod/orders")
	if code != 1 || !strings.Contains(errOut, info.ID) || !strings.Contains(errOut, "for apply") || !strings.Contains(errOut, "-lock-timeout") {
		t.Errorf("while locked: exit %d, stderr %q", code, errOut)
	}

	go func() {
		time.Sleep(200 * time.Millisecond)
		unlock()
	}()
	code, out, errOut := sluice(t, "", "-chdir="+dir, "state", "rm", "-lock-timeout=10s", "postgres.prod/orders")
	if code != 0 || !strings.Contains(out, "Removed postgres.prod/orders") {
		t.Errorf("-lock-timeout: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	unlock, err = holder.Lock(ctx, info, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, out, errOut = sluice(t, "", "-chdir="+dir, "state", "rm", "-lock=false", "postgres.prod/Customers")
	if code != 0 || !strings.Contains(out, "Removed postgres.prod/Customers") {
		t.Errorf("-lock=false: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestForceUnlock(t *testing.T) {
	ctx := context.Background()
	dir, b := stateDir(t, seededState())
	info := state.NewLockInfo("apply")
	if _, err := state.NewLocal(b.Path()).Lock(ctx, info, 0); err != nil {
		t.Fatal(err)
	}
	stillLocked := func() bool {
		unlock, err := state.NewLocal(b.Path()).Lock(ctx, state.NewLockInfo("test"), 0)
		if err == nil {
			unlock()
		}
		return err != nil
	}

	code, _, errOut := sluice(t, "", "-chdir="+dir, "force-unlock", info.ID)
	if code != 1 || !strings.Contains(errOut, "pass -force") || !stillLocked() {
		t.Errorf("without -force and no terminal: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = sluice(t, "", "-chdir="+dir, "force-unlock", "-force", "not-the-id")
	if code != 1 || !strings.Contains(errOut, info.ID) || !stillLocked() {
		t.Errorf("wrong ID: exit %d, stderr %q", code, errOut)
	}

	promptable := forceUnlockPromptable
	defer func() { forceUnlockPromptable = promptable }()
	forceUnlockPromptable = func(*env) bool { return true }
	code, out, errOut := sluice(t, "no\n", "-chdir="+dir, "force-unlock", info.ID)
	if code != 1 || !strings.Contains(out, "Only 'yes' will be accepted") || !strings.Contains(errOut, "cancelled") || !stillLocked() {
		t.Errorf("answered no: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = sluice(t, "yes\n", "-chdir="+dir, "force-unlock", info.ID)
	if code != 0 || !strings.Contains(out, "unlocked") || stillLocked() {
		t.Errorf("answered yes: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	forceUnlockPromptable = promptable

	code, _, errOut = sluice(t, "", "-chdir="+dir, "force-unlock", "-force", info.ID)
	if code != 1 || !strings.Contains(errOut, "not locked") {
		t.Errorf("nothing locked: exit %d, stderr %q", code, errOut)
	}
}
