package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"github.com/sluice-dev/sluice/internal/webhooksecret"
	"github.com/sluice-dev/sluice/planner"
	_ "github.com/sluice-dev/sluice/providers/stripe" // registers the stripe source type
	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

const (
	hookKey    = "sk_test_runnerWebhookKey0123456789"
	hookSecret = "whsec_runnerTestSecret"
	hookPath   = "/webhooks/stripe.billing"
)

const hookConfig = `
source "stripe" "billing" {
  prefix   = "stripe"
  api_key  = %q
  api_base = %q
  table "charges" { sync = "webhook" }
  webhook {
    url = "https://sluice.example.com"
    %s
  }
}
`

// hookEnv is an applied Stripe source whose charges sync by webhook, the
// stand-in API holding two charges, and the endpoint's secret stored as
// apply stores it.
type hookEnv struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	api   *stripetest.Server
	cfg   *config.Config
	local *state.Local
}

func newHookEnv(t *testing.T, signingSecretLine string) *hookEnv {
	t.Helper()
	e := &hookEnv{t: t, ctx: context.Background(), dir: t.TempDir(), api: stripetest.NewServer(t, hookKey, "")}
	e.api.Add("/v1/charges",
		map[string]any{"id": "ch_1", "object": "charge", "created": int64(1700000001), "amount": 100, "currency": "usd"},
		map[string]any{"id": "ch_2", "object": "charge", "created": int64(1700000002), "amount": 200, "currency": "usd"})
	if err := os.WriteFile(filepath.Join(e.dir, "main.hcl"), fmt.Appendf(nil, hookConfig, hookKey, e.api.URL, signingSecretLine), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(e.dir, config.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e.cfg = cfg
	e.local = state.NewLocal(filepath.Join(e.dir, ".sluice", "state.json"))
	src := cfg.Sources[0]
	ds := planner.DesiredSource(src, nil, []byte("k"))
	ds.Resources.Webhook = &state.WebhookState{ID: "we_1", URL: src.WebhookEndpoint(), Events: planner.WebhookEvents(src), Created: true}
	st := state.New()
	st.Sources[src.Address()] = ds
	if err := e.local.Write(e.ctx, st); err != nil {
		t.Fatal(err)
	}
	if signingSecretLine == "" {
		if err := webhooksecret.Write(e.local, src.Address(), hookSecret); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *hookEnv) runner() *runner.Runner {
	e.t.Helper()
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	r := runner.New(runner.Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w,
		PollInterval: 50 * time.Millisecond, Retry: runner.RetryPolicy{Attempts: 1},
	})
	e.t.Cleanup(func() { r.Close() })
	return r
}

// serve starts the receiver of r; the runner must have loaded its state.
func (e *hookEnv) serve(r *runner.Runner) *httptest.Server {
	e.t.Helper()
	mux := r.Metrics().Handler()
	mux.Handle("/webhooks/", r.WebhookHandler())
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	return srv
}

// chargeEvent is a delivery about a charge, as Stripe sends it.
func chargeEvent(id, typ, charge string, created int64, amount int) []byte {
	b, _ := json.MarshalIndent(map[string]any{
		"id": id, "object": "event", "type": typ, "created": created, "livemode": false,
		"api_version": "2025-01-01",
		"data": map[string]any{"object": map[string]any{
			"id": charge, "object": "charge", "created": int64(1700000000), "amount": amount, "currency": "usd",
		}},
	}, "", "  ")
	return b
}

type delivery struct {
	method string
	path   string
	body   []byte
	sig    string // "" signs body with hookSecret now
}

func post(t *testing.T, srv *httptest.Server, d delivery) (int, string) {
	t.Helper()
	if d.method == "" {
		d.method = http.MethodPost
	}
	if d.path == "" {
		d.path = hookPath
	}
	if d.sig == "" {
		d.sig = stripetest.Sign(hookSecret, time.Now(), d.body)
	}
	req, err := http.NewRequest(d.method, srv.URL+d.path, bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", d.sig)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// charges reads the warehouse table as "id|amount", sorted.
func (e *hookEnv) charges() []string { return runner.ReadCharges(e.t, e.dir) }

func (e *hookEnv) sourceStatus() state.SourceStatus {
	e.t.Helper()
	st, err := e.local.ReadStatus(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if ss := st.Sources["stripe.billing"]; ss != nil {
		c := *ss
		c.UpdatedAt, c.LastEventAt = time.Time{}, time.Time{}
		return c
	}
	return state.SourceStatus{}
}

func (e *hookEnv) once(r *runner.Runner) {
	e.t.Helper()
	failed, err := r.Once(e.ctx)
	if err != nil || len(failed) > 0 {
		e.t.Fatalf("run -once: failed %v, err %v", failed, err)
	}
}

// TestWebhookReceiver: deliveries are verified, bounded and de-duplicated;
// events that arrive before the bulk load are applied after it.
func TestWebhookReceiver(t *testing.T) {
	e := newHookEnv(t, "")
	r := e.runner()
	if err := r.Load(e.ctx); err != nil {
		t.Fatal(err)
	}
	srv := e.serve(r)
	now := time.Now()
	ev1 := chargeEvent("evt_1", "charge.refunded", "ch_1", now.Unix(), 50)
	ev3 := chargeEvent("evt_3", "charge.succeeded", "ch_3", now.Unix(), 300)
	big := append(append([]byte(nil), ev1[:len(ev1)-1]...), []byte(`,"pad":"`+strings.Repeat("x", runner.MaxWebhookBody)+`"}`)...)
	invoice := []byte(`{"id":"evt_inv","object":"event","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1","object":"invoice"}}}`)
	cases := []struct {
		name   string
		d      delivery
		status int
	}{
		{"valid", delivery{body: ev1}, 200},
		{"replay of the same event", delivery{body: ev1}, 200},
		{"another valid event", delivery{body: ev3}, 200},
		{"wrong secret", delivery{body: chargeEvent("evt_4", "charge.updated", "ch_1", now.Unix(), 1), sig: stripetest.Sign("whsec_other", now, ev1)}, 400},
		{"signature of another payload", delivery{body: chargeEvent("evt_5", "charge.updated", "ch_1", now.Unix(), 1), sig: stripetest.Sign(hookSecret, now, ev1)}, 400},
		{"expired timestamp", delivery{body: ev3, sig: stripetest.Sign(hookSecret, now.Add(-6*time.Minute), ev3)}, 400},
		{"timestamp in the future", delivery{body: ev3, sig: stripetest.Sign(hookSecret, now.Add(6*time.Minute), ev3)}, 400},
		{"malformed header", delivery{body: ev3, sig: "v1=abc"}, 400},
		{"not an event", delivery{body: []byte(`{"hello":"world"}`)}, 400},
		{"not JSON", delivery{body: []byte(`not json`)}, 400},
		{"oversized", delivery{body: big}, 413},
		{"a type sluice does not sync", delivery{body: invoice}, 200},
		{"wrong method", delivery{method: http.MethodGet}, 405},
		{"unknown source", delivery{path: "/webhooks/stripe.other", body: ev1}, 404},
		{"no source", delivery{path: "/webhooks/", body: ev1}, 404},
	}
	for _, c := range cases {
		status, body := post(t, srv, c.d)
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, status, c.status, body)
		}
		if strings.Contains(body, hookSecret) {
			t.Errorf("%s: the answer holds the secret: %s", c.name, body)
		}
	}
	// Nothing is applied before the bulk load; run -once loads, then
	// merges the journaled events (ch_1 refunded, ch_3 new).
	e.once(r)
	want := []string{"ch_1|50", "ch_2|200", "ch_3|300"}
	if diff := cmp.Diff(want, e.charges()); diff != "" {
		t.Errorf("table after the bulk load (-want +got):\n%s", diff)
	}
	got := e.sourceStatus()
	wantStatus := state.SourceStatus{Address: "stripe.billing", State: "healthy", WebhookURL: "https://sluice.example.com" + hookPath,
		EventsReceived: 4, EventsRejected: 8, EventsApplied: 2}
	if diff := cmp.Diff(wantStatus, got); diff != "" {
		t.Errorf("source status (-want +got):\n%s", diff)
	}
	// A replay after the events were applied and compacted away is still
	// recognised.
	if status, _ := post(t, srv, delivery{body: ev1}); status != 200 {
		t.Errorf("late replay: %d", status)
	}
	journal, err := os.ReadFile(filepath.Join(e.dir, ".sluice", "webhooks", "stripe.billing", "journal.jsonl"))
	if err != nil || len(journal) != 0 {
		t.Errorf("journal after everything was applied: %q, %v", journal, err)
	}
}

// TestWebhookSigningSecretFromConfig: signing_secret verifies deliveries
// when apply stored no secret (an endpoint registered by hand).
func TestWebhookSigningSecretFromConfig(t *testing.T) {
	e := newHookEnv(t, `signing_secret = "whsec_fromConfig"`)
	r := e.runner()
	if err := r.Load(e.ctx); err != nil {
		t.Fatal(err)
	}
	srv := e.serve(r)
	ev := chargeEvent("evt_1", "charge.updated", "ch_2", time.Now().Unix(), 222)
	if status, body := post(t, srv, delivery{body: ev, sig: stripetest.Sign("whsec_fromConfig", time.Now(), ev)}); status != 200 {
		t.Fatalf("signed with signing_secret: %d %s", status, body)
	}
	if status, _ := post(t, srv, delivery{body: chargeEvent("evt_2", "charge.updated", "ch_2", time.Now().Unix(), 1)}); status != 400 {
		t.Errorf("signed with a secret sluice does not hold: %d", status)
	}
	e.once(r)
	if diff := cmp.Diff([]string{"ch_1|100", "ch_2|222"}, e.charges()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestWebhookCrashAfter200: events acknowledged by a runner that dies
// before applying them are applied by the next one; a record cut short
// by the crash (never acknowledged) is dropped; nothing is applied twice.
func TestWebhookCrashAfter200(t *testing.T) {
	e := newHookEnv(t, "")
	r1 := e.runner()
	e.once(r1) // the bulk load
	srv := e.serve(r1)
	now := time.Now().Unix()
	for _, ev := range [][]byte{
		chargeEvent("evt_a", "charge.updated", "ch_2", now, 201),
		chargeEvent("evt_b", "charge.succeeded", "ch_9", now, 900),
		chargeEvent("evt_c", "charge.updated", "ch_2", now+1, 202), // newer: wins
	} {
		if status, body := post(t, srv, delivery{body: ev}); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	srv.Close()
	// The crash: the process dies (its journal lock with it) while writing
	// a fourth record.
	r1.Close()
	journal := filepath.Join(e.dir, ".sluice", "webhooks", "stripe.billing", "journal.jsonl")
	f, err := os.OpenFile(journal, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":4,"id":"evt_torn","table":"charges","rec`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if diff := cmp.Diff([]string{"ch_1|100", "ch_2|200"}, e.charges()); diff != "" {
		t.Fatalf("before the restart (-want +got):\n%s", diff)
	}

	r2 := e.runner()
	e.once(r2) // nothing is due but the journal
	want := []string{"ch_1|100", "ch_2|202", "ch_9|900"}
	if diff := cmp.Diff(want, e.charges()); diff != "" {
		t.Errorf("after the restart (-want +got):\n%s", diff)
	}
	// The counters of received events are written every second by the
	// daemon; r1 died before it wrote them, and only applied events count.
	if ss := e.sourceStatus(); ss.EventsApplied != 3 {
		t.Errorf("counters after the restart: %+v", ss)
	}
	// Another restart applies nothing again, and replays stay recognised.
	r2.Close()
	r3 := e.runner()
	e.once(r3)
	srv3 := e.serve(r3)
	if status, _ := post(t, srv3, delivery{body: chargeEvent("evt_a", "charge.updated", "ch_2", now, 201)}); status != 200 {
		t.Errorf("replay after restarts: %d", status)
	}
	e.once(r3)
	if diff := cmp.Diff(want, e.charges()); diff != "" {
		t.Errorf("after a replay (-want +got):\n%s", diff)
	}
	if ss := e.sourceStatus(); ss.EventsApplied != 3 {
		t.Errorf("events applied twice: %+v", ss)
	}
}

// TestWebhookDaemon: the daemon applies events as they arrive and keeps
// the counters current.
func TestWebhookDaemon(t *testing.T) {
	e := newHookEnv(t, "")
	r := e.runner()
	srv := e.serve(r)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the bulk load", func() bool { return len(e.charges()) == 2 })
	ev := chargeEvent("evt_1", "charge.refunded", "ch_1", time.Now().Unix(), 0)
	if status, body := post(t, srv, delivery{body: ev}); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	waitFor("the event", func() bool { return cmp.Equal(e.charges(), []string{"ch_1|0", "ch_2|200"}) })
	waitFor("the counters", func() bool { ss := e.sourceStatus(); return ss.EventsReceived == 1 && ss.EventsApplied == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `sluice_webhook_events_total{outcome="applied",source="stripe.billing"} 1`) {
		t.Errorf("metrics lack the applied event:\n%s", body)
	}
}

// TestWebhookJournalDir: the journals are where Options.JournalDir says
// (cmd/sluice puts them beside the state), whatever the state backend; a
// second runner on the same directory cannot take a source's journal.
func TestWebhookJournalDir(t *testing.T) {
	e := newHookEnv(t, "")
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "journals")
	newRunner := func() *runner.Runner {
		r := runner.New(runner.Options{Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w, JournalDir: dir})
		t.Cleanup(func() { r.Close() })
		if err := r.Load(e.ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	srv := e.serve(newRunner())
	if status, body := post(t, srv, delivery{body: chargeEvent("evt_1", "charge.refunded", "ch_1", time.Now().Unix(), 50)}); status != 200 {
		t.Fatalf("delivery: %d %s", status, body)
	}
	data, err := os.ReadFile(filepath.Join(dir, "stripe.billing", "journal.jsonl"))
	if err != nil || !bytes.Contains(data, []byte(`"id":"evt_1"`)) {
		t.Errorf("journal in JournalDir: %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, ".sluice", "webhooks")); !os.IsNotExist(err) {
		t.Errorf("a journal directory beside the state too: %v", err)
	}
	srv2 := e.serve(newRunner())
	if status, body := post(t, srv2, delivery{body: chargeEvent("evt_2", "charge.refunded", "ch_1", time.Now().Unix(), 40)}); status != http.StatusServiceUnavailable {
		t.Errorf("delivery to a runner whose journal another holds: %d %s, want 503", status, body)
	}
}

// TestSyncAppliesWebhookJournal: `sluice sync ADDR` of a webhook table
// whose bulk load is not due applies what the journal holds, as SPEC §1
// says, and leaves the other tables alone.
func TestSyncAppliesWebhookJournal(t *testing.T) {
	e := newHookEnv(t, "")
	r1 := e.runner()
	e.once(r1) // the bulk load: the table is not due again for a while
	srv := e.serve(r1)
	now := time.Now().Unix()
	for _, ev := range [][]byte{
		chargeEvent("evt_a", "charge.updated", "ch_2", now, 201),
		chargeEvent("evt_b", "charge.succeeded", "ch_9", now, 900),
	} {
		if status, body := post(t, srv, delivery{body: ev}); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	srv.Close()
	r1.Close()
	if diff := cmp.Diff([]string{"ch_1|100", "ch_2|200"}, e.charges()); diff != "" {
		t.Fatalf("journaled events applied before the sync (-want +got):\n%s", diff)
	}

	r2 := e.runner()
	defer r2.Close()
	failed, err := r2.Sync(e.ctx, []string{"stripe.billing/charges"})
	if err != nil || len(failed) > 0 {
		t.Fatalf("sync: failed %v, err %v", failed, err)
	}
	if diff := cmp.Diff([]string{"ch_1|100", "ch_2|201", "ch_9|900"}, e.charges()); diff != "" {
		t.Errorf("after sync (-want +got):\n%s", diff)
	}
	if ss := e.sourceStatus(); ss.EventsApplied != 2 {
		t.Errorf("events applied: %+v", ss)
	}
}
