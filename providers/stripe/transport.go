package stripe

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Retry policy defaults. Stripe's rate limits are per second, so a few
// seconds of backoff usually clear them; a Retry-After longer than
// maxRetryAfter is not waited for (the error is returned, and the runner
// retries the sync later).
const (
	defaultMaxRetries    = 5
	defaultMinDelay      = 500 * time.Millisecond
	defaultMaxDelay      = 20 * time.Second
	defaultMaxRetryAfter = time.Minute
)

// retryTransport retries requests that Stripe rate-limited (429), failed
// (5xx) or that conflicted on a lock (409), with exponential backoff and
// jitter, waiting at least what Retry-After asks. stripe-go's own retries
// are turned off: they ignore Retry-After, do not retry 429, and sleep
// without watching the context.
//
// Only requests that are safe to repeat are retried after a failure that
// may have reached the server: GET and DELETE, and POSTs carrying an
// Idempotency-Key (stripe-go sets one on every POST, and the retry sends
// the same one, so Stripe replays rather than repeats the request). A 429
// is always safe: the request was not executed.
type retryTransport struct {
	base          *http.Transport
	maxRetries    int
	minDelay      time.Duration
	maxDelay      time.Duration
	maxRetryAfter time.Duration
	// sleep waits d or until ctx is done; tests replace it to record the
	// waits instead of waiting.
	sleep func(ctx context.Context, d time.Duration) error
	// now is the clock for HTTP-date Retry-After values.
	now func() time.Time
}

func newRetryTransport(base *http.Transport) *retryTransport {
	return &retryTransport{
		base:          base,
		maxRetries:    defaultMaxRetries,
		minDelay:      defaultMinDelay,
		maxDelay:      defaultMaxDelay,
		maxRetryAfter: defaultMaxRetryAfter,
		sleep:         sleepCtx,
		now:           time.Now,
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RoundTrip sends the request, retrying as the policy allows.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(req.Context())
			r.Body = body
		}
		resp, err := t.base.RoundTrip(r)
		delay, retry := t.retryAfter(req, resp, err, attempt)
		if !retry {
			return resp, err
		}
		if resp != nil {
			// Draining lets the connection be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		if err := t.sleep(req.Context(), delay); err != nil {
			return nil, err
		}
	}
}

// retryAfter decides whether to retry after attempt (0 for the first), and
// how long to wait first.
func (t *retryTransport) retryAfter(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if attempt >= t.maxRetries || req.Context().Err() != nil {
		return 0, false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return 0, false // the body cannot be sent again
	}
	if err != nil {
		return t.backoff(attempt), repeatable(req)
	}
	switch resp.Header.Get("Stripe-Should-Retry") {
	case "false":
		return 0, false
	case "true":
	default:
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
		case resp.StatusCode == http.StatusConflict || resp.StatusCode >= 500:
			if !repeatable(req) {
				return 0, false
			}
		default:
			return 0, false
		}
	}
	if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok {
		if ra > t.maxRetryAfter {
			return 0, false
		}
		return max(ra, t.minDelay), true
	}
	return t.backoff(attempt), true
}

// backoff is the wait before retry attempt+1: doubling from minDelay up to
// maxDelay, with jitter in its upper half so that clients that failed
// together do not retry together.
func (t *retryTransport) backoff(attempt int) time.Duration {
	d := t.maxDelay
	if attempt < 30 {
		d = min(t.minDelay<<attempt, t.maxDelay)
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// repeatable reports whether sending req twice does no harm.
func repeatable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs != secs || secs < 0 { // NaN or negative
			return 0, false
		}
		if secs > 1e6 {
			secs = 1e6 // far beyond any limit; avoids overflow
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// CloseIdleConnections closes the base transport's idle connections.
func (t *retryTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }
