package postgres

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// ctx is the context of the tests' warehouse calls that have none of
// their own.
var ctx = context.Background()

// Column types of the tests' schemas.
var (
	tBool   = records.ParquetType{Physical: records.PhysicalBoolean, Name: "BOOLEAN"}
	tInt32  = records.ParquetType{Physical: records.PhysicalInt32, Name: "INT32"}
	tInt64  = records.ParquetType{Physical: records.PhysicalInt64, Name: "INT64"}
	tString = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalString, Name: "STRING"}
	tJSON   = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalJSON, Name: "JSON"}
	tTSTZ   = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}
	tDec    = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalDecimal, Precision: 12, Scale: 2, Name: "DECIMAL(12,2)"}
	tStrs   = records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &tString, Name: "LIST<STRING>"}
)

// testWH is a warehouse in a fresh database, with a connection to check
// what it wrote.
type testWH struct {
	*Warehouse
	url  string
	conn *pgx.Conn
}

func newWH(t testing.TB, dropCascade bool) *testWH {
	t.Helper()
	u := pgtest.NewDB(t)
	return openWH(t, u, "wh", dropCascade)
}

func openWH(t testing.TB, u, schema string, dropCascade bool) *testWH {
	t.Helper()
	ctx := context.Background()
	w, err := Open(ctx, &config.Warehouse{Backend: "postgres", URL: u, Schema: schema, DropCascade: dropCascade}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &testWH{Warehouse: w, url: u, conn: conn}
}

// withUser returns u connecting as user.
func withUser(t *testing.T, u, user string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.User = url.User(user)
	return p.String()
}

// rows returns the result of q as text, NULL as "NULL".
func (w *testWH) rows(t *testing.T, q string, args ...any) [][]string {
	t.Helper()
	return queryText(t, w.conn, q, args...)
}

func queryText(t *testing.T, conn *pgx.Conn, q string, args ...any) [][]string {
	t.Helper()
	return pgtest.QueryText(t, conn, q, args...)
}

func exec(t *testing.T, conn *pgx.Conn, q string, args ...any) {
	t.Helper()
	pgtest.Exec(t, conn, q, args...)
}

// row is one row of the orders schema: nil fields are NULL; unchanged
// names columns a change did not carry.
type row struct {
	id        int64
	name      any // string or nil
	amount    any // int64 (cents) or nil
	unchanged []string
}

var ordersSchema = &records.Schema{
	Columns: []records.Column{
		{Name: "id", Type: tInt64, SourceType: "bigint"},
		{Name: "name", Type: tString, SourceType: "text", Nullable: true},
		{Name: "amount", Type: tDec, SourceType: "numeric(12,2)", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

func ordersBatch(rows ...row) *records.Batch {
	b := records.NewBatch(ordersSchema, len(rows))
	for i, r := range rows {
		b.Cols[0].AppendInt64(r.id)
		if s, ok := r.name.(string); ok {
			b.Cols[1].AppendString(s)
		} else {
			b.Cols[1].AppendNull()
		}
		if a, ok := r.amount.(int64); ok {
			b.Cols[2].AppendInt64(a)
		} else {
			b.Cols[2].AppendNull()
		}
		for _, u := range r.unchanged {
			ci := ordersSchema.Index(u)
			v := &b.Cols[ci]
			if v.Unchanged == nil {
				v.Unchanged = make([]bool, len(rows))
			}
			v.Unchanged[i] = true
		}
		b.N++
	}
	return b
}

// commit writes batches in one transaction of mode and commits pos.
func commit(t *testing.T, w warehouse.Warehouse, name string, mode warehouse.Mode, s *records.Schema, pos records.Position, batches ...*records.Batch) int64 {
	t.Helper()
	rows, err := tryCommit(w, name, mode, s, pos, batches...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func tryCommit(w warehouse.Warehouse, name string, mode warehouse.Mode, s *records.Schema, pos records.Position, batches ...*records.Batch) (int64, error) {
	tbl, err := w.Table(ctx, name)
	if err != nil {
		return 0, err
	}
	sync := map[warehouse.Mode]string{warehouse.Replace: "full_refresh", warehouse.Merge: "incremental", warehouse.Append: "append"}[mode]
	tx, err := tbl.Begin(ctx, mode, s, sync)
	if err != nil {
		return 0, err
	}
	for _, b := range batches {
		if err := tx.Write(ctx, b); err != nil {
			tx.Abort(ctx)
			return 0, err
		}
	}
	return tx.Commit(ctx, pos)
}

func position(t *testing.T, w warehouse.Warehouse, name string) (records.Position, bool) {
	t.Helper()
	tbl, err := w.Table(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return tbl.Position()
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
