package runner

// The webhook receiver and its journal.
//
// A delivery is answered 200 only once it is durably on disk: verified
// and decoded by the source's provider (providers.WebhookSource), checked
// against the event ids already
// seen, appended as one JSON line to the source's journal and fsynced.
// Events are merged into their warehouse tables later, by the applier (a
// goroutine of the daemon, and every webhook table's own sync), in journal
// order. Each record has a sequence number; a table's committed position
// holds the sequence number of the last record merged into it
// (Position.Extra["webhook_seq"]), in the same commit as the rows, so that
// a crash anywhere neither loses an acknowledged event nor applies one
// twice: on restart, the records past the committed number are merged.
// The journal is compacted only to drop records every table has committed.
//
// Files, in <state dir>/webhooks/<source address>/ (the local backend's
// directory; .sluice/webhooks under the configuration directory with the
// postgres backend), all mode 0600:
//
//	journal.jsonl  {"seq","id","table","received","event"} lines, append-only
//	seen.json      ids of events already journaled and compacted away, kept
//	               for seenRetention, and the last sequence number
//	lock           flock'ed by the runner that owns the journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/atomicfile"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/webhooksecret"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

const (
	// MaxWebhookBody bounds a delivery's body; Stripe's events are far
	// smaller. Larger bodies are answered 413.
	MaxWebhookBody = 1 << 20
	// WebhookSeqKey is the Position.Extra key of the last journal record
	// merged into a webhook table.
	WebhookSeqKey = "webhook_seq"
	// seenRetention is how long event ids are remembered after their
	// records are compacted away: Stripe retries a delivery for up to
	// three days, and a late retry of an old event must not overwrite a
	// newer version of its object.
	seenRetention = 96 * time.Hour
	// Bounds of one merge commit, so that memory stays bounded however
	// long the journal grew while a table waited for its bulk load.
	maxEventsPerCommit = 10_000
	maxBytesPerCommit  = 64 << 20
	// compactAfter is how many applied records make the journal worth
	// rewriting even while others are pending.
	compactAfter = 1024

	journalFile = "journal.jsonl"
	seenFile    = "seen.json"
	lockFile    = "lock"
)

// errJournalLocked reports that another runner owns a source's journal.
var errJournalLocked = errors.New("another sluice run owns the webhook journal")

// webhooks is the runner's webhook machinery; its zero value is ready.
type webhooks struct {
	once    sync.Once
	mu      sync.Mutex
	sources map[string]*hookSource
	tables  map[string]*sync.Mutex // by warehouse table: one writer at a time
	health  map[string]state.SourceStatus
	notify  chan struct{}
	events  *prometheus.CounterVec
	// decoders are the sources' providers that verify and decode
	// deliveries, by address, opened on first use.
	decoders map[string]providers.Source
}

func (r *Runner) hooksInit() *webhooks {
	h := &r.hooks
	h.once.Do(func() {
		h.sources = map[string]*hookSource{}
		h.tables = map[string]*sync.Mutex{}
		h.health = map[string]state.SourceStatus{}
		h.decoders = map[string]providers.Source{}
		h.notify = make(chan struct{}, 1)
		h.events = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_events_total",
			Help: "Webhook deliveries by outcome: journaled, duplicate, ignored (not a synced table), rejected, applied.",
		}, []string{"source", "outcome"})
		if err := r.opt.Metrics.Registry.Register(h.events); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				h.events = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	})
	return h
}

// tableLock serializes the writers of one warehouse table: its bulk load
// and the applier.
func (r *Runner) tableLock(name string) *sync.Mutex {
	h := r.hooksInit()
	h.mu.Lock()
	defer h.mu.Unlock()
	mu := h.tables[name]
	if mu == nil {
		mu = &sync.Mutex{}
		h.tables[name] = mu
	}
	return mu
}

func (h *webhooks) wake() {
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// webhookDir is where the journals are.
func (r *Runner) webhookDir() string {
	if l, ok := r.opt.Backend.(*state.Local); ok {
		return filepath.Join(filepath.Dir(l.Path()), "webhooks")
	}
	return filepath.Join(r.opt.Config.Dir, ".sluice", "webhooks")
}

// webhookJobs lists the applied, enabled webhook tables of Stripe sources
// that are in the configuration; of one source when addr is not "".
func (r *Runner) webhookJobs(addr string) []job {
	r.mu.Lock()
	loaded := r.st != nil
	r.mu.Unlock()
	if !loaded {
		return nil
	}
	jobs, _ := r.jobs()
	var out []job
	for _, j := range jobs {
		if j.table.Enabled && j.table.Sync == config.SyncWebhook && j.src.Stripe != nil &&
			(addr == "" || j.src.Address() == addr) {
			out = append(out, j)
		}
	}
	return out
}

// hookSource is one source's journal, seen ids and counters.
type hookSource struct {
	addr string
	dir  string
	lock *os.File

	mu     sync.Mutex
	f      *os.File // the journal, O_APPEND
	size   int64    // bytes of complete records
	broken error    // set when a failed append could not be undone
	seen   map[string]int64
	last   uint64         // the last sequence number given
	index  []journalEntry // the journal's records, in order
	done   map[string]uint64
	stats  state.SourceStatus // counters only
	dirty  bool
}

type journalEntry struct {
	seq   uint64
	table string
	size  int
}

type journalRecord struct {
	Seq      uint64          `json:"seq"`
	ID       string          `json:"id"`
	Table    string          `json:"table"`
	Received int64           `json:"received"`
	Event    json.RawMessage `json:"event"`
}

type seenState struct {
	LastSeq uint64           `json:"last_seq"`
	IDs     map[string]int64 `json:"ids"`
}

// hookSource opens a source's journal on first use: the seen ids, the
// records not yet compacted away (a torn last line, from a crash while it
// was written and so never acknowledged, is cut off), the counters from
// the status records, and the sequence numbers the tables committed.
func (r *Runner) hookSource(ctx context.Context, addr string) (*hookSource, error) {
	h := r.hooksInit()
	h.mu.Lock()
	defer h.mu.Unlock()
	if hs := h.sources[addr]; hs != nil {
		return hs, nil
	}
	hs, err := openJournal(filepath.Join(r.webhookDir(), addr), addr, r.opt.Now())
	if err != nil {
		return nil, err
	}
	// The journal is cached for later requests: a cancelled request must
	// not leave it without the committed sequence numbers.
	ctx = context.WithoutCancel(ctx)
	for _, j := range r.webhookJobs(addr) {
		if seq, _, err := r.committedSeq(ctx, j); err == nil {
			hs.done[j.table.Table] = seq
			// Sequence numbers never go back, even if the journal's
			// files were lost: a number already committed would be
			// taken for applied.
			hs.last = max(hs.last, seq)
		}
	}
	if st, err := r.opt.Status.ReadStatus(ctx); err == nil {
		if ss := st.Sources[addr]; ss != nil {
			hs.stats.EventsReceived, hs.stats.EventsRejected, hs.stats.EventsApplied = ss.EventsReceived, ss.EventsRejected, ss.EventsApplied
			hs.stats.LastEventAt = ss.LastEventAt
			if _, ok := h.health[addr]; !ok {
				h.health[addr] = *ss
			}
		}
	}
	h.sources[addr] = hs
	return hs, nil
}

func openJournal(dir, addr string, now time.Time) (*hookSource, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: create the webhook journal directory: %w", addr, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: webhook journal: %w", addr, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w in %s; stop the other runner, or run this one with another state directory", addr, errJournalLocked, dir)
		}
		return nil, fmt.Errorf("%s: lock the webhook journal: %w", addr, err)
	}
	hs := &hookSource{addr: addr, dir: dir, lock: lock, seen: map[string]int64{}, done: map[string]uint64{}}
	fail := func(err error) (*hookSource, error) {
		hs.close()
		return nil, fmt.Errorf("%s: webhook journal in %s: %w", addr, dir, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, seenFile)); err == nil {
		var s seenState
		if err := json.Unmarshal(data, &s); err != nil {
			return fail(fmt.Errorf("%s is damaged (%v); remove it (event ids seen before are forgotten)", seenFile, err))
		}
		hs.last = s.LastSeq
		cutoff := now.Add(-seenRetention).Unix()
		for id, at := range s.IDs {
			if at >= cutoff {
				hs.seen[id] = at
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	path := filepath.Join(dir, journalFile)
	_, statErr := os.Stat(path)
	hs.f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := atomicfile.SyncDir(dir); err != nil {
			return fail(err)
		}
	}
	rd := bufio.NewReaderSize(hs.f, 64<<10)
	for {
		line, err := rd.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				// A record cut short by a crash: never acknowledged.
				if err := hs.f.Truncate(hs.size); err != nil {
					return fail(err)
				}
			}
			break
		}
		if err != nil {
			return fail(err)
		}
		var rec journalRecord
		if err := json.Unmarshal(line, &rec); err != nil || rec.Seq == 0 {
			return fail(fmt.Errorf("record at byte %d is damaged; move the file away to start a new journal (its unapplied events are then lost until the next bulk refresh)", hs.size))
		}
		hs.size += int64(len(line))
		hs.index = append(hs.index, journalEntry{seq: rec.Seq, table: rec.Table, size: len(line)})
		hs.seen[rec.ID] = rec.Received
		hs.last = max(hs.last, rec.Seq)
	}
	return hs, nil
}

func (hs *hookSource) close() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.f != nil {
		hs.f.Close()
		hs.f = nil
	}
	if hs.lock != nil {
		hs.lock.Close() // releases the flock
		hs.lock = nil
	}
	if hs.broken == nil {
		hs.broken = errors.New("the webhook journal is closed")
	}
}

// appendEvent journals an event and syncs it to disk. dup reports an event
// id already journaled, which is not journaled again.
func (hs *hookSource) appendEvent(ev *providers.WebhookEvent, table string, body []byte, now time.Time) (dup bool, err error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if _, ok := hs.seen[ev.ID]; ok {
		hs.received(now)
		return true, nil
	}
	if hs.broken != nil {
		return false, hs.broken
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return false, err
	}
	rec := journalRecord{Seq: hs.last + 1, ID: ev.ID, Table: table, Received: now.Unix(), Event: compact.Bytes()}
	line, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	line = append(line, '\n')
	_, err = hs.f.Write(line)
	if err == nil {
		err = hs.f.Sync()
	}
	if err != nil {
		// Cut off what may have been written, so that the next record
		// does not continue a partial line.
		if terr := hs.f.Truncate(hs.size); terr != nil {
			hs.broken = fmt.Errorf("the webhook journal could not be repaired after a failed write (%v); restart the runner", terr)
		}
		return false, fmt.Errorf("journal the event: %w", err)
	}
	hs.size += int64(len(line))
	hs.last = rec.Seq
	hs.index = append(hs.index, journalEntry{seq: rec.Seq, table: table, size: len(line)})
	hs.seen[ev.ID] = rec.Received
	hs.received(now)
	return false, nil
}

// received counts an authentic delivery; the caller holds hs.mu.
func (hs *hookSource) received(now time.Time) {
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

// ignored counts an authentic delivery that is not journaled.
func (hs *hookSource) ignored(now time.Time) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.received(now)
}

// hasPending reports whether the journal holds records of table past
// what it committed (or not known to be committed).
func (hs *hookSource) hasPending(table string) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	done, known := hs.done[table]
	for i := len(hs.index) - 1; i >= 0; i-- {
		e := hs.index[i]
		if e.table == table {
			return !known || e.seq > done
		}
	}
	return false
}

// pending reads the records of table past done, in order, up to the
// bounds of one commit.
func (hs *hookSource) pending(table string, done uint64) ([]journalRecord, error) {
	hs.mu.Lock()
	size, any := hs.size, false
	for _, e := range hs.index {
		if e.table == table && e.seq > done {
			any = true
			break
		}
	}
	hs.mu.Unlock()
	if !any {
		return nil, nil
	}
	// Another descriptor, read up to the records complete now: appends go
	// on meanwhile, and a compaction replaces the file but keeps every
	// record not yet committed, which these are.
	f, err := os.Open(filepath.Join(hs.dir, journalFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []journalRecord
	bytesIn := 0
	rd := bufio.NewReaderSize(io.LimitReader(f, size), 64<<10)
	for len(out) < maxEventsPerCommit && bytesIn < maxBytesPerCommit {
		line, err := rd.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		var rec journalRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("webhook journal of %s: a record is damaged: %w", hs.addr, err)
		}
		if rec.Table == table && rec.Seq > done {
			out = append(out, rec)
			bytesIn += len(line)
		}
	}
	return out, nil
}

// compact drops the records every table has committed (and those of tables
// that no longer sync by webhook) once enough have, first saving their ids
// in the seen file, so that replays are still recognised. Each file is
// replaced atomically; a crash between the two leaves ids in both, which
// is harmless.
func (hs *hookSource) compact(live map[string]bool, now time.Time) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.broken != nil {
		return nil
	}
	applied := func(e journalEntry) bool {
		done, known := hs.done[e.table]
		return !live[e.table] || (known && e.seq <= done)
	}
	drop := 0
	for _, e := range hs.index {
		if applied(e) {
			drop++
		}
	}
	if drop == 0 || (drop < len(hs.index) && drop < compactAfter) {
		return nil
	}
	cutoff := now.Add(-seenRetention).Unix()
	for id, at := range hs.seen {
		if at < cutoff {
			delete(hs.seen, id)
		}
	}
	data, err := json.Marshal(seenState{LastSeq: hs.last, IDs: hs.seen})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(hs.dir, seenFile), data, 0o600); err != nil {
		return err
	}
	var kept []journalEntry
	var size int64
	err = atomicfile.Write(filepath.Join(hs.dir, journalFile), 0o600, func(w io.Writer) error {
		if _, err := hs.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		rd := bufio.NewReaderSize(io.LimitReader(hs.f, hs.size), 64<<10)
		for _, e := range hs.index {
			line := make([]byte, e.size)
			if _, err := io.ReadFull(rd, line); err != nil {
				return err
			}
			if applied(e) {
				continue
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
			kept = append(kept, e)
			size += int64(e.size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(hs.dir, journalFile), os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		hs.broken = fmt.Errorf("reopen the compacted webhook journal: %w; restart the runner", err)
		return hs.broken
	}
	hs.f.Close()
	hs.f, hs.size, hs.index = f, size, kept
	return nil
}

// Close releases the webhook journals. A runner that is not closed (a
// crash) leaves them as they are on disk; the next runner applies what
// they hold.
func (r *Runner) Close() error {
	h := r.hooksInit()
	h.mu.Lock()
	defer h.mu.Unlock()
	for addr, hs := range h.sources {
		hs.close()
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
func (r *Runner) webhookDecoder(ctx context.Context, src *config.Source) (providers.WebhookSource, error) {
	h := r.hooksInit()
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.decoders[src.Address()]
	if p == nil {
		var err error
		// Kept past this delivery: not tied to its context.
		if p, err = r.opt.Open(context.WithoutCancel(ctx), src); err != nil {
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

// WebhookHandler serves POST /webhooks/<source address>: mount it at
// "/webhooks/". Deliveries are bounded by the default WebhookLimits.
func (r *Runner) WebhookHandler() http.Handler { return r.LimitedWebhookHandler(WebhookLimits{}) }

// LimitedWebhookHandler is WebhookHandler with the limits l: how long a
// body may take and how many deliveries may be received at once.
func (r *Runner) LimitedWebhookHandler(l WebhookLimits) http.Handler {
	hl := newHookLimiter(l)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.serveWebhook(w, req, hl) })
}

// cutOff makes the server close the connection after the reply without
// waiting for the rest of a body (which a slow client may never send).
func cutOff(w http.ResponseWriter, rc *http.ResponseController) {
	w.Header().Set("Connection", "close")
	_ = rc.SetReadDeadline(time.Now())
}

func (r *Runner) serveWebhook(w http.ResponseWriter, req *http.Request, hl *hookLimiter) {
	rc := http.NewResponseController(w)
	// Answered before the body is read: the connection closes at once
	// rather than wait for a body that may trickle.
	early := func(status int, format string, args ...any) {
		cutOff(w, rc)
		reply(w, status, format, args...)
	}
	addr, _ := strings.CutPrefix(req.URL.Path, "/webhooks/")
	r.mu.Lock()
	loaded := r.st != nil
	r.mu.Unlock()
	if !loaded {
		early(http.StatusServiceUnavailable, "the runner is starting")
		return
	}
	src, tables := r.webhookTarget(addr)
	if src == nil {
		early(http.StatusNotFound, "no source %q receives webhooks here", addr)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		early(http.StatusMethodNotAllowed, "webhook deliveries are POSTed")
		return
	}
	log := r.opt.Logger.With("source", addr)
	ctx := req.Context()
	hs, err := r.hookSource(ctx, addr)
	if err != nil {
		log.Error("cannot receive webhook deliveries", "error", err)
		early(http.StatusServiceUnavailable, "the webhook journal is not available")
		return
	}
	h := r.hooksInit()
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
	secrets, err := r.signingSecrets(src)
	if err != nil || len(secrets) == 0 {
		if err == nil {
			err = providers.ErrNoSigningSecret
		}
		// The source retries, so the delivery is not lost once this is
		// fixed.
		reject(http.StatusServiceUnavailable, "%v", err)
		return
	}
	dec, err := r.webhookDecoder(ctx, src)
	if err != nil {
		log.Error("cannot verify webhook deliveries", "error", err)
		reject(http.StatusServiceUnavailable, "%v", err)
		return
	}
	now := r.opt.Now()
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
		hs.ignored(now)
		h.events.WithLabelValues(addr, "ignored").Inc()
		log.Debug("webhook event of no synced table", "event", ev.ID, "type", ev.Type)
		reply(w, http.StatusOK, "")
		return
	}
	dup, err := hs.appendEvent(ev, table, body, now)
	if err != nil {
		log.Error("cannot journal a webhook event; Stripe will retry it", "event", ev.ID, "error", err)
		reply(w, http.StatusInternalServerError, "the event could not be stored")
		return
	}
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
func (r *Runner) webhookTarget(addr string) (*config.Source, map[string]bool) {
	var src *config.Source
	tables := map[string]bool{}
	for _, j := range r.webhookJobs(addr) {
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
func (r *Runner) signingSecrets(src *config.Source) ([]string, error) {
	var out []string
	if s := src.Stripe.Webhook.SigningSecret; s != "" {
		out = append(out, s)
	}
	stored, err := webhooksecret.Read(r.opt.Backend, src.Address())
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
func (r *Runner) committedSeq(ctx context.Context, j job) (seq uint64, loaded bool, err error) {
	wt, err := r.opt.Warehouse.Table(ctx, j.table.WarehouseTable)
	if err != nil {
		return 0, false, err
	}
	pos, loaded := wt.Position()
	return positionSeq(pos), loaded, nil
}

func positionSeq(pos records.Position) uint64 {
	n, _ := strconv.ParseUint(pos.Extra[WebhookSeqKey], 10, 64)
	return n
}

// syncWebhookTable is the sync of a webhook table: a bulk load (full
// refresh) at the table's frequency, the safety net for events never
// delivered, then the journaled events past it. The bulk load keeps the
// committed journal position, so the events that arrived before or during
// it are applied after it.
func (r *Runner) syncWebhookTable(ctx context.Context, j job) (result, error) {
	mu := r.tableLock(j.table.WarehouseTable)
	mu.Lock()
	defer mu.Unlock()
	src, err := r.opt.Open(ctx, j.src)
	if err != nil {
		return result{}, err
	}
	defer src.Close()
	sr, ok := src.(providers.SnapshotReader)
	if !ok {
		return result{}, fmt.Errorf("%s sources cannot be read by sluice run yet", j.src.Type)
	}
	wt, err := r.opt.Warehouse.Table(ctx, j.table.WarehouseTable)
	if err != nil {
		return result{}, err
	}
	from, _ := wt.Position()
	req := providers.ReadRequest{
		Schema: j.table.Schema, Table: j.table.Table, Columns: j.table.Columns, PrimaryKey: j.table.PrimaryKey,
		BatchRows: r.opt.BatchRows, Parallel: r.opt.Parallel,
	}
	schema, err := sr.Schema(ctx, req)
	if err != nil {
		return result{}, err
	}
	read := func(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (records.Position, error) {
		pos, err := sr.ReadSnapshot(ctx, req, emit)
		pos.Extra = maps.Clone(pos.Extra)
		if pos.Extra == nil {
			pos.Extra = map[string]string{}
		}
		pos.Extra[WebhookSeqKey] = strconv.FormatUint(positionSeq(from), 10)
		return pos, err
	}
	res, err := r.commit(ctx, j, src, wt, schema, req, result{mode: warehouse.Replace, full: true}, read)
	if err != nil {
		return res, err
	}
	applied, rows, err := r.applyWebhookEvents(ctx, j, src)
	if errors.Is(err, errJournalLocked) {
		r.opt.Logger.Warn("the journaled webhook events are applied by the runner that receives them", "table", j.addr, "error", err)
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("the bulk load committed, but applying the webhook events received since failed: %w", err)
	}
	if applied > 0 {
		res.tableRows = rows
	}
	return res, nil
}

// applyWebhookEvents merges the journaled events of a webhook table past
// its committed position, in bounded commits, each recording the last
// record it holds. It does nothing before the table's first bulk load
// committed: those events wait for it. The caller holds the table's lock.
func (r *Runner) applyWebhookEvents(ctx context.Context, j job, src providers.Source) (applied, rows int64, err error) {
	addr := j.src.Address()
	hs, err := r.hookSource(ctx, addr)
	if err != nil {
		return 0, 0, err
	}
	eb, ok := src.(providers.WebhookSource)
	if !ok {
		return 0, 0, fmt.Errorf("%s sources do not take webhook events", j.src.Type)
	}
	log := r.opt.Logger.With("table", j.addr)
	req := providers.ReadRequest{
		Schema: j.table.Schema, Table: j.table.Table, Columns: j.table.Columns, PrimaryKey: j.table.PrimaryKey,
	}
	for ctx.Err() == nil {
		wt, err := r.opt.Warehouse.Table(ctx, j.table.WarehouseTable)
		if err != nil {
			return applied, rows, err
		}
		pos, loaded := wt.Position()
		if !loaded {
			return applied, rows, nil
		}
		done := positionSeq(pos)
		hs.mu.Lock()
		hs.done[j.table.Table] = done
		hs.mu.Unlock()
		recs, err := hs.pending(j.table.Table, done)
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
		n, err := tx.Commit(ctx, next)
		if err != nil {
			_ = tx.Abort(ctx)
			return applied, rows, err
		}
		rows = n
		applied += int64(len(events))
		hs.mu.Lock()
		hs.done[j.table.Table] = last
		hs.mu.Unlock()
		hs.count(0, int64(len(events)))
		r.hooksInit().events.WithLabelValues(addr, "applied").Add(float64(len(events)))
		log.Debug("webhook events applied", "events", len(events), "table_rows", n)
	}
	live := map[string]bool{}
	for _, wj := range r.webhookJobs(addr) {
		live[wj.table.Table] = true
	}
	if err := hs.compact(live, r.opt.Now()); err != nil {
		log.Warn("cannot compact the webhook journal; it keeps growing until this is fixed", "error", err)
	}
	return applied, rows, ctx.Err()
}

// applyPendingWebhooks applies the journaled events of every webhook
// table that has some. With try, a table being written (its bulk load) is
// skipped: that sync applies them when it is done.
func (r *Runner) applyPendingWebhooks(ctx context.Context, try bool) {
	for _, j := range r.webhookJobs("") {
		hs, err := r.hookSource(ctx, j.src.Address())
		if err != nil {
			if !try {
				r.opt.Logger.Warn("cannot apply journaled webhook events", "table", j.addr, "error", err)
			}
			continue
		}
		if !hs.hasPending(j.table.Table) {
			continue
		}
		mu := r.tableLock(j.table.WarehouseTable)
		if try {
			if !mu.TryLock() {
				continue
			}
		} else {
			mu.Lock()
		}
		err = func() error {
			src, err := r.opt.Open(ctx, j.src)
			if err != nil {
				return err
			}
			defer src.Close()
			_, rows, err := r.applyWebhookEvents(ctx, j, src)
			if err == nil && rows > 0 {
				r.mu.Lock()
				r.tableStatus(j).RowsSynced = rows
				r.mu.Unlock()
			}
			return err
		}()
		mu.Unlock()
		if err != nil && ctx.Err() == nil {
			r.opt.Logger.Error("applying webhook events failed; they stay journaled and are retried", "table", j.addr, "error", err)
		}
	}
}

// runWebhookApplier applies journaled events as they arrive (and every
// second, for those that waited on a bulk load) and writes the webhook
// counters, until ctx ends.
func (r *Runner) runWebhookApplier(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	h := r.hooksInit()
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			r.applyPendingWebhooks(ctx, true)
			r.flushWebhookStatus(ctx)
			select {
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				r.flushWebhookStatus(sctx)
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
func (r *Runner) drainWebhooks(ctx context.Context) {
	r.applyPendingWebhooks(ctx, false)
	r.flushWebhookStatus(ctx)
}

// flushWebhookStatus writes the counters of the sources whose counters
// changed.
func (r *Runner) flushWebhookStatus(ctx context.Context) {
	h := r.hooksInit()
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
		if err := r.putSourceStatus(ctx, &ss); err != nil {
			r.opt.Logger.Warn("cannot record source status", "source", addr, "error", err)
		}
	}
}

// putSourceStatus records a source's status with its webhook counters,
// remembering its health for the counters' later writes.
func (r *Runner) putSourceStatus(ctx context.Context, ss *state.SourceStatus) error {
	h := r.hooksInit()
	h.mu.Lock()
	h.health[ss.Address] = *ss
	hs := h.sources[ss.Address]
	h.mu.Unlock()
	if hs == nil && len(r.webhookJobs(ss.Address)) > 0 {
		// Open the journal for its counters, so that this write does not
		// reset them; a journal another runner owns has them in status.
		var err error
		if hs, err = r.hookSource(ctx, ss.Address); err != nil {
			if st, rerr := r.opt.Status.ReadStatus(ctx); rerr == nil && st.Sources[ss.Address] != nil {
				old := st.Sources[ss.Address]
				ss.EventsReceived, ss.EventsRejected, ss.EventsApplied, ss.LastEventAt = old.EventsReceived, old.EventsRejected, old.EventsApplied, old.LastEventAt
			}
		}
	}
	r.mu.Lock()
	if r.st != nil {
		if rs := r.st.Sources[ss.Address]; rs != nil && rs.Resources.Webhook != nil {
			ss.WebhookURL = rs.Resources.Webhook.URL
		}
	}
	r.mu.Unlock()
	if hs != nil {
		hs.mu.Lock()
		ss.EventsReceived, ss.EventsRejected, ss.EventsApplied = hs.stats.EventsReceived, hs.stats.EventsRejected, hs.stats.EventsApplied
		ss.LastEventAt = hs.stats.LastEventAt
		hs.dirty = false
		hs.mu.Unlock()
	}
	ss.UpdatedAt = r.opt.Now().UTC()
	return r.opt.Status.PutSourceStatus(ctx, ss)
}
