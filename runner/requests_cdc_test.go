package runner

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestDaemonAnswersCDCRequest: a request naming a cdc table is answered
// from its stream, which the daemon does not restart, once the changes
// committed before the request are in the warehouse.
func TestDaemonAnswersCDCRequest(t *testing.T) {
	e := newCDCEnv(t, `
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t VALUES (1, 'a');`, `
  table "t" {
    sync = "cdc"
  }`, "")
	me := state.NewRunnerInfo("run")
	r := e.runner(func(o *Options) {
		o.Owner, o.Requests, o.CDCFlushInterval = &me, e.local, 300*time.Millisecond
	})
	defer StartRun(t, e.ctx, r)()
	waitFor(t, "the snapshot", func() bool { return len(e.rows("pg_t", []string{"id"}, nil)) == 1 })
	e.exec(`INSERT INTO t VALUES (2, 'b')`)
	req := PutSyncRequest(t, e.ctx, e.local, "postgres.db/t")
	answer := WaitRequest(t, e.ctx, e.local, req.ID)
	if len(answer.Results) != 1 || answer.Results[0].State != state.StateCompleted || answer.Results[0].RowsSynced != 2 {
		t.Errorf("answer: %+v", answer.Results)
	}
	if got := len(e.rows("pg_t", []string{"id"}, nil)); got != 2 {
		t.Errorf("warehouse rows when the request was answered: %d", got)
	}
}

// slowWarehouse delays every commit by delay (nanoseconds) when set: a
// stream that lags behind its source, deterministically.
type slowWarehouse struct {
	warehouse.Warehouse
	delay *atomic.Int64
	fail  *atomic.Bool // commits fail when set
}

func (w slowWarehouse) Table(ctx context.Context, name string) (warehouse.Table, error) {
	t, err := w.Warehouse.Table(ctx, name)
	if err != nil {
		return nil, err
	}
	return slowTable{CDCTable: t.(warehouse.CDCTable), delay: w.delay, fail: w.fail}, nil
}

type slowTable struct {
	warehouse.CDCTable
	delay *atomic.Int64
	fail  *atomic.Bool
}

func (t slowTable) Begin(ctx context.Context, mode warehouse.Mode, s *records.Schema, sync string) (warehouse.Tx, error) {
	tx, err := t.CDCTable.Begin(ctx, mode, s, sync)
	return slowTx{Tx: tx, delay: t.delay, fail: t.fail}, err
}

func (t slowTable) BeginHistory(ctx context.Context, s *records.Schema, sync string, closeAllAt time.Time) (warehouse.Tx, error) {
	tx, err := t.CDCTable.BeginHistory(ctx, s, sync, closeAllAt)
	return slowTx{Tx: tx, delay: t.delay, fail: t.fail}, err
}

type slowTx struct {
	warehouse.Tx
	delay *atomic.Int64
	fail  *atomic.Bool
}

func (tx slowTx) Commit(ctx context.Context, pos records.Position) (int64, error) {
	time.Sleep(time.Duration(tx.delay.Load()))
	if tx.fail.Load() {
		return 0, errors.New("the warehouse is full (test)")
	}
	return tx.Tx.Commit(ctx, pos)
}

// answerWatch records, for each request answered, what the warehouse
// tables held at the moment the answer was recorded.
type answerWatch struct {
	*state.Local
	e      *cdcEnv
	tables []string
	mu     sync.Mutex
	seen   map[string]map[string]int // request → warehouse table → rows
	errs   []error
}

func (w *answerWatch) PutSyncRequest(ctx context.Context, req *state.SyncRequest) error {
	if req.Done() {
		counts := map[string]int{}
		for _, table := range w.tables {
			n := 0
			err := w.e.scan(table, func(b *records.Batch) error { n += b.N; return nil })
			w.mu.Lock()
			if err != nil {
				w.errs = append(w.errs, err)
			}
			w.mu.Unlock()
			counts[table] = n
		}
		w.mu.Lock()
		w.seen[req.ID] = counts
		w.mu.Unlock()
	}
	return w.Local.PutSyncRequest(ctx, req)
}

func (w *answerWatch) at(id string) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		w.e.t.Fatal(w.errs)
	}
	return w.seen[id]
}

// TestDaemonCDCRequestWaitsForLaggingStream: a request naming a cdc table
// whose stream lags (its commits take seconds) is answered only once the
// rows committed before the request are in the warehouse, however long
// that takes; an idle cdc table of the same stream is answered promptly,
// and one whose stream fails meanwhile fails.
func TestDaemonCDCRequestWaitsForLaggingStream(t *testing.T) {
	e := newCDCEnv(t, `
CREATE TABLE t (id int PRIMARY KEY, v text);
CREATE TABLE u (id int PRIMARY KEY, v text);
INSERT INTO t VALUES (1, 'a');
INSERT INTO u VALUES (1, 'a');`, `
  table "t" {
    sync = "cdc"
  }
  table "u" {
    sync = "cdc"
  }`, "")
	delay, fail := &atomic.Int64{}, &atomic.Bool{}
	watch := &answerWatch{Local: e.local, e: e, tables: []string{"pg_t", "pg_u"}, seen: map[string]map[string]int{}}
	me := state.NewRunnerInfo("run")
	r := e.runner(func(o *Options) {
		o.Owner, o.Requests, o.CDCFlushInterval = &me, watch, 100*time.Millisecond
		o.Warehouse = slowWarehouse{Warehouse: o.Warehouse, delay: delay, fail: fail}
	})
	defer StartRun(t, e.ctx, r)()
	waitFor(t, "the snapshots", func() bool {
		return len(e.rows("pg_t", []string{"id"}, nil)) == 1 && len(e.rows("pg_u", []string{"id"}, nil)) == 1
	})
	answer := func(req *state.SyncRequest, within time.Duration) (*state.SyncRequest, time.Duration) {
		t.Helper()
		start := time.Now()
		for {
			got, err := e.local.SyncRequest(e.ctx, req.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got != nil && got.Done() {
				return got, time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("request for %v not answered within %s", req.Tables, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The stream lags: each commit takes 2s. Many transactions are
	// committed just before the request.
	delay.Store(int64(2 * time.Second))
	for i := 2; i <= 50; i++ {
		e.exec(`INSERT INTO t VALUES ($1, 'x')`, i)
	}
	e.exec(`INSERT INTO t SELECT g, 'y' FROM generate_series(51, 2000) g`)
	lagging := PutSyncRequest(t, e.ctx, e.local, "postgres.db/t")
	got, took := answer(lagging, 30*time.Second)
	if n := watch.at(lagging.ID)["pg_t"]; n != 2000 {
		t.Errorf("pg_t held %d rows when the request was answered (after %s), want the 2000 committed before it", n, took)
	}
	if len(got.Results) != 1 || got.Results[0].State != state.StateCompleted || got.Results[0].RowsSynced != 2000 || got.Results[0].Runner != me.ID {
		t.Errorf("answer: %+v", got.Results)
	}

	// An idle table (no change since its snapshot) is answered promptly,
	// with the stream caught up and idle.
	delay.Store(0)
	idle := PutSyncRequest(t, e.ctx, e.local, "postgres.db/u")
	got, took = answer(idle, 15*time.Second)
	if len(got.Results) != 1 || got.Results[0].State != state.StateCompleted || got.Results[0].RowsSynced != 1 {
		t.Errorf("idle table's answer: %+v", got.Results)
	}
	t.Logf("idle table answered in %s", took)

	// A change to the idle table committed just before a request naming
	// both is in the warehouse when they are answered.
	e.exec(`INSERT INTO u VALUES (2, 'b')`)
	both := PutSyncRequest(t, e.ctx, e.local, "postgres.db/t", "postgres.db/u")
	got, _ = answer(both, 15*time.Second)
	if diff := cmp.Diff(map[string]int{"pg_t": 2000, "pg_u": 2}, watch.at(both.ID)); diff != "" {
		t.Errorf("warehouse rows when answered (-want +got):\n%s", diff)
	}
	for _, res := range got.Results {
		if res.State != state.StateCompleted {
			t.Errorf("answer: %+v", res)
		}
	}

	// The stream fails after the request was taken: the request fails,
	// saying why.
	delay.Store(int64(500 * time.Millisecond))
	fail.Store(true)
	e.exec(`INSERT INTO t VALUES (2001, 'z')`)
	failing := PutSyncRequest(t, e.ctx, e.local, "postgres.db/t")
	got, _ = answer(failing, 15*time.Second)
	if len(got.Results) != 1 || got.Results[0].State != state.StateFailed || !strings.Contains(got.Results[0].LastError, "the warehouse is full") {
		t.Errorf("answer while the stream fails: %+v", got.Results)
	}
}

// TestDaemonCDCRequestSlotLost: a request naming a cdc table whose slot
// is lost (dropped behind sluice's back) fails at once, saying a resync
// is required, rather than waiting for a stream that does not run.
func TestDaemonCDCRequestSlotLost(t *testing.T) {
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')`, `
  table "t" {
    sync = "cdc"
  }`, "")
	e.mustOnce()
	e.exec(`SELECT pg_drop_replication_slot($1)`, e.slot)
	me := state.NewRunnerInfo("run")
	r := e.runner(func(o *Options) { o.Owner, o.Requests = &me, e.local })
	defer StartRun(t, e.ctx, r)()
	waitFor(t, "the stream to fail", func() bool {
		ts := e.status("postgres.db/t")
		return ts.State == state.StateFailed
	})
	req := PutSyncRequest(t, e.ctx, e.local, "postgres.db/t")
	start := time.Now()
	got := WaitRequest(t, e.ctx, e.local, req.ID)
	if len(got.Results) != 1 || got.Results[0].State != state.StateFailed || !strings.Contains(got.Results[0].LastError, "resync required") {
		t.Errorf("answer: %+v", got.Results)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("answered after %s", took)
	}
}
