package postgres

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

func TestTableName(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"postgres_orders", "postgres_orders"},
		{"Stripe-Charges.2024", "stripe_charges_2024"},
		{"café", "caf_"},
		{strings.Repeat("a", 63), strings.Repeat("a", 63)},
	}
	for _, tt := range tests {
		if got := TableName(tt.in); got != tt.want {
			t.Errorf("TableName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Long names sharing their first 54 bytes stay apart, are 63 bytes
	// long, and map to the same name every time.
	long := "postgres_prod_" + strings.Repeat("x", 60)
	a, b := TableName(long+"_a"), TableName(long+"_b")
	for _, n := range []string{a, b} {
		if len(n) != maxIdentifierBytes || !strings.HasPrefix(n, long[:54]+"_") {
			t.Errorf("TableName of a long name = %q (%d bytes)", n, len(n))
		}
	}
	if a == b {
		t.Errorf("two long names collide: %q", a)
	}
	if TableName(long+"_a") != a {
		t.Error("TableName is not stable")
	}
	if got := derivedName(a, "_pkey"); len(got) > maxIdentifierBytes || got == a {
		t.Errorf("derivedName(%q, _pkey) = %q", a, got)
	}
}

// TestIdentifiers writes tables whose names need truncation and columns
// whose names need quoting.
func TestIdentifiers(t *testing.T) {
	w := newWH(t, false)
	cols := []string{"id", "Mixed Case", `quote"d`, "ünïcödé 列", "select", strings.Repeat("é", 31), "a,b", "back\\slash"}
	s := &records.Schema{PrimaryKey: []string{"Mixed Case"}}
	for _, c := range cols {
		s.Columns = append(s.Columns, records.Column{Name: c, Type: tString, SourceType: "text"})
	}
	long := "postgres_prod_" + strings.Repeat("long_name_", 6)
	names := []string{long + "one", long + "two", strings.Repeat("t", 63)}
	for _, name := range names {
		for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Merge, warehouse.Append} {
			b := records.NewBatch(s, 1)
			for ci, c := range cols {
				b.Cols[ci].AppendString(mode.String() + ":" + c)
			}
			b.N = 1
			pos := records.Position{Cursor: name + mode.String()}
			tbl, err := w.Table(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			sync := "incremental"
			if mode == warehouse.Append {
				sync = "append"
			}
			tx, err := tbl.Begin(ctx, mode, s, sync)
			if err != nil {
				t.Fatalf("%s %s: %v", name, mode, err)
			}
			if err := tx.Write(ctx, b); err != nil {
				t.Fatalf("%s %s: %v", name, mode, err)
			}
			if _, err := tx.Commit(ctx, pos); err != nil {
				t.Fatalf("%s %s: %v", name, mode, err)
			}
			if got, _ := position(t, w, name); got.Cursor != pos.Cursor {
				t.Errorf("%s: position %q, want %q", name, got.Cursor, pos.Cursor)
			}
		}
	}
	got := w.rows(t, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'wh' AND c.relkind = 'r' AND c.relname <> '_sluice_positions' ORDER BY 1`)
	want := [][]string{{TableName(names[0])}, {TableName(names[1])}, {names[2]}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}
	if want[0][0] == want[1][0] {
		t.Fatalf("two names collide: %q", want[0][0])
	}
	// The columns keep their names.
	for _, name := range names {
		q := `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum`
		got := w.rows(t, q, "wh."+`"`+TableName(name)+`"`)
		var gotCols []string
		for _, r := range got {
			gotCols = append(gotCols, r[0])
		}
		if diff := cmp.Diff(append(append([]string{}, cols...), SyncedAtColumn), gotCols); diff != "" {
			t.Errorf("%s columns (-want +got):\n%s", name, diff)
		}
	}
	// Replace, Merge (same key: one row) and Append (another key).
	got = w.rows(t, `SELECT "Mixed Case", "ünïcödé 列", "quote""d" FROM wh.`+`"`+names[2]+`" ORDER BY 1`)
	want = [][]string{{"append:Mixed Case", "append:ünïcödé 列", `append:quote"d`}, {"merge:Mixed Case", "merge:ünïcödé 列", `merge:quote"d`}, {"replace:Mixed Case", "replace:ünïcödé 列", `replace:quote"d`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}
