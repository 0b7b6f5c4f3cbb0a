package pgstate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/state"
)

func openClaims(t *testing.T, b *Postgres, id string, timeout time.Duration) *Claims {
	t.Helper()
	info := state.NewRunnerInfo("run")
	info.ID = id
	c, err := b.OpenClaims(context.Background(), info, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClaims: a claim is one runner's at a time; the other is told who
// holds it; a released claim, or one whose session the server ended (a
// runner that stopped answering for longer than the timeout), is free for
// another, and the runner that lost it finds out at its next Check. The
// runners table shows who is alive.
func TestClaims(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	b, err := OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a := openClaims(t, b, "runner-a", 2*time.Second)
	bb := openClaims(t, b, "runner-b", 2*time.Second)

	ca, err := a.TryClaim(ctx, "stream:postgres.shop")
	if err != nil {
		t.Fatal(err)
	}
	_, err = bb.TryClaim(ctx, "stream:postgres.shop")
	var claimed *state.ClaimedError
	if !errors.As(err, &claimed) || claimed.Holder == nil || claimed.Holder.ID != "runner-a" {
		t.Fatalf("second claim: %v (holder %+v)", err, claimed)
	}
	if _, err := a.TryClaim(ctx, "stream:postgres.shop"); !errors.As(err, &claimed) {
		t.Fatalf("a claim held by the same runner taken twice: %v", err)
	}
	if err := ca.Check(ctx); err != nil {
		t.Fatal(err)
	}
	ca.Release(ctx)
	if err := ca.Check(ctx); !errors.Is(err, state.ErrClaimLost) {
		t.Errorf("a released claim checks %v", err)
	}
	cb, err := bb.TryClaim(ctx, "stream:postgres.shop")
	if err != nil {
		t.Fatalf("a released claim cannot be taken: %v", err)
	}
	if h, _ := b.ClaimHolder(ctx, "stream:postgres.shop"); h == nil || h.ID != "runner-b" {
		t.Errorf("holder %+v", h)
	}

	// runner-b stops answering (as under SIGSTOP): its session ends after
	// the timeout, and runner-a takes the claim over.
	lost := bb.Lost()
	bb.mu.Lock()
	deadline := time.Now().Add(10 * time.Second)
	var took state.Claim
	for took == nil && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		took, _ = a.TryClaim(ctx, "stream:postgres.shop")
	}
	bb.mu.Unlock()
	if took == nil {
		t.Fatal("the claim of a runner that stopped answering was never freed")
	}
	if err := cb.Check(ctx); !errors.Is(err, state.ErrClaimLost) {
		t.Errorf("the stopped runner's claim checks %v after its session ended", err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Error("Lost was not closed")
	}
	if _, err := bb.TryClaim(ctx, "table:x"); !errors.Is(err, state.ErrClaimLost) {
		t.Errorf("a claim on a lost session: %v", err)
	}
	if err := bb.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cb.Check(ctx); !errors.Is(err, state.ErrClaimLost) {
		t.Errorf("a claim of the earlier session checks %v after Renew", err)
	}

	runners, err := b.Runners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alive := map[string]bool{}
	for _, r := range runners {
		alive[r.ID] = r.Alive
		if r.LastHeartbeat.IsZero() || r.Host == "" {
			t.Errorf("runner record %+v", r)
		}
	}
	if !alive["runner-a"] || !alive["runner-b"] || len(runners) != 2 {
		t.Errorf("runners %+v", runners)
	}
	a.Close()
	runners, _ = b.Runners(ctx)
	for _, r := range runners {
		if r.ID == "runner-a" && (r.Alive || r.Stopped.IsZero()) {
			t.Errorf("a closed runner: %+v", r)
		}
	}
	if h, _ := b.ClaimHolder(ctx, "stream:postgres.shop"); h != nil {
		t.Errorf("a closed runner still holds its claim: %+v", h)
	}
}

// TestWebhookCounts: runners of a fleet add their webhook counts to the
// source's at once, and status reports the sums, starting from the
// counters the source's record held.
func TestWebhookCounts(t *testing.T) {
	ctx := context.Background()
	b, err := OpenPostgres(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.PutSourceStatus(ctx, &state.SourceStatus{Address: "stripe.billing", State: "healthy", EventsReceived: 5, EventsApplied: 4}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.AddWebhookCounts(ctx, "stripe.billing", 2, 1, 3, at.Add(time.Duration(i)*time.Second)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// A runner's health write does not reset the sums.
	if err := b.PutSourceStatus(ctx, &state.SourceStatus{Address: "stripe.billing", State: "warning", EventsReceived: 1}); err != nil {
		t.Fatal(err)
	}
	st, err := b.ReadStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ss := st.Sources["stripe.billing"]
	got := [3]int64{ss.EventsReceived, ss.EventsRejected, ss.EventsApplied}
	if want := [3]int64{45, 20, 64}; got != want || ss.State != "warning" || !ss.LastEventAt.Equal(at.Add(19*time.Second)) {
		t.Errorf("counters %v (want %v), state %s, last event %s", got, want, ss.State, ss.LastEventAt)
	}
}
