package roundtrip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
	pgsource "github.com/sluice-dev/sluice/providers/postgres"
	"github.com/sluice-dev/sluice/warehouse"
	whpg "github.com/sluice-dev/sluice/warehouse/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testWH is a PostgreSQL warehouse (schema wh) in a fresh database, with
// a connection to check what it wrote.
type testWH struct {
	*whpg.Warehouse
	conn *pgx.Conn
}

func newWH(t *testing.T) *testWH {
	t.Helper()
	ctx := context.Background()
	u := pgtest.NewDB(t)
	w, err := whpg.Open(ctx, &config.Warehouse{Backend: "postgres", URL: u, Schema: "wh"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &testWH{Warehouse: w, conn: conn}
}

// rows returns the result of q as text, NULL as "NULL".
func (w *testWH) rows(t *testing.T, q string, args ...any) [][]string {
	t.Helper()
	return pgtest.QueryText(t, w.conn, q, args...)
}

func queryText(t *testing.T, conn *pgx.Conn, q string, args ...any) [][]string {
	t.Helper()
	return pgtest.QueryText(t, conn, q, args...)
}

func exec(t *testing.T, conn *pgx.Conn, q string, args ...any) {
	t.Helper()
	pgtest.Exec(t, conn, q, args...)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// typesSource is a fresh source database holding typesDDL's tables, and a
// connection to it.
func typesSource(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	u := pgtest.NewDB(t)
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	exec(t, conn, typesDDL)
	return u, conn
}

// sourceProvider is the PostgreSQL source provider of the database at u.
func sourceProvider(t *testing.T, u string) *pgsource.Provider {
	t.Helper()
	p, err := pgsource.New(&config.Source{Type: "postgres", Name: "src", Postgres: &config.Postgres{ConnectionString: u, ConnectTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// compareColumns compares each column of a source table with the
// warehouse table's, by their text forms.
func compareColumns(t *testing.T, src *pgx.Conn, w *testWH, srcTable, whTable string) {
	t.Helper()
	cols := queryText(t, src, `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, srcTable)
	for _, c := range cols {
		q := `SELECT ` + pgx.Identifier{c[0]}.Sanitize() + `::text FROM %s ORDER BY id`
		want := queryText(t, src, sprintf(q, pgx.Identifier{"public", srcTable}.Sanitize()))
		got := w.rows(t, sprintf(q, pgx.Identifier{"wh", whTable}.Sanitize()))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("column %s (-source +warehouse):\n%s", c[0], diff)
		}
	}
}

// syncTable reads a source table with the PostgreSQL source's snapshot
// reader and commits it to the warehouse table name, as the runner does.
func syncTable(t *testing.T, srcURL, table string, w warehouse.Warehouse, name string, mode warehouse.Mode) {
	t.Helper()
	ctx := context.Background()
	src := sourceProvider(t, srcURL)
	req := providers.ReadRequest{Schema: "public", Table: table, BatchRows: 2}
	schema, err := src.Schema(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := w.Table(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := tbl.Begin(ctx, mode, schema, "full_refresh")
	if err != nil {
		t.Fatal(err)
	}
	pos, err := src.ReadSnapshot(ctx, req, func(b *records.Batch) error { return tx.Write(ctx, b) })
	if err != nil {
		tx.Abort(ctx)
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx, pos); err != nil {
		t.Fatal(err)
	}
}

// typesDDL has a column of every type of SPEC §5, and rows with edge
// values of each (infinite timestamps and NaN decimals excepted: the
// mapping makes them NULL, on purpose).
const typesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'happy', 'with "quotes", commas');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN price AS numeric(10,2);
CREATE TABLE alltypes (
	id bigint PRIMARY KEY,
	i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
	n12 numeric(12,2), n18 numeric(18,4), n38 numeric(38,10), nneg numeric(5,-2), nbig numeric(50,5), n numeric,
	b boolean, t text, vc varchar(20), c char(3), nm name, e mood,
	d date, ts timestamp, tstz timestamptz, ts3 timestamp(3), tm time,
	u uuid, j json, jb jsonb, by bytea,
	ai integer[], "at" text[], an numeric(10,2)[], ats timestamptz[], ab bytea[], ae mood[], a2 integer[][],
	dom posint, domn price,
	iv interval, ip inet, ttz timetz, rng int4range, tsv tsvector, m money, pt point, bits bit varying(8), x xml
);
INSERT INTO alltypes VALUES
(1, -32768, -2147483648, -9223372036854775808, 1.17549435e-38, -1.7976931348623157e308,
 -9999999999.99, 12345678901234.5678, -1234567890123456789012345678.0123456789, 9999900, 123456789012345678901234567890123456789012345.12345, 'NaN',
 true, E'tab\there\nnewline \\ backslash "quote" \'single\' ∑ 🦆', 'varchar', 'ab', 'name', 'with "quotes", commas',
 '4713-01-01 BC', '0001-01-01 00:00:00 BC', '1970-01-01 00:00:00.000001+00', '2024-02-29 23:59:59.999', '24:00:00',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1,  "a": [1, 2.50, "\u00e9"], "dup": 1, "dup": 2}', '{"z": {"y": null}, "a": "\\t"}', E'\\x00ff5c0a09',
 '{1,NULL,-3}', '{"",NULL,"a,b","c\"d","e\\f","NULL"," sp "}', '{1.50,NULL}', '{"2020-01-01 00:00:00+00",NULL}', '{"\\\\x00","\\\\x5c22"}', '{sad,"with \"quotes\", commas"}', '{{1,2},{3,4}}',
 1, 12.34,
 '1 year 2 mons -3 days 04:05:06.000007', '2001:db8::1/64', '12:00:00+05:30', '[1,10)', 'a fat:2 cat', '12.34', '(1.5,-2)', B'1011', '<a b="1">x &amp; y</a>'),
(2, 32767, 2147483647, 9223372036854775807, 'Infinity', 'NaN',
 0.01, -0.0001, 0.0000000001, -100, 0.00001, '-1e-20',
 false, '', '', '   ', '', 'sad',
 '5874897-12-31', '10000-01-01 00:00:00.5', '1900-01-01 00:00:00+01', '1999-12-31 23:59:59', '00:00:00',
 '00000000-0000-0000-0000-000000000000', '[]', '"scalar"', E'\\x',
 '{}', '{}', '{}', '{}', '{}', '{}', '{}',
 2147483647, -0.01,
 '0', '0.0.0.0', '00:00:00-12', 'empty', '', '-0.01', '(0,0)', B'', '<r/>'),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`
