package runner

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/warehouse"
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

// Transient reports whether err is worth retrying: a lost or refused
// connection, a timeout, a serialization failure, a server restarting, a
// rate limit. Anything else (a missing table, a permission, a refused
// password, a TLS or SSH misconfiguration, bad data) fails the sync at
// once with its message.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, warehouse.ErrDamaged) {
		return false
	}
	// Sources and warehouses say for themselves which of their errors
	// pass (PostgreSQL's by SQLSTATE and connection state, a Stripe 429 or
	// 5xx): the runner need not know each one's error types. The net
	// package's Temporary is deprecated and says false of a refused or
	// reset connection, so it is not taken as a verdict.
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) {
		if _, isNet := temp.(net.Error); !isNet {
			if _, isErrno := temp.(syscall.Errno); !isErrno {
				return temp.Temporary()
			}
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// A driver's error that was not sent, so that sending it again is
	// safe (pgconn's SafeToRetry convention).
	var safe interface{ SafeToRetry() bool }
	if errors.As(err, &safe) && safe.SafeToRetry() {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// Unreachable reports whether err is a failure to connect to a source (it
// refused the credentials, could not be reached, or its TLS or SSH
// settings are wrong), as a provider's connection errors say with an
// Unreachable method: the source is failed, whether or not a retry may
// help.
func Unreachable(err error) bool {
	var u interface{ Unreachable() bool }
	return errors.As(err, &u) && u.Unreachable()
}
