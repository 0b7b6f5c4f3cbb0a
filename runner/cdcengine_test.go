package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// TestSlotMonitorWithoutRunner: the WAL monitor works from its
// dependencies alone: it records each reading of a source's slot through
// the put it is given and remembers it for the source's later records; a
// missing slot and a stream's lost slot are failures that say resync.
func TestSlotMonitorWithoutRunner(t *testing.T) {
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY);`, `
  table "t" {
    sync = "cdc"
  }`, "")
	var put []string
	m := &slotMonitor{
		open: providers.Open, metrics: NewMetrics(), log: hclog.NewNullLogger(), now: time.Now,
		put: func(_ context.Context, ss *state.SourceStatus) error {
			put = append(put, ss.Address+" "+ss.State)
			return nil
		},
		health: map[string]*state.SourceStatus{},
	}
	src := e.cfg.Sources[0]
	addr := src.Address()
	health := func() string {
		ss := &state.SourceStatus{Address: addr, State: "healthy"}
		m.withHealth(ss)
		return ss.State
	}
	m.checkOnce(e.ctx, src, nil)
	e.exec(`SELECT pg_drop_replication_slot($1)`, e.slot)
	m.checkOnce(e.ctx, src, nil)
	if got := health(); got != "failed" || !strings.Contains(m.health[addr].Message, "resync required") {
		t.Errorf("after the slot was dropped: %s: %s", got, m.health[addr].Message)
	}
	if !m.slotLost(e.ctx, src, fmt.Errorf("streaming: %w", providers.ErrSlotLost)) || m.slotLost(e.ctx, src, errors.New("other")) {
		t.Error("slotLost: only a lost slot is one")
	}
	if diff := cmp.Diff([]string{addr + " healthy", addr + " failed", addr + " failed"}, put); diff != "" {
		t.Errorf("source records (-want +got):\n%s", diff)
	}
}
