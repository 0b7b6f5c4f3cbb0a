package pg

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-dev/sluice/config"
)

// ConnError is a failed connection to a source, with what to do about it.
// Its text is the source's address, the error as pgx (or the SSH tunnel)
// reported it, the server's message verbatim, and then the hint on lines of
// their own. No secret of the source ever appears in it.
type ConnError struct {
	Source string // the source's address, "postgres.prod"
	Err    error  // the error as reported
	// Hint says what to do, in sentences; "" when there is nothing better
	// to say than Err.
	Hint    string
	secrets hidden
	// warehouse: the connection was the warehouse's, not a source's.
	warehouse bool
}

func (e *ConnError) Error() string {
	msg := e.Source + ": " + e.Err.Error()
	if e.Hint != "" {
		msg += "\n" + e.Hint
	}
	return redact(msg, e.secrets)
}

func (e *ConnError) Unwrap() error { return e.Err }

// Explain returns err, an error from connecting to src, as a *ConnError
// that adds what to do: for a refused password, a missing pg_hba.conf line
// (with the line to add), a missing database or role, a refused, unreachable
// or silent address (naming it, and the firewalls, security groups and
// allow-lists to check), a server without TLS while sslmode requires it,
// and a server certificate that cannot be verified (and why). Errors
// already explained are returned as they are; nil stays nil.
func Explain(err error, src *config.Source) error { return explain(err, src, options{}) }

// explain is Explain for a Dialer with options o: the warehouse's errors
// name the warehouse block.
func explain(err error, src *config.Source, o options) error {
	if err == nil {
		return nil
	}
	var ce *ConnError
	if errors.As(err, &ce) {
		return err
	}
	e := &ConnError{Source: labelOf(src, o), Err: err, secrets: secretsOf(src, o), warehouse: o.warehouse}
	x := explainer{src: src, warehouse: o.warehouse}
	var pce *pgconn.ConnectError
	if errors.As(err, &pce) && pce.Config != nil {
		x.cfg = pce.Config
		e.secrets.secrets = append(e.secrets.secrets, pce.Config.Password)
	}
	e.Hint = x.hint(err)
	return e
}

// explainer finds the hint for an error.
type explainer struct {
	src *config.Source
	cfg *pgconn.Config // the settings of the attempt, when pgx says
	// warehouse: the settings are the warehouse block's, whose only
	// connection attributes are url, the ssl ones and ssh_tunnel.
	warehouse bool
}

func (x explainer) hint(err error) string {
	if errors.Is(err, context.Canceled) {
		return ""
	}
	var te *tunnelError
	if errors.As(err, &te) {
		return te.hint
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return x.serverHint(pe)
	}
	if h := x.tlsHint(err); h != "" {
		return h
	}
	return x.networkHint(err)
}

// The server's messages that carry what the hint needs (PostgreSQL 10 and
// later, in English; for other languages the SQLSTATE alone still gives a
// hint).
var (
	noHBAEntry = regexp.MustCompile(`no pg_hba\.conf entry for (replication connection from )?host "([^"]*)", user "(.*?)", (?:database "(.*)", )?(SSL encryption|GSS encryption|no encryption|SSL on|SSL off)`)
	hbaRejects = regexp.MustCompile(`pg_hba\.conf rejects (?:replication )?connection for host "([^"]*)"`)
	noRole     = regexp.MustCompile(`role "(.*)" does not exist`)
	noLogin    = regexp.MustCompile(`role "(.*)" is not permitted to log in`)
	noDatabase = regexp.MustCompile(`database "(.*)" does not exist`)
	certAuth   = regexp.MustCompile(`certificate authentication failed for user "(.*)"`)
)

func (x explainer) serverHint(pe *pgconn.PgError) string {
	msg := pe.Message
	switch pe.Code {
	case "28P01": // invalid_password
		if x.cfg != nil && x.cfg.Password == "" {
			if x.warehouse {
				return fmt.Sprintf("No password was given for role %q, and the server asks for one. Set it in the warehouse block's url (postgres://USER:PASSWORD@HOST/DB), or give it in PGPASSWORD or ~/.pgpass.", x.user())
			}
			return fmt.Sprintf("No password was given for role %q, and the server asks for one. Set password in source %s (or give it in connection_string, PGPASSWORD or ~/.pgpass).",
				x.user(), x.name())
		}
		where := fmt.Sprintf("the password of source %s (password, connection_string, PGPASSWORD or ~/.pgpass, whichever gives it)", x.name())
		if x.warehouse {
			where = "the password in the warehouse block's url (or PGPASSWORD or ~/.pgpass, whichever gives it)"
		}
		return fmt.Sprintf("The server refused the password of role %q. Check %s. If it is right, the role's password may have expired (VALID UNTIL) or not be set: ALTER ROLE %s PASSWORD '...';",
			x.user(), where, ident(x.user()))
	case "28000": // invalid_authorization_specification
		if m := noHBAEntry.FindStringSubmatch(msg); m != nil {
			return x.hbaHint(m[1] != "", m[2], m[3], m[4], m[5])
		}
		if m := hbaRejects.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf("A \"reject\" line of pg_hba.conf matches this connection from %s. pg_hba.conf is read top down and the first matching line decides: put a line that admits role %q to database %q above it, then reload (SELECT pg_reload_conf();).",
				m[1], x.user(), x.database())
		}
		if m := noRole.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf("The server has no role %q. Check %s (names are case-sensitive), or create the role: CREATE ROLE %s LOGIN PASSWORD '...'; (add REPLICATION for cdc tables).",
				m[1], x.attr("in", "user"), ident(m[1]))
		}
		if m := noLogin.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf("Role %q exists but may not log in: ALTER ROLE %s LOGIN;", m[1], ident(m[1]))
		}
		if strings.Contains(msg, "requires a valid client certificate") {
			return fmt.Sprintf("pg_hba.conf asks for a client certificate (cert authentication or clientcert=verify-*): set %s to a certificate signed by the CA in the server's ssl_ca_file, and its key.", x.attr("of", "sslcert and sslkey"))
		}
		if m := certAuth.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf("The client certificate's common name (CN) must be the role name %q, or be mapped to it in pg_ident.conf: issue a certificate for CN=%s, or set user to the certificate's CN.", m[1], m[1])
		}
		return fmt.Sprintf("The server refused role %q for database %q: check %s and the server's pg_hba.conf.", x.user(), x.database(), x.attr("of", "user and database"))
	case "3D000": // invalid_catalog_name
		db := x.database()
		if m := noDatabase.FindStringSubmatch(msg); m != nil {
			db = m[1]
		}
		return fmt.Sprintf("The server has no database %q. Check %s (names are case-sensitive); SELECT datname FROM pg_database; lists the server's databases.", db, x.attr("in", "database"))
	case "42501": // insufficient_privilege
		if strings.Contains(msg, "walsender") || strings.Contains(msg, "WAL sender") || strings.Contains(msg, "replication") {
			return fmt.Sprintf("Role %q may not open replication connections, which cdc tables need: ALTER ROLE %s REPLICATION; (on Amazon RDS: GRANT rds_replication TO %s;)",
				x.user(), ident(x.user()), ident(x.user()))
		}
		return fmt.Sprintf("Role %q may not connect to database %q: GRANT CONNECT ON DATABASE %s TO %s;", x.user(), x.database(), ident(x.database()), ident(x.user()))
	case "53300": // too_many_connections
		return "The server has no free connection slot (max_connections). Close idle sessions, lower the concurrency of sluice, or raise max_connections."
	case "57P03": // cannot_connect_now
		return "The server is starting up, shutting down or recovering; try again in a moment. A standby accepts connections only with hot_standby = on."
	}
	return ""
}

// hbaHint is the hint for a missing pg_hba.conf line: the line to add, for
// the address the server saw.
func (x explainer) hbaHint(replication bool, host, user, db, encryption string) string {
	typ := "host"
	switch encryption {
	case "SSL encryption", "SSL on":
		typ = "hostssl"
	case "GSS encryption":
		typ = "hostgssenc"
	}
	dbField := hbaQuote(db)
	if replication {
		dbField = "replication"
	}
	addr := host
	if ip, err := netip.ParseAddr(host); err == nil {
		addr = netip.PrefixFrom(ip, ip.BitLen()).String()
	}
	method := "scram-sha-256"
	if x.src != nil && x.src.Postgres != nil && x.src.Postgres.SSLCert != "" && typ == "hostssl" {
		method = "cert"
	}
	line := strings.Join([]string{typ, dbField, hbaQuote(user), addr, method}, " ")
	var b strings.Builder
	fmt.Fprintf(&b, "The server's pg_hba.conf has no line that admits role %q to database %q from %s (sluice's address as the server sees it). Add one such as\n    %s\nabove any line that would match first, then reload the configuration (SELECT pg_reload_conf();). On a managed service, add %s to its allowed networks instead.",
		user, db, host, line, host)
	if typ == "host" {
		fmt.Fprintf(&b, " The connection did not use TLS: with sslmode = \"require\" or stricter, use a hostssl line.")
	}
	return b.String()
}

// hbaQuote quotes a pg_hba.conf field that would otherwise read as a
// keyword, a list or a group.
func hbaQuote(s string) string {
	switch s {
	case "all", "sameuser", "samerole", "samegroup", "replication":
		return `"` + s + `"`
	}
	if s == "" || strings.ContainsAny(s, " \t,\"#") || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "@") || strings.HasPrefix(s, "/") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// attr names attributes of the settings for a hint: "user in source
// postgres.prod" (prep "in"), "host and port of source postgres.prod"; for
// the warehouse, "the user in the warehouse block's url" for what its url
// holds, "sslmode of the warehouse block" for its own attributes.
func (x explainer) attr(prep, names string) string {
	if !x.warehouse {
		return names + " " + prep + " source " + x.name()
	}
	switch names {
	case "user", "password", "database", "host", "host and port", "user and database":
		return "the " + names + " in the warehouse block's url"
	}
	return names + " of the warehouse block"
}

func (x explainer) name() string {
	if x.src == nil {
		return "postgres"
	}
	return x.src.Address()
}

func (x explainer) user() string {
	if x.cfg != nil {
		return x.cfg.User
	}
	if x.src != nil && x.src.Postgres != nil {
		return x.src.Postgres.User
	}
	return ""
}

func (x explainer) database() string {
	if x.cfg != nil {
		return x.cfg.Database
	}
	if x.src != nil && x.src.Postgres != nil {
		return x.src.Postgres.Database
	}
	return ""
}

// addr names the server the attempt was for: the dial's address when
// known, else the configured host and port.
func (x explainer) addr(err error) string {
	var de *dialError
	if errors.As(err, &de) {
		return de.addr
	}
	if x.cfg != nil {
		if network, a := pgconn.NetworkAddress(x.cfg.Host, x.cfg.Port); network == "unix" {
			return a
		}
		return net.JoinHostPort(x.cfg.Host, strconv.Itoa(int(x.cfg.Port)))
	}
	return "the server"
}

func (x explainer) timeout() string {
	if x.cfg != nil && x.cfg.ConnectTimeout > 0 {
		return x.cfg.ConnectTimeout.String()
	}
	return "the connect timeout"
}

func (x explainer) tlsHint(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "server refused TLS connection") {
		return fmt.Sprintf("The server at %s does not accept TLS (ssl = off), but the %s requires TLS. Turn TLS on at the server (ssl = on, with ssl_cert_file and ssl_key_file), or, only on a network you trust, set sslmode = \"prefer\" or \"disable\".",
			x.addr(err), x.attr("of", "sslmode"))
	}
	var uae x509.UnknownAuthorityError
	if errors.As(err, &uae) {
		// The server may send its chain up to and including its root, so
		// the certificate that failed is not always the server's own.
		what := "it was issued by an authority that is"
		if c := uae.Cert; c != nil {
			what = fmt.Sprintf("its chain ends with %s (issued by %s), and that issuer is", c.Subject, c.Issuer)
		}
		where := "not one this machine trusts"
		if p := x.rootCert(); p != "" {
			where = fmt.Sprintf("not in sslrootcert (%s)", p)
		}
		return fmt.Sprintf("Verifying the server's certificate failed: %s %s. Set %s to the certificate (PEM) of the authority that issued the server's certificate, for a managed database the provider's CA bundle.", what, where, x.attr("of", "sslrootcert"))
	}
	var he x509.HostnameError
	if errors.As(err, &he) {
		var names []string
		if he.Certificate != nil {
			names = append(names, he.Certificate.DNSNames...)
			for _, ip := range he.Certificate.IPAddresses {
				names = append(names, ip.String())
			}
			if len(names) == 0 && he.Certificate.Subject.CommonName != "" {
				names = append(names, he.Certificate.Subject.CommonName)
			}
		}
		return fmt.Sprintf("The server's certificate is for %s, not %q. Connect by a name the certificate holds (%s), or use sslmode = \"verify-ca\", which checks who issued the certificate but not the name.",
			strings.Join(quoteAll(names), ", "), he.Host, x.attr("of", "host"))
	}
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) {
		if cie.Reason == x509.Expired && cie.Cert != nil {
			return fmt.Sprintf("The certificate %s is valid from %s until %s, and it is now %s: renew it (or, if the dates are right, correct this machine's clock).",
				cie.Cert.Subject, cie.Cert.NotBefore.UTC().Format(time.RFC3339), cie.Cert.NotAfter.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("The server's certificate chain cannot be used: %s. Ask the server's administrators for a valid certificate, or set sslmode = \"require\", which encrypts without verifying.", cie.Error())
	}
	if strings.Contains(msg, "remote error: tls:") {
		return fmt.Sprintf("The server refused the TLS handshake. If it asks for client certificates, %s must hold a certificate signed by the CA in the server's ssl_ca_file.", x.attr("of", "sslcert and sslkey"))
	}
	return ""
}

func (x explainer) rootCert() string {
	if x.src != nil && x.src.Postgres != nil {
		return x.src.Postgres.SSLRootCert
	}
	return ""
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	if len(q) == 0 {
		return []string{"no name"}
	}
	return q
}

func (x explainer) networkHint(err error) string {
	var de *dialError
	errors.As(err, &de)
	addr := x.addr(err)
	firewalls := "firewalls, security groups and IP allow-lists"

	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) && de != nil {
		if oce.Reason == ssh.Prohibited {
			return fmt.Sprintf("The bastion %s does not let its SSH user forward connections to %s (AllowTcpForwarding or PermitOpen in its sshd_config).", de.bastion, addr)
		}
		return fmt.Sprintf("The bastion %s could not connect to %s (%s). Check %s as the bastion sees them, that PostgreSQL runs there, and the %s between the bastion and the database.",
			de.bastion, addr, oce.Message, x.attr("of", "host and port"), firewalls)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		what := x.attr("of", "host")
		if de != nil && de.toBastion {
			what = "ssh_tunnel.host"
		}
		return fmt.Sprintf("The host name %q cannot be resolved. Check %s; a private name may need a VPN, or an ssh_tunnel through a bastion that can resolve it.", dnsErr.Name, what)
	}
	toBastion := de != nil && de.toBastion
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		if toBastion {
			return fmt.Sprintf("Nothing accepts connections at %s, the SSH bastion. Check ssh_tunnel.host and ssh_tunnel.port, that sshd runs there, and that no firewall rejects the connection.", addr)
		}
		return fmt.Sprintf("Nothing accepts connections at %s. Check %s, that PostgreSQL runs there and listens on that address (listen_addresses and port in postgresql.conf), and that no firewall rejects the connection.", addr, x.attr("of", "host and port"))
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("%s cannot be reached from this machine (no route). Check the address, the VPN or routing, and the %s on the way.", addr, firewalls)
	case isTimeout(err):
		if toBastion {
			return fmt.Sprintf("No answer from the SSH bastion %s within %s. A firewall, security group or IP allow-list probably drops the traffic: allow this machine's address to reach %s. connect_timeout sets how long to wait.", addr, x.timeout(), addr)
		}
		if x.src != nil && x.src.Postgres != nil && x.src.Postgres.SSHTunnel != nil {
			return fmt.Sprintf("No answer from %s (through the SSH bastion) within %s. Check %s as the bastion sees them, and the %s between the bastion and the database. connect_timeout sets how long to wait.", addr, x.timeout(), x.attr("of", "host and port"), firewalls)
		}
		return fmt.Sprintf("No answer from %s within %s. Check %s, and the %s between this machine and the server: the server's side must allow this machine's address. connect_timeout sets how long to wait.", addr, x.timeout(), x.attr("of", "host and port"), firewalls)
	}
	return ""
}

func isTimeout(err error) bool {
	if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// temporaryStates are the SQLSTATEs after which the same work may succeed
// a moment later: the transaction lost a race, the server was restarting
// or out of connection slots, the session was ended by an administrator
// or a timeout. Class 08 (connection exception) is transient as a whole.
var temporaryStates = map[string]bool{
	"40001": true, // serialization_failure
	"40P01": true, // deadlock_detected
	"55P03": true, // lock_not_available (lock_timeout)
	"57P01": true, // admin_shutdown (also pg_terminate_backend)
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now
	"57P05": true, // idle_session_timeout
	"25P03": true, // idle_in_transaction_session_timeout
	"53300": true, // too_many_connections
	"53400": true, // configuration_limit_exceeded (all replication slots in use)
	"58000": true, // system_error
	"58030": true, // io_error
}

// Temporary reports whether err, from a PostgreSQL connection or query,
// is worth retrying: a lost or refused connection, a timeout, a
// serialization failure or deadlock, a server restarting or out of
// connection slots, a session terminated by an administrator. A missing
// table or column, a permission, a refused password, a TLS or SSH
// misconfiguration, bad data and a cancelled context are permanent: the
// same attempt would fail again.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return temporaryStates[pe.Code] || strings.HasPrefix(pe.Code, "08")
	}
	var te *tunnelError
	if errors.As(err, &te) {
		// Credentials, host keys and key files: only a network failure
		// under it may pass.
		return te.err != nil && networkTemporary(te.err)
	}
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) {
		// The bastion could not reach the database (it may be
		// restarting), unless forwarding is forbidden.
		return oce.Reason != ssh.Prohibited
	}
	if isCertificateError(err) {
		return false
	}
	if pgconn.Timeout(err) || pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return networkTemporary(err)
}

// networkTemporary reports whether err is a network failure that may pass:
// a reset or refused connection, a timeout, a connection that ended early.
// A host name that does not exist is a configuration error.
func networkTemporary(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// isCertificateError reports whether err is a TLS verification or
// handshake failure, or a server without TLS where sslmode requires it.
func isCertificateError(err error) bool {
	var (
		uae  x509.UnknownAuthorityError
		he   x509.HostnameError
		cie  x509.CertificateInvalidError
		alrt tls.AlertError
		rhe  tls.RecordHeaderError
		cve  *tls.CertificateVerificationError
	)
	if errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie) || errors.As(err, &alrt) || errors.As(err, &rhe) || errors.As(err, &cve) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "server refused TLS connection") || strings.Contains(msg, "remote error: tls:")
}

// Temporary reports whether the connection may succeed if tried again (see
// the package function Temporary).
func (e *ConnError) Temporary() bool { return Temporary(e.Err) }

// Unreachable reports that a source could not be connected to, for
// whatever reason: its status is failed. The warehouse's connection
// errors say nothing of the source.
func (e *ConnError) Unreachable() bool {
	return !e.warehouse && !errors.Is(e.Err, context.Canceled)
}
