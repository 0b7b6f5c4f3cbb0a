package runner

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/state"
)

// TestDaemonAnswersCDCRequest: a request naming a cdc table is answered
// from its stream, which the daemon does not restart, once the stream had
// time to commit the changes committed before the request.
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
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "the snapshot", func() bool { return len(e.rows("pg_t", []string{"id"}, nil)) == 1 })
	e.exec(`INSERT INTO t VALUES (2, 'b')`)
	req := state.NewSyncRequest([]string{"postgres.db/t"})
	if err := e.local.PutSyncRequest(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	var answer *state.SyncRequest
	waitFor(t, "the answer", func() bool {
		var err error
		answer, err = e.local.SyncRequest(e.ctx, req.ID)
		return err == nil && answer != nil && answer.Done()
	})
	if len(answer.Results) != 1 || answer.Results[0].State != state.StateCompleted || answer.Results[0].RowsSynced != 2 {
		t.Errorf("answer: %+v", answer.Results)
	}
	if got := len(e.rows("pg_t", []string{"id"}, nil)); got != 2 {
		t.Errorf("warehouse rows when the request was answered: %d", got)
	}
}
