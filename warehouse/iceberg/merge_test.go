package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

var tBool = pt(records.PhysicalBoolean, records.LogicalNone, "BOOLEAN")

// kvSchema is (k, v, deleted) keyed by k; with text keys k is STRING, with
// a composite key (k, k2).
func kvSchema(keyType records.ParquetType, composite bool) *records.Schema {
	s := &records.Schema{Columns: []records.Column{{Name: "k", Type: keyType}}, PrimaryKey: []string{"k"}}
	if composite {
		s.Columns = append(s.Columns, records.Column{Name: "k2", Type: tText})
		s.PrimaryKey = append(s.PrimaryKey, "k2")
	}
	s.Columns = append(s.Columns,
		records.Column{Name: "v", Type: tText, Nullable: true},
		records.Column{Name: "_sluice_deleted", Type: tBool, Nullable: true})
	return s
}

// row is a kv row: key (k, k2), value (nil: NULL; "?": unchanged), and a
// tombstone flag.
type row struct {
	k   string
	k2  string
	v   *string
	del bool
}

func str(s string) *string { return &s }

var unchanged = str("\x00unchanged")

func kvBatch(s *records.Schema, rows ...row) *records.Batch {
	b := records.NewBatch(s, len(rows))
	vi := s.Index("v")
	for _, r := range rows {
		if s.Columns[0].Type.Physical == records.PhysicalInt64 {
			var n int64
			fmt.Sscan(r.k, &n)
			b.Cols[0].AppendInt64(n)
		} else {
			b.Cols[0].AppendString(r.k)
		}
		if s.Index("k2") >= 0 {
			b.Cols[1].AppendString(r.k2)
		}
		v := &b.Cols[vi]
		switch {
		case r.v == unchanged:
			v.AppendNull()
			for len(v.Unchanged) < b.N {
				v.Unchanged = append(v.Unchanged, false)
			}
			v.Unchanged = append(v.Unchanged, true)
		case r.v == nil:
			v.AppendNull()
		default:
			v.AppendString(*r.v)
		}
		if v.Unchanged != nil && len(v.Unchanged) < b.N+1 {
			v.Unchanged = append(v.Unchanged, false)
		}
		b.Cols[vi+1].AppendBool(r.del)
		b.N++
	}
	return b
}

// scanRows reads the table through Table.Scan as "k|k2=v[ D]" strings,
// sorted.
func scanRows(t *testing.T, tb *Table) []string {
	t.Helper()
	var out []string
	err := tb.Scan(context.Background(), func(b *records.Batch) error {
		ki, k2i, vi, di := b.Schema.Index("k"), b.Schema.Index("k2"), b.Schema.Index("v"), b.Schema.Index("_sluice_deleted")
		for r := 0; r < b.N; r++ {
			out = append(out, rowString(b, r, ki, k2i, vi, di))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func rowString(b *records.Batch, r, ki, k2i, vi, di int) string {
	var s string
	if b.Schema.Columns[ki].Type.Physical == records.PhysicalInt64 {
		s = fmt.Sprint(b.Cols[ki].I64[r])
	} else {
		s = string(b.Cols[ki].Bytes(r))
	}
	if k2i >= 0 {
		s += "|" + string(b.Cols[k2i].Bytes(r))
	}
	if b.Cols[vi].IsNull(r) {
		s += "=NULL"
	} else {
		s += "=" + string(b.Cols[vi].Bytes(r))
	}
	if di >= 0 && !b.Cols[di].IsNull(r) && b.Cols[di].Bool[r] {
		s += " D"
	}
	return s
}

func TestMergeSemantics(t *testing.T) {
	for _, kind := range []struct {
		name      string
		keyType   records.ParquetType
		composite bool
	}{{"int", tInt64, false}, {"text", tText, false}, {"composite", tInt64, true}} {
		t.Run(kind.name, func(t *testing.T) {
			s := kvSchema(kind.keyType, kind.composite)
			dir := t.TempDir()
			tb := openTable(t, openTest(t, dir), "kv")
			k2 := func(r row) row {
				if kind.composite {
					r.k2 = "x" + r.k
				}
				return r
			}
			rs := func(rows ...row) []row {
				for i := range rows {
					rows[i] = k2(rows[i])
				}
				return rows
			}
			name := func(k, v string) string {
				if kind.composite {
					return k + "|x" + k + "=" + v
				}
				return k + "=" + v
			}
			steps := []struct {
				mode warehouse.Mode
				rows []row
				want []string
			}{
				{warehouse.Replace, rs(row{k: "1", v: str("a")}, row{k: "2", v: str("b")}, row{k: "3", v: str("c")}), []string{name("1", "a"), name("2", "b"), name("3", "c")}},
				// Update, insert, tombstone, duplicate keys in one tx (the
				// last wins), an unchanged value from the stored row.
				{warehouse.Merge, rs(
					row{k: "1", v: str("a2")}, row{k: "4", v: str("d")}, row{k: "2", v: nil, del: true},
					row{k: "4", v: str("d2")}, row{k: "1", v: str("a3")}, row{k: "3", v: unchanged}),
					[]string{name("1", "a3"), name("2", "NULL D"), name("3", "c"), name("4", "d2")}},
				// Unchanged from an earlier row of the tx, then superseded.
				{warehouse.Merge, rs(row{k: "5", v: str("e")}, row{k: "5", v: unchanged}, row{k: "1", v: unchanged}, row{k: "1", v: str("a4")}),
					[]string{name("1", "a4"), name("2", "NULL D"), name("3", "c"), name("4", "d2"), name("5", "e")}},
				// Unchanged after an unchanged (chained), stored row then.
				{warehouse.Merge, rs(row{k: "3", v: unchanged}, row{k: "3", v: unchanged}, row{k: "2", v: str("b2")}),
					[]string{name("1", "a4"), name("2", "b2"), name("3", "c"), name("4", "d2"), name("5", "e")}},
				{warehouse.Merge, nil, []string{name("1", "a4"), name("2", "b2"), name("3", "c"), name("4", "d2"), name("5", "e")}},
			}
			for i, st := range steps {
				pos := records.Position{Cursor: fmt.Sprint(i)}
				n := commit(t, tb, st.mode, s, pos, kvBatch(s, st.rows...))
				got := scanRows(t, tb)
				for j := range got {
					got[j] = fixDel(got[j])
				}
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Fatalf("step %d: Scan (-want +got):\n%s", i, diff)
				}
				if n != int64(len(st.want)) {
					t.Errorf("step %d: Commit says %d rows, want %d", i, n, len(st.want))
				}
				if got := len(scan(t, tb)); got != len(st.want) {
					t.Errorf("step %d: iceberg-go reads %d rows, want %d", i, got, len(st.want))
				}
				reopened := openTable(t, openTest(t, dir), "kv")
				if p, ok := reopened.Position(); !ok || p.Cursor != pos.Cursor {
					t.Errorf("step %d: reopened at %+v, want %+v", i, p, pos)
				}
				if diff := cmp.Diff(recordedSchema(nil, s, warehouse.Replace), reopened.Schema()); diff != "" {
					t.Errorf("step %d: recorded schema (-want +got):\n%s", i, diff)
				}
			}
			// icebird, an independent reader, applies the position deletes.
			var got []string
			for _, r := range readIcebird(t, tb) {
				k := fmt.Sprint(r["k"])
				if kind.keyType.Physical == records.PhysicalInt64 {
					k = k[:len(k)-1] // BigInt "<n>n"
				}
				if kind.composite {
					k += "|" + fmt.Sprint(r["k2"])
				}
				v := "NULL"
				if r["v"] != nil {
					v = fmt.Sprint(r["v"])
				}
				if r["_sluice_deleted"] == true {
					v += " D"
				}
				got = append(got, k+"="+v)
			}
			sort.Strings(got)
			if diff := cmp.Diff(steps[len(steps)-1].want, got); diff != "" {
				t.Errorf("icebird reads (-want +got):\n%s", diff)
			}
		})
	}
}

func fixDel(s string) string { return s }

func TestLookup(t *testing.T) {
	s := kvSchema(tInt64, false)
	tb := openTable(t, openTest(t, t.TempDir()), "kv")
	ctx := context.Background()
	keys := records.NewBatch(&records.Schema{Columns: s.Columns[:1], PrimaryKey: s.PrimaryKey}, 3)
	for _, k := range []int64{1, 3, 9} {
		keys.Cols[0].AppendInt64(k)
		keys.N++
	}
	lookup := func() []string {
		var out []string
		err := tb.Lookup(ctx, keys, false, func(b *records.Batch, rows []int32) error {
			if b.Schema.Index(SyncedAtColumn) < 0 {
				t.Error("Lookup's rows lack _sluice_synced_at")
			}
			for _, r := range rows {
				out = append(out, rowString(b, int(r), b.Schema.Index("k"), -1, b.Schema.Index("v"), b.Schema.Index("_sluice_deleted")))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(out)
		return out
	}
	if got := lookup(); len(got) != 0 {
		t.Errorf("Lookup on a new table = %v", got)
	}
	commit(t, tb, warehouse.Replace, s, records.Position{}, kvBatch(s, row{k: "1", v: str("a")}, row{k: "2", v: str("b")}, row{k: "3", v: str("c")}))
	if diff := cmp.Diff([]string{"1=a", "3=c"}, lookup()); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}
	commit(t, tb, warehouse.Merge, s, records.Position{}, kvBatch(s, row{k: "3", v: nil, del: true}, row{k: "9", v: str("i")}, row{k: "1", v: str("a2")}))
	if diff := cmp.Diff([]string{"1=a2", "3=NULL D", "9=i"}, lookup()); diff != "" {
		t.Errorf("Lookup after a merge (-want +got):\n%s", diff)
	}
	// A Replace removes the delete files with the data files: the count
	// is the new rows.
	if n := commit(t, tb, warehouse.Replace, s, records.Position{}, kvBatch(s, row{k: "3", v: str("z")})); n != 1 {
		t.Errorf("Replace after merges says %d rows, want 1", n)
	}
	if diff := cmp.Diff([]string{"3=z"}, lookup()); diff != "" {
		t.Errorf("Lookup after a Replace (-want +got):\n%s", diff)
	}
}

// histSchema is a history table of kv (SPEC §4).
var histSchema = &records.Schema{Columns: []records.Column{
	{Name: "k", Type: tInt64},
	{Name: "v", Type: tText, Nullable: true},
	{Name: warehouse.HistoryOpColumn, Type: tText},
	{Name: warehouse.ValidFromColumn, Type: records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}},
	{Name: warehouse.ValidToColumn, Type: records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}, Nullable: true},
}, PrimaryKey: []string{"k"}}

type version struct {
	k        int64
	v, op    string
	from, to int64 // to 0: NULL
}

func histBatch(vs ...version) *records.Batch {
	b := records.NewBatch(histSchema, len(vs))
	for _, x := range vs {
		b.Cols[0].AppendInt64(x.k)
		b.Cols[1].AppendString(x.v)
		b.Cols[2].AppendString(x.op)
		b.Cols[3].AppendInt64(x.from)
		b.Cols[4].AppendInt64(999) // ignored
		b.N++
	}
	return b
}

func scanVersions(t *testing.T, tb *Table) []version {
	t.Helper()
	var out []version
	err := tb.Scan(context.Background(), func(b *records.Batch) error {
		for r := 0; r < b.N; r++ {
			x := version{k: b.Cols[0].I64[r], v: string(b.Cols[1].Bytes(r)), op: string(b.Cols[2].Bytes(r)), from: b.Cols[3].I64[r]}
			if !b.Cols[4].IsNull(r) {
				x.to = b.Cols[4].I64[r]
			}
			out = append(out, x)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].k != out[j].k {
			return out[i].k < out[j].k
		}
		return out[i].from < out[j].from
	})
	return out
}

func TestHistoryClosing(t *testing.T) {
	dir := t.TempDir()
	tb := openTable(t, openTest(t, dir), "kv_cdc")
	ctx := context.Background()
	hist := func(closeAll time.Time, pos string, vs ...version) int64 {
		t.Helper()
		tx, err := tb.BeginHistory(ctx, histSchema, "cdc", closeAll)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, histBatch(vs...)); err != nil {
			t.Fatal(err)
		}
		n, err := tx.Commit(ctx, records.Position{LSN: pos})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	hist(time.Time{}, "0/1", version{k: 1, v: "a", op: "I", from: 10}, version{k: 2, v: "b", op: "I", from: 10}, version{k: 1, v: "a2", op: "U", from: 20})
	hist(time.Time{}, "0/2", version{k: 2, v: "b", op: "D", from: 30}, version{k: 1, v: "a3", op: "U", from: 40}, version{k: 3, v: "c", op: "I", from: 40})
	want := []version{
		{1, "a", "I", 10, 20}, {1, "a2", "U", 20, 40}, {1, "a3", "U", 40, 0},
		{2, "b", "I", 10, 30}, {2, "b", "D", 30, 30},
		{3, "c", "I", 40, 0},
	}
	if diff := cmp.Diff(want, scanVersions(t, tb), cmp.AllowUnexported(version{})); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	// Lookup with current reads the open versions only.
	keys := records.NewBatch(&records.Schema{Columns: histSchema.Columns[:1], PrimaryKey: []string{"k"}}, 3)
	for _, k := range []int64{1, 2, 3} {
		keys.Cols[0].AppendInt64(k)
		keys.N++
	}
	var cur []string
	err := tb.Lookup(ctx, keys, true, func(b *records.Batch, rows []int32) error {
		for _, r := range rows {
			cur = append(cur, fmt.Sprintf("%d=%s", b.Cols[0].I64[r], b.Cols[1].Bytes(int(r))))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(cur)
	if diff := cmp.Diff([]string{"1=a3", "3=c"}, cur); diff != "" {
		t.Errorf("Lookup(current) (-want +got):\n%s", diff)
	}
	// closeAllAt closes every current version first (a resync), then the
	// rows become the current versions.
	n := hist(time.UnixMicro(50), "0/3", version{k: 1, v: "a3", op: "I", from: 50})
	want = []version{
		{1, "a", "I", 10, 20}, {1, "a2", "U", 20, 40}, {1, "a3", "U", 40, 50}, {1, "a3", "I", 50, 0},
		{2, "b", "I", 10, 30}, {2, "b", "D", 30, 30},
		{3, "c", "I", 40, 50},
	}
	if diff := cmp.Diff(want, scanVersions(t, tb), cmp.AllowUnexported(version{})); diff != "" {
		t.Errorf("history after closeAllAt (-want +got):\n%s", diff)
	}
	if n != int64(len(want)) {
		t.Errorf("Commit says %d rows, want %d", n, len(want))
	}
	if got := readIcebird(t, tb); len(got) != len(want) {
		t.Errorf("icebird reads %d versions, want %d", len(got), len(want))
	}
}

func TestSchemaEvolutionMerge(t *testing.T) {
	s := kvSchema(tInt64, false)
	dir := t.TempDir()
	tb := openTable(t, openTest(t, dir), "kv")
	commit(t, tb, warehouse.Replace, s, records.Position{}, kvBatch(s, row{k: "1", v: str("a")}))
	// A new column: added; a column the source dropped (v) stays, NULL in
	// new rows.
	s2 := &records.Schema{Columns: []records.Column{s.Columns[0], s.Columns[2], {Name: "w", Type: tInt64, Nullable: true}}, PrimaryKey: s.PrimaryKey}
	b := records.NewBatch(s2, 1)
	b.Cols[0].AppendInt64(2)
	b.Cols[1].AppendBool(false)
	b.Cols[2].AppendInt64(7)
	b.N = 1
	commit(t, tb, warehouse.Merge, s2, records.Position{}, b)
	rs := openTable(t, openTest(t, dir), "kv").Schema()
	var names []string
	for _, c := range rs.Columns {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"k", "v", "_sluice_deleted", "w", SyncedAtColumn}, names); diff != "" {
		t.Errorf("recorded columns after a merge with a new and a dropped column (-want +got):\n%s", diff)
	}
	got := scan(t, tb)
	sort.Slice(got, func(i, j int) bool { return got[i][0] < got[j][0] })
	want := [][]string{{"k=1", "v=a", "_sluice_deleted=false", "w=(null)"}, {"k=2", "v=(null)", "_sluice_deleted=false", "w=7"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	// Replace with the new schema drops v.
	commit(t, tb, warehouse.Replace, s2, records.Position{}, b)
	if _, ok := tb.tbl.Schema().FindFieldByName("v"); ok {
		t.Error("Replace kept the column v the new rows lack")
	}
}

// TestMergeManyFiles merges into a table of many small files and row
// groups, loaded out of key order, against a model: the key index of
// unordered files, the pruning by key bounds, and the deletes of earlier
// merges all count.
func TestMergeManyFiles(t *testing.T) {
	defer func(f, r, b int64) { targetFileBytes, rowGroupRows, rowGroupMaxBytes = f, r, b }(targetFileBytes, rowGroupRows, rowGroupMaxBytes)
	targetFileBytes, rowGroupRows = 1<<10, 64
	s := kvSchema(tInt64, false)
	dir := t.TempDir()
	tb := openTable(t, openTest(t, dir), "kv")
	model := map[string]string{}
	var rows []row
	for k := 0; k < 2000; k++ {
		key := fmt.Sprint((k * 7919) % 2000) // out of order
		rows = append(rows, row{k: key, v: str("0")})
		model[key] = key + "=0"
	}
	commit(t, tb, warehouse.Replace, s, records.Position{}, kvBatch(s, rows...))
	if n := len(tb.filesState.data); n < 5 {
		t.Fatalf("the load wrote %d files; the test wants many", n)
	}
	for i := 1; i <= 5; i++ {
		rows = rows[:0]
		for j := 0; j < 300; j++ {
			key := fmt.Sprint((i*131 + j*17) % 2100) // some new keys
			v := fmt.Sprintf("%d.%d", i, j)
			rows = append(rows, row{k: key, v: str(v), del: j%50 == 0})
			model[key] = key + "=" + v
			if j%50 == 0 {
				model[key] += " D"
			}
		}
		// Every other commit from a fresh opening: the file state and
		// deletes are planned from the manifests, not derived.
		if i%2 == 0 {
			tb = openTable(t, openTest(t, dir), "kv")
		}
		n := commit(t, tb, warehouse.Merge, s, records.Position{}, kvBatch(s, rows...))
		var want []string
		for _, v := range model {
			want = append(want, v)
		}
		sort.Strings(want)
		if diff := cmp.Diff(want, scanRows(t, tb)); diff != "" {
			t.Fatalf("merge %d (-want +got):\n%s", i, diff)
		}
		if n != int64(len(want)) {
			t.Errorf("merge %d: Commit says %d rows, want %d", i, n, len(want))
		}
	}
	if got := readIcebird(t, tb); len(got) != len(model) {
		t.Errorf("icebird reads %d rows, want %d", len(got), len(model))
	}
}

func TestAbortRemovesFiles(t *testing.T) {
	s := kvSchema(tInt64, false)
	dir := t.TempDir()
	tb := openTable(t, openTest(t, dir), "kv")
	commit(t, tb, warehouse.Replace, s, records.Position{Cursor: "1"}, kvBatch(s, row{k: "1", v: str("a")}))
	files := func() []string {
		var out []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".parquet") {
				out = append(out, p)
			}
			return nil
		})
		sort.Strings(out)
		return out
	}
	before := files()
	ctx := context.Background()
	for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Merge, warehouse.Append} {
		tx, err := tb.Begin(ctx, mode, s, "test")
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, kvBatch(s, row{k: "1", v: str("b")}, row{k: "2", v: str("c")})); err != nil {
			t.Fatal(err)
		}
		if err := tx.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, files()); diff != "" {
			t.Errorf("%s: Abort left files (-before +after):\n%s", mode, diff)
		}
	}
	if diff := cmp.Diff([]string{"1=a"}, scanRows(t, openTable(t, openTest(t, dir), "kv"))); diff != "" {
		t.Errorf("after aborts (-want +got):\n%s", diff)
	}
}

func TestMergeIntoDamagedTable(t *testing.T) {
	s := kvSchema(tInt64, false)
	dir := t.TempDir()
	tb := openTable(t, openTest(t, dir), "kv")
	commit(t, tb, warehouse.Replace, s, records.Position{}, kvBatch(s, row{k: "1", v: str("a")}))
	for _, f := range tb.filesState.data {
		os.Remove(strings.TrimPrefix(f.path, "file://"))
	}
	tb = openTable(t, openTest(t, dir), "kv")
	ctx := context.Background()
	tx, err := tb.Begin(ctx, warehouse.Merge, s, "test")
	if err != nil {
		t.Fatal(err)
	}
	tx.Write(ctx, kvBatch(s, row{k: "1", v: str("b")}))
	if _, err := tx.Commit(ctx, records.Position{}); !errors.Is(err, warehouse.ErrDamaged) {
		t.Errorf("a merge into a table whose data file is gone: %v, want ErrDamaged", err)
	}
	// A Replace starts it anew.
	commit(t, tb, warehouse.Replace, s, records.Position{}, kvBatch(s, row{k: "2", v: str("c")}))
	if diff := cmp.Diff([]string{"2=c"}, scanRows(t, tb)); diff != "" {
		t.Errorf("after the Replace (-want +got):\n%s", diff)
	}
}

// TestMergeKeyTypes merges on a key of each type: the stored rows are
// found (two rows stay two) whatever the key's Arrow and bound forms.
func TestMergeKeyTypes(t *testing.T) {
	full := typesBatch()
	for ci, c := range typesSchema.Columns {
		if c.Type.Physical == records.PhysicalGroup || c.Name == "i32" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			s := &records.Schema{Columns: typesSchema.Columns, PrimaryKey: []string{c.Name}}
			two := func(i32 int32) *records.Batch {
				b := records.NewBatch(s, 2)
				for r := 0; r < 2; r++ {
					for k := range b.Cols {
						if typesSchema.Columns[k].Name == "i32" {
							b.Cols[k].AppendInt32(i32 + int32(r))
							continue
						}
						b.Cols[k].AppendFrom(typesSchema.Columns[k].Type, &full.Cols[k], r)
					}
					b.N++
				}
				return b
			}
			tb := openTable(t, openTest(t, t.TempDir()), "k")
			commit(t, tb, warehouse.Replace, s, records.Position{}, two(10))
			if n := commit(t, tb, warehouse.Merge, s, records.Position{}, two(20)); n != 2 {
				t.Errorf("Commit says %d rows, want 2", n)
			}
			var got []int32
			err := tb.Scan(context.Background(), func(b *records.Batch) error {
				for r := 0; r < b.N; r++ {
					got = append(got, b.Cols[2].I32[r])
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			if diff := cmp.Diff([]int32{20, 21}, got); diff != "" {
				t.Errorf("merge on key %s (-want +got):\n%s", c.Name, diff)
			}
			// Lookup by the key finds both rows with the recorded types.
			keys := records.NewBatch(&records.Schema{Columns: []records.Column{c}, PrimaryKey: []string{c.Name}}, 2)
			for r := 0; r < 2; r++ {
				keys.Cols[0].AppendFrom(c.Type, &full.Cols[ci], r)
				keys.N++
			}
			n := 0
			tb.Lookup(context.Background(), keys, false, func(b *records.Batch, rows []int32) error {
				n += len(rows)
				return nil
			})
			if n != 2 {
				t.Errorf("Lookup on key %s found %d rows, want 2", c.Name, n)
			}
		})
	}
}

func TestVersionAndSchema(t *testing.T) {
	s := kvSchema(tInt64, false)
	dir := t.TempDir()
	tb := openTable(t, openTest(t, dir), "kv")
	if v := tb.Version(); v != (warehouse.TableVersion{}) {
		t.Errorf("Version of a new table = %+v, want zero", v)
	}
	if rs := tb.Schema(); rs != nil {
		t.Errorf("Schema of a new table = %+v, want nil", rs)
	}
	commit(t, tb, warehouse.Replace, s, records.Position{}, kvBatch(s, row{k: "1", v: str("a")}))
	v1 := tb.Version()
	commit(t, tb, warehouse.Merge, s, records.Position{}, kvBatch(s, row{k: "1", v: str("b")}))
	v2 := tb.Version()
	if v1.SnapshotID == 0 || v2.SnapshotID == v1.SnapshotID || v2.MetadataLocation == v1.MetadataLocation || !strings.HasSuffix(v2.MetadataLocation, ".metadata.json") {
		t.Errorf("versions %+v then %+v: want two snapshots and metadata files", v1, v2)
	}
	reopened := openTable(t, openTest(t, dir), "kv")
	if diff := cmp.Diff(v2, reopened.Version()); diff != "" {
		t.Errorf("Version after reopening (-want +got):\n%s", diff)
	}
	want := recordedSchema(nil, s, warehouse.Replace)
	if diff := cmp.Diff(want, reopened.Schema()); diff != "" {
		t.Errorf("recorded schema (-want +got):\n%s", diff)
	}
	if want.Columns[len(want.Columns)-1].Name != SyncedAtColumn {
		t.Errorf("the recorded schema does not end with %s", SyncedAtColumn)
	}
}
