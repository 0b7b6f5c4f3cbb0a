package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	iceberggo "github.com/apache/iceberg-go"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// renameTables are the shop's tables with renamed columns: a cdc table
// (with its history) whose key and another column are renamed, an
// incremental table whose cursor is renamed, and a full_refresh table.
func renameTables(customers, orders, audit string) string {
	return `
  table "customers" {
    sync       = "cdc"
    cdc_output = "both"
    rename     = ` + customers + `
  }
  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
    rename            = ` + orders + `
  }
  table "Audit Log" {
    sync   = "full_refresh"
    rename = ` + audit + `
  }`
}

// whReader reads a warehouse table with a reader other than sluice: each
// row as the text of cols joined by ":", sorted; and the table's column
// names, sorted.
type whReader struct {
	rows    func(table string, cols ...string) []string
	columns func(table string) []string
}

// TestRenameColumns is the rename attribute end to end, for each kind of
// warehouse: the first sync of full_refresh, incremental (renamed cursor)
// and cdc tables (renamed key; updates and deletes) lands the new names;
// then a changed rename is applied in place on PostgreSQL and Iceberg
// (rows, their _sluice_synced_at and the positions kept) and planned as a
// resync on Parquet.
func TestRenameColumns(t *testing.T) {
	for _, backend := range []string{"parquet", "postgres", "iceberg"} {
		t.Run(backend, func(t *testing.T) { testRenameColumns(t, backend) })
	}
}

func testRenameColumns(t *testing.T, backend string) {
	s := newShop(t)
	var block string
	var r whReader
	var positions func() string
	switch backend {
	case "parquet":
		block = "\nwarehouse {\n  backend = \"parquet\"\n  path    = \"wh\"\n}\n"
		r = duckdbReader(t, filepath.Join(s.dir, "wh"))
		positions = func() string {
			var out []string
			for _, name := range []string{"shop_audit_log", "shop_orders", "shop_customers", "shop_customers_cdc"} {
				b, err := os.ReadFile(filepath.Join(s.dir, "wh", name, "_sluice", "manifest.json"))
				if err != nil {
					t.Fatal(err)
				}
				var m struct{ Position json.RawMessage }
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				out = append(out, name+"="+string(m.Position))
			}
			return strings.Join(out, " ")
		}
	case "postgres":
		whURL := pgtest.NewDB(t)
		block = "\nwarehouse {\n  backend = \"postgres\"\n  url     = \"" + whURL + "\"\n  schema  = \"raw\"\n}\n"
		q := whQuery(t, whURL)
		r = whReader{
			rows: func(tbl string, cols ...string) []string {
				for i, c := range cols {
					cols[i] = `coalesce(` + quoteIdent(c) + `::text, 'NULL')`
				}
				got := q(`SELECT coalesce(string_agg(` + strings.Join(cols, ` || ':' || `) + `, ',' ORDER BY 1), '') FROM raw.` + tbl)
				return sorted(strings.Split(got, ","))
			},
			columns: func(tbl string) []string {
				return sorted(strings.Split(q(`SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = '`+tbl+`'`), ","))
			},
		}
		positions = func() string {
			return q(`SELECT string_agg(table_name || '=' || position::text, ' ' ORDER BY table_name) FROM raw._sluice_positions`)
		}
	case "iceberg":
		block = icebergBlock
		lake := newIcebergLake(t, s)
		r = whReader{rows: lake.rows, columns: func(tbl string) []string { return icebergColumns(t, lake, tbl) }}
		positions = func() string {
			var out []string
			for _, name := range []string{"shop_audit_log", "shop_customers", "shop_customers_cdc", "shop_orders"} {
				out = append(out, name+"="+icebergPosition(t, lake, name))
			}
			return strings.Join(out, " ")
		}
	}
	cfg := func(customers, orders, audit string) string {
		return shopHeader + block + shopSource(renameTables(customers, orders, audit))
	}
	s.write(cfg(`{ email = "customer_email", id = "customer_id" }`, `{ updated_at = "changed_at", status = "state" }`, `{ msg = "message" }`))
	s.must(0, "validate")
	s.exec(`INSERT INTO orders (id, status, total, updated_at) VALUES (1, 'new', 10.50, now() - interval '1 minute'), (2, 'paid', 3, now() - interval '1 minute')`)
	s.exec(`INSERT INTO customers VALUES (1, 'a@example.com'), (2, 'b@example.com')`)
	s.exec(`INSERT INTO "Audit Log" VALUES (1, 'hello')`)
	s.must(0, "apply", "-auto-approve")
	s.runEnv()
	s.must(0, "run", "-once")

	check := func(what string, got []string, want ...string) {
		t.Helper()
		if diff := slices.Compare(want, got); diff != 0 {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
	check("customers columns", r.columns("shop_customers"), "_sluice_deleted", "_sluice_deleted_at", "_sluice_lsn", "_sluice_synced_at", "customer_email", "customer_id")
	check("history columns", r.columns("shop_customers_cdc"), "_sluice_cdc_op", "_sluice_cdc_timestamp", "_sluice_lsn", "_sluice_synced_at", "customer_email", "customer_id", "valid_from", "valid_to")
	check("orders columns", r.columns("shop_orders"), "_sluice_synced_at", "changed_at", "id", "state", "total")
	check("audit columns", r.columns("shop_audit_log"), "_sluice_synced_at", "id", "message")
	check("customers", r.rows("shop_customers", "customer_id", "customer_email"), "1:a@example.com", "2:b@example.com")
	check("orders", r.rows("shop_orders", "id", "state"), "1:new", "2:paid")
	check("audit log", r.rows("shop_audit_log", "id", "message"), "1:hello")

	// Updates and a delete of the cdc table, whose key is renamed (the
	// delete carries the key alone: its other values are looked up by the
	// renamed key); the incremental table's renamed cursor moves on.
	s.exec(`UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = 1`)
	s.exec(`UPDATE customers SET email = 'a2@example.com' WHERE id = 1; DELETE FROM customers WHERE id = 2`)
	s.must(0, "sync", "postgres.shop/orders")
	s.must(0, "run", "-once")
	check("customers after the changes", r.rows("shop_customers", "customer_id", "customer_email", "_sluice_deleted"), "1:a2@example.com:false", "2:b@example.com:true")
	check("history after the changes", r.rows("shop_customers_cdc", "customer_id", "customer_email", "_sluice_cdc_op"), "1:a2@example.com:U", "1:a@example.com:I", "2:b@example.com:D", "2:b@example.com:I")
	check("orders after the merge", r.rows("shop_orders", "id", "state"), "1:shipped", "2:paid")

	// A second plan right after apply is empty.
	s.must(0, "plan", "-detailed-exitcode")

	// The renames change: customers' email gets another name, the key
	// keeps its; orders' status rename is removed; the log's message is
	// renamed again.
	s.write(cfg(`{ email = "contact", id = "customer_id" }`, `{ updated_at = "changed_at" }`, `{ msg = "text" }`))
	plan := s.must(2, "plan", "-detailed-exitcode")
	syncedBefore := map[string][]string{}
	for _, tbl := range []string{"shop_customers", "shop_customers_cdc", "shop_orders", "shop_audit_log"} {
		syncedBefore[tbl] = r.rows(tbl, "_sluice_synced_at")
	}
	posBefore := positions()
	s.must(0, "apply", "-auto-approve")
	s.must(0, "sync", "postgres.shop/orders")
	s.must(0, "run", "-once")
	check("customers columns after the rename", r.columns("shop_customers"), "_sluice_deleted", "_sluice_deleted_at", "_sluice_lsn", "_sluice_synced_at", "contact", "customer_id")
	check("orders columns after the rename", r.columns("shop_orders"), "_sluice_synced_at", "changed_at", "id", "status", "total")
	check("orders after the rename", r.rows("shop_orders", "id", "status"), "1:shipped", "2:paid")
	if backend == "parquet" {
		// The resync snapshots the table again: the consolidated table
		// holds the live rows; the history table keeps the versions it
		// had (under the name they were written with) and closes them,
		// the snapshot's rows its current versions under the new name.
		check("customers after the resync", r.rows("shop_customers", "customer_id", "contact", "_sluice_deleted"), "1:a2@example.com:false")
		check("history columns after the resync", r.columns("shop_customers_cdc"), "_sluice_cdc_op", "_sluice_cdc_timestamp", "_sluice_lsn", "_sluice_synced_at", "contact", "customer_email", "customer_id", "valid_from", "valid_to")
		check("history after the resync", r.rows("shop_customers_cdc", "customer_id", "contact", "customer_email", "_sluice_cdc_op"),
			"1:NULL:a2@example.com:U", "1:NULL:a@example.com:I", "1:a2@example.com:NULL:I", "2:NULL:b@example.com:D", "2:NULL:b@example.com:I")
	} else {
		check("history columns after the rename", r.columns("shop_customers_cdc"), "_sluice_cdc_op", "_sluice_cdc_timestamp", "_sluice_lsn", "_sluice_synced_at", "contact", "customer_id", "valid_from", "valid_to")
		check("customers after the rename", r.rows("shop_customers", "customer_id", "contact", "_sluice_deleted"), "1:a2@example.com:false", "2:b@example.com:true")
		check("history after the rename", r.rows("shop_customers_cdc", "customer_id", "contact", "_sluice_cdc_op"), "1:a2@example.com:U", "1:a@example.com:I", "2:b@example.com:D", "2:b@example.com:I")
	}

	if backend == "parquet" {
		for _, want := range []string{
			`# postgres.shop/customers will be resynced (its data is reloaded)`,
			`warehouse column "customer_email" renamed to "contact" (source column "email"): the Parquet warehouse cannot rename a column in place, so the table is reloaded`,
			`warehouse column "state" renamed to "status" (source column "status")`,
		} {
			if !strings.Contains(plan, want) {
				t.Errorf("plan lacks %q:\n%s", want, plan)
			}
		}
		// Reloaded: every row synced again.
		if got := r.rows("shop_orders", "_sluice_synced_at"); slices.Equal(got, syncedBefore["shop_orders"]) {
			t.Errorf("the orders were not reloaded: _sluice_synced_at %q", got)
		}
		return
	}
	for _, want := range []string{
		`# postgres.shop/customers will be updated in place`,
		`warehouse column "customer_email" renamed to "contact" (source column "email"): renamed in place at the next sync, rows kept`,
		`warehouse column "state" renamed to "status" (source column "status"): renamed in place at the next sync, rows kept`,
		`warehouse column "message" renamed to "text" (source column "msg")`,
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	if !strings.Contains(plan, "0 to resync") {
		t.Errorf("the plan resyncs:\n%s", plan)
	}
	// In place: the rows and the time they were synced are kept, and so
	// are the positions (no table was read again). The full_refresh table
	// reloads at its next run anyway: it is not run here.
	for _, tbl := range []string{"shop_customers", "shop_customers_cdc", "shop_orders"} {
		if got := r.rows(tbl, "_sluice_synced_at"); !slices.Equal(got, syncedBefore[tbl]) {
			t.Errorf("%s: _sluice_synced_at %q after the rename, was %q: rows were rewritten", tbl, got, syncedBefore[tbl])
		}
	}
	if got := positions(); got != posBefore {
		t.Errorf("positions after the rename:\n%s\nbefore:\n%s", got, posBefore)
	}
	s.must(0, "sync", "postgres.shop/Audit Log")
	check("audit log after the rename", r.rows("shop_audit_log", "id", "text"), "1:hello")

	// The stream goes on under the new names: an update and a bare
	// delete looked up by the renamed key.
	s.exec(`INSERT INTO customers VALUES (3, 'c@example.com'); UPDATE customers SET email = 'a3@example.com' WHERE id = 1`)
	s.exec(`DELETE FROM customers WHERE id = 3`)
	s.must(0, "run", "-once")
	check("customers after more changes", r.rows("shop_customers", "customer_id", "contact", "_sluice_deleted"), "1:a3@example.com:false", "2:b@example.com:true", "3:c@example.com:true")
	if n := len(r.rows("shop_customers_cdc", "customer_id")); n != 7 {
		t.Errorf("history holds %d versions, want 7", n)
	}
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

// duckdbReader reads a Parquet warehouse with DuckDB (through Node.js and
// @duckdb/node-api, as warehouse/parquet's DuckDB test does).
func duckdbReader(t *testing.T, root string) whReader {
	modules := os.Getenv("SLUICE_TEST_DUCKDB")
	if modules == "" {
		cache, _ := os.UserCacheDir()
		found, _ := filepath.Glob(filepath.Join(cache, "sluice", "duckdb-*", "node_modules", "@duckdb", "node-api"))
		if len(found) == 0 {
			t.Fatal("DuckDB is not installed: run `bash scripts/ensure-duckdb.sh` or set SLUICE_TEST_DUCKDB to the node_modules directory holding @duckdb/node-api")
		}
		modules = filepath.Dir(filepath.Dir(found[len(found)-1]))
	}
	script := filepath.Join(t.TempDir(), "query.js")
	const js = `
const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const r = await c.runAndReadAll(process.argv[2]);
  console.log(JSON.stringify(r.getRows().map(row => row.map(v => v === null ? 'NULL' : String(v)))));
})().catch(e => { console.error(String(e.message || e)); process.exit(1); });
`
	if err := os.WriteFile(script, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	query := func(q string) [][]string {
		t.Helper()
		cmd := exec.Command("node", script, q)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("DuckDB: %s: %v %s", q, err, stderr)
		}
		var rows [][]string
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatalf("DuckDB printed %q: %v", out, err)
		}
		return rows
	}
	from := func(tbl string) string { return "read_parquet('" + filepath.Join(root, tbl) + "/*.parquet')" }
	return whReader{
		rows: func(tbl string, cols ...string) []string {
			quoted := make([]string, len(cols))
			for i, c := range cols {
				quoted[i] = quoteIdent(c)
			}
			var out []string
			for _, row := range query("SELECT " + strings.Join(quoted, ", ") + " FROM " + from(tbl)) {
				out = append(out, strings.Join(row, ":"))
			}
			return sorted(out)
		},
		columns: func(tbl string) []string {
			var out []string
			for _, row := range query("SELECT column_name FROM (DESCRIBE SELECT * FROM " + from(tbl) + ")") {
				out = append(out, row[0])
			}
			return sorted(out)
		},
	}
}

// icebergTable loads a table of the lake with iceberg-go.
func icebergTable(t *testing.T, l *icebergLake, name string) *table.Table {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+l.catalog+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("sluice", db, sqlcat.SQLite, iceberggo.Properties{"warehouse": l.dir})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := cat.LoadTable(context.Background(), table.Identifier{l.sluiceNS, name})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// icebergColumns are the names of a table's current schema, sorted.
func icebergColumns(t *testing.T, l *icebergLake, name string) []string {
	var out []string
	for _, f := range icebergTable(t, l, name).Schema().Fields() {
		out = append(out, f.Name)
	}
	return sorted(out)
}

// icebergPosition is the sluice position the newest snapshot that has
// one records.
func icebergPosition(t *testing.T, l *icebergLake, name string) string {
	md := icebergTable(t, l, name).Metadata()
	for s := md.CurrentSnapshot(); s != nil; {
		if s.Summary != nil {
			if p, ok := s.Summary.Properties["sluice.position"]; ok {
				return p
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return ""
}
