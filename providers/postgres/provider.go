// Package postgres is the PostgreSQL source: introspection, prerequisites,
// publications and slots, snapshots, cursor reads and CDC. Connections
// (settings, TLS, SSH tunnels, errors a user can act on) are internal/pg's
// and the encoding of values internal/pg/codec's, both shared with the
// PostgreSQL warehouse; see internal/pg for how a source's connection
// settings are assembled.
package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

func init() {
	providers.Register("postgres", providers.Type{
		Open: func(ctx context.Context, src *config.Source) (providers.Source, error) {
			return New(src)
		},
		Resources: openResources,
		TextForm: func(c records.Column) (providers.TextEncoder, error) {
			enc, err := codec.OutputTextEncoder(c.Type, c.SourceType)
			return providers.TextEncoder(enc), err
		},
	})
}

// providerCloseTimeout bounds the goodbye to the server when closing.
const providerCloseTimeout = 5 * time.Second

// Provider is a configured PostgreSQL source. It connects on first use and
// keeps one connection until Close; its methods may be called from several
// goroutines, one at a time on the connection. Reads and streams open
// connections of their own through one Dialer, so that through an
// ssh_tunnel they share one SSH connection to the bastion.
type Provider struct {
	src    *config.Source
	opts   []Option
	dialer *Dialer

	mu   sync.Mutex
	conn *pgx.Conn
}

// New returns the provider of a PostgreSQL source without connecting. opts
// are passed to Connect (WithConfigDir makes relative certificate paths
// relative to the configuration).
func New(src *config.Source, opts ...Option) (*Provider, error) {
	if src == nil || src.Postgres == nil {
		addr := "<nil>"
		if src != nil {
			addr = src.Address()
		}
		return nil, fmt.Errorf("%s is not a PostgreSQL source", addr)
	}
	return &Provider{src: src, opts: opts, dialer: NewDialer(src, opts...)}, nil
}

// withConn runs fn on the provider's connection, connecting first when
// there is none or the previous one broke.
func (p *Provider) withConn(ctx context.Context, fn func(conn *pgx.Conn) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := p.dialer.Connect(ctx)
		if err != nil {
			return err
		}
		p.conn = conn
	}
	return fn(p.conn)
}

// Close closes the connection, if one was opened. Reads and streams still
// running keep their connections (and the SSH connection they go
// through, which closes with the last of them).
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialer.CloseWhenIdle()
	if p.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), providerCloseTimeout)
	defer cancel()
	err := p.conn.Close(ctx)
	p.conn = nil
	return err
}
