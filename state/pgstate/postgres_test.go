package pgstate

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/state"
)

func openPG(t *testing.T, url string) *Postgres {
	t.Helper()
	b, err := OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func query[T any](t *testing.T, url, sql string, args ...any) T {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestPostgresRoundTrip(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	b := openPG(t, url)

	st, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Serial != 0 || st.Lineage == "" || len(st.Sources) != 0 {
		t.Errorf("empty database: got %+v, want a New() state", st)
	}

	want := testState(t)
	for i := range 3 {
		want.Sources["postgres.prod"].Settings["port"] = string(rune('0' + i))
		if err := b.Write(ctx, want); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if want.Serial != 3 {
		t.Errorf("serial after three writes = %d", want.Serial)
	}
	// Another backend (another process) reads what this one wrote.
	got, err := openPG(t, url).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}

	versions, err := b.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{1, 2, 3}, versions); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	first := query[string](t, url, `SELECT state->'sources'->'postgres.prod'->'settings'->>'port' FROM sluice.state_versions WHERE serial = 1`)
	if first != "0" {
		t.Errorf("version 1 has port %q, want the value written first", first)
	}
	if who := query[string](t, url, `SELECT written_by FROM sluice.state_versions WHERE serial = 3`); !strings.Contains(who, "@") {
		t.Errorf("written_by %q, want user@host", who)
	}

	// Opening again (the tables exist) changes nothing.
	if _, err := openPG(t, url).Read(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresSetupConcurrent(t *testing.T) {
	url := pgtest.NewDB(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			b, err := OpenPostgres(context.Background(), url)
			if err != nil {
				t.Error(err)
				return
			}
			b.Close()
		})
	}
	wg.Wait()
}

func TestPostgresWriteConflicts(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	a, b := openPG(t, url), openPG(t, url)
	if err := a.Write(ctx, testState(t)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		mutate func(st *state.State)
	}{
		{name: "serial behind", mutate: func(st *state.State) { st.Serial-- }},
		{name: "other lineage", mutate: func(st *state.State) { st.Lineage = state.NewLockID() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := b.Read(ctx)
			tt.mutate(st)
			if err := b.Write(ctx, st); !errors.Is(err, state.ErrStateChanged) {
				t.Errorf("Write: %v, want ErrStateChanged", err)
			}
		})
	}

	// Writers racing from one version: exactly one wins.
	base, _ := a.Read(ctx)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	backends := make([]*Postgres, len(errs))
	for i := range backends {
		backends[i] = openPG(t, url)
	}
	for i, w := range backends {
		wg.Go(func() {
			st := *base
			errs[i] = w.Write(ctx, &st)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, state.ErrStateChanged) || !strings.Contains(err.Error(), "state changed since it was read"):
			t.Errorf("losing writer: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d writers won, want 1", won)
	}
	if latest, _ := a.Read(ctx); latest.Serial != base.Serial+1 {
		t.Errorf("serial %d after the race from %d", latest.Serial, base.Serial)
	}

	// Two first writes of different lineages into an empty database.
	url2 := pgtest.NewDB(t)
	wg = sync.WaitGroup{}
	for i := range errs {
		wg.Go(func() { errs[i] = openPG(t, url2).Write(ctx, state.New()) })
	}
	wg.Wait()
	if n := query[int64](t, url2, `SELECT count(DISTINCT lineage) FROM sluice.state_versions`); n != 1 {
		t.Errorf("%d lineages in one database", n)
	}
}

func TestPostgresReadRefusesNewer(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	b := openPG(t, url)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO sluice.state_versions (lineage, serial, state, written_by) VALUES ('l', 1, '{"format_version": 9, "lineage": "l", "serial": 1}', 'x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx); !errors.Is(err, state.ErrNewerFormat) {
		t.Errorf("Read: %v, want ErrNewerFormat", err)
	}
	if err := b.Write(ctx, state.New()); err == nil {
		t.Error("wrote over a state of another lineage")
	}
}

func TestPostgresLock(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	a, b := openPG(t, url), openPG(t, url)

	info := state.LockInfo{ID: "lock-a", Operation: "apply", Who: "alice@laptop", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	unlockA, err := a.Lock(ctx, info, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, other := range map[string]*Postgres{"other backend": b, "same backend": a} {
		_, err := other.Lock(ctx, state.NewLockInfo("plan"), 0)
		var locked *state.LockedError
		if !errors.As(err, &locked) || locked.Holder == nil {
			t.Fatalf("%s: Lock while held: %v", name, err)
		}
		if locked.Holder.ID != "lock-a" || locked.Holder.Who != "alice@laptop" || locked.Holder.Operation != "apply" || locked.Holder.BackendPID == 0 {
			t.Errorf("%s: holder %+v", name, locked.Holder)
		}
	}
	// While locked, the holder reads and writes (on the lock's session).
	st, _ := a.Read(ctx)
	if err := a.Write(ctx, st); err != nil {
		t.Fatalf("Write while holding the lock: %v", err)
	}

	start := time.Now()
	if _, err := b.Lock(ctx, state.NewLockInfo("plan"), 150*time.Millisecond); !errors.Is(err, state.ErrLocked) {
		t.Errorf("Lock with a short timeout: %v", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("gave up after %s, want the 150ms timeout", waited)
	}

	released := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		released <- unlockA()
	}()
	unlockB, err := b.Lock(ctx, state.NewLockInfo("plan"), 10*time.Second)
	if err != nil {
		t.Fatalf("Lock with a timeout, released meanwhile: %v", err)
	}
	if err := <-released; err != nil {
		t.Errorf("unlock: %v", err)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM sluice.state_lock`); n != 1 {
		t.Errorf("%d lock rows while locked, want 1", n)
	}
	if err := unlockB(); err != nil {
		t.Fatal(err)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM sluice.state_lock`); n != 0 {
		t.Errorf("%d lock rows after unlock", n)
	}

	// Close releases what the backend holds.
	if _, err := b.Lock(ctx, state.NewLockInfo("plan"), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	unlockA, err = a.Lock(ctx, state.NewLockInfo("plan"), 0)
	if err != nil {
		t.Fatalf("Lock after Close of the holder: %v", err)
	}
	unlockA()
}

func TestPostgresKilledHolder(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	b := openPG(t, url)

	h := startHolder(t, "postgres", url)
	_, err := b.Lock(ctx, state.NewLockInfo("plan"), 0)
	var locked *state.LockedError
	if !errors.As(err, &locked) || locked.Holder == nil || locked.Holder.ID != h.Said || locked.Holder.Who != "holder@test" {
		t.Fatalf("Lock while another process holds it: %v", err)
	}
	h.Kill()
	// The server notices the closed connection at once; the timeout only
	// covers a slow machine.
	info := state.NewLockInfo("plan")
	unlock, err := b.Lock(ctx, info, 10*time.Second)
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	if id := query[string](t, url, `SELECT id FROM sluice.state_lock`); id != info.ID {
		t.Errorf("lock row %q, want the new holder's %q (the stale row replaced)", id, info.ID)
	}
	unlock()
}

func TestPostgresForceUnlock(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	stuck, next, admin := openPG(t, url), openPG(t, url), openPG(t, url)

	if err := admin.ForceUnlock(ctx, "nope"); !errors.Is(err, state.ErrNoLock) || !strings.Contains(err.Error(), "not locked") {
		t.Errorf("ForceUnlock with no lock: %v", err)
	}
	st, _ := stuck.Read(ctx)
	info := state.NewLockInfo("apply")
	unlockStuck, err := stuck.Lock(ctx, info, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.ForceUnlock(ctx, "wrong-id"); !errors.Is(err, state.ErrNoLock) || !strings.Contains(err.Error(), info.ID) {
		t.Errorf("ForceUnlock with the wrong ID: %v", err)
	}
	if err := admin.ForceUnlock(ctx, info.ID); err != nil {
		t.Fatalf("ForceUnlock: %v", err)
	}
	unlockNext, err := next.Lock(ctx, state.NewLockInfo("plan"), 0)
	if err != nil {
		t.Fatalf("Lock after force-unlock: %v", err)
	}
	// The stuck holder's session was terminated: its writes fail.
	if err := stuck.Write(ctx, st); err == nil {
		t.Error("a force-unlocked holder wrote the state")
	}
	if err := unlockStuck(); err == nil {
		t.Error("unlock by a force-unlocked holder reported success")
	}
	if _, err := admin.Lock(ctx, state.NewLockInfo("plan"), 0); !errors.Is(err, state.ErrLocked) {
		t.Errorf("the old holder's unlock released the new lock: %v", err)
	}
	if err := unlockNext(); err != nil {
		t.Fatal(err)
	}
	// A backend whose lock is gone works again on its shared session.
	if _, err := stuck.Read(ctx); err != nil {
		t.Errorf("Read after the lock was broken: %v", err)
	}

	// A row left by a killed holder: force-unlock just removes it.
	h := startHolder(t, "postgres", url)
	h.Kill()
	waitFor(t, "the killed holder's lock to go", func() bool {
		return query[int64](t, url, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`) == 0
	})
	if err := admin.ForceUnlock(ctx, h.Said); err != nil {
		t.Errorf("ForceUnlock of a dead holder: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPostgresFingerprintKey(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	keys := make([][]byte, 4)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := openPG(t, url).FingerprintKey(ctx)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i, k := range keys {
		if len(k) != 32 || string(k) != string(keys[0]) {
			t.Fatalf("key %d differs from key 0", i)
		}
	}
	b := openPG(t, url)
	if err := b.Write(ctx, testState(t)); err != nil {
		t.Fatal(err)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM sluice.state_versions WHERE position(encode($1::bytea, 'hex') in state::text) > 0`, keys[0]); n != 0 {
		t.Error("the key is in the state")
	}
}
