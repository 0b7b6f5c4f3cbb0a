package parquet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// ctx is the context of the tests' warehouse calls.
var ctx = context.Background()

// Types of SPEC §5, as providers/postgres maps them.
var (
	tInt16   = records.ParquetType{Physical: records.PhysicalInt32, Logical: records.LogicalInt16, Name: "INT16"}
	tInt32   = records.ParquetType{Physical: records.PhysicalInt32, Name: "INT32"}
	tInt64   = records.ParquetType{Physical: records.PhysicalInt64, Name: "INT64"}
	tFloat   = records.ParquetType{Physical: records.PhysicalFloat, Name: "FLOAT"}
	tDouble  = records.ParquetType{Physical: records.PhysicalDouble, Name: "DOUBLE"}
	tDec9    = records.ParquetType{Physical: records.PhysicalInt32, Logical: records.LogicalDecimal, Precision: 9, Scale: 2, Name: "DECIMAL(9,2)"}
	tDec18   = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalDecimal, Precision: 18, Scale: 4, Name: "DECIMAL(18,4)"}
	tDec38   = records.ParquetType{Physical: records.PhysicalFixedLenByteArray, Logical: records.LogicalDecimal, Precision: 38, Scale: 10, Length: 16, Name: "DECIMAL(38,10)"}
	tBool    = records.ParquetType{Physical: records.PhysicalBoolean, Name: "BOOLEAN"}
	tString  = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalString, Name: "STRING"}
	tJSON    = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalJSON, Name: "JSON"}
	tBytes   = records.ParquetType{Physical: records.PhysicalByteArray, Name: "BYTE_ARRAY"}
	tDate    = records.ParquetType{Physical: records.PhysicalInt32, Logical: records.LogicalDate, Name: "DATE"}
	tTime    = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTime, Name: "TIME(MICROS)"}
	tTS      = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, Name: "TIMESTAMP(MICROS)"}
	tTSTZ    = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}
	tStrList = records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &tString, Name: "LIST<STRING>"}
	tIntList = records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &tInt64, Name: "LIST<INT64>"}
	tDecList = records.ParquetType{Physical: records.PhysicalGroup, Logical: records.LogicalList, Element: &tDec9, Name: "LIST<DECIMAL(9,2)>"}
)

func col(name string, t records.ParquetType) records.Column {
	return records.Column{Name: name, Type: t, SourceType: strings.ToLower(t.Name), Nullable: true}
}

// batchOf builds a batch from rows of Go values: nil is NULL; int for any
// integer column, float64 for FLOAT/DOUBLE, bool, string for byte columns,
// []any for lists.
func batchOf(t testing.TB, s *records.Schema, rows [][]any) *records.Batch {
	t.Helper()
	return fillBatch(t, records.NewBatch(s, len(rows)), rows)
}

// fillBatch empties b and fills it with rows, as a producer reusing its
// batch does.
func fillBatch(t testing.TB, b *records.Batch, rows [][]any) *records.Batch {
	t.Helper()
	b.Reset()
	s := b.Schema
	for _, row := range rows {
		if len(row) != len(s.Columns) {
			t.Fatalf("row %v has %d values for %d columns", row, len(row), len(s.Columns))
		}
		for i, v := range row {
			appendAny(t, &b.Cols[i], s.Columns[i].Type, v)
		}
		b.N++
	}
	return b
}

func appendAny(t testing.TB, v *records.Vec, typ records.ParquetType, x any) {
	t.Helper()
	if x == nil {
		v.AppendNull()
		return
	}
	switch typ.Physical {
	case records.PhysicalBoolean:
		v.AppendBool(x.(bool))
	case records.PhysicalInt32:
		v.AppendInt32(int32(x.(int)))
	case records.PhysicalInt64:
		v.AppendInt64(int64(x.(int)))
	case records.PhysicalFloat:
		v.AppendFloat32(float32(x.(float64)))
	case records.PhysicalDouble:
		v.AppendFloat64(x.(float64))
	case records.PhysicalByteArray, records.PhysicalFixedLenByteArray:
		v.AppendString(x.(string))
	case records.PhysicalGroup:
		for _, e := range x.([]any) {
			appendAny(t, &v.List.Elem, *typ.Element, e)
		}
		v.EndList()
	default:
		t.Fatalf("unsupported type %v", typ)
	}
}

// rowsOf turns a batch back into rows of Go values (the forms batchOf
// takes, with FLOAT as float64).
func rowsOf(b *records.Batch) [][]any {
	out := make([][]any, b.N)
	for r := range b.N {
		row := make([]any, len(b.Cols))
		for i := range b.Cols {
			row[i] = valueOf(&b.Cols[i], b.Schema.Columns[i].Type, r)
		}
		out[r] = row
	}
	return out
}

func valueOf(v *records.Vec, t records.ParquetType, i int) any {
	if v.IsNull(i) {
		return nil
	}
	switch t.Physical {
	case records.PhysicalBoolean:
		return v.Bool[i]
	case records.PhysicalInt32:
		return int(v.I32[i])
	case records.PhysicalInt64:
		return int(v.I64[i])
	case records.PhysicalFloat:
		return float64(v.F32[i])
	case records.PhysicalDouble:
		return v.F64[i]
	case records.PhysicalGroup:
		l := []any{}
		for j := v.List.Offsets[i]; j < v.List.Offsets[i+1]; j++ {
			l = append(l, valueOf(&v.List.Elem, *t.Element, int(j)))
		}
		return l
	default:
		return string(v.Bytes(i))
	}
}

// scanAll reads a table back: its rows sorted by their first column's
// printed value, and the schema's column names.
func scanAll(t testing.TB, tb *Table) (names []string, rows [][]any) {
	t.Helper()
	err := tb.Scan(ctx, func(b *records.Batch) error {
		if names == nil {
			for _, c := range b.Schema.Columns {
				names = append(names, c.Name)
			}
		}
		rows = append(rows, rowsOf(b)...)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	sortRows(rows)
	return names, rows
}

// sortRows orders rows by their first column when it is an integer, else
// by their printed form.
func sortRows(rows [][]any) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, aok := rows[i][0].(int)
		b, bok := rows[j][0].(int)
		if aok && bok && a != b {
			return a < b
		}
		return fmt.Sprint(rows[i]) < fmt.Sprint(rows[j])
	})
}

// withoutSyncedAt drops the last column (_sluice_synced_at) of rows.
func withoutSyncedAt(rows [][]any) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = r[:len(r)-1]
	}
	return out
}

// dataFiles lists the *.parquet files of a table directory.
func dataFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	slices.Sort(m)
	return m
}

// manifestFiles lists the files of a manifest, sorted.
func manifestFiles(m *Manifest) []string {
	var out []string
	for _, f := range m.Files {
		out = append(out, f.Name)
	}
	slices.Sort(out)
	return out
}

// openTestWarehouse opens a warehouse in a temporary directory with a fixed
// clock.
func openTestWarehouse(t testing.TB) *Warehouse {
	t.Helper()
	w, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	w.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	return w
}

func mustTable(t testing.TB, w *Warehouse, name string) *Table {
	t.Helper()
	tb, err := w.OpenTable(name)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// commitRows writes rows in one transaction and commits it.
func commitRows(t testing.TB, tb *Table, mode warehouse.Mode, s *records.Schema, pos records.Position, rows [][]any, opts ...Option) *Manifest {
	t.Helper()
	tx, err := tb.BeginTx(ctx, mode, s, opts...)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if len(rows) > 0 {
		if err := tx.Write(ctx, batchOf(t, s, rows)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	m, err := tx.commitManifest(ctx, pos)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return m
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
