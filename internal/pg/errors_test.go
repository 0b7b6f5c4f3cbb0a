package pg

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
)

const (
	wrongPassword    = "wrong-Pw-91ab77"
	strangerPassword = "stranger-Pw-5e21c0"
)

// TestExplain produces each server condition Explain knows for real and
// checks that the error keeps the server's message, adds the right advice
// and shows no password.
func TestExplain(t *testing.T) {
	isolateEnv(t)
	pki := newPKI(t)
	authC := startAuthCluster(t, pki)
	ctx := context.Background()
	if err := authC.Exec(ctx, "postgres", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	setStrangerPassword(t, authC)
	plain := urlSource(t, pgtest.NewDB(t)).Postgres // a server without TLS

	expiredPair := pki.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "expired.localhost"},
		DNSNames:    []string{"localhost"},
		NotBefore:   time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:    time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	files := pki.serverFiles(t, expiredPair)
	expiredC := startCluster(t, pgtest.Options{Settings: map[string]string{
		"ssl": "on", "ssl_cert_file": files.cert, "ssl_key_file": files.key,
	}}, nil)

	closedHost, closedP := closedPort(t)
	silentHost, silentP := silentServer(t)
	port := authC.Port()

	tests := []struct {
		name string
		pg   config.Postgres
		// replication connects with ConnectReplication.
		replication bool
		// wantMsg is the server's (or Go's) message, which the error must
		// keep verbatim.
		wantMsg  string
		wantHint string
		// temporary: a retry may succeed (Temporary); every other
		// condition here is a configuration error that would fail again.
		temporary bool
	}{
		{
			name:     "wrong password",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: authRole, Password: wrongPassword, Database: "postgres"},
			wantMsg:  `FATAL: password authentication failed for user "app" (SQLSTATE 28P01)`,
			wantHint: `The server refused the password of role "app". Check the password of source postgres.test (password, connection_string, PGPASSWORD or ~/.pgpass, whichever gives it). If it is right, the role's password may have expired (VALID UNTIL) or not be set: ALTER ROLE "app" PASSWORD '...';`,
		},
		{
			name:     "no password",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: authRole, Database: "postgres"},
			wantMsg:  `FATAL: password authentication failed for user "app" (SQLSTATE 28P01)`,
			wantHint: `No password was given for role "app", and the server asks for one. Set password in source postgres.test (or give it in connection_string, PGPASSWORD or ~/.pgpass).`,
		},
		{
			name:    "no pg_hba.conf entry, TLS",
			pg:      config.Postgres{Host: "127.0.0.1", Port: port, User: strangerRole, Password: strangerPassword, Database: "postgres"},
			wantMsg: `FATAL: no pg_hba.conf entry for host "127.0.0.1", user "stranger", database "postgres", SSL encryption (SQLSTATE 28000)`,
			wantHint: `The server's pg_hba.conf has no line that admits role "stranger" to database "postgres" from 127.0.0.1 (sluice's address as the server sees it). Add one such as
    hostssl postgres stranger 127.0.0.1/32 scram-sha-256
above any line that would match first, then reload the configuration (SELECT pg_reload_conf();). On a managed service, add 127.0.0.1 to its allowed networks instead.`,
		},
		{
			name:    "no pg_hba.conf entry, plaintext",
			pg:      config.Postgres{Host: "127.0.0.1", Port: port, User: strangerRole, Password: strangerPassword, Database: "postgres", SSLMode: "disable"},
			wantMsg: `FATAL: no pg_hba.conf entry for host "127.0.0.1", user "stranger", database "postgres", no encryption (SQLSTATE 28000)`,
			wantHint: `The server's pg_hba.conf has no line that admits role "stranger" to database "postgres" from 127.0.0.1 (sluice's address as the server sees it). Add one such as
    host postgres stranger 127.0.0.1/32 scram-sha-256
above any line that would match first, then reload the configuration (SELECT pg_reload_conf();). On a managed service, add 127.0.0.1 to its allowed networks instead. The connection did not use TLS: with sslmode = "require" or stricter, use a hostssl line.`,
		},
		{
			name:     "pg_hba.conf reject line",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: blockedRole, Database: "postgres"},
			wantMsg:  `FATAL: pg_hba.conf rejects connection for host "127.0.0.1", user "blocked", database "postgres", SSL encryption (SQLSTATE 28000)`,
			wantHint: `A "reject" line of pg_hba.conf matches this connection from 127.0.0.1. pg_hba.conf is read top down and the first matching line decides: put a line that admits role "blocked" to database "postgres" above it, then reload (SELECT pg_reload_conf();).`,
		},
		{
			name:     "role does not exist",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: ghostRole, Database: "postgres"},
			wantMsg:  `FATAL: role "ghost" does not exist (SQLSTATE 28000)`,
			wantHint: `The server has no role "ghost". Check user in source postgres.test (names are case-sensitive), or create the role: CREATE ROLE "ghost" LOGIN PASSWORD '...'; (add REPLICATION for cdc tables).`,
		},
		{
			name:     "role may not log in",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: noLoginRole, Database: "postgres"},
			wantMsg:  `FATAL: role "Mixed Case "nologin" x" is not permitted to log in (SQLSTATE 28000)`,
			wantHint: `Role "Mixed Case \"nologin\" x" exists but may not log in: ALTER ROLE "Mixed Case ""nologin"" x" LOGIN;`,
		},
		{
			name:     "database does not exist",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: authRole, Password: authPassword, Database: "No Such DB"},
			wantMsg:  `FATAL: database "No Such DB" does not exist (SQLSTATE 3D000)`,
			wantHint: `The server has no database "No Such DB". Check database in source postgres.test (names are case-sensitive); SELECT datname FROM pg_database; lists the server's databases.`,
		},
		{
			name:        "replication not allowed",
			pg:          config.Postgres{Host: "127.0.0.1", Port: port, User: authRole, Password: authPassword, Database: "postgres"},
			replication: true,
			wantMsg:     `FATAL: must be superuser or replication role to start walsender (SQLSTATE 42501)`,
			wantHint:    `Role "app" may not open replication connections, which cdc tables need: ALTER ROLE "app" REPLICATION; (on Amazon RDS: GRANT rds_replication TO "app";)`,
		},
		{
			name:     "client certificate required",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: certRole, Database: "postgres"},
			wantMsg:  `FATAL: connection requires a valid client certificate (SQLSTATE 28000)`,
			wantHint: `pg_hba.conf asks for a client certificate (cert authentication or clientcert=verify-*): set sslcert and sslkey of source postgres.test to a certificate signed by the CA in the server's ssl_ca_file, and its key.`,
		},
		{
			name:     "client certificate for another role",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: certRole, Database: "postgres", SSLCert: "wrong-cn.pem", SSLKey: "wrong-cn.key"},
			wantMsg:  `FATAL: certificate authentication failed for user "certuser" (SQLSTATE 28000)`,
			wantHint: `The client certificate's common name (CN) must be the role name "certuser", or be mapped to it in pg_ident.conf: issue a certificate for CN=certuser, or set user to the certificate's CN.`,
		},
		{
			name: "client certificate from an unknown authority",
			pg:   config.Postgres{Host: "127.0.0.1", Port: port, User: certRole, Database: "postgres", SSLCert: "other-client.pem", SSLKey: "other-client.key"},
			// Go sends a client certificate only when it is issued by an
			// authority the server names, so the server sees none.
			wantMsg:  `FATAL: connection requires a valid client certificate (SQLSTATE 28000)`,
			wantHint: `pg_hba.conf asks for a client certificate (cert authentication or clientcert=verify-*): set sslcert and sslkey of source postgres.test to a certificate signed by the CA in the server's ssl_ca_file, and its key.`,
		},
		{
			name:      "connection refused",
			pg:        config.Postgres{Host: closedHost, Port: closedP, User: authRole, Password: authPassword},
			wantMsg:   "connect: connection refused",
			wantHint:  fmt.Sprintf("Nothing accepts connections at 127.0.0.1:%d. Check host and port of source postgres.test, that PostgreSQL runs there and listens on that address (listen_addresses and port in postgresql.conf), and that no firewall rejects the connection.", closedP),
			temporary: true,
		},
		{
			name:      "timeout",
			pg:        config.Postgres{Host: silentHost, Port: silentP, User: authRole, Password: authPassword, ConnectTimeout: 300 * time.Millisecond},
			wantMsg:   "timeout: context deadline exceeded",
			wantHint:  fmt.Sprintf("No answer from 127.0.0.1:%d within 300ms. Check host and port of source postgres.test, and the firewalls, security groups and IP allow-lists between this machine and the server: the server's side must allow this machine's address. connect_timeout sets how long to wait.", silentP),
			temporary: true,
		},
		{
			name:     "server without TLS",
			pg:       config.Postgres{Host: plain.Host, Port: plain.Port, User: plain.User, Database: plain.Database, SSLMode: "require"},
			wantMsg:  "server refused TLS connection",
			wantHint: fmt.Sprintf(`The server at %s:%d does not accept TLS (ssl = off), but the sslmode of source postgres.test requires TLS. Turn TLS on at the server (ssl = on, with ssl_cert_file and ssl_key_file), or, only on a network you trust, set sslmode = "prefer" or "disable".`, plain.Host, plain.Port),
		},
		{
			name:     "unknown certificate authority",
			pg:       config.Postgres{Host: "localhost", Port: port, User: authRole, Password: authPassword, SSLMode: "verify-full", SSLRootCert: "other-ca.pem"},
			wantMsg:  "x509: certificate signed by unknown authority",
			wantHint: `Verifying the server's certificate failed: its chain ends with CN=sluice test CA (issued by CN=sluice test CA), and that issuer is not in sslrootcert (other-ca.pem). Set sslrootcert of source postgres.test to the certificate (PEM) of the authority that issued the server's certificate, for a managed database the provider's CA bundle.`,
		},
		{
			name:     "unknown certificate authority, verify-ca",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: authRole, Password: authPassword, SSLMode: "verify-ca", SSLRootCert: "other-ca.pem"},
			wantMsg:  "x509: certificate signed by unknown authority",
			wantHint: `Verifying the server's certificate failed: its chain ends with CN=sluice test CA (issued by CN=sluice test CA), and that issuer is not in sslrootcert (other-ca.pem). Set sslrootcert of source postgres.test to the certificate (PEM) of the authority that issued the server's certificate, for a managed database the provider's CA bundle.`,
		},
		{
			name:     "host name mismatch",
			pg:       config.Postgres{Host: "127.0.0.1", Port: port, User: authRole, Password: authPassword, SSLMode: "verify-full", SSLRootCert: "ca.pem"},
			wantMsg:  "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs",
			wantHint: `The server's certificate is for "localhost", not "127.0.0.1". Connect by a name the certificate holds (host of source postgres.test), or use sslmode = "verify-ca", which checks who issued the certificate but not the name.`,
		},
		{
			name:     "expired certificate",
			pg:       config.Postgres{Host: "localhost", Port: expiredC.Port(), User: "postgres", SSLMode: "verify-full", SSLRootCert: "ca.pem"},
			wantMsg:  "x509: certificate has expired or is not yet valid",
			wantHint: `The certificate CN=expired.localhost is valid from 2020-01-01T00:00:00Z until 2021-01-01T00:00:00Z, and it is now NOW: renew it (or, if the dates are right, correct this machine's clock).`,
		},
	}
	secrets := []string{authPassword, adminPass, wrongPassword, strangerPassword}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := tt.pg
			if pg.SSLMode == "" {
				pg.SSLMode = "require"
			}
			src := pgSource(&pg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var err error
			if tt.replication {
				var conn interface{ Close(context.Context) error }
				conn, err = ConnectReplication(ctx, src, WithConfigDir(pki.dir))
				if err == nil {
					conn.Close(ctx)
				}
			} else {
				var conn *pgx.Conn
				conn, err = Connect(ctx, src, WithConfigDir(pki.dir))
				if err == nil {
					conn.Close(ctx)
				}
			}
			if err == nil {
				t.Fatal("connected")
			}
			var ce *ConnError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConnError: %v", err, err)
			}
			if got := Temporary(err); got != tt.temporary {
				t.Errorf("Temporary = %v, want %v (%v)", got, tt.temporary, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "postgres.test: ") || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error does not start with the source's address or lacks %q:\n%s", tt.wantMsg, msg)
			}
			wantHint := strings.ReplaceAll(tt.wantHint, "now NOW:", "now :")
			gotHint := ce.Hint
			if strings.Contains(tt.wantHint, "NOW") {
				gotHint = nowStamp.ReplaceAllString(gotHint, "now :")
			}
			if diff := cmp.Diff(wantHint, gotHint); diff != "" {
				t.Errorf("hint (-want +got):\n%s\nerror: %s", diff, msg)
			}
			if !strings.HasSuffix(msg, "\n"+ce.Hint) {
				t.Errorf("the error text does not end with the hint:\n%s", msg)
			}
			for _, s := range secrets {
				if strings.Contains(msg, s) {
					t.Errorf("error shows a password:\n%s", msg)
				}
			}
		})
	}

	// The pg_hba.conf line the hint proposes does let the role in.
	t.Run("proposed pg_hba.conf line works", func(t *testing.T) {
		src := pgSource(&config.Postgres{Host: "127.0.0.1", Port: port, User: strangerRole, Password: strangerPassword, Database: "postgres"})
		_, err := Connect(ctx, src)
		var ce *ConnError
		if !errors.As(err, &ce) {
			t.Fatalf("Connect: %v", err)
		}
		_, rest, ok := strings.Cut(ce.Hint, "\n    ")
		line, _, ok2 := strings.Cut(rest, "\n")
		if !ok || !ok2 {
			t.Fatalf("no pg_hba.conf line in the hint:\n%s", ce.Hint)
		}
		hba, err := os.ReadFile(filepath.Join(authC.Dir(), "data", "pg_hba.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if err := authC.WriteHBA(append(strings.Split(strings.TrimSpace(string(hba)), "\n"), line)); err != nil {
			t.Fatal(err)
		}
		if err := authC.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		conn, err := Connect(ctx, src)
		if err != nil {
			t.Fatalf("with %q added to pg_hba.conf: %v", line, err)
		}
		conn.Close(ctx)
	})
}

// setStrangerPassword gives the role without a pg_hba.conf line a password,
// so that the line the hint proposes can be tried.
// nowStamp is the current time in a hint, which a test cannot know.
var nowStamp = regexp.MustCompile(`now \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ:`)

func setStrangerPassword(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var sql string
	if err := conn.QueryRow(ctx, "SELECT 'ALTER ROLE ' || quote_ident($1::text) || ' PASSWORD ' || quote_literal($2::text)", strangerRole, strangerPassword).Scan(&sql); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func TestExplainPassesThrough(t *testing.T) {
	src := pgSource(&config.Postgres{Host: "h", Password: "pass-Word-123"})
	if Explain(nil, src) != nil {
		t.Error("Explain(nil) != nil")
	}
	once := Explain(errors.New("boom pass-Word-123"), src)
	if twice := Explain(once, src); twice != once {
		t.Errorf("Explain of an explained error = %v, want it unchanged", twice)
	}
	if got, want := once.Error(), "postgres.test: boom xxxxx"; got != want {
		t.Errorf("Explain = %q, want %q", got, want)
	}
	if err := Explain(context.Canceled, src); !errors.Is(err, context.Canceled) || err.(*ConnError).Hint != "" {
		t.Errorf("Explain(context.Canceled) = %#v", err)
	}
}
