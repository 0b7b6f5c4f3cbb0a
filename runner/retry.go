package runner

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// RetryPolicy shapes the retries of transient failures: exponential
// backoff from Base, doubling up to Max, with full jitter so that many
// tables failing together do not retry in lockstep.
type RetryPolicy struct {
	Attempts int // including the first; default 5
	Base     time.Duration
	Max      time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	return p
}

// backoff is the wait before retry number attempt (1 = the first retry).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.Base << min(attempt-1, 20)
	if d > p.Max || d <= 0 {
		d = p.Max
	}
	// Half fixed, half random: never zero, never in lockstep.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// transientStates are SQLSTATEs worth a retry: the same statement may
// succeed a moment later.
var transientStates = map[string]bool{
	"40001": true, // serialization_failure
	"40P01": true, // deadlock_detected
	"55P03": true, // lock_not_available
	"57P01": true, // admin_shutdown
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now
	"53300": true, // too_many_connections
	"53400": true, // configuration_limit_exceeded
	"58000": true, // system_error
	"XX000": false,
}

// Transient reports whether err is worth retrying: a lost or refused
// connection, a timeout, a serialization failure, a server restarting.
// Anything else (a missing table, a permission, bad data) fails the sync
// with its message.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientStates[pgErr.Code] || strings.HasPrefix(pgErr.Code, "08")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	// Sources say for themselves which of their errors pass (a Stripe 429
	// or 5xx): the runner need not know each provider's error types.
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr)
}
