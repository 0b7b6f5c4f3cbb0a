package postgres

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

const selectOrders = `SELECT id, name, amount FROM wh.orders ORDER BY id`

func TestReplace(t *testing.T) {
	w := newWH(t, false)
	rows := commit(t, w, "orders", warehouse.Replace, ordersSchema, records.Position{Cursor: "1"},
		ordersBatch(row{id: 1, name: "a", amount: int64(150)}, row{id: 2, name: "tab\there \\ \"q\"\nline"}),
		ordersBatch(row{id: 3, amount: int64(-5)}))
	if rows != 3 {
		t.Errorf("rows = %d, want 3", rows)
	}
	want := [][]string{{"1", "a", "1.50"}, {"2", "tab\there \\ \"q\"\nline", "NULL"}, {"3", "NULL", "-0.05"}}
	if diff := cmp.Diff(want, w.rows(t, selectOrders)); diff != "" {
		t.Errorf("after the first replace (-want +got):\n%s", diff)
	}
	// A second replace is the whole table, even with another schema.
	other := &records.Schema{Columns: []records.Column{{Name: "id", Type: tString, SourceType: "text"}}, PrimaryKey: []string{"id"}}
	b := records.NewBatch(other, 1)
	b.Cols[0].AppendString("x")
	b.N = 1
	if rows := commit(t, w, "orders", warehouse.Replace, other, records.Position{Cursor: "2"}, b); rows != 1 {
		t.Errorf("rows = %d, want 1", rows)
	}
	if diff := cmp.Diff([][]string{{"x"}}, w.rows(t, `SELECT id FROM wh.orders`)); diff != "" {
		t.Errorf("after the second replace (-want +got):\n%s", diff)
	}
	if pos, ok := position(t, w, "orders"); !ok || pos.Cursor != "2" {
		t.Errorf("position = %+v, %v; want cursor 2", pos, ok)
	}
	// The primary key has the table's name, and nothing is left behind.
	got := w.rows(t, `SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'wh' AND c.relkind IN ('r', 'i') ORDER BY 1`)
	want = [][]string{{"_sluice_positions", "r"}, {"_sluice_positions_pkey", "i"}, {"orders", "r"}, {"orders_pkey", "i"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("relations (-want +got):\n%s", diff)
	}
	got = w.rows(t, `SELECT table_name, position::text, sync, mode, rows::text FROM wh._sluice_positions`)
	want = [][]string{{"orders", `{"cursor": "2"}`, "full_refresh", "replace", "1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
}

func TestMerge(t *testing.T) {
	w := newWH(t, false)
	if _, ok := position(t, w, "orders"); ok {
		t.Fatal("a new table has a committed position")
	}
	rows := commit(t, w, "orders", warehouse.Merge, ordersSchema, records.Position{Cursor: "a"},
		ordersBatch(row{id: 1, name: "a", amount: int64(100)}, row{id: 2, name: "b"}))
	if rows != 2 {
		t.Errorf("rows = %d, want 2", rows)
	}
	// Updates, inserts, and keys written several times in one
	// transaction, across batches: the last row wins.
	rows = commit(t, w, "orders", warehouse.Merge, ordersSchema, records.Position{Cursor: "b"},
		ordersBatch(row{id: 2, name: "b2", amount: int64(1)}, row{id: 3, name: "c"}, row{id: 2, name: "b3"}),
		ordersBatch(row{id: 3, name: "c2", amount: int64(7)}, row{id: 4}))
	if rows != 4 {
		t.Errorf("rows = %d, want 4", rows)
	}
	want := [][]string{{"1", "a", "1.00"}, {"2", "b3", "NULL"}, {"3", "c2", "0.07"}, {"4", "NULL", "NULL"}}
	if diff := cmp.Diff(want, w.rows(t, selectOrders)); diff != "" {
		t.Errorf("after the merges (-want +got):\n%s", diff)
	}
	if got := w.rows(t, `SELECT count(*) FROM wh.orders`)[0][0]; got != "4" {
		t.Errorf("count = %s, want 4", got)
	}
	if pos, ok := position(t, w, "orders"); !ok || pos.Cursor != "b" {
		t.Errorf("position = %+v, %v; want cursor b", pos, ok)
	}
	// The rows of a commit share its _sluice_synced_at.
	if got := w.rows(t, `SELECT count(DISTINCT _sluice_synced_at) FROM wh.orders WHERE id > 1`)[0][0]; got != "1" {
		t.Errorf("distinct synced_at of the second commit = %s, want 1", got)
	}
}

func TestMergeUnchanged(t *testing.T) {
	w := newWH(t, false)
	commit(t, w, "orders", warehouse.Merge, ordersSchema, records.Position{},
		ordersBatch(row{id: 1, name: "stored", amount: int64(100)}, row{id: 2, name: "two", amount: int64(200)}))
	commit(t, w, "orders", warehouse.Merge, ordersSchema, records.Position{},
		ordersBatch(
			// The stored value is kept.
			row{id: 1, amount: int64(101), unchanged: []string{"name"}},
			// An earlier change of the transaction carries it.
			row{id: 2, name: "two-b", amount: int64(201)},
			row{id: 2, amount: int64(202), unchanged: []string{"name"}},
			row{id: 2, amount: int64(203), unchanged: []string{"name"}},
		),
		ordersBatch(
			// A new key has no value to keep.
			row{id: 3, amount: int64(300), unchanged: []string{"name"}},
			// Two columns at once, the later change winning for amount.
			row{id: 1, name: "later", unchanged: []string{"amount"}},
		))
	want := [][]string{{"1", "later", "1.01"}, {"2", "two-b", "2.03"}, {"3", "NULL", "3.00"}}
	if diff := cmp.Diff(want, w.rows(t, selectOrders)); diff != "" {
		t.Errorf("after the merge (-want +got):\n%s", diff)
	}
}

func TestAppend(t *testing.T) {
	w := newWH(t, false)
	if rows := commit(t, w, "orders", warehouse.Append, ordersSchema, records.Position{Cursor: "1"},
		ordersBatch(row{id: 1, name: "a"}, row{id: 1, name: "a2"})); rows != 2 {
		t.Errorf("rows = %d, want 2", rows)
	}
	if rows := commit(t, w, "orders", warehouse.Append, ordersSchema, records.Position{Cursor: "2"},
		ordersBatch(row{id: 1, name: "a3"})); rows != 3 {
		t.Errorf("rows = %d, want 3", rows)
	}
	want := [][]string{{"1", "a", "NULL"}, {"1", "a2", "NULL"}, {"1", "a3", "NULL"}}
	if diff := cmp.Diff(want, w.rows(t, `SELECT id, name, amount FROM wh.orders ORDER BY name`)); diff != "" {
		t.Errorf("after the appends (-want +got):\n%s", diff)
	}
}

func TestSchemaChanges(t *testing.T) {
	w := newWH(t, false)
	commit(t, w, "orders", warehouse.Merge, ordersSchema, records.Position{}, ordersBatch(row{id: 1, name: "a", amount: int64(1)}))

	// A new column is added; a column the source dropped stays, NULL in
	// rows written since.
	wider := &records.Schema{Columns: []records.Column{
		ordersSchema.Columns[0], ordersSchema.Columns[1],
		{Name: "paid", Type: tBool, SourceType: "boolean", Nullable: true},
	}, PrimaryKey: []string{"id"}}
	b := records.NewBatch(wider, 2)
	for _, id := range []int64{1, 2} {
		b.Cols[0].AppendInt64(id)
		b.Cols[1].AppendString("n")
		b.Cols[2].AppendBool(true)
		b.N++
	}
	commit(t, w, "orders", warehouse.Merge, wider, records.Position{}, b)
	want := [][]string{{"1", "n", "NULL", "t"}, {"2", "n", "NULL", "t"}}
	if diff := cmp.Diff(want, w.rows(t, `SELECT id, name, amount, paid FROM wh.orders ORDER BY id`)); diff != "" {
		t.Errorf("after adding a column (-want +got):\n%s", diff)
	}

	changed := []struct {
		name   string
		schema *records.Schema
		mode   warehouse.Mode
	}{
		{"type", &records.Schema{Columns: []records.Column{ordersSchema.Columns[0], {Name: "name", Type: tInt32, SourceType: "integer"}}, PrimaryKey: []string{"id"}}, warehouse.Merge},
		{"type by append", &records.Schema{Columns: []records.Column{ordersSchema.Columns[0], {Name: "amount", Type: tDec, SourceType: "numeric(14,2)"}}}, warehouse.Append},
		{"key", &records.Schema{Columns: ordersSchema.Columns, PrimaryKey: []string{"id", "name"}}, warehouse.Merge},
	}
	for _, c := range changed {
		t.Run(c.name, func(t *testing.T) {
			_, err := tryCommit(w, "orders", c.mode, c.schema, records.Position{})
			if !errors.Is(err, warehouse.ErrSchemaChanged) {
				t.Fatalf("err = %v, want ErrSchemaChanged", err)
			}
		})
	}
	// Nothing of the refused commits remains.
	if got := w.rows(t, `SELECT count(*) FROM wh.orders`)[0][0]; got != "2" {
		t.Errorf("count = %s, want 2", got)
	}
}

func TestMergeNeedsKey(t *testing.T) {
	w := newWH(t, false)
	noKey := &records.Schema{Columns: ordersSchema.Columns}
	if _, err := tryCommit(w, "orders", warehouse.Merge, noKey, records.Position{}); err == nil || !strings.Contains(err.Error(), "primary key") {
		t.Errorf("err = %v, want a missing primary key", err)
	}
}

// TestReplaceCarriesOver: a full refresh keeps what users added to the
// table — privileges on it and its columns, comments, their own indexes
// (but one of a column the new version lacks) — under the same names.
func TestReplaceCarriesOver(t *testing.T) {
	w := newWH(t, false)
	commit(t, w, "orders", warehouse.Replace, ordersSchema, records.Position{}, ordersBatch(row{id: 1, name: "a", amount: int64(1)}))
	exec(t, w.conn, `DROP ROLE IF EXISTS "Carry Reader"; CREATE ROLE "Carry Reader"`)
	t.Cleanup(func() { exec(t, w.conn, `DROP OWNED BY "Carry Reader"; DROP ROLE "Carry Reader"`) })
	exec(t, w.conn, `GRANT SELECT ON wh.orders TO "Carry Reader";
GRANT UPDATE (name), UPDATE (amount) ON wh.orders TO PUBLIC;
COMMENT ON TABLE wh.orders IS 'orders, synced';
COMMENT ON COLUMN wh.orders.name IS 'the customer''s name';
CREATE INDEX "By Name" ON wh.orders (lower(name)) WHERE name IS NOT NULL;
CREATE UNIQUE INDEX orders_amount ON wh.orders (amount, id)`)

	// The new version has no amount column.
	narrow := &records.Schema{Columns: ordersSchema.Columns[:2], PrimaryKey: []string{"id"}}
	b := records.NewBatch(narrow, 1)
	b.Cols[0].AppendInt64(2)
	b.Cols[1].AppendString("b")
	b.N++
	commit(t, w, "orders", warehouse.Replace, narrow, records.Position{}, b)
	got := w.rows(t, `SELECT coalesce(array_to_string(relacl, ','), ''), coalesce(obj_description(oid, 'pg_class'), '') FROM pg_class WHERE oid = 'wh.orders'::regclass`)
	if len(got) != 1 || !strings.Contains(got[0][0], `"Carry Reader"=r/`) || got[0][1] != "orders, synced" {
		t.Errorf("table privileges and comment: %v", got)
	}
	got = w.rows(t, `SELECT attname, coalesce(array_to_string(attacl, ','), ''), coalesce(col_description(attrelid, attnum), '')
FROM pg_attribute WHERE attrelid = 'wh.orders'::regclass AND attnum > 0 ORDER BY attnum`)
	want := [][]string{{"id", "", ""}, {"name", "=w/postgres", "the customer's name"}, {SyncedAtColumn, "", ""}}
	if len(got) == 3 && strings.HasPrefix(got[1][1], "=w/") {
		want[1][1] = got[1][1] // the grantor is whoever runs the tests
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	got = w.rows(t, `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'wh' AND tablename = 'orders' ORDER BY 1`)
	want = [][]string{
		{"By Name", `CREATE INDEX "By Name" ON wh.orders USING btree (lower(name)) WHERE (name IS NOT NULL)`},
		{"orders_pkey", `CREATE UNIQUE INDEX orders_pkey ON wh.orders USING btree (id)`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
}

// TestConnectionReuse: a committed transaction's connection serves the
// next transaction; a failed one's is closed, not reused.
func TestConnectionReuse(t *testing.T) {
	w := newWH(t, false)
	idle := func() []uint32 {
		w.idleMu.Lock()
		defer w.idleMu.Unlock()
		var pids []uint32
		for _, c := range w.idle {
			pids = append(pids, c.PgConn().PID())
		}
		return pids
	}
	commit(t, w, "orders", warehouse.Merge, ordersSchema, records.Position{}, ordersBatch(row{id: 1, name: "a"}))
	first := idle()
	if len(first) != 1 {
		t.Fatalf("idle connections after a commit: %v", first)
	}
	commit(t, w, "orders", warehouse.Merge, ordersSchema, records.Position{}, ordersBatch(row{id: 2, name: "b"}))
	if got := idle(); !cmp.Equal(first, got) {
		t.Errorf("the second commit used another connection: %v, then %v", first, got)
	}
	if _, err := tryCommit(w, "orders", warehouse.Merge, ordersSchema, records.Position{}, ordersBatch(row{id: 3, name: "\x00"})); err == nil {
		t.Fatal("a NUL byte in text was accepted")
	}
	if got := idle(); len(got) != 0 {
		t.Errorf("a failed transaction's connection was kept: %v", got)
	}
	if diff := cmp.Diff([][]string{{"1", "a", "NULL"}, {"2", "b", "NULL"}}, w.rows(t, selectOrders)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}
