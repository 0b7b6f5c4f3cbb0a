package pg

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
)

// pgEnv are the libpq variables pgx reads; tests clear them so that the
// developer's environment does not leak in.
var pgEnv = []string{
	"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE",
	"PGAPPNAME", "PGCONNECT_TIMEOUT", "PGSSLMODE", "PGSSLKEY", "PGSSLCERT",
	"PGSSLROOTCERT", "PGSSLPASSWORD", "PGSERVICE", "PGSERVICEFILE", "PGOPTIONS",
	"PGTARGETSESSIONATTRS", "PGSSLNEGOTIATION", "PGCHANNELBINDING", "PGREQUIREAUTH",
}

// isolateEnv clears the PG* variables and points HOME at an empty
// directory (no ~/.pgpass, no ~/.postgresql). It uses t.Setenv, so the
// test may not be parallel.
func isolateEnv(t *testing.T) string {
	t.Helper()
	for _, k := range pgEnv {
		t.Setenv(k, "")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	return home
}

func pgSource(pg *config.Postgres) *config.Source {
	if pg.ConnectTimeout == 0 {
		pg.ConnectTimeout = config.DefaultConnectTimeout
	}
	return &config.Source{Type: "postgres", Name: "test", Postgres: pg}
}

// urlSource is a source of the discrete fields of a pgtest URL.
func urlSource(t *testing.T, u string) *config.Source {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p.Port())
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := p.User.Password()
	return pgSource(&config.Postgres{
		Host:     p.Hostname(),
		Port:     port,
		Database: strings.TrimPrefix(p.Path, "/"),
		User:     p.User.Username(),
		Password: pw,
		SSLMode:  "disable",
	})
}

// tlsSummary is what a pgx configuration does about TLS, in sslmode terms.
func tlsSummary(cfg *pgconn.Config) string {
	mode := func(c *tls.Config) string {
		switch {
		case c == nil:
			return "plain"
		case c.VerifyPeerCertificate != nil:
			return "verify-ca"
		case c.InsecureSkipVerify:
			return "encrypt"
		default:
			return "verify-full(" + c.ServerName + ")"
		}
	}
	parts := []string{mode(cfg.TLSConfig)}
	for _, f := range cfg.Fallbacks {
		parts = append(parts, mode(f.TLSConfig))
	}
	return strings.Join(parts, ",")
}

type connSummary struct {
	Host, Database, User, Password, TLS, AppName string
	Port                                         uint16
	Timeout                                      time.Duration
}

func summarize(cc *pgx.ConnConfig) connSummary {
	return connSummary{
		Host: cc.Host, Port: cc.Port, Database: cc.Database, User: cc.User, Password: cc.Password,
		TLS: tlsSummary(&cc.Config), AppName: cc.RuntimeParams["application_name"], Timeout: cc.ConnectTimeout,
	}
}

// TestConnConfigPrecedence checks the order of precedence of the package
// documentation: connection string < discrete attributes, PG* variables
// and .pgpass filling gaps, sslmode "require" by default.
func TestConnConfigPrecedence(t *testing.T) {
	home := isolateEnv(t)
	passfile := filepath.Join(home, ".pgpass")
	if err := os.WriteFile(passfile, []byte("db.internal:6543:app:sluice:from-pgpass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caDir := t.TempDir()
	written := map[string]bool{"sslmode": true} // Attrs of a loaded config that set sslmode
	notWritten := map[string]bool{"host": true}
	tests := []struct {
		name string
		pg   config.Postgres
		// attrs, when set, are the attributes written in the configuration
		// (a loaded config records them; without, every field counts).
		attrs map[string]bool
		env   map[string]string
		dir   string
		want  connSummary
	}{
		{
			name: "discrete attributes, sslmode require by default",
			pg:   config.Postgres{Host: "db.example.com", Port: 5433, Database: "app", User: "sluice", Password: "pw-discrete"},
			want: connSummary{Host: "db.example.com", Port: 5433, Database: "app", User: "sluice", Password: "pw-discrete", TLS: "encrypt"},
		},
		{
			name: "URL without sslmode: require, not prefer",
			pg:   config.Postgres{ConnectionString: "postgres://u:p%40ss@h1:5999/d1"},
			want: connSummary{Host: "h1", Port: 5999, Database: "d1", User: "u", Password: "p@ss", TLS: "encrypt"},
		},
		{
			name: "URL's sslmode applies when the attribute is not set",
			pg:   config.Postgres{ConnectionString: "postgresql://u@h1/d1?sslmode=prefer"},
			want: connSummary{Host: "h1", Port: 5432, Database: "d1", User: "u", TLS: "encrypt,plain"},
		},
		{
			name: "URL alias ssl=true",
			pg:   config.Postgres{ConnectionString: "postgresql://u@h1/d1?ssl=true"},
			want: connSummary{Host: "h1", Port: 5432, Database: "d1", User: "u", TLS: "encrypt"},
		},
		{
			name: "discrete attributes override the URL",
			pg: config.Postgres{
				ConnectionString: "postgres://u:old@h1:5999/d1?sslmode=verify-full&application_name=etl",
				Host:             "h2", Port: 6000, Database: "d 2", User: "user+x", Password: "new p@ss/w%rd&=?+",
				SSLMode: "allow",
			},
			want: connSummary{Host: "h2", Port: 6000, Database: "d 2", User: "user+x", Password: "new p@ss/w%rd&=?+", TLS: "plain,encrypt", AppName: "etl"},
		},
		{
			name: "discrete attributes override keyword=value pairs",
			pg: config.Postgres{
				ConnectionString: "host=h1 port=5999 dbname='d 1' user=u password='it\\'s' sslmode=disable",
				Database:         "it's \\ quoted", Password: `p'w\x`,
			},
			want: connSummary{Host: "h1", Port: 5999, Database: `it's \ quoted`, User: "u", Password: `p'w\x`, TLS: "plain"},
		},
		{
			name:  "keyword=value sslmode with spaces around =",
			pg:    config.Postgres{ConnectionString: "host=h1 user=u sslmode = verify-ca"},
			attrs: notWritten,
			want:  connSummary{Host: "h1", Port: 5432, User: "u", TLS: "verify-ca"},
		},
		{
			name:  "PG variables fill gaps, discrete attributes win",
			pg:    config.Postgres{User: "sluice"},
			env:   map[string]string{"PGHOST": "envhost", "PGPORT": "7000", "PGDATABASE": "envdb", "PGUSER": "envuser", "PGPASSWORD": "env-pw"},
			attrs: notWritten,
			want:  connSummary{Host: "envhost", Port: 7000, Database: "envdb", User: "sluice", Password: "env-pw", TLS: "encrypt"},
		},
		{
			name:  "PGSSLMODE fills the gap before the default",
			pg:    config.Postgres{Host: "h", SSLMode: config.DefaultSSLMode},
			env:   map[string]string{"PGSSLMODE": "disable"},
			attrs: notWritten,
			want:  connSummary{Host: "h", Port: 5432, TLS: "plain"},
		},
		{
			name:  "the sslmode attribute beats PGSSLMODE",
			pg:    config.Postgres{Host: "h", SSLMode: "require"},
			env:   map[string]string{"PGSSLMODE": "disable"},
			attrs: written,
			want:  connSummary{Host: "h", Port: 5432, TLS: "encrypt"},
		},
		{
			name: ".pgpass for the final host, port, database and user",
			pg: config.Postgres{
				ConnectionString: "postgres://nobody@elsewhere:1/other",
				Host:             "db.internal", Port: 6543, Database: "app", User: "sluice",
			},
			want: connSummary{Host: "db.internal", Port: 6543, Database: "app", User: "sluice", Password: "from-pgpass", TLS: "encrypt"},
		},
		{
			name: "a password given beats .pgpass",
			pg:   config.Postgres{Host: "db.internal", Port: 6543, Database: "app", User: "sluice", Password: "given"},
			want: connSummary{Host: "db.internal", Port: 6543, Database: "app", User: "sluice", Password: "given", TLS: "encrypt"},
		},
		{
			name:  "connect_timeout of the connection string when the attribute is not written",
			pg:    config.Postgres{ConnectionString: "host=h user=u connect_timeout=3"},
			attrs: notWritten,
			want:  connSummary{Host: "h", Port: 5432, User: "u", TLS: "encrypt", Timeout: 3 * time.Second},
		},
		{
			name:  "connect_timeout attribute beats the connection string",
			pg:    config.Postgres{ConnectionString: "host=h user=u connect_timeout=3", ConnectTimeout: 1500 * time.Millisecond},
			attrs: map[string]bool{"connect_timeout": true},
			want:  connSummary{Host: "h", Port: 5432, User: "u", TLS: "encrypt", Timeout: 1500 * time.Millisecond},
		},
		{
			name: "sslrootcert relative to the config directory makes require verify the CA",
			pg:   config.Postgres{Host: "h", User: "u", SSLRootCert: "ca.pem"},
			dir:  caDir,
			want: connSummary{Host: "h", Port: 5432, User: "u", TLS: "verify-ca"},
		},
		{
			name: "verify-full checks the host name",
			pg:   config.Postgres{Host: "db.example.com", User: "u", SSLMode: "verify-full", SSLRootCert: "ca.pem"},
			dir:  caDir,
			want: connSummary{Host: "db.example.com", Port: 5432, User: "u", TLS: "verify-full(db.example.com)"},
		},
	}
	pki := newPKI(t)
	if err := os.WriteFile(filepath.Join(caDir, "ca.pem"), pki.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			src := pgSource(&tt.pg)
			if tt.attrs != nil {
				src.Attrs = attrRanges(tt.attrs)
			}
			cc, err := ConnConfig(src, WithConfigDir(tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want.AppName == "" {
				want.AppName = "sluice"
			}
			if want.Timeout == 0 {
				want.Timeout = config.DefaultConnectTimeout
			}
			if want.User == "" {
				want.User = cc.User // the OS user
			}
			if diff := cmp.Diff(want, summarize(cc)); diff != "" {
				t.Errorf("ConnConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func attrRanges(names map[string]bool) map[string]hcl.Range {
	m := map[string]hcl.Range{}
	for n := range names {
		m[n] = hcl.Range{}
	}
	return m
}

func TestConnConfigRefuses(t *testing.T) {
	isolateEnv(t)
	tests := []struct {
		name string
		pg   config.Postgres
		want string
	}{
		{
			name: "require_tls with sslmode disable",
			pg:   config.Postgres{Host: "h", SSLMode: "disable", SSHTunnel: &config.SSHTunnel{Host: "b", RequireTLS: true}},
			want: "postgres.test: ssh_tunnel.require_tls is set, but sslmode disable never uses TLS; set sslmode = \"require\", \"verify-ca\" or \"verify-full\"",
		},
		{
			name: "require_tls with sslmode prefer",
			pg:   config.Postgres{ConnectionString: "postgres://h/db?sslmode=prefer", SSHTunnel: &config.SSHTunnel{Host: "b", RequireTLS: true}},
			want: "postgres.test: ssh_tunnel.require_tls is set, but sslmode prefer falls back to plaintext when TLS fails; set sslmode = \"require\", \"verify-ca\" or \"verify-full\"",
		},
		{
			name: "require_tls with sslmode allow",
			pg:   config.Postgres{Host: "h", SSLMode: "allow", SSHTunnel: &config.SSHTunnel{Host: "b", RequireTLS: true}},
			want: "postgres.test: ssh_tunnel.require_tls is set, but sslmode allow tries plaintext first; set sslmode = \"require\", \"verify-ca\" or \"verify-full\"",
		},
		{
			name: "missing root certificate",
			pg:   config.Postgres{Host: "h", SSLMode: "verify-full", SSLRootCert: "/nonexistent/ca.pem"},
			want: "postgres.test: invalid connection settings: cannot parse the connection settings: failed to configure TLS (unable to read CA file: open /nonexistent/ca.pem: no such file or directory)",
		},
		{
			name: "bad URL does not show its password",
			pg:   config.Postgres{ConnectionString: "postgres://u:hunter2secret@h:notaport/db"},
			want: "postgres.test: invalid connection settings: cannot parse the connection settings: invalid port",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConnConfig(pgSource(&tt.pg))
			if err == nil {
				t.Fatal("ConnConfig succeeded")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConnect connects for real, ordinarily and for replication, with the
// settings given every way the package documentation names.
func TestConnect(t *testing.T) {
	home := isolateEnv(t)
	u := pgtest.NewDB(t)
	base := urlSource(t, u)
	pg := base.Postgres
	ctx := context.Background()

	withURL := pgSource(&config.Postgres{ConnectionString: u})
	env := pgSource(&config.Postgres{Database: pg.Database})
	check := func(t *testing.T, src *config.Source) {
		t.Helper()
		conn, err := Connect(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var db, app string
		if err := conn.QueryRow(ctx, "SELECT current_database(), current_setting('application_name')").Scan(&db, &app); err != nil {
			t.Fatal(err)
		}
		if db != pg.Database || app != "sluice" {
			t.Errorf("connected to %q as application %q, want %q and sluice", db, app, pg.Database)
		}

		rc, err := ConnectReplication(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close(ctx)
		res, err := rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][3]) != pg.Database {
			t.Errorf("IDENTIFY_SYSTEM = %q, want the row of database %q", res[0].Rows, pg.Database)
		}
	}
	t.Run("discrete", func(t *testing.T) { check(t, base) })
	t.Run("connection string", func(t *testing.T) { check(t, withURL) })
	t.Run("PG variables", func(t *testing.T) {
		t.Setenv("PGHOST", pg.Host)
		t.Setenv("PGPORT", strconv.Itoa(pg.Port))
		t.Setenv("PGUSER", pg.User)
		t.Setenv("PGSSLMODE", "disable")
		check(t, env)
	})
	t.Run("service file", func(t *testing.T) {
		svc := filepath.Join(home, "pg_service.conf")
		body := fmt.Sprintf("[sluice]\nhost=%s\nport=%d\nuser=%s\nsslmode=disable\n", pg.Host, pg.Port, pg.User)
		if err := os.WriteFile(svc, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PGSERVICEFILE", svc)
		check(t, pgSource(&config.Postgres{ConnectionString: "service=sluice", Database: pg.Database}))
	})
}

// TestConnectPgpass connects to a server that wants a password, found in
// ~/.pgpass for the discrete host, port, database and user, while the
// connection string names others.
func TestConnectPgpass(t *testing.T) {
	home := isolateEnv(t)
	c := startAuthCluster(t, nil)
	pass := filepath.Join(home, ".pgpass")
	line := fmt.Sprintf("127.0.0.1:%d:postgres:%s:%s\n", c.Port(), authRole, authPassword)
	if err := os.WriteFile(pass, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	src := pgSource(&config.Postgres{
		ConnectionString: "postgres://someone@elsewhere.invalid:1/other?sslmode=disable",
		Host:             "127.0.0.1", Port: c.Port(), Database: "postgres", User: authRole,
	})
	ctx := context.Background()
	conn, err := Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var who string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil {
		t.Fatal(err)
	}
	if who != authRole {
		t.Errorf("current_user = %q, want %q", who, authRole)
	}
}

// TestConnectTLS connects with every sslmode that succeeds against a server
// with TLS, with the client certificate passed through where pg_hba.conf
// asks for one.
func TestConnectTLS(t *testing.T) {
	isolateEnv(t)
	pki := newPKI(t)
	c := startAuthCluster(t, pki)
	dir := pki.dir
	tests := []struct {
		name    string
		pg      config.Postgres
		wantSSL bool
	}{
		{name: "require", pg: config.Postgres{Host: "127.0.0.1", SSLMode: "require"}, wantSSL: true},
		{name: "prefer", pg: config.Postgres{Host: "127.0.0.1", SSLMode: "prefer"}, wantSSL: true},
		{name: "allow", pg: config.Postgres{Host: "127.0.0.1", SSLMode: "allow"}, wantSSL: false},
		{name: "disable", pg: config.Postgres{Host: "127.0.0.1", SSLMode: "disable"}, wantSSL: false},
		{name: "verify-ca by IP", pg: config.Postgres{Host: "127.0.0.1", SSLMode: "verify-ca", SSLRootCert: "ca.pem"}, wantSSL: true},
		{name: "verify-full by name, root certificate relative to the config directory", pg: config.Postgres{Host: "localhost", SSLMode: "verify-full", SSLRootCert: "ca.pem"}, wantSSL: true},
		{name: "verify-full, absolute root certificate path", pg: config.Postgres{Host: "localhost", SSLMode: "verify-full", SSLRootCert: filepath.Join(dir, "ca.pem")}, wantSSL: true},
		{name: "client certificate", pg: config.Postgres{Host: "127.0.0.1", User: certRole, SSLMode: "verify-ca", SSLRootCert: "ca.pem", SSLCert: "client.pem", SSLKey: "client.key"}, wantSSL: true},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := tt.pg
			pg.Port = c.Port()
			pg.Database = "postgres"
			if pg.User == "" {
				pg.User, pg.Password = authRole, authPassword
			}
			conn, err := Connect(ctx, pgSource(&pg), WithConfigDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var ssl bool
			var who string
			if err := conn.QueryRow(ctx, "SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &who); err != nil {
				t.Fatal(err)
			}
			if ssl != tt.wantSSL || who != pg.User {
				t.Errorf("ssl = %v as %q, want %v as %q", ssl, who, tt.wantSSL, pg.User)
			}
		})
	}
}

// The roles of startAuthCluster.
const (
	authRole     = "app"                      // scram-sha-256
	authPassword = "app-Pw-7f3e9c1d"          // authRole's password
	adminPass    = "admin-Pw-2b8d4a60"        // the superuser's password
	strangerRole = "stranger"                 // exists, but no pg_hba.conf line admits it
	ghostRole    = "ghost"                    // a trust line, no role
	blockedRole  = "blocked"                  // a reject line
	certRole     = "certuser"                 // hostssl ... cert
	noLoginRole  = "Mixed Case \"nologin\" x" // NOLOGIN, trust line
)

// startAuthCluster starts a cluster whose pg_hba.conf asks for passwords
// (scram-sha-256), with the roles above; with pki, also TLS with pki's
// server certificate and client certificates signed by pki's CA. It is
// stopped when the test ends.
func startAuthCluster(t *testing.T, pki *testPKI) *pgtest.Cluster {
	t.Helper()
	hba := []string{
		"local all all trust",
		"host all postgres 127.0.0.1/32 scram-sha-256",
		"host all " + authRole + " 127.0.0.1/32 scram-sha-256",
		"host all " + ghostRole + " 127.0.0.1/32 trust",
		"host all " + blockedRole + " 127.0.0.1/32 reject",
		`host all "` + strings.ReplaceAll(noLoginRole, `"`, `""`) + `" 127.0.0.1/32 trust`,
		"hostssl all " + certRole + " 127.0.0.1/32 cert",
	}
	opts := pgtest.Options{HBA: hba, Password: adminPass}
	if pki != nil {
		files := pki.serverFiles(t, pki.serverCert)
		opts.Settings = map[string]string{
			"ssl":           "on",
			"ssl_cert_file": files.cert,
			"ssl_key_file":  files.key,
			"ssl_ca_file":   files.ca,
		}
	}
	return startCluster(t, opts, func(ctx context.Context, conn *pgx.Conn) error {
		for _, r := range []struct{ name, password, attrs string }{
			{authRole, authPassword, "LOGIN"},
			{strangerRole, "", "LOGIN"},
			{blockedRole, "", "LOGIN"},
			{certRole, "", "LOGIN"},
			{noLoginRole, "", "NOLOGIN"},
		} {
			sql := "CREATE ROLE " + pgx.Identifier{r.name}.Sanitize() + " " + r.attrs
			if r.password != "" {
				// CREATE ROLE takes no parameters: let the server quote.
				if err := conn.QueryRow(ctx, "SELECT $1::text || ' PASSWORD ' || quote_literal($2::text)", sql, r.password).Scan(&sql); err != nil {
					return err
				}
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	})
}

// startCluster starts a cluster with opts, runs setup as the superuser and
// stops the cluster when the test ends.
func startCluster(t *testing.T, opts pgtest.Options, setup func(context.Context, *pgx.Conn) error) *pgtest.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgtest.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	if setup != nil {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := setup(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// testPKI is a certificate authority for tests, with a server certificate
// for "localhost" (and no IP address, so that 127.0.0.1 is a wrong name).
// Its files in dir: ca.pem; client.pem and .key, for certRole; wrong-cn.pem
// and .key, for authRole; other-ca.pem, another CA, and other-client.pem and
// .key, for certRole but issued by the other CA.
type testPKI struct {
	dir        string
	ca         *x509.Certificate
	caKey      *ecdsa.PrivateKey
	caPEM      []byte
	serverCert tlsPair
}

type tlsPair struct{ cert, key []byte } // PEM

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	p.ca, p.caKey, p.caPEM = newCA(t, "sluice test CA")
	now := time.Now()
	p.serverCert = p.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	client := p.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: certRole},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	wrongCN := p.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: authRole},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	other := &testPKI{}
	other.ca, other.caKey, other.caPEM = newCA(t, "some other CA")
	otherClient := other.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: certRole},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	for name, data := range map[string][]byte{
		"ca.pem": p.caPEM, "other-ca.pem": other.caPEM,
		"client.pem": client.cert, "client.key": client.key,
		"wrong-cn.pem": wrongCN.cert, "wrong-cn.key": wrongCN.key,
		"other-client.pem": otherClient.cert, "other-client.key": otherClient.key,
	} {
		if err := os.WriteFile(filepath.Join(p.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

var serial int64 = 100

func (p *testPKI) issue(t *testing.T, tmpl *x509.Certificate) tlsPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return tlsPair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

type serverFiles struct{ cert, key, ca string }

// serverFiles writes a server certificate, its key and the CA into a new
// directory the server can read: PostgreSQL insists that its key belong to
// the user it runs as and be unreadable by others.
func (p *testPKI) serverFiles(t *testing.T, pair tlsPair) serverFiles {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "pgtls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, gid := serverUser(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := serverFiles{cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key"), ca: filepath.Join(dir, "ca.crt")}
	for path, data := range map[string][]byte{f.cert: pair.cert, f.key: pair.key, f.ca: p.caPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// serverUser is who pgtest runs the server as: "postgres" when we are root,
// else ourselves.
func serverUser(t *testing.T) (int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Geteuid(), os.Getegid()
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) (string, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return "127.0.0.1", port
}

// silentServer accepts connections on a loopback port and never answers,
// like a server behind a firewall that drops packets after the handshake.
func silentServer(t *testing.T) (string, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return "127.0.0.1", l.Addr().(*net.TCPAddr).Port
}
