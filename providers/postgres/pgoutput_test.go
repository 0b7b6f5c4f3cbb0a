package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/providers"
)

// Encoders of pgoutput messages (protocol version 1), as the server
// writes them, for the decoder's tests and the fuzz corpus.

func poBegin(lsn pglogrepl.LSN, commit time.Time) []byte {
	b := []byte{'B'}
	b = binary.BigEndian.AppendUint64(b, uint64(lsn))
	b = binary.BigEndian.AppendUint64(b, uint64(commit.UnixMicro()-codec.PGEpochMicros))
	return binary.BigEndian.AppendUint32(b, 1234)
}

func poCommit(lsn pglogrepl.LSN, commit time.Time) []byte {
	b := []byte{'C', 0}
	b = binary.BigEndian.AppendUint64(b, uint64(lsn))
	b = binary.BigEndian.AppendUint64(b, uint64(lsn)+100)
	return binary.BigEndian.AppendUint64(b, uint64(commit.UnixMicro()-codec.PGEpochMicros))
}

type poCol struct {
	key    bool
	name   string
	typ    uint32
	typmod int32
}

func poRelation(id uint32, ns, name string, identity byte, cols ...poCol) []byte {
	b := []byte{'R'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(append(b, ns...), 0)
	b = append(append(b, name...), 0)
	b = append(b, identity)
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for _, c := range cols {
		flag := byte(0)
		if c.key {
			flag = 1
		}
		b = append(b, flag)
		b = append(append(b, c.name...), 0)
		b = binary.BigEndian.AppendUint32(b, c.typ)
		b = binary.BigEndian.AppendUint32(b, uint32(c.typmod))
	}
	return b
}

// poNull and poUnchanged stand for a NULL and an unchanged TOAST value in
// poTuple's arguments; any other string is a text value.
const (
	poNull      = "\x00null"
	poUnchanged = "\x00unchanged"
)

func poTuple(vals ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		switch v {
		case poNull:
			b = append(b, 'n')
		case poUnchanged:
			b = append(b, 'u')
		default:
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

func poInsert(id uint32, tuple []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'I'}, id)
	return append(append(b, 'N'), tuple...)
}

// poUpdate encodes an update; oldKind is 0 (no old tuple), 'K' or 'O'.
func poUpdate(id uint32, oldKind byte, old, tuple []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'U'}, id)
	if oldKind != 0 {
		b = append(append(b, oldKind), old...)
	}
	return append(append(b, 'N'), tuple...)
}

func poDelete(id uint32, oldKind byte, old []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'D'}, id)
	return append(append(b, oldKind), old...)
}

func poTruncate(ids ...uint32) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'T'}, uint32(len(ids)))
	b = append(b, 0)
	for _, id := range ids {
		b = binary.BigEndian.AppendUint32(b, id)
	}
	return b
}

// staticResolver resolves columns without a catalog: the built-in types
// are all the decoder tests use.
func staticResolver(_ context.Context, m *relationMsg) (*cdcRelationInfo, error) {
	out := &cdcRelationInfo{cols: make([]cdcColumnInfo, len(m.cols))}
	for i, c := range m.cols {
		out.cols[i] = cdcColumnInfo{typ: codec.TypeCatalog(nil).Resolve(c.typ, c.typmod, 0), nullable: !c.key}
	}
	return out, nil
}

// The relations of the decoder tests.
var (
	poOrders = poRelation(16384, "public", "orders", 'd',
		poCol{key: true, name: "id", typ: pgtype.Int8OID, typmod: -1},
		poCol{name: "note", typ: pgtype.TextOID, typmod: -1},
		poCol{name: "total", typ: pgtype.NumericOID, typmod: (10<<16 | 2) + 4},
		poCol{name: "tags", typ: pgtype.TextArrayOID, typmod: -1},
	)
	poOther = poRelation(16390, "public", "other", 'd',
		poCol{key: true, name: "id", typ: pgtype.Int4OID, typmod: -1},
	)
	poFull = poRelation(16400, "Sales", "Big Table", 'f',
		poCol{key: true, name: "id", typ: pgtype.Int4OID, typmod: -1},
		poCol{key: true, name: "body", typ: pgtype.TextOID, typmod: -1},
		poCol{key: true, name: "n", typ: pgtype.Int4OID, typmod: -1},
	)
)

var poTables = map[string]providers.ReadRequest{
	"orders":              {Schema: "public", Table: "orders"},
	`"Sales"."Big Table"`: {Schema: "Sales", Table: "Big Table", PrimaryKey: []string{"id"}},
}

// poDecoder is a decoder of poTables that collects what it hands over.
func poDecoder(skipThrough pglogrepl.LSN) (*changeDecoder, *[]*providers.Transaction) {
	var got []*providers.Transaction
	d := newChangeDecoder(poTables, staticResolver, skipThrough, func(_ context.Context, tx *providers.Transaction) error {
		got = append(got, tx)
		return nil
	})
	return d, &got
}

func feed(t *testing.T, d *changeDecoder, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		if err := d.handle(context.Background(), m); err != nil {
			t.Fatalf("message %q: %v", m[0], err)
		}
	}
}

// unchangedMark stands for a value marked Unchanged in tableRows.
const unchangedMark = "<unchanged>"

// tableRows returns the rows of a table's changes as plain values: the
// source columns, then the operation; it checks the LSN and commit time
// columns against the transaction's.
func tableRows(t *testing.T, tx *providers.Transaction, tc *providers.TableChanges) [][]any {
	t.Helper()
	if tc == nil {
		return nil
	}
	s := tc.Schema
	n := len(s.Columns)
	if n < 3 || s.Columns[n-3].Name != CDCOpColumn || s.Columns[n-2].Name != LSNColumn || s.Columns[n-1].Name != CDCTimestampColumn {
		t.Fatalf("schema does not end with the metadata columns: %+v", s.Columns)
	}
	lsn, err := pglogrepl.ParseLSN(tx.CommitLSN)
	if err != nil {
		t.Fatal(err)
	}
	b := tc.Rows
	if len(b.Cols) != n {
		t.Fatalf("%d vectors for %d columns", len(b.Cols), n)
	}
	var rows [][]any
	for i := range b.N {
		var row []any
		for c := 0; c < n-3; c++ {
			v := &b.Cols[c]
			if v.Len() != b.N {
				t.Fatalf("column %s has %d values for %d rows", s.Columns[c].Name, v.Len(), b.N)
			}
			if v.Unchanged != nil && v.Unchanged[i] {
				if !v.IsNull(i) {
					t.Errorf("unchanged value %d of %s is not a NULL placeholder", i, s.Columns[c].Name)
				}
				row = append(row, unchangedMark)
				continue
			}
			row = append(row, recordstest.Value(v, s.Columns[c].Type, i))
		}
		row = append(row, string(b.Cols[n-3].Bytes(i)))
		if got := b.Cols[n-2].I64[i]; got != int64(lsn) {
			t.Errorf("row %d: %s %d, want %d", i, LSNColumn, got, lsn)
		}
		if got := b.Cols[n-1].I64[i]; got != tx.CommitTime.UnixMicro() {
			t.Errorf("row %d: %s %d, want %d", i, CDCTimestampColumn, got, tx.CommitTime.UnixMicro())
		}
		rows = append(rows, row)
	}
	return rows
}

// keyRows returns the rows of OldKeys, nil when there is none.
func keyRows(tc *providers.TableChanges) [][]any {
	if tc == nil || tc.OldKeys == nil {
		return nil
	}
	var rows [][]any
	for i := range tc.OldKeys.N {
		var row []any
		for c, col := range tc.OldKeys.Schema.Columns {
			row = append(row, recordstest.Value(&tc.OldKeys.Cols[c], col.Type, i))
		}
		rows = append(rows, row)
	}
	return rows
}

func TestChangeDecoder(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 123456000, time.UTC)
	d, got := poDecoder(0x100)
	feed(t, d,
		poOrders, poOther, poFull,
		// At the start position: skipped.
		poBegin(0x100, at), poInsert(16384, poTuple("1", "skipped", "1.00", "{}")), poCommit(0x100, at),
		// Only the other table: nothing handed over.
		poBegin(0x200, at), poInsert(16390, poTuple("1")), poCommit(0x200, at),
		poBegin(0x300, at),
		poInsert(16384, poTuple("1", "first", "-12.30", `{a,"b c",NULL}`)),
		poInsert(16390, poTuple("2")),
		poInsert(16384, poTuple("2", poNull, "0.01", poNull)),
		poUpdate(16384, 0, nil, poTuple("2", "second", "0.02", "{}")),
		poUpdate(16384, 'K', poTuple("1", poNull, poNull, poNull), poTuple("10", poUnchanged, "-12.30", poUnchanged)),
		poDelete(16384, 'K', poTuple("2", poNull, poNull, poNull)),
		poInsert(16400, poTuple("1", "body", "5")),
		poUpdate(16400, 'O', poTuple("1", "body", "5"), poTuple("1", poUnchanged, "6")),
		poUpdate(16400, 'O', poTuple("1", "body", "6"), poTuple("2", poUnchanged, "6")),
		poDelete(16400, 'O', poTuple("2", "body", "6")),
		poCommit(0x300, at),
	)
	if len(*got) != 1 {
		t.Fatalf("%d transactions handed over, want 1", len(*got))
	}
	tx := (*got)[0]
	if tx.CommitLSN != "0/300" || !tx.CommitTime.Equal(at) || tx.Partial {
		t.Errorf("transaction %s at %s, partial %v", tx.CommitLSN, tx.CommitTime, tx.Partial)
	}
	if len(tx.Changes) != 2 {
		t.Errorf("changes of %d tables, want 2", len(tx.Changes))
	}
	orders := tx.Changes["orders"]
	want := [][]any{
		{int64(1), "first", int64(-1230), []any{"a", "b c", nil}, "I"},
		{int64(2), nil, int64(1), nil, "I"},
		{int64(2), "second", int64(2), []any{}, "U"},
		{int64(10), unchangedMark, int64(-1230), unchangedMark, "U"},
		{int64(2), nil, nil, nil, "D"},
	}
	if diff := cmp.Diff(want, tableRows(t, tx, orders)); diff != "" {
		t.Errorf("orders (-want +got):\n%s", diff)
	}
	wantKeys := [][]any{{nil}, {nil}, {nil}, {int64(1)}, {nil}}
	if diff := cmp.Diff(wantKeys, keyRows(orders)); diff != "" {
		t.Errorf("orders old keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"id"}, orders.Schema.PrimaryKey); diff != "" {
		t.Errorf("orders key from the relation's identity (-want +got):\n%s", diff)
	}
	full := tx.Changes[`"Sales"."Big Table"`]
	// REPLICA IDENTITY FULL: unchanged values come from the old row.
	want = [][]any{
		{int32(1), "body", int32(5), "I"},
		{int32(1), "body", int32(6), "U"},
		{int32(2), "body", int32(6), "U"},
		{int32(2), "body", int32(6), "D"},
	}
	if diff := cmp.Diff(want, tableRows(t, tx, full)); diff != "" {
		t.Errorf("full (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]any{{nil}, {nil}, {int32(1)}, {nil}}, keyRows(full)); diff != "" {
		t.Errorf("full old keys (-want +got):\n%s", diff)
	}
}

func TestChangeDecoderTruncate(t *testing.T) {
	at := time.Now()
	d, got := poDecoder(0)
	feed(t, d, poOrders,
		poBegin(0x10, at),
		poInsert(16384, poTuple("1", "gone", "1.00", "{}")),
		poUpdate(16384, 'K', poTuple("1", poNull, poNull, poNull), poTuple("2", "gone", "1.00", "{}")),
		poTruncate(16384),
		poInsert(16384, poTuple("3", "kept", "1.00", "{}")),
		poCommit(0x10, at),
		poBegin(0x20, at), poTruncate(16384), poCommit(0x20, at),
	)
	if len(*got) != 2 {
		t.Fatalf("%d transactions, want 2", len(*got))
	}
	tc := (*got)[0].Changes["orders"]
	if !tc.Truncated || tc.OldKeys != nil {
		t.Errorf("truncated %v, old keys %v", tc.Truncated, tc.OldKeys)
	}
	if diff := cmp.Diff([][]any{{int64(3), "kept", int64(100), []any{}, "I"}}, tableRows(t, (*got)[0], tc)); diff != "" {
		t.Errorf("rows after the truncate (-want +got):\n%s", diff)
	}
	if tc := (*got)[1].Changes["orders"]; !tc.Truncated || tc.Rows.N != 0 {
		t.Errorf("lone truncate: %+v", tc)
	}
}

// TestChangeDecoderChunks checks the memory budget (a transaction handed
// over in Partial chunks) and a schema change inside a transaction.
func TestChangeDecoderChunks(t *testing.T) {
	at := time.Now()
	d, got := poDecoder(0)
	d.budget = 300
	msgs := [][]byte{poOrders, poBegin(0x10, at)}
	for i := range 10 {
		msgs = append(msgs, poInsert(16384, poTuple(strings.Repeat("1", i+1), strings.Repeat("x", 50), "1.00", "{}")))
	}
	msgs = append(msgs, poCommit(0x10, at))
	feed(t, d, msgs...)
	rows := 0
	for i, tx := range *got {
		if tx.CommitLSN != "0/10" || tx.Partial != (i < len(*got)-1) {
			t.Errorf("chunk %d: %s partial %v", i, tx.CommitLSN, tx.Partial)
		}
		if tc := tx.Changes["orders"]; tc != nil {
			rows += tc.Rows.N
		}
	}
	if len(*got) < 3 || rows != 10 {
		t.Errorf("%d chunks with %d rows, want several with 10", len(*got), rows)
	}

	// A column added inside a transaction: the rows before and after
	// have different schemas, so they go in separate chunks.
	d, got = poDecoder(0)
	added := poRelation(16384, "public", "orders", 'd',
		poCol{key: true, name: "id", typ: pgtype.Int8OID, typmod: -1},
		poCol{name: "note", typ: pgtype.TextOID, typmod: -1},
		poCol{name: "total", typ: pgtype.NumericOID, typmod: (10<<16 | 2) + 4},
		poCol{name: "tags", typ: pgtype.TextArrayOID, typmod: -1},
		poCol{name: "added", typ: pgtype.BoolOID, typmod: -1},
	)
	feed(t, d, poOrders, poBegin(0x20, at),
		poInsert(16384, poTuple("1", "a", "1.00", "{}")),
		added,
		poInsert(16384, poTuple("2", "b", "2.00", "{}", "t")),
		poCommit(0x20, at),
		// Sent again unchanged: the same schema value.
		added,
		poBegin(0x30, at), poInsert(16384, poTuple("3", "c", "3.00", "{}", "f")), poCommit(0x30, at),
	)
	if len(*got) != 3 || !(*got)[0].Partial || (*got)[1].Partial {
		t.Fatalf("got %d chunks, want a partial one and the end", len(*got))
	}
	s0, s1 := (*got)[0].Changes["orders"].Schema, (*got)[1].Changes["orders"].Schema
	if s0.Index("added") >= 0 || s1.Index("added") != 4 {
		t.Errorf("schemas before and after ALTER TABLE: %v / %v", s0.Columns, s1.Columns)
	}
	if (*got)[2].Changes["orders"].Schema != s1 {
		t.Error("an unchanged Relation message made a new schema")
	}
	if diff := cmp.Diff([][]any{{int64(2), "b", int64(200), []any{}, true, "I"}}, tableRows(t, (*got)[1], (*got)[1].Changes["orders"])); diff != "" {
		t.Errorf("rows after ALTER TABLE (-want +got):\n%s", diff)
	}
}

func TestChangeDecoderColumns(t *testing.T) {
	tables := map[string]providers.ReadRequest{
		"orders": {Schema: "public", Table: "orders", Columns: []string{"total", "gone"}, PrimaryKey: []string{"id"}},
	}
	var got []*providers.Transaction
	d := newChangeDecoder(tables, staticResolver, 0, func(_ context.Context, tx *providers.Transaction) error {
		got = append(got, tx)
		return nil
	})
	at := time.Now()
	feed(t, d, poOrders, poBegin(1, at), poInsert(16384, poTuple("1", "note", "1.50", "{}")), poCommit(1, at))
	if len(got) != 1 {
		t.Fatalf("%d transactions", len(got))
	}
	tc := got[0].Changes["orders"]
	var names []string
	for _, c := range tc.Schema.Columns {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"id", "total", CDCOpColumn, LSNColumn, CDCTimestampColumn}, names); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]any{{int64(1), int64(150), "I"}}, tableRows(t, got[0], tc)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestChangeDecoderErrors(t *testing.T) {
	at := time.Now()
	tests := []struct {
		name string
		msgs [][]byte
		want string
	}{
		{"change outside a transaction", [][]byte{poOrders, poInsert(16384, poTuple("1", "a", "1", "{}"))}, "outside a transaction"},
		{"unknown relation", [][]byte{poBegin(1, at), poInsert(99, poTuple("1"))}, "before its Relation message"},
		{"begin in a transaction", [][]byte{poBegin(1, at), poBegin(2, at)}, "inside another"},
		{"commit without begin", [][]byte{poCommit(1, at)}, "did not begin"},
		{"commit of another", [][]byte{poBegin(1, at), poCommit(2, at)}, "began for"},
		{"short tuple", [][]byte{poOrders, poBegin(1, at), poInsert(16384, poTuple("1"))}, "tuple of 1 columns"},
		{"bad value", [][]byte{poOrders, poBegin(1, at), poInsert(16384, poTuple("x", "a", "1", "{}"))}, `orders column "id": invalid bigint`},
		{"binary value", [][]byte{poOrders, poBegin(1, at), poInsert(16384, []byte{0, 4, 't', 0, 0, 0, 1, '1', 'b', 0, 0, 0, 1, 'x', 'n', 'n'})}, "binary values are not requested"},
		{"short value", [][]byte{poOrders, poBegin(1, at), poInsert(16384, []byte{0, 4, 't', 0, 0, 0, 9, '1'})}, "ends early"},
		{"streamed transaction", [][]byte{{'S', 0, 0, 0, 1, 1}}, "streamed in-progress"},
		{"unknown message", [][]byte{{'?'}}, "unknown pgoutput message"},
		{"empty message", [][]byte{{}}, "empty"},
		{"trailing bytes", [][]byte{append(poBegin(1, at), 0)}, "trailing"},
		{"lying column count", [][]byte{{'R', 0, 0, 0, 1, 'a', 0, 'b', 0, 'd', 0xff, 0xff, 0}}, "claims 65535 columns"},
		{"lying truncate", [][]byte{poBegin(1, at), {'T', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1}}, "truncate message of"},
		{"key column gone", [][]byte{poRelation(16384, "public", "orders", 'n', poCol{name: "note", typ: pgtype.TextOID, typmod: -1}),
			poRelation(16400, "Sales", "Big Table", 'f', poCol{name: "body", typ: pgtype.TextOID, typmod: -1})}, `no column "id" of its key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := poDecoder(0)
			var err error
			for _, m := range tt.msgs {
				if err = d.handle(context.Background(), m); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			// A failed decoder stays failed.
			if err2 := d.handle(context.Background(), poBegin(5, at)); err2 != err {
				t.Errorf("after the error: %v", err2)
			}
		})
	}
}

// BenchmarkChangeDecoder measures decoding inserts of a four-column
// table, one transaction of 1000 rows per iteration.
func BenchmarkChangeDecoder(b *testing.B) {
	at := time.Now()
	var msgs [][]byte
	for i := range 1000 {
		msgs = append(msgs, poInsert(16384, poTuple(fmt.Sprint(i), "a note of some length", "-1234.56", `{a,"b c",NULL}`)))
	}
	size := 0
	for _, m := range msgs {
		size += len(m)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	d := newChangeDecoder(poTables, staticResolver, 0, func(context.Context, *providers.Transaction) error { return nil })
	ctx := context.Background()
	if err := d.handle(ctx, poOrders); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		lsn := pglogrepl.LSN(i + 1)
		d.handle(ctx, poBegin(lsn, at))
		for _, m := range msgs {
			d.handle(ctx, m)
		}
		if err := d.handle(ctx, poCommit(lsn, at)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/row")
}
