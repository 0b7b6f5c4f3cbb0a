package postgres

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/warehouse"
)

// historySchema is a history table of a quoted, mixed-case key.
var historySchema = &records.Schema{
	Columns: []records.Column{
		{Name: "Order ID", Type: tInt64, SourceType: "bigint"},
		{Name: "v", Type: tString, SourceType: "text", Nullable: true},
		{Name: HistoryOpColumn, Type: tString, Nullable: true},
		{Name: ValidFromColumn, Type: tTSTZ, Nullable: true},
		{Name: ValidToColumn, Type: tTSTZ, Nullable: true},
	},
	PrimaryKey: []string{"Order ID"},
}

// version is one incoming history row; at is seconds after base.
type version struct {
	id        int64
	v         string
	op        string
	at        int64
	unchanged bool // v was not carried by the change
}

var historyBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func historyBatch(vs ...version) *records.Batch {
	b := records.NewBatch(historySchema, len(vs))
	for i, v := range vs {
		b.Cols[0].AppendInt64(v.id)
		b.Cols[1].AppendString(v.v)
		if v.unchanged {
			if b.Cols[1].Unchanged == nil {
				b.Cols[1].Unchanged = make([]bool, len(vs))
			}
			b.Cols[1].Unchanged[i] = true
		}
		b.Cols[2].AppendString(v.op)
		b.Cols[3].AppendInt64(historyBase.Add(time.Duration(v.at) * time.Second).UnixMicro())
		b.Cols[4].AppendNull()
		b.N++
	}
	return b
}

func commitHistory(t *testing.T, w warehouse.Warehouse, closeAll time.Time, pos string, vs ...version) (int64, error) {
	t.Helper()
	tbl, err := w.Table(ctx, "orders_cdc")
	if err != nil {
		return 0, err
	}
	tx, err := tbl.(*Table).BeginHistory(ctx, historySchema, "cdc", closeAll)
	if err != nil {
		return 0, err
	}
	if err := tx.Write(ctx, historyBatch(vs...)); err != nil {
		tx.Abort(ctx)
		return 0, err
	}
	return tx.Commit(ctx, records.Position{LSN: pos})
}

// TestHistory: versions close the key's previous version at their
// valid_from, a delete's own version is closed at once, a closing commit
// (TRUNCATE, resync) closes every current version, unchanged values come
// from the current version; Lookup of current versions sees only those.
func TestHistory(t *testing.T) {
	w := newWH(t, false)
	history := func() []string {
		t.Helper()
		var out []string
		for _, r := range w.rows(t, `SELECT "Order ID", v, _sluice_cdc_op, extract(epoch FROM valid_from - '2026-01-01Z')::int,
			coalesce(extract(epoch FROM valid_to - '2026-01-01Z')::int::text, '-') FROM wh.orders_cdc ORDER BY 1, 4, 5 DESC`) {
			out = append(out, strings.Join(r, " "))
		}
		return out
	}
	steps := []struct {
		name     string
		closeAll int64 // seconds after base, 0 for none
		versions []version
		rows     int64
		want     []string
	}{
		{"snapshot", 0, []version{{1, "a", "I", 10, false}, {2, "b", "I", 10, false}}, 2,
			[]string{"1 a I 10 -", "2 b I 10 -"}},
		{"changes", 0, []version{{1, "x", "U", 20, false}, {1, "", "U", 30, true}, {2, "b", "D", 30, false}, {3, "c", "I", 30, false}}, 6,
			[]string{"1 a I 10 20", "1 x U 20 30", "1 x U 30 -", "2 b I 10 30", "2 b D 30 30", "3 c I 30 -"}},
		{"unchanged from the stored version", 0, []version{{3, "", "U", 35, true}}, 7,
			[]string{"1 a I 10 20", "1 x U 20 30", "1 x U 30 -", "2 b I 10 30", "2 b D 30 30", "3 c I 30 35", "3 c U 35 -"}},
		{"truncate", 40, []version{{1, "z", "I", 40, false}}, 8,
			[]string{"1 a I 10 20", "1 x U 20 30", "1 x U 30 40", "1 z I 40 -", "2 b I 10 30", "2 b D 30 30", "3 c I 30 35", "3 c U 35 40"}},
	}
	for _, s := range steps {
		var closeAll time.Time
		if s.closeAll > 0 {
			closeAll = historyBase.Add(time.Duration(s.closeAll) * time.Second)
		}
		rows, err := commitHistory(t, w, closeAll, s.name, s.versions...)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if rows != s.rows {
			t.Errorf("%s: rows = %d, want %d", s.name, rows, s.rows)
		}
		if diff := cmp.Diff(s.want, history()); diff != "" {
			t.Errorf("%s: history (-want +got):\n%s", s.name, diff)
		}
	}

	// The current versions are found by the partial index; a history
	// table has no primary key.
	got := w.rows(t, `SELECT indexdef FROM pg_indexes WHERE schemaname = 'wh' AND tablename = 'orders_cdc'`)
	if diff := cmp.Diff([][]string{{`CREATE INDEX orders_cdc_current ON wh.orders_cdc USING btree ("Order ID") WHERE (valid_to IS NULL)`}}, got); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}

	tbl, err := w.Table(ctx, "orders_cdc")
	if err != nil {
		t.Fatal(err)
	}
	keys := records.NewBatch(&records.Schema{Columns: historySchema.Columns[:1], PrimaryKey: historySchema.PrimaryKey}, 3)
	for _, id := range []int64{1, 2, 3} {
		keys.Cols[0].AppendInt64(id)
		keys.N++
	}
	var current []string
	err = tbl.(*Table).Lookup(ctx, keys, true, func(b *records.Batch, rows []int32) error {
		current = append(current, recordstest.RenderRows(b, rows, 3)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{`1 | z | I`}, current); diff != "" {
		t.Errorf("current versions (-want +got):\n%s", diff)
	}

	// A crash before COMMIT leaves the versions and the position as they
	// were.
	before := history()
	crash := errors.New("crash")
	beforeCommit = func() error { return crash }
	_, err = commitHistory(t, w, historyBase.Add(time.Minute), "crashed", version{1, "lost", "U", 60, false})
	beforeCommit = nil
	if !errors.Is(err, crash) {
		t.Fatalf("commit error = %v, want the injected crash", err)
	}
	if diff := cmp.Diff(before, history()); diff != "" {
		t.Errorf("history after the crash (-want +got):\n%s", diff)
	}
	if pos, _ := position(t, w, "orders_cdc"); pos.LSN != "truncate" {
		t.Errorf("position after the crash = %+v", pos)
	}

	// A key other than the recorded one needs a resync.
	other := &records.Schema{Columns: historySchema.Columns, PrimaryKey: []string{"v"}}
	_, err = tbl.(*Table).BeginHistory(ctx, other, "cdc", time.Time{})
	if !errors.Is(err, warehouse.ErrSchemaChanged) {
		t.Errorf("history with another key: %v, want ErrSchemaChanged", err)
	}
}

// TestSchemaRecorded: a merge that adds a column records it after the
// columns recorded before; a replace records its own columns only.
func TestSchemaRecorded(t *testing.T) {
	w := newWH(t, false)
	commit(t, w, "orders", warehouse.Merge, ordersSchema, records.Position{}, ordersBatch(row{id: 1, name: "a"}))
	wider := &records.Schema{Columns: append(slices.Clone(ordersSchema.Columns[:2]), records.Column{Name: "tags", Type: tStrs, SourceType: "text[]", Nullable: true}), PrimaryKey: []string{"id"}}
	b := records.NewBatch(wider, 1)
	b.Cols[0].AppendInt64(2)
	b.Cols[1].AppendString("b")
	b.Cols[2].List.Elem.AppendString("x")
	b.Cols[2].EndList()
	b.N++
	commit(t, w, "orders", warehouse.Merge, wider, records.Position{}, b)
	names := func() string {
		t.Helper()
		tbl, err := w.Table(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(keyNames(tbl.(*Table).Schema()), ",")
	}
	if got := names(); got != "id,name,amount,_sluice_synced_at,tags" {
		t.Errorf("after the merge: %s", got)
	}
	commit(t, w, "orders", warehouse.Replace, wider, records.Position{}, b)
	if got := names(); got != "id,name,tags,_sluice_synced_at" {
		t.Errorf("after the replace: %s", got)
	}
	if got := fmt.Sprint(w.rows(t, `SELECT count(*) FROM wh.orders`)); got != "[[1]]" {
		t.Errorf("rows = %s", got)
	}
}
