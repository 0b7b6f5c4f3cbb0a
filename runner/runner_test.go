package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/planner"
	_ "github.com/sluice-dev/sluice/providers/postgres"
	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is a source database, an applied configuration and a warehouse.
type env struct {
	t     *testing.T
	ctx   context.Context
	conn  *pgx.Conn
	dir   string
	cfg   *config.Config
	local *state.Local
	now   time.Time
}

const schemaSQL = `
CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int, updated_at timestamptz NOT NULL);
CREATE TABLE log (id bigint PRIMARY KEY, msg text);
CREATE TABLE "Mixed Case" ("Id" bigint PRIMARY KEY, "Value" text);
INSERT INTO items SELECT g, 'item ' || g, g, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 100) g;
INSERT INTO log SELECT g, 'line ' || g FROM generate_series(1, 50) g;
INSERT INTO "Mixed Case" VALUES (1, 'one'), (2, 'two');
`

const configHCL = `
source "postgres" "db" {
  connection_string = %q
  sslmode           = "disable"
  prefix            = "pg"
  frequency         = "1h"

  table "items" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "log" {
    sync              = "append"
    incremental_field = "id"
  }
  table "Mixed Case" {
    sync = "full_refresh"
  }
}
`

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, schemaSQL); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(configHCL, url)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(dir, config.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e := &env{t: t, ctx: ctx, conn: conn, dir: dir, cfg: cfg, local: state.NewLocal(filepath.Join(dir, ".sluice", "state.json")),
		now: time.Now().UTC()}
	e.apply(func(*state.Table) {})
	return e
}

// apply records the configuration in state as apply would, letting edit
// change each table first.
func (e *env) apply(edit func(*state.Table)) {
	e.t.Helper()
	st, err := e.local.Read(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	src := e.cfg.Sources[0]
	ds := planner.DesiredSource(src, nil, []byte("k"))
	if old := st.Sources[src.Address()]; old != nil {
		ds = old
	}
	for _, t := range ds.Tables {
		edit(t)
	}
	st.Sources[src.Address()] = ds
	if err := e.local.Write(e.ctx, st); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) exec(sql string) {
	e.t.Helper()
	if _, err := e.conn.Exec(e.ctx, sql); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// once runs the runner at e.now and returns the failed tables.
func (e *env) once() []string {
	e.t.Helper()
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.now
	r := runner.New(runner.Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: parquet.AsWarehouse(w),
		Concurrency: 2, BatchRows: 7, Now: func() time.Time { return now },
		Retry: runner.RetryPolicy{Attempts: 2, Base: time.Millisecond},
	})
	failed, err := r.Once(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return failed
}

// rows reads a warehouse table back as "key=value" strings of the given
// columns, sorted.
func (e *env) rows(table string, cols ...string) []string {
	e.t.Helper()
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	tb, err := w.Table(table)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	err = tb.Scan(func(b *records.Batch) error {
		for i := 0; i < b.N; i++ {
			var parts []string
			for _, c := range cols {
				v := &b.Cols[b.Schema.Index(c)]
				switch {
				case v.IsNull(i):
					parts = append(parts, "NULL")
				case v.I64 != nil:
					parts = append(parts, strconv.FormatInt(v.I64[i], 10))
				case v.I32 != nil:
					parts = append(parts, strconv.FormatInt(int64(v.I32[i]), 10))
				default:
					parts = append(parts, string(v.Bytes(i)))
				}
			}
			out = append(out, strings.Join(parts, "|"))
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// source reads the same from PostgreSQL.
func (e *env) source(sql string) []string {
	e.t.Helper()
	rows, err := e.conn.Query(e.ctx, sql)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func (e *env) status(addr string) *state.TableStatus {
	st, err := e.local.ReadStatus(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Tables[addr]
}

func TestBatchSyncs(t *testing.T) {
	e := newEnv(t)
	if failed := e.once(); len(failed) > 0 {
		t.Fatalf("failed: %v", failed)
	}
	check := func(when string) {
		t.Helper()
		if diff := cmp.Diff(e.source(`SELECT id || '|' || name || '|' || qty FROM items`), e.rows("pg_items", "id", "name", "qty")); diff != "" {
			t.Errorf("%s: items (-source +warehouse):\n%s", when, diff)
		}
		if diff := cmp.Diff(e.source(`SELECT "Id" || '|' || "Value" FROM "Mixed Case"`), e.rows("pg_mixed_case", "Id", "Value")); diff != "" {
			t.Errorf("%s: Mixed Case (-source +warehouse):\n%s", when, diff)
		}
	}
	check("first sync")
	if got := len(e.rows("pg_log", "id")); got != 50 {
		t.Errorf("log has %d rows, want 50", got)
	}
	ts := e.status("postgres.db/items")
	if ts.State != state.StateCompleted || ts.RowsSynced != 100 || ts.LastFullSyncAt.IsZero() {
		t.Errorf("items status = %+v", ts)
	}

	// Not due again within the hour.
	e.exec(`UPDATE items SET qty = qty + 1000, updated_at = updated_at + interval '1 day' WHERE id <= 10`)
	e.now = e.now.Add(10 * time.Minute)
	e.once()
	if got := e.status("postgres.db/items").LastRunRows; got != 100 {
		t.Errorf("items synced again before it was due (last run read %d rows)", got)
	}

	// Due: incremental merges the changed rows, append adds new ones, the
	// full refresh replaces.
	e.exec(`INSERT INTO items VALUES (101, 'new', 1, '2027-01-01'), (102, 'same time', 2, '2027-01-01')`)
	e.exec(`INSERT INTO log VALUES (51, 'line 51'), (52, 'line 52')`)
	e.exec(`UPDATE "Mixed Case" SET "Value" = 'uno' WHERE "Id" = 1`)
	e.now = e.now.Add(2 * time.Hour)
	if failed := e.once(); len(failed) > 0 {
		t.Fatalf("failed: %v", failed)
	}
	check("second sync")
	if got := e.status("postgres.db/items").LastRunRows; got > 12+1 {
		t.Errorf("incremental read %d rows for 12 changed (plus the boundary)", got)
	}
	if got := len(e.rows("pg_log", "id")); got != 52 {
		t.Errorf("log has %d rows, want 52", got)
	}

	// A tie at the cursor boundary committed after the sync is not lost.
	e.exec(`INSERT INTO items VALUES (103, 'tie', 3, '2027-01-01')`)
	e.now = e.now.Add(2 * time.Hour)
	e.once()
	check("tie at the boundary")

	// Resync reloads in full.
	e.apply(func(t *state.Table) {
		if t.Name == "items" {
			t.ResyncRequestedAt = e.now
		}
	})
	e.exec(`DELETE FROM items WHERE id = 1`)
	e.now = e.now.Add(time.Minute)
	e.once()
	check("resync")
	if got := e.status("postgres.db/items").LastRunRows; got != 102 {
		t.Errorf("resync read %d rows, want all 102", got)
	}
}

func TestFailureIsRecorded(t *testing.T) {
	e := newEnv(t)
	e.exec(`DROP TABLE log`)
	failed := e.once()
	if diff := cmp.Diff([]string{"postgres.db/log"}, failed); diff != "" {
		t.Fatalf("failed (-want +got):\n%s", diff)
	}
	ts := e.status("postgres.db/log")
	if ts.State != state.StateFailed || !strings.Contains(ts.LastError, "log") {
		t.Errorf("log status = %+v", ts)
	}
	if ts := e.status("postgres.db/items"); ts.State != state.StateCompleted {
		t.Errorf("a failure elsewhere stopped items: %+v", ts)
	}
}

func TestDisabledTablesAreNotSynced(t *testing.T) {
	e := newEnv(t)
	e.apply(func(t *state.Table) { t.Enabled = t.Name != "log" })
	e.once()
	if ts := e.status("postgres.db/log"); ts == nil || ts.State != state.StateDisabled {
		t.Errorf("log status = %+v", ts)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "warehouse", "pg_log", "_sluice", "manifest.json")); !os.IsNotExist(err) {
		t.Errorf("a disabled table was written: %v", err)
	}
}
