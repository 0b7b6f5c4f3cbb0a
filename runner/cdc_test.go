package runner

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/apply"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/planner"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/providers/postgres"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/parquet"
	whpg "github.com/sluice-dev/sluice/warehouse/postgres"
)

// cdcEnv is a source database with cdc tables, applied with the real
// planner and apply (which create the publication and the slot), and a
// Parquet warehouse, or a PostgreSQL one (usePostgresWarehouse).
type cdcEnv struct {
	t     *testing.T
	ctx   context.Context
	url   string
	conn  *pgx.Conn
	dir   string
	slot  string
	pub   string
	cfg   *config.Config
	local *state.Local
	extra string // more attributes of the cdc block
	// pgwh is the PostgreSQL warehouse, when the environment uses one.
	pgwh *whpg.Warehouse
}

// forEachWarehouse runs a test against the Parquet warehouse and against
// the PostgreSQL one.
func forEachWarehouse(t *testing.T, test func(t *testing.T, pgwh bool)) {
	t.Run("parquet", func(t *testing.T) { test(t, false) })
	t.Run("postgres", func(t *testing.T) { test(t, true) })
}

// usePostgresWarehouse makes the environment sync into a PostgreSQL
// warehouse: schema "wh" of another database of the cluster.
func (e *cdcEnv) usePostgresWarehouse() {
	e.t.Helper()
	w, err := whpg.Open(e.ctx, &config.Warehouse{Backend: "postgres", URL: pgtest.NewDB(e.t), Schema: "wh", SSLMode: "disable"}, e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { w.Close() })
	e.pgwh = w
}

// warehouse is the environment's warehouse.
func (e *cdcEnv) warehouse() warehouse.Warehouse {
	e.t.Helper()
	if e.pgwh != nil {
		return e.pgwh
	}
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// scan reads a warehouse table's rows.
func (e *cdcEnv) scan(table string, fn func(*records.Batch) error) error {
	e.t.Helper()
	if e.pgwh != nil {
		tb, err := e.pgwh.Table(e.t.Context(), table)
		if err != nil {
			return err
		}
		return tb.(*whpg.Table).Scan(e.t.Context(), fn)
	}
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		return err
	}
	tb, err := w.OpenTable(table)
	if err != nil {
		return err
	}
	return tb.Scan(e.t.Context(), fn)
}

const cdcConfigHCL = `
source "postgres" "db" {
  connection_string = %q
  sslmode           = "disable"
  prefix            = "pg"

  cdc {
    publication = %q
    slot        = %q
%s
  }

%s
}
`

func newCDCEnv(t *testing.T, setup, tables, cdcExtra string) *cdcEnv {
	t.Helper()
	return newCDCEnvAt(t, pgtest.NewDB(t), setup, tables, cdcExtra)
}

// newCDCEnvAt is newCDCEnv on the database at url.
func newCDCEnvAt(t *testing.T, url, setup, tables, cdcExtra string) *cdcEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &cdcEnv{t: t, ctx: ctx, url: url, conn: conn, dir: dir, slot: "s_" + db, pub: "p_" + db, extra: cdcExtra,
		local: state.NewLocal(filepath.Join(dir, ".sluice", "state.json"))}
	// {pub} in the setup is the source's publication, for self-managed
	// sources whose publication the DBA creates.
	e.exec(strings.ReplaceAll(setup, "{pub}", pgx.Identifier{e.pub}.Sanitize()))
	e.apply(tables)
	return e
}

func (e *cdcEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.conn.Exec(e.ctx, sql, args...); err != nil {
		e.t.Fatalf("%v\n%s", err, sql)
	}
}

// apply writes the configuration with these table blocks and applies it
// as `sluice apply` does: plan against the live source, then execute.
func (e *cdcEnv) apply(tables string) {
	e.t.Helper()
	text := fmt.Sprintf(cdcConfigHCL, e.url, e.pub, e.slot, e.extra, tables)
	if err := os.WriteFile(filepath.Join(e.dir, "main.hcl"), []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	cfg, diags := config.Load(e.dir, config.Options{})
	if diags.HasErrors() {
		e.t.Fatal(diags)
	}
	e.cfg = cfg
	src := cfg.Sources[0]
	prov, err := postgres.New(src)
	if err != nil {
		e.t.Fatal(err)
	}
	defer prov.Close()
	obs, err := prov.Inspect(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := e.local.Read(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := e.local.FingerprintKey(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	observed := map[string]*providers.Observed{src.Address(): obs}
	plan := planner.Make(planner.Input{Config: cfg, State: st, Observed: observed, FingerprintKey: key})
	if plan.HasErrors() {
		e.t.Fatalf("plan: %v", plan.Diagnostics)
	}
	_, err = apply.Execute(e.ctx, plan, apply.Options{
		Config: cfg, State: st, Backend: e.local, FingerprintKey: key,
		Resources: openResources,
	})
	if err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

// openResources opens a source's slot and publication manager, as the
// CLI does for apply and run.
func openResources(ctx context.Context, src *config.Source) (providers.ResourceManager, error) {
	return postgres.OpenResources(ctx, src)
}

// runner returns a runner of the environment with test-sized intervals.
func (e *cdcEnv) runner(edit ...func(*Options)) *Runner {
	e.t.Helper()
	opt := Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: e.warehouse(),
		Concurrency: 2, BatchRows: 1000, PollInterval: 50 * time.Millisecond,
		Retry:            RetryPolicy{Attempts: 2, Base: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		CDCFlushInterval: 50 * time.Millisecond, WALCheckInterval: 50 * time.Millisecond,
		Logger:    hclog.New(&hclog.LoggerOptions{Output: testWriter{e.t}, Level: testLogLevel()}),
		Resources: openResources,
	}
	for _, f := range edit {
		f(&opt)
	}
	return New(opt)
}

// testLogLevel is warn, or SLUICE_TEST_LOG (debug shows every commit).
func testLogLevel() hclog.Level {
	if l := hclog.LevelFromString(os.Getenv("SLUICE_TEST_LOG")); l != hclog.NoLevel {
		return l
	}
	return hclog.Warn
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// once runs `sluice run -once` and returns the tables that failed.
func (e *cdcEnv) once(edit ...func(*Options)) []string {
	e.t.Helper()
	failed, err := e.runner(edit...).Once(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return failed
}

// mustOnce runs once and fails the test if a table failed.
func (e *cdcEnv) mustOnce(edit ...func(*Options)) {
	e.t.Helper()
	if failed := e.once(edit...); len(failed) > 0 {
		e.t.Fatalf("failed: %v: %s", failed, e.status(failed[0]).LastError)
	}
}

func (e *cdcEnv) status(addr string) *state.TableStatus {
	e.t.Helper()
	st, err := e.local.ReadStatus(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Tables[addr] == nil {
		return &state.TableStatus{}
	}
	return st.Tables[addr]
}

func (e *cdcEnv) sourceStatus() *state.SourceStatus {
	e.t.Helper()
	st, err := e.local.ReadStatus(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Sources["postgres.db"] == nil {
		return &state.SourceStatus{}
	}
	return st.Sources["postgres.db"]
}

// rows reads a warehouse table back as "a|b|..." strings of the given
// columns, sorted; where, when set, keeps the rows it accepts.
func (e *cdcEnv) rows(table string, cols []string, where func(get func(string) string) bool) []string {
	e.t.Helper()
	out := []string{}
	err := e.scan(table, func(b *records.Batch) error {
		for i := range b.N {
			get := func(c string) string {
				idx := b.Schema.Index(c)
				if idx < 0 {
					return "<no column " + c + ">"
				}
				return recordstest.Render(&b.Cols[idx], b.Schema.Columns[idx].Type, i)
			}
			if where != nil && !where(get) {
				continue
			}
			var parts []string
			for _, c := range cols {
				parts = append(parts, get(c))
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

func live(get func(string) string) bool { return get(colDeleted) == "false" }

// source runs a query returning one text column, sorted.
func (e *cdcEnv) source(sql string) []string {
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

// manifestLSN is the position committed with a warehouse table.
func (e *cdcEnv) manifestLSN(table string) pglogrepl.LSN {
	e.t.Helper()
	tb, err := e.warehouse().Table(e.t.Context(), table)
	if err != nil {
		e.t.Fatal(err)
	}
	pos, _ := tb.Position()
	if pos.LSN == "" {
		return 0
	}
	lsn, err := pglogrepl.ParseLSN(pos.LSN)
	if err != nil {
		e.t.Fatal(err)
	}
	return lsn
}

// confirmed waits for the slot to be inactive and returns its
// confirmed_flush_lsn.
func (e *cdcEnv) confirmed() pglogrepl.LSN {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var active bool
		var lsn string
		err := e.conn.QueryRow(e.ctx, "SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&active, &lsn)
		if err != nil {
			e.t.Fatalf("reading slot %s: %v", e.slot, err)
		}
		if !active {
			l, err := pglogrepl.ParseLSN(lsn)
			if err != nil {
				e.t.Fatal(err)
			}
			return l
		}
		if time.Now().After(deadline) {
			e.t.Fatal("the slot is still in use")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSlotsIdle waits until no process streams from a slot of the
// database.
func (e *cdcEnv) waitSlotsIdle() {
	e.t.Helper()
	waitFor(e.t, "the slots to be idle", func() bool {
		var n int
		if err := e.conn.QueryRow(e.ctx, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database() AND active").Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		return n == 0
	})
}

func (e *cdcEnv) diff(what string, want, got []string) {
	e.t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		e.t.Errorf("%s (-postgres +warehouse):\n%s", what, d)
	}
}

// versions groups history rows "id|valid_from|lsn|op|..." by id, each
// id's versions in order: by valid_from and LSN, then (one transaction's
// changes of a key) I, U, D.
func versions(rows []string) map[string][]string {
	out := map[string][]string{}
	for _, r := range rows {
		id, rest, _ := strings.Cut(r, "|")
		out[id] = append(out[id], rest)
	}
	rank := map[string]int{"I": 0, "U": 1, "D": 2}
	for _, vs := range out {
		slices.SortStableFunc(vs, func(a, b string) int {
			fa, fb := strings.SplitN(a, "|", 4), strings.SplitN(b, "|", 4)
			if len(fa) < 3 || len(fb) < 3 {
				return strings.Compare(a, b)
			}
			if c := strings.Compare(fa[0], fb[0]); c != 0 {
				return c
			}
			if c := strings.Compare(fa[1], fb[1]); c != 0 {
				return c
			}
			return rank[fa[2]] - rank[fb[2]]
		})
	}
	return out
}

// TestCDCRoundTrip: snapshot, then inserts, updates (twice in one batch),
// deletes, a TRUNCATE, in a table with mixed-case names too; the
// consolidated tables equal the source (deleted rows as tombstones with
// their last values) and the history tables hold every version, closed
// by the next.
func TestCDCRoundTrip(t *testing.T) { forEachWarehouse(t, testCDCRoundTrip) }

func testCDCRoundTrip(t *testing.T, pgwh bool) {
	e := newCDCEnv(t, `
CREATE TABLE t (id int PRIMARY KEY, v text, n int);
INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 10) g;
CREATE TABLE "Mixed Case" ("Id" bigint PRIMARY KEY, "Value" text);
INSERT INTO "Mixed Case" VALUES (1, 'one');`, `
  table "t" {
    sync       = "cdc"
    cdc_output = "both"
  }
  table "Mixed Case" {
    sync = "cdc"
  }`, "")
	if pgwh {
		e.usePostgresWarehouse()
	}
	e.mustOnce()
	srcT := `SELECT id || '|' || v || '|' || n FROM t`
	e.diff("snapshot", e.source(srcT), e.rows("pg_t", []string{"id", "v", "n"}, live))
	e.diff("snapshot of Mixed Case", e.source(`SELECT "Id" || '|' || "Value" FROM "Mixed Case"`), e.rows("pg_mixed_case", []string{"Id", "Value"}, live))
	snapLSN := e.manifestLSN("pg_t")
	if got := e.rows("pg_t", []string{colLSN}, nil); got[0] != strconv.FormatInt(int64(snapLSN), 10) || got[9] != got[0] {
		t.Errorf("snapshot rows' %s = %v, want the consistent point %d", colLSN, got, snapLSN)
	}
	hist := e.rows("pg_t_cdc", []string{"id", colOp, colCDCTime, colValidTo}, nil)
	if len(hist) != 10 || !slices.Contains(hist, "1|I|NULL|NULL") {
		t.Errorf("history after the snapshot: %v", hist)
	}

	e.exec(`INSERT INTO t VALUES (11, 'v11', 11)`)
	e.exec(`UPDATE t SET v = 'x' WHERE id = 1`)
	e.exec(`UPDATE t SET n = 100 WHERE id = 1`)
	e.exec(`DELETE FROM t WHERE id = 2`)
	e.exec(`BEGIN; UPDATE t SET v = 'gone' WHERE id = 3; DELETE FROM t WHERE id = 3; COMMIT`)
	e.exec(`INSERT INTO "Mixed Case" VALUES (2, 'two'); UPDATE "Mixed Case" SET "Value" = 'uno' WHERE "Id" = 1`)
	e.mustOnce()
	e.diff("changes", e.source(srcT), e.rows("pg_t", []string{"id", "v", "n"}, live))
	e.diff("Mixed Case changes", e.source(`SELECT "Id" || '|' || "Value" FROM "Mixed Case"`), e.rows("pg_mixed_case", []string{"Id", "Value"}, live))
	tomb := e.rows("pg_t", []string{"id", "v", "n", colDeleted}, func(get func(string) string) bool {
		return get(colDeleted) == "true" && get(colDeletedAt) != "NULL"
	})
	e.diff("tombstones keep the last values", []string{"2|v2|2|true", "3|gone|3|true"}, tomb)

	// History: every version, each closed when the next began.
	hv := versions(e.rows("pg_t_cdc", []string{"id", colValidFrom, colLSN, colOp, "v", "n", colValidTo, colCDCTime}, nil))
	check := func(id string, want []string) {
		t.Helper()
		got := hv[id]
		var ops []string
		for k, v := range got {
			f := strings.Split(v, "|")
			ops = append(ops, f[2]+" "+f[3]+" "+f[4])
			switch {
			case k+1 < len(got) && f[5] != strings.Split(got[k+1], "|")[0]:
				t.Errorf("key %s version %d closes at %s, the next begins at %s", id, k, f[5], strings.Split(got[k+1], "|")[0])
			case f[2] == "D" && f[5] != f[0]:
				t.Errorf("key %s: the delete's own version is not closed at once: %s", id, v)
			case k+1 == len(got) && f[2] != "D" && f[5] != "NULL":
				t.Errorf("key %s: the last version is closed: %s", id, v)
			case f[2] != "I" && f[6] != f[0]:
				t.Errorf("key %s: valid_from %s is not the commit time %s", id, f[0], f[6])
			}
		}
		if diff := cmp.Diff(want, ops); diff != "" {
			t.Errorf("versions of key %s (-want +got):\n%s", id, diff)
		}
	}
	check("1", []string{"I v1 1", "U x 1", "U x 100"})
	check("2", []string{"I v2 2", "D v2 2"})
	check("3", []string{"I v3 3", "U gone 3", "D gone 3"})
	check("11", []string{"I v11 11"})
	check("4", []string{"I v4 4"})

	// TRUNCATE: the consolidated table is what a snapshot right after it
	// gives (no tombstones); the history closes every current version.
	e.exec(`BEGIN; TRUNCATE t; INSERT INTO t VALUES (50, 'after', 50); COMMIT; UPDATE t SET n = 51 WHERE id = 50`)
	e.mustOnce()
	e.diff("after TRUNCATE", []string{"50|after|51|false"}, e.rows("pg_t", []string{"id", "v", "n", colDeleted}, nil))
	open := e.rows("pg_t_cdc", []string{"id", "n"}, func(get func(string) string) bool { return get(colValidTo) == "NULL" })
	e.diff("current versions after TRUNCATE", []string{"50|51"}, open)

	// Positions: the slot is confirmed up to what the tables committed.
	lsn := e.manifestLSN("pg_t")
	if lsn <= snapLSN {
		t.Errorf("position %s did not move past the snapshot's %s", lsn, snapLSN)
	}
	if c := e.confirmed(); c < lsn {
		t.Errorf("slot confirmed at %s, behind the committed %s", c, lsn)
	}
	if ts := e.status("postgres.db/t"); ts.State != state.StateCompleted || ts.RowsSynced != 1 {
		t.Errorf("status = %+v", ts)
	}
}

// TestCDCSnapshotWithConcurrentWriter: a writer updates, inserts and
// deletes while the first sync snapshots and drains: every change lands
// exactly once (each key's versions count up by one, no gap, no repeat)
// and the consolidated table equals the source.
func TestCDCSnapshotWithConcurrentWriter(t *testing.T) {
	forEachWarehouse(t, testCDCSnapshotWithConcurrentWriter)
}

func testCDCSnapshotWithConcurrentWriter(t *testing.T, pgwh bool) {
	e := newCDCEnv(t, `
CREATE TABLE c (id int PRIMARY KEY, n int NOT NULL, pad text);
INSERT INTO c SELECT g, 0, repeat('x', 100) FROM generate_series(1, 30000) g;`, `
  table "c" {
    sync       = "cdc"
    cdc_output = "both"
  }`, "")
	if pgwh {
		e.usePostgresWarehouse()
	}
	stop := make(chan struct{})
	var writes atomic.Int64
	done := make(chan error, 1)
	go func() { done <- writer(e, "c", stop, &writes, 30000) }()
	for writes.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	before := writes.Load()
	e.mustOnce()
	during := writes.Load() - before
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.mustOnce()
	if during < 20 {
		t.Errorf("only %d writes during the first sync", during)
	}
	e.diff("consolidated", e.source(`SELECT id || '|' || n FROM c`), e.rows("pg_c", []string{"id", "n"}, live))
	checkExactlyOnce(t, e, "pg_c_cdc")
}

// writer changes table tbl (id int PRIMARY KEY, n int) until stop: updates
// that add one to n, inserts of new ids from next, deletes.
func writer(e *cdcEnv, tbl string, stop <-chan struct{}, writes *atomic.Int64, next int) error {
	conn, err := pgx.Connect(context.Background(), e.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(uint64(next), 7))
	name := pgx.Identifier{tbl}.Sanitize()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		var sql string
		var args []any
		switch k := rng.IntN(10); {
		case k < 6:
			sql, args = "UPDATE "+name+" SET n = n + 1 WHERE id = $1", []any{1 + rng.IntN(next)}
		case k < 9:
			next++
			sql, args = "INSERT INTO "+name+" (id, n) VALUES ($1, 0)", []any{next}
		default:
			sql, args = "DELETE FROM "+name+" WHERE id = $1", []any{1 + rng.IntN(next)}
		}
		if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
			return err
		}
		writes.Add(1)
	}
}

// checkExactlyOnce checks a history table of writer's changes: per key,
// one insert at most, and the versions' n count up by one.
func checkExactlyOnce(t *testing.T, e *cdcEnv, table string) {
	t.Helper()
	hv := versions(e.rows(table, []string{"id", colLSN, colOp, "n"}, nil))
	bad := 0
	for id, vs := range hv {
		sort.Slice(vs, func(i, j int) bool {
			a, _ := strconv.ParseInt(strings.Split(vs[i], "|")[0], 10, 64)
			b, _ := strconv.ParseInt(strings.Split(vs[j], "|")[0], 10, 64)
			return a < b
		})
		last := -1
		inserts := 0
		for _, v := range vs {
			f := strings.Split(v, "|")
			n, _ := strconv.Atoi(f[2])
			switch f[1] {
			case "I":
				inserts++
			case "U":
				if last >= 0 && n != last+1 {
					bad++
					if bad < 5 {
						t.Errorf("key %s: n goes from %d to %d: %v", id, last, n, vs)
					}
				}
			}
			last = n
		}
		if inserts > 1 {
			bad++
			t.Errorf("key %s inserted %d times: %v", id, inserts, vs)
		}
	}
	if bad > 0 {
		t.Errorf("%d keys with lost or repeated changes", bad)
	}
}

// bigText is about 100 KB of text PostgreSQL cannot compress much.
const bigText = `(SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 3125) g)`

// TestCDCUnchangedTOAST: a 100 KB value stored out of line is not sent
// when an update leaves it alone; the consolidated and history rows keep
// it (from an earlier change of the same batch, or from the warehouse),
// and so does a delete's tombstone.
func TestCDCUnchangedTOAST(t *testing.T) { forEachWarehouse(t, testCDCUnchangedTOAST) }

func testCDCUnchangedTOAST(t *testing.T, pgwh bool) {
	e := newCDCEnv(t, `
CREATE TABLE doc (id int PRIMARY KEY, body text, n int);
ALTER TABLE doc ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO doc VALUES (1, `+bigText+`, 0), (2, `+bigText+`, 0), (3, 'small', 0);
CREATE TABLE hdoc (id int PRIMARY KEY, body text, n int);
ALTER TABLE hdoc ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO hdoc SELECT * FROM doc;`, `
  table "doc" {
    sync       = "cdc"
    cdc_output = "both"
  }
  table "hdoc" {
    sync       = "cdc"
    cdc_output = "history"
  }`, "")
	if pgwh {
		e.usePostgresWarehouse()
	}
	e.mustOnce()
	srcSQL := `SELECT id || '|' || md5(body) || '|' || length(body) || '|' || n FROM doc`
	md5s := func(table string, where func(func(string) string) bool) []string {
		var out []string
		for _, r := range e.rows(table, []string{"id", "body", "n"}, where) {
			f := strings.Split(r, "|")
			out = append(out, fmt.Sprintf("%s|%x|%d|%s", f[0], md5sum(f[1]), len(f[1]), f[2]))
		}
		sort.Strings(out)
		return out
	}
	e.diff("snapshot", e.source(srcSQL), md5s("pg_doc", live))
	// Two updates of one key in one batch (the second takes the value
	// from the first), then one in a later batch (from the warehouse).
	for _, tbl := range []string{"doc", "hdoc"} {
		e.exec(`UPDATE ` + tbl + ` SET n = 1 WHERE id = 1`)
		e.exec(`UPDATE ` + tbl + ` SET n = 2 WHERE id = 1; UPDATE ` + tbl + ` SET n = 1 WHERE id = 2`)
	}
	e.mustOnce()
	e.exec(`UPDATE doc SET n = 3 WHERE id = 1; UPDATE hdoc SET n = 3 WHERE id = 1`)
	e.mustOnce()
	e.diff("unchanged TOAST values", e.source(srcSQL), md5s("pg_doc", live))
	var want []string
	for _, r := range e.source(`SELECT id || '|' || md5(body) || '|' || length(body) FROM doc WHERE id < 3`) {
		id, rest, _ := strings.Cut(r, "|")
		n := map[string]int{"1": 3, "2": 1}[id]
		for k := 0; k <= n; k++ {
			want = append(want, fmt.Sprintf("%s|%s|%d", id, rest, k))
		}
	}
	sort.Strings(want)
	e.diff("history versions keep the value", want, md5s("pg_doc_cdc", func(get func(string) string) bool { return get("id") != "3" }))
	var hwant []string
	for _, r := range e.source(`SELECT id || '|' || md5(body) || '|' || length(body) FROM hdoc WHERE id < 3`) {
		id, rest, _ := strings.Cut(r, "|")
		n := map[string]int{"1": 3, "2": 1}[id]
		for k := 0; k <= n; k++ {
			hwant = append(hwant, fmt.Sprintf("%s|%s|%d", id, rest, k))
		}
	}
	sort.Strings(hwant)
	e.diff("a history-only table keeps the value", hwant, md5s("pg_hdoc_cdc", func(get func(string) string) bool { return get("id") != "3" }))

	before := e.source(`SELECT id || '|' || md5(body) || '|' || length(body) || '|' || n FROM doc WHERE id = 2`)
	e.exec(`DELETE FROM doc WHERE id = 2`)
	e.mustOnce()
	e.diff("tombstone keeps the value", before, md5s("pg_doc", func(get func(string) string) bool { return get(colDeleted) == "true" }))
}

func md5sum(s string) []byte {
	h := md5.Sum([]byte(s))
	return h[:]
}

// TestCDCKeyUpdate: an update that changes the key leaves a tombstone of
// the old key (consolidated) and closes its history; the new key lives.
func TestCDCKeyUpdate(t *testing.T) { forEachWarehouse(t, testCDCKeyUpdate) }

func testCDCKeyUpdate(t *testing.T, pgwh bool) {
	e := newCDCEnv(t, `
CREATE TABLE k (id int PRIMARY KEY, v text);
INSERT INTO k VALUES (1, 'one'), (2, 'two');`, `
  table "k" {
    sync       = "cdc"
    cdc_output = "both"
  }`, "")
	if pgwh {
		e.usePostgresWarehouse()
	}
	e.mustOnce()
	e.exec(`UPDATE k SET id = 100 WHERE id = 1`)
	e.exec(`UPDATE k SET id = 200, v = 'deux' WHERE id = 2`)
	e.mustOnce()
	want := []string{"1|one|true", "100|one|false", "2|two|true", "200|deux|false"}
	sort.Strings(want)
	e.diff("consolidated", want, e.rows("pg_k", []string{"id", "v", colDeleted}, nil))
	e.diff("current versions", e.source(`SELECT id || '|' || v FROM k`),
		e.rows("pg_k_cdc", []string{"id", "v"}, func(get func(string) string) bool { return get(colValidTo) == "NULL" }))
	e.diff("history", []string{"1|I|one", "1|D|one", "100|U|one", "2|I|two", "2|D|two", "200|U|deux"},
		sortedByID(e.rows("pg_k_cdc", []string{"id", colOp, "v"}, nil)))
}

// sortedByID orders "id|op|..." rows by id, I before D before U within
// one (the order the versions came in, for the tests above).
func sortedByID(rows []string) []string {
	rank := map[string]int{"I": 0, "D": 1, "U": 2}
	slices.SortStableFunc(rows, func(a, b string) int {
		fa, fb := strings.Split(a, "|"), strings.Split(b, "|")
		if fa[0] != fb[0] {
			return strings.Compare(fa[0], fb[0])
		}
		return rank[fa[1]] - rank[fb[1]]
	})
	return rows
}

// TestCDCSchemaChanges: a column added at the source (sync_forward: older
// rows NULL; full_resync: the table is read again), a column dropped
// (NULL from then on), a column whose type changed (read again).
func TestCDCSchemaChanges(t *testing.T) { forEachWarehouse(t, testCDCSchemaChanges) }

func testCDCSchemaChanges(t *testing.T, pgwh bool) {
	e := newCDCEnv(t, `
CREATE TABLE fwd (id int PRIMARY KEY, v text, n int);
CREATE TABLE fullr (id int PRIMARY KEY, v text);
INSERT INTO fwd VALUES (1, 'a', 1), (2, 'b', 2);
INSERT INTO fullr VALUES (1, 'a'), (2, 'b');`, `
  table "fwd" {
    sync = "cdc"
  }
  table "fullr" {
    sync        = "cdc"
    new_columns = "full_resync"
  }`, "")
	if pgwh {
		e.usePostgresWarehouse()
	}
	e.mustOnce()
	e.exec(`ALTER TABLE fwd ADD COLUMN extra text; INSERT INTO fwd VALUES (3, 'c', 3, 'x'); UPDATE fwd SET extra = 'y' WHERE id = 1`)
	e.exec(`ALTER TABLE fullr ADD COLUMN extra text DEFAULT 'd'; INSERT INTO fullr VALUES (3, 'c', 'z')`)
	e.mustOnce()
	e.diff("sync_forward: added column", []string{"1|a|1|y", "2|b|2|NULL", "3|c|3|x"}, e.rows("pg_fwd", []string{"id", "v", "n", "extra"}, live))
	e.diff("full_resync: read again", e.source(`SELECT id || '|' || v || '|' || extra FROM fullr`), e.rows("pg_fullr", []string{"id", "v", "extra"}, live))

	e.exec(`ALTER TABLE fwd DROP COLUMN v; UPDATE fwd SET n = 20 WHERE id = 2; INSERT INTO fwd VALUES (4, 4, 'w')`)
	e.mustOnce()
	e.diff("dropped column", []string{"1|a|1", "2|NULL|20", "3|c|3", "4|NULL|4"}, e.rows("pg_fwd", []string{"id", "v", "n"}, live))

	e.exec(`ALTER TABLE fwd ALTER COLUMN n TYPE bigint; UPDATE fwd SET n = 30 WHERE id = 3`)
	e.mustOnce()
	e.diff("type change: read again", e.source(`SELECT id || '|' || n || '|' || coalesce(extra, 'NULL') FROM fwd`), e.rows("pg_fwd", []string{"id", "n", "extra"}, live))
}

// TestCDCTableAddedLater: a cdc table added while another streams is
// snapshotted under a temporary slot's snapshot, with a writer busy: its
// changes at or before that point are not applied twice, later ones are.
// A resync of one table works the same way.
func TestCDCTableAddedLater(t *testing.T) { forEachWarehouse(t, testCDCTableAddedLater) }

func testCDCTableAddedLater(t *testing.T, pgwh bool) {
	tableA := `
  table "a" {
    sync = "cdc"
  }`
	e := newCDCEnv(t, `
CREATE TABLE a (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO a SELECT g, 0 FROM generate_series(1, 100) g;
CREATE TABLE b (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO b SELECT g, 0 FROM generate_series(1, 20000) g;`, tableA, "")
	if pgwh {
		e.usePostgresWarehouse()
	}
	e.mustOnce()
	e.exec(`UPDATE a SET n = 1 WHERE id <= 10; UPDATE b SET n = 1 WHERE id <= 10`)
	e.apply(tableA + `
  table "b" {
    sync       = "cdc"
    cdc_output = "both"
  }`)
	stop := make(chan struct{})
	var writes atomic.Int64
	done := make(chan error, 1)
	go func() { done <- writer(e, "b", stop, &writes, 20000) }()
	for writes.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	e.exec(`UPDATE a SET n = 2 WHERE id <= 5`)
	e.mustOnce()
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.mustOnce()
	e.diff("a", e.source(`SELECT id || '|' || n FROM a`), e.rows("pg_a", []string{"id", "n"}, live))
	e.diff("b", e.source(`SELECT id || '|' || n FROM b`), e.rows("pg_b", []string{"id", "n"}, live))
	checkExactlyOnce(t, e, "pg_b_cdc")
	var slots int
	if err := e.conn.QueryRow(e.ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 1 {
		t.Errorf("%d slots left, want only the source's", slots)
	}

	// A resync of a: read again, b streams on.
	st, _ := e.local.Read(e.ctx)
	st.Sources["postgres.db"].Tables["a"].ResyncRequestedAt = time.Now().UTC()
	if err := e.local.Write(e.ctx, st); err != nil {
		t.Fatal(err)
	}
	e.exec(`UPDATE a SET n = 3; UPDATE b SET n = n + 1 WHERE id <= 3`)
	e.mustOnce()
	e.diff("a after resync", e.source(`SELECT id || '|' || n FROM a`), e.rows("pg_a", []string{"id", "n"}, live))
	e.diff("b after a's resync", e.source(`SELECT id || '|' || n FROM b`), e.rows("pg_b", []string{"id", "n"}, live))
	if ts := e.status("postgres.db/a"); ts.LastRunRows != 100 {
		t.Errorf("a's resync read %d rows, want 100", ts.LastRunRows)
	}
}

// TestCDCSlotLost: a slot dropped behind sluice's back fails the source
// (resync required); apply recreates it and the next run reads the
// tables again.
func TestCDCSlotLost(t *testing.T) {
	tables := `
  table "t" {
    sync = "cdc"
  }`
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')`, tables, "")
	e.mustOnce()
	e.confirmed()
	e.exec(`SELECT pg_drop_replication_slot($1)`, e.slot)
	e.exec(`INSERT INTO t VALUES (2, 'b')`)
	if failed := e.once(); len(failed) != 1 {
		t.Fatalf("failed = %v", failed)
	}
	if ss := e.sourceStatus(); ss.State != "failed" || !strings.Contains(ss.Message, "resync required") {
		t.Errorf("source status = %+v", ss)
	}
	e.apply(tables)
	e.mustOnce()
	e.diff("after the resync", e.source(`SELECT id || '|' || v FROM t`), e.rows("pg_t", []string{"id", "v"}, live))
	if ss := e.sourceStatus(); ss.State != "healthy" {
		t.Errorf("source status after the resync = %+v", ss)
	}
}

// TestCDCIdleSlotAdvances: the daemon streams; writes to a table no
// publication holds make WAL the slot need not keep: its confirmed
// position follows the server's (DESIGN invariant 8). Changes reach the
// warehouse within moments.
func TestCDCIdleSlotAdvances(t *testing.T) {
	e := newCDCEnv(t, `
CREATE TABLE t (id int PRIMARY KEY, v text);
CREATE TABLE other (id int, pad text);
INSERT INTO t VALUES (1, 'a');`, `
  table "t" {
    sync = "cdc"
  }`, "")
	r := e.runner()
	defer StartRun(t, e.ctx, r)()
	waitFor(t, "the snapshot", func() bool { return len(e.rows("pg_t", []string{"id"}, nil)) == 1 })
	e.exec(`INSERT INTO t VALUES (2, 'b')`)
	waitFor(t, "the insert", func() bool { return len(e.rows("pg_t", []string{"id"}, nil)) == 2 })
	e.exec(`INSERT INTO other SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g`)
	var target string
	if err := e.conn.QueryRow(e.ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	want, _ := pglogrepl.ParseLSN(target)
	waitFor(t, "the slot to pass the unpublished writes", func() bool {
		var lsn string
		if err := e.conn.QueryRow(e.ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		got, _ := pglogrepl.ParseLSN(lsn)
		return got >= want
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCDCWALThresholds: with tiny thresholds, WAL the slot keeps raises a
// warning, then at lag_critical a managed source with auto_drop_slot loses
// its slot and publication (resync required), while a self-managed one is
// only marked failed.
func TestCDCWALThresholds(t *testing.T) {
	for _, managed := range []bool{true, false} {
		t.Run(fmt.Sprintf("managed=%v", managed), func(t *testing.T) {
			extra := `    lag_warning  = "1KiB"
    lag_critical = "4MiB"`
			setup := `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (id int, pad text);`
			if !managed {
				extra += "\n    management = \"self_managed\"\n    auto_drop_slot = false"
			}
			if !managed {
				setup += ` CREATE PUBLICATION {pub} FOR TABLE t;`
			}
			e := newCDCEnv(t, setup, `
  table "t" {
    sync = "cdc"
  }`, extra)
			e.mustOnce()
			e.waitSlotsIdle()
			r := e.runner()
			if err := r.Load(e.ctx); err != nil {
				t.Fatal(err)
			}
			src := e.cfg.Sources[0]
			rs := r.st.Sources["postgres.db"]
			// Committed synchronously, so that the server's WAL write
			// position (what lag is measured from) includes it; the test
			// cluster runs with synchronous_commit = off.
			e.exec(`BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO other SELECT g, repeat('x', 100) FROM generate_series(1, 100) g; COMMIT`)
			r.slots.checkOnce(e.ctx, src, rs)
			if ss := e.sourceStatus(); ss.State != "warning" || ss.SlotLagBytes < 1024 || !strings.Contains(ss.Message, "lag_warning") {
				t.Errorf("over lag_warning: %+v", ss)
			}
			e.exec(`BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO other SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g; COMMIT`)
			r.slots.checkOnce(e.ctx, src, rs)
			ss := e.sourceStatus()
			if ss.State != "failed" || ss.SlotLagBytes < 4<<20 || !strings.Contains(ss.Message, "lag_critical") {
				t.Errorf("over lag_critical: %+v", ss)
			}
			var slots, pubs int
			if err := e.conn.QueryRow(e.ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1),
				(SELECT count(*) FROM pg_publication WHERE pubname = $2)`, e.slot, e.pub).Scan(&slots, &pubs); err != nil {
				t.Fatal(err)
			}
			if managed && (slots != 0 || pubs != 0 || !strings.Contains(strings.ToLower(ss.Message), "resync required")) {
				t.Errorf("managed with auto_drop_slot: %d slots, %d publications left; %q", slots, pubs, ss.Message)
			}
			if !managed && (slots != 1 || pubs != 1) {
				t.Errorf("self_managed: %d slots, %d publications left", slots, pubs)
			}
			if got := metricValue(t, r, "sluice_slot_lag_bytes"); got < 4<<20 {
				t.Errorf("sluice_slot_lag_bytes = %v", got)
			}
		})
	}
}

func metricValue(t *testing.T, r *Runner, name string) float64 {
	t.Helper()
	mfs, err := r.opt.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) > 0 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	return -1
}

const helperEnv = "SLUICE_CDC_HELPER"

// TestCDCKill9 kills the daemon (a subprocess) with SIGKILL at random
// points, ten times, while a writer changes the table; then one more run
// drains what is left: the consolidated table equals the source and the
// history holds every change once.
func TestCDCKill9(t *testing.T) {
	e := newCDCEnv(t, `
CREATE TABLE kk (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO kk SELECT g, 0 FROM generate_series(1, 2000) g;`, `
  table "kk" {
    sync       = "cdc"
    cdc_output = "both"
  }`, "")
	stop := make(chan struct{})
	var writes atomic.Int64
	done := make(chan error, 1)
	go func() { done <- writer(e, "kk", stop, &writes, 2000) }()
	rng := rand.New(rand.NewPCG(11, 12))
	logf, err := os.Create(filepath.Join(e.dir, "helper.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	for i := range 10 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCDCHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"="+e.dir, "PGTEST_URL="+e.url)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("kill %d after %d writes", i+1, writes.Load())
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.waitSlotsIdle() // the killed daemon's walsender has gone
	e.mustOnce()
	e.diff("consolidated after 10 kills", e.source(`SELECT id || '|' || n FROM kk`), e.rows("pg_kk", []string{"id", "n"}, live))
	checkExactlyOnce(t, e, "pg_kk_cdc")
	if t.Failed() || os.Getenv("SLUICE_CDC_HELPER_LOG") != "" {
		log, _ := os.ReadFile(filepath.Join(e.dir, "helper.log"))
		t.Logf("helper log:\n%s", log)
	}
}

// TestCDCHelperProcess is the daemon TestCDCKill9 kills; in a normal test
// run it does nothing.
func TestCDCHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		return
	}
	cfg, diags := config.Load(dir, config.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	local := state.NewLocal(filepath.Join(dir, ".sluice", "state.json"))
	w, err := parquet.Open(filepath.Join(dir, "warehouse"))
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{
		Config: cfg, Backend: local, Status: local, Warehouse: w, Resources: openResources,
		BatchRows: 500, PollInterval: 50 * time.Millisecond,
		Retry:            RetryPolicy{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		CDCFlushInterval: 30 * time.Millisecond, CDCFlushChanges: 200,
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Info}),
	})
	r.Run(context.Background()) // until killed
}

// TestCDCPartialTransaction: a transaction that changes a table's columns
// part-way comes in chunks; the chunk before the change commits on its
// own (its position records how many of the transaction's changes it
// holds), the rest after it.
func TestCDCPartialTransaction(t *testing.T) {
	e := newCDCEnv(t, `
CREATE TABLE p (id int PRIMARY KEY, v text);
INSERT INTO p VALUES (1, 'a');`, `
  table "p" {
    sync       = "cdc"
    cdc_output = "both"
  }`, "")
	e.mustOnce()
	e.exec(`BEGIN;
INSERT INTO p SELECT g, 'before' FROM generate_series(2, 100) g;
UPDATE p SET v = 'a2' WHERE id = 1;
ALTER TABLE p ADD COLUMN x int;
INSERT INTO p SELECT g, 'after', g FROM generate_series(101, 150) g;
UPDATE p SET x = 1 WHERE id <= 2;
COMMIT`)
	e.mustOnce()
	e.diff("consolidated", e.source(`SELECT id || '|' || v || '|' || coalesce(x::text, 'NULL') FROM p`), e.rows("pg_p", []string{"id", "v", "x"}, live))
	e.diff("history: current versions", e.source(`SELECT id || '|' || v || '|' || coalesce(x::text, 'NULL') FROM p`),
		e.rows("pg_p_cdc", []string{"id", "v", "x"}, func(get func(string) string) bool { return get(colValidTo) == "NULL" }))
	if n := len(e.rows("pg_p_cdc", []string{"id"}, nil)); n != 1+99+1+50+2 {
		t.Errorf("history holds %d versions, want %d", n, 1+99+1+50+2)
	}
}

// TestCDCPositions checks the arithmetic of positions: which changes of
// a buffered item a warehouse table holds already, and the position after
// a commit.
func TestCDCPositions(t *testing.T) {
	pc := &postgres.Provider{}
	at := func(lsn pglogrepl.LSN) providers.StreamPosition { return providers.NewStreamPosition(uint64(lsn)) }
	out := func(lsn, partLSN pglogrepl.LSN, partN int64) *cdcOutput {
		o := &cdcOutput{pc: pc}
		if err := o.setPosition(cdcPosition(pc, at(lsn), at(partLSN), partN)); err != nil {
			t.Fatal(err)
		}
		return o
	}
	item := func(lsn pglogrepl.LSN, base int64, rows int, truncate bool) *pendingItem {
		return &pendingItem{lsn: at(lsn), base: base, truncate: truncate, rows: &records.Batch{N: rows}}
	}
	for _, c := range []struct {
		name string
		o    *cdcOutput
		it   *pendingItem
		want int64
	}{
		{"after the position", out(100, 0, 0), item(200, 0, 5, false), 0},
		{"at the position", out(200, 0, 0), item(200, 0, 5, false), 5},
		{"before the position", out(300, 0, 0), item(200, 3, 5, true), 6},
		{"part of a transaction held", out(100, 200, 3), item(200, 0, 5, false), 3},
		{"a later chunk, partly held", out(100, 200, 7), item(200, 5, 5, false), 2},
		{"a later chunk, not held", out(100, 200, 3), item(200, 5, 5, false), 0},
		{"a truncate held", out(100, 200, 1), item(200, 0, 4, true), 1},
		{"another transaction", out(100, 200, 3), item(300, 0, 5, false), 0},
	} {
		if got := skipped(c.o, c.it); got != c.want {
			t.Errorf("%s: skipped = %d, want %d", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		name              string
		o                 *cdcOutput
		through, lsn      pglogrepl.LSN
		n                 int64
		wantLSN, wantPart string
		wantChanges       string
	}{
		{"whole transactions", out(100, 0, 0), 300, 0, 0, "0/12C", "", ""},
		{"part of one", out(100, 0, 0), 250, 300, 4, "0/FA", "0/12C", "4"},
		{"never backwards", out(400, 0, 0), 250, 300, 4, "0/190", "", ""},
		{"more of the same", out(100, 300, 2), 250, 300, 6, "0/FA", "0/12C", "6"},
		{"less of the same stays", out(250, 300, 9), 250, 300, 6, "0/FA", "0/12C", "9"},
	} {
		p := advanced(c.o, at(c.through), at(c.lsn), c.n)
		if p.LSN != c.wantLSN || p.Extra[extraPartialLSN] != c.wantPart || p.Extra[extraPartialChanges] != c.wantChanges || !p.SnapshotDone {
			t.Errorf("%s: position %+v, want LSN %s, partial %s/%s", c.name, p, c.wantLSN, c.wantPart, c.wantChanges)
		}
	}
}

// TestCDCStoredPositions: positions as warehouses hold them today (the
// JSON of records.Position in a manifest or _sluice_positions) still read
// and order through the provider's codec, and are written back byte for
// byte: existing warehouses need no migration.
func TestCDCStoredPositions(t *testing.T) {
	stored := []string{
		`{"lsn":"0/0","snapshot_done":true}`,
		`{"lsn":"16/B374D848","snapshot_done":true}`,
		`{"lsn":"16/B374D848","snapshot_done":true,"extra":{"cdc_partial_changes":"7","cdc_partial_lsn":"16/B3750000"}}`,
		`{"lsn":"16/B374D848","snapshot_done":true,"extra":{"cdc_partial_changes":"9","cdc_partial_lsn":"16/B3750000"}}`,
		`{"lsn":"16/B3750000","snapshot_done":true}`,
		`{"lsn":"A0/0","snapshot_done":true}`,
	}
	outs := make([]*cdcOutput, len(stored))
	for i, s := range stored {
		var pos records.Position
		if err := json.Unmarshal([]byte(s), &pos); err != nil {
			t.Fatal(err)
		}
		outs[i] = &cdcOutput{name: "t", pc: &postgres.Provider{}}
		if err := outs[i].setPosition(pos); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		again, err := json.Marshal(cdcPosition(outs[i].pc, outs[i].lsn, outs[i].partLSN, outs[i].partN))
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != s {
			t.Errorf("read %s, written back as %s", s, again)
		}
	}
	// stored is in order: each position is behind every later one.
	for i := range outs {
		for j := range outs {
			if got := outs[i].behind(outs[j]); got != (i < j) {
				t.Errorf("%s behind %s = %v", stored[i], stored[j], got)
			}
		}
	}
	bad := &cdcOutput{name: "t", pc: &postgres.Provider{}}
	if err := bad.setPosition(records.Position{LSN: "16:B374D848"}); err == nil || !strings.Contains(err.Error(), "warehouse table t") {
		t.Errorf("an unreadable position: error %v, want one naming the table", err)
	}
}

// TestCDCLostWAL: a slot invalidated by max_slot_wal_keep_size
// (wal_status = lost) fails the source, resync required; apply replaces
// the slot and the next run reads the tables again.
func TestCDCLostWAL(t *testing.T) {
	ctx := context.Background()
	c, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"max_slot_wal_keep_size": "1MB", "max_wal_size": "32MB", "min_wal_size": "32MB"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	url, err := c.CreateDatabase(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}
	tables := `
  table "t" {
    sync = "cdc"
  }`
	e := newCDCEnvAt(t, url, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')`, tables, "")
	e.mustOnce()
	e.waitSlotsIdle()
	e.exec(`INSERT INTO t VALUES (2, 'b')`)
	for range 3 {
		e.exec(`CREATE TABLE junk AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 100000) g; DROP TABLE junk`)
		e.exec(`SELECT pg_switch_wal()`)
		e.exec(`CHECKPOINT`)
	}
	var status string
	if err := e.conn.QueryRow(e.ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "lost" {
		t.Fatalf("wal_status = %q, want lost", status)
	}
	if failed := e.once(); len(failed) != 1 {
		t.Fatalf("failed = %v", failed)
	}
	if ss := e.sourceStatus(); ss.State != "failed" || !strings.Contains(strings.ToLower(ss.Message), "resync required") {
		t.Errorf("source status = %+v", ss)
	}
	e.apply(tables)
	e.mustOnce()
	e.diff("after the resync", e.source(`SELECT id || '|' || v FROM t`), e.rows("pg_t", []string{"id", "v"}, live))
}
