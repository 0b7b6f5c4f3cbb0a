package pgstate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/state"
)

// runnerBackends gives, for each backend, a function opening another
// instance of the same state (as another process would).
func runnerBackends(t *testing.T) map[string]func() state.RunnerLocker {
	path := filepath.Join(t.TempDir(), "state.json")
	url := pgtest.NewDB(t)
	return map[string]func() state.RunnerLocker{
		"local":    func() state.RunnerLocker { return state.NewLocal(path) },
		"postgres": func() state.RunnerLocker { return openPG(t, url) },
	}
}

// TestRunnerLock: one runner at a time; the second is refused with the
// first one's pid, host and operation; status readers see the holder
// without disturbing it, and nobody after the unlock.
func TestRunnerLock(t *testing.T) {
	ctx := context.Background()
	for name, open := range runnerBackends(t) {
		t.Run(name, func(t *testing.T) {
			a, b := open(), open()
			if h, err := b.RunnerHolder(ctx); err != nil || h != nil {
				t.Fatalf("holder before any runner = %v, %v", h, err)
			}
			first := state.NewRunnerInfo("run")
			lock, err := a.LockRunner(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			h, err := b.RunnerHolder(ctx)
			if err != nil || h == nil || h.ID != first.ID || h.PID != os.Getpid() || h.Host != first.Host {
				t.Fatalf("holder = %+v, %v; want %+v", h, err, first)
			}
			// The probe above must not make a runner starting now fail
			// for the wrong reason, nor let it in.
			for range 3 {
				_, err = b.LockRunner(ctx, state.NewRunnerInfo("sync"))
				var locked *state.RunnerLockedError
				if !errors.As(err, &locked) || !errors.Is(err, state.ErrRunnerLocked) || locked.Holder == nil || locked.Holder.ID != first.ID {
					t.Fatalf("second runner: %v", err)
				}
				for _, want := range []string{"`sluice run`", "pid " + strconv.Itoa(os.Getpid()), first.Host, "runner lock", "stop it first"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("refusal lacks %q: %s", want, err)
					}
				}
			}
			if err := lock.Check(ctx); err != nil {
				t.Errorf("Check of a held lock: %v", err)
			}
			if err := lock.Unlock(); err != nil {
				t.Fatal(err)
			}
			if h, err := b.RunnerHolder(ctx); err != nil || h != nil {
				t.Fatalf("holder after unlock = %+v, %v", h, err)
			}
			second, err := b.LockRunner(ctx, state.NewRunnerInfo("sync"))
			if err != nil {
				t.Fatalf("runner after the first stopped: %v", err)
			}
			second.Unlock()
		})
	}
}

// TestStatusStores writes status records concurrently, as the runner's
// workers do, and reads them back, with both backends.
func TestStatusStores(t *testing.T) {
	ctx := context.Background()
	pg, err := OpenPostgres(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	backends := map[string]state.Backend{
		"local":    state.NewLocal(filepath.Join(t.TempDir(), ".sluice", "state.json")),
		"postgres": pg,
	}
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			store, err := state.Statuses(b)
			if err != nil {
				t.Fatal(err)
			}
			empty, err := store.ReadStatus(ctx)
			if err != nil || len(empty.Tables)+len(empty.Sources) != 0 {
				t.Fatalf("fresh status: %v, %v", empty, err)
			}
			var wg sync.WaitGroup
			for _, addr := range []string{"postgres.p/a", "postgres.p/b", "postgres.p/c", "postgres.p/d"} {
				wg.Add(1)
				go func(addr string) {
					defer wg.Done()
					ts := &state.TableStatus{Address: addr, State: state.StateCompleted, RowsSynced: 10, LastSyncAt: at}
					if err := store.PutTableStatus(ctx, ts); err != nil {
						t.Error(err)
					}
				}(addr)
			}
			wg.Wait()
			if err := store.PutSourceStatus(ctx, &state.SourceStatus{Address: "postgres.p", State: "healthy", SlotLagBytes: 42, UpdatedAt: at}); err != nil {
				t.Fatal(err)
			}
			if err := store.PutTableStatus(ctx, &state.TableStatus{Address: "postgres.p/a", State: state.StateFailed, LastError: "boom", LastSyncAt: at}); err != nil {
				t.Fatal(err)
			}
			got, err := store.ReadStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"postgres.p/a", "postgres.p/b", "postgres.p/c", "postgres.p/d"}, got.TableAddrs()); diff != "" {
				t.Errorf("tables (-want +got):\n%s", diff)
			}
			want := &state.TableStatus{Address: "postgres.p/a", State: state.StateFailed, LastError: "boom", LastSyncAt: at}
			if diff := cmp.Diff(want, got.Tables["postgres.p/a"]); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.Sources["postgres.p"].SlotLagBytes != 42 {
				t.Errorf("source status = %+v", got.Sources["postgres.p"])
			}
		})
	}
}

// TestSyncRequests, for both backends: a request written by one process
// is listed and read by another, oldest first; the runner's update and
// the requester's delete are seen; status readers do not see requests;
// a request that is gone reads as nil.
func TestSyncRequests(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	url := pgtest.NewDB(t)
	for name, open := range map[string]func() state.Backend{
		"local":    func() state.Backend { return state.NewLocal(path) },
		"postgres": func() state.Backend { return openPG(t, url) },
	} {
		t.Run(name, func(t *testing.T) {
			requester, runner := open(), open()
			rq, err := state.Requests(requester)
			if err != nil {
				t.Fatal(err)
			}
			rn, _ := state.Requests(runner)
			if got, err := rn.ListSyncRequests(ctx); err != nil || len(got) != 0 {
				t.Fatalf("before any request: %v, %v", got, err)
			}
			first := state.NewSyncRequest([]string{"postgres.shop/orders", "postgres.shop/Audit Log"})
			second := state.NewSyncRequest([]string{"stripe.s/customers"})
			second.RequestedAt = first.RequestedAt.Add(time.Second)
			first.RequestedAt = first.RequestedAt.Truncate(time.Microsecond)
			second.RequestedAt = second.RequestedAt.Truncate(time.Microsecond)
			for _, r := range []*state.SyncRequest{second, first} {
				if err := rq.PutSyncRequest(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			got, err := rn.ListSyncRequests(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]*state.SyncRequest{first, second}, got); diff != "" {
				t.Fatalf("listed (-want +got):\n%s", diff)
			}

			// The runner takes the first and answers it.
			taken := *got[0]
			taken.Runner, taken.TakenAt = "runner-1", time.Now().UTC().Truncate(time.Microsecond)
			taken.DoneAt = taken.TakenAt.Add(time.Second)
			taken.Results = []state.TableStatus{{Address: "postgres.shop/orders", State: state.StateCompleted, RowsSynced: 3}, {Address: "postgres.shop/Audit Log", State: state.StateFailed, LastError: "no such table"}}
			if err := rn.PutSyncRequest(ctx, &taken); err != nil {
				t.Fatal(err)
			}
			back, err := rq.SyncRequest(ctx, first.ID)
			if err != nil || back == nil || !back.Done() {
				t.Fatalf("requester reads %+v, %v", back, err)
			}
			if diff := cmp.Diff(&taken, back); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}

			// Requests are not table or source status.
			if st, err := requester.(state.StatusStore).ReadStatus(ctx); err != nil || len(st.Tables)+len(st.Sources) != 0 {
				t.Errorf("status with requests: %+v, %v", st, err)
			}

			for _, r := range []*state.SyncRequest{first, second} {
				if err := rq.DeleteSyncRequest(ctx, r.ID); err != nil {
					t.Fatal(err)
				}
			}
			if err := rq.DeleteSyncRequest(ctx, first.ID); err != nil {
				t.Errorf("deleting a request that is gone: %v", err)
			}
			if r, err := rn.SyncRequest(ctx, first.ID); err != nil || r != nil {
				t.Errorf("deleted request reads %+v, %v", r, err)
			}
			if got, err := rn.ListSyncRequests(ctx); err != nil || len(got) != 0 {
				t.Errorf("after delete: %v, %v", got, err)
			}
		})
	}
}

// TestPostgresRunnerLockCheck: a runner whose lock session was lost (a
// restart of the state database, here a terminated backend) takes the
// lock again at its next check, unless another runner took it meanwhile.
func TestPostgresRunnerLockCheck(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	a, b := openPG(t, url), openPG(t, url)
	first := state.NewRunnerInfo("run")
	lock, err := a.LockRunner(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	terminate := func() {
		t.Helper()
		h, err := b.RunnerHolder(ctx)
		if err != nil || h == nil || h.BackendPID == 0 {
			t.Fatalf("holder = %+v, %v", h, err)
		}
		query[bool](t, url, `SELECT pg_terminate_backend($1)`, h.BackendPID)
		waitFor(t, "the lock to be released", func() bool { h, _ := b.RunnerHolder(ctx); return h == nil })
	}
	terminate()
	if err := lock.Check(ctx); err != nil {
		t.Fatalf("Check after a lost session: %v", err)
	}
	if h, _ := b.RunnerHolder(ctx); h == nil || h.ID != first.ID {
		t.Fatalf("holder after Check = %+v, want the first runner again", h)
	}
	terminate()
	other, err := b.LockRunner(ctx, state.NewRunnerInfo("sync"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()
	if err := lock.Check(ctx); !errors.Is(err, state.ErrRunnerLocked) || !strings.Contains(err.Error(), "`sluice sync`") {
		t.Errorf("Check while another runner holds the lock: %v", err)
	}
}

// TestMigrateV1Postgres reads a version 1 state stored by the postgres
// backend, as an older sluice wrote it.
func TestMigrateV1Postgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	b := openPG(t, url)
	old, err := os.ReadFile("../testdata/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO sluice.state_versions (lineage, serial, state, written_by) VALUES ($1, 7, $2, 'old@sluice')`,
		"3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", string(old)); err != nil {
		t.Fatal(err)
	}
	st, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := state.Decode(old, "testdata/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	checkMigrated := func(st *state.State) {
		t.Helper()
		// The migration itself is state's (TestMigrateV1File); here the
		// postgres backend must give what it gives.
		if diff := cmp.Diff(want, st); diff != "" {
			t.Errorf("migrated state (-state.Decode +postgres):\n%s", diff)
		}
	}
	checkMigrated(st)
	if err := b.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	if v := query[int](t, url, `SELECT (state->>'format_version')::int FROM sluice.state_versions WHERE serial = 8`); v != state.FormatVersion {
		t.Errorf("format version written = %d, want %d", v, state.FormatVersion)
	}
	if v := query[int](t, url, `SELECT (state->>'format_version')::int FROM sluice.state_versions WHERE serial = 7`); v != 1 {
		t.Errorf("the version 1 row was changed to format %d; earlier versions are kept as written", v)
	}
	if h := query[string](t, url, `SELECT state->'sources'->'postgres.prod'->'tables'->'events'->>'history_table' FROM sluice.state_versions WHERE serial = 8`); h != "postgres_prod_events_cdc" {
		t.Errorf("history_table written = %q", h)
	}
	got, err := openPG(t, url).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want.Serial = 8
	checkMigrated(got)
}
