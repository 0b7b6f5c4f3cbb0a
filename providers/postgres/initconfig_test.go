package postgres

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/providers"
)

// loadGenerated writes a generated file into a directory of its own and
// loads it as `sluice validate` would, with env as the environment.
func loadGenerated(t *testing.T, hcl []byte, env map[string]string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "test.hcl"), hcl, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(dir, config.Options{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	if len(diags) > 0 {
		t.Fatalf("the generated file does not validate: %s\n%s", diags.Error(), hcl)
	}
	return cfg
}

// declared is what a table block of a generated file says.
type declared struct {
	Schema, Table, Sync, Field string
	Enabled                    bool
}

func TestInit(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	inspExec(t, conn, strings.Replace(inspectFixture, "LONGNAME", longName, 1))
	inspExec(t, conn, `
		CREATE TABLE big_orders (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
		CREATE INDEX ON big_orders (updated_at);
		INSERT INTO big_orders SELECT g, now(), now() FROM generate_series(1, 110000) g;
		CREATE TABLE audit_events (id bigint PRIMARY KEY, payload text);
		INSERT INTO audit_events SELECT g FROM generate_series(1, 110000) g;
		CREATE TABLE "Collide" (id int);
		CREATE TABLE collide (id int);
		CREATE TABLE "weird ${x} %{y} ""q""
name" (id int);
		ANALYZE big_orders, audit_events, "Collide", collide;`)

	// A password in the URL (the test server trusts any) must not reach
	// the file.
	u, _ := url.Parse(dbURL)
	u.User = url.UserPassword(u.User.Username(), "s3cret-init-pw")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Init(ctx, InitOptions{Name: "test", URL: u.String(), Schema: ""})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(res.HCL), "s3cret") {
		t.Fatalf("the password is in the file:\n%s", res.HCL)
	}
	if res.SecretVariable != "test_password" {
		t.Errorf("SecretVariable = %q", res.SecretVariable)
	}
	if diff := cmp.Diff([]string{"public.collide"}, res.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}

	cfg := loadGenerated(t, res.HCL, map[string]string{"SLUICE_VAR_test_password": "s3cret-init-pw"})
	src := cfg.Source("postgres.test")
	if src == nil {
		t.Fatalf("no source postgres.test:\n%s", res.HCL)
	}
	pg := src.Postgres
	if pg.Password != "s3cret-init-pw" || pg.Host != "127.0.0.1" || pg.Database != dbName(t, dbURL) ||
		pg.User != "postgres" || pg.SSLMode != "disable" || pg.Schema != "" || src.Prefix != "postgres_test" {
		t.Errorf("source settings: %+v prefix %q", pg, src.Prefix)
	}

	got := map[string]declared{}
	for _, tb := range src.Tables {
		got[tb.Name] = declared{Schema: tb.Schema, Table: tb.Table, Sync: string(tb.Sync), Field: tb.IncrementalField, Enabled: tb.Enabled}
	}
	full := func(schema, table string) declared {
		return declared{Schema: schema, Table: table, Sync: "full_refresh"}
	}
	want := map[string]declared{
		`public."Order.Items"`:  full("public", "Order.Items"),
		"public.measurements":   full("public", "measurements"),
		"public.never_analyzed": full("public", "never_analyzed"),
		"public.order_totals":   full("public", "order_totals"),
		"public.orders":         full("public", "orders"),
		"public.paid_orders":    full("public", "paid_orders"),
		"public." + longName:    full("public", longName),
		"sales.customers":       full("sales", "customers"),
		"public.Collide":        full("public", "Collide"),
		"public.big_orders":     {Schema: "public", Table: "big_orders", Sync: "incremental", Field: "updated_at"},
		"public.audit_events":   {Schema: "public", Table: "audit_events", Sync: "append", Field: "id"},
	}
	// A name with quotes is quoted, its quotes doubled.
	want["public.\"weird ${x} %{y} \"\"q\"\"\nname\""] = full("public", "weird ${x} %{y} \"q\"\nname")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tables (-want +got):\n%s\n%s", diff, res.HCL)
	}
	if res.Tables != len(want) {
		t.Errorf("Tables = %d, want %d", res.Tables, len(want))
	}
	unwrapped := regexp.MustCompile(`\n *# `).ReplaceAllString(string(res.HCL), " ")
	for _, s := range []string{
		"public.orders: about 10 rows; can sync full_refresh, incremental, append, cdc, xmin.",
		`public."Order.Items": about 3 rows; can sync full_refresh, append.`,
		"Warning: REPLICA IDENTITY NOTHING",
		"public.paid_orders: a view; can sync",
		"public.measurements: a partitioned table of about 5 rows;",
		"public.collide is left out: it would land in warehouse table postgres_test_public_collide like",
		`public."weird ${x} %{y} ""q""\nname": size unknown`,
	} {
		if !strings.Contains(unwrapped, s) {
			t.Errorf("the file lacks %q:\n%s", s, res.HCL)
		}
	}
	for i, line := range strings.Split(string(res.HCL), "\n") {
		if len(line) > 100 && strings.HasPrefix(strings.TrimSpace(line), "#") && strings.Contains(strings.TrimSpace(line), " ") {
			t.Errorf("line %d is not wrapped: %q", i+1, line)
		}
	}

	// Only the schema asked for; no password, no variable.
	res, err = Init(ctx, InitOptions{Name: "my-db", URL: dbURL, Schema: "sales"})
	if err != nil {
		t.Fatal(err)
	}
	if res.SecretVariable != "" || strings.Contains(string(res.HCL), "variable") {
		t.Errorf("a variable without a password:\n%s", res.HCL)
	}
	cfg = loadGenerated(t, res.HCL, nil)
	src = cfg.Source("postgres.my-db")
	if src == nil || len(src.Tables) != 1 || src.Tables[0].Name != "customers" || src.Postgres.Schema != "sales" || src.Prefix != "postgres_my_db" {
		t.Errorf("schema sales:\n%s", res.HCL)
	}
}

// TestGenerateConfigConnection covers how connection strings are written.
func TestGenerateConfigConnection(t *testing.T) {
	tables := []providers.Table{{Schema: "public", Name: "t", Kind: "table", SyncTypes: []string{"full_refresh"}, RecommendedSync: "full_refresh"}}
	abs, _ := filepath.Abs("ca.pem")
	tests := []struct {
		name     string
		url      string
		secret   string // the secret variable, "" for none
		env      map[string]string
		want     config.Postgres
		wantText []string
	}{
		{
			name: "discrete",
			url:  "postgresql://app:pw%40x@db.example.com:6432/shop?sslmode=verify-full&sslrootcert=ca.pem&connect_timeout=5",
			env:  map[string]string{"SLUICE_VAR_test_password": "pw@x"}, secret: "test_password",
			want: config.Postgres{Host: "db.example.com", Port: 6432, Database: "shop", User: "app", Password: "pw@x",
				SSLMode: "verify-full", SSLRootCert: abs, ConnectTimeout: 5 * time.Second},
			wantText: []string{`password        = var.test_password`, `sensitive   = true`},
		},
		{
			name: "password parameter",
			url:  "postgres://db/shop?user=app&password=pw",
			env:  map[string]string{"SLUICE_VAR_test_password": "pw"}, secret: "test_password",
			want: config.Postgres{Host: "db", Database: "shop", User: "app", Password: "pw", SSLMode: "require", ConnectTimeout: config.DefaultConnectTimeout},
		},
		{
			name: "no password",
			url:  "postgres://app@[::1]/shop",
			want: config.Postgres{Host: "::1", Database: "shop", User: "app", SSLMode: "require", ConnectTimeout: config.DefaultConnectTimeout},
		},
		{
			name: "several hosts",
			url:  "postgres://app:pw@a:5432,b:5432/shop?target_session_attrs=read-write",
			env:  map[string]string{"SLUICE_VAR_test_url": "postgres://app:pw@a:5432,b:5432/shop"}, secret: "test_url",
			want:     config.Postgres{ConnectionString: "postgres://app:pw@a:5432,b:5432/shop", ConnectTimeout: config.DefaultConnectTimeout},
			wantText: []string{`connection_string = var.test_url`},
		},
		{
			name: "keyword=value",
			url:  "host=db dbname=shop password='x y'",
			env:  map[string]string{"SLUICE_VAR_test_url": "host=db dbname=shop"}, secret: "test_url",
			want: config.Postgres{ConnectionString: "host=db dbname=shop", ConnectTimeout: config.DefaultConnectTimeout},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := generateConfig(InitOptions{Name: "test", URL: tt.url, Schema: "public"}, tables)
			if err != nil {
				t.Fatal(err)
			}
			if res.SecretVariable != tt.secret {
				t.Errorf("SecretVariable = %q, want %q", res.SecretVariable, tt.secret)
			}
			for _, secret := range []string{"pw", "x y"} {
				if strings.Contains(string(res.HCL), secret) {
					t.Errorf("%q is in the file:\n%s", secret, res.HCL)
				}
			}
			for _, s := range tt.wantText {
				if !strings.Contains(string(res.HCL), s) {
					t.Errorf("the file lacks %q:\n%s", s, res.HCL)
				}
			}
			cfg := loadGenerated(t, res.HCL, tt.env)
			got := *cfg.Sources[0].Postgres
			got.CDC, got.Schema = config.CDC{}, ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\n%s", diff, res.HCL)
			}
		})
	}
}
