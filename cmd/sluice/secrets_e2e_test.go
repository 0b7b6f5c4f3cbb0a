package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// leakyPw has every character the quoting of Go, JSON, SQL and URLs
// escapes.
const leakyPw = `Le"ak\9ü'x`

// leakForms are the ways a message may quote s, written out here rather
// than taken from the code under test.
func leakForms(s string) map[string]string {
	goq, ascii := strconv.Quote(s), strconv.QuoteToASCII(s)
	js, _ := json.Marshal(s)
	jsq := strconv.Quote(string(js))
	return map[string]string{
		"raw":          s,
		"Go %q":        goq[1 : len(goq)-1],
		"Go %+q":       ascii[1 : len(ascii)-1],
		"JSON":         string(js[1 : len(js)-1]),
		"JSON, quoted": jsq[2 : len(jsq)-2],
		"SQL ident":    strings.ReplaceAll(s, `"`, `""`),
		"SQL literal":  strings.ReplaceAll(s, `'`, `''`),
		"E'' literal":  strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `\'`),
		"URL":          url.QueryEscape(s),
		"URL path":     url.PathEscape(s),
		"part":         `Le"ak`,
	}
}

func checkNoLeak(t *testing.T, what, text string) {
	t.Helper()
	for name, f := range leakForms(leakyPw) {
		if strings.Contains(text, f) {
			t.Errorf("%s shows the sensitive value (%s form %q):\n%s", what, name, f, text)
		}
	}
}

// TestSensitiveValuesNeverPrinted: a sensitive variable inside the user
// and database names (and the password) of a source, against a real
// server that refuses them and quotes them in its messages: no form of the
// value appears in plan's or run's output, in status (text and JSON) or
// in the files sluice writes. A wrong password in the warehouse's url is
// explained with the warehouse block's attributes.
func TestSensitiveValuesNeverPrinted(t *testing.T) {
	const adminPw = "admin-Pw-5a1f"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgtest.Start(ctx, pgtest.Options{Password: adminPw, HBA: []string{
		"local all all trust",
		// Database postgres trusts, so that an unknown role is reported
		// as such rather than as a password failure.
		"host postgres all 127.0.0.1/32 trust",
		"host all all 127.0.0.1/32 scram-sha-256",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := "u-" + leakyPw
	for _, sql := range []string{
		`SELECT 'CREATE ROLE ' || quote_ident($1::text) || ' LOGIN PASSWORD ' || quote_literal($2::text)`,
		`SELECT 'CREATE DATABASE shop OWNER ' || quote_ident($1::text) || left($2::text, 0)`,
	} {
		var stmt string
		if err := admin.QueryRow(ctx, sql, role, leakyPw).Scan(&stmt); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	shopURL := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/shop?sslmode=disable", url.PathEscape(role), url.PathEscape(leakyPw), c.Port())
	shop, err := pgx.Connect(ctx, shopURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shop.Exec(ctx, `CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a')`); err != nil {
		t.Fatal(err)
	}
	shop.Close(ctx)
	t.Setenv("SLUICE_VAR_pw", leakyPw)

	dir := t.TempDir()
	write := func(user, password, database, warehouse string) {
		t.Helper()
		cfg := fmt.Sprintf(`
variable "pw" {
  type      = string
  sensitive = true
}
%s
source "postgres" "shop" {
  host     = "127.0.0.1"
  port     = %d
  sslmode  = "disable"
  user     = %s
  password = %s
  database = %s
  table "items" {
    sync = "full_refresh"
  }
}
`, warehouse, c.Port(), user, password, database)
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := sluice(t, "", append([]string{"-chdir=" + dir, "-no-color"}, args...)...)
		if code != want {
			t.Errorf("sluice %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		checkNoLeak(t, "sluice "+strings.Join(args, " "), out+errOut)
		return out + errOut
	}

	refusals := []struct {
		name                     string
		user, password, database string
		want                     string
	}{
		{"wrong password", `"u-${var.pw}"`, `"x${var.pw}"`, `"template1"`, "password authentication failed"},
		{"unknown role", `"v-${var.pw}"`, `var.pw`, `"postgres"`, "does not exist (SQLSTATE 28000)"},
		{"unknown database", `"u-${var.pw}"`, `var.pw`, `"d-${var.pw}"`, "does not exist (SQLSTATE 3D000)"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			write(r.user, r.password, r.database, "")
			for _, args := range [][]string{{"plan"}, {"plan", "-json"}, {"inspect", "postgres.shop"}} {
				if out := cli(1, args...); !strings.Contains(out, r.want) {
					t.Errorf("sluice %s does not say %q:\n%s", strings.Join(args, " "), r.want, out)
				}
			}
		})
	}

	t.Run("run and status", func(t *testing.T) {
		write(`"u-${var.pw}"`, `var.pw`, `"shop"`, "")
		cli(0, "apply", "-auto-approve")
		// The password changes; the user name derived from it is quoted
		// by the server's refusal.
		write(`"u-${var.pw}"`, `"x${var.pw}"`, `"shop"`, "")
		if out := cli(1, "run", "-once"); !strings.Contains(out, "password authentication failed") {
			t.Errorf("run -once does not say why it failed:\n%s", out)
		}
		if out := cli(0, "status"); !strings.Contains(out, "failed") {
			t.Errorf("status does not show the failure:\n%s", out)
		}
		cli(0, "status", "-json")
		err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || filepath.Base(path) == "main.hcl" {
				return err
			}
			b, err := os.ReadFile(path)
			if err == nil {
				checkNoLeak(t, path, string(b))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("warehouse password", func(t *testing.T) {
		write(`"u-${var.pw}"`, `var.pw`, `"shop"`, fmt.Sprintf(`
warehouse {
  backend = "postgres"
  url     = "postgres://postgres:wrong-pw@127.0.0.1:%d/template1"
  sslmode = "disable"
}`, c.Port()))
		out := cli(1, "plan")
		if !strings.Contains(out, "Check the password in the warehouse block's url") || strings.Contains(out, "postgres.warehouse") || strings.Contains(out, "wrong-pw") {
			t.Errorf("plan does not name the warehouse block's url (or shows the password):\n%s", out)
		}
	})
}
