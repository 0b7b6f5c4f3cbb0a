package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pg"
)

// The connection itself (settings, TLS, SSH tunnels, errors a user can act
// on) is internal/pg's, shared with the PostgreSQL warehouse; these are
// the source's names for it.

// Option adjusts how a source is connected to.
type Option = pg.Option

// Dialer opens connections to one source; see pg.Dialer.
type Dialer = pg.Dialer

// ConnError is a failed connection to a source, with what to do about it;
// see pg.ConnError.
type ConnError = pg.ConnError

// WithConfigDir sets the directory that relative paths of the source are
// relative to; see pg.WithConfigDir.
func WithConfigDir(dir string) Option { return pg.WithConfigDir(dir) }

// NewDialer returns a Dialer for src; see pg.NewDialer.
func NewDialer(src *config.Source, opts ...Option) *Dialer { return pg.NewDialer(src, opts...) }

// Connect opens an ordinary connection to a source; see pg.Connect.
func Connect(ctx context.Context, src *config.Source, opts ...Option) (*pgx.Conn, error) {
	return pg.Connect(ctx, src, opts...)
}
