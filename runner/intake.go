package runner

// Webhook intake: the receiver, the journals and the applier.
//
// A delivery is answered 200 only once it is durable: verified and
// decoded by the source's provider (providers.WebhookSource), checked
// against the event ids already seen, and appended to the source's journal
// (package journal): one JSON line fsynced, or, in a fleet, a row committed
// in the state database. Events are merged into their warehouse tables
// later, by the applier (a goroutine of the daemon, and every webhook
// table's own sync), in journal order, each commit recording the last
// record it holds (webhook.go). The journal is compacted only to drop
// records every table has committed.
//
// Each source's journal is in <Options.JournalDir>/<source address>/, or
// where intakeDeps.openJournal opens it. In a fleet every runner receives
// deliveries (behind a load balancer) into the shared journal, and one at
// a time applies a source's journal, under the claim "webhook:<source>".

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/runner/journal"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

// intake is webhook intake: the receiver of the deliveries of the
// runner's webhook sources (the HTTP handler and its limits), their
// journals, and the applier that merges journaled events into their tables
// and counts them in the sources' status records. It is built from what it
// depends on (intakeDeps), not from the runner.
type intake struct {
	intakeDeps

	mu      sync.Mutex
	sources map[string]*hookSource
	locks   map[string]*sync.Mutex // by warehouse table: one writer at a time
	health  map[string]state.SourceStatus
	notify  chan struct{}
	events  *prometheus.CounterVec
	// decoders are the sources' providers that verify and decode
	// deliveries, by address, opened on first use.
	decoders map[string]providers.Source
	// held are the claims on applying sources' journals this runner holds
	// now, by source, shared by its appliers of the source's tables.
	claimMu sync.Mutex
	held    map[string]*webhookClaim
}

// intakeDeps are what webhook intake works with.
type intakeDeps struct {
	// dir holds the journals, one directory per source (Options.JournalDir).
	dir string
	// tables lists the applied, enabled webhook tables (of the source addr
	// when not ""); loaded is false until the runner has read its state.
	tables func(addr string) (jobs []job, loaded bool)
	// open opens a source's provider: the providers.WebhookSource that
	// verifies, decodes and converts its events.
	open      func(ctx context.Context, src *config.Source) (providers.Source, error)
	warehouse warehouse.Warehouse
	// status records a table's rows after the applier commits; store holds
	// the source status records with the webhook counters.
	status statusRecorder
	store  state.StatusStore
	// storedSecret is the signing secret apply stored for a source ("" when
	// none); webhookURL the endpoint apply registered for it.
	storedSecret func(addr string) (string, error)
	webhookURL   func(addr string) string
	registry     prometheus.Registerer
	log          hclog.Logger
	now          func() time.Time
	// maint maintains a table after the applier's commits (maintain.go).
	maint *maintainer
	// counter, in a fleet, keeps the webhook counters every runner adds
	// to; nil: this runner's counters are the source's.
	counter state.WebhookCounter
	// openJournal opens a source's journal; nil: the file journal in
	// dir/<source>. A fleet's runners open the one in the state database
	// (pgjournal.OpenPostgres), which they all receive into.
	openJournal func(ctx context.Context, source string) (journal.Store, error)
	// claims, in a fleet, keep the application of a source's journal to
	// one runner at a time; nil: this runner is the only one.
	claims state.Claimer
}

func newIntake(d intakeDeps) *intake {
	h := &intake{intakeDeps: d,
		sources: map[string]*hookSource{}, locks: map[string]*sync.Mutex{},
		health: map[string]state.SourceStatus{}, decoders: map[string]providers.Source{},
		notify: make(chan struct{}, 1), held: map[string]*webhookClaim{},
	}
	h.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_webhook_events_total",
		Help: "Webhook deliveries by outcome: journaled, duplicate, ignored (not a synced table), rejected, applied.",
	}, []string{"source", "outcome"})
	if err := d.registry.Register(h.events); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			h.events = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return h
}

// tableLock serializes the writers of one warehouse table: its bulk load
// and the applier.
func (h *intake) tableLock(name string) *sync.Mutex {
	h.mu.Lock()
	defer h.mu.Unlock()
	mu := h.locks[name]
	if mu == nil {
		mu = &sync.Mutex{}
		h.locks[name] = mu
	}
	return mu
}

func (h *intake) wake() {
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// jobs is tables without loaded.
func (h *intake) jobs(addr string) []job {
	jobs, _ := h.tables(addr)
	return jobs
}

// hookSource is one source's journal and its webhook counters.
type hookSource struct {
	j journal.Store

	mu    sync.Mutex
	stats state.SourceStatus // counters only
	dirty bool
	// added are the counters as last added to a fleet's shared ones
	// (intakeDeps.counter).
	added state.SourceStatus
}

// hookSource opens a source's journal on first use: the seen ids, the
// records not yet compacted away (a torn last line, from a crash while it
// was written and so never acknowledged, is cut off), the counters from
// the status records, and the sequence numbers the tables committed.
func (h *intake) hookSource(ctx context.Context, addr string) (*hookSource, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hs := h.sources[addr]; hs != nil {
		return hs, nil
	}
	var jn journal.Store
	var err error
	if h.openJournal != nil {
		jn, err = h.openJournal(ctx, addr)
	} else {
		jn, err = journal.Open(filepath.Join(h.dir, addr), addr, h.now())
	}
	if err != nil {
		return nil, err
	}
	hs := &hookSource{j: jn}
	// The journal is cached for later requests: a cancelled request must
	// not leave it without the committed sequence numbers.
	ctx = context.WithoutCancel(ctx)
	for _, j := range h.jobs(addr) {
		if seq, _, err := h.committedSeq(ctx, j); err == nil {
			jn.Committed(j.table.Table, seq)
		}
	}
	if st, err := h.store.ReadStatus(ctx); err == nil {
		if ss := st.Sources[addr]; ss != nil {
			hs.stats.EventsReceived, hs.stats.EventsRejected, hs.stats.EventsApplied = ss.EventsReceived, ss.EventsRejected, ss.EventsApplied
			hs.added = hs.stats
			hs.stats.LastEventAt = ss.LastEventAt
			if _, ok := h.health[addr]; !ok {
				h.health[addr] = *ss
			}
		}
	}
	h.sources[addr] = hs
	return hs, nil
}

// received counts an authentic delivery.
func (hs *hookSource) received(now time.Time) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.stats.EventsReceived++
	hs.stats.LastEventAt = now.UTC()
	hs.dirty = true
}

// count adds to the counters of rejected and applied events.
func (hs *hookSource) count(rejected, applied int64) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.stats.EventsRejected += rejected
	hs.stats.EventsApplied += applied
	hs.dirty = true
}

// close releases the journals and the providers.
func (h *intake) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for addr, hs := range h.sources {
		hs.j.Close()
		delete(h.sources, addr)
	}
	for addr, p := range h.decoders {
		_ = p.Close()
		delete(h.decoders, addr)
	}
	return nil
}

// webhookDecoder is the provider that verifies and decodes the deliveries
// of a source, opened once and kept: it is asked for every delivery.
func (h *intake) webhookDecoder(ctx context.Context, src *config.Source) (providers.WebhookSource, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.decoders[src.Address()]
	if p == nil {
		var err error
		// Kept past this delivery: not tied to its context.
		if p, err = h.open(context.WithoutCancel(ctx), src); err != nil {
			return nil, err
		}
		h.decoders[src.Address()] = p
	}
	ws, ok := p.(providers.WebhookSource)
	if !ok {
		return nil, fmt.Errorf("%s sources do not take webhook deliveries", src.Type)
	}
	return ws, nil
}

// handler serves the deliveries within the limits l.
func (h *intake) handler(l WebhookLimits) http.Handler {
	hl := newHookLimiter(l)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { h.serveWebhook(w, req, hl) })
}

// cutOff makes the server close the connection after the reply without
// waiting for the rest of a body (which a slow client may never send).
func cutOff(w http.ResponseWriter, rc *http.ResponseController) {
	w.Header().Set("Connection", "close")
	_ = rc.SetReadDeadline(time.Now())
}

func (h *intake) serveWebhook(w http.ResponseWriter, req *http.Request, hl *hookLimiter) {
	rc := http.NewResponseController(w)
	// Answered before the body is read: the connection closes at once
	// rather than wait for a body that may trickle.
	early := func(status int, format string, args ...any) {
		cutOff(w, rc)
		reply(w, status, format, args...)
	}
	addr, _ := strings.CutPrefix(req.URL.Path, "/webhooks/")
	if _, loaded := h.tables(""); !loaded {
		early(http.StatusServiceUnavailable, "the runner is starting")
		return
	}
	src, tables := h.webhookTarget(addr)
	if src == nil {
		early(http.StatusNotFound, "no source %q receives webhooks here", addr)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		early(http.StatusMethodNotAllowed, "webhook deliveries are POSTed")
		return
	}
	log := h.log.With("source", addr)
	ctx := req.Context()
	hs, err := h.hookSource(ctx, addr)
	if err != nil {
		log.Error("cannot receive webhook deliveries", "error", err)
		early(http.StatusServiceUnavailable, "the webhook journal is not available")
		return
	}
	reject := func(status int, format string, args ...any) {
		hs.count(1, 0)
		h.events.WithLabelValues(addr, "rejected").Inc()
		log.Warn("webhook delivery rejected", "status", status, "reason", fmt.Sprintf(format, args...))
		reply(w, status, format, args...)
	}
	slot := hl.acquire(addr, rc, time.Now())
	if slot == nil {
		// Every slot is taken by deliveries that started reading their
		// body within EvictAfter: Stripe retries later.
		cutOff(w, rc)
		w.Header().Set("Retry-After", hl.retryAfter())
		reject(http.StatusServiceUnavailable, "too many webhook deliveries at once; retry later")
		return
	}
	defer hl.release(slot)
	// The whole body within BodyTimeout, however slowly it trickles.
	_ = rc.SetReadDeadline(time.Now().Add(hl.lim.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxWebhookBody))
	hl.bodyRead(slot)
	if err != nil {
		cutOff(w, rc)
		var tooLarge *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooLarge):
			reject(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", MaxWebhookBody)
		case errors.As(err, &netErr) && netErr.Timeout():
			reject(http.StatusRequestTimeout, "the body did not arrive within %s", hl.lim.BodyTimeout)
		default:
			reject(http.StatusBadRequest, "reading the body: %v", err)
		}
		return
	}
	secrets, err := h.signingSecrets(src)
	if err != nil || len(secrets) == 0 {
		if err == nil {
			err = providers.ErrNoSigningSecret
		}
		// The source retries, so the delivery is not lost once this is
		// fixed.
		reject(http.StatusServiceUnavailable, "%v", err)
		return
	}
	dec, err := h.webhookDecoder(ctx, src)
	if err != nil {
		log.Error("cannot verify webhook deliveries", "error", err)
		reject(http.StatusServiceUnavailable, "%v", err)
		return
	}
	now := h.now()
	if err := dec.VerifyWebhook(body, req.Header, secrets, now); err != nil {
		reject(http.StatusBadRequest, "%v", err)
		return
	}
	ev, err := dec.DecodeWebhookEvent(body)
	if err != nil {
		reject(http.StatusBadRequest, "%v", err)
		return
	}
	table := ev.Table
	if table == "" || !tables[table] || ev.ObjectID == "" {
		// Acknowledged, so that Stripe does not retry what sluice does
		// not sync.
		hs.received(now)
		h.events.WithLabelValues(addr, "ignored").Inc()
		log.Debug("webhook event of no synced table", "event", ev.ID, "type", ev.Type)
		reply(w, http.StatusOK, "")
		return
	}
	dup, err := hs.j.Append(ctx, ev.ID, table, body, now)
	if err != nil {
		log.Error("cannot journal a webhook event; Stripe will retry it", "event", ev.ID, "error", err)
		reply(w, http.StatusInternalServerError, "the event could not be stored")
		return
	}
	hs.received(now)
	if dup {
		// A redelivery (or a replay): answered 200 so that Stripe stops,
		// but not journaled twice.
		h.events.WithLabelValues(addr, "duplicate").Inc()
		reply(w, http.StatusOK, "")
		return
	}
	h.events.WithLabelValues(addr, "journaled").Inc()
	h.wake()
	reply(w, http.StatusOK, "")
}

func reply(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusOK {
		_, _ = w.Write([]byte(`{"received":true}` + "\n"))
		return
	}
	msg, _ := json.Marshal(map[string]string{"error": fmt.Sprintf(format, args...)})
	_, _ = w.Write(append(msg, '\n'))
}

// webhookTarget finds the source a delivery is for, and the tables it
// syncs by webhook; nil when it has none.
func (h *intake) webhookTarget(addr string) (*config.Source, map[string]bool) {
	var src *config.Source
	tables := map[string]bool{}
	for _, j := range h.jobs(addr) {
		src = j.src
		tables[j.table.Table] = true
	}
	if addr == "" || src == nil || src.Stripe.Webhook == nil {
		return nil, nil
	}
	return src, tables
}

// signingSecrets are the secrets a delivery may be signed with:
// signing_secret from the configuration, and the one apply stored when it
// registered the endpoint.
func (h *intake) signingSecrets(src *config.Source) ([]string, error) {
	var out []string
	if s := src.Stripe.Webhook.SigningSecret; s != "" {
		out = append(out, s)
	}
	stored, err := h.storedSecret(src.Address())
	if err != nil {
		return out, err
	}
	if stored != "" && (len(out) == 0 || out[0] != stored) {
		out = append(out, stored)
	}
	return out, nil
}

// committedSeq is the last journal record a webhook table committed, and
// whether its bulk load committed at all.
func (h *intake) committedSeq(ctx context.Context, j job) (seq uint64, loaded bool, err error) {
	wt, err := h.warehouse.Table(ctx, j.table.WarehouseTable)
	if err != nil {
		return 0, false, err
	}
	pos, loaded := wt.Position()
	return positionSeq(pos), loaded, nil
}

// applyWebhookEvents merges the journaled events of a webhook table past
// its committed position, in bounded commits, each recording the last
// record it holds. It does nothing before the table's first bulk load
// committed: those events wait for it, nor in a fleet while another runner
// applies the source's journal. The caller holds the table's lock.
func (h *intake) applyWebhookEvents(ctx context.Context, j job, eb providers.WebhookSource) (applied, rows int64, err error) {
	addr := j.src.Address()
	hs, err := h.hookSource(ctx, addr)
	if err != nil {
		return 0, 0, err
	}
	log := h.log.With("table", j.addr)
	claim, ok, err := h.claimWebhooks(ctx, addr)
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		log.Debug("another runner applies the journaled webhook events")
		return 0, 0, nil
	}
	defer h.releaseWebhooks(ctx, addr, claim)
	req := providers.ReadRequest{
		Schema: j.table.Schema, Table: j.table.Table, Columns: j.table.Columns, PrimaryKey: j.table.PrimaryKey,
	}
	var committed warehouse.Table
	for ctx.Err() == nil {
		wt, err := h.warehouse.Table(ctx, j.table.WarehouseTable)
		if err != nil {
			return applied, rows, err
		}
		pos, loaded := wt.Position()
		if !loaded {
			return applied, rows, nil
		}
		if err := renameInPlace(ctx, wt, j.table, j.table.WarehouseTable, false, log); err != nil {
			return applied, rows, err
		}
		done := positionSeq(pos)
		hs.j.Committed(j.table.Table, done)
		recs, err := hs.j.Pending(ctx, j.table.Table, done)
		if err != nil {
			return applied, rows, err
		}
		if len(recs) == 0 {
			break
		}
		events := make([]*providers.WebhookEvent, 0, len(recs))
		for _, rec := range recs {
			ev, err := eb.DecodeWebhookEvent(rec.Event)
			if err != nil {
				// Parsed before it was journaled: only a damaged
				// journal gets here.
				log.Error("skipping a journaled webhook event that no longer parses", "seq", rec.Seq, "event", rec.ID, "error", err)
				continue
			}
			events = append(events, ev)
		}
		b, err := eb.WebhookRows(req, events)
		if err != nil {
			// One bad object must not hold back the rest: keep those
			// that convert, skipping the others with an error each.
			var ok []*providers.WebhookEvent
			for _, ev := range events {
				if _, e := eb.WebhookRows(req, []*providers.WebhookEvent{ev}); e != nil {
					log.Error("skipping a webhook event whose object cannot be converted", "event", ev.ID, "error", e)
					hs.count(1, 0)
					continue
				}
				ok = append(ok, ev)
			}
			if b, err = eb.WebhookRows(req, ok); err != nil {
				return applied, rows, err
			}
		}
		b = newRenamer(j.table.Rename).batch(b)
		tx, err := wt.Begin(ctx, warehouse.Merge, b.Schema, string(j.table.Sync))
		if err != nil {
			return applied, rows, err
		}
		if err := tx.Write(ctx, b); err != nil {
			_ = tx.Abort(ctx)
			return applied, rows, err
		}
		next := pos
		next.Extra = maps.Clone(pos.Extra)
		if next.Extra == nil {
			next.Extra = map[string]string{}
		}
		last := recs[len(recs)-1].Seq
		next.Extra[WebhookSeqKey] = strconv.FormatUint(last, 10)
		if err := claim.check(ctx); err != nil {
			// Another runner may be applying these events by now.
			_ = tx.Abort(ctx)
			return applied, rows, fmt.Errorf("not committing journaled webhook events: %w", err)
		}
		n, err := tx.Commit(ctx, next)
		if err != nil {
			_ = tx.Abort(ctx)
			return applied, rows, err
		}
		rows = n
		applied += int64(len(events))
		hs.j.Committed(j.table.Table, last)
		hs.count(0, int64(len(events)))
		h.events.WithLabelValues(addr, "applied").Add(float64(len(events)))
		log.Debug("webhook events applied", "events", len(events), "table_rows", n)
		committed = wt
	}
	if committed != nil {
		// The caller holds the table's lock: no other writer here.
		h.maint.after(ctx, j.table.WarehouseTable, committed, warehouse.TableVersion{})
	}
	live := map[string]bool{}
	for _, wj := range h.jobs(addr) {
		live[wj.table.Table] = true
	}
	if err := hs.j.Compact(ctx, live, h.now()); err != nil {
		log.Warn("cannot compact the webhook journal; it keeps growing until this is fixed", "error", err)
	}
	return applied, rows, ctx.Err()
}

// webhookClaim is this runner's claim, in a fleet, on applying a source's
// journal: held while any of its appliers of the source's tables runs.
type webhookClaim struct {
	claim state.Claim
	users int        // guarded by intake.claimMu
	mu    sync.Mutex // one Check at a time
}

// claimWebhooks takes, in a fleet, the claim on applying the journal of
// the source addr, or shares the one this runner holds; ok is false when
// another runner holds it (that runner applies the events). Without
// claims it returns nil, true.
func (h *intake) claimWebhooks(ctx context.Context, addr string) (c *webhookClaim, ok bool, err error) {
	if h.claims == nil {
		return nil, true, nil
	}
	h.claimMu.Lock()
	defer h.claimMu.Unlock()
	if c := h.held[addr]; c != nil {
		c.users++
		return c, true, nil
	}
	cl, err := h.claims.TryClaim(ctx, "webhook:"+addr)
	var claimed *state.ClaimedError
	if errors.As(err, &claimed) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("claim the application of %s's webhook journal: %w", addr, err)
	}
	c = &webhookClaim{claim: cl, users: 1}
	h.held[addr] = c
	return c, true, nil
}

// releaseWebhooks gives back a use of a claim of claimWebhooks, and the
// claim with its last use, even when ctx ended (the daemon stopping).
func (h *intake) releaseWebhooks(ctx context.Context, addr string, c *webhookClaim) {
	if c == nil {
		return
	}
	h.claimMu.Lock()
	defer h.claimMu.Unlock()
	if c.users--; c.users > 0 {
		return
	}
	delete(h.held, addr)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	c.claim.Release(rctx)
}

// claimWait bounds how long a webhook table's bulk load waits for another
// runner's pass over the source's journal to end.
const claimWait = time.Minute

// holdWebhooks holds, in a fleet, the claim on applying the journal of the
// source addr until release is called, waiting up to claimWait for
// another runner's pass to end. A webhook table's bulk load holds it, so
// that no other runner applies (and compacts away) events it would take
// for applied: the load commits the journal position it started from.
// This runner's applier shares the claim meanwhile.
func (h *intake) holdWebhooks(ctx context.Context, addr string) (release func(), err error) {
	deadline := time.Now().Add(claimWait)
	for {
		c, ok, err := h.claimWebhooks(ctx, addr)
		if err != nil {
			return nil, err
		}
		if ok {
			return func() { h.releaseWebhooks(ctx, addr, c) }, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("another runner has been applying %s's webhook events for over %s; the bulk load waits for that", addr, claimWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// check reports whether the claim is still held, right before a commit
// under it; nil without claims.
func (c *webhookClaim) check(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claim.Check(ctx)
}

// applyPendingWebhooks applies the journaled events of every webhook
// table that has some. With try, a table being written (its bulk load) is
// skipped: that sync applies them when it is done.
func (h *intake) applyPendingWebhooks(ctx context.Context, try bool) {
	for _, j := range h.jobs("") {
		hs, err := h.hookSource(ctx, j.src.Address())
		if err != nil {
			if !try {
				h.log.Warn("cannot apply journaled webhook events", "table", j.addr, "error", err)
			}
			continue
		}
		if pending, err := hs.j.HasPending(ctx, j.table.Table); err != nil || !pending {
			if err != nil && !try {
				h.log.Warn("cannot apply journaled webhook events", "table", j.addr, "error", err)
			}
			continue
		}
		mu := h.tableLock(j.table.WarehouseTable)
		if try {
			if !mu.TryLock() {
				continue
			}
		} else {
			mu.Lock()
		}
		err = func() error {
			src, err := h.open(ctx, j.src)
			if err != nil {
				return err
			}
			defer src.Close()
			ws, err := webhookSource(j, src)
			if err != nil {
				return err
			}
			_, rows, err := h.applyWebhookEvents(ctx, j, ws)
			if err == nil && rows > 0 {
				h.status.rows(j, rows)
			}
			return err
		}()
		mu.Unlock()
		if err != nil && ctx.Err() == nil {
			h.log.Error("applying webhook events failed; they stay journaled and are retried", "table", j.addr, "error", err)
		}
	}
}

// runWebhookApplier applies journaled events as they arrive (and every
// second, for those that waited on a bulk load) and writes the webhook
// counters, until ctx ends.
func (h *intake) runApplier(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			h.applyPendingWebhooks(ctx, true)
			h.flushStatus(ctx)
			select {
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				h.flushStatus(sctx)
				cancel()
				return
			case <-tick.C:
			case <-h.notify:
			}
		}
	}()
	return done
}

// drainWebhooks applies every journaled event and records the counters:
// what run -once does after its syncs.
func (h *intake) drain(ctx context.Context) {
	h.applyPendingWebhooks(ctx, false)
	h.flushStatus(ctx)
}

// flushWebhookStatus writes the counters of the sources whose counters
// changed.
func (h *intake) flushStatus(ctx context.Context) {
	h.mu.Lock()
	var dirty []string
	for addr, hs := range h.sources {
		hs.mu.Lock()
		if hs.dirty {
			dirty = append(dirty, addr)
		}
		hs.mu.Unlock()
	}
	h.mu.Unlock()
	for _, addr := range dirty {
		h.mu.Lock()
		ss, ok := h.health[addr]
		h.mu.Unlock()
		if !ok {
			ss = state.SourceStatus{Address: addr, State: "healthy"}
		}
		if err := h.putSourceStatus(ctx, &ss); err != nil {
			h.log.Warn("cannot record source status", "source", addr, "error", err)
		}
	}
}

// putSourceStatus records a source's status with its webhook counters and
// endpoint, remembering its health for the counters' later writes.
func (h *intake) putSourceStatus(ctx context.Context, ss *state.SourceStatus) error {
	h.mu.Lock()
	h.health[ss.Address] = *ss
	hs := h.sources[ss.Address]
	h.mu.Unlock()
	if hs == nil && len(h.jobs(ss.Address)) > 0 {
		// Open the journal for its counters, so that this write does not
		// reset them; a journal another runner owns has them in status.
		var err error
		if hs, err = h.hookSource(ctx, ss.Address); err != nil {
			if st, rerr := h.store.ReadStatus(ctx); rerr == nil && st.Sources[ss.Address] != nil {
				old := st.Sources[ss.Address]
				ss.EventsReceived, ss.EventsRejected, ss.EventsApplied, ss.LastEventAt = old.EventsReceived, old.EventsRejected, old.EventsApplied, old.LastEventAt
			}
		}
	}
	if url := h.webhookURL(ss.Address); url != "" {
		ss.WebhookURL = url
	}
	if hs != nil {
		hs.mu.Lock()
		ss.EventsReceived, ss.EventsRejected, ss.EventsApplied = hs.stats.EventsReceived, hs.stats.EventsRejected, hs.stats.EventsApplied
		ss.LastEventAt = hs.stats.LastEventAt
		hs.dirty = false
		cur, added := hs.stats, hs.added
		hs.added = cur
		hs.mu.Unlock()
		if h.counter != nil {
			// In a fleet every runner counts: each adds what it counted
			// since its last addition.
			dr, dj, da := cur.EventsReceived-added.EventsReceived, cur.EventsRejected-added.EventsRejected, cur.EventsApplied-added.EventsApplied
			if dr != 0 || dj != 0 || da != 0 {
				if err := h.counter.AddWebhookCounts(ctx, ss.Address, dr, dj, da, cur.LastEventAt); err != nil {
					hs.mu.Lock()
					hs.added, hs.dirty = added, true // added again at the next write
					hs.mu.Unlock()
					h.log.Warn("cannot add to the webhook counters", "source", ss.Address, "error", err)
				}
			}
		}
	}
	ss.UpdatedAt = h.now().UTC()
	return h.store.PutSourceStatus(ctx, ss)
}

// webhookSource is the provider of a webhook table as the capability that
// decodes and converts its events.
func webhookSource(j job, src providers.Source) (providers.WebhookSource, error) {
	ws, ok := src.(providers.WebhookSource)
	if !ok {
		return nil, fmt.Errorf("%s sources do not take webhook events", j.src.Type)
	}
	return ws, nil
}
