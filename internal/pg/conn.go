// Package pg connects to PostgreSQL, for the PostgreSQL source
// (providers/postgres) and the PostgreSQL warehouse (warehouse/postgres)
// alike: connection settings with libpq's conventions, TLS, SSH tunnels,
// errors a user can act on, with the secrets of the settings masked, and
// whether an error is worth retrying. The values themselves are encoded
// and decoded by its sub-package codec, which needs no connection (see
// its documentation for why it is a package of its own).
//
// # Connection settings
//
// A source's (or the warehouse block's) connection settings are assembled in this order, later winning:
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
package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
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
	// warehouse is set for the PostgreSQL warehouse, whose errors name the
	// warehouse block and its attributes; sensitive is that block's
	// Sensitive.
	warehouse bool
	sensitive map[string]bool
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

// ForWarehouse makes a Dialer connect for the warehouse block (given as
// WarehouseSource builds it; NewWarehouseDialer does both): its errors name the warehouse block and
// its attributes (url, sslmode, ssh_tunnel, ...) instead of a source's,
// and sensitive (the block's Sensitive) says which of them to mask.
func ForWarehouse(sensitive map[string]bool) Option {
	return func(o *options) {
		o.warehouse = true
		o.sensitive = sensitive
	}
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

// CloseWhenIdle makes the Dialer one-shot from now on: its SSH
// connection closes with the last database connection through it (now,
// if there is none), instead of staying open for the next.
func (d *Dialer) CloseWhenIdle() {
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
		return nil, fmt.Errorf("%s: %w", d.label(), err)
	}
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid connection settings: %s", d.label(), parseErrorText(err, d.secrets()))
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
				return nil, fmt.Errorf("%s: ssh_tunnel.require_tls is set, but %s; set sslmode = \"require\", \"verify-ca\" or \"verify-full\"", d.label(), mode)
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
		return nil, explain(err, d.src, d.opts)
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
		return nil, explain(err, d.src, d.opts)
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

// label names what the Dialer connects to in errors: the source's address,
// or "warehouse".
func (d *Dialer) label() string { return labelOf(d.src, d.opts) }

func labelOf(src *config.Source, o options) string {
	switch {
	case o.warehouse:
		return "warehouse"
	case src == nil:
		return "postgres"
	}
	return src.Address()
}

// secrets lists what no error of the Dialer may show.
func (d *Dialer) secrets() hidden { return secretsOf(d.src, d.opts) }

// hidden is what no error may show: secrets, hidden wherever they appear,
// and sensitive names (a user, database or host name that derives from a
// sensitive variable), hidden where they stand as a whole, so that a
// sensitive user "postgres" does not garble "postgresql.conf".
type hidden struct {
	secrets, names []string
}

// secretsOf lists what no error may show: the source's passwords and keys
// (wherever they are given, connection_string included) and the value of
// every attribute that derives from a sensitive variable (a user name
// such as "u-${var.pw}"). Of a connection_string, which is secret by
// nature, only the password is known to be secret; of the warehouse's url,
// every part when the url derives from a sensitive value.
func secretsOf(src *config.Source, o options) hidden {
	var h hidden
	if src == nil || src.Postgres == nil {
		return h
	}
	pg := src.Postgres
	secret := func(v ...string) { h.secrets = append(h.secrets, v...) }
	name := func(v ...string) { h.names = append(h.names, v...) }
	secret(pg.Password)
	if pg.ConnectionString != "" {
		secret(pg.ConnectionString, connStringParts(pg.ConnectionString)["password"])
	}
	if t := pg.SSHTunnel; t != nil {
		secret(t.Password, t.Passphrase, t.PrivateKey)
	}
	sensitive := src.Sensitive
	if o.warehouse {
		sensitive = o.sensitive
	}
	for attr, yes := range sensitive {
		switch {
		case !yes:
		case attr == "url":
			parts := connStringParts(pg.ConnectionString)
			name(parts["user"], parts["dbname"], parts["host"])
		case config.IsSecretAttribute(attr):
			secret(attrValue(pg, attr))
		default:
			name(attrValue(pg, attr))
		}
	}
	return h
}

// attrValue is the value of a string attribute of a PostgreSQL source (or
// the warehouse block), "" for others.
func attrValue(pg *config.Postgres, attr string) string {
	switch attr {
	case "connection_string":
		return pg.ConnectionString
	case "host":
		return pg.Host
	case "database":
		return pg.Database
	case "user":
		return pg.User
	case "password":
		return pg.Password
	case "schema":
		return pg.Schema
	case "sslrootcert":
		return pg.SSLRootCert
	case "sslcert":
		return pg.SSLCert
	case "sslkey":
		return pg.SSLKey
	case "cdc.publication":
		return pg.CDC.Publication
	case "cdc.slot":
		return pg.CDC.Slot
	}
	if t := pg.SSHTunnel; t != nil {
		switch attr {
		case "ssh_tunnel.host":
			return t.Host
		case "ssh_tunnel.user":
			return t.User
		case "ssh_tunnel.password":
			return t.Password
		case "ssh_tunnel.passphrase":
			return t.Passphrase
		case "ssh_tunnel.private_key":
			return t.PrivateKey
		case "ssh_tunnel.known_hosts":
			return t.KnownHosts
		}
	}
	return ""
}

// connStringParts returns the settings of a connection string, the user,
// password, host and database of a URL's authority and path included.
func connStringParts(cs string) map[string]string {
	parts := connStringSettings(cs)
	if !isURL(cs) {
		return parts
	}
	// Multiple hosts ("h1,h2:5432") are no URL for net/url: take the
	// authority apart by hand.
	rest := cs[strings.Index(cs, "://")+3:]
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		if rest[i] == '/' {
			db := rest[i+1:]
			if j := strings.IndexByte(db, '?'); j >= 0 {
				db = db[:j]
			}
			if v, err := url.PathUnescape(db); err == nil {
				db = v
			}
			if _, ok := parts["dbname"]; !ok {
				parts["dbname"] = db
			}
		}
		rest = rest[:i]
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, pw, _ := strings.Cut(rest[:at], ":")
		if v, err := url.PathUnescape(user); err == nil {
			user = v
		}
		if v, err := url.PathUnescape(pw); err == nil {
			pw = v
		}
		if _, ok := parts["user"]; !ok {
			parts["user"] = user
		}
		if _, ok := parts["password"]; !ok {
			parts["password"] = pw
		}
		rest = rest[at+1:]
	}
	if _, ok := parts["host"]; !ok {
		parts["host"] = rest
	}
	return parts
}

// mask replaces a secret in messages.
const mask = "xxxxx"

// nameDataLen is PostgreSQL's NAMEDATALEN: the server cuts the user and
// database names of a connection to NAMEDATALEN-1 bytes before quoting
// them in its messages.
const nameDataLen = 64

// redact replaces every secret and sensitive name in msg, in every form a
// message may quote it in: as is; quoted by Go (%q, strconv.Quote,
// ASCII-only too), JSON, SQL (identifiers with double quotes doubled,
// literals with single quotes doubled or with backslash escapes, as
// E-strings and libpq's keyword=value form write them), and Go's quoting
// of those; percent-encoded as in URLs; and cut to a PostgreSQL name's
// length, as the server quotes a too long user or database name. Very
// short values are left alone: hiding every "a" would garble the message
// and reveal the value anyway.
func redact(msg string, h hidden) string {
	type form struct {
		s    string
		word bool
	}
	var forms []form
	for _, f := range valueForms(h.secrets) {
		forms = append(forms, form{f, false})
	}
	for _, f := range valueForms(h.names) {
		forms = append(forms, form{f, true})
	}
	// Longest first, so that no part of a longer form survives the
	// replacement of a shorter one.
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i].s) > len(forms[j].s) })
	for _, f := range forms {
		if f.word {
			msg = replaceWord(msg, f.s)
		} else {
			msg = strings.ReplaceAll(msg, f.s, mask)
		}
	}
	return msg
}

// replaceWord masks the occurrences of f in msg that are not part of a
// longer word: f's letters, digits or underscore at either end must not
// continue into msg's.
func replaceWord(msg, f string) string {
	var b strings.Builder
	for {
		i := strings.Index(msg, f)
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		end := i + len(f)
		whole := !(isWordByte(f[0]) && i > 0 && isWordByte(msg[i-1])) &&
			!(isWordByte(f[len(f)-1]) && end < len(msg) && isWordByte(msg[end]))
		b.WriteString(msg[:i])
		if whole {
			b.WriteString(mask)
		} else {
			b.WriteString(f)
		}
		msg = msg[end:]
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// valueForms lists the forms of values redact hides.
func valueForms(values []string) []string {
	seen := map[string]bool{}
	var forms []string
	add := func(f string) {
		if len(f) >= 4 && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	for _, s := range values {
		if len(s) < 4 {
			continue
		}
		variants := []string{s}
		if len(s) >= nameDataLen {
			variants = append(variants, s[:nameDataLen-1])
		}
		for _, v := range variants {
			escaped := []string{
				v,
				unquote(jsonString(v, true)),
				unquote(jsonString(v, false)),
				strings.ReplaceAll(v, `"`, `""`),
				strings.ReplaceAll(v, `'`, `''`),
				strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `\'`),
				strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `''`),
			}
			for _, e := range escaped {
				add(e)
				// Go's quoting, of the value and of its SQL and JSON forms
				// (a hint that quotes an identifier with %q).
				add(unquote(strconv.Quote(e)))
				add(unquote(strconv.QuoteToASCII(e)))
			}
			add(url.QueryEscape(v))
			add(url.PathEscape(v))
			add(uriEncode(v))
			add(strings.ToLower(uriEncode(v)))
		}
	}
	return forms
}

// unquote strips the quotes around a quoted string.
func unquote(q string) string {
	if len(q) >= 2 {
		return q[1 : len(q)-1]
	}
	return q
}

// jsonString is s as a JSON string, with or without the HTML escapes
// (\u003c for <) encoding/json writes by default.
func jsonString(s string, escapeHTML bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// parseErrorText describes why pgx could not parse the settings without
// quoting the connection string: pgx redacts passwords only on a best-effort
// basis.
func parseErrorText(err error, secrets hidden) string {
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
			"source", d.label(), "bastion", net.JoinHostPort(st.Host, strconv.Itoa(st.Port)))
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

// Redact masks in msg every secret of the Dialer's source (or warehouse)
// and every name that derives from a sensitive value, in every form a
// message may quote it in (see redact): for errors that did not come from
// connecting, such as a server message quoting a sensitive database name.
func (d *Dialer) Redact(msg string) string { return redact(msg, d.secrets()) }
