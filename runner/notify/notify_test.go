package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

// endpoint is a real HTTP server that records what it is sent; fail
// answers the first requests with the given statuses.
type endpoint struct {
	srv *httptest.Server

	mu     sync.Mutex
	bodies []string
	fail   []int
	tries  int
	block  chan struct{} // when set, each request waits for it
}

func newEndpoint(t *testing.T) *endpoint {
	e := &endpoint{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		block := e.block
		e.tries++
		if len(e.fail) > 0 {
			status := e.fail[0]
			e.fail = e.fail[1:]
			e.mu.Unlock()
			w.WriteHeader(status)
			return
		}
		e.mu.Unlock()
		if block != nil {
			<-block
		}
		if r.Header.Get("Content-Type") != "application/json" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.bodies = append(e.bodies, string(body))
		e.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// messages returns what was received, decoded, without the times.
func (e *endpoint) messages(t *testing.T) []Message {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Message
	for _, b := range e.bodies {
		var m Message
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		m.At, m.LastSyncAt, m.Text = time.Time{}, nil, ""
		out = append(out, m)
	}
	return out
}

// url is the endpoint's URL with a path that stands for a webhook's token.
func (e *endpoint) url() string { return e.srv.URL + "/services/T0/B0/Zq7token" }

func testNotifier(t *testing.T, targets []Target, opt Options) *Notifier {
	t.Helper()
	opt.Targets = targets
	if opt.Backoff == 0 {
		opt.Backoff = 10 * time.Millisecond
	}
	n := New(opt)
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// drain closes n, waiting for every queued message.
func drain(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.Close(ctx)
}

func TestFailureRecoveryDedup(t *testing.T) {
	ep := newEndpoint(t)
	quiet := newEndpoint(t)
	n := testNotifier(t, []Target{
		{Name: "ops", URL: ep.url(), On: []string{Failure, Recovery}},
		{Name: "failures", URL: quiet.url(), On: []string{Failure}},
	}, Options{Runner: "r1"})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n.TableSucceeded("postgres.prod/a", at) // no failure before: nothing
	n.TableFailed("postgres.prod/a", "relation \"a\" does not exist", at)
	n.TableFailed("postgres.prod/a", "relation \"a\" does not exist", at) // same episode
	n.Seed("postgres.prod/a")
	n.TableFailed("postgres.prod/b", "boom", at)
	n.TableSucceeded("postgres.prod/a", at)
	n.TableSucceeded("postgres.prod/a", at) // recovered already
	n.TableFailed("postgres.prod/a", "again", at)
	// A table whose recorded status was failed (a previous run notified
	// it): its failure is not sent again, its success is a recovery.
	n.Seed("stripe.billing/charges")
	n.TableFailed("stripe.billing/charges", "still failing", at)
	n.TableSucceeded("stripe.billing/charges", at)
	drain(t, n)
	want := []Message{
		{Event: Failure, Address: "postgres.prod/a", Error: `relation "a" does not exist`, Notify: "ops", Runner: "r1"},
		{Event: Failure, Address: "postgres.prod/b", Error: "boom", Notify: "ops", Runner: "r1"},
		{Event: Recovery, Address: "postgres.prod/a", Notify: "ops", Runner: "r1"},
		{Event: Failure, Address: "postgres.prod/a", Error: "again", Notify: "ops", Runner: "r1"},
		{Event: Recovery, Address: "stripe.billing/charges", Notify: "ops", Runner: "r1"},
	}
	if diff := cmp.Diff(want, ep.messages(t)); diff != "" {
		t.Errorf("ops received (-want +got):\n%s", diff)
	}
	wantQuiet := []Message{
		{Event: Failure, Address: "postgres.prod/a", Error: `relation "a" does not exist`, Notify: "failures", Runner: "r1"},
		{Event: Failure, Address: "postgres.prod/b", Error: "boom", Notify: "failures", Runner: "r1"},
		{Event: Failure, Address: "postgres.prod/a", Error: "again", Notify: "failures", Runner: "r1"},
	}
	if diff := cmp.Diff(wantQuiet, quiet.messages(t)); diff != "" {
		t.Errorf("failures received (-want +got):\n%s", diff)
	}
}

// TestMessageShape: the JSON fields, and a text for Slack.
func TestMessageShape(t *testing.T) {
	ep := newEndpoint(t)
	n := testNotifier(t, []Target{{Name: "ops", URL: ep.url(), On: []string{Failure}}}, Options{})
	n.TableFailed("postgres.prod/orders", "boom", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	drain(t, n)
	var got map[string]any
	if err := json.Unmarshal([]byte(ep.bodies[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"event": "failure", "address": "postgres.prod/orders", "error": "boom", "at": "2026-01-02T03:04:05Z",
		"text": "sluice: postgres.prod/orders failed: boom", "notify": "ops"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestRetryOn500ThenSuccess(t *testing.T) {
	ep := newEndpoint(t)
	ep.fail = []int{500, 503, 429}
	n := testNotifier(t, []Target{{Name: "ops", URL: ep.url(), On: []string{Failure}}}, Options{})
	n.TableFailed("postgres.prod/a", "boom", time.Now())
	drain(t, n)
	if got := len(ep.messages(t)); got != 1 || ep.tries != 4 {
		t.Errorf("messages = %d after %d tries, want 1 after 4", got, ep.tries)
	}
}

// TestGivesUp: after Attempts tries, or at once on a 4xx, the message is
// dropped with a log line that holds no URL.
func TestGivesUp(t *testing.T) {
	for _, tt := range []struct {
		name      string
		fail      []int
		wantTries int
	}{
		{"5xx every time", []int{500, 500, 500, 500, 500, 500}, 3},
		{"4xx is final", []int{404}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ep := newEndpoint(t)
			ep.fail = tt.fail
			var logs bytes.Buffer
			n := testNotifier(t, []Target{{Name: "ops", URL: ep.url(), On: []string{Failure}}},
				Options{Attempts: 3, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs})})
			n.TableFailed("postgres.prod/a", "boom", time.Now())
			drain(t, n)
			if ep.tries != tt.wantTries {
				t.Errorf("tries = %d, want %d", ep.tries, tt.wantTries)
			}
			if !strings.Contains(logs.String(), "notification not sent") {
				t.Errorf("logs lack the failure:\n%s", logs.String())
			}
			if strings.Contains(logs.String(), ep.srv.URL) || strings.Contains(logs.String(), "Zq7") {
				t.Errorf("logs show the URL:\n%s", logs.String())
			}
		})
	}
}

// TestUnreachableNoURL: a connection error names no URL.
func TestUnreachableNoURL(t *testing.T) {
	ep := newEndpoint(t)
	u := ep.url()
	ep.srv.Close()
	var logs bytes.Buffer
	n := testNotifier(t, []Target{{Name: "ops", URL: u, On: []string{Failure}}},
		Options{Attempts: 2, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs})})
	n.TableFailed("postgres.prod/a", "boom", time.Now())
	drain(t, n)
	if !strings.Contains(logs.String(), "notification not sent") || strings.Contains(logs.String(), "Zq7") || strings.Contains(logs.String(), "127.0.0.1") {
		t.Errorf("logs:\n%s", logs.String())
	}
	res, err := n.Test(context.Background(), nil)
	if err != nil || len(res) != 1 || res[0].Err == nil || strings.Contains(res[0].Err.Error(), "Zq7") || strings.Contains(res[0].Err.Error(), "127.0.0.1") {
		t.Errorf("Test = %v, %v", res, err)
	}
}

// TestQueueFullDoesNotBlock: with the endpoint stuck, events past the
// queue's size are dropped at once, with a log line.
func TestQueueFullDoesNotBlock(t *testing.T) {
	ep := newEndpoint(t)
	ep.block = make(chan struct{})
	var logs bytes.Buffer
	var logMu sync.Mutex
	n := testNotifier(t, []Target{{Name: "ops", URL: ep.url(), On: []string{Failure}}},
		Options{QueueSize: 2, Logger: hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{w: &logs, mu: &logMu}})})
	start := time.Now()
	for i := range 50 {
		n.TableFailed("postgres.prod/t"+string(rune('a'+i%26))+string(rune('a'+i/26)), "boom", time.Now())
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("50 events took %s", took)
	}
	close(ep.block)
	drain(t, n)
	// One in flight, two queued.
	if got := len(ep.messages(t)); got < 1 || got > 3 {
		t.Errorf("messages = %d, want 1 to 3", got)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "notification dropped: its queue is full") {
		t.Errorf("logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestNoSecretInBody: configured secrets, the targets' URLs and URL
// passwords never reach a message.
func TestNoSecretInBody(t *testing.T) {
	ep := newEndpoint(t)
	other := "https://hooks.example.com/services/Zq7other"
	n := testNotifier(t, []Target{
		{Name: "ops", URL: ep.url(), On: []string{Failure, WALLag}},
		{Name: "other", URL: other, On: nil},
	}, Options{Secrets: []string{"Zq7password", "sk_test_Zq7key"}})
	n.TableFailed("postgres.prod/a", "connecting to postgres://sluice:Zq7pass@db/app failed: password Zq7password refused; key sk_test_Zq7key; posting to "+ep.url()+" and "+other, time.Now())
	n.SourceLag("postgres.prod", "warning", 10, "slot lag; dsn postgres://u:Zq7x@h/db", time.Now())
	drain(t, n)
	if len(ep.bodies) != 2 {
		t.Fatalf("bodies = %v", ep.bodies)
	}
	for _, b := range ep.bodies {
		if strings.Contains(b, "Zq7") {
			t.Errorf("body holds a secret: %s", b)
		}
	}
	if !strings.Contains(ep.bodies[0], "postgres://sluice:****@db/app") {
		t.Errorf("body lost what is not secret: %s", ep.bodies[0])
	}
}

func TestStaleEpisodes(t *testing.T) {
	ep := newEndpoint(t)
	n := testNotifier(t, []Target{
		{Name: "ops", URL: ep.url(), On: []string{Stale}, StaleAfter: time.Hour},
		{Name: "nostale", URL: ep.url(), On: []string{Failure}, StaleAfter: time.Hour},
	}, Options{})
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	tables := []Freshness{
		{Address: "p.s/old", LastSyncAt: now.Add(-2 * time.Hour)},
		{Address: "p.s/fresh", LastSyncAt: now.Add(-time.Minute)},
		{Address: "p.s/never"},
	}
	n.CheckStale(tables, now)
	n.CheckStale(tables, now.Add(time.Minute)) // same episode
	tables[0].LastSyncAt = now.Add(2 * time.Minute)
	n.CheckStale(tables, now.Add(2*time.Minute)) // fresh again: episode over
	n.CheckStale(tables, now.Add(3*time.Hour))   // both stale now
	drain(t, n)
	want := []Message{
		{Event: Stale, Address: "p.s/old", Notify: "ops", StaleAfter: "1h0m0s"},
		{Event: Stale, Address: "p.s/old", Notify: "ops", StaleAfter: "1h0m0s"},
		{Event: Stale, Address: "p.s/fresh", Notify: "ops", StaleAfter: "1h0m0s"},
	}
	got := ep.messages(t)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

func TestWALLagEpisodes(t *testing.T) {
	ep := newEndpoint(t)
	n := testNotifier(t, []Target{{Name: "ops", URL: ep.url(), On: []string{WALLag}}}, Options{})
	now := time.Now()
	for _, step := range []struct {
		level string
		lag   int64
	}{{"", 1}, {"warning", 2}, {"warning", 3}, {"critical", 4}, {"warning", 3}, {"critical", 5}, {"", 0}, {"warning", 2}} {
		n.SourceLag("postgres.prod", step.level, step.lag, "lag "+step.level, now)
	}
	drain(t, n)
	want := []Message{
		{Event: WALLag, Address: "postgres.prod", Error: "lag warning", Notify: "ops", Level: "warning", LagBytes: 2},
		{Event: WALLag, Address: "postgres.prod", Error: "lag critical", Notify: "ops", Level: "critical", LagBytes: 4},
		{Event: WALLag, Address: "postgres.prod", Error: "lag warning", Notify: "ops", Level: "warning", LagBytes: 2},
	}
	if diff := cmp.Diff(want, ep.messages(t)); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

func TestTestMessages(t *testing.T) {
	ok := newEndpoint(t)
	bad := newEndpoint(t)
	bad.fail = []int{403}
	n := testNotifier(t, []Target{
		{Name: "ok", URL: ok.url(), On: []string{Failure}},
		{Name: "bad", URL: bad.url(), On: []string{Failure}},
	}, Options{})
	res, err := n.Test(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Name != "ok" || res[0].Err != nil || res[0].Status != 200 ||
		res[1].Name != "bad" || res[1].Status != 403 || res[1].Err == nil || res[1].Err.Error() != "HTTP 403" {
		t.Errorf("results = %+v", res)
	}
	if got := ok.messages(t); len(got) != 1 || got[0].Event != Test || got[0].Notify != "ok" {
		t.Errorf("ok received %+v", got)
	}
	if res, err := n.Test(context.Background(), []string{"bad"}); err != nil || len(res) != 1 || res[0].Name != "bad" {
		t.Errorf("Test(bad) = %+v, %v", res, err)
	}
	if _, err := n.Test(context.Background(), []string{"nope"}); err == nil {
		t.Error("Test(nope) succeeded")
	}
}

// TestNilNotifier: the runner calls a nil notifier freely.
func TestNilNotifier(t *testing.T) {
	var n *Notifier
	n.TableFailed("a", "b", time.Now())
	n.TableSucceeded("a", time.Now())
	n.Seed("a")
	n.CheckStale(nil, time.Now())
	n.SourceLag("a", "warning", 1, "", time.Now())
	n.Close(context.Background())
	if New(Options{}) != nil {
		t.Error("New without targets is not nil")
	}
	if _, err := n.Test(context.Background(), []string{"x"}); err == nil {
		t.Error("Test(x) on no targets succeeded")
	}
}

// TestCloseGivesUpAtDeadline: Close returns at its deadline with a stuck
// endpoint.
func TestCloseGivesUpAtDeadline(t *testing.T) {
	ep := newEndpoint(t)
	ep.block = make(chan struct{})
	defer close(ep.block)
	n := New(Options{Targets: []Target{{Name: "ops", URL: ep.url(), On: []string{Failure}}}, Timeout: time.Minute})
	n.TableFailed("a", "b", time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	n.Close(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %s", took)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Close returned before its deadline with a stuck endpoint")
	}
}
