package runner

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// callLog is a statusRecorder that notes what it is told to record.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (c *callLog) add(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, fmt.Sprintf(format, args...))
}

func (c *callLog) running(_ context.Context, j job, _ time.Time) state.TableStatus {
	c.add("running %s", j.addr)
	return state.TableStatus{Address: j.addr, State: state.StateRunning}
}

func (c *callLog) ended(_ context.Context, j job, _ time.Time, _ result, err error, _ time.Time) {
	c.add("ended %s: %v", j.addr, err)
}

func (c *callLog) rows(j job, n int64) { c.add("rows %s %d", j.addr, n) }

func (c *callLog) streamed(_ context.Context, j job, _ time.Time, res result) {
	c.add("streamed %s full=%v read=%d rows=%d", j.addr, res.full, res.rowsRead, res.tableRows)
}

// failed notes the table only: the error's text is the provider's.
func (c *callLog) failed(_ context.Context, j job, _ time.Time, _ error) {
	c.add("failed %s", j.addr)
}

func (c *callLog) flush(context.Context, []job) { c.add("flush") }

func (c *callLog) current(j job) state.TableStatus { return state.TableStatus{Address: j.addr} }

func (c *callLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	return out
}

// TestCDCEngineWithoutRunner: a source's cdc engine runs from its
// dependencies alone, and every status record of its tables (the running
// snapshot, the committed snapshot, each commit of changes, a failure)
// goes through the status recorder it is given.
func TestCDCEngineWithoutRunner(t *testing.T) {
	e := newCDCEnv(t, `
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3) g;
CREATE TABLE gone (id int PRIMARY KEY);`, `
  table "t" {
    sync = "cdc"
  }
  table "gone" {
    sync = "cdc"
  }`, "")
	r := e.runner()
	if err := r.Load(e.ctx); err != nil {
		t.Fatal(err)
	}
	jobs, problems := r.jobs()
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	g := cdcGroups(jobs)[e.cfg.Sources[0].Address()]
	calls := &callLog{}
	deps := cdcDeps{
		openSource: providers.Open, warehouse: e.warehouse(), status: calls, metrics: NewMetrics(),
		logger: hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: testLogLevel()}), now: time.Now,
		batchRows: 1000, flushChanges: defaultFlushChanges, flushInterval: 50 * time.Millisecond, flushBytes: defaultFlushBytes,
	}
	run := func(what string, want []string) {
		t.Helper()
		if err := newCDCEngine(deps, g).run(e.ctx, true); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if diff := cmp.Diff(want, calls.take()); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", what, diff)
		}
	}
	e.exec(`DROP TABLE gone`)
	run("snapshot", []string{
		"failed postgres.db/gone",
		"running postgres.db/t",
		"streamed postgres.db/t full=true read=3 rows=3",
	})
	e.exec(`INSERT INTO t VALUES (4, 'v4'), (5, 'v5')`)
	run("changes", []string{
		"failed postgres.db/gone",
		"streamed postgres.db/t full=false read=2 rows=5",
	})
	if st := r.Statuses(); len(st) != 0 {
		t.Errorf("the runner recorded %v; the engine's recorder should have", st)
	}
}
