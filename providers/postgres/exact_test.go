package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// exactSetup is a table of the types whose binary format the readers
// decode, with rows cycling through three sets of values: edge values
// the Parquet types cannot hold exactly, ordinary ones, and NULLs.
const exactSetup = `
CREATE TYPE emood AS ENUM ('a', 'b c');
CREATE DOMAIN eintarr AS integer[];
CREATE DOMAIN etsdom AS timestamptz;
CREATE TABLE ev (k int, d date, ts timestamp, tstz timestamptz, n numeric(10,2), dts etsdom,
	an numeric(10,2)[], anu numeric[], ai integer[], "at" text[], ad date[], atstz timestamptz[], ats timestamp[],
	ab bytea[], af float8[], af4 real[], ajb jsonb[], aj json[], au uuid[], abool boolean[], atm time[],
	ai8 bigint[], ai2 smallint[], avc varchar(4)[], ae emood[], aiv interval[], dai eintarr);
INSERT INTO ev VALUES
(0, '-infinity', 'infinity', '-infinity', 'NaN', 'infinity',
 '{NULL,NaN}', '{{NaN}}', '{{1,2},{3,4}}', '[0:1]={"a\"b","c\\d"}', '[2:3]={infinity,"4713-01-01 BC"}', '{"0044-03-15 12:00:00.5+00 BC",-infinity}', '{{"294276-12-31 23:59:59.999999"}}',
 '[0:0]={"\\\\x00ff"}', '{{NaN,-0,1e-300}}', '{{1.5e-45}}', '{{"{\"a\": 1}"}}', '[3:3]={"[1, 2]"}', '{{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}}', '[0:1]={t,NULL}', '{{"24:00:00"}}',
 '{{-9223372036854775808}}', '[-1:-1]={-32768}', '{{"x y",NULL}}', '{{"b c"}}', '{{"1 day"}}', '{{5}}'),
(1, '2020-02-29', '2020-02-29 12:00:00', '2020-02-29 12:00:00+00', 1.5, '2020-02-29 12:00:00+00',
 '{1.5}', '{1}', '{1}', '{a}', '{2020-02-29}', '{"2020-02-29 12:00:00+00"}', '{"2020-02-29 12:00:00"}',
 '{"\\\\x00"}', '{1.5}', '{1.5}', '{"{}"}', '{"[]"}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{t}', '{"12:00:00"}',
 '{1}', '{1}', '{x}', '{a}', '{"1 day"}', '{5}'),
(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE exact (id int PRIMARY KEY, LIKE ev);
INSERT INTO exact SELECT i, ev.* FROM generate_series(1, 3000) i JOIN ev ON ev.k = i % 3;
ALTER TABLE exact DROP COLUMN k;
`

// exactTexts maps "id|column" to the exact text form a read recorded.
type exactTexts struct {
	mu sync.Mutex
	m  map[string]string
	// nulled and kept are the values the Parquet types cannot hold, and
	// those of them the exact texts keep.
	nulled, kept int
}

func (x *exactTexts) emit(b *records.Batch) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[string]string{}
	}
	id := b.Schema.Index("id")
	for c := range b.Cols {
		v := &b.Cols[c]
		x.nulled += v.Nulled
		if v.Exact != nil {
			x.kept += v.Exact.Nulled
		}
		for r := range b.N {
			if text, ok := v.ExactAt(r); ok {
				x.m[fmt.Sprintf("%d|%s", b.Cols[id].I32[r], b.Schema.Columns[c].Name)] = string(text)
			}
		}
	}
	return nil
}

// TestExactTexts reads a table of edge values by a parallel snapshot and
// by the cursor reader, and checks that every value the Parquet type
// cannot hold exactly has an exact text form, which reads back in the
// source as the value itself (format('%s') equal), the same by both paths.
func TestExactTexts(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(exactSetup)
	ctx := context.Background()

	var snap, cur exactTexts
	req := providers.ReadRequest{Table: "exact", Parallel: 3, BatchRows: 100}
	if _, err := f.p.readSnapshot(ctx, req, snap.emit, snapshotTuning{minParallelBytes: 1, minChunkBytes: 1}); err != nil {
		t.Fatal(err)
	}
	req.Cursor = "id"
	if _, err := f.p.ReadIncremental(ctx, req, cur.emit); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snap.m, cur.m); diff != "" {
		t.Errorf("exact texts of the snapshot and the cursor read differ (-snapshot +cursor):\n%s", diff)
	}
	if snap.nulled == 0 || snap.kept != snap.nulled || cur.kept != cur.nulled || cur.nulled != snap.nulled {
		t.Errorf("nulled values kept: snapshot %d of %d, cursor %d of %d; want all", snap.kept, snap.nulled, cur.kept, cur.nulled)
	}

	// Every column of each edge row (id % 3 == 0, k 0) has its exact text;
	// no other row has one.
	cols := queryStrings(t, f, `SELECT attname FROM pg_attribute WHERE attrelid = 'exact'::regclass AND attnum > 1 AND NOT attisdropped ORDER BY attnum`)
	if want := 1000 * len(cols); len(snap.m) != want {
		t.Errorf("%d exact texts, want %d (every column of the 1000 edge rows)", len(snap.m), want)
	}
	for _, c := range cols {
		var typ string
		if err := f.conn.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'exact'::regclass AND attname = $1`, c).Scan(&typ); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int{3, 1503, 3000} {
			text, ok := snap.m[fmt.Sprintf("%d|%s", id, c)]
			if !ok {
				t.Errorf("row %d, column %s: no exact text", id, c)
				continue
			}
			var same bool
			var want, got string
			q := fmt.Sprintf(`SELECT format('%%s', %[1]s), format('%%s', $1::%[2]s), format('%%s', %[1]s) = format('%%s', $1::%[2]s) FROM exact WHERE id = $2`, quoteIdent(c), typ)
			if err := f.conn.QueryRow(ctx, q, text, id).Scan(&want, &got, &same); err != nil {
				t.Errorf("row %d, column %s: exact text %q: %v", id, c, text, err)
				continue
			}
			if !same {
				t.Errorf("row %d, column %s: exact text %q reads back as %q, want %q", id, c, text, got, want)
			}
		}
	}
}

func quoteIdent(s string) string { return `"` + s + `"` }

func queryStrings(t *testing.T, f *readerFixture, q string) []string {
	t.Helper()
	rows, err := f.conn.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
