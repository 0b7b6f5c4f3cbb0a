package postgres

import (
	"errors"
	"net"
	"syscall"

	"github.com/sluice-dev/sluice/internal/pg"
	"github.com/sluice-dev/sluice/warehouse"
)

// The warehouse's errors say themselves whether the same write may
// succeed a moment later (a Temporary method, as the sources' errors do),
// so that the runner retries without knowing PostgreSQL's SQLSTATEs.

// temporary reports whether err, from a write to the warehouse, is worth
// retrying: internal/pg's verdict on PostgreSQL errors (the one SQLSTATE
// table, shared with the sources), except that a damaged table is
// permanent whatever error revealed it.
func temporary(err error) bool {
	return !errors.Is(err, warehouse.ErrDamaged) && pg.Temporary(err)
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
