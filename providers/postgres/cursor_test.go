package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// cmpSortedKeys compares positions whatever the order of their keys.
var cmpSortedKeys = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// syncStep is one step of a cursor sync test: SQL run before the read,
// then what the read must give.
type syncStep struct {
	sql    string
	ids    []int64
	cursor string
	// keys is the number of boundary keys.
	keys int
}

// runSyncs runs the steps, each read starting from the position the
// previous one returned.
func runSyncs(t *testing.T, f *readerFixture, read func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error), req providers.ReadRequest, idCol string, steps []syncStep) records.Position {
	t.Helper()
	for i, s := range steps {
		if s.sql != "" {
			f.exec(s.sql)
		}
		got := &collected{}
		pos, err := read(context.Background(), req, got.emit)
		if err != nil {
			t.Fatalf("sync %d: %v", i+1, err)
		}
		if d := cmp.Diff(s.ids, got.ints(idCol)); d != "" {
			t.Errorf("sync %d: rows (-want +got):\n%s", i+1, d)
		}
		if pos.Cursor != s.cursor || len(pos.BoundaryKeys) != s.keys {
			t.Errorf("sync %d: position %q with %d keys, want %q with %d", i+1, pos.Cursor, len(pos.BoundaryKeys), s.cursor, s.keys)
		}
		req.From = pos
	}
	return req.From
}

func TestReadIncrementalTies(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz, v text);
	INSERT INTO t SELECT i, '2024-01-01 00:00:00+00', 'a' FROM generate_series(1, 10) i;
	INSERT INTO t SELECT i, '2024-01-02 00:00:00+00', 'b' FROM generate_series(11, 15) i;
	INSERT INTO t VALUES (16, NULL, 'no cursor')`)
	req := providers.ReadRequest{Table: "t", Cursor: "updated_at", BatchRows: 4}
	runSyncs(t, f, f.p.ReadIncremental, req, "id", []syncStep{
		{"", seq(1, 15), "2024-01-02 00:00:00+00", 5},
		// Committed later with the value already committed: read, and the
		// rows read before are not read again.
		{`INSERT INTO t SELECT i, '2024-01-02 00:00:00+00', 'late' FROM generate_series(17, 19) i;
		  INSERT INTO t VALUES (20, '2024-01-03 00:00:00+00', 'c'), (21, '2024-01-03 00:00:00+00', 'c')`,
			seq(17, 21), "2024-01-03 00:00:00+00", 2},
		// Nothing new: the boundary rows are skipped, the position stays.
		{"", nil, "2024-01-03 00:00:00+00", 2},
		// An update moves a row forward; a late row joins the boundary;
		// NULL cursors are never read.
		{`UPDATE t SET updated_at = '2024-01-04 00:00:00+00' WHERE id = 1;
		  INSERT INTO t VALUES (22, '2024-01-03 00:00:00+00', 'late'), (23, NULL, 'no cursor')`,
			[]int64{1, 22}, "2024-01-04 00:00:00+00", 1},
		// A boundary row changed without moving its cursor is not read
		// again: cursor syncs see cursor values, not changes.
		{`UPDATE t SET v = 'changed' WHERE id = 1`, nil, "2024-01-04 00:00:00+00", 1},
	})
}

// TestReadIncrementalConcurrent commits changes while a read is under way:
// the read sees its snapshot; the next read gets the changes.
func TestReadIncrementalConcurrent(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
	INSERT INTO t SELECT i, '2024-01-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, 100) i`)
	writer := inspConnect(t, f.url)
	req := providers.ReadRequest{Table: "t", Cursor: "updated_at", BatchRows: 10}
	got := &collected{}
	first := true
	pos, err := f.p.ReadIncremental(context.Background(), req, func(b *records.Batch) error {
		if first {
			first = false
			if _, err := writer.Exec(context.Background(), `UPDATE t SET updated_at = '2025-01-01' WHERE id IN (5, 95);
				INSERT INTO t VALUES (101, '2025-01-01')`); err != nil {
				return err
			}
		}
		return got.emit(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(seq(1, 100), got.ints("id")); d != "" {
		t.Errorf("first read (-want +got):\n%s", d)
	}
	if pos.Cursor != "2024-01-01 01:40:00+00" {
		t.Errorf("first read's cursor %q", pos.Cursor)
	}
	req.From = pos
	runSyncs(t, f, f.p.ReadIncremental, req, "id", []syncStep{
		{"", []int64{5, 95, 101}, "2025-01-01 00:00:00+00", 3},
	})
}

// TestReadIncrementalCursorTypes syncs twice by cursors of each type that
// can be one, checking the committed text form.
func TestReadIncrementalCursorTypes(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE DOMAIN stamp AS timestamptz`)
	cases := []struct {
		typ            string
		v1, v2, v3     string // SQL literals: v1 < v2 < v3
		cursor2, after string // committed text after the first and second sync
		// again is a literal equal to v2 (v2 when empty).
		again string
	}{
		{"timestamptz", "'2024-01-01 00:00:00+00'", "'2024-01-01 00:00:00.5+00'", "'2024-06-01 12:00:00+02'", "2024-01-01 00:00:00.5+00", "2024-06-01 10:00:00+00", ""},
		{"timestamp", "'2024-01-01 00:00:00'", "'2024-01-01 00:00:00.000001'", "'2025-01-01'", "2024-01-01 00:00:00.000001", "2025-01-01 00:00:00", ""},
		{"date", "'2024-01-01'", "'2024-01-02'", "'2024-02-01'", "2024-01-02", "2024-02-01", ""},
		{"integer", "1", "2", "300", "2", "300", ""},
		{"bigint", "-5", "9007199254740993", "9223372036854775807", "9007199254740993", "9223372036854775807", ""},
		{"smallint", "1", "2", "3", "2", "3", ""},
		{"numeric(20,0)", "1", "12345678901234567890", "99999999999999999999", "12345678901234567890", "99999999999999999999", ""},
		// 2.5 and 2.50 are one value, whatever their scales.
		{"numeric", "1.5", "2.50", "3", "2.50", "3", "2.5"},
		{"stamp", "'2024-01-01 00:00:00+00'", "'2024-01-02 00:00:00+00'", "'2024-01-03 00:00:00+00'", "2024-01-02 00:00:00+00", "2024-01-03 00:00:00+00", ""},
		{"text", "'a'", "'b'", "'c'", "b", "c", ""},
	}
	for i, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			table := fmt.Sprintf("c%d", i)
			f.exec(fmt.Sprintf(`CREATE TABLE %[1]s (id int PRIMARY KEY, cur %[2]s);
			INSERT INTO %[1]s VALUES (1, %[3]s), (2, %[4]s), (3, %[4]s)`, table, c.typ, c.v1, c.v2))
			req := providers.ReadRequest{Table: table, Cursor: "cur"}
			again := c.v2
			if c.again != "" {
				again = c.again
			}
			runSyncs(t, f, f.p.ReadIncremental, req, "id", []syncStep{
				{"", seq(1, 3), c.cursor2, 2},
				{fmt.Sprintf(`INSERT INTO %s VALUES (4, %s), (5, %s)`, table, again, c.v3), []int64{4, 5}, c.after, 1},
			})
		})
	}
}

// TestReadIncrementalNames syncs tables whose names need quoting, and a
// partitioned table through its parent.
func TestReadIncrementalNames(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(fmt.Sprintf(`CREATE TABLE "Order ""Items""" ("Item Id" int PRIMARY KEY, "Updated.At" timestamptz);
	INSERT INTO "Order ""Items""" VALUES (1, '2024-01-01'), (2, '2024-01-02');
	CREATE TABLE "%[1]s" ("%[1]s" int PRIMARY KEY, "at" bigint);
	INSERT INTO "%[1]s" VALUES (1, 10), (2, 20);
	CREATE TABLE parted (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
	CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
	CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
	INSERT INTO parted VALUES (1, '2025-03-01'), (2, '2026-03-01'), (3, '2026-03-01')`, name63))
	cases := []struct {
		req   providers.ReadRequest
		idCol string
		steps []syncStep
	}{
		{providers.ReadRequest{Table: `Order "Items"`, Cursor: "Updated.At"}, "Item Id", []syncStep{
			{"", []int64{1, 2}, "2024-01-02 00:00:00+00", 1},
			{`INSERT INTO "Order ""Items""" VALUES (3, '2024-01-02')`, []int64{3}, "2024-01-02 00:00:00+00", 2},
		}},
		{providers.ReadRequest{Table: name63, Cursor: "at"}, name63, []syncStep{
			{"", []int64{1, 2}, "20", 1},
			{fmt.Sprintf(`INSERT INTO "%[1]s" VALUES (3, 30)`, name63), []int64{3}, "30", 1},
		}},
		{providers.ReadRequest{Table: "parted", Cursor: "at"}, "id", []syncStep{
			{"", []int64{1, 2, 3}, "2026-03-01", 2},
			{`INSERT INTO parted VALUES (4, '2026-03-01'), (5, '2025-12-01'), (6, '2026-04-01')`, []int64{4, 6}, "2026-04-01", 1},
		}},
	}
	for _, c := range cases {
		t.Run(c.req.Table, func(t *testing.T) {
			runSyncs(t, f, f.p.ReadIncremental, c.req, c.idCol, c.steps)
		})
	}
}

// TestReadAppendWithoutKey syncs a table without a key: the whole row is
// the key, and identical rows count one by one.
func TestReadAppendWithoutKey(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE events (at int, what text);
	INSERT INTO events VALUES (1, 'x'), (2, 'y'), (2, 'y')`)
	req := providers.ReadRequest{Table: "events", Cursor: "at"}
	runSyncs(t, f, f.p.ReadIncremental, req, "at", []syncStep{
		{"", []int64{1, 2, 2}, "2", 2},
		{`INSERT INTO events VALUES (2, 'y'), (2, 'z')`, []int64{2, 2}, "2", 4},
		{"", nil, "2", 4},
	})
}

func TestReadIncrementalErrors(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, at timestamptz)`)
	cases := []struct {
		name string
		req  providers.ReadRequest
		want string
	}{
		{"no cursor", providers.ReadRequest{Table: "t"}, "no incremental_field"},
		{"bad committed value", providers.ReadRequest{Table: "t", Cursor: "at", From: records.Position{Cursor: "yesterday-ish"}},
			`the committed cursor value "yesterday-ish" is not a timestamp with time zone`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.p.ReadIncremental(context.Background(), c.req, (&collected{}).emit)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got error %v, want %q", err, c.want)
			}
		})
	}
}

func TestReadXmin(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, v text);
	INSERT INTO t SELECT i, 'a' FROM generate_series(1, 10) i;
	CREATE TABLE parted (id int, part int) PARTITION BY LIST (part);
	CREATE TABLE parted_0 PARTITION OF parted FOR VALUES IN (0);
	CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
	INSERT INTO parted SELECT i, i % 2 FROM generate_series(1, 4) i;
	CREATE VIEW v AS SELECT * FROM t`)
	read := func(t *testing.T, req providers.ReadRequest) ([]int64, records.Position) {
		t.Helper()
		got := &collected{}
		pos, err := f.p.ReadXmin(context.Background(), req, got.emit)
		if err != nil {
			t.Fatal(err)
		}
		return got.ints("id"), pos
	}
	check := func(t *testing.T, step string, got, want []int64) {
		t.Helper()
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", step, d)
		}
	}

	t.Run("table", func(t *testing.T) {
		req := providers.ReadRequest{Table: "t"}
		ids, pos := read(t, req)
		check(t, "first sync", ids, seq(1, 10))
		if pos.Xmin == 0 {
			t.Fatalf("position %+v", pos)
		}
		req.From = pos
		f.exec(`UPDATE t SET v = 'b' WHERE id = 3; INSERT INTO t VALUES (11, 'new'); DELETE FROM t WHERE id = 4`)
		ids, pos2 := read(t, req)
		check(t, "after changes", ids, []int64{3, 11})
		if pos2.Xmin <= pos.Xmin {
			t.Errorf("xmin went from %d to %d", pos.Xmin, pos2.Xmin)
		}
		req.From = pos2
		ids, _ = read(t, req)
		check(t, "nothing new", ids, nil)

		// A row written since the last sync and frozen before the next is
		// still read: freezing keeps the original xmin.
		f.exec(`INSERT INTO t VALUES (12, 'frozen')`)
		f.exec(`VACUUM (FREEZE) t`)
		ids, pos3 := read(t, req)
		check(t, "frozen", ids, []int64{12})
		req.From = pos3
		ids, _ = read(t, req)
		check(t, "after frozen", ids, nil)

		// A position the server cannot compare with (ahead of it, as
		// after a restore) reads everything again.
		req.From = records.Position{Xmin: pos3.Xmin + 1<<32}
		ids, _ = read(t, req)
		check(t, "position ahead", ids, append(seq(1, 3), seq(5, 12)...))
	})

	t.Run("partitioned", func(t *testing.T) {
		req := providers.ReadRequest{Table: "parted"}
		ids, pos := read(t, req)
		check(t, "first sync", ids, seq(1, 4))
		req.From = pos
		f.exec(`UPDATE parted SET part = 1 WHERE id = 2; INSERT INTO parted VALUES (5, 0)`)
		ids, _ = read(t, req)
		check(t, "after changes", ids, []int64{2, 5})
	})

	t.Run("view", func(t *testing.T) {
		_, err := f.p.ReadXmin(context.Background(), providers.ReadRequest{Table: "v"}, (&collected{}).emit)
		if err == nil || !strings.Contains(err.Error(), "is a view: xmin syncs read tables") {
			t.Errorf("got error %v", err)
		}
	})
}

// TestBoundaryKeysStable checks that the keys recorded by a snapshot and
// by an incremental read of the same rows are the same.
func TestBoundaryKeysStable(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE t (a int, b text, at date, PRIMARY KEY (a, b));
	INSERT INTO t VALUES (1, 'x', '2024-01-01'), (2, 'y', '2024-01-02'), (3, 'z', '2024-01-02')`)
	req := providers.ReadRequest{Table: "t", Cursor: "at"}
	snap, err := f.p.ReadSnapshot(context.Background(), req, (&collected{}).emit)
	if err != nil {
		t.Fatal(err)
	}
	inc, err := f.p.ReadIncremental(context.Background(), req, (&collected{}).emit)
	if err != nil {
		t.Fatal(err)
	}
	inc.Xmin = snap.Xmin
	if d := cmp.Diff(snap, inc, cmpSortedKeys); d != "" {
		t.Errorf("positions (-snapshot +incremental):\n%s", d)
	}
	if len(snap.BoundaryKeys) != 2 || slices.Contains(snap.BoundaryKeys, "") {
		t.Errorf("boundary keys %q", snap.BoundaryKeys)
	}
}

// TestCursorMark: the mark is where a table without historical load
// starts: a read from it gets only what comes later, ties at the greatest
// value included; an empty table (or one whose cursors are all NULL)
// gives the zero Position, from which everything is read.
func TestCursorMark(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz);
	CREATE TABLE events (at int, what text);
	INSERT INTO t VALUES (1, '2024-01-01 00:00:00+00'), (2, '2024-01-02 00:00:00+00'), (3, '2024-01-02 00:00:00+00'), (4, NULL);
	INSERT INTO events VALUES (NULL, 'no cursor')`)
	ctx := context.Background()
	req := providers.ReadRequest{Table: "t", Cursor: "updated_at"}
	pos, err := f.p.CursorMark(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Cursor != "2024-01-02 00:00:00+00" || len(pos.BoundaryKeys) != 2 {
		t.Errorf("mark = %+v, want the greatest value with 2 keys", pos)
	}
	req.From = pos
	runSyncs(t, f, f.p.ReadIncremental, req, "id", []syncStep{
		{"", nil, "2024-01-02 00:00:00+00", 2},
		{`INSERT INTO t VALUES (5, '2024-01-02 00:00:00+00'), (6, '2024-01-03 00:00:00+00'); UPDATE t SET updated_at = '2024-01-04 00:00:00+00' WHERE id = 1`,
			[]int64{1, 5, 6}, "2024-01-04 00:00:00+00", 1},
	})

	req = providers.ReadRequest{Table: "events", Cursor: "at"}
	pos, err = f.p.CursorMark(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(records.Position{}, pos); d != "" {
		t.Errorf("mark of a table without cursor values (-want +got):\n%s", d)
	}
	req.From = pos
	runSyncs(t, f, f.p.ReadIncremental, req, "at", []syncStep{
		{`INSERT INTO events VALUES (7, 'x')`, []int64{7}, "7", 1},
	})
}
