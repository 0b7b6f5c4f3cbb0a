package main

import (
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// TestQueryTables: custom SQL tables. plan checks the query against the
// live source without running it (an error is the server's, on the query
// attribute's line); a full_refresh query table and an incremental one
// (cursor applied around the query, merged by its primary_key) land in
// <prefix>_<label>; a changed query is a resync; cdc is refused.
func TestQueryTables(t *testing.T) {
	s := newShop(t)
	whURL := pgtest.NewDB(t)
	s.exec(`INSERT INTO orders (id, status, total, updated_at) VALUES
		(1, 'paid', 10, '2024-01-01'), (2, 'new', 20, '2024-01-01'), (3, 'paid', 30, '2024-01-02')`)
	header := shopHeader + `
warehouse {
  backend = "postgres"
  url     = "` + whURL + `"
  schema  = "raw"
}
`
	cfg := func(paidQuery string) string {
		return header + shopSource(`
  table "paid_orders" {
    sync  = "full_refresh"
    query = "`+paidQuery+`"
  }
  table "order_totals" {
    sync              = "incremental"
    query             = "SELECT id, total * 2 AS double_total, updated_at FROM orders"
    primary_key       = ["id"]
    incremental_field = "updated_at"
  }
`)
	}
	s.runEnv()
	s.write(cfg("SELECT id, total FROM orders WHERE status = 'nope'::text AND nosuch > 0"))
	code, _, errOut := s.run("plan")
	if code != 1 || !strings.Contains(errOut, "Invalid query") || !strings.Contains(errOut, `column \"nosuch\" does not exist`) && !strings.Contains(errOut, `column "nosuch" does not exist`) || !strings.Contains(errOut, "main.hcl:") {
		t.Errorf("plan of a bad query: exit %d\n%s", code, errOut)
	}
	s.write(cfg("SELECT id, total FROM orders WHERE status = 'paid'"))
	out := s.must(2, "plan", "-detailed-exitcode")
	for _, want := range []string{"postgres.shop/paid_orders will be created", "SELECT id, total FROM orders WHERE status = 'paid'"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	s.must(0, "apply", "-auto-approve")
	s.must(0, "run", "-once")
	q := whQuery(t, whURL)
	if got := q(`SELECT string_agg(id || ':' || total, ',' ORDER BY id) FROM raw.shop_paid_orders`); got != "1:10.00,3:30.00" {
		t.Errorf("shop_paid_orders holds %q", got)
	}
	if got := q(`SELECT string_agg(id || ':' || double_total, ',' ORDER BY id) FROM raw.shop_order_totals`); got != "1:20.00,2:40.00,3:60.00" {
		t.Errorf("shop_order_totals holds %q", got)
	}
	// The cursor is applied around the query: only the changed row is
	// read, and merged by the query table's key.
	s.exec(`UPDATE orders SET total = 50, updated_at = '2024-01-03' WHERE id = 2`)
	s.must(0, "sync", "postgres.shop/order_totals")
	if got := q(`SELECT string_agg(id || ':' || double_total, ',' ORDER BY id) FROM raw.shop_order_totals`); got != "1:20.00,2:100.00,3:60.00" {
		t.Errorf("after an update, shop_order_totals holds %q", got)
	}
	if st := s.statusOf("postgres.shop/order_totals"); st.RowsSynced != 3 {
		t.Errorf("status of order_totals: %+v", st)
	}
	// A changed query reloads the table.
	s.write(cfg("SELECT id, total FROM orders WHERE status <> 'paid'"))
	if out := s.must(2, "plan", "-detailed-exitcode"); !strings.Contains(out, "query changes") {
		t.Errorf("a changed query is not a resync:\n%s", out)
	}
	s.must(0, "apply", "-auto-approve")
	s.must(0, "run", "-once")
	if got := q(`SELECT string_agg(id || ':' || total, ',' ORDER BY id) FROM raw.shop_paid_orders`); got != "2:50.00" {
		t.Errorf("after the query changed, shop_paid_orders holds %q", got)
	}

	// cdc and xmin read a table, not a query.
	s.write(header + shopSource(`
  table "q" {
    sync  = "cdc"
    query = "SELECT 1 AS id"
  }
`))
	code, _, errOut = s.run("validate")
	if code != 1 || !strings.Contains(errOut, "Sync type not available for a query") {
		t.Errorf("validate of a cdc query table: exit %d\n%s", code, errOut)
	}
}
