package roundtrip

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/warehouse"
	whpg "github.com/sluice-dev/sluice/warehouse/postgres"
)

// TestTypesRoundTrip copies a table of every type from a source database
// to the warehouse (another database of the cluster) and compares each
// column's text form on both sides, and the warehouse's column types.
func TestTypesRoundTrip(t *testing.T) {
	srcURL, src := typesSource(t)
	w := newWH(t)

	for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Merge, warehouse.Append} {
		t.Run(mode.String(), func(t *testing.T) {
			name := "types_" + mode.String()
			syncTable(t, srcURL, "alltypes", w, name, mode)
			compareColumns(t, src, w, "alltypes", name)
		})
	}

	got := map[string]string{}
	for _, r := range w.rows(t, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'wh.types_replace'::regclass AND attnum > 0`) {
		got[r[0]] = r[1]
	}
	want := map[string]string{
		"id": "bigint", "i2": "smallint", "i4": "integer", "i8": "bigint", "f4": "real", "f8": "double precision",
		"n12": "numeric(12,2)", "n18": "numeric(18,4)", "n38": "numeric(38,10)", "nneg": "numeric(5,-2)", "nbig": "numeric(50,5)", "n": "numeric",
		"b": "boolean", "t": "text", "vc": "character varying(20)", "c": "character(3)", "nm": "name", "e": "text",
		"d": "date", "ts": "timestamp without time zone", "tstz": "timestamp with time zone", "ts3": "timestamp(3) without time zone", "tm": "time without time zone",
		"u": "uuid", "j": "json", "jb": "jsonb", "by": "bytea",
		"ai": "integer[]", "at": "text[]", "an": "numeric(10,2)[]", "ats": "timestamp with time zone[]", "ab": "bytea[]", "ae": "text[]", "a2": "integer[]",
		"dom": "integer", "domn": "numeric(10,2)",
		"iv": "interval", "ip": "inet", "ttz": "time with time zone", "rng": "int4range", "tsv": "tsvector", "m": "money", "pt": "point", "bits": "bit varying(8)", "x": "xml",
		whpg.SyncedAtColumn: "timestamp with time zone",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warehouse column types (-want +got):\n%s", diff)
	}
}

// binaryColumns are the columns of alltypes that have a binary COPY form:
// a table of only these is copied in the binary format.
const binaryColumns = `id, i2, i4, i8, f4, f8, n12, n18, n38, nneg, nbig, n, b, t, vc, c, e, d, ts, tstz, ts3, tm,
	u, j, jb, by, ai, "at", an, ats, ab, ae, dom, domn`

// TestTypesRoundTripBinary is TestTypesRoundTrip for a table every column
// of which is copied in the binary format (alltypes itself is copied as
// text: some of its types have no binary writer).
func TestTypesRoundTripBinary(t *testing.T) {
	srcURL, src := typesSource(t)
	w := newWH(t)
	ctx := context.Background()
	exec(t, src, `CREATE TABLE bintypes AS SELECT `+binaryColumns+` FROM alltypes; ALTER TABLE bintypes ADD PRIMARY KEY (id)`)

	prov := sourceProvider(t, srcURL)
	for table, want := range map[string]bool{"bintypes": true, "alltypes": false} {
		schema, err := prov.Schema(ctx, providers.ReadRequest{Schema: "public", Table: table})
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := w.Table(ctx, "format_"+table)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := tbl.Begin(ctx, warehouse.Replace, schema, "full_refresh")
		if err != nil {
			t.Fatal(err)
		}
		if got := tx.(*whpg.Tx).Binary(); got != want {
			t.Errorf("%s copied in binary: %v, want %v", table, got, want)
		}
		tx.Abort(ctx)
	}

	for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Merge, warehouse.Append} {
		t.Run(mode.String(), func(t *testing.T) {
			name := "bintypes_" + mode.String()
			syncTable(t, srcURL, "bintypes", w, name, mode)
			compareColumns(t, src, w, "bintypes", name)
		})
	}
}
