package runner

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/state"
)

// Test helpers of this package's tests that the external runner_test
// tests use too.

// StartRun runs r.Run(ctx) in the background, as the daemon. The
// returned stop (tests defer it) cancels the run, waits for Run to
// return and fails t if it returned an error.
func StartRun(t testing.TB, ctx context.Context, r *Runner) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// PutSyncRequest records a new request for tables (addresses) in store.
func PutSyncRequest(t testing.TB, ctx context.Context, store state.SyncRequests, tables ...string) *state.SyncRequest {
	t.Helper()
	req := state.NewSyncRequest(tables)
	if err := store.PutSyncRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	return req
}

// WaitRequest waits up to 20s for the request id in store to be answered
// and returns the answer.
func WaitRequest(t testing.TB, ctx context.Context, store state.SyncRequests, id string) *state.SyncRequest {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, err := store.SyncRequest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if req != nil && req.Done() {
			return req
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s not answered: %+v", id, req)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ReadCharges is readCharges, for the tests of package runner_test.
var ReadCharges = readCharges
