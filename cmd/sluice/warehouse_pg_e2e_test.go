package main

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// TestRunIntoPostgresWarehouse: `run -once` syncs a full_refresh and an
// incremental table into a PostgreSQL warehouse (another database of the
// cluster), then a resync replaces one.
func TestRunIntoPostgresWarehouse(t *testing.T) {
	s := newShop(t)
	whURL := pgtest.NewDB(t)
	s.write(shopHeader + `
warehouse {
  backend = "postgres"
  url     = "` + whURL + `"
  schema  = "raw"
}
` + shopSource(`
  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "Audit Log" {
    sync = "full_refresh"
  }`))
	s.exec(`INSERT INTO orders (id, status, total, updated_at) VALUES (1, 'new', 10.50, now()), (2, 'paid', 3, now())`)
	s.exec(`INSERT INTO "Audit Log" VALUES (1, 'hello')`)
	s.must(0, "apply", "-auto-approve")
	// run takes no -var: the variables come from the environment.
	t.Setenv("SLUICE_VAR_url", s.url)
	t.Setenv("SLUICE_VAR_pg_password", secretPassword)
	s.must(0, "run", "-once")

	ctx := context.Background()
	wh, err := pgx.Connect(ctx, whURL)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close(ctx)
	q := func(sql string) string {
		t.Helper()
		var v string
		if err := wh.QueryRow(ctx, sql).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	if got := q(`SELECT string_agg(id || ':' || status || ':' || total, ',' ORDER BY id) FROM raw.shop_orders`); got != "1:new:10.50,2:paid:3.00" {
		t.Errorf("orders = %q", got)
	}
	if got := q(`SELECT string_agg(id || ':' || msg, ',') FROM raw.shop_audit_log`); got != "1:hello" {
		t.Errorf("audit log = %q", got)
	}

	// A resync replaces the table (the incremental merge is tested in
	// warehouse/postgres; -once would not run the table again so soon).
	s.exec(`UPDATE orders SET status = 'shipped', updated_at = now() + interval '1 second' WHERE id = 1`)
	s.must(0, "resync", "postgres.shop/orders")
	s.must(0, "run", "-once")
	if got := q(`SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM raw.shop_orders`); got != "1:shipped,2:paid" {
		t.Errorf("orders after the update = %q", got)
	}
	if got := q(`SELECT string_agg(table_name || ':' || rows, ',' ORDER BY table_name) FROM raw._sluice_positions`); got != "shop_audit_log:1,shop_orders:2" {
		t.Errorf("positions = %q", got)
	}
}

// TestPlanChecksWarehousePrivileges: plan reports a PostgreSQL warehouse
// the user may not create tables in, with the GRANT to run.
func TestPlanChecksWarehousePrivileges(t *testing.T) {
	s := newShop(t)
	whURL := pgtest.NewDB(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, whURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := "wh_reader_" + strings.ToLower(strings.NewReplacer("/", "_").Replace(t.Name()))
	if _, err := admin.Exec(ctx, `DROP ROLE IF EXISTS `+pgx.Identifier{role}.Sanitize()+`; CREATE ROLE `+pgx.Identifier{role}.Sanitize()+` LOGIN;
		CREATE SCHEMA locked; REVOKE CREATE ON SCHEMA public FROM PUBLIC`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), whURL)
		if err == nil {
			c.Exec(context.Background(), `DROP OWNED BY `+pgx.Identifier{role}.Sanitize()+`; DROP ROLE IF EXISTS `+pgx.Identifier{role}.Sanitize())
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(whURL)
	u.User = url.User(role)
	s.write(strings.Replace(shopConfig, "source \"postgres\" \"shop\" {", "warehouse {\n  backend = \"postgres\"\n  url     = \""+u.String()+"\"\n  schema  = \"locked\"\n  sslmode = \"disable\"\n}\n\nsource \"postgres\" \"shop\" {", 1))
	code, _, errOut := s.run("plan")
	if code != 1 || !strings.Contains(errOut, "Cannot write to the warehouse") || !strings.Contains(errOut, "GRANT") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}
