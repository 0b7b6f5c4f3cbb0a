package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/providers"
)

// TestQueryTables: a custom SQL table is described without running its
// query (types from the description, as a table's), read whole by a
// snapshot, and read past its cursor like a table, ties included; its
// errors name it and what to fix.
func TestQueryTables(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE orders (id bigint PRIMARY KEY, status text, total numeric(12,2), updated_at timestamptz, tags text[]);
	INSERT INTO orders SELECT i, CASE WHEN i % 2 = 0 THEN 'paid' ELSE 'new' END, i * 1.5, '2024-01-01 00:00:00+00'::timestamptz + (i / 3) * interval '1 day', ARRAY['a']
	FROM generate_series(1, 12) i;
	CREATE TABLE runs (n int)`)
	query := "SELECT id, total, updated_at, tags FROM orders WHERE status = 'paid' ;"
	req := providers.ReadRequest{Table: "paid_orders", Query: query, PrimaryKey: []string{"id"}, Cursor: "updated_at", BatchRows: 2}
	schema, err := f.p.Schema(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ Name, Type string }
	var got []col
	for _, c := range schema.Columns {
		got = append(got, col{c.Name, c.SourceType})
	}
	want := []col{{"id", "bigint"}, {"total", "numeric(12,2)"}, {"updated_at", "timestamp with time zone"}, {"tags", "text[]"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("described columns (-want +got):\n%s", d)
	}

	snap := &collected{}
	if _, err := f.p.ReadSnapshot(context.Background(), req, snap.emit); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]int64{2, 4, 6, 8, 10, 12}, snap.ints("id")); d != "" {
		t.Errorf("snapshot of the query (-want +got):\n%s", d)
	}
	runSyncs(t, f, f.p.ReadIncremental, req, "id", []syncStep{
		{"", []int64{2, 4, 6, 8, 10, 12}, "2024-01-05 00:00:00+00", 1},
		{`INSERT INTO orders VALUES (13, 'paid', 1, '2024-01-05 00:00:00+00', NULL), (14, 'new', 1, '2024-01-09 00:00:00+00', NULL), (15, 'paid', 1, '2024-01-09 00:00:00+00', NULL)`,
			[]int64{13, 15}, "2024-01-09 00:00:00+00", 1},
	})

	for _, tc := range []struct {
		name string
		req  providers.ReadRequest
		want string
	}{
		{"syntax", providers.ReadRequest{Table: "q", Query: "SELEC 1"}, `the query of q: ERROR: syntax error at or near "SELEC"`},
		{"missing table", providers.ReadRequest{Table: "q", Query: "SELECT * FROM nowhere"}, `relation "nowhere" does not exist`},
		{"cursor not in the result", providers.ReadRequest{Table: "q", Query: "SELECT id FROM orders", Cursor: "updated_at"}, `returns no column "updated_at" (it returns "id")`},
		{"not a select", providers.ReadRequest{Table: "q", Query: "DELETE FROM orders RETURNING id"}, `must be a SELECT`},
		{"parameters", providers.ReadRequest{Table: "q", Query: "SELECT id FROM orders WHERE id > $1"}, `has parameters`},
		{"two columns of one name", providers.ReadRequest{Table: "q", Query: "SELECT id, id FROM orders"}, `returns two columns named "id"`},
	} {
		_, err := f.p.Schema(context.Background(), tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// Described, never run: the query's side effects do not happen.
	if _, err := f.p.Schema(context.Background(), providers.ReadRequest{Table: "q", Query: "SELECT n FROM runs, pg_catalog.pg_sleep(5) s"}); err != nil {
		t.Fatal(err)
	}
}
