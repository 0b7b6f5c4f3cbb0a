package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// typeCase is one column of the decoding test: its type, the values of
// its rows as SQL literals, and what they decode to.
type typeCase struct {
	name, decl string
	values     []string
	want       []any
	// parquet is the column's Parquet type name.
	parquet string
	nulled  int
}

// copySignature starts every binary COPY stream.
var copySignature = []byte(codec.CopySignature)

func days(y, m, d int) int32 {
	return int32(time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func micros(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

// typeSetup creates the types the cases use.
const typeSetup = `CREATE EXTENSION citext;
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN money2 AS numeric(10,2) CHECK (VALUE > 0);
CREATE DOMAIN intlist AS int[];
CREATE DOMAIN stamp AS timestamptz`

var typeCases = []typeCase{
	{"b", "boolean", []string{"true", "false", "NULL"}, []any{true, false, nil}, "BOOLEAN", 0},
	{"i2", "smallint", []string{"-32768", "32767"}, []any{int32(-32768), int32(32767)}, "INT16", 0},
	{"i4", "integer", []string{"-2147483648", "7"}, []any{int32(math.MinInt32), int32(7)}, "INT32", 0},
	{"i8", "bigint", []string{"9223372036854775807", "-1"}, []any{int64(math.MaxInt64), int64(-1)}, "INT64", 0},
	{"f4", "real", []string{"1.5", "'NaN'", "'-Infinity'"}, []any{float32(1.5), float32(math.NaN()), float32(math.Inf(-1))}, "FLOAT", 0},
	{"f8", "double precision", []string{"0.1", "'Infinity'"}, []any{0.1, math.Inf(1)}, "DOUBLE", 0},
	{"n9", "numeric(9,2)", []string{"1234567.89", "-0.01", "'NaN'", "0"}, []any{int32(123456789), int32(-1), nil, int32(0)}, "DECIMAL(9,2)", 1},
	{"n18", "numeric(18,4)", []string{"12345678901234.5678", "-99999999999999.9999", "1"},
		[]any{int64(123456789012345678), int64(-999999999999999999), int64(10000)}, "DECIMAL(18,4)", 0},
	{"n38", "numeric(38,10)", []string{"'1234567890123456789012345678.0123456789'", "'-0.0000000001'", "'NaN'", "-9999999999999999999999999999.9999999999"},
		[]any{"12345678901234567890123456780123456789", "-1", nil, "-99999999999999999999999999999999999999"}, "DECIMAL(38,10)", 1},
	{"nneg", "numeric(5,-2)", []string{"12300", "-9999900"}, []any{int32(12300), int32(-9999900)}, "DECIMAL(7,0)", 0},
	{"nsmall", "numeric(2,5)", []string{"0.00099", "-0.00001"}, []any{int32(99), int32(-1)}, "DECIMAL(5,5)", 0},
	{"nfree", "numeric", []string{"123.4500", "-0.001", "1e30", "'NaN'", "'Infinity'", "'-Infinity'", "0", "0.000", "1e-20"},
		[]any{"123.4500", "-0.001", "1000000000000000000000000000000", "NaN", "Infinity", "-Infinity", "0", "0.000", "0.00000000000000000001"}, "STRING", 0},
	{"nwide", "numeric(40,2)", []string{"12345678901234567890123456789012345678.12", "-5"},
		[]any{"12345678901234567890123456789012345678.12", "-5.00"}, "STRING", 0},
	{"t", "text", []string{"'héllo ☃'", "''", "NULL"}, []any{"héllo ☃", "", nil}, "STRING", 0},
	{"vc", "varchar(5)", []string{"'abc'"}, []any{"abc"}, "STRING", 0},
	{"ch", "char(3)", []string{"'ab'"}, []any{"ab "}, "STRING", 0},
	{"nm", "name", []string{"'pg'"}, []any{"pg"}, "STRING", 0},
	{"ci", "citext", []string{"'MiXed'"}, []any{"MiXed"}, "STRING", 0},
	{"en", "mood", []string{"'happy'"}, []any{"happy"}, "STRING", 0},
	{"by", "bytea", []string{`'\x00ff10'`, "''"}, []any{[]byte{0, 0xff, 0x10}, []byte{}}, "BYTE_ARRAY", 0},
	{"d", "date", []string{"'2024-02-29'", "'infinity'", "'-infinity'", "'1970-01-01'", "'0044-03-15 BC'"},
		[]any{days(2024, 2, 29), nil, nil, int32(0), days(-43, 3, 15)}, "DATE", 2},
	{"tm", "time", []string{"'23:59:59.999999'", "'24:00:00'", "'00:00:00'"}, []any{int64(86399999999), int64(86400000000), int64(0)}, "TIME(MICROS)", 0},
	{"ts", "timestamp", []string{"'2024-01-01 12:00:00.123456'", "'infinity'", "'1999-12-31 23:59:59'"},
		[]any{micros("2024-01-01T12:00:00.123456Z"), nil, micros("1999-12-31T23:59:59Z")}, "TIMESTAMP(MICROS)", 1},
	{"tz", "timestamptz", []string{"'2024-01-01 12:00:00+02'", "'-infinity'"}, []any{micros("2024-01-01T10:00:00Z"), nil}, "TIMESTAMP(MICROS,UTC)", 1},
	{"u", "uuid", []string{"'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'"}, []any{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, "STRING", 0},
	{"js", "json", []string{`'{"b": 2,  "a":1}'`}, []any{`{"b": 2,  "a":1}`}, "JSON", 0},
	{"jb", "jsonb", []string{`'{"b": 2,  "a":1}'`, `'"x"'`}, []any{`{"a": 1, "b": 2}`, `"x"`}, "JSON", 0},
	{"ia", "int[]", []string{"'{1,NULL,3}'", "'{}'", "'{{1,2},{3,4}}'", "'[0:1]={5,6}'"},
		[]any{[]any{int32(1), nil, int32(3)}, []any{}, nil, []any{int32(5), int32(6)}}, "LIST<INT32>", 1},
	{"ta", "text[]", []string{`'{"a b","q\"x",NULL}'`}, []any{[]any{"a b", `q"x`, nil}}, "LIST<STRING>", 0},
	{"na", "numeric(10,2)[]", []string{"'{1.50,NaN}'"}, []any{[]any{int64(150), nil}}, "LIST<DECIMAL(10,2)>", 1},
	{"ua", "uuid[]", []string{"'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'"}, []any{[]any{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}}, "LIST<STRING>", 0},
	{"tza", "timestamptz[]", []string{`'{"2024-01-01 00:00:00+00",infinity}'`}, []any{[]any{micros("2024-01-01T00:00:00Z"), nil}}, "LIST<TIMESTAMP(MICROS,UTC)>", 1},
	{"ena", "mood[]", []string{"'{happy,sad}'"}, []any{[]any{"happy", "sad"}}, "LIST<STRING>", 0},
	{"bya", "bytea[]", []string{`'{"\\x01"}'`}, []any{[]any{[]byte{1}}}, "LIST<BYTE_ARRAY>", 0},
	{"jba", "jsonb[]", []string{`ARRAY['{"a":1}'::jsonb]`}, []any{[]any{`{"a": 1}`}}, "LIST<JSON>", 0},
	{"iv", "interval", []string{"'1 day 02:03:04.5'"}, []any{"1 day 02:03:04.5"}, "STRING", 0},
	{"iva", "interval[]", []string{`'{"1 day","-00:00:01"}'`}, []any{[]any{"1 day", "-00:00:01"}}, "LIST<STRING>", 0},
	{"m2", "int[][]", []string{"'{{1,2},{3,4}}'"}, []any{"{{1,2},{3,4}}"}, "STRING", 0},
	// inet's cast to text would show /32: the text form is the output
	// function's, as logical replication sends it.
	{"ip", "inet", []string{"'192.168.0.1/24'", "'10.0.0.1/32'"}, []any{"192.168.0.1/24", "10.0.0.1"}, "STRING", 0},
	{"cid", "cidr", []string{"'::1/128'"}, []any{"::1/128"}, "STRING", 0},
	{"ipa", "inet[]", []string{`'{10.0.0.1/32,NULL,"::1/64"}'`, "'{}'", "'{{10.0.0.1},{10.0.0.2}}'", "'[2:2]={10.0.0.3}'"},
		[]any{[]any{"10.0.0.1", nil, "::1/64"}, []any{}, nil, []any{"10.0.0.3"}}, "LIST<STRING>", 1},
	{"bxa", "box[]", []string{`'{(1,1),(0,0);(2,2),(1,1)}'`}, []any{[]any{"(1,1),(0,0)", "(2,2),(1,1)"}}, "LIST<STRING>", 0},
	{"ttz", "timetz", []string{"'12:00:00+02'"}, []any{"12:00:00+02"}, "STRING", 0},
	{"rng", "tstzrange", []string{"'[2024-01-01 00:00+02,2024-01-02 00:00+02)'"}, []any{`["2023-12-31 22:00:00+00","2024-01-01 22:00:00+00")`}, "STRING", 0},
	{"pr", "pair", []string{`'(1,"x y")'`, "'(,)'"}, []any{`(1,"x y")`, "(,)"}, "STRING", 0},
	{"pra", "pair[]", []string{`ARRAY['(1,x)'::pair]`}, []any{[]any{"(1,x)"}}, "LIST<STRING>", 0},
	{"dm", "money2", []string{"12.34"}, []any{int64(1234)}, "DECIMAL(10,2)", 0},
	{"dl", "intlist", []string{"'{7}'"}, []any{[]any{int32(7)}}, "LIST<INT32>", 0},
	{"ds", "stamp", []string{"'2024-01-01 00:00:00+00'"}, []any{micros("2024-01-01T00:00:00Z")}, "TIMESTAMP(MICROS,UTC)", 0},
	{"qc", `"char"`, []string{"'x'", `E'\\377'::"char"`}, []any{"x", `\377`}, "STRING", 0},
	{"bt", "bit(3)", []string{"B'101'"}, []any{"101"}, "STRING", 0},
	{"x", "xml", []string{"'<a>1</a>'"}, []any{"<a>1</a>"}, "STRING", 0},
	{"tsv", "tsvector", []string{"'a fat cat'"}, []any{"'a' 'cat' 'fat'"}, "STRING", 0},
	{"o", "oid", []string{"12345"}, []any{"12345"}, "STRING", 0},
}

// createTypesTable creates table "types" with an id and one column per
// case; row r holds each case's r-th value, NULL past its last.
func createTypesTable(t *testing.T, exec func(string)) (rows int) {
	t.Helper()
	exec(typeSetup)
	var cols []string
	for _, c := range typeCases {
		cols = append(cols, c.name+" "+c.decl)
		rows = max(rows, len(c.values))
	}
	exec("CREATE TABLE types (id int PRIMARY KEY, " + strings.Join(cols, ", ") + ")")
	for r := range rows {
		vals := []string{string(rune('0' + r))}
		for _, c := range typeCases {
			v := "NULL"
			if r < len(c.values) {
				v = c.values[r]
			}
			vals = append(vals, v)
		}
		exec("INSERT INTO types VALUES (" + strings.Join(vals, ", ") + ")")
	}
	return rows
}

// wantTypeRows is what reading table "types" gives, row by row.
func wantTypeRows(rows int) []map[string]any {
	var out []map[string]any
	for r := range rows {
		row := map[string]any{"id": int32(r)}
		for _, c := range typeCases {
			var v any
			if r < len(c.want) {
				v = c.want[r]
			}
			row[c.name] = v
		}
		out = append(out, row)
	}
	return out
}

func TestDecodeTypes(t *testing.T) {
	f := newReaderFixture(t)
	rows := createTypesTable(t, f.exec)
	want := wantTypeRows(rows)
	wantNulled := map[string]int{}
	for _, c := range typeCases {
		if c.nulled > 0 {
			wantNulled[c.name] = c.nulled
		}
	}
	req := providers.ReadRequest{Table: "types", BatchRows: 4}

	schema, err := f.p.Schema(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	gotTypes := map[string]string{}
	wantTypes := map[string]string{"id": "INT32"}
	for _, c := range schema.Columns {
		gotTypes[c.Name] = c.Type.Name
	}
	for _, c := range typeCases {
		wantTypes[c.name] = c.parquet
	}
	if d := cmp.Diff(wantTypes, gotTypes); d != "" {
		t.Errorf("Parquet types (-want +got):\n%s", d)
	}

	reads := []struct {
		name string
		read func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error)
		req  providers.ReadRequest
	}{
		{"snapshot", f.p.ReadSnapshot, req},
		{"incremental", f.p.ReadIncremental, providers.ReadRequest{Table: "types", BatchRows: 4, Cursor: "id"}},
		{"xmin", f.p.ReadXmin, req},
	}
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			got := &collected{}
			if _, err := r.read(context.Background(), r.req, got.emit); err != nil {
				t.Fatal(err)
			}
			got.sort("id")
			if d := cmp.Diff(want, got.rows, cmpopts.EquateNaNs()); d != "" {
				t.Errorf("values (-want +got):\n%s", d)
			}
			if d := cmp.Diff(wantNulled, got.nulled); d != "" {
				t.Errorf("values nulled (-want +got):\n%s", d)
			}
		})
	}
}

// TestNumericText compares the text the decoder makes of numerics without
// a precision with PostgreSQL's own.
func TestNumericText(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE nums (id serial PRIMARY KEY, n numeric, txt text);
	INSERT INTO nums (n) SELECT v::numeric FROM unnest(ARRAY[
		'0', '0.0', '-0.5', '1', '9999', '10000', '10000.0001', '99999999.99999999', '0.0001', '0.00001',
		'-123456789012345678901234567890.123456789', '1e100', '1e-100', '-1e-5', '12.3400000', '100000000',
		'0.1000', '5e4', 'NaN', 'Infinity', '-Infinity']) AS v;
	INSERT INTO nums (n) SELECT round((random() * 10 ^ (i % 40 - 20))::numeric, i % 23) FROM generate_series(1, 500) i;
	UPDATE nums SET txt = n::text`)
	got := &collected{}
	if _, err := f.p.ReadSnapshot(context.Background(), providers.ReadRequest{Table: "nums"}, got.emit); err != nil {
		t.Fatal(err)
	}
	if len(got.rows) != 521 {
		t.Fatalf("read %d rows, want 521", len(got.rows))
	}
	for _, r := range got.rows {
		if r["n"] != r["txt"] {
			t.Errorf("numeric %v decoded as %v", r["txt"], r["n"])
		}
	}
}

// captureCopy returns the binary COPY output of a query, as the server
// sends it.
func captureCopy(t testing.TB, f *readerFixture, query string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := f.conn.PgConn().CopyTo(context.Background(), &buf, "COPY ("+query+") TO STDOUT (FORMAT binary)"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeStream decodes a COPY stream written in pieces of size split (0:
// at once) into rows.
func decodeStream(schema *records.Schema, decs []*codec.Decoder, data []byte, split, batchRows int) ([]map[string]any, error) {
	got := &collected{}
	sink := emitSink(schema, batchRows, got.emit)
	s := codec.NewCopyStream(decs, sink)
	if split <= 0 {
		split = len(data)
	}
	for len(data) > 0 {
		n := min(split, len(data))
		if _, err := s.Write(data[:n]); err != nil {
			return nil, err
		}
		data = data[n:]
	}
	if err := s.Finish(); err != nil {
		return nil, err
	}
	if err := sink.flush(); err != nil {
		return nil, err
	}
	return got.rows, nil
}

// TestCopyStreamSplits decodes a real COPY stream written in pieces of
// every size, as CopyData messages may cut it, and a table of malformed
// streams.
func TestCopyStreamSplits(t *testing.T) {
	f := newReaderFixture(t)
	rows := createTypesTable(t, f.exec)
	info := f.table(providers.ReadRequest{Table: "types"})
	data := captureCopy(t, f, "SELECT "+info.selectList()+" FROM types ORDER BY id")
	want := wantTypeRows(rows)

	// Every small size, then a spread of larger ones up to all at once.
	var splits []int
	for split := 0; split <= len(data); split += 1 + split/16 {
		splits = append(splits, split)
	}
	for _, split := range append(splits, len(data)) {
		got, err := decodeStream(info.schema, info.decoders(), data, split, 3)
		if err != nil {
			t.Fatalf("pieces of %d bytes: %v", split, err)
		}
		if d := cmp.Diff(want, got, cmpopts.EquateNaNs()); d != "" {
			t.Fatalf("pieces of %d bytes (-want +got):\n%s", split, d)
		}
	}

	// Malformed streams, built from a one-row stream of an int4 and a
	// text column.
	small := &tableInfo{schema: &records.Schema{Columns: []records.Column{
		{Name: "a", Type: codec.ParquetInt32}, {Name: "b", Type: codec.ParquetString},
	}}}
	int4, _, _, err := codec.ColumnDecoder(&codec.PGType{OID: pgtype.Int4OID, Type: 'b'}, codec.ParquetInt32)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _, err := codec.ColumnDecoder(&codec.PGType{OID: pgtype.TextOID, Type: 'b'}, codec.ParquetString)
	if err != nil {
		t.Fatal(err)
	}
	decs := []*codec.Decoder{int4, text}
	header := append(append([]byte{}, copySignature...), 0, 0, 0, 0, 0, 0, 0, 0)
	row := func(fields ...[]byte) []byte {
		out := binary.BigEndian.AppendUint16(nil, uint16(len(fields)))
		for _, f := range fields {
			if f == nil {
				out = binary.BigEndian.AppendUint32(out, 0xFFFFFFFF)
				continue
			}
			out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
			out = append(out, f...)
		}
		return out
	}
	stream := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	trailer := []byte{0xFF, 0xFF}
	good := row([]byte{0, 0, 0, 7}, []byte("x"))
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"valid", stream(header, good, row(nil, nil), trailer), ""},
		{"empty", nil, "ended before its header"},
		{"bad signature", stream([]byte("PGCOPY\n\xff\r\n\x01"), header[11:], trailer), "not a binary COPY stream"},
		{"text copy", []byte("1\tx\n"), "not a binary COPY stream"},
		{"oids", stream(copySignature, []byte{0, 1, 0, 0, 0, 0, 0, 0}, trailer), "with OIDs"},
		{"critical flag", stream(copySignature, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, trailer), "critical flags"},
		{"negative extension", stream(copySignature, []byte{0, 0, 0, 0, 0x80, 0, 0, 0}, trailer), "extension of length"},
		{"huge extension", stream(copySignature, []byte{0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF}, trailer), "ended before its header"},
		{"extension skipped", stream(copySignature, []byte{0, 0, 0, 0, 0, 0, 0, 3}, []byte("ext"), good, trailer), ""},
		{"no trailer", stream(header, good), "in the middle of a row"},
		{"truncated row", stream(header, good[:len(good)-1]), "in the middle of a row"},
		{"after trailer", stream(header, trailer, good), "after the end"},
		{"field count", stream(header, row([]byte{0, 0, 0, 7}), trailer), "row of 1 fields, want 2"},
		{"negative length", stream(header, []byte{0, 2, 0xFF, 0xFF, 0xFF, 0xFE}, trailer), "field of length -2"},
		{"huge length", stream(header, []byte{0, 2, 0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3}), "in the middle of a row"},
		{"short int", stream(header, row([]byte{0, 7}, []byte("x")), trailer), "integer value of 2 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, split := range []int{0, 1, 5} {
				_, err := decodeStream(small.schema, decs, c.data, split, 2)
				if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
					t.Errorf("pieces of %d: got error %v, want %q", split, err, c.want)
				}
			}
		})
	}
}
