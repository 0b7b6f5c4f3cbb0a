package runner

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
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"github.com/sluice-dev/sluice/internal/webhooksecret"
	"github.com/sluice-dev/sluice/planner"
	"github.com/sluice-dev/sluice/providers"
	_ "github.com/sluice-dev/sluice/providers/stripe" // registers the stripe source type
	"github.com/sluice-dev/sluice/runner/journal"
	"github.com/sluice-dev/sluice/runner/journal/pgjournal"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// advisoryClaimer is a state.Claimer of one runner: session advisory
// locks on a connection of its own, as the postgres backend's claims are.
type advisoryClaimer struct {
	mu   sync.Mutex
	conn *pgx.Conn
	// beforeCheck, when set, runs at the start of every Check.
	beforeCheck func()
}

func newAdvisoryClaimer(t *testing.T, url string) *advisoryClaimer {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	c := &advisoryClaimer{conn: conn}
	t.Cleanup(func() { c.Close() })
	return c
}

func (c *advisoryClaimer) TryClaim(ctx context.Context, key string) (state.Claim, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ok bool
	if err := c.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		return nil, err
	}
	if !ok {
		return nil, &state.ClaimedError{Key: key}
	}
	return &advisoryClaim{c: c, key: key}, nil
}

func (c *advisoryClaimer) Holder(context.Context, string) (*state.RunnerInfo, error) { return nil, nil }
func (c *advisoryClaimer) Lost() <-chan struct{}                                     { return nil }
func (c *advisoryClaimer) Renew(context.Context) error                               { return nil }
func (c *advisoryClaimer) Close() error                                              { return c.conn.Close(context.Background()) }

type advisoryClaim struct {
	c   *advisoryClaimer
	key string
}

func (a *advisoryClaim) Key() string { return a.key }

func (a *advisoryClaim) Check(ctx context.Context) error {
	if a.c.beforeCheck != nil {
		a.c.beforeCheck()
	}
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	var held bool
	err := a.c.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND pid = pg_backend_pid() AND objsubid = 1
		AND classid = ((hashtextextended($1, 0) >> 32) & 4294967295)::oid
		AND objid = (hashtextextended($1, 0) & 4294967295)::oid)`, a.key).Scan(&held)
	if err != nil {
		return fmt.Errorf("%w: %v", state.ErrClaimLost, err)
	}
	if !held {
		return state.ErrClaimLost
	}
	return nil
}

func (a *advisoryClaim) Release(ctx context.Context) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	_, _ = a.c.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, a.key)
}

const (
	fleetKey    = "sk_test_fleetWebhookKey0123456789"
	fleetSecret = "whsec_fleetTestSecret"
)

// fleet is an applied Stripe source whose charges sync by webhook, and
// two runners of one fleet: one warehouse, one state, the journal in the
// state database, each runner with its pool and its claims.
type fleet struct {
	t       *testing.T
	dir     string
	url     string
	pool    *pgxpool.Pool
	runners []*Runner
	servers []*httptest.Server
	claims  []*advisoryClaimer
}

// newFleet starts the fleet; open, when set, opens runner 0's sources.
func newFleet(t *testing.T, open func(ctx context.Context, src *config.Source) (providers.Source, error)) *fleet {
	t.Helper()
	ctx := t.Context()
	f := &fleet{t: t, dir: t.TempDir(), url: pgtest.NewDB(t)}
	api := stripetest.NewServer(t, fleetKey, "")
	api.Add("/v1/charges",
		map[string]any{"id": "ch_1", "object": "charge", "created": int64(1700000001), "amount": 100, "currency": "usd"},
		map[string]any{"id": "ch_2", "object": "charge", "created": int64(1700000002), "amount": 200, "currency": "usd"})
	hcl := fmt.Sprintf(`
source "stripe" "billing" {
  prefix   = "stripe"
  api_key  = %q
  api_base = %q
  table "charges" { sync = "webhook" }
  webhook { url = "https://sluice.example.com" }
}
`, fleetKey, api.URL)
	if err := os.WriteFile(filepath.Join(f.dir, "main.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(f.dir, config.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	local := state.NewLocal(filepath.Join(f.dir, ".sluice", "state.json"))
	src := cfg.Sources[0]
	ds := planner.DesiredSource(src, nil, []byte("k"))
	ds.Resources.Webhook = &state.WebhookState{ID: "we_1", URL: src.WebhookEndpoint(), Events: planner.WebhookEvents(src), Created: true}
	st := state.New()
	st.Sources[src.Address()] = ds
	if err := local.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := webhooksecret.Write(local, src.Address(), fleetSecret); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.pool, err = pgxpool.New(ctx, f.url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pool.Close)
	for i := range 2 {
		w, err := parquet.Open(filepath.Join(f.dir, "warehouse"))
		if err != nil {
			t.Fatal(err)
		}
		pool, err := pgxpool.New(ctx, f.url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		opt := Options{Config: cfg, Backend: local, Status: local, Warehouse: w, Retry: RetryPolicy{Attempts: 1},
			JournalDir: filepath.Join(f.dir, "no journal here")}
		if i == 0 {
			opt.Open = open
		}
		r := New(opt)
		c := newAdvisoryClaimer(t, f.url)
		// What Options will say in a fleet.
		r.hooks.openJournal = func(ctx context.Context, source string) (journal.Store, error) {
			return pgjournal.OpenPostgres(ctx, pool, source, time.Now())
		}
		r.hooks.claims = c
		t.Cleanup(func() { r.Close() })
		if err := r.Load(ctx); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(r.WebhookHandler())
		t.Cleanup(srv.Close)
		f.runners, f.servers, f.claims = append(f.runners, r), append(f.servers, srv), append(f.claims, c)
	}
	return f
}

// post delivers a charge event to runner i, signed now.
func (f *fleet) post(i int, id, charge string, amount int) {
	f.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": "charge.updated", "created": time.Now().Unix(),
		"data": map[string]any{"object": map[string]any{
			"id": charge, "object": "charge", "created": int64(1700000000), "amount": amount, "currency": "usd",
		}},
	})
	req, err := http.NewRequest(http.MethodPost, f.servers[i].URL+"/webhooks/stripe.billing", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", stripetest.Sign(fleetSecret, time.Now(), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("delivery of %s to runner %d: %d %s", id, i, resp.StatusCode, msg)
	}
}

// charges reads the warehouse table as "id|amount", sorted, and the last
// journal record it committed.
func (f *fleet) charges() ([]string, string) {
	f.t.Helper()
	out := readCharges(f.t, f.dir)
	w, err := parquet.Open(filepath.Join(f.dir, "warehouse"))
	if err != nil {
		f.t.Fatal(err)
	}
	wt, err := w.Table(f.t.Context(), "stripe_charges")
	if err != nil {
		f.t.Fatal(err)
	}
	pos, _ := wt.Position()
	return out, pos.Extra[WebhookSeqKey]
}

// applied is the events the runners applied, each counting its own.
func (f *fleet) applied() (total int64) {
	for _, r := range f.runners {
		r.hooks.mu.Lock()
		hs := r.hooks.sources["stripe.billing"]
		r.hooks.mu.Unlock()
		if hs != nil {
			hs.mu.Lock()
			total += hs.stats.EventsApplied
			hs.mu.Unlock()
		}
	}
	return total
}

func (f *fleet) count(query string) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(f.t.Context(), query).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// applyAtOnce runs every runner's applier pass at the same time.
func (f *fleet) applyAtOnce() {
	var wg sync.WaitGroup
	for _, r := range f.runners {
		wg.Add(1)
		go func() { defer wg.Done(); r.hooks.applyPendingWebhooks(f.t.Context(), false) }()
	}
	wg.Wait()
}

// TestFleetWebhooks: two runners of a fleet receive a source's deliveries
// into one journal in the state database: an event delivered to either is
// journaled once, its redelivery to the other is answered 200 and not
// journaled again, and the events are applied once, by one runner at a
// time, also while both appliers run.
func TestFleetWebhooks(t *testing.T) {
	f := newFleet(t, nil)
	ctx := t.Context()
	if failed, err := f.runners[0].Once(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("the bulk load: failed %v, %v", failed, err)
	}
	f.post(0, "evt_a", "ch_2", 201)
	f.post(1, "evt_b", "ch_9", 900)
	f.post(1, "evt_a", "ch_2", 201) // Stripe retrying, through the other runner
	f.post(0, "evt_b", "ch_9", 900)
	if n := f.count(`SELECT count(*) FROM sluice.webhook_journal`); n != 2 {
		t.Errorf("%d records journaled, want 2", n)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "no journal here")); !os.IsNotExist(err) {
		t.Errorf("a file journal too: %v", err)
	}

	// While another runner holds the claim, a runner applies nothing and
	// says nothing is wrong.
	other, err := f.claims[1].TryClaim(ctx, "webhook:stripe.billing")
	if err != nil {
		t.Fatal(err)
	}
	f.runners[0].hooks.applyPendingWebhooks(ctx, false)
	if rows, seq := f.charges(); len(rows) != 2 || seq != "0" {
		t.Errorf("applied under another runner's claim: %v, seq %s", rows, seq)
	}
	other.Release(ctx)

	f.applyAtOnce()
	rows, seq := f.charges()
	if diff := cmp.Diff([]string{"ch_1|100", "ch_2|201", "ch_9|900"}, rows); diff != "" || seq != "2" {
		t.Errorf("after the appliers (-want +got):\n%s\nseq %s", diff, seq)
	}
	if n := f.applied(); n != 2 {
		t.Errorf("%d events applied, want 2", n)
	}

	// Both daemons' appliers run while deliveries reach both runners.
	actx, cancel := context.WithCancel(ctx)
	var done []<-chan struct{}
	for _, r := range f.runners {
		done = append(done, r.hooks.runApplier(actx))
	}
	want := []string{"ch_1|100", "ch_2|201", "ch_9|900"}
	const events = 40
	for i := range events {
		charge := fmt.Sprintf("ch_x%02d", i)
		f.post(i%2, "evt_x"+charge, charge, i)
		f.post(1-i%2, "evt_x"+charge, charge, i)
		want = append(want, fmt.Sprintf("%s|%d", charge, i))
	}
	sort.Strings(want)
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, seq := f.charges()
		if seq == fmt.Sprint(2+events) {
			if diff := cmp.Diff(want, rows); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: seq %s, %d rows", seq, len(rows))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	for _, d := range done {
		<-d
	}
	if n := f.applied(); n != 2+events {
		t.Errorf("%d events applied, want %d: some twice", n, 2+events)
	}
	if n := f.count(`SELECT count(*) FROM sluice.webhook_seen`); n != 2+events {
		t.Errorf("%d seen ids, want %d", n, 2+events)
	}
}

// TestFleetWebhookClaimLost: a runner whose claim session ended before a
// commit does not commit; another runner then applies the events.
func TestFleetWebhookClaimLost(t *testing.T) {
	f := newFleet(t, nil)
	ctx := t.Context()
	if failed, err := f.runners[0].Once(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("the bulk load: failed %v, %v", failed, err)
	}
	f.post(0, "evt_a", "ch_2", 201)
	c := f.claims[0]
	c.beforeCheck = func() {
		// The server ends the session, as it does after the claim
		// timeout.
		if _, err := f.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, c.conn.PgConn().PID()); err != nil {
			t.Error(err)
		}
		c.beforeCheck = nil
	}
	f.runners[0].hooks.applyPendingWebhooks(ctx, false)
	if rows, seq := f.charges(); !cmp.Equal(rows, []string{"ch_1|100", "ch_2|200"}) || seq != "0" {
		t.Errorf("committed after the claim was lost: %v, seq %s", rows, seq)
	}
	f.runners[1].hooks.applyPendingWebhooks(ctx, false)
	if rows, seq := f.charges(); !cmp.Equal(rows, []string{"ch_1|100", "ch_2|201"}) || seq != "1" {
		t.Errorf("the other runner's application: %v, seq %s", rows, seq)
	}
	if n := f.applied(); n != 1 {
		t.Errorf("%d events applied, want 1", n)
	}
}

// gatedSource is a Stripe source whose bulk loads, once armed, wait for
// the gate after saying they started.
type gatedSource struct {
	providers.Source
	providers.SnapshotReader
	providers.WebhookSource
	g *gate
}

type gate struct {
	armed   bool
	started chan struct{}
	open    chan struct{}
}

// Schema is gated: the bulk load has read the position it starts from,
// and not yet taken the table's writer lock.
func (s gatedSource) Schema(ctx context.Context, req providers.ReadRequest) (*records.Schema, error) {
	if s.g.armed {
		close(s.g.started)
		<-s.g.open
	}
	return s.SnapshotReader.Schema(ctx, req)
}

func (g *gate) opener(ctx context.Context, src *config.Source) (providers.Source, error) {
	p, err := providers.Open(ctx, src)
	if err != nil {
		return nil, err
	}
	return gatedSource{Source: p, SnapshotReader: p.(providers.SnapshotReader), WebhookSource: p.(providers.WebhookSource), g: g}, nil
}

// TestFleetBulkLoadHoldsTheApplication: while a runner bulk-loads a
// webhook table, no other runner applies the source's journal: it would
// commit (and compact away) events the load then takes for applied, as
// the load commits the journal position it started from. The load waits
// for another runner's pass to end.
func TestFleetBulkLoadHoldsTheApplication(t *testing.T) {
	g := &gate{started: make(chan struct{}), open: make(chan struct{})}
	f := newFleet(t, g.opener)
	ctx := t.Context()
	if failed, err := f.runners[0].Once(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("the bulk load: failed %v, %v", failed, err)
	}
	f.post(1, "evt_a", "ch_2", 201)

	other, err := f.claims[1].TryClaim(ctx, "webhook:stripe.billing")
	if err != nil {
		t.Fatal(err)
	}
	g.armed = true
	jobs, _ := f.runners[0].webhookJobs("stripe.billing")
	synced := make(chan error, 1)
	go func() {
		_, err := f.runners[0].syncWebhookTable(ctx, jobs[0])
		synced <- err
	}()
	select {
	case <-g.started:
		t.Error("the bulk load started while another runner applied the journal")
	case <-time.After(400 * time.Millisecond):
	}
	other.Release(ctx)
	<-g.started

	f.runners[1].hooks.applyPendingWebhooks(ctx, false)
	if n := f.count(`SELECT count(*) FROM sluice.webhook_journal`); n != 1 {
		t.Errorf("%d records during the bulk load, want 1", n)
	}
	if rows, seq := f.charges(); !cmp.Equal(rows, []string{"ch_1|100", "ch_2|200"}) || seq != "0" {
		t.Errorf("applied during another runner's bulk load: %v, seq %s", rows, seq)
	}
	close(g.open)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if rows, seq := f.charges(); !cmp.Equal(rows, []string{"ch_1|100", "ch_2|201"}) || seq != "1" {
		t.Errorf("after the bulk load: %v, seq %s", rows, seq)
	}
}

// readCharges reads stripe_charges of the Parquet warehouse under dir as
// "id|amount", sorted.
func readCharges(t *testing.T, dir string) []string {
	t.Helper()
	w, err := parquet.Open(filepath.Join(dir, "warehouse"))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := w.OpenTable("stripe_charges")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = tb.Scan(t.Context(), func(b *records.Batch) error {
		id, amount := b.Schema.Index("id"), b.Schema.Index("amount")
		for i := 0; i < b.N; i++ {
			out = append(out, fmt.Sprintf("%s|%d", b.Cols[id].Bytes(i), b.Cols[amount].I64[i]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
