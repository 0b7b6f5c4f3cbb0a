package pgstate

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/proctest"
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
	return proctest.Hold("locked ", func() (string, func() error, error) {
		ctx := context.Background()
		b, err := OpenPostgres(ctx, target)
		if err != nil {
			return "", nil, err
		}
		info := state.NewLockInfo("holder")
		info.Who = "holder@test"
		unlock, err := b.Lock(ctx, info, 0)
		return info.ID, unlock, err
	})
}

// startHolder starts a process that holds the lock of the postgres
// backend (kind "postgres", target its URL) until Release or Kill; its
// Said is the lock ID.
func startHolder(t *testing.T, kind, target string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, "locked ", helperEnv+"="+kind, helperTargetEnv+"="+target)
}

// testState is the state package's fixture state (a source of each type,
// identifiers that need quoting and every kind of resource), with a fresh
// lineage as state.New gives.
func testState(t testing.TB) *state.State {
	t.Helper()
	const name = "../testdata/state.json"
	data, err := os.ReadFile(filepath.FromSlash(name))
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Decode(data, name)
	if err != nil {
		t.Fatal(err)
	}
	st.Lineage = state.New().Lineage
	return st
}
