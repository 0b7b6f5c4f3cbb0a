package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/providers"
)

// readerFixture is a fresh database, a connection to it for setting up,
// and a provider reading from it.
type readerFixture struct {
	t    testing.TB
	url  string
	conn *pgx.Conn
	p    *Provider
}

func newReaderFixture(t testing.TB) *readerFixture {
	t.Helper()
	url := pgtest.NewDB(t)
	p, err := New(inspSource(url, "public"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &readerFixture{t: t, url: url, conn: inspConnect(t, url), p: p}
}

func (f *readerFixture) exec(sql string) { f.t.Helper(); inspExec(f.t, f.conn, sql) }

// table loads what a read of req sees of its table.
func (f *readerFixture) table(req providers.ReadRequest) *tableInfo {
	f.t.Helper()
	info, err := loadTable(context.Background(), f.conn, f.p.normalize(req), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return info
}

// collected gathers the rows emitted by a read, checking each batch's
// shape.
type collected struct {
	schema  *records.Schema
	rows    []map[string]any
	batches int
	nulled  map[string]int
}

func (c *collected) emit(b *records.Batch) error {
	c.batches++
	c.schema = b.Schema
	if c.nulled == nil {
		c.nulled = map[string]int{}
	}
	if len(b.Cols) != len(b.Schema.Columns) {
		return fmt.Errorf("batch of %d columns for %d in the schema", len(b.Cols), len(b.Schema.Columns))
	}
	for j, col := range b.Schema.Columns {
		v := &b.Cols[j]
		if v.Nulled > 0 {
			c.nulled[col.Name] += v.Nulled
		}
		if n := vecLen(v, col.Type); n != b.N || v.Valid != nil && len(v.Valid) != b.N {
			return fmt.Errorf("column %q holds %d values (%d validity flags) in a batch of %d rows", col.Name, n, len(v.Valid), b.N)
		}
	}
	for i := range b.N {
		row := map[string]any{}
		for j, col := range b.Schema.Columns {
			row[col.Name] = recordstest.Value(&b.Cols[j], col.Type, i)
		}
		c.rows = append(c.rows, row)
	}
	return nil
}

func vecLen(v *records.Vec, t records.ParquetType) int {
	switch t.Physical {
	case records.PhysicalBoolean:
		return len(v.Bool)
	case records.PhysicalInt32:
		return len(v.I32)
	case records.PhysicalInt64:
		return len(v.I64)
	case records.PhysicalFloat:
		return len(v.F32)
	case records.PhysicalDouble:
		return len(v.F64)
	case records.PhysicalGroup:
		return len(v.List.Offsets) - 1
	}
	return len(v.Offsets) - 1
}

// sort orders the rows by a column of integers or strings.
func (c *collected) sort(col string) {
	slices.SortStableFunc(c.rows, func(a, b map[string]any) int {
		return strings.Compare(sortKey(a[col]), sortKey(b[col]))
	})
}

func sortKey(v any) string {
	switch x := v.(type) {
	case int32:
		return fmt.Sprintf("%020d", int64(x)+1<<40)
	case int64:
		return fmt.Sprintf("%020d", x+1<<40)
	}
	return fmt.Sprint(v)
}

// ints lists column col of the rows, sorted.
func (c *collected) ints(col string) []int64 {
	var out []int64
	for _, r := range c.rows {
		switch x := r[col].(type) {
		case int32:
			out = append(out, int64(x))
		case int64:
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

func seq(lo, hi int64) []int64 {
	var out []int64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

// name63 is a 63-byte identifier, the longest PostgreSQL keeps.
var name63 = "Long_" + strings.Repeat("x", 57) + "Z"

const snapshotSetup = `
CREATE TABLE "Mixed ""Case"" Tbl" ("Id" int PRIMARY KEY, "Updated At" timestamptz NOT NULL, "Payload" text, extra text);
INSERT INTO "Mixed ""Case"" Tbl" SELECT i, '2024-01-01'::timestamptz + i * interval '1 hour', 'p' || i, 'e' || i FROM generate_series(1, 25) i;
CREATE TABLE "%[1]s" ("%[1]s" bigint, v text);
INSERT INTO "%[1]s" SELECT i, 'v' FROM generate_series(1, 3) i;
CREATE VIEW recent AS SELECT "Id" AS id, "Payload" AS payload FROM "Mixed ""Case"" Tbl" WHERE "Id" > 20;
CREATE MATERIALIZED VIEW mv AS SELECT i AS id FROM generate_series(1, 4) i;
CREATE TABLE parted (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO parted SELECT i, CASE WHEN i %% 2 = 0 THEN date '2025-06-01' ELSE date '2026-06-01' END, 'v' FROM generate_series(1, 10) i;
CREATE TABLE inh (id int PRIMARY KEY);
CREATE TABLE inh_child () INHERITS (inh);
INSERT INTO inh VALUES (1), (2);
INSERT INTO inh_child VALUES (3);
CREATE TABLE empty (id int);
CREATE TABLE nocols ();
INSERT INTO nocols DEFAULT VALUES;
CREATE SCHEMA "Other Schema";
CREATE TABLE "Other Schema".t (id int);
INSERT INTO "Other Schema".t VALUES (42);
`

func TestReadSnapshot(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(fmt.Sprintf(snapshotSetup, name63))
	mixed := `Mixed "Case" Tbl`
	cases := []struct {
		name string
		req  providers.ReadRequest
		// cols and key of the schema; idCol names the column listed in ids.
		cols, key []string
		idCol     string
		ids       []int64
		batches   int
	}{
		{"all columns", providers.ReadRequest{Table: mixed, BatchRows: 10},
			[]string{"Id", "Updated At", "Payload", "extra"}, []string{"Id"}, "Id", seq(1, 25), 3},
		{"selected columns keep key and cursor", providers.ReadRequest{Table: mixed, Columns: []string{"extra"}, Cursor: "Updated At"},
			[]string{"Id", "Updated At", "extra"}, []string{"Id"}, "Id", seq(1, 25), 1},
		{"configured key", providers.ReadRequest{Table: mixed, Columns: []string{"Payload"}, PrimaryKey: []string{"Payload"}},
			[]string{"Payload"}, []string{"Payload"}, "", nil, 1},
		{"63-byte names", providers.ReadRequest{Table: name63, BatchRows: 1},
			[]string{name63, "v"}, []string{}, name63, seq(1, 3), 3},
		{"view", providers.ReadRequest{Table: "recent"},
			[]string{"id", "payload"}, []string{}, "id", seq(21, 25), 1},
		{"materialized view", providers.ReadRequest{Table: "mv"},
			[]string{"id"}, []string{}, "id", seq(1, 4), 1},
		{"partitioned through the parent", providers.ReadRequest{Table: "parted", BatchRows: 4},
			[]string{"id", "at", "v"}, []string{"id", "at"}, "id", seq(1, 10), 3},
		{"inheritance parent without children", providers.ReadRequest{Table: "inh"},
			[]string{"id"}, []string{"id"}, "id", seq(1, 2), 1},
		{"empty", providers.ReadRequest{Table: "empty"},
			[]string{"id"}, []string{}, "id", nil, 0},
		{"other schema", providers.ReadRequest{Schema: "Other Schema", Table: "t"},
			[]string{"id"}, []string{}, "id", []int64{42}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := &collected{}
			pos, err := f.p.ReadSnapshot(context.Background(), c.req, got.emit)
			if err != nil {
				t.Fatal(err)
			}
			schema, err := f.p.Schema(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			var cols []string
			for _, col := range schema.Columns {
				cols = append(cols, col.Name)
			}
			if d := cmp.Diff(c.cols, cols); d != "" {
				t.Errorf("columns (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.key, schema.PrimaryKey); d != "" {
				t.Errorf("key (-want +got):\n%s", d)
			}
			if got.batches > 0 && !cmp.Equal(schema, got.schema) {
				t.Errorf("batches carry schema %+v, Schema returns %+v", got.schema, schema)
			}
			if c.idCol != "" {
				if d := cmp.Diff(c.ids, got.ints(c.idCol)); d != "" {
					t.Errorf("rows (-want +got):\n%s", d)
				}
			}
			if got.batches != c.batches {
				t.Errorf("%d batches, want %d", got.batches, c.batches)
			}
			if pos.Xmin == 0 {
				t.Errorf("position %+v has no xmin", pos)
			}
		})
	}

	t.Run("schema details", func(t *testing.T) {
		schema, err := f.p.Schema(context.Background(), providers.ReadRequest{Table: mixed, Columns: []string{"Payload"}})
		if err != nil {
			t.Fatal(err)
		}
		want := &records.Schema{
			Columns: []records.Column{
				{Name: "Id", Type: codec.ParquetInt32, SourceType: "integer"},
				{Name: "Payload", Type: codec.ParquetString, SourceType: "text", Nullable: true},
			},
			PrimaryKey: []string{"Id"},
		}
		if d := cmp.Diff(want, schema); d != "" {
			t.Errorf("schema (-want +got):\n%s", d)
		}
	})

	t.Run("table without columns", func(t *testing.T) {
		got := &collected{}
		if _, err := f.p.ReadSnapshot(context.Background(), providers.ReadRequest{Table: "nocols"}, got.emit); err != nil {
			t.Fatal(err)
		}
		if len(got.rows) != 1 {
			t.Errorf("read %d rows, want 1", len(got.rows))
		}
	})

	t.Run("cursor position", func(t *testing.T) {
		f.exec(`UPDATE "Mixed ""Case"" Tbl" SET "Updated At" = '2030-01-01 00:00:00+00' WHERE "Id" IN (3, 7)`)
		pos, err := f.p.ReadSnapshot(context.Background(), providers.ReadRequest{Table: mixed, Cursor: "Updated At"}, (&collected{}).emit)
		if err != nil {
			t.Fatal(err)
		}
		if pos.Cursor != "2030-01-01 00:00:00+00" || len(pos.BoundaryKeys) != 2 {
			t.Errorf("position %+v, want cursor 2030-01-01 00:00:00+00 and 2 boundary keys", pos)
		}
		// An incremental read from there reads nothing new.
		got := &collected{}
		next, err := f.p.ReadIncremental(context.Background(), providers.ReadRequest{Table: mixed, Cursor: "Updated At", From: pos}, got.emit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.rows) != 0 || !cmp.Equal(next, pos, cmpSortedKeys) {
			t.Errorf("incremental read after the snapshot read %d rows, position %+v; want none, %+v", len(got.rows), next, pos)
		}
	})
}

func TestReadSnapshotErrors(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE t (id int, "Name" text)`)
	cases := []struct {
		name string
		req  providers.ReadRequest
		want string
	}{
		{"no table", providers.ReadRequest{Table: "T"}, `table public.T does not exist`},
		{"no schema", providers.ReadRequest{Schema: "nope", Table: "t"}, `table nope.t does not exist`},
		{"no column", providers.ReadRequest{Table: "t", Columns: []string{"name", "id", "x"}}, `table public.t has no column "name", "x"`},
		{"no key column", providers.ReadRequest{Table: "t", PrimaryKey: []string{"ID"}}, `has no column "ID"`},
		{"no cursor column", providers.ReadRequest{Table: "t", Cursor: "at"}, `has no column "at"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.p.ReadSnapshot(context.Background(), c.req, (&collected{}).emit)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got error %v, want %q", err, c.want)
			}
		})
	}
	t.Run("emit error", func(t *testing.T) {
		f.exec(`INSERT INTO t SELECT i, 'x' FROM generate_series(1, 10) i`)
		stop := fmt.Errorf("stop")
		for _, parallel := range []int{1, 3} {
			_, err := f.p.readSnapshot(context.Background(), providers.ReadRequest{Table: "t", BatchRows: 2, Parallel: parallel},
				func(*records.Batch) error { return stop }, snapshotTuning{minParallelBytes: 1, minChunkBytes: 1})
			if err == nil || !strings.Contains(err.Error(), "stop") {
				t.Errorf("parallel %d: got error %v, want the emit error", parallel, err)
			}
		}
	})
}

// smallTuning splits tables of a few pages.
var smallTuning = snapshotTuning{minParallelBytes: 64 << 10, minChunkBytes: 32 << 10}

// serialEmit fails when emit is called from two goroutines at once.
func serialEmit(c *collected) func(*records.Batch) error {
	var inflight atomic.Int32
	return func(b *records.Batch) error {
		if inflight.Add(1) != 1 {
			return fmt.Errorf("emit called concurrently")
		}
		defer inflight.Add(-1)
		time.Sleep(time.Millisecond) // gives another caller the chance to overlap
		return c.emit(b)
	}
}

func TestReadSnapshotParallel(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE big (id int PRIMARY KEY, pad text) WITH (fillfactor = 100);
	INSERT INTO big SELECT i, repeat('x', 40) FROM generate_series(1, 20000) i;
	CREATE TABLE pbig (id int, part int, pad text) PARTITION BY LIST (part);
	CREATE TABLE pbig_0 PARTITION OF pbig FOR VALUES IN (0);
	CREATE TABLE pbig_1 PARTITION OF pbig FOR VALUES IN (1);
	CREATE TABLE pbig_2 PARTITION OF pbig FOR VALUES IN (2);
	INSERT INTO pbig SELECT i, i % 3, repeat('x', 40) FROM generate_series(1, 12000) i;
	ANALYZE`)

	cases := []struct {
		table    string
		parallel int
		n        int64
	}{
		{"big", 3, 20000},
		{"big", 2, 20000},
		{"pbig", 2, 12000},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%d", c.table, c.parallel), func(t *testing.T) {
			req := f.p.normalize(providers.ReadRequest{Table: c.table, Parallel: c.parallel, BatchRows: 500})
			// The table is split, or the test proves nothing.
			rt, err := f.p.beginRead(context.Background(), req, true)
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := rt.planChunks(context.Background(), smallTuning, c.parallel)
			rt.close()
			if err != nil {
				t.Fatal(err)
			}
			if len(chunks) < 3 {
				t.Fatalf("%s split into %d chunks", c.table, len(chunks))
			}

			got := &collected{}
			pos, err := f.p.readSnapshot(context.Background(), req, serialEmit(got), smallTuning)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(seq(1, c.n), got.ints("id")); d != "" {
				t.Errorf("rows (-want +got):\n%s", d)
			}
			if pos.Xmin == 0 {
				t.Errorf("position %+v has no xmin", pos)
			}
		})
	}
}

// TestReadSnapshotConsistent reads a table in parallel while transfers
// between its rows move row versions to other pages (other ctid ranges):
// the read must see every row exactly once, with the balances of one
// moment.
func TestReadSnapshotConsistent(t *testing.T) {
	const rows, balance = 20000, 100
	f := newReaderFixture(t)
	f.exec(fmt.Sprintf(`CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, pad text) WITH (fillfactor = 100);
	INSERT INTO accounts SELECT i, %d, repeat('x', 40) FROM generate_series(1, %d) i`, balance, rows))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writer := inspConnect(t, f.url)
	var commits atomic.Int64
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			// From a row near the start to one near the end and back:
			// the new versions go where there is room, elsewhere.
			a, b := 1+i%500, rows-i%500
			_, err := writer.Exec(ctx, `UPDATE accounts SET balance = balance + CASE WHEN id = $1 THEN -7 ELSE 7 END WHERE id IN ($1, $2)`, a, b)
			if err != nil {
				if ctx.Err() == nil {
					writeErr = err
				}
				return
			}
			commits.Add(1)
		}
	}()

	got := &collected{}
	emit := serialEmit(got)
	first := true
	read := func(b *records.Batch) error {
		if first {
			// Let the writer move rows while the read is under way.
			first = false
			start := commits.Load()
			for commits.Load() < start+100 {
				time.Sleep(time.Millisecond)
			}
		}
		return emit(b)
	}
	_, err := f.p.readSnapshot(ctx, providers.ReadRequest{Table: "accounts", Parallel: 3, BatchRows: 1000}, read, smallTuning)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	if d := cmp.Diff(seq(1, rows), got.ints("id")); d != "" {
		t.Errorf("rows (-want +got):\n%s", d)
	}
	var sum int64
	for _, r := range got.rows {
		sum += int64(r["balance"].(int32))
	}
	if sum != rows*balance {
		t.Errorf("balances sum to %d, want %d", sum, rows*balance)
	}
	if commits.Load() < 100 {
		t.Errorf("only %d transfers ran during the read", commits.Load())
	}
}

// TestReadSnapshotParallelPrivileges reads a partitioned table in parallel
// as a user who may read it only through the parent, and one whose
// policies filter its rows: the partitions must not be read directly.
func TestReadSnapshotParallelPrivileges(t *testing.T) {
	f := newReaderFixture(t)
	role := "reader_" + strings.ToLower(t.Name())
	f.exec(fmt.Sprintf(`DROP ROLE IF EXISTS %[1]s;
	CREATE ROLE %[1]s LOGIN;
	CREATE TABLE pbig (id int, part int, pad text) PARTITION BY LIST (part);
	CREATE TABLE pbig_0 PARTITION OF pbig FOR VALUES IN (0);
	CREATE TABLE pbig_1 PARTITION OF pbig FOR VALUES IN (1);
	INSERT INTO pbig SELECT i, i %% 2, repeat('x', 40) FROM generate_series(1, 6000) i;
	GRANT SELECT ON pbig TO %[1]s;
	CREATE TABLE policed (id int, part int, pad text) PARTITION BY LIST (part);
	CREATE TABLE policed_0 PARTITION OF policed FOR VALUES IN (0);
	CREATE TABLE policed_1 PARTITION OF policed FOR VALUES IN (1);
	INSERT INTO policed SELECT i, i %% 2, repeat('x', 40) FROM generate_series(1, 6000) i;
	GRANT SELECT ON policed, policed_0, policed_1 TO %[1]s;
	ALTER TABLE policed ENABLE ROW LEVEL SECURITY;
	CREATE POLICY small ON policed FOR SELECT USING (id <= 100)`, role))
	t.Cleanup(func() {
		c := inspConnect(t, f.url)
		inspExec(t, c, fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role))
	})
	p, err := New(inspSource(asUser(t, f.url, role), "public"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cases := []struct {
		table string
		n     int64
	}{
		{"pbig", 6000},
		{"policed", 100},
	}
	for _, c := range cases {
		t.Run(c.table, func(t *testing.T) {
			got := &collected{}
			req := providers.ReadRequest{Table: c.table, Parallel: 2, BatchRows: 500}
			if _, err := p.readSnapshot(context.Background(), req, serialEmit(got), snapshotTuning{minParallelBytes: 1, minChunkBytes: 1}); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(seq(1, c.n), got.ints("id")); d != "" {
				t.Errorf("rows (-want +got):\n%s", d)
			}
		})
	}
}
