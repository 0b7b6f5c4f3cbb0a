package pgstate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/state"
)

// The tests start this test binary again as a lock holder (see
// startHolder); these variables tell it so.
const (
	helperEnv       = "SLUICE_PGSTATE_TEST_HOLDER"        // "postgres"
	helperTargetEnv = "SLUICE_PGSTATE_TEST_HOLDER_TARGET" // the state URL
)

func TestMain(m *testing.M) {
	if kind := os.Getenv(helperEnv); kind != "" {
		os.Exit(holderMain(kind, os.Getenv(helperTargetEnv)))
	}
	pgtest.Main(m)
}

// holderMain takes the state lock, says "locked ID" on stdout, and holds
// the lock until stdin closes (or the test kills it).
func holderMain(kind, target string) int {
	ctx := context.Background()
	b, err := OpenPostgres(ctx, target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	info := state.NewLockInfo("holder")
	info.Who = "holder@test"
	unlock, err := b.Lock(ctx, info, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("locked %s\n", info.ID)
	io.Copy(io.Discard, os.Stdin)
	if err := unlock(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// holder is a lock-holding process started by startHolder.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	id    string

	once    sync.Once
	waitErr error
}

func (h *holder) wait() error {
	h.once.Do(func() { h.waitErr = h.cmd.Wait() })
	return h.waitErr
}

// startHolder starts a process that holds the lock of the postgres
// backend (kind "postgres", target its URL) until release or kill.
func startHolder(t *testing.T, kind, target string) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+kind, helperTargetEnv+"="+target)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { h.kill() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		id, ok := strings.CutPrefix(strings.TrimSpace(s), "locked ")
		if !ok {
			h.kill()
			t.Fatalf("holder did not lock: %q, stderr %q", s, stderr.String())
		}
		h.id = id
	case <-time.After(20 * time.Second):
		h.kill()
		t.Fatalf("holder did not lock within 20s; stderr %q", stderr.String())
	}
	return h
}

// release makes the holder unlock and exit.
func (h *holder) release() error {
	h.stdin.Close()
	if err := h.wait(); err != nil {
		return fmt.Errorf("holder: %w", err)
	}
	return nil
}

// kill ends the holder with SIGKILL, as a crash would: it runs no code.
func (h *holder) kill() {
	h.cmd.Process.Kill()
	h.wait()
}

// testState is a state with a source of each type, identifiers that need
// quoting and every kind of resource.
func testState() *state.State {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	st := state.New()
	st.Sources["postgres.prod"] = &state.Source{
		Address: "postgres.prod", Type: "postgres", Name: "prod", Prefix: "postgres_prod",
		Settings:     map[string]string{"host": "db.example.com", "port": "5432", "cdc.slot": "sluice_prod"},
		Fingerprints: map[string]string{"password": "hmac-sha256:00"},
		Resources: state.Resources{
			Management:  "managed",
			Publication: &state.PublicationState{Name: "sluice_pub_prod", Tables: []string{"public.events"}},
			Slot:        &state.SlotState{Name: "sluice_prod", Plugin: "pgoutput", CreatedLSN: "0/16B3748", CreatedAt: at},
		},
		Tables: map[string]*state.Table{
			"orders": {Name: "orders", Schema: "public", Table: "orders", WarehouseTable: "postgres_prod_orders",
				Sync: "incremental", IncrementalField: "updated_at", PrimaryKey: []string{"id"}, Frequency: state.ParseFrequency("1h"), Enabled: true,
				SourceColumns: []state.ColumnState{{Name: "id", Type: "bigint"}, {Name: "updated_at", Type: "timestamp with time zone"}}, AppliedAt: at},
			`Mixed "Case"`: {Name: `Mixed "Case"`, Schema: "Sales", Table: `Mixed "Case"`, WarehouseTable: "postgres_prod_sales_mixed__case_",
				Sync: "full_refresh", Frequency: state.ParseFrequency("6h"), Enabled: true, AppliedAt: at},
		},
		AppliedAt: at,
	}
	st.Sources["stripe.billing"] = &state.Source{
		Address: "stripe.billing", Type: "stripe", Name: "billing", Prefix: "stripe",
		Settings:  map[string]string{},
		Resources: state.Resources{Webhook: &state.WebhookState{ID: "we_1", URL: "https://x/webhooks/stripe.billing", Events: []string{"charge.updated"}, Created: true}},
		Tables:    map[string]*state.Table{},
		AppliedAt: at,
	}
	return st
}
