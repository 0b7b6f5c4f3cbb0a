package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// runnerBackends gives, for each backend, a function opening another
// instance of the same state (as another process would).
func runnerBackends(t *testing.T) map[string]func() RunnerLocker {
	path := filepath.Join(t.TempDir(), "state.json")
	url := pgtest.NewDB(t)
	return map[string]func() RunnerLocker{
		"local":    func() RunnerLocker { return NewLocal(path) },
		"postgres": func() RunnerLocker { return openPG(t, url) },
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
			first := NewRunnerInfo("run")
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
				_, err = b.LockRunner(ctx, NewRunnerInfo("sync"))
				var locked *RunnerLockedError
				if !errors.As(err, &locked) || !errors.Is(err, ErrRunnerLocked) || locked.Holder == nil || locked.Holder.ID != first.ID {
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
			second, err := b.LockRunner(ctx, NewRunnerInfo("sync"))
			if err != nil {
				t.Fatalf("runner after the first stopped: %v", err)
			}
			second.Unlock()
		})
	}
}

// TestRunnerLockHeldAgainstProbes: a status reader probing the lock at
// the moment a runner starts does not make the runner fail.
func TestRunnerLockHeldAgainstProbes(t *testing.T) {
	ctx := context.Background()
	b := NewLocal(filepath.Join(t.TempDir(), "state.json"))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				b.RunnerHolder(ctx)
			}
		}
	}()
	for range 50 {
		l, err := b.LockRunner(ctx, NewRunnerInfo("run"))
		if err != nil {
			t.Fatalf("a probe made the runner fail: %v", err)
		}
		l.Unlock()
	}
	close(stop)
	<-done
}

func TestMarkInterrupted(t *testing.T) {
	alive := &RunnerInfo{ID: "alive", Instance: "i2"}
	gone := &RunnerInfo{ID: "gone", Instance: "i1"}
	// A runner killed and started again under the same name (-id) is
	// another runner.
	sameName := &RunnerInfo{ID: "alive", Instance: "i0"}
	// Records written before instances were recorded go by ID.
	oldRecord := &RunnerInfo{ID: "alive"}
	st := &Status{Tables: map[string]*TableStatus{
		"p.a/mine":      {Address: "p.a/mine", State: StateRunning, Owner: alive},
		"p.a/gone":      {Address: "p.a/gone", State: StateRunning, Owner: gone},
		"p.a/same-name": {Address: "p.a/same-name", State: StateRunning, Owner: sameName},
		"p.a/old":       {Address: "p.a/old", State: StateRunning, Owner: oldRecord},
		"p.a/ownerless": {Address: "p.a/ownerless", State: StateRunning},
		"p.a/done":      {Address: "p.a/done", State: StateCompleted},
	}}
	tests := []struct {
		holder *RunnerInfo
		want   []string
	}{
		{alive, []string{"p.a/gone", "p.a/same-name"}},
		{nil, []string{"p.a/gone", "p.a/mine", "p.a/old", "p.a/ownerless", "p.a/same-name"}},
	}
	for _, tt := range tests {
		cp := &Status{Tables: map[string]*TableStatus{}}
		for k, v := range st.Tables {
			c := *v
			cp.Tables[k] = &c
		}
		got := MarkInterrupted(cp, tt.holder)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("holder %v (-want +got):\n%s", tt.holder, diff)
		}
		for _, addr := range got {
			if ts := cp.Tables[addr]; ts.State != StateFailed || !strings.HasPrefix(ts.LastError, "interrupted:") || ts.Owner != nil {
				t.Errorf("%s = %+v", addr, ts)
			}
		}
	}
}

// TestPostgresRunnerLockCheck: a runner whose lock session was lost (a
// restart of the state database, here a terminated backend) takes the
// lock again at its next check, unless another runner took it meanwhile.
func TestPostgresRunnerLockCheck(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	a, b := openPG(t, url), openPG(t, url)
	first := NewRunnerInfo("run")
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
	other, err := b.LockRunner(ctx, NewRunnerInfo("sync"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()
	if err := lock.Check(ctx); !errors.Is(err, ErrRunnerLocked) || !strings.Contains(err.Error(), "`sluice sync`") {
		t.Errorf("Check while another runner holds the lock: %v", err)
	}
}

func TestCheckRunnerID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"worker-1", true},
		{"db1.example.com-4242", true},
		{"ops@eu:blue_2", true},
		{"", false},
		{"two words", false},
		{"tab\there", false},
		{"new\nline", false},
		{"quote\"", false},
		{"é", false},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		if err := CheckRunnerID(tt.id); (err == nil) != tt.ok {
			t.Errorf("CheckRunnerID(%q) = %v", tt.id, err)
		}
	}
	if id := DefaultRunnerID(); !strings.HasSuffix(id, "-"+strconv.Itoa(os.Getpid())) {
		t.Errorf("DefaultRunnerID() = %q", id)
	}
}
