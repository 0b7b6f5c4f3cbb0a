package codec

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

func list(e ParquetType) ParquetType {
	return ParquetType{Physical: PhysicalGroup, Logical: LogicalList, Element: &e, Name: "LIST<" + e.Name + ">"}
}

func decimal(p, s int, phys Physical, length int) ParquetType {
	return ParquetType{Physical: phys, Logical: LogicalDecimal, Precision: p, Scale: s, Length: length, Name: fmt.Sprintf("DECIMAL(%d,%d)", p, s)}
}

// TestMapTypeFromCatalog creates a table with a column of every kind of
// type, reads the catalog as the readers do (LoadTypes, Resolve) and checks
// the Parquet type of each column against SPEC §5.
func TestMapTypeFromCatalog(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(context.Background(), pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	pgtest.Exec(t, conn, `
		CREATE EXTENSION citext;
		CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE TYPE pair AS (a int, b text);
		CREATE DOMAIN money2 AS numeric(10,2);
		CREATE DOMAIN money2_positive AS money2 CHECK (VALUE > 0);
		CREATE DOMAIN tags AS text[];
		CREATE DOMAIN grid AS int[][];
		CREATE DOMAIN "Quoted Domain" AS timestamptz;`)

	tests := []struct {
		typ  string
		want ParquetType
	}{
		{"smallint", ParquetInt16},
		{"integer", ParquetInt32},
		{"bigint", ParquetInt64},
		{"real", ParquetFloat},
		{"double precision", ParquetDouble},
		{"numeric(12,2)", decimal(12, 2, PhysicalInt64, 0)},
		{"numeric(9,0)", decimal(9, 0, PhysicalInt32, 0)},
		{"numeric(18,4)", decimal(18, 4, PhysicalInt64, 0)},
		{"numeric(19,4)", decimal(19, 4, PhysicalFixedLenByteArray, 9)},
		{"numeric(38,10)", decimal(38, 10, PhysicalFixedLenByteArray, 16)},
		{"numeric(39,2)", ParquetString},
		{"numeric", ParquetString},
		{"numeric(5,-2)", decimal(7, 0, PhysicalInt32, 0)},
		{"numeric(2,5)", decimal(5, 5, PhysicalInt32, 0)},
		{"boolean", ParquetBoolean},
		{"text", ParquetString},
		{"varchar(20)", ParquetString},
		{"varchar", ParquetString},
		{"char(3)", ParquetString},
		{`"char"`, ParquetString},
		{"name", ParquetString},
		{"citext", ParquetString},
		{"mood", ParquetString},
		{"date", ParquetDate},
		{"timestamp", ParquetTimestamp},
		{"timestamp(3)", ParquetTimestamp},
		{"timestamptz", ParquetTimestampTZ},
		{"time", ParquetTime},
		{"uuid", ParquetString},
		{"json", ParquetJSON},
		{"jsonb", ParquetJSON},
		{"bytea", ParquetBytes},
		{"integer[]", list(ParquetInt32)},
		{"text[]", list(ParquetString)},
		{"numeric(10,2)[]", list(decimal(10, 2, PhysicalInt64, 0))},
		{"mood[]", list(ParquetString)},
		{"jsonb[]", list(ParquetJSON)},
		{"citext[]", list(ParquetString)},
		{"timestamptz[]", list(ParquetTimestampTZ)},
		{"interval[]", list(ParquetString)},
		{"text[][]", ParquetString},
		{"integer[3][3]", ParquetString},
		{"money2", decimal(10, 2, PhysicalInt64, 0)},
		{"money2_positive", decimal(10, 2, PhysicalInt64, 0)},
		{"money2[]", list(decimal(10, 2, PhysicalInt64, 0))},
		{"tags", list(ParquetString)},
		{"grid", ParquetString},
		{`"Quoted Domain"`, ParquetTimestampTZ},
		// Everything Parquet has no type for is PostgreSQL's text form.
		{"interval", ParquetString},
		{"inet", ParquetString},
		{"cidr", ParquetString},
		{"macaddr", ParquetString},
		{"timetz", ParquetString},
		{"int4range", ParquetString},
		{"tstzmultirange", ParquetString},
		{"tsvector", ParquetString},
		{"money", ParquetString},
		{"point", ParquetString},
		{"polygon", ParquetString},
		{"bit(3)", ParquetString},
		{"varbit", ParquetString},
		{"xml", ParquetString},
		{"oid", ParquetString},
		{"regclass", ParquetString},
		{"int2vector", ParquetString},
		{"pair", ParquetString},
		{"pair[]", list(ParquetString)},
	}
	cols := make([]string, len(tests))
	for i, tt := range tests {
		cols[i] = fmt.Sprintf("c%d %s", i, tt.typ)
	}
	pgtest.Exec(t, conn, "CREATE TABLE every_type ("+strings.Join(cols, ", ")+")")

	rows, err := conn.Query(ctx, `SELECT attnum, atttypid, atttypmod, attndims FROM pg_attribute
		WHERE attrelid = 'every_type'::regclass AND attnum > 0 ORDER BY attnum`)
	if err != nil {
		t.Fatal(err)
	}
	type attr struct {
		oid    uint32
		typmod int32
		dims   int
	}
	var attrs []attr
	var oids []uint32
	for rows.Next() {
		var n int
		var a attr
		if err := rows.Scan(&n, &a.oid, &a.typmod, &a.dims); err != nil {
			t.Fatal(err)
		}
		attrs = append(attrs, a)
		oids = append(oids, a.oid)
	}
	if rows.Err() != nil || len(attrs) != len(tests) {
		t.Fatalf("read %d columns (%v), want %d", len(attrs), rows.Err(), len(tests))
	}
	cat, err := LoadTypes(ctx, conn, oids)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		typ := cat.Resolve(attrs[i].oid, attrs[i].typmod, attrs[i].dims)
		if diff := cmp.Diff(tt.want, MapType(typ)); diff != "" {
			t.Errorf("%s (%v): (-want +got)\n%s", tt.typ, typ, diff)
		}
	}
}

// TestMapTypeWithoutCatalog covers the built-in types, which CDC can map
// from a relation message's OIDs alone.
func TestMapTypeWithoutCatalog(t *testing.T) {
	numeric102 := int32(10<<16|2) + 4
	tests := []struct {
		oid    uint32
		typmod int32
		want   ParquetType
	}{
		{pgtype.Int4OID, -1, ParquetInt32},
		{pgtype.NumericOID, numeric102, decimal(10, 2, PhysicalInt64, 0)},
		{pgtype.NumericOID, -1, ParquetString},
		{pgtype.TimestamptzOID, -1, ParquetTimestampTZ},
		{pgtype.Int4ArrayOID, -1, list(ParquetInt32)},
		{pgtype.NumericArrayOID, numeric102, list(decimal(10, 2, PhysicalInt64, 0))},
		{pgtype.JSONBArrayOID, -1, list(ParquetJSON)},
		{pgtype.IntervalOID, -1, ParquetString},
		{123456789, -1, ParquetString}, // an unknown extension type
	}
	for _, tt := range tests {
		got := MapType(TypeCatalog(nil).Resolve(tt.oid, tt.typmod, 0))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("oid %d typmod %d: (-want +got)\n%s", tt.oid, tt.typmod, diff)
		}
	}
}

func TestDecimalBytes(t *testing.T) {
	// The Parquet format's table of the maximum precision per width.
	for n, maxP := range map[int]int{1: 2, 2: 4, 4: 9, 8: 18, 9: 21, 16: 38} {
		if got := decimalBytes(maxP); got != n {
			t.Errorf("decimalBytes(%d) = %d, want %d", maxP, got, n)
		}
		if got := decimalBytes(maxP + 1); got != n+1 {
			t.Errorf("decimalBytes(%d) = %d, want %d", maxP+1, got, n+1)
		}
	}
}
