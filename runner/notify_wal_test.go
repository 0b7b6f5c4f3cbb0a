package runner

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/runner/notify"
)

// TestNotifyWALLag: the WAL monitor's readings send one wal_lag per level
// (warning, then critical), not one per reading.
func TestNotifyWALLag(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m notify.Message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		mu.Lock()
		got = append(got, m.Event+" "+m.Address+" "+m.Level)
		mu.Unlock()
	}))
	defer srv.Close()
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (id int, pad text); CREATE PUBLICATION {pub} FOR TABLE t;`, `
  table "t" {
    sync = "cdc"
  }`, `    lag_warning  = "1KiB"
    lag_critical = "4MiB"
    management = "self_managed"
    auto_drop_slot = false`)
	e.mustOnce()
	e.waitSlotsIdle()
	n := notify.New(notify.Options{Targets: []notify.Target{{Name: "ops", URL: srv.URL, On: []string{"wal_lag"}}}})
	r := e.runner(func(o *Options) { o.Notify = n })
	if err := r.Load(e.ctx); err != nil {
		t.Fatal(err)
	}
	src, rs := e.cfg.Sources[0], r.st.Sources["postgres.db"]
	// Committed synchronously, so that the server's WAL write position
	// includes it (the test cluster runs with synchronous_commit = off).
	e.exec(`BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO other SELECT g, repeat('x', 100) FROM generate_series(1, 100) g; COMMIT`)
	r.slots.checkOnce(e.ctx, src, rs)
	r.slots.checkOnce(e.ctx, src, rs)
	e.exec(`BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO other SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g; COMMIT`)
	r.slots.checkOnce(e.ctx, src, rs)
	r.slots.checkOnce(e.ctx, src, rs)
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	n.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"wal_lag postgres.db warning", "wal_lag postgres.db critical"}, got); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
}
