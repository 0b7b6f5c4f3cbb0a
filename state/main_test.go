package state

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/internal/proctest"
)

// The tests start this test binary again as a lock holder (see
// startHolder); these variables tell it so.
const (
	helperEnv       = "SLUICE_STATE_TEST_HOLDER"        // "local"
	helperTargetEnv = "SLUICE_STATE_TEST_HOLDER_TARGET" // the state path
)

func TestMain(m *testing.M) {
	if kind := os.Getenv(helperEnv); kind != "" {
		os.Exit(holderMain(kind, os.Getenv(helperTargetEnv)))
	}
	os.Exit(m.Run())
}

// holderMain takes the state lock, says "locked ID" on stdout, and holds
// the lock until stdin closes (or the test kills it).
func holderMain(kind, target string) int {
	return proctest.Hold("locked ", func() (string, func() error, error) {
		info := NewLockInfo("holder")
		info.Who = "holder@test"
		unlock, err := NewLocal(target).Lock(context.Background(), info, 0)
		return info.ID, unlock, err
	})
}

// startHolder starts a process that holds the lock of the backend (kind
// "local" with a path) until Release or Kill; its Said is the lock ID.
func startHolder(t *testing.T, kind, target string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, "locked ", helperEnv+"="+kind, helperTargetEnv+"="+target)
}

// testState is the state in testdata/state.json (a source of each type,
// identifiers that need quoting and every kind of resource; state/pgstate
// tests use it too), with a fresh lineage as New gives.
func testState(t testing.TB) *State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Decode(data, "testdata/state.json")
	if err != nil {
		t.Fatal(err)
	}
	st.Lineage = New().Lineage
	return st
}
