package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
)

// leakyPassword has every character the quoting of Go, JSON, SQL and URLs
// escapes: a double and a single quote, a backslash, a non-ASCII letter.
const leakyPassword = `Le"ak\9ü'x`

// quotedForms are the ways a message may quote s: written here by hand
// (not by the code under test) so that a form redact forgets is caught.
func quotedForms(s string) map[string]string {
	goq := strconv.Quote(s)
	ascii := strconv.QuoteToASCII(s)
	js, _ := json.Marshal(s)
	return map[string]string{
		"raw":           s,
		"Go %q":         goq[1 : len(goq)-1],
		"Go %+q":        ascii[1 : len(ascii)-1],
		"JSON":          string(js[1 : len(js)-1]),
		"SQL ident":     strings.ReplaceAll(s, `"`, `""`),
		"SQL literal":   strings.ReplaceAll(s, `'`, `''`),
		"E'' literal":   strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `\'`),
		"URL query":     url.QueryEscape(s),
		"URL path":      url.PathEscape(s),
		"libpq URI":     uriEncode(s),
		"hba / CSV":     `"` + strings.ReplaceAll(s, `"`, `""`) + `"`,
		"Go %q of JSON": strings.ReplaceAll(strings.ReplaceAll(string(js[1:len(js)-1]), `\`, `\\`), `"`, `\"`),
	}
}

// leaks reports the forms of secret that msg holds.
func leaks(msg, secret string) []string {
	var found []string
	for name, f := range quotedForms(secret) {
		if strings.Contains(msg, f) {
			found = append(found, name)
		}
	}
	return found
}

func TestRedactEveryQuotedForm(t *testing.T) {
	value := "u-" + leakyPassword
	for _, h := range []hidden{{secrets: []string{value}}, {names: []string{value}}} {
		for name, f := range quotedForms(value) {
			msg := fmt.Sprintf(`role "%s" does not exist; also %s at the end`, f, f)
			got := redact(msg, h)
			if l := leaks(got, leakyPassword); len(l) > 0 {
				t.Errorf("%s: %q shows the secret (%v)", name, got, l)
			}
		}
		// Go's quoting of a message that already has the SQL form.
		msg := strconv.Quote(`CREATE ROLE "u-Le""ak\9ü'x"`)
		if got := redact(msg, h); strings.Contains(got, "Le") {
			t.Errorf("%q shows the secret", got)
		}
	}
	// A name cut to 63 bytes, as the server quotes it.
	long := strings.Repeat("r", 58) + leakyPassword
	msg := `role "` + long[:63] + `" does not exist`
	if got := redact(msg, hidden{names: []string{long}}); strings.Contains(got, `Le"ak`) {
		t.Errorf("%q shows the secret", got)
	}
	tests := []struct {
		msg  string
		h    hidden
		want string
	}{
		// Short values are left alone.
		{"abc abcd", hidden{secrets: []string{"abc"}}, "abc abcd"},
		// Secrets are hidden anywhere, names only as a whole.
		{"user=postgres in postgresql.conf", hidden{names: []string{"postgres"}}, "user=xxxxx in postgresql.conf"},
		{"user=postgres in postgresql.conf", hidden{secrets: []string{"postgres"}}, "user=xxxxx in xxxxxql.conf"},
		{`role "Ünïcode" and xÜnïcode`, hidden{names: []string{"Ünïcode"}}, `role "xxxxx" and xÜnïcode`},
	}
	for _, tt := range tests {
		if got := redact(tt.msg, tt.h); got != tt.want {
			t.Errorf("redact(%q, %+v) = %q, want %q", tt.msg, tt.h, got, tt.want)
		}
	}
}

// TestSensitiveNamesInServerMessages connects to a real server with a
// sensitive value inside the user name, the database name and the
// password: the server's messages ("password authentication failed for
// user", "role ... does not exist", "database ... does not exist") and the
// hints quote them, and no form of the value may show.
func TestSensitiveNamesInServerMessages(t *testing.T) {
	isolateEnv(t)
	const adminPw = "admin-Pw-0c6d"
	c := startCluster(t, pgtest.Options{Password: adminPw, HBA: []string{
		"local all all trust",
		// Connections to database postgres are trusted, so that an
		// unknown role is reported as such rather than as a password
		// failure.
		"host postgres all 127.0.0.1/32 trust",
		"host all all 127.0.0.1/32 scram-sha-256",
	}}, func(ctx context.Context, conn *pgx.Conn) error {
		var sql string
		if err := conn.QueryRow(ctx, "SELECT 'CREATE ROLE ' || quote_ident($1::text) || ' LOGIN PASSWORD ' || quote_literal($2::text)", "u-"+leakyPassword, leakyPassword).Scan(&sql); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, sql)
		return err
	})
	long := strings.Repeat("r", 58) + leakyPassword
	sensitive := map[string]bool{"user": true, "database": true, "password": true}
	tests := []struct {
		name string
		pg   config.Postgres
		want string // what the server said, so the case is what it claims
		// warehouse: connect as the warehouse does, its url derived from
		// a sensitive variable (every part of it is then secret).
		warehouse bool
	}{
		{"wrong password", config.Postgres{User: "u-" + leakyPassword, Password: "x" + leakyPassword, Database: "template1"}, "password authentication failed", false},
		{"unknown role, password", config.Postgres{User: "v-" + leakyPassword, Password: leakyPassword, Database: "template1"}, "password authentication failed", false},
		{"unknown role", config.Postgres{User: "v-" + leakyPassword, Database: "postgres"}, "does not exist (SQLSTATE 28000)", false},
		{"unknown role, name cut to 63 bytes", config.Postgres{User: long, Database: "postgres"}, "does not exist (SQLSTATE 28000)", false},
		{"unknown database", config.Postgres{User: "u-" + leakyPassword, Password: leakyPassword, Database: "d-" + leakyPassword}, "does not exist (SQLSTATE 3D000)", false},
		{"unknown database in connection_string", config.Postgres{ConnectionString: fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s",
			url.PathEscape("u-"+leakyPassword), url.PathEscape(leakyPassword), c.Port(), url.PathEscape("d-"+leakyPassword))}, "does not exist (SQLSTATE 3D000)", false},
		{"warehouse url from a sensitive variable", config.Postgres{ConnectionString: fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s",
			url.PathEscape("u-"+leakyPassword), url.PathEscape(leakyPassword), c.Port(), url.PathEscape("d-"+leakyPassword))}, "does not exist (SQLSTATE 3D000)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := tt.pg
			if pg.ConnectionString == "" {
				pg.Host, pg.Port = "127.0.0.1", c.Port()
			}
			pg.SSLMode = "disable"
			src := pgSource(&pg)
			src.Sensitive = sensitive
			if pg.ConnectionString != "" && !tt.warehouse {
				// As in a configuration: connection_string is secret, and
				// here derives from a sensitive variable as a whole.
				src.Sensitive = map[string]bool{"connection_string": true}
				src.Postgres.User, src.Postgres.Database = "", ""
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var opts []Option
			if tt.warehouse {
				src.Name = "warehouse"
				opts = append(opts, ForWarehouse(map[string]bool{"url": true}))
			}
			conn, err := Connect(ctx, src, opts...)
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error lacks %q:\n%s", tt.want, msg)
			}
			secret := leakyPassword
			if pg.ConnectionString != "" && !tt.warehouse {
				// Only its password is known to be secret; the user and
				// database name it holds are shown.
				secret = "x-no-such-secret"
				if strings.Contains(msg, leakyPassword+"@") {
					t.Errorf("error shows the password:\n%s", msg)
				}
			}
			if l := leaks(msg, secret); len(l) > 0 {
				t.Errorf("error shows the sensitive value as %v:\n%s", l, msg)
			}
			if strings.Contains(msg, `Le"ak`) && secret == leakyPassword {
				t.Errorf("error shows part of the sensitive value:\n%s", msg)
			}
		})
	}
}

// TestWarehouseErrorsNameTheWarehouseBlock: a wrong password in the
// warehouse's url is explained with the warehouse block's attributes, not
// a source's.
func TestWarehouseErrorsNameTheWarehouseBlock(t *testing.T) {
	isolateEnv(t)
	const adminPw = "admin-Pw-0c6d"
	c := startCluster(t, pgtest.Options{Password: adminPw, HBA: []string{
		"local all all trust",
		"host all all 127.0.0.1/32 scram-sha-256",
	}}, nil)
	tests := []struct {
		name     string
		url      string
		wantHint string
	}{
		{"wrong password", fmt.Sprintf("postgres://postgres:wrong-%s@127.0.0.1:%d/postgres", leakyPassword, c.Port()),
			`The server refused the password of role "postgres". Check the password in the warehouse block's url (or PGPASSWORD or ~/.pgpass, whichever gives it). If it is right, the role's password may have expired (VALID UNTIL) or not be set: ALTER ROLE "postgres" PASSWORD '...';`},
		{"no password", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", c.Port()),
			`No password was given for role "postgres", and the server asks for one. Set it in the warehouse block's url (postgres://USER:PASSWORD@HOST/DB), or give it in PGPASSWORD or ~/.pgpass.`},
		{"unknown database", fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/nowhere", adminPw, c.Port()),
			`The server has no database "nowhere". Check the database in the warehouse block's url (names are case-sensitive); SELECT datname FROM pg_database; lists the server's databases.`},
		{"nothing listens", "postgres://postgres@127.0.0.1:1/postgres",
			`Nothing accepts connections at 127.0.0.1:1. Check the host and port in the warehouse block's url, that PostgreSQL runs there and listens on that address (listen_addresses and port in postgresql.conf), and that no firewall rejects the connection.`},
		{"TLS required", fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=require", adminPw, c.Port()),
			fmt.Sprintf(`The server at 127.0.0.1:%d does not accept TLS (ssl = off), but the sslmode of the warehouse block requires TLS. Turn TLS on at the server (ssl = on, with ssl_cert_file and ssl_key_file), or, only on a network you trust, set sslmode = "prefer" or "disable".`, c.Port())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As warehouse/postgres builds it from the warehouse block.
			src := &config.Source{Type: "postgres", Name: "warehouse", Postgres: &config.Postgres{
				ConnectionString: tt.url, ConnectTimeout: config.DefaultConnectTimeout}}
			if !strings.Contains(tt.url, "sslmode") {
				src.Postgres.SSLMode = "disable"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := NewDialer(src, ForWarehouse(nil)).Connect(ctx)
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "warehouse: ") || !strings.HasSuffix(msg, "\n"+tt.wantHint) {
				t.Errorf("error:\n%s\nwant it to start with \"warehouse: \" and end with the hint\n%s", msg, tt.wantHint)
			}
			if strings.Contains(msg, "source") || strings.Contains(msg, "connection_string") || strings.Contains(msg, leakyPassword) {
				t.Errorf("error names a source or shows the password:\n%s", msg)
			}
		})
	}
}
