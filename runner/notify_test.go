package runner_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/runner/notify"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// hookServer is a real HTTP endpoint recording the notifications it gets.
type hookServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []notify.Message
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m notify.Message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		h.mu.Lock()
		h.got = append(h.got, m)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// events returns "event address" of each message received.
func (h *hookServer) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.got {
		out = append(out, m.Event+" "+m.Address)
	}
	return out
}

// notifiedOnce runs the runner once with a notifier of its own, as each
// `sluice run -once` does, and returns what the endpoint received during
// it.
func (e *env) notifiedOnce(h *hookServer, on ...string) []string {
	e.t.Helper()
	before := len(h.events())
	n := notify.New(notify.Options{Targets: []notify.Target{{Name: "ops", URL: h.srv.URL + "/hook", On: on}}})
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.now
	r := runner.New(runner.Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w,
		Concurrency: 2, Now: func() time.Time { return now },
		Retry:  runner.RetryPolicy{Attempts: 2, Base: time.Millisecond},
		Notify: n,
	})
	if _, err := r.Once(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	n.Close(ctx)
	return h.events()[before:]
}

// TestNotifyFailureAcrossRuns: a table that fails sends one failure,
// however many runs it keeps failing (the recorded status says it was
// sent), and one recovery when it syncs again.
func TestNotifyFailureAcrossRuns(t *testing.T) {
	e := newEnv(t)
	h := newHookServer(t)
	if got := e.notifiedOnce(h, "failure", "recovery"); len(got) != 0 {
		t.Errorf("first run (every table synced) sent %v", got)
	}
	e.exec(`DROP TABLE log`)
	for i, want := range [][]string{{"failure postgres.db/log"}, nil, nil} {
		e.now = e.now.Add(2 * time.Hour)
		if diff := cmp.Diff(want, e.notifiedOnce(h, "failure", "recovery"), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("failing run %d sent (-want +got):\n%s", i+1, diff)
		}
	}
	if m := h.got[0]; !strings.Contains(m.Error, "log") || !strings.Contains(m.Text, "postgres.db/log failed") || m.Notify != "ops" {
		t.Errorf("failure message = %+v", m)
	}
	e.exec(`CREATE TABLE log (id bigint PRIMARY KEY, msg text)`)
	e.now = e.now.Add(2 * time.Hour)
	if diff := cmp.Diff([]string{"recovery postgres.db/log"}, e.notifiedOnce(h, "failure", "recovery")); diff != "" {
		t.Errorf("recovering run sent (-want +got):\n%s", diff)
	}
	e.now = e.now.Add(2 * time.Hour)
	if got := e.notifiedOnce(h, "failure", "recovery"); len(got) != 0 {
		t.Errorf("run after the recovery sent %v", got)
	}
}

// TestNotifyStale: the daemon sends "stale" for a table whose last
// successful sync is older than stale_after, once.
func TestNotifyStale(t *testing.T) {
	e := newEnv(t)
	e.once()
	h := newHookServer(t)
	n := notify.New(notify.Options{Targets: []notify.Target{{Name: "ops", URL: h.srv.URL + "/hook", On: []string{"stale"}, StaleAfter: 30 * time.Minute}}})
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		t.Fatal(err)
	}
	// 50 minutes on: the hourly tables are not due, and are stale.
	var mu sync.Mutex
	now := e.now.Add(50 * time.Minute)
	r := runner.New(runner.Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w, PollInterval: 50 * time.Millisecond,
		Now:    func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Notify: n,
	})
	stop := runner.StartRun(t, e.ctx, r)
	want := []string{"stale postgres.db/Mixed Case", "stale postgres.db/items", "stale postgres.db/log"}
	deadline := time.Now().Add(20 * time.Second)
	for len(h.events()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Two minutes on, the same episode: nothing more.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	stop()
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	n.Close(ctx)
	if diff := cmp.Diff(want, h.events()); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
}
