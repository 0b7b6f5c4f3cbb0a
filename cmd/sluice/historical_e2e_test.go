package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// historicalTables are the tables of the historical_load tests: a cdc
// table with its history, and an incremental table, both without their
// history.
const historicalTables = `
  table "events" {
    sync            = "cdc"
    cdc_output      = "both"
    historical_load = false
  }
  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
    historical_load   = false
  }`

// TestHistoricalLoadOff: with historical_load = false, the rows at the
// source before apply are not in the warehouse; the rows inserted, updated
// and deleted after are: in the consolidated and history tables of a cdc
// table (an update of a row never loaded inserts it, a delete of one
// leaves a tombstone), and past the cursor's greatest value at apply for
// an incremental table. `sluice resync` starts the tables again without
// their history; `sluice resync -historical` loads it. Into the Parquet
// PostgreSQL and Iceberg (local directory) warehouses.
func TestHistoricalLoadOff(t *testing.T) {
	for _, backend := range []string{"parquet", "postgres", "iceberg"} {
		t.Run(backend, func(t *testing.T) {
			s := newShop(t)
			wh := newHistWarehouse(t, s, backend)
			s.write(shopHeader + wh.block + shopSource(historicalTables))
			s.exec(`INSERT INTO events VALUES (1, 'old', now()), (2, 'old', now()), (3, 'old', now())`)
			s.exec(`INSERT INTO orders (id, status, updated_at) VALUES (1, 'old', '2026-01-01'), (2, 'old', '2026-01-02')`)

			out := s.must(2, "plan", "-detailed-exitcode")
			for _, want := range []string{"historical_load = false: no snapshot", "historical_load = false: apply records the greatest updated_at", "historical_load", "= false"} {
				if !strings.Contains(out, want) {
					t.Errorf("plan lacks %q:\n%s", want, out)
				}
			}
			s.must(0, "apply", "-auto-approve")
			s.must(0, "plan", "-detailed-exitcode")
			s.runEnv()
			// apply recorded where the incremental table starts: the
			// greatest updated_at, and the key of the row holding it.
			st := readStateFile(t, s)
			orders := st.Sources["postgres.shop"].Tables["orders"]
			if orders.HistoricalLoad == nil || *orders.HistoricalLoad || orders.Start == nil ||
				!strings.HasPrefix(orders.Start.Cursor, "2026-01-02") || len(orders.Start.BoundaryKeys) != 1 {
				t.Errorf("orders in state: historical_load %v, start %+v", orders.HistoricalLoad, orders.Start)
			}

			// Changes after apply: a new row; an update and a delete of rows
			// never loaded. An order with the greatest cursor value at apply
			// is not read again; a later one is.
			s.exec(`INSERT INTO events VALUES (4, 'new', now())`)
			s.exec(`UPDATE events SET kind = 'changed' WHERE id = 1`)
			s.exec(`DELETE FROM events WHERE id = 2`)
			s.exec(`INSERT INTO orders (id, status, updated_at) VALUES (3, 'new', '2026-02-01')`)
			s.exec(`UPDATE orders SET status = 'changed', updated_at = '2026-02-02' WHERE id = 1`)
			s.must(0, "sync")

			check := func(when string, table string, want []string) {
				t.Helper()
				if diff := cmp.Diff(want, wh.rows(table)); diff != "" {
					t.Errorf("%s: %s (-want +got):\n%s", when, table, diff)
				}
			}
			check("after the first run", "shop_events", []string{"1:changed:false", "2::true", "4:new:false"})
			check("after the first run", "shop_events_cdc", []string{"1:U:changed:current", "2:D::closed", "4:I:new:current"})
			check("after the first run", "shop_orders", []string{"1:changed", "3:new"})

			// An empty source table at apply gives an empty warehouse table
			// with its schema.
			s.exec(`UPDATE events SET kind = 'again' WHERE id = 4`)
			s.must(0, "sync")
			check("after a second change", "shop_events", []string{"1:changed:false", "2::true", "4:again:false"})
			check("after a second change", "shop_events_cdc", []string{"1:U:changed:current", "2:D::closed", "4:I:new:closed", "4:U:again:current"})

			// resync without -historical: a fresh start, empty, then what
			// changes after it.
			out = s.must(0, "resync", "postgres.shop/events")
			if !strings.Contains(out, "without its history") {
				t.Errorf("resync says:\n%s", out)
			}
			s.must(0, "resync", "postgres.shop/orders")
			s.must(0, "sync")
			check("after resync", "shop_events", nil)
			check("after resync", "shop_events_cdc", []string{"1:U:changed:closed", "2:D::closed", "4:I:new:closed", "4:U:again:closed"})
			check("after resync", "shop_orders", nil)
			s.exec(`INSERT INTO events VALUES (5, 'fresh', now())`)
			s.exec(`INSERT INTO orders (id, status, updated_at) VALUES (4, 'fresh', '2026-03-01')`)
			s.must(0, "sync")
			check("after resync and a change", "shop_events", []string{"5:fresh:false"})
			check("after resync and a change", "shop_orders", []string{"4:fresh"})

			// resync -historical: the whole table.
			out = s.must(0, "resync", "-historical", "postgres.shop/events")
			if !strings.Contains(out, "reloaded in full") {
				t.Errorf("resync -historical says:\n%s", out)
			}
			s.must(0, "resync", "-historical", "postgres.shop/orders")
			s.must(0, "sync")
			check("after resync -historical", "shop_events", []string{"1:changed:false", "3:old:false", "4:again:false", "5:fresh:false"})
			check("after resync -historical", "shop_orders", []string{"1:changed", "2:old", "3:new", "4:fresh"})
			// Then changes as usual, and a later plain resync is again
			// without history.
			s.exec(`DELETE FROM events WHERE id = 3`)
			s.must(0, "sync")
			check("after resync -historical and a delete", "shop_events", []string{"1:changed:false", "3:old:true", "4:again:false", "5:fresh:false"})
			s.must(0, "resync", "postgres.shop/events")
			s.must(0, "sync")
			check("after a second plain resync", "shop_events", nil)
		})
	}
}

// TestHistoricalLoadOffEmptyTable: a table empty at apply starts from
// nothing (everything later is read); a cdc table whose source is not
// streaming yet gets the changes since apply; a table added to a
// streaming source with historical_load = false is created empty.
func TestHistoricalLoadOffEmptyTable(t *testing.T) {
	s := newShop(t)
	wh := newHistWarehouse(t, s, "parquet")
	s.write(shopHeader + wh.block + shopSource(historicalTables))
	s.must(0, "apply", "-auto-approve")
	s.runEnv()
	s.exec(`INSERT INTO orders (id, status, updated_at) VALUES (1, 'a', '2020-01-01')`)
	s.exec(`INSERT INTO events VALUES (1, 'a', now())`)
	s.must(0, "sync")
	if diff := cmp.Diff([]string{"1:a"}, wh.rows("shop_orders")); diff != "" {
		t.Errorf("orders (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1:a:false"}, wh.rows("shop_events")); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// A cdc table added to the streaming source, without history.
	s.exec(`INSERT INTO customers VALUES (1, 'old@example.com')`)
	s.write(shopHeader + wh.block + shopSource(historicalTables+`
  table "customers" {
    sync            = "cdc"
    historical_load = false
  }`))
	s.must(0, "apply", "-auto-approve")
	s.must(0, "sync")
	if got := wh.rows("shop_customers"); got != nil {
		t.Errorf("customers before any change = %q, want an empty table", got)
	}
	s.exec(`INSERT INTO customers VALUES (2, 'new@example.com')`)
	s.must(0, "sync")
	if diff := cmp.Diff([]string{"2:new@example.com:false"}, wh.rows("shop_customers")); diff != "" {
		t.Errorf("customers (-want +got):\n%s", diff)
	}
}

// TestHistoricalLoadOffBesideSnapshot: on a source's first run, a cdc
// table without historical load beside one snapshotted keeps the changes
// committed since apply (the snapshot is read under a temporary slot, so
// that the slot apply created is not created again), and the other table
// is whole.
func TestHistoricalLoadOffBesideSnapshot(t *testing.T) {
	s := newShop(t)
	wh := newHistWarehouse(t, s, "parquet")
	s.write(shopHeader + wh.block + shopSource(`
  table "events" {
    sync            = "cdc"
    historical_load = false
  }
  table "customers" {
    sync = "cdc"
  }`))
	s.exec(`INSERT INTO events VALUES (1, 'old', now())`)
	s.exec(`INSERT INTO customers VALUES (1, 'old@example.com')`)
	s.must(0, "apply", "-auto-approve")
	s.runEnv()
	s.exec(`INSERT INTO events VALUES (2, 'after apply', now())`)
	s.exec(`INSERT INTO customers VALUES (2, 'after@example.com')`)
	s.must(0, "sync")
	if diff := cmp.Diff([]string{"2:after apply:false"}, wh.rows("shop_events")); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1:old@example.com:false", "2:after@example.com:false"}, wh.rows("shop_customers")); diff != "" {
		t.Errorf("customers (-want +got):\n%s", diff)
	}
	s.exec(`UPDATE events SET kind = 'later' WHERE id = 1; UPDATE customers SET email = 'later@example.com' WHERE id = 1`)
	s.must(0, "sync")
	if diff := cmp.Diff([]string{"1:later:false", "2:after apply:false"}, wh.rows("shop_events")); diff != "" {
		t.Errorf("events after an update (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1:later@example.com:false", "2:after@example.com:false"}, wh.rows("shop_customers")); diff != "" {
		t.Errorf("customers after an update (-want +got):\n%s", diff)
	}
}

func readStateFile(t *testing.T, s *shop) *state.State {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, ".sluice", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st state.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// histWarehouse is a warehouse of the historical_load tests and how to
// read its tables back.
type histWarehouse struct {
	block string
	rows  func(table string) []string
}

func newHistWarehouse(t *testing.T, s *shop, backend string) histWarehouse {
	switch backend {
	case "iceberg":
		lake := newIcebergLake(t, s)
		return histWarehouse{
			block: icebergBlock,
			rows: func(table string) []string {
				t.Helper()
				cols := histCols(table)
				var out []string
				for _, row := range lake.rows(table, cols...) {
					vals := strings.SplitN(row, ":", len(cols))
					out = append(out, histRow(table, func(col string) (string, bool) {
						i := slices.Index(cols, col)
						if i < 0 || vals[i] == "(null)" {
							return "", false
						}
						return vals[i], true
					}))
				}
				slices.Sort(out)
				return out
			},
		}
	case "postgres":
		whURL := pgtest.NewDB(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, whURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return histWarehouse{
			block: "\nwarehouse {\n  backend = \"postgres\"\n  url     = \"" + whURL + "\"\n  schema  = \"raw\"\n}\n",
			rows: func(table string) []string {
				t.Helper()
				var exists bool
				if err := conn.QueryRow(ctx, `SELECT to_regclass('raw.'||$1) IS NOT NULL`, table).Scan(&exists); err != nil || !exists {
					t.Fatalf("warehouse table raw.%s: exists %v, %v", table, exists, err)
				}
				rows, err := conn.Query(ctx, `SELECT to_jsonb(t) FROM raw.`+pgx.Identifier{table}.Sanitize()+` t`)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for rows.Next() {
					var m map[string]any
					if err := rows.Scan(&m); err != nil {
						t.Fatal(err)
					}
					out = append(out, histRow(table, func(col string) (string, bool) {
						v, ok := m[col]
						if !ok || v == nil {
							return "", false
						}
						if f, isNum := v.(float64); isNum {
							return fmt.Sprint(int64(f)), true
						}
						return fmt.Sprint(v), true
					}))
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				slices.Sort(out)
				return out
			},
		}
	}
	root := filepath.Join(s.dir, "warehouse")
	return histWarehouse{
		block: "",
		rows: func(table string) []string {
			t.Helper()
			w, err := parquet.Open(root)
			if err != nil {
				t.Fatal(err)
			}
			tb, err := w.OpenTable(table)
			if err != nil {
				t.Fatalf("warehouse table %s: %v", table, err)
			}
			if tb.Manifest() == nil || tb.Manifest().Version == 0 || len(tb.Manifest().Schema.Columns) == 0 {
				t.Fatalf("warehouse table %s has no schema", table)
			}
			var out []string
			err = tb.Scan(context.Background(), func(b *records.Batch) error {
				for r := range b.N {
					out = append(out, histRow(table, func(col string) (string, bool) {
						i := b.Schema.Index(col)
						if i < 0 || b.Cols[i].IsNull(r) {
							return "", false
						}
						v := &b.Cols[i]
						switch {
						case v.I64 != nil:
							return fmt.Sprint(v.I64[r]), true
						case v.Bool != nil:
							return fmt.Sprint(v.Bool[r]), true
						}
						return string(v.Bytes(r)), true
					}))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(out)
			return out
		},
	}
}

// histCols are the columns histRow reads, valid_to (which holds ':') last.
func histCols(table string) []string {
	switch {
	case strings.HasSuffix(table, "_cdc"):
		return []string{"id", "_sluice_cdc_op", "kind", "valid_to"}
	case strings.HasSuffix(table, "orders"):
		return []string{"id", "status"}
	case strings.HasSuffix(table, "customers"):
		return []string{"id", "email", "_sluice_deleted"}
	}
	return []string{"id", "kind", "_sluice_deleted"}
}

// histRow renders a row of the tests' warehouse tables: id:status for
// orders, id:kind:deleted for events (id:email:deleted for customers),
// id:op:kind:current|closed for the history table.
func histRow(table string, col func(string) (string, bool)) string {
	v := func(name string) string { s, _ := col(name); return s }
	switch {
	case strings.HasSuffix(table, "_cdc"):
		state := "current"
		if _, closed := col("valid_to"); closed {
			state = "closed"
		}
		return v("id") + ":" + v("_sluice_cdc_op") + ":" + v("kind") + ":" + state
	case strings.HasSuffix(table, "orders"):
		return v("id") + ":" + v("status")
	case strings.HasSuffix(table, "customers"):
		return v("id") + ":" + v("email") + ":" + v("_sluice_deleted")
	}
	return v("id") + ":" + v("kind") + ":" + v("_sluice_deleted")
}
