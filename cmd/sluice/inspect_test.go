package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/providers"
)

const inspectSchema = `
CREATE TABLE orders (id bigint PRIMARY KEY, status text, total numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON orders (updated_at);
INSERT INTO orders (id, status, total) SELECT g, 'new', g FROM generate_series(1, 25) g;
CREATE TABLE "Page Views" (at timestamp, path varchar(200));
INSERT INTO "Page Views" SELECT now(), '/' FROM generate_series(1, 40);
CREATE TABLE keyless (v int);
CREATE VIEW recent_orders AS SELECT * FROM orders WHERE updated_at > now() - interval '1 day';
ANALYZE;
`

const inspectConfig = `
variable "url" {
  type      = string
  sensitive = true
}

source "postgres" "app" {
  connection_string = var.url
  prefix            = "app"

  table "orders" {
    sync = "cdc"
  }
}

source "postgres" "bad" {
  connection_string = var.url
  prefix            = "bad"

  table "keyless" {
    sync = "cdc"
  }
}

source "stripe" "billing" {
  api_key = "sk_test_123"
}
`

// inspectEnv is a database with inspectSchema and a configuration
// directory with inspectConfig pointing at it.
func inspectEnv(t *testing.T) (dir, dbURL string) {
	t.Helper()
	dbURL = pgtest.NewDB(t)
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), inspectSchema); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(inspectConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, dbURL
}

// closedPortURL is a URL of a port nothing listens on.
func closedPortURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "postgres://postgres@" + addr + "/x?sslmode=disable&connect_timeout=5"
}

var serverVersion = regexp.MustCompile(`PostgreSQL \d+\.\d+`)

func TestInspectCommand(t *testing.T) {
	dir, dbURL := inspectEnv(t)
	chdir, url := "-chdir="+dir, "-var=url="+dbURL

	code, out, errOut := sluice(t, "", chdir, "inspect", "postgres.app", url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "inspect.txt", serverVersion.ReplaceAllString(out, "PostgreSQL XX.X"))

	code, out, errOut = sluice(t, "", chdir, "inspect", url, "-json", "postgres.app")
	if code != 0 {
		t.Fatalf("-json: exit %d: %s", code, errOut)
	}
	var obs providers.Observed
	if err := json.Unmarshal([]byte(out), &obs); err != nil {
		t.Fatalf("inspect -json is not JSON: %v\n%s", err, out)
	}
	var names []string
	for _, tb := range obs.Tables {
		names = append(names, tb.Schema+"."+tb.Name)
	}
	if obs.Source != "postgres.app" || !slices.Equal(names, []string{"public.Page Views", "public.keyless", "public.orders", "public.recent_orders"}) {
		t.Errorf("inspect -json: source %q, tables %v", obs.Source, names)
	}
	// SPEC §7: empty lists are [], never null.
	if !strings.Contains(out, `"primary_key": []`) || strings.Contains(out, "null,\n      \"columns\"") {
		t.Errorf("inspect -json lists:\n%s", out)
	}
	if strings.Contains(out+errOut, dbURL) {
		t.Error("the connection string was printed")
	}
}

func TestInspectCommandErrors(t *testing.T) {
	dir, dbURL := inspectEnv(t)
	chdir, url := "-chdir="+dir, "-var=url="+dbURL
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no source", []string{"inspect", url}, "inspect takes one source address"},
		{"source name only", []string{"inspect", "app", url}, `there is no source "app". Did you mean "postgres.app"? Configured sources: postgres.app, postgres.bad, stripe.billing.`},
		{"unknown source", []string{"inspect", "postgres.nope", url}, "Configured sources: postgres.app, postgres.bad, stripe.billing."},
		{"unreachable", []string{"inspect", "postgres.app", "-var=url=" + closedPortURL(t)}, "Error: "},
		{"variables missing", []string{"inspect", "postgres.app"}, "No value for required variable"},
	}
	if !slices.Contains(providers.Types(), "stripe") {
		tests = append(tests, struct {
			name string
			args []string
			want string
		}{"stripe", []string{"inspect", "stripe.billing", url}, "inspect for stripe sources arrives with the Stripe provider; nothing was done"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := sluice(t, "", append([]string{chdir, "-no-color"}, tt.args...)...)
			if code != 1 || out != "" || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, tt.want)
			}
		})
	}
}

func TestCheckCommand(t *testing.T) {
	dir, dbURL := inspectEnv(t)
	chdir, url := "-chdir="+dir, "-var=url="+dbURL

	code, out, errOut := sluice(t, "", chdir, "check", "postgres.app", url)
	if code != 0 || !strings.Contains(out, "  ✓ wal_level: wal_level is logical\n") || !strings.HasSuffix(out, "All checks passed.\n") {
		t.Errorf("postgres.app: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	code, out, errOut = sluice(t, "", chdir, "check", "postgres.bad", url)
	want := "  ✗ cdc_primary_keys: no primary key: \"public\".\"keyless\"\n    fix: cdc merges changes by primary key"
	if code != 2 || !strings.Contains(out, want) || !strings.HasSuffix(out, "1 of 13 checks failed.\n") {
		t.Errorf("postgres.bad: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	code, out, _ = sluice(t, "", chdir, "check", "-json", "postgres.bad", url)
	var got checkJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("check -json is not JSON: %v\n%s", err, out)
	}
	if code != 2 || got.Source != "postgres.bad" || got.Valid || len(got.Checks) != 13 {
		t.Errorf("check -json: exit %d, %+v", code, got)
	}
	for _, key := range []string{`"source"`, `"valid"`, `"checks"`, `"check"`, `"ok"`, `"message"`, `"fix"`} {
		if !strings.Contains(out, key) {
			t.Errorf("check -json lacks %s:\n%s", key, out)
		}
	}

	code, _, errOut = sluice(t, "", chdir, "check", "postgres.app", "-var=url="+closedPortURL(t))
	if code != 1 || !strings.HasPrefix(errOut, "Error: ") {
		t.Errorf("unreachable: exit %d, want 1; stderr %q", code, errOut)
	}
	code, _, errOut = sluice(t, "", chdir, "check", "stripe.billing", url)
	if code != 1 || !strings.Contains(errOut, "stripe.billing is a stripe source") {
		t.Errorf("stripe: exit %d, stderr %q", code, errOut)
	}
}

func TestInitCommand(t *testing.T) {
	_, dbURL := inspectEnv(t)
	dir := t.TempDir()
	chdir := "-chdir=" + dir

	code, out, errOut := sluice(t, "", chdir, "init", "-source=postgres.app", "-url="+dbURL)
	if code != 0 || !strings.Contains(out, "source postgres.app with 4 table(s), all disabled") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	written, err := os.ReadFile(filepath.Join(dir, "app.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`table "orders" {`, `table "Page Views" {`, `sync    = "full_refresh"`, `schema   = "public"`} {
		if !strings.Contains(string(written), s) {
			t.Errorf("app.hcl lacks %q:\n%s", s, written)
		}
	}
	if code, out, errOut := sluice(t, "", chdir, "validate"); code != 0 {
		t.Errorf("validate: exit %d\n%s%s\n%s", code, out, errOut, written)
	}
	if code, out, errOut := sluice(t, "", chdir, "fmt", "-check"); code != 0 {
		t.Errorf("fmt -check: exit %d\n%s%s", code, out, errOut)
	}

	code, _, errOut = sluice(t, "", chdir, "init", "-source=postgres.app", "-url="+dbURL)
	if code != 1 || !strings.Contains(errOut, "already exists; init does not overwrite files") {
		t.Errorf("second init: exit %d, stderr %q", code, errOut)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "app.hcl"))
	if string(after) != string(written) {
		t.Error("the file was overwritten")
	}

	code, out, errOut = sluice(t, "", chdir, "init", "-source=postgres.all", "-url="+dbURL, "-out=all-schemas.hcl", "-schema=")
	if code != 0 {
		t.Fatalf("-out -schema: exit %d\n%s%s", code, out, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "all-schemas.hcl")); err != nil || !strings.Contains(string(b), `table "public.orders" {`) {
		t.Errorf("all-schemas.hcl (%v):\n%s", err, b)
	}

	for _, args := range [][]string{
		{"init", "-url=" + dbURL},
		{"init", "-source=stripe.x", "-url=" + dbURL},
		{"init", "-source=postgres.9bad", "-url=" + dbURL},
		{"init", "-source=postgres.x"},
		{"init", "-source=postgres.x", "-url=" + closedPortURL(t)},
	} {
		if code, _, errOut := sluice(t, "", append([]string{chdir}, args...)...); code != 1 || !strings.HasPrefix(errOut, "Error: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	withPassword := strings.Replace(closedPortURL(t), "postgres@", "postgres:init-pw-4242@", 1)
	if code, out, errOut := sluice(t, "", chdir, "init", "-source=postgres.x", "-url="+withPassword); code != 1 || strings.Contains(out+errOut, "init-pw-4242") {
		t.Errorf("unreachable with a password: exit %d, output %q", code, out+errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.hcl")); err == nil {
		t.Error("a failed init wrote a file")
	}
}
