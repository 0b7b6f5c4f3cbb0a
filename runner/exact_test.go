package runner

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	whpg "github.com/sluice-dev/sluice/warehouse/postgres"
)

// edgeSetup creates edge_full, edge_inc and edge_cdc: the same columns of
// values the Parquet types cannot hold (±infinity, NaN, arrays of several
// dimensions or other bounds, lists with such elements) beside types
// Parquet has no equivalent for, with rows of edge values.
var edgeSetup = `
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE mood AS ENUM ('sad', 'happy', 'with "quotes", commas');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN tsdom AS timestamptz;
CREATE DOMAIN numdom AS numeric(8,3);
CREATE DOMAIN intarr AS integer[];
` + edgeTable("edge_full") + edgeTable("edge_inc") + edgeTable("edge_cdc") + edgeTable("edge_xmin") + `
INSERT INTO edge_full VALUES
(1, 1, 'infinity', 'infinity', 'infinity', '-infinity',
 'NaN', '-Infinity', 'NaN', 'NaN',
 '{NULL,NaN}', '{{1.5,NaN},{Infinity,-2}}', '{{1,2},{3,4}}', '{{{1}},{{2}}}', '[0:1]={a,b}', '{infinity,-infinity,2020-01-01}', '{infinity,"0044-03-15 12:00:00.5+00 BC"}', '[-3:-2]={-infinity,"10000-01-01 00:00:00"}',
 '{{"\\\\x00","\\\\x5c22"}}', '{{NaN,Infinity},{-Infinity,-0}}', '[2:3]={1e-45,3.4e38}', '{{"{\"a\": [1, null]}","\"x\""}}', '[0:0]={"{\"b\": 1,  \"a\": 2}"}', '[5:5]={a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{{t,f},{NULL,t}}', '{{"24:00:00","00:00:00.000001"}}', '{{-9223372036854775808},{9223372036854775807}}', '[0:1]={-32768,32767}',
 '{{sad,"with \"quotes\", commas"}}', '[0:1]={1,2}', '{{"1 day","-00:00:01"}}', '[0:0]={"[1,5)"}', (SELECT ('{' || string_agg('(1,1),(0,0)', ';') || ';(3,3),(2,2)}')::box[] FROM generate_series(1, 300)), '{{"a b",""},{NULL,"NULL"}}', '[7:7]={"x "}',
 '-infinity', 'NaN', '{{1},{2}}',
 '16/B374D848', '12:00:00+05:30', '1 year 2 mons -3 days 04:05:06.000007', '-12.34', B'1011', B'', '[1,10)', '{[1,3),[5,7)}', '[-infinity,infinity)',
 'a fat:2 cat', 'fat & !rat', '<a b="1">x &amp; y</a>', '(1.5,-2)', '{1,-1,0}', '[(0,0),(1,1)]', '(1,1),(0,0)', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))', '<(0,0),1.5>',
 4294967295, 'edge_full', 'integer[]', 'x', '10.0.0.0/8', '2001:db8::1/64', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
 '"a"=>"1", "b"=>NULL', 'top.science.astronomy', 'MiXeD', '(1,"x, y")', 'with "quotes", commas', '00000000-0000-0000-0000-000000000000', '$.a[*] ? (@ > 1)', '18446744073709551615',
 repeat('toast ', 2000)),
(2, 2, '4713-01-01 BC', '0001-01-01 00:00:00 BC', '1970-01-01 00:00:00.000001+00', '294276-12-31 23:59:59.999+00',
 -99999999.99, '-1e-20', 123456789012345678901234567890123.12345, 9999900,
 '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
 '{}', '{NaN,1.7976931348623157e308}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
 '{}', '{}', '{}', '{}', '{}', '{}', '{}',
 'infinity', -99999.999, '[0:0]={5}',
 '0/0', '00:00:00-12', '0', '0', B'0000', B'1', 'empty', '{}', 'empty',
 '', '', '<r/>', '(0,0)', '{0,1,0}', '[(0,0),(0,0)]', '(0,0),(0,0)', '((0,0))', '((0,0))', '<(0,0),0>',
 0, 'pg_class', 'text', '"', '::/0', '0.0.0.0', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00',
 '', '', '', '(,)', 'sad', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '$', '0',
 'small'),
(3, 3, '2024-02-29', '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.999999+00', NULL,
 1.5, '1.50', NULL, -100,
 '{1.5,NULL}', '{1}', '{1,NULL,-3}', '{{1,NULL}}', '{"",NULL,"a,b","c\"d","e\\f","NULL"," sp "}', '{2020-01-01}', '{"2020-01-01 00:00:00+00"}', '{"2020-01-01 00:00:00"}',
 '{"\\\\x"}', '{1.5}', '{1.5}', '{"[]"}', '{"{}"}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{t}', '{"12:00:00"}', '{1}', '{1}',
 '{happy}', '{1}', '{"1 mon"}', '{"[1,2)"}', '{(1,1),(0,0)}', '{"a,b"}', '{ab}',
 '2024-02-29 00:00:00+00', 1.5, '{1,2}',
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL);
CREATE TABLE edge_key (k timestamptz PRIMARY KEY, n int, body text);
ALTER TABLE edge_key ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO edge_key VALUES ('infinity', 1, repeat('inf ', 3000)), ('-infinity', 2, repeat('-inf ', 3000)), ('2020-01-01', 3, repeat('x ', 3000));
INSERT INTO edge_inc SELECT * FROM edge_full;
INSERT INTO edge_cdc SELECT * FROM edge_full;
INSERT INTO edge_xmin SELECT * FROM edge_full;
`

// edgeTable is the DDL of one of the edge tables (CREATE TABLE LIKE
// would not keep ai2's declared dimensions).
func edgeTable(name string) string {
	return strings.ReplaceAll(`CREATE TABLE {T} (
	id int PRIMARY KEY, seq bigint NOT NULL,
	d date, ts timestamp, tstz timestamptz, ts3 timestamp(3) with time zone,
	n numeric(10,2), nu numeric, nbig numeric(40,5), ndom numeric(5,-2),
	an numeric(10,2)[], anu numeric[], ai integer[], ai2 integer[][], at text[], ad date[], atstz timestamptz[], ats timestamp[],
	ab bytea[], af float8[], af4 real[], ajb jsonb[], aj json[], au uuid[], abool boolean[], atm time[], ai8 bigint[], ai2s smallint[],
	ae mood[], adom posint[], aiv interval[], arng int4range[], abox box[], avc varchar(5)[], ach char(2)[],
	dts tsdom, dn numdom, dai intarr,
	lsn pg_lsn, ttz timetz, iv interval, m money, bits bit(4), vb varbit, r int4range, mr int4multirange, tr tstzrange,
	tsv tsvector, tsq tsquery, x xml, pt point, ln line, ls lseg, bx box, pa path, pg polygon, ci circle,
	o oid, rc regclass, rt regtype, qc "char", cd cidr, ip inet, mac macaddr, mac8 macaddr8,
	hs hstore, lt ltree, ct citext, cp pair, e mood, u uuid, jp jsonpath, x8 xid8,
	body text
);
ALTER TABLE {T} ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE {T} ALTER COLUMN abox SET STORAGE EXTERNAL;
`, "{T}", name)
}

const edgeTables = `
  table "edge_full" {
    sync = "full_refresh"
  }
  table "edge_inc" {
    sync              = "incremental"
    incremental_field = "seq"
  }
  table "edge_cdc" {
    sync       = "cdc"
    cdc_output = "both"
  }
  table "edge_xmin" {
    sync = "xmin"
  }
  table "edge_key" {
    sync       = "cdc"
    cdc_output = "both"
  }`

// edgeChanges adds rows and changes to every table: new rows (by copying
// and renumbering rows 1 and 2) and updates that leave the TOASTed body
// and box array unchanged (so CDC fills them from the warehouse).
func edgeChanges(e *cdcEnv, seq int) {
	e.t.Helper()
	for _, tbl := range []string{"edge_full", "edge_inc", "edge_cdc", "edge_xmin"} {
		q := strings.ReplaceAll(`
INSERT INTO {T} SELECT id + 10*{S}, 1000*{S} + id, d, ts, tstz, ts3, n, nu, nbig, ndom, an, anu, ai, ai2, at, ad, atstz, ats, ab, af, af4, ajb, aj, au, abool, atm, ai8, ai2s,
	ae, adom, aiv, arng, abox, avc, ach, dts, dn, dai, lsn, ttz, iv, m, bits, vb, r, mr, tr, tsv, tsq, x, pt, ln, ls, bx, pa, pg, ci,
	o, rc, rt, qc, cd, ip, mac, mac8, hs, lt, ct, cp, e, u, jp, x8, body FROM {T} WHERE id IN (1, 2);
UPDATE {T} SET seq = 1000*{S} + 500 + id, d = '-infinity', n = 'NaN', nu = 'Infinity', ai = '[0:1][5:5]={{7},{8}}', an = '{NaN}' WHERE id = 1;
UPDATE {T} SET seq = 1000*{S} + 500 + id, tstz = 'infinity', at = '{{x}}', nu = 'NaN' WHERE id = 3;`, "{T}", tbl)
		e.exec(strings.ReplaceAll(q, "{S}", fmt.Sprint(seq)))
	}
	// Keys the Parquet type cannot hold, whose TOASTed body stays.
	e.exec(`UPDATE edge_key SET n = n + 10`)
}

// TestExactValuesPostgresWarehouse syncs tables of values the Parquet
// types cannot hold into the PostgreSQL warehouse, by full_refresh
// (snapshot), incremental and xmin (cursor reads) and cdc (snapshot, then streamed
// inserts and updates with unchanged TOAST values, consolidated and
// history), and compares every column's text form, format('%s', col),
// with the source's: the warehouse keeps every value, and warns of none.
func TestExactValuesPostgresWarehouse(t *testing.T) {
	e := newCDCEnv(t, edgeSetup, edgeTables, "")
	whURL := pgtest.NewDB(t)
	w, err := whpg.Open(e.ctx, &config.Warehouse{Backend: "postgres", URL: whURL, Schema: "wh", SSLMode: "disable"}, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	e.pgwh = w
	wh, err := pgx.Connect(e.ctx, whURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close(e.ctx) })

	// texts is "key|column|format('%s', column)" for every row and
	// column of a table (where filters its rows).
	texts := func(conn *pgx.Conn, table, where string) []string {
		t.Helper()
		src := "edge_full"
		if strings.Contains(table, "edge_key") {
			src = "edge_key"
		}
		cols := e.source(`SELECT attname FROM pg_attribute WHERE attrelid = '` + src + `'::regclass AND attnum > 0 AND NOT attisdropped`)
		var sel []string
		for _, c := range cols {
			q := pgx.Identifier{c}.Sanitize()
			sel = append(sel, fmt.Sprintf(`SELECT format('%%s', %s) || '|%s|' || coalesce(format('%%s', %s), '<NULL>') FROM %s WHERE %s`, cols[0], c, q, table, where))
		}
		rows, err := conn.Query(e.ctx, strings.Join(sel, " UNION ALL ")+" ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct{ src, wh, where string }{
			{"edge_full", "wh.pg_edge_full", "true"},
			{"edge_inc", "wh.pg_edge_inc", "true"},
			{"edge_xmin", "wh.pg_edge_xmin", "true"},
			{"edge_cdc", "wh.pg_edge_cdc", "NOT _sluice_deleted"},
			{"edge_cdc", "wh.pg_edge_cdc_cdc", "valid_to IS NULL"},
			{"edge_key", "wh.pg_edge_key", "NOT _sluice_deleted"},
			{"edge_key", "wh.pg_edge_key_cdc", "valid_to IS NULL"},
		} {
			if diff := cmp.Diff(texts(e.conn, c.src, "true"), texts(wh, c.wh, c.where)); diff != "" {
				t.Errorf("%s: %s (-source +warehouse):\n%s", when, c.wh, diff)
			}
		}
		for _, addr := range []string{"postgres.db/edge_full", "postgres.db/edge_inc", "postgres.db/edge_cdc", "postgres.db/edge_xmin", "postgres.db/edge_key"} {
			if n := e.status(addr).Warnings; n != 0 {
				t.Errorf("%s: %s: %d values written as NULL, want none", when, addr, n)
			}
		}
	}
	var log syncLog
	e.mustOnce(logTo(&log))
	check("first sync")
	types := func(conn *pgx.Conn, table string) []string {
		rows, err := conn.Query(e.ctx, `SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\_sluice%' ORDER BY attnum`, table)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Columns keep the source's built-in types (pg_lsn included); domains
	// become their base type, and types the warehouse may lack or would
	// resolve in its own catalog (enums, composites, extension types,
	// regclass) their text.
	want := types(e.conn, "edge_full")
	base := map[string]string{"ae": "text[]", "adom": "integer[]", "dts": "timestamp with time zone", "dn": "numeric(8,3)", "dai": "integer[]",
		"rc": "text", "rt": "text", "hs": "text", "lt": "text", "ct": "text", "cp": "text", "e": "text"}
	for i, c := range want {
		name, _, _ := strings.Cut(c, " ")
		if b, ok := base[name]; ok {
			want[i] = name + " " + b
		}
	}
	if diff := cmp.Diff(want, types(wh, "wh.pg_edge_full")); diff != "" {
		t.Errorf("warehouse column types (-want +got):\n%s", diff)
	}
	edgeChanges(e, 1)
	e.mustOnce(logTo(&log), later(1))
	check("second sync")
	edgeChanges(e, 2)
	e.mustOnce(logTo(&log), later(2))
	check("third sync")
	if n := log.count("cannot hold"); n != 0 {
		t.Errorf("%d warnings of values written as NULL, want none:\n%s", n, strings.Join(log.lines, ""))
	}
}

// later makes a runner's clock run days ahead, so that every batch table
// is due again.
func later(days int) func(*Options) {
	return func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(days) * 48 * time.Hour) }
	}
}

// syncLog collects a runner's log lines.
type syncLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

// count is how many lines hold all of the words.
func (l *syncLog) count(words ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}

func (l *syncLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = nil
}

func logTo(l *syncLog) func(*Options) {
	return func(o *Options) {
		o.Logger = hclog.New(&hclog.LoggerOptions{Output: l, Level: hclog.Warn})
	}
}

// edgeNulled is how many values of edge_full's rows 1 to 3 the Parquet
// types cannot hold: in row 1, eight infinite or NaN scalars (d, ts, tstz,
// ts3, n, ndom, dts, dn), three lists' elements (an's NaN, ad's two
// infinities) and one each of atstz and ats, and twelve arrays of several
// dimensions (ai, anu, ab, af, ajb, abool, atm, ai8, ae, aiv, avc, dai;
// ai2 is declared with two, so it is a STRING);
// in row 2, ts3 (beyond Parquet's microseconds) and dts.
const edgeNulled = 8 + 3 + 2 + 12 + 2

// TestExactValuesParquetWarehouse syncs the same tables into the Parquet
// warehouse: the values it cannot hold are NULL, counted per sync (not
// added up over syncs) in status and logged, naming the Parquet
// warehouse, by full_refresh, incremental and a cdc snapshot alike.
func TestExactValuesParquetWarehouse(t *testing.T) {
	e := newCDCEnv(t, edgeSetup, edgeTables, "")
	var log syncLog
	warned := func(when, table string, want int) {
		t.Helper()
		if got := e.status("postgres.db/" + table).Warnings; got != int64(want) {
			t.Errorf("%s: %s: status counts %d values written as NULL, want %d", when, table, got, want)
		}
		n := log.count("values the Parquet type cannot hold were written as NULL in the Parquet warehouse", table, fmt.Sprintf("count=%d", want))
		if want > 0 && n != 1 {
			t.Errorf("%s: %s: %d warnings logged, want 1:\n%s", when, table, n, strings.Join(log.lines, ""))
		}
	}
	e.mustOnce(logTo(&log))
	for _, tbl := range []string{"edge_full", "edge_inc", "edge_cdc", "edge_xmin"} {
		warned("first sync", tbl, edgeNulled)
	}
	got := e.rows("pg_edge_full", []string{"id", "d", "n", "ai", "at", "an"}, nil)
	want := []string{"1|NULL|NULL|NULL|[a,b]|[NULL,NULL]", "2|-2440550|-9999999999|[]|[]|[]", `3|19782|150|[1,NULL,-3]|[,NULL,a,b,c"d,e\f,NULL, sp ]|[150,NULL]`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parquet values (-want +got):\n%s", diff)
	}

	// A second full sync counts its own values, not the sum of both.
	log.reset()
	e.mustOnce(logTo(&log), later(1))
	warned("second sync", "edge_full", edgeNulled)
	warned("second sync", "edge_inc", 0)
}
