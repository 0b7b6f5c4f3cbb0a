package postgres

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// WithLogger sets where warnings are logged; see pg.WithLogger.
func WithLogger(l *slog.Logger) Option { return pg.WithLogger(l) }

// NewDialer returns a Dialer for src; see pg.NewDialer.
func NewDialer(src *config.Source, opts ...Option) *Dialer { return pg.NewDialer(src, opts...) }

// ConnConfig builds the connection settings of a source; see pg.ConnConfig.
func ConnConfig(src *config.Source, opts ...Option) (*pgx.ConnConfig, error) {
	return pg.ConnConfig(src, opts...)
}

// Connect opens an ordinary connection to a source; see pg.Connect.
func Connect(ctx context.Context, src *config.Source, opts ...Option) (*pgx.Conn, error) {
	return pg.Connect(ctx, src, opts...)
}

// ConnectReplication opens a logical replication connection to a source;
// see pg.ConnectReplication.
func ConnectReplication(ctx context.Context, src *config.Source, opts ...Option) (*pgconn.PgConn, error) {
	return pg.ConnectReplication(ctx, src, opts...)
}

// Explain returns err, an error from connecting to src, as a *ConnError
// that adds what to do; see pg.Explain.
func Explain(err error, src *config.Source) error { return pg.Explain(err, src) }

// Temporary reports whether err, from a PostgreSQL connection or query, is
// worth retrying; see pg.Temporary.
func Temporary(err error) bool { return pg.Temporary(err) }
