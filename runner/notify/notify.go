// Package notify sends the runner's notifications: one JSON POST per
// event to each notify block that asks for it (SPEC §2, `notify "NAME"`).
//
// Events are deduplicated by episode, per target: one "failure" per table
// until it recovers, "recovery" only to a target that was sent (or, from
// the recorded status, presumably sent) that table's failure, one "stale"
// per staleness episode, one "wal_lag" per source and level (warning,
// then critical) until the slot is healthy again. Messages are sent from
// a bounded queue per target, by a goroutine of its own, with retries:
// a sync never waits for a notification, and a full queue drops the
// message with a log line. Neither messages nor logs ever hold a target's
// URL (a webhook URL is a credential) or a secret of the configuration.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/config"
)

// The events of a notify block's on.
const (
	Failure  = "failure"
	Recovery = "recovery"
	Stale    = "stale"
	WALLag   = "wal_lag"
	// Test is the event of `sluice notify test`, sent whatever on says.
	Test = "test"
)

// Target is where messages go: a notify block.
type Target struct {
	Name string
	// URL is the endpoint; a credential, never shown.
	URL        string
	On         []string
	StaleAfter time.Duration
}

func (t *Target) wants(event string) bool {
	for _, e := range t.On {
		if e == event {
			return true
		}
	}
	return false
}

// Targets are the targets of a configuration's notify blocks.
func Targets(blocks []*config.Notify) []Target {
	out := make([]Target, len(blocks))
	for i, b := range blocks {
		out[i] = Target{Name: b.Name, URL: b.URL, On: append([]string(nil), b.On...), StaleAfter: b.StaleAfter}
	}
	return out
}

// Message is the JSON body of one notification. Text is a sentence for
// people (the field a Slack incoming webhook shows); the other fields
// are for programs.
type Message struct {
	Event string `json:"event"`
	// Address is the table's ("postgres.prod/orders"), or the source's
	// for wal_lag; empty for a test.
	Address string    `json:"address"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
	Text    string    `json:"text"`
	// Notify is the notify block's name; Runner the runner's (-id).
	Notify string `json:"notify"`
	Runner string `json:"runner,omitempty"`
	// LastSyncAt is the table's last successful sync (stale, recovery).
	LastSyncAt *time.Time `json:"last_sync_at,omitempty"`
	// StaleAfter is the block's stale_after (stale).
	StaleAfter string `json:"stale_after,omitempty"`
	// Level ("warning" or "critical") and LagBytes are the slot's
	// (wal_lag).
	Level    string `json:"level,omitempty"`
	LagBytes int64  `json:"lag_bytes,omitempty"`
}

// Options configure a Notifier.
type Options struct {
	Targets []Target
	// Runner is the runner's name, put in messages.
	Runner string
	Logger hclog.Logger
	// Secrets are texts no message may hold (the configuration's
	// passwords, keys, URLs): masked as **** wherever they appear. The
	// targets' URLs are always masked.
	Secrets []string
	// Client sends the POSTs; a client of its own when nil.
	Client *http.Client
	// QueueSize bounds the messages waiting per target (default 100).
	QueueSize int
	// Attempts is how many times a message is tried (default 5), Backoff
	// the first wait between tries (default 1s), doubling; Timeout
	// bounds each POST (default 5s).
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
	Now      func() time.Time
}

// Notifier sends notifications. A nil *Notifier sends nothing: the
// runner calls it whether or not notify blocks are configured.
type Notifier struct {
	opt     Options
	secrets []string
	// hosts are the targets' hosts, masked in delivery errors only: a
	// sync's error naming the same host is no leak.
	hosts []string
	outs  []*outbox
	// stop ends the senders' work in flight (Close, past its deadline).
	stop context.CancelFunc

	mu sync.Mutex
	// Episodes, per target (index of outs) and address.
	failing []map[string]bool
	stale   []map[string]bool
	lag     []map[string]string // the level last sent
}

// outbox is one target's queue and sender.
type outbox struct {
	t      Target
	queue  chan Message
	closed bool // under Notifier.mu
	done   chan struct{}
}

// New returns a notifier with its senders started; Close stops them. It
// returns nil when there is no target.
func New(opt Options) *Notifier {
	if len(opt.Targets) == 0 {
		return nil
	}
	if opt.Logger == nil {
		opt.Logger = hclog.NewNullLogger()
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 100
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 5
	}
	if opt.Backoff <= 0 {
		opt.Backoff = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Client == nil {
		opt.Client = &http.Client{
			// A redirect would be followed with the body to wherever it
			// points; an endpoint that redirects is misconfigured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	n := &Notifier{opt: opt}
	for _, s := range opt.Secrets {
		if len(s) >= 4 {
			n.secrets = append(n.secrets, s)
		}
	}
	for _, t := range opt.Targets {
		n.secrets = append(n.secrets, t.URL)
		// Its parts too: the path (where a Slack webhook's token is),
		// and in the errors of deliveries, which quote it, the host.
		if u, err := url.Parse(t.URL); err == nil {
			if p := u.EscapedPath(); len(p) >= 4 {
				n.secrets = append(n.secrets, p)
			}
			for _, h := range []string{u.Host, u.Hostname()} {
				if len(h) >= 4 {
					n.hosts = append(n.hosts, h)
				}
			}
		}
	}
	// Longest first, so that no part of a longer secret survives.
	sort.Slice(n.secrets, func(i, j int) bool { return len(n.secrets[i]) > len(n.secrets[j]) })
	sort.Slice(n.hosts, func(i, j int) bool { return len(n.hosts[i]) > len(n.hosts[j]) })
	for _, t := range opt.Targets {
		o := &outbox{t: t, queue: make(chan Message, opt.QueueSize), done: make(chan struct{})}
		n.outs = append(n.outs, o)
		n.failing = append(n.failing, map[string]bool{})
		n.stale = append(n.stale, map[string]bool{})
		n.lag = append(n.lag, map[string]string{})
	}
	ctx, stop := context.WithCancel(context.Background())
	n.stop = stop
	for _, o := range n.outs {
		go n.send(ctx, o)
	}
	return n
}

// Close stops taking messages and waits until the queued ones are sent
// or ctx ends (what is left then is dropped, with a log line).
func (n *Notifier) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.mu.Lock()
	for _, o := range n.outs {
		if !o.closed {
			o.closed = true
			close(o.queue)
		}
	}
	n.mu.Unlock()
	defer n.stop()
	for _, o := range n.outs {
		select {
		case <-o.done:
		case <-ctx.Done():
			n.stop()
			<-o.done
			if left := len(o.queue); left > 0 {
				n.opt.Logger.Warn("notifications not sent at shutdown", "notify", o.t.Name, "count", left)
			}
		}
	}
}

// Seed records that addr's last recorded status is a failure, which a
// runner before this one (or an attempt before this one) notified: its
// next failure sends nothing, its next success a recovery.
func (n *Notifier) Seed(addr string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, o := range n.outs {
		if o.t.wants(Failure) {
			n.failing[i][addr] = true
		}
	}
}

// TableFailed notifies that a table's sync failed (after its retries)
// with errText, unless its failure was notified already.
func (n *Notifier) TableFailed(addr, errText string, at time.Time) {
	if n == nil {
		return
	}
	errText = n.scrub(errText)
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, o := range n.outs {
		if !o.t.wants(Failure) || n.failing[i][addr] {
			continue
		}
		n.failing[i][addr] = true
		n.enqueue(o, Message{Event: Failure, Address: addr, Error: errText, At: at.UTC(),
			Text: fmt.Sprintf("sluice: %s failed: %s", addr, errText)})
	}
}

// TableSucceeded notes a successful sync (or commit) of a table at at: a
// recovery to each target that was sent its failure.
func (n *Notifier) TableSucceeded(addr string, at time.Time) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, o := range n.outs {
		if !n.failing[i][addr] {
			continue
		}
		delete(n.failing[i], addr)
		if o.t.wants(Recovery) {
			last := at.UTC()
			n.enqueue(o, Message{Event: Recovery, Address: addr, At: last, LastSyncAt: &last,
				Text: fmt.Sprintf("sluice: %s recovered: it synced at %s after failing", addr, last.Format(time.RFC3339))})
		}
	}
}

// Freshness is what the stale check needs of a table: when it last
// synced successfully (zero: never).
type Freshness struct {
	Address    string
	LastSyncAt time.Time
}

// CheckStale sends "stale" for each table whose last successful sync is
// older than a target's stale_after, once per episode: a table that
// synced since (or left tables) starts a new one. A table that never
// synced is not stale: its failures say what is wrong.
func (n *Notifier) CheckStale(tables []Freshness, now time.Time) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, o := range n.outs {
		if !o.t.wants(Stale) || o.t.StaleAfter <= 0 {
			continue
		}
		still := map[string]bool{}
		for _, f := range tables {
			if f.LastSyncAt.IsZero() || now.Sub(f.LastSyncAt) <= o.t.StaleAfter {
				continue
			}
			still[f.Address] = true
			if n.stale[i][f.Address] {
				continue
			}
			last := f.LastSyncAt.UTC()
			age := now.Sub(f.LastSyncAt).Truncate(time.Minute)
			n.enqueue(o, Message{Event: Stale, Address: f.Address, At: now.UTC(), LastSyncAt: &last,
				StaleAfter: o.t.StaleAfter.String(),
				Text: fmt.Sprintf("sluice: %s is stale: its last successful sync was %s ago (%s), over stale_after %s",
					f.Address, age, last.Format(time.RFC3339), o.t.StaleAfter)})
		}
		n.stale[i] = still
	}
}

// SourceLag notes the health of a source's replication slot as the WAL
// monitor read it: level "" (healthy), "warning" (over lag_warning) or
// "critical" (over lag_critical, or the slot lost), with the monitor's
// message. A target is sent "wal_lag" when the level rises, once per
// level, until the slot is healthy again.
func (n *Notifier) SourceLag(addr, level string, lagBytes int64, message string, at time.Time) {
	if n == nil {
		return
	}
	message = n.scrub(message)
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, o := range n.outs {
		if !o.t.wants(WALLag) {
			continue
		}
		prev := n.lag[i][addr]
		if level == "" {
			delete(n.lag[i], addr)
			continue
		}
		if levelRank(level) <= levelRank(prev) {
			continue
		}
		n.lag[i][addr] = level
		n.enqueue(o, Message{Event: WALLag, Address: addr, Error: message, At: at.UTC(), Level: level, LagBytes: lagBytes,
			Text: fmt.Sprintf("sluice: %s replication slot lag %s: %s", addr, level, message)})
	}
}

func levelRank(level string) int {
	switch level {
	case "warning":
		return 1
	case "critical":
		return 2
	}
	return 0
}

// enqueue queues m for o without waiting; under n.mu.
func (n *Notifier) enqueue(o *outbox, m Message) {
	m.Notify, m.Runner = o.t.Name, n.opt.Runner
	if o.closed {
		return
	}
	select {
	case o.queue <- m:
	default:
		n.opt.Logger.Warn("notification dropped: its queue is full", "notify", o.t.Name, "event", m.Event, "address", m.Address)
	}
}

// send delivers o's queue until it is closed and empty, or ctx ends.
func (n *Notifier) send(ctx context.Context, o *outbox) {
	defer close(o.done)
	for m := range o.queue {
		if ctx.Err() != nil {
			return
		}
		if err := n.deliver(ctx, o.t, m); err != nil {
			n.opt.Logger.Warn("notification not sent", "notify", o.t.Name, "event", m.Event, "address", m.Address, "error", err)
		}
	}
}

// deliver POSTs m, retrying with exponential backoff what may pass:
// connection errors, timeouts, 429 and 5xx answers.
func (n *Notifier) deliver(ctx context.Context, t Target, m Message) error {
	wait := n.opt.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		var retry bool
		_, retry, err = n.post(ctx, t, m)
		if err == nil || !retry || attempt >= n.opt.Attempts {
			break
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait *= 2
	}
	return err
}

// post sends m once: the HTTP status, whether a failure may pass, and
// the failure in words that hold no URL.
func (n *Notifier) post(ctx context.Context, t Target, m Message) (status int, retry bool, err error) {
	body, err := json.Marshal(m)
	if err != nil {
		return 0, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		// NewRequest's errors quote the URL.
		return 0, false, errors.New("the notify URL is not usable")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sluice")
	resp, err := n.opt.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, true, fmt.Errorf("no answer within %s", n.opt.Timeout)
		}
		return 0, ctx.Err() == nil, errors.New(n.scrubDelivery(err.Error()))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, false, nil
	}
	msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if s := strings.TrimSpace(string(snippet)); s != "" && !strings.ContainsAny(s, "<\x00") {
		msg += ": " + n.scrubDelivery(firstLine(s))
	}
	return resp.StatusCode, resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500, errors.New(msg)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// userinfoPassword matches a URL's password: scheme://user:PASSWORD@.
var userinfoPassword = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]+@`)

// scrub masks the secrets in s; error texts of providers are redacted
// already, this is the last line.
func (n *Notifier) scrub(s string) string {
	for _, secret := range n.secrets {
		s = strings.ReplaceAll(s, secret, "****")
	}
	return userinfoPassword.ReplaceAllString(s, "${1}****@")
}

// scrubDelivery is scrub for the errors of a POST, which may quote the
// target's host.
func (n *Notifier) scrubDelivery(s string) string {
	s = n.scrub(s)
	for _, h := range n.hosts {
		s = strings.ReplaceAll(s, h, "****")
	}
	return s
}

// TestResult is the outcome of a test message to one target.
type TestResult struct {
	Name string
	// Status is the HTTP status of the answer, 0 when none came.
	Status int
	Err    error
}

// Test sends a test message to each target named (every target when
// names is empty), once each, without retries, and waits for the
// answers. Unknown names are an error.
func (n *Notifier) Test(ctx context.Context, names []string) ([]TestResult, error) {
	if n == nil {
		if len(names) > 0 {
			return nil, fmt.Errorf("no notify block named %s", strings.Join(names, ", "))
		}
		return nil, nil
	}
	var targets []Target
	for _, name := range names {
		found := false
		for _, o := range n.outs {
			if o.t.Name == name {
				targets, found = append(targets, o.t), true
			}
		}
		if !found {
			return nil, fmt.Errorf("no notify block named %q", name)
		}
	}
	if len(names) == 0 {
		for _, o := range n.outs {
			targets = append(targets, o.t)
		}
	}
	out := make([]TestResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := Message{Event: Test, At: n.opt.Now().UTC(), Notify: t.Name, Runner: n.opt.Runner,
				Text: fmt.Sprintf("sluice: test message to notify %q; it sends %s", t.Name, strings.Join(t.On, ", "))}
			status, _, err := n.post(ctx, t, m)
			out[i] = TestResult{Name: t.Name, Status: status, Err: err}
		}()
	}
	wg.Wait()
	return out, nil
}
