package postgres

import (
	"errors"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/internal/pg"
)

// classified returns an error of the provider's so that it says itself
// whether it is worth retrying (a Temporary method), when it comes from
// PostgreSQL, and shows none of the source's secrets (a server message may
// quote a sensitive database or user name). Other errors (the
// warehouse's, through emit) keep their own verdict.
func (p *Provider) classified(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	redacted := p.dialer.Redact(msg)
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) {
		if _, isNet := temp.(net.Error); !isNet {
			// Already says; only its text may need masking.
			if redacted != msg {
				return &redactedError{msg: redacted, err: err}
			}
			return err
		}
	}
	var (
		pe *pgconn.PgError
		ce *pgconn.ConnectError
	)
	if errors.As(err, &pe) || errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return &classifiedError{msg: redacted, err: err}
	}
	if redacted != msg {
		return &redactedError{msg: redacted, err: err}
	}
	return err
}

// classifiedError is an error of PostgreSQL's with its Temporary verdict.
type classifiedError struct {
	msg string // the error's text without secrets
	err error
}

func (e *classifiedError) Error() string   { return e.msg }
func (e *classifiedError) Unwrap() error   { return e.err }
func (e *classifiedError) Temporary() bool { return pg.Temporary(e.err) }

// redactedError is an error whose text had secrets masked.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
