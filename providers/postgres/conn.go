// Package postgres is the PostgreSQL source: connections (TLS, SSH tunnels,
// errors a user can act on), introspection, prerequisites, publications and
// slots, snapshots, cursor reads and CDC.
//
// # Connection settings
//
// A source's connection settings are assembled in this order, later winning:
//
//  1. libpq's defaults and PG* environment variables (PGHOST, PGPORT,
//     PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT, ...);
//  2. connection_string (a postgres:// URL or libpq keyword=value pairs);
//  3. the discrete attributes host, port, database, user, password, sslmode,
//     sslrootcert, sslcert and sslkey.
//
// When none of them gives a password, it is looked up in ~/.pgpass (or
// PGPASSFILE) for the final host, port, database and user. sslmode defaults
// to "require", not libpq's "prefer": a source never falls back to plaintext
// unless told to. connect_timeout (default 10s) bounds each connection
// attempt unless connection_string or PGCONNECT_TIMEOUT says otherwise and
// the attribute is not set. Relative sslrootcert, sslcert and sslkey
// attributes are relative to the configuration's directory (WithConfigDir);
// paths inside connection_string keep libpq's meaning (relative to the
// working directory).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/config"
)

// applicationName is what pg_stat_activity shows for sluice's sessions
// unless the connection string names another.
const applicationName = "sluice"

// Option adjusts how a source is connected to.
type Option func(*options)

type options struct {
	dir    string
	logger *slog.Logger
}

// WithConfigDir sets the directory that relative paths of the source
// (sslrootcert, sslcert, sslkey, ssh_tunnel.known_hosts) are relative to:
// the configuration's directory. Without it they are relative to the
// source's config.Source.Dir, which the loader sets.
func WithConfigDir(dir string) Option {
	return func(o *options) { o.dir = dir }
}

// WithLogger sets where warnings (such as an SSH host key that is not
// checked) are logged. Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

func makeOptions(opts []Option) options {
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}

// Dialer opens connections to one source. Connections made through an SSH
// tunnel share one SSH connection to the bastion, opened on first use and
// reopened when it drops; Close closes it. A Dialer is safe for concurrent
// use.
type Dialer struct {
	src  *config.Source
	opts options
	// autoClose closes the SSH connection as soon as no database
	// connection uses it, for the one-shot Connect and ConnectReplication.
	autoClose bool

	mu     sync.Mutex
	tunnel *tunnel // nil until the first connection through the bastion
	inUse  int     // open database connections through tunnel
	closed bool
	warned bool // the insecure_ignore_host_key warning was logged
}

// NewDialer returns a Dialer for src, which must be a PostgreSQL source.
// Nothing is opened until the first connection.
func NewDialer(src *config.Source, opts ...Option) *Dialer {
	o := makeOptions(opts)
	if o.dir == "" && src != nil {
		// The loader records where the configuration lives.
		o.dir = src.Dir
	}
	return &Dialer{src: src, opts: o}
}

// Close closes the SSH connection to the bastion, if any; database
// connections made through it stop working. Connections not tunnelled are
// not affected. The Dialer cannot be used afterwards.
func (d *Dialer) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.tunnel == nil {
		return nil
	}
	t := d.tunnel
	d.tunnel = nil
	return t.close()
}

// closeWhenIdle makes the Dialer one-shot from now on: its SSH
// connection closes with the last database connection through it (now,
// if there is none), instead of staying open for the next.
func (d *Dialer) closeWhenIdle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.autoClose = true
	if d.tunnel != nil && d.inUse == 0 {
		t := d.tunnel
		d.tunnel = nil
		t.close()
	}
}

// ConnConfig builds the connection settings of the Dialer's source (see the
// package documentation for the order of precedence). Connections made with
// it dial through the Dialer, and so through its SSH tunnel.
func (d *Dialer) ConnConfig() (*pgx.ConnConfig, error) {
	src := d.src
	if src == nil || src.Postgres == nil {
		name := "<nil>"
		if src != nil {
			name = src.Address()
		}
		return nil, fmt.Errorf("%s is not a PostgreSQL source", name)
	}
	pg := src.Postgres
	connString, err := buildConnString(src, d.opts.dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Address(), err)
	}
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid connection settings: %s", src.Address(), parseErrorText(err, secretsOf(src)))
	}
	if pg.ConnectTimeout > 0 && (cc.ConnectTimeout == 0 || isSet(src, "connect_timeout")) {
		cc.ConnectTimeout = pg.ConnectTimeout
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = applicationName
	}
	if t := pg.SSHTunnel; t != nil {
		if t.RequireTLS {
			if mode := plaintextMode(&cc.Config); mode != "" {
				return nil, fmt.Errorf("%s: ssh_tunnel.require_tls is set, but %s; set sslmode = \"require\", \"verify-ca\" or \"verify-full\"", src.Address(), mode)
			}
		}
		// The database's host name means something on the bastion's side
		// (often a private name): let the bastion resolve it.
		cc.LookupFunc = func(_ context.Context, host string) ([]string, error) {
			return []string{host}, nil
		}
		cc.DialFunc = d.dialTunnel
	} else {
		cc.DialFunc = dialDirect
	}
	return cc, nil
}

// Connect opens an ordinary connection. Its errors are explained (Explain).
func (d *Dialer) Connect(ctx context.Context) (*pgx.Conn, error) {
	cc, err := d.ConnConfig()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, Explain(err, d.src)
	}
	return conn, nil
}

// ConnectReplication opens a logical replication connection
// (replication=database), for CREATE_REPLICATION_SLOT and
// START_REPLICATION. Its errors are explained (Explain).
func (d *Dialer) ConnectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cc, err := d.ConnConfig()
	if err != nil {
		return nil, err
	}
	pc := cc.Config.Copy()
	pc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, Explain(err, d.src)
	}
	return conn, nil
}

// ConnConfig builds the connection settings of a source; see the package
// documentation for the order of precedence. When the source has an
// ssh_tunnel, connections made with the result open an SSH connection to
// the bastion, closed with the last of them; a Dialer keeps one open for
// as long as it lives.
func ConnConfig(src *config.Source, opts ...Option) (*pgx.ConnConfig, error) {
	d := NewDialer(src, opts...)
	d.autoClose = true
	return d.ConnConfig()
}

// Connect opens an ordinary connection to a source. Through an ssh_tunnel
// the connection has an SSH connection of its own, closed with it. Its
// errors are explained (Explain).
func Connect(ctx context.Context, src *config.Source, opts ...Option) (*pgx.Conn, error) {
	d := NewDialer(src, opts...)
	d.autoClose = true
	return d.Connect(ctx)
}

// ConnectReplication opens a logical replication connection
// (replication=database) to a source, for CREATE_REPLICATION_SLOT and
// START_REPLICATION. Through an ssh_tunnel the connection has an SSH
// connection of its own, closed with it. Its errors are explained
// (Explain).
func ConnectReplication(ctx context.Context, src *config.Source, opts ...Option) (*pgconn.PgConn, error) {
	d := NewDialer(src, opts...)
	d.autoClose = true
	return d.ConnectReplication(ctx)
}

// isSet reports whether attribute name of the source was written in the
// configuration rather than defaulted. A Source built in code (no Attrs)
// means every field it sets.
func isSet(src *config.Source, name string) bool {
	if src.Attrs == nil {
		return true
	}
	_, ok := src.Attrs[name]
	return ok
}

// buildConnString returns the source's connection string with the discrete
// attributes laid over it, so that pgx applies libpq's rules (PG*
// variables, .pgpass for the final host and user) to the result.
func buildConnString(src *config.Source, dir string) (string, error) {
	pg := src.Postgres
	base := strings.TrimSpace(pg.ConnectionString)
	var kv [][2]string
	add := func(k, v string) { kv = append(kv, [2]string{k, v}) }
	if pg.Host != "" {
		add("host", pg.Host)
	}
	if pg.Port != 0 {
		add("port", strconv.Itoa(pg.Port))
	}
	if pg.Database != "" {
		add("dbname", pg.Database)
	}
	if pg.User != "" {
		add("user", pg.User)
	}
	if pg.Password != "" {
		add("password", pg.Password)
	}
	mode, err := sslMode(src, base)
	if err != nil {
		return "", err
	}
	if mode != "" {
		add("sslmode", mode)
	}
	for _, f := range []struct{ key, path string }{
		{"sslrootcert", pg.SSLRootCert},
		{"sslcert", pg.SSLCert},
		{"sslkey", pg.SSLKey},
	} {
		if f.path == "" {
			continue
		}
		p, err := resolvePath(dir, f.path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.key, err)
		}
		add(f.key, p)
	}
	if isURL(base) {
		var b strings.Builder
		b.WriteString(base)
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		for _, p := range kv {
			b.WriteString(sep)
			b.WriteString(p[0])
			b.WriteByte('=')
			b.WriteString(uriEncode(p[1]))
			sep = "&"
		}
		return b.String(), nil
	}
	// In keyword=value form a later keyword wins over an earlier one.
	var b strings.Builder
	b.WriteString(base)
	for _, p := range kv {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p[0])
		b.WriteByte('=')
		b.WriteString(kvQuote(p[1]))
	}
	return b.String(), nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// uriEncode percent-encodes every byte but the unreserved ones: libpq's URI
// decoding does not turn '+' into a space, so url.QueryEscape will not do.
func uriEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// kvQuote quotes a value for libpq's keyword=value form.
func kvQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s + "'"
}

// connStringSettings returns the keywords a connection string sets (URL
// query parameters or keyword=value pairs) with their values. It is only
// used to tell whether a keyword is present and to find a service, so
// malformed input simply yields fewer keys: ParseConfig reports the error.
func connStringSettings(s string) map[string]string {
	settings := map[string]string{}
	if isURL(s) {
		i := strings.IndexByte(s, '?')
		if i < 0 {
			return settings
		}
		for _, pair := range strings.Split(s[i+1:], "&") {
			k, v, _ := strings.Cut(pair, "=")
			// libpq's URI decoding leaves '+' alone, as PathUnescape does.
			if dk, err := url.PathUnescape(k); err == nil {
				k = dk
			}
			if dv, err := url.PathUnescape(v); err == nil {
				v = dv
			}
			settings[k] = v
		}
		return settings
	}
	// keyword = value, the value either bare (up to whitespace) or
	// single-quoted, with backslash escapes in both.
	for i := 0; i < len(s); {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			return settings
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var v strings.Builder
		quoted := i < len(s) && s[i] == '\''
		if quoted {
			i++
		}
		for ; i < len(s); i++ {
			c := s[i]
			if quoted && c == '\'' {
				i++
				break
			}
			if !quoted && isSpace(c) {
				break
			}
			if c == '\\' && i+1 < len(s) {
				i++
				c = s[i]
			}
			v.WriteByte(c)
		}
		if key != "" {
			settings[key] = v.String()
		}
	}
	return settings
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// resolvePath resolves a file path of the source: "~" is the home
// directory, a relative path is relative to dir.
func resolvePath(dir, p string) (string, error) {
	if dir == "" && !strings.HasPrefix(p, "~") {
		return p, nil
	}
	return config.ResolvePath(dir, p)
}

// secretsOf lists the secrets of a source, which no error may show.
func secretsOf(src *config.Source) []string {
	var s []string
	if pg := src.Postgres; pg != nil {
		s = append(s, pg.Password)
		if t := pg.SSHTunnel; t != nil {
			s = append(s, t.Password, t.Passphrase)
		}
	}
	return s
}

// redact replaces every secret in msg. Very short secrets are left alone:
// hiding every "a" would garble the message and reveal the secret anyway.
func redact(msg string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

// parseErrorText describes why pgx could not parse the settings without
// quoting the connection string: pgx redacts passwords only on a best-effort
// basis.
func parseErrorText(err error, secrets []string) string {
	msg := err.Error()
	if i, j := strings.IndexByte(msg, '`'), strings.LastIndexByte(msg, '`'); i >= 0 && j > i {
		msg = msg[:i] + "the connection settings" + msg[j+1:]
	}
	return redact(msg, secrets)
}

// dialError records which address a failed dial was for, so that Explain
// can name it; its text is the underlying error's.
type dialError struct {
	addr    string // host:port dialed
	bastion string // the SSH bastion (host:port) the dial went through, or ""
	// toBastion is set when dialing the bastion itself failed.
	toBastion bool
	err       error
}

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// directDialer is net.Dialer's defaults with TCP keepalives, so that a
// connection idle in a long CDC stream notices a vanished server.
var directDialer = &net.Dialer{KeepAlive: 5 * time.Minute}

func dialDirect(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := directDialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialError{addr: addr, err: err}
	}
	return c, nil
}

// dialTunnel opens a connection to addr from the bastion.
func (d *Dialer) dialTunnel(ctx context.Context, network, addr string) (net.Conn, error) {
	t, err := d.acquireTunnel(ctx)
	if err != nil {
		return nil, err
	}
	c, err := t.dial(ctx, network, addr)
	if err != nil {
		d.release(t)
		return nil, err
	}
	return &releaseConn{Conn: c, release: func() { d.release(t) }}, nil
}

// acquireTunnel returns the open SSH connection, opening one when there is
// none or it has dropped, and counts one more user of it.
func (d *Dialer) acquireTunnel(ctx context.Context) (*tunnel, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("the dialer is closed")
	}
	if d.tunnel != nil && d.tunnel.alive() {
		d.inUse++
		return d.tunnel, nil
	}
	st := d.src.Postgres.SSHTunnel
	if st.InsecureIgnoreHostKey && !d.warned {
		d.warned = true
		d.opts.logger.Warn("SSH host key of the bastion is not checked (insecure_ignore_host_key = true): anyone between sluice and the bastion can pose as it and read the database traffic",
			"source", d.src.Address(), "bastion", net.JoinHostPort(st.Host, strconv.Itoa(st.Port)))
	}
	t, err := openTunnel(ctx, st, d.opts.dir)
	if err != nil {
		return nil, err
	}
	d.tunnel = t
	d.inUse = 1
	return t, nil
}

// release counts one user less of t; the one-shot dialers close the SSH
// connection with its last user.
func (d *Dialer) release(t *tunnel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t != d.tunnel {
		return // replaced after it dropped; already closed
	}
	d.inUse--
	if d.inUse == 0 && d.autoClose {
		d.tunnel = nil
		t.close()
	}
}

// releaseConn calls release once, when the connection is closed.
type releaseConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *releaseConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
