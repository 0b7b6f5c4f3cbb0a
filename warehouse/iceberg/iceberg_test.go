package iceberg

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

func pt(phys records.Physical, logical records.Logical, name string) records.ParquetType {
	return records.ParquetType{Physical: phys, Logical: logical, Name: name}
}

var (
	tText  = pt(records.PhysicalByteArray, records.LogicalString, "STRING")
	tInt64 = pt(records.PhysicalInt64, records.LogicalNone, "INT64")
)

// typesSchema has a column of every SPEC §5 Parquet type.
var typesSchema = func() *records.Schema {
	dec := func(phys records.Physical, p, s, length int) records.ParquetType {
		return records.ParquetType{Physical: phys, Logical: records.LogicalDecimal, Precision: p, Scale: s, Length: length, Name: "DECIMAL"}
	}
	ts := pt(records.PhysicalInt64, records.LogicalTimestamp, "TIMESTAMP(MICROS)")
	tstz := ts
	tstz.AdjustedToUTC = true
	text := tText
	i64 := tInt64
	return &records.Schema{Columns: []records.Column{
		{Name: "id", Type: tInt64, SourceType: "bigint"},
		{Name: "i16", Type: pt(records.PhysicalInt32, records.LogicalInt16, "INT16"), SourceType: "smallint", Nullable: true},
		{Name: "i32", Type: pt(records.PhysicalInt32, records.LogicalNone, "INT32"), SourceType: "integer", Nullable: true},
		{Name: "f32", Type: pt(records.PhysicalFloat, records.LogicalNone, "FLOAT"), SourceType: "real", Nullable: true},
		{Name: "f64", Type: pt(records.PhysicalDouble, records.LogicalNone, "DOUBLE"), SourceType: "double precision", Nullable: true},
		{Name: "ok", Type: pt(records.PhysicalBoolean, records.LogicalNone, "BOOLEAN"), SourceType: "boolean", Nullable: true},
		{Name: "d9", Type: dec(records.PhysicalInt32, 9, 2, 0), SourceType: "numeric(9,2)", Nullable: true},
		{Name: "d18", Type: dec(records.PhysicalInt64, 18, 4, 0), SourceType: "numeric(18,4)", Nullable: true},
		{Name: "d38", Type: dec(records.PhysicalFixedLenByteArray, 38, 10, 16), SourceType: "numeric(38,10)", Nullable: true},
		{Name: "day", Type: pt(records.PhysicalInt32, records.LogicalDate, "DATE"), SourceType: "date", Nullable: true},
		{Name: "tod", Type: pt(records.PhysicalInt64, records.LogicalTime, "TIME(MICROS)"), SourceType: "time", Nullable: true},
		{Name: "ts", Type: ts, SourceType: "timestamp", Nullable: true},
		{Name: "tstz", Type: tstz, SourceType: "timestamptz", Nullable: true},
		{Name: "name", Type: tText, SourceType: "text", Nullable: true},
		{Name: "doc", Type: pt(records.PhysicalByteArray, records.LogicalJSON, "JSON"), SourceType: "jsonb", Nullable: true},
		{Name: "ref", Type: tText, SourceType: "uuid", Nullable: true},
		{Name: "raw", Type: pt(records.PhysicalByteArray, records.LogicalNone, "BYTE_ARRAY"), SourceType: "bytea", Nullable: true},
		{Name: "tags", Type: records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &text, Name: "LIST<STRING>"}, SourceType: "text[]", Nullable: true},
		{Name: "nums", Type: records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &i64, Name: "LIST<INT64>"}, SourceType: "bigint[]", Nullable: true},
	}, PrimaryKey: []string{"id"}}
}()

// typesBatch is three rows of typesSchema: extreme values, ordinary ones
// with negatives, and all NULL.
func typesBatch() *records.Batch {
	b := records.NewBatch(typesSchema, 3)
	c := b.Cols
	// row 0
	c[0].AppendInt64(9007199254740993) // beyond a float64's exact integers
	c[1].AppendInt32(-32768)
	c[2].AppendInt32(2147483647)
	c[3].AppendFloat32(1.5)
	c[4].AppendFloat64(-2.25e300)
	c[5].AppendBool(true)
	c[6].AppendInt32(-123456789) // -1234567.89
	c[7].AppendInt64(123456789012345678)
	c[8].AppendBytes(d38(false))          // 10^37+1 unscaled: 1000000000000000000000000000.0000000001
	c[9].AppendInt32(19000)               // 2022-01-08
	c[10].AppendInt64(86399999999)        // 23:59:59.999999
	c[11].AppendInt64(1700000000123456)   // 2023-11-14T22:13:20.123456
	c[12].AppendInt64(-62135596800000000) // 0001-01-01T00:00:00Z
	c[13].AppendString("héllo, \"world\"\n")
	c[14].AppendString(`{"a": [1, 2]}`)
	c[15].AppendString("7f1e8d3a-1b2c-4d5e-8f90-123456789abc")
	c[16].AppendBytes([]byte{0, 1, 0xfe, 0xff})
	c[17].List.Elem.AppendString("a")
	c[17].List.Elem.AppendNull()
	c[17].List.Elem.AppendString("")
	c[17].EndList()
	c[18].List.Elem.AppendInt64(-1)
	c[18].List.Elem.AppendInt64(1 << 62)
	c[18].EndList()
	// row 1
	c[0].AppendInt64(-1)
	c[1].AppendInt32(7)
	c[2].AppendInt32(-2147483648)
	c[3].AppendFloat32(-0.25)
	c[4].AppendFloat64(0.1)
	c[5].AppendBool(false)
	c[6].AppendInt32(5)         // 0.05
	c[7].AppendInt64(-1)        // -0.0001
	c[8].AppendBytes(d38(true)) // -1 unscaled: -0.0000000001
	c[9].AppendInt32(-1)        // 1969-12-31
	c[10].AppendInt64(0)
	c[11].AppendInt64(-1) // 1969-12-31T23:59:59.999999
	c[12].AppendInt64(0)
	c[13].AppendString("")
	c[14].AppendString(`null`)
	c[15].AppendString("00000000-0000-0000-0000-000000000000")
	c[16].AppendBytes(nil)
	c[17].EndList() // empty list
	c[18].EndList()
	// row 2: all NULL but the key
	c[0].AppendInt64(0)
	for i := 1; i < len(c); i++ {
		c[i].AppendNull()
	}
	b.N = 3
	return b
}

// d38 is a 16-byte big-endian two's complement unscaled decimal: 10^37+1,
// or -1.
func d38(neg bool) []byte {
	if neg {
		return []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	// 10^37 + 1 = 0x0785EE10D5DA46D900F436A000000001
	return []byte{0x07, 0x85, 0xee, 0x10, 0xd5, 0xda, 0x46, 0xd9, 0x00, 0xf4, 0x36, 0xa0, 0x00, 0x00, 0x00, 0x01}
}

func openTest(t *testing.T, dir string) *Warehouse {
	t.Helper()
	w, err := Open(context.Background(), Options{Location: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func openTable(t *testing.T, w *Warehouse, name string) *Table {
	t.Helper()
	tb, err := w.Table(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tb.(*Table)
}

func commit(t *testing.T, tb *Table, mode warehouse.Mode, s *records.Schema, pos records.Position, batches ...*records.Batch) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := tb.Begin(ctx, mode, s, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := tx.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	n, err := tx.Commit(ctx, pos)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// scan reads the table back with iceberg-go: every row as column=value
// strings (Arrow's ValueStr), sorted by the first column.
func scan(t *testing.T, tb *Table) [][]string {
	t.Helper()
	at, err := tb.tbl.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	tr := array.NewTableReader(at, 1000)
	defer tr.Release()
	var rows [][]string
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var row []string
			for c := 0; c < int(rec.NumCols()); c++ {
				name := rec.ColumnName(c)
				if name == SyncedAtColumn {
					continue
				}
				row = append(row, name+"="+rec.Column(c).ValueStr(i))
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func TestTypesRoundTrip(t *testing.T) {
	w := openTest(t, t.TempDir())
	tb := openTable(t, w, "types")
	if _, ok := tb.Position(); ok {
		t.Fatal("a new table says it is committed")
	}
	if n := commit(t, tb, warehouse.Replace, typesSchema, records.Position{Cursor: "c1"}, typesBatch()); n != 3 {
		t.Fatalf("Commit says %d rows, want 3", n)
	}
	want := [][]string{
		{"id=9007199254740993", "i16=-32768", "i32=2147483647", "f32=1.5", "f64=-2.25e+300", "ok=true", "d9=-1234567.89", "d18=12345678901234.5678", "d38=1000000000000000000000000000.0000000001", "day=2022-01-08", "tod=23:59:59.999999", "ts=2023-11-14T22:13:20.123456", "tstz=0001-01-01T00:00:00Z", `name=héllo, "world"` + "\n", `doc={"a": [1, 2]}`, "ref=7f1e8d3a-1b2c-4d5e-8f90-123456789abc", "raw=AAH+/w==", `tags=["a",null,""]`, `nums=[-1,4611686018427387904]`},
		{"id=-1", "i16=7", "i32=-2147483648", "f32=-0.25", "f64=0.1", "ok=false", "d9=0.05", "d18=-0.0001", "d38=-1e-10", "day=1969-12-31", "tod=00:00:00.000000", "ts=1969-12-31T23:59:59.999999", "tstz=1970-01-01T00:00:00Z", "name=", "doc=null", "ref=00000000-0000-0000-0000-000000000000", "raw=", "tags=[]", "nums=[]"},
		{"id=0", "i16=(null)", "i32=(null)", "f32=(null)", "f64=(null)", "ok=(null)", "d9=(null)", "d18=(null)", "d38=(null)", "day=(null)", "tod=(null)", "ts=(null)", "tstz=(null)", "name=(null)", "doc=(null)", "ref=(null)", "raw=(null)", "tags=(null)", "nums=(null)"},
	}
	if diff := cmp.Diff(want, scan(t, tb)); diff != "" {
		t.Errorf("iceberg-go reads (-want +got):\n%s", diff)
	}
	// A second opening, through a new catalog connection, reads the
	// position from the snapshot.
	w2 := openTest(t, w.dir)
	tb2 := openTable(t, w2, "types")
	if pos, ok := tb2.Position(); !ok || pos.Cursor != "c1" {
		t.Errorf("reopened position = %+v, %v; want cursor c1", pos, ok)
	}
}

func TestReplaceAppendPosition(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir)
	tb := openTable(t, w, "kv")
	s := &records.Schema{Columns: []records.Column{{Name: "k", Type: tInt64}, {Name: "v", Type: tText, Nullable: true}}, PrimaryKey: []string{"k"}}
	kv := func(s *records.Schema, keys ...int64) *records.Batch {
		b := records.NewBatch(s, len(keys))
		for _, k := range keys {
			b.Cols[0].AppendInt64(k)
			b.Cols[1].AppendString("v")
			for i := 2; i < len(b.Cols); i++ {
				b.Cols[i].AppendInt64(k * 10)
			}
			b.N++
		}
		return b
	}
	steps := []struct {
		mode  warehouse.Mode
		keys  []int64
		extra bool // with a column new to the table
		pos   records.Position
		rows  int64
	}{
		{warehouse.Replace, []int64{1, 2, 3}, false, records.Position{Cursor: "r1", Extra: map[string]string{"a": "b"}}, 3},
		{warehouse.Append, []int64{4}, false, records.Position{Cursor: "a1", BoundaryKeys: []string{"x"}}, 4},
		{warehouse.Append, []int64{5, 6}, true, records.Position{LSN: "16/B374D848", SnapshotDone: true}, 6},
		{warehouse.Replace, []int64{7}, false, records.Position{Xmin: 1 << 40}, 1},
		{warehouse.Replace, nil, false, records.Position{Cursor: "empty"}, 0},
	}
	s2 := &records.Schema{Columns: append(append([]records.Column(nil), s.Columns...), records.Column{Name: "w", Type: tInt64, Nullable: true}), PrimaryKey: s.PrimaryKey}
	for i, st := range steps {
		sc := s
		if st.extra {
			sc = s2
		}
		if n := commit(t, tb, st.mode, sc, st.pos, kv(sc, st.keys...)); n != st.rows {
			t.Errorf("step %d: Commit says %d rows, want %d", i, n, st.rows)
		}
		if got := int64(len(scan(t, tb))); got != st.rows {
			t.Errorf("step %d: the table holds %d rows, want %d", i, got, st.rows)
		}
		reopened := openTable(t, openTest(t, dir), "kv")
		pos, ok := reopened.Position()
		if diff := cmp.Diff(st.pos, pos); !ok || diff != "" {
			t.Errorf("step %d: reopened position (committed %v) (-want +got):\n%s", i, ok, diff)
		}
		// Append adds w and keeps it; Replace without it drops it (by
		// id: Iceberg schema evolution).
		_, hasW := tb.tbl.Schema().FindFieldByName("w")
		if wantW := i == 2; hasW != wantW {
			t.Errorf("step %d: the table has column w: %v, want %v", i, hasW, wantW)
		}
		if got := reopened.Schema().Index("w") >= 0; got != (i == 2) {
			t.Errorf("step %d: the recorded schema has column w: %v, want %v", i, got, i == 2)
		}
	}
}

func TestCommitFailureKeepsPreviousVersion(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir)
	tb := openTable(t, w, "types")
	commit(t, tb, warehouse.Replace, typesSchema, records.Position{Cursor: "one"}, typesBatch())
	before := scan(t, tb)

	for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Append} {
		// A crash after the data files were written, before the catalog
		// commit.
		crash := errors.New("crash")
		w.beforeCommit = func() error { return crash }
		ctx := context.Background()
		tx, err := tb.Begin(ctx, mode, typesSchema, "test")
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, typesBatch()); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Commit(ctx, records.Position{Cursor: "two"}); !errors.Is(err, crash) {
			t.Fatalf("%s: Commit = %v, want the crash", mode, err)
		}
		w.beforeCommit = nil
		reopened := openTable(t, openTest(t, dir), "types")
		if pos, ok := reopened.Position(); !ok || pos.Cursor != "one" {
			t.Errorf("%s: after a failed commit the position is %+v (%v), want cursor one", mode, pos, ok)
		}
		if diff := cmp.Diff(before, scan(t, reopened)); diff != "" {
			t.Errorf("%s: after a failed commit the rows changed (-want +got):\n%s", mode, diff)
		}
	}

	// Two writers of one table: the second waits for the first's writer
	// lock (here until its context ends), then begins on the version the
	// first committed, so neither overwrites the other.
	a := openTable(t, openTest(t, dir), "types")
	b := openTable(t, openTest(t, dir), "types")
	ctx := context.Background()
	txA, err := a.Begin(ctx, warehouse.Append, typesSchema, "a")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := b.Begin(short, warehouse.Append, typesSchema, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second writer began while the first held the table: %v", err)
	}
	cancel()
	txA.Write(ctx, typesBatch())
	if _, err := txA.Commit(ctx, records.Position{Cursor: "A"}); err != nil {
		t.Fatal(err)
	}
	txB, err := b.Begin(ctx, warehouse.Append, typesSchema, "b")
	if err != nil {
		t.Fatal(err)
	}
	txB.Write(ctx, typesBatch())
	if _, err := txB.Commit(ctx, records.Position{Cursor: "B"}); err != nil {
		t.Fatal(err)
	}
	reopened := openTable(t, openTest(t, dir), "types")
	if pos, _ := reopened.Position(); pos.Cursor != "B" {
		t.Errorf("after two writers the position is %+v, want cursor B", pos)
	}
	if n := len(scan(t, reopened)); n != 9 {
		t.Errorf("after two writers the table holds %d rows, want 9", n)
	}
}

func TestCreateCrashOpensUncommitted(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir)
	tb := openTable(t, w, "fresh")
	w.beforeCommit = func() error { return errors.New("crash") }
	ctx := context.Background()
	tx, err := tb.Begin(ctx, warehouse.Replace, typesSchema, "test")
	if err != nil {
		t.Fatal(err)
	}
	tx.Write(ctx, typesBatch())
	if _, err := tx.Commit(ctx, records.Position{Cursor: "x"}); err == nil {
		t.Fatal("Commit succeeded through a crash")
	}
	reopened := openTable(t, openTest(t, dir), "fresh")
	if pos, ok := reopened.Position(); ok {
		t.Errorf("a table whose first commit crashed opens committed at %+v", pos)
	}
	// The next commit lands on the created table.
	if n := commit(t, reopened, warehouse.Replace, typesSchema, records.Position{Cursor: "y"}, typesBatch()); n != 3 {
		t.Errorf("Commit says %d rows, want 3", n)
	}
}

func TestRefusals(t *testing.T) {
	w := openTest(t, t.TempDir())
	tb := openTable(t, w, "kv")
	ctx := context.Background()
	noKey := &records.Schema{Columns: typesSchema.Columns}
	if _, err := tb.Begin(ctx, warehouse.Merge, noKey, "test"); err == nil || !strings.Contains(err.Error(), "primary key") {
		t.Errorf("Begin(Merge) without a key = %v, want an error naming the primary key", err)
	}
	commit(t, tb, warehouse.Replace, typesSchema, records.Position{}, typesBatch())
	otherKey := &records.Schema{Columns: typesSchema.Columns, PrimaryKey: []string{"i32"}}
	if _, err := tb.Begin(ctx, warehouse.Merge, otherKey, "test"); !errors.Is(err, warehouse.ErrSchemaChanged) {
		t.Errorf("Begin(Merge) with another key = %v, want ErrSchemaChanged", err)
	}
	changed := &records.Schema{Columns: append([]records.Column(nil), typesSchema.Columns...), PrimaryKey: typesSchema.PrimaryKey}
	changed.Columns[2] = records.Column{Name: "i32", Type: tText, SourceType: "text", Nullable: true}
	if _, err := tb.Begin(ctx, warehouse.Append, changed, "test"); !errors.Is(err, warehouse.ErrSchemaChanged) {
		t.Errorf("Begin with a changed column type = %v, want ErrSchemaChanged", err)
	}
}
