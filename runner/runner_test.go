package runner_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
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
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w,
		Concurrency: 2, BatchRows: 7, Now: func() time.Time { return now },
		Retry: runner.RetryPolicy{Attempts: 2, Base: time.Millisecond},
	})
	failed, err := r.Once(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return failed
}

// rows reads a warehouse table back as "a|b" strings of the given
// columns, sorted.
func (e *env) rows(table string, cols ...string) []string {
	e.t.Helper()
	return e.typedRows(table, cols)
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

// TestEveryTypeRoundTrips syncs a table with a column of every SPEC §5
// type and compares what the Parquet files hold with what PostgreSQL says,
// NULLs included; values Parquet cannot hold become NULL and are counted.
func TestEveryTypeRoundTrips(t *testing.T) {
	e := newEnv(t)
	e.exec(`
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN money2 AS numeric(10,2);
CREATE TABLE every (
	id bigint PRIMARY KEY, i2 smallint, i4 integer, f4 real, f8 double precision,
	dec numeric(12,2), big numeric(30,5), free numeric, b boolean, t text, vc varchar(5), ch char(3),
	m mood, d date, ts timestamp, tstz timestamptz, tm time, u uuid, j json, jb jsonb, by bytea,
	arr int[], tarr text[], iv interval, ip inet, dm money2);
INSERT INTO every VALUES
	(1, -32768, 2147483647, 1.5, -2.25e100, -1234567890.12, -1234567890123456789012345.12345, 3.14159265358979323846,
	 true, 'ünïcødé ✓', 'abc', 'xy', 'happy', '1969-07-20', '2026-11-21 10:00:00.123456', '2026-11-21 10:00:00.123456+02',
	 '23:59:59.999999', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}', '\xdeadbeef',
	 '{1,NULL,3}', '{"a b","c\"d",NULL}', '1 day 02:03:04', '192.168.0.1/24', 12.5),
	(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL),
	(3, 0, 0, 'NaN', 'Infinity', 'NaN', 'NaN', 'NaN', false, '', '', '', 'sad', 'infinity', '-infinity', 'infinity',
	 '00:00', '00000000-0000-0000-0000-000000000000', '[]', '{}', '', '{}', '{}', '0', '::1', 0);`)
	e.write(`table "every" {
    sync = "full_refresh"
  }`)
	if failed := e.once(); len(failed) > 0 {
		t.Fatalf("failed: %v (%s)", failed, e.status(failed[0]).LastError)
	}
	cols := []string{"id", "i2", "i4", "f4", "f8", "dec", "big", "free", "b", "t", "vc", "ch", "m", "d", "ts", "tstz", "tm", "u", "j", "jb", "by", "arr", "tarr", "iv", "ip", "dm"}
	got := e.typedRows("pg_every", cols)
	// What PostgreSQL says, in the same forms: integers of the Parquet
	// physical values (days, microseconds, unscaled decimals), texts as is.
	want := e.source(`SELECT concat_ws('|', id, coalesce(i2::text, 'NULL'), coalesce(i4::text, 'NULL'),
		coalesce(CASE WHEN f4 = 'NaN' THEN 'NaN' ELSE f4::text END, 'NULL'), coalesce(f8::text, 'NULL'),
		coalesce(CASE WHEN dec = 'NaN' THEN NULL ELSE (dec * 100)::bigint::text END, 'NULL'),
		coalesce(CASE WHEN big = 'NaN' THEN NULL ELSE trunc(big * 100000)::text END, 'NULL'),
		coalesce(free::text, 'NULL'), coalesce(b::text, 'NULL'), coalesce(t, 'NULL'), coalesce(vc, 'NULL'), CASE WHEN ch IS NULL THEN 'NULL' ELSE format('%s', ch) END,
		coalesce(m::text, 'NULL'),
		coalesce(CASE WHEN isfinite(d) THEN (d - '1970-01-01'::date)::text END, 'NULL'),
		coalesce(CASE WHEN isfinite(ts) THEN (extract(epoch FROM ts) * 1000000)::bigint::text END, 'NULL'),
		coalesce(CASE WHEN isfinite(tstz) THEN (extract(epoch FROM tstz) * 1000000)::bigint::text END, 'NULL'),
		coalesce((extract(epoch FROM tm) * 1000000)::bigint::text, 'NULL'),
		coalesce(u::text, 'NULL'), coalesce(j::text, 'NULL'), coalesce(jb::text, 'NULL'), coalesce(encode(by, 'hex'), 'NULL'),
		coalesce('[' || array_to_string(arr, ',', 'NULL') || ']', 'NULL'),
		coalesce('[' || array_to_string(tarr, ',', 'NULL') || ']', 'NULL'),
		coalesce(iv::text, 'NULL'), CASE WHEN ip IS NULL THEN 'NULL' ELSE format('%s', ip) END, coalesce((dm * 100)::bigint::text, 'NULL'))
		FROM every`)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-postgres +parquet):\n%s", diff)
	}
	// NaN in dec and big, infinite date, ts and tstz: five values nulled.
	if w := e.status("postgres.db/every").Warnings; w != 5 {
		t.Errorf("warnings = %d, want 5 (numeric NaN twice, infinite date, timestamp, timestamptz)", w)
	}
}

// write adds a table block to the source and records it as applied.
func (e *env) write(table string) {
	e.t.Helper()
	src, _ := os.ReadFile(filepath.Join(e.dir, "main.hcl"))
	text := strings.Replace(string(src), `  table "items" {`, table+"\n  table \"items\" {", 1)
	if err := os.WriteFile(filepath.Join(e.dir, "main.hcl"), []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	cfg, diags := config.Load(e.dir, config.Options{})
	if diags.HasErrors() {
		e.t.Fatal(diags)
	}
	e.cfg = cfg
	st, err := e.local.Read(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	src2 := cfg.Sources[0]
	rs := st.Sources[src2.Address()]
	for _, t := range src2.Tables {
		if rs.Tables[t.Name] == nil {
			rs.Tables[t.Name] = planner.DesiredTable(src2, t, nil)
		}
	}
	if err := e.local.Write(e.ctx, st); err != nil {
		e.t.Fatal(err)
	}
}

// typedRows renders every row of a warehouse table with one canonical
// string per value: integers for INT32/INT64 (days, microseconds and
// unscaled decimals included), hex for bytes, [a,b] for lists.
func (e *env) typedRows(table string, cols []string) []string {
	e.t.Helper()
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	tb, err := w.OpenTable(table)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	err = tb.Scan(e.t.Context(), func(b *records.Batch) error {
		for i := 0; i < b.N; i++ {
			var parts []string
			for _, c := range cols {
				idx := b.Schema.Index(c)
				if idx < 0 {
					return fmt.Errorf("no column %q", c)
				}
				parts = append(parts, recordstest.Render(&b.Cols[idx], b.Schema.Columns[idx].Type, i))
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

// TestFailureMidCopyKeepsThePreviousVersion: a full refresh that fails
// part-way through the read leaves the committed table as it was.
func TestFailureMidCopyKeepsThePreviousVersion(t *testing.T) {
	e := newEnv(t)
	e.once()
	before := e.rows("pg_mixed_case", "Id", "Value")
	// The table becomes a view that fails at its 500th row, after the
	// first batches were written.
	e.exec(`ALTER TABLE "Mixed Case" RENAME TO mixed_old;
		CREATE VIEW "Mixed Case" AS SELECT g::bigint AS "Id", (1 / (g - 500))::text AS "Value" FROM generate_series(1, 1000) g`)
	e.now = e.now.Add(2 * time.Hour)
	failed := e.once()
	if len(failed) != 1 || failed[0] != "postgres.db/Mixed Case" {
		t.Fatalf("failed = %v", failed)
	}
	if ts := e.status("postgres.db/Mixed Case"); !strings.Contains(ts.LastError, "division by zero") {
		t.Errorf("last error = %q", ts.LastError)
	}
	if diff := cmp.Diff(before, e.rows("pg_mixed_case", "Id", "Value")); diff != "" {
		t.Errorf("the failed sync changed the table (-before +after):\n%s", diff)
	}
}

// TestAppendKeepsHistory: an append table on updated_at gets a new row for
// every version of a source row.
func TestAppendKeepsHistory(t *testing.T) {
	e := newEnv(t)
	e.exec(`CREATE TABLE hist (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
		INSERT INTO hist VALUES (1, 'a', '2026-01-01'), (2, 'b', '2026-01-01')`)
	e.write(`table "hist" {
    sync              = "append"
    incremental_field = "updated_at"
  }`)
	e.once()
	e.exec(`UPDATE hist SET v = 'a2', updated_at = '2026-02-01' WHERE id = 1`)
	e.now = e.now.Add(2 * time.Hour)
	e.once()
	want := []string{"1|a", "1|a2", "2|b"}
	if diff := cmp.Diff(want, e.rows("pg_hist", "id", "v")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestDaemonNoticesAppliedTablesAndServesMetrics runs the daemon, applies
// a new table while it runs, and reads /healthz and /metrics.
func TestDaemonNoticesAppliedTablesAndServesMetrics(t *testing.T) {
	e := newEnv(t)
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		t.Fatal(err)
	}
	r := runner.New(runner.Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w,
		Concurrency: 2, PollInterval: 100 * time.Millisecond,
	})
	srv := httptest.NewServer(r.Metrics().Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor := func(addr string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if ts := e.status(addr); ts != nil && ts.State == state.StateCompleted {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s was not synced by the daemon", addr)
	}
	waitFor("postgres.db/items")
	e.exec(`CREATE TABLE late (id bigint PRIMARY KEY); INSERT INTO late VALUES (1), (2)`)
	e.write(`table "late" {
    sync = "full_refresh"
  }`)
	waitFor("postgres.db/late")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/healthz": `"status":"ok"`,
		"/metrics": `sluice_rows_synced_total{table="postgres.db/items"} 100`,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}
