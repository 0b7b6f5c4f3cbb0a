package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/warehouse"
)

// The warehouse's errors say themselves whether the same write may
// succeed a moment later (a Temporary method, as the sources' errors do),
// so that the runner retries without knowing PostgreSQL's SQLSTATEs.

// temporaryStates are the SQLSTATEs after which the same statement may
// succeed a moment later: the transaction lost a race, the server was
// restarting or out of connection slots, the session was ended by an
// administrator or a timeout. Class 08 (connection exception) is
// transient as a whole.
var temporaryStates = map[string]bool{
	"40001": true, // serialization_failure
	"40P01": true, // deadlock_detected
	"55P03": true, // lock_not_available
	"57P01": true, // admin_shutdown (also pg_terminate_backend)
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now
	"57P05": true, // idle_session_timeout
	"25P03": true, // idle_in_transaction_session_timeout
	"53300": true, // too_many_connections
	"53400": true, // configuration_limit_exceeded
	"58000": true, // system_error
	"58030": true, // io_error
}

// temporary reports whether err, from a write to the warehouse, is worth
// retrying: a lost or refused connection, a timeout, a serialization
// failure or deadlock, a server restarting or out of connection slots. A
// missing privilege, a changed schema, bad data, a damaged table and a
// cancelled context are permanent.
func temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, warehouse.ErrDamaged) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return temporaryStates[pe.Code] || strings.HasPrefix(pe.Code, "08")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// classify gives err a Temporary method (the verdict of temporary), unless
// it has one that is a verdict already (a connection error's); the net
// package's and syscall's Temporary say false of a reset connection, so
// they are not taken as one.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) {
		_, isNet := temp.(net.Error)
		_, isErrno := temp.(syscall.Errno)
		if !isNet && !isErrno {
			return err
		}
	}
	return &classifiedError{err: err}
}

// classifiedError is a warehouse error with its Temporary verdict.
type classifiedError struct{ err error }

func (e *classifiedError) Error() string   { return e.err.Error() }
func (e *classifiedError) Unwrap() error   { return e.err }
func (e *classifiedError) Temporary() bool { return temporary(e.err) }
