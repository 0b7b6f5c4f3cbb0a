package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// batchRows is the source table of the batch_size test: 60,000 rows whose
// cursor values come in groups of 3,000 (so that every 10,000-row commit
// falls inside a group), the ids of a group scattered. big is a view over
// it whose rows come slowly (slow() sleeps 20ms every 100 rows, evaluated
// after the sort), so that the first load takes about 12 seconds and can
// be killed part-way; its key is declared in the configuration.
const batchRows = `
CREATE TABLE big_t (id bigint PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO big_t SELECT i, 'v' || i, '2026-01-01'::timestamptz + ((i * 7919) % 60000 / 3000) * interval '1 minute' FROM generate_series(1, 60000) i;
CREATE INDEX ON big_t (updated_at, id);
CREATE FUNCTION slow(id bigint) RETURNS text VOLATILE LANGUAGE plpgsql AS $$
BEGIN
  IF id % 100 = 0 THEN PERFORM pg_sleep(0.02); END IF;
  RETURN '';
END $$;
CREATE VIEW big AS SELECT id, v || slow(id) AS v, updated_at FROM big_t;
`

// TestBatchSizeResumesAfterKill, into a Parquet and a PostgreSQL
// warehouse: `run -once` of an incremental table with batch_size = 10000
// is killed (kill -9) after its first commits; they stay, and the next
// run -once reads only the rest (and rows changed meanwhile), leaving the
// warehouse equal to the source: every row once, none lost.
func TestBatchSizeResumesAfterKill(t *testing.T) {
	for _, backend := range []string{"parquet", "postgres", "iceberg"} {
		t.Run(backend, func(t *testing.T) {
			s := newShop(t)
			s.exec(batchRows)
			wh := ""
			var whQ func(string) string
			if backend == "postgres" {
				whURL := pgtest.NewDB(t)
				wh = "warehouse {\n  backend = \"postgres\"\n  url     = \"" + whURL + "\"\n  schema  = \"raw\"\n}\n"
				whQ = whQuery(t, whURL)
			}
			lake := newIcebergLake(t, s)
			if backend == "iceberg" {
				wh = "warehouse {\n  backend   = \"iceberg\"\n  path      = \"lake\"\n  namespace = \"raw\"\n}\n"
			}
			s.write(shopHeader + wh + shopSource(`
  table "big" {
    sync              = "incremental"
    incremental_field = "updated_at"
    primary_key       = ["id"]
    batch_size        = 10000
  }`))
			s.runEnv()
			s.must(0, "apply", "-auto-approve")

			// committed reads the rows the warehouse holds now (0 before
			// its first commit).
			committed := func() int64 {
				t.Helper()
				if backend == "postgres" {
					if whQ(`SELECT (to_regclass('raw._sluice_positions') IS NOT NULL)::text`) == "false" {
						return 0
					}
					n, _ := strconv.ParseInt(whQ(`SELECT coalesce((SELECT rows FROM raw._sluice_positions WHERE table_name = 'shop_big'), 0)::text`), 10, 64)
					return n
				}
				if backend == "iceberg" {
					return lake.committedRows("shop_big")
				}
				w, err := parquet.Open(filepath.Join(s.dir, "warehouse"))
				if err != nil {
					return 0
				}
				tb, err := w.OpenTable("shop_big")
				if err != nil {
					return 0
				}
				if _, ok := tb.Position(); !ok {
					return 0
				}
				return int64(tb.Manifest().Rows)
			}

			runner, logPath := startSluice(t, "-chdir="+s.dir, "-no-color", "run", "-once")
			deadline := time.Now().Add(60 * time.Second)
			var before int64
			for before = committed(); before == 0; before = committed() {
				if time.Now().After(deadline) {
					log, _ := os.ReadFile(logPath)
					t.Fatalf("no commit in the warehouse after 60s; the runner's log:\n%s", log)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := runner.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			runner.Wait()
			if after := committed(); after%10000 != 0 || after >= 60000 {
				log, _ := os.ReadFile(logPath)
				t.Fatalf("after the kill the warehouse holds %d rows, want whole batches of 10000 and not all 60000 (first seen %d); the runner's log:\n%s", after, before, log)
			}
			kept := committed()

			// Changes while no runner runs: a row moved past every cursor,
			// a new one.
			s.exec(`UPDATE big_t SET v = 'changed', updated_at = '2026-02-01' WHERE id = 5;
				INSERT INTO big_t VALUES (60001, 'new', '2026-02-01')`)
			out := s.must(0, "run", "-once")
			m := regexp.MustCompile(`postgres\.shop/big\s+completed\s+(\d+) rows\s+\((\d+) read\)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("second run -once:\n%s", out)
			}
			total, _ := strconv.ParseInt(m[1], 10, 64)
			read, _ := strconv.ParseInt(m[2], 10, 64)
			if total != 60001 || read > 60000-kept+2 {
				t.Errorf("second run: %d rows, %d read; want 60001 rows and at most %d read (%d were committed before the kill)", total, read, 60000-kept+2, kept)
			}

			// The warehouse equals the source: each id once, with its value.
			got := map[int64]string{}
			dups := 0
			add := func(id int64, v string) {
				if _, ok := got[id]; ok {
					dups++
				}
				got[id] = v
			}
			if backend == "postgres" {
				for _, r := range strings.Split(whQ(`SELECT string_agg(id || ':' || v, ',') FROM raw.shop_big`), ",") {
					id, v, _ := strings.Cut(r, ":")
					n, _ := strconv.ParseInt(id, 10, 64)
					add(n, v)
				}
			} else if backend == "iceberg" {
				for _, r := range lake.rows("shop_big", "id", "v") {
					id, v, _ := strings.Cut(r, ":")
					n, _ := strconv.ParseInt(id, 10, 64)
					add(n, v)
				}
			} else {
				w, err := parquet.Open(filepath.Join(s.dir, "warehouse"))
				if err != nil {
					t.Fatal(err)
				}
				tb, err := w.OpenTable("shop_big")
				if err != nil {
					t.Fatal(err)
				}
				err = tb.Scan(t.Context(), func(b *records.Batch) error {
					id, v := b.Schema.Index("id"), b.Schema.Index("v")
					for r := range b.N {
						add(b.Cols[id].I64[r], string(b.Cols[v].Bytes(r)))
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			want := map[int64]string{5: "changed", 60001: "new"}
			for i := int64(1); i <= 60000; i++ {
				if i != 5 {
					want[i] = fmt.Sprintf("v%d", i)
				}
			}
			if dups > 0 {
				t.Errorf("the warehouse holds %d duplicate rows", dups)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("warehouse (-source +warehouse):\n%s", d)
			}
			// Nothing new: the next sync reads nothing.
			out = s.must(0, "sync", "postgres.shop/big")
			if m := regexp.MustCompile(`postgres\.shop/big\s+completed\s+60001 rows\s+\(0 read\)`).FindString(out); m == "" {
				t.Errorf("a sync with nothing new:\n%s", out)
			}
		})
	}
}

// committedRows is the rows of a table's current snapshot, 0 while it has
// none (or the catalog cannot be read yet).
func (l *icebergLake) committedRows(name string) int64 {
	db, err := sql.Open("sqlite", "file:"+l.catalog+"?mode=ro")
	if err != nil {
		return 0
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("sluice", db, sqlcat.SQLite, iceberggo.Properties{"warehouse": l.dir})
	if err != nil {
		return 0
	}
	tbl, err := cat.LoadTable(context.Background(), table.Identifier{l.sluiceNS, name})
	if err != nil {
		return 0
	}
	snap := tbl.CurrentSnapshot()
	if snap == nil || snap.Summary == nil {
		return 0
	}
	n, _ := strconv.ParseInt(snap.Summary.Properties["total-records"], 10, 64)
	return n
}

// TestBatchSizeSyncTypes: with batch_size = 10000, the 60,000-row first
// load of an incremental, an append and an xmin table into Parquet is
// seven commits (six batches, then the end), and later syncs go on from
// the final position as without batch_size.
func TestBatchSizeSyncTypes(t *testing.T) {
	tests := []struct {
		sync, field, change string
		rows, read          string
	}{
		{"incremental", `incremental_field = "updated_at"`, `UPDATE big_t SET v = 'changed', updated_at = '2026-02-01' WHERE id = 5;
			INSERT INTO big_t VALUES (60001, 'new', '2026-02-01')`, "60001", "2"},
		{"append", `incremental_field = "updated_at"`, `INSERT INTO big_t VALUES (60001, 'new', '2026-02-01'), (60002, 'new', '2026-02-01')`, "60002", "2"},
		{"xmin", "", `UPDATE big_t SET v = 'changed' WHERE id = 5;
			INSERT INTO big_t VALUES (60001, 'new', '2026-02-01')`, "60001", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.sync, func(t *testing.T) {
			s := newShop(t)
			s.exec(batchRows)
			s.write(shopHeader + shopSource(`
  table "big_t" {
    sync       = "`+tt.sync+`"
    `+tt.field+`
    batch_size = 10000
  }`))
			s.runEnv()
			s.must(0, "apply", "-auto-approve")
			out := s.must(0, "run", "-once")
			if !regexp.MustCompile(`postgres\.shop/big_t\s+completed\s+60000 rows\s+\(60000 read\)`).MatchString(out) {
				t.Fatalf("first load:\n%s", out)
			}
			w, err := parquet.Open(filepath.Join(s.dir, "warehouse"))
			if err != nil {
				t.Fatal(err)
			}
			tb, err := w.OpenTable("shop_big_t")
			if err != nil {
				t.Fatal(err)
			}
			if m := tb.Manifest(); m.Version != 7 || m.Rows != 60000 {
				t.Errorf("after the first load: version %d (commits), %d rows; want 7 and 60000", m.Version, m.Rows)
			}
			if pos, _ := tb.Position(); pos.AfterKey != nil {
				t.Errorf("final position %+v continues after a key", pos)
			}
			s.exec(tt.change)
			out = s.must(0, "sync", "postgres.shop/big_t")
			re := regexp.MustCompile(`postgres\.shop/big_t\s+completed\s+(\d+) rows\s+\((\d+) read\)`)
			if m := re.FindStringSubmatch(out); m == nil || m[1] != tt.rows || m[2] != tt.read {
				t.Errorf("second sync: want %s rows, %s read:\n%s", tt.rows, tt.read, out)
			}
		})
	}
}
