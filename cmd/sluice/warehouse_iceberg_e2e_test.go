package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	iceberggo "github.com/apache/iceberg-go"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	"github.com/sluice-dev/sluice/warehouse"
)

// icebergLake reads what sluice wrote into an iceberg warehouse on a
// local directory with the default catalog (SQLite beside the state).
type icebergLake struct {
	t        *testing.T
	dir      string // the warehouse directory
	catalog  string // the SQLite catalog file
	sluiceNS string
}

func newIcebergLake(t *testing.T, s *shop) *icebergLake {
	return &icebergLake{t: t, dir: filepath.Join(s.dir, "lake"), catalog: filepath.Join(s.dir, ".sluice", "iceberg-catalog.db"), sluiceNS: "raw"}
}

// rows reads a table with iceberg-go (not through sluice's warehouse
// package): each row as the values of cols joined by ":", sorted.
func (l *icebergLake) rows(name string, cols ...string) []string {
	l.t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+l.catalog+"?mode=ro")
	if err != nil {
		l.t.Fatal(err)
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("sluice", db, sqlcat.SQLite, iceberggo.Properties{"warehouse": l.dir})
	if err != nil {
		l.t.Fatal(err)
	}
	tbl, err := cat.LoadTable(ctx, table.Identifier{l.sluiceNS, name})
	if err != nil {
		l.t.Fatalf("loading %s.%s from the catalog: %v", l.sluiceNS, name, err)
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	defer at.Release()
	tr := array.NewTableReader(at, 1024)
	defer tr.Release()
	var out []string
	for tr.Next() {
		rec := tr.RecordBatch()
		idx := make([]int, len(cols))
		for i, c := range cols {
			f := rec.Schema().FieldIndices(c)
			if len(f) != 1 {
				l.t.Fatalf("table %s has no column %q: %s", name, c, rec.Schema())
			}
			idx[i] = f[0]
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			vals := make([]string, len(cols))
			for i, c := range idx {
				vals[i] = rec.Column(c).ValueStr(r)
			}
			out = append(out, strings.Join(vals, ":"))
		}
	}
	sort.Strings(out)
	return out
}

// version is a table's current metadata file and snapshot, as the
// catalog has them.
func (l *icebergLake) version(name string) warehouse.TableVersion {
	l.t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+l.catalog+"?mode=ro")
	if err != nil {
		l.t.Fatal(err)
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("sluice", db, sqlcat.SQLite, iceberggo.Properties{"warehouse": l.dir})
	if err != nil {
		l.t.Fatal(err)
	}
	tbl, err := cat.LoadTable(ctx, table.Identifier{l.sluiceNS, name})
	if err != nil {
		l.t.Fatal(err)
	}
	return warehouse.TableVersion{MetadataLocation: tbl.MetadataLocation(), SnapshotID: tbl.CurrentSnapshot().SnapshotID}
}

func statusOf(t *testing.T, out string) map[string]tableStatusJSON {
	t.Helper()
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -json: %v\n%s", err, out)
	}
	m := map[string]tableStatusJSON{}
	for _, ts := range st.Tables {
		m[ts.Address] = ts
	}
	return m
}

const icebergBlock = `
warehouse {
  backend   = "iceberg"
  path      = "lake"
  namespace = "raw"
  retention = "1h"
}
`

// TestRunIntoIcebergWarehouse: validate, plan, apply, run -once of a
// full_refresh and an append table into an iceberg warehouse on a local
// directory, read back with iceberg-go; status -json names each table's
// metadata file and snapshot.
func TestRunIntoIcebergWarehouse(t *testing.T) {
	s := newShop(t)
	s.write(shopHeader + icebergBlock + shopSource(`
  table "Audit Log" {
    sync = "full_refresh"
  }
  table "events" {
    sync              = "append"
    incremental_field = "id"
  }`))
	s.exec(`INSERT INTO "Audit Log" VALUES (1, 'hello'), (2, 'world')`)
	s.exec(`INSERT INTO events VALUES (1, 'signup', now()), (2, 'login', now())`)
	s.must(0, "validate")
	out := s.must(2, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "3 to create") {
		t.Errorf("plan:\n%s", out)
	}
	s.must(0, "apply", "-auto-approve")
	s.runEnv()
	s.must(0, "run", "-once")

	lake := newIcebergLake(t, s)
	if diff := strings.Join(lake.rows("shop_audit_log", "id", "msg"), ","); diff != "1:hello,2:world" {
		t.Errorf("audit log = %s", diff)
	}
	if got := strings.Join(lake.rows("shop_events", "id", "kind"), ","); got != "1:signup,2:login" {
		t.Errorf("events = %s", got)
	}

	// The next run replaces the one and appends to the other.
	s.exec(`DELETE FROM "Audit Log" WHERE id = 1; INSERT INTO "Audit Log" VALUES (3, 'again')`)
	s.exec(`INSERT INTO events VALUES (3, 'logout', now())`)
	s.must(0, "sync", "postgres.shop/Audit Log", "postgres.shop/events")
	if got := strings.Join(lake.rows("shop_audit_log", "id", "msg"), ","); got != "2:world,3:again" {
		t.Errorf("audit log after the second sync = %s", got)
	}
	if got := strings.Join(lake.rows("shop_events", "id", "kind"), ","); got != "1:signup,2:login,3:logout" {
		t.Errorf("events after the append = %s", got)
	}

	st := statusOf(t, s.must(0, "status", "-json"))
	for addr, name := range map[string]string{"postgres.shop/Audit Log": "shop_audit_log", "postgres.shop/events": "shop_events"} {
		ts := st[addr]
		if ts.State != "completed" {
			t.Errorf("%s: state %q, error %q", addr, ts.State, ts.LastError)
		}
		got := warehouse.TableVersion{MetadataLocation: ts.MetadataLocation, SnapshotID: ts.SnapshotID}
		if got.MetadataLocation == "" || got.SnapshotID == 0 {
			t.Errorf("%s: status -json shows no version: %+v", addr, got)
		}
		if want := lake.version(name); got != want {
			t.Errorf("%s: status -json shows version %+v, the catalog %+v", addr, got, want)
		}
	}
	// plan after apply has nothing to do, and checks the warehouse.
	s.must(0, "plan", "-detailed-exitcode")
}

// TestPlanChecksIcebergWarehouse: plan reports an iceberg warehouse it
// cannot open on the warehouse block.
func TestPlanChecksIcebergWarehouse(t *testing.T) {
	s := newShop(t)
	// A catalog under a regular file: no directory can be made for it,
	// even by root.
	blocked := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.write(shopHeader + `
warehouse {
  backend = "iceberg"
  path    = "lake"
  catalog {
    url = "sqlite://` + blocked + `/catalog.db"
  }
}
` + shopSource(`
  table "Audit Log" {
    sync = "full_refresh"
  }`))
	code, _, errOut := s.run("plan")
	if code != 1 || !strings.Contains(errOut, "Cannot write to the warehouse") || !strings.Contains(errOut, "main.hcl:10") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestRunIncrementalAndCDCIntoIceberg: incremental and cdc tables into
// an iceberg warehouse (merge-on-read).
func TestRunIncrementalAndCDCIntoIceberg(t *testing.T) {
	s := newShop(t)
	lake := newIcebergLake(t, s)
	s.write(shopHeader + icebergBlock + shopSource(`
  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "customers" {
    sync       = "cdc"
    cdc_output = "both"
  }`))
	s.exec(`INSERT INTO orders (id, status, total, updated_at) VALUES (1, 'new', 10.50, now() - interval '1 minute'), (2, 'paid', 3, now() - interval '1 minute')`)
	s.exec(`INSERT INTO customers VALUES (1, 'a@example.com'), (2, 'b@example.com')`)
	s.must(0, "apply", "-auto-approve")
	s.runEnv()
	s.must(0, "run", "-once")
	if got := strings.Join(lake.rows("shop_orders", "id", "status"), ","); got != "1:new,2:paid" {
		t.Errorf("orders = %s", got)
	}
	if got := strings.Join(lake.rows("shop_customers", "id", "email"), ","); got != "1:a@example.com,2:b@example.com" {
		t.Errorf("customers after the snapshot = %s", got)
	}

	s.exec(`UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = 1`)
	s.exec(`UPDATE customers SET email = 'a2@example.com' WHERE id = 1; DELETE FROM customers WHERE id = 2`)
	s.must(0, "sync", "postgres.shop/orders")
	s.must(0, "run", "-once")
	if got := strings.Join(lake.rows("shop_orders", "id", "status"), ","); got != "1:shipped,2:paid" {
		t.Errorf("orders after the merge = %s", got)
	}
	if got := strings.Join(lake.rows("shop_customers", "id", "email", "_sluice_deleted"), ","); got != "1:a2@example.com:false,2:b@example.com:true" {
		t.Errorf("customers after the changes = %s", got)
	}
	if got := len(lake.rows("shop_customers_cdc", "id", "_sluice_cdc_op")); got != 4 {
		t.Errorf("history holds %d versions, want 4 (two snapshotted, an update, a delete)", got)
	}
}
