package stripe

import (
	"context"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// failure is an answer a faultProxy gives instead of forwarding.
type failure struct {
	status int
	header map[string]string
	method string // only requests of this method fail; "" any
}

// faultProxy answers the first requests with planned failures and forwards
// the rest to stripe-mock, recording every request's method and
// Idempotency-Key.
type faultProxy struct {
	mu       sync.Mutex
	plan     []failure
	requests []string
	srv      *httptest.Server
}

func newFaultProxy(t *testing.T, plan ...failure) *faultProxy {
	target, err := url.Parse(stripeMockURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	fp := &faultProxy{plan: plan}
	fp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.mu.Lock()
		fp.requests = append(fp.requests, strings.TrimSpace(r.Method+" "+r.Header.Get("Idempotency-Key")))
		var f *failure
		if len(fp.plan) > 0 && (fp.plan[0].method == "" || fp.plan[0].method == r.Method) {
			f = &fp.plan[0]
			fp.plan = fp.plan[1:]
		}
		fp.mu.Unlock()
		if f == nil {
			rp.ServeHTTP(w, r)
			return
		}
		for k, v := range f.header {
			w.Header().Set(k, v)
		}
		stripetest.WriteError(w, f.status, "api_error", "", fmt.Sprintf("planned failure %d", f.status))
	}))
	t.Cleanup(fp.srv.Close)
	return fp
}

func TestRetries(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tooMany := func(h map[string]string) failure { return failure{status: http.StatusTooManyRequests, header: h} }
	unavailable := failure{status: http.StatusServiceUnavailable}
	tests := []struct {
		name       string
		plan       []failure
		wantWaits  []time.Duration // exact; nil with backoff set
		backoff    int             // number of backoff waits expected instead
		wantStatus int             // 0: success
		requests   int
	}{
		{name: "429 waits Retry-After seconds", plan: []failure{tooMany(map[string]string{"Retry-After": "2"})},
			wantWaits: []time.Duration{2 * time.Second}, requests: 2},
		{name: "429 waits until a Retry-After date", plan: []failure{tooMany(map[string]string{"Retry-After": now.Add(3 * time.Second).Format(http.TimeFormat)})},
			wantWaits: []time.Duration{3 * time.Second}, requests: 2},
		{name: "429 without Retry-After backs off", plan: []failure{tooMany(nil), tooMany(nil)}, backoff: 2, requests: 3},
		{name: "5xx backs off", plan: []failure{unavailable, {status: 502}, {status: 500}}, backoff: 3, requests: 4},
		{name: "Stripe-Should-Retry false is final", plan: []failure{{status: 500, header: map[string]string{"Stripe-Should-Retry": "false"}}},
			wantWaits: []time.Duration{}, wantStatus: 500, requests: 1},
		{name: "400 is final", plan: []failure{{status: 400}}, wantWaits: []time.Duration{}, wantStatus: 400, requests: 1},
		{name: "a Retry-After beyond the limit is not waited for", plan: []failure{tooMany(map[string]string{"Retry-After": "3600"})},
			wantWaits: []time.Duration{}, wantStatus: 429, requests: 1},
		{name: "attempts are bounded", plan: []failure{tooMany(nil), tooMany(nil), tooMany(nil), tooMany(nil), tooMany(nil), tooMany(nil), tooMany(nil)},
			backoff: defaultMaxRetries, wantStatus: 429, requests: defaultMaxRetries + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := newFaultProxy(t, tt.plan...)
			p := newProvider(t, fp.srv.URL, testKey)
			waits := fastRetries(p)
			p.transport.now = func() time.Time { return now }
			res := collectErr(p, providers.ReadRequest{Table: "customers"})
			switch {
			case tt.wantStatus == 0 && res.err != nil:
				t.Fatalf("read failed: %v", res.err)
			case tt.wantStatus == 0 && res.rows != 1:
				t.Fatalf("read %d rows, want stripe-mock's one", res.rows)
			case tt.wantStatus != 0:
				var ae *APIError
				if !errors.As(res.err, &ae) || ae.Status != tt.wantStatus {
					t.Fatalf("err = %v, want an APIError with status %d", res.err, tt.wantStatus)
				}
				if ae.Temporary() != (tt.wantStatus == 429 || tt.wantStatus >= 500) {
					t.Errorf("Temporary() = %v for status %d", ae.Temporary(), tt.wantStatus)
				}
			}
			if len(fp.requests) != tt.requests {
				t.Errorf("%d requests, want %d", len(fp.requests), tt.requests)
			}
			if tt.wantWaits != nil {
				if diff := cmp.Diff(tt.wantWaits, *waits); diff != "" {
					t.Errorf("waits (-want +got):\n%s", diff)
				}
				return
			}
			if len(*waits) != tt.backoff {
				t.Fatalf("waits %v, want %d backoffs", *waits, tt.backoff)
			}
			for i, w := range *waits {
				hi := min(defaultMinDelay<<i, defaultMaxDelay)
				if w < hi/2 || w > hi {
					t.Errorf("wait %d is %v, want within [%v, %v]", i, w, hi/2, hi)
				}
			}
		})
	}
}

type errResult struct {
	rows int
	err  error
}

func collectErr(p *Provider, req providers.ReadRequest) errResult {
	var res errResult
	_, res.err = p.ReadSnapshot(context.Background(), req, func(b *records.Batch) error {
		res.rows += b.N
		return nil
	})
	return res
}

// TestRetryPostKeepsIdempotencyKey retries a webhook endpoint creation
// that failed with 500: the retry carries the same Idempotency-Key, so
// Stripe replays the first attempt instead of creating a second endpoint.
func TestRetryPostKeepsIdempotencyKey(t *testing.T) {
	fp := newFaultProxy(t, failure{status: 500, method: http.MethodPost})
	p := newProvider(t, fp.srv.URL, testKey)
	fastRetries(p)
	_, _, created, err := p.EnsureWebhookEndpoint(context.Background(), "https://sluice.example.com/webhooks/stripe.billing", []string{"charge.updated"})
	if err != nil || !created {
		t.Fatalf("created %v, err %v", created, err)
	}
	var posts []string
	for _, r := range fp.requests {
		if strings.HasPrefix(r, "POST") {
			posts = append(posts, r)
		}
	}
	if len(posts) != 2 || posts[0] != posts[1] || posts[0] == "POST" {
		t.Errorf("POSTs %q: want two with the same Idempotency-Key", posts)
	}
}

// TestRetryWaitHonoursContext stops waiting when the context ends.
func TestRetryWaitHonoursContext(t *testing.T) {
	fp := newFaultProxy(t, failure{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "30"}})
	p := newProvider(t, fp.srv.URL, testKey)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.CheckKey(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %v for a cancelled request", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 1.5 ", 1500 * time.Millisecond, true},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"99999999999999999999", 1e6 * time.Second, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
