package postgres

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/providers"
)

// fuzzSep splits a fuzz input into several messages, so that the fuzzer
// can build a Relation message and then changes of it.
var fuzzSep = []byte{0xff, 0xfe, 0xfd}

// FuzzPgoutput feeds arbitrary bytes as XLogData payloads to the message
// and tuple decoding, with a fixed relation cache, inside a transaction
// and outside one: errors, never panics, never an allocation a count in
// the message claims, and every batch handed over is consistent.
func FuzzPgoutput(f *testing.F) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	seeds := [][]byte{
		poBegin(0x20, at), poCommit(0x10, at), poOrders, poFull, poTruncate(16384, 16400),
		poInsert(16384, poTuple("1", "note", "-1.50", `{a,"b c",NULL}`)),
		poInsert(16384, poTuple("1", poNull, "NaN", "{}")),
		poUpdate(16384, 'K', poTuple("1", poNull, poNull, poNull), poTuple("2", poUnchanged, "1.00", poUnchanged)),
		poUpdate(16400, 'O', poTuple("1", "x", "2"), poTuple("3", poUnchanged, "2")),
		poDelete(16384, 'K', poTuple("1", poNull, poNull, poNull)),
		poDelete(16400, 'O', poTuple("1", "x", "2")),
		bytes.Join([][]byte{
			poRelation(16384, "public", "orders", 'f',
				poCol{key: true, name: "id", typ: pgtype.Int8OID, typmod: -1},
				poCol{name: "at", typ: pgtype.TimestamptzArrayOID, typmod: -1},
				poCol{name: "d", typ: pgtype.DateOID, typmod: -1}),
			poInsert(16384, poTuple("1", `{"2026-11-21 10:00:00+00"}`, "0044-03-15 BC")),
		}, fuzzSep),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx := context.Background()
		msgs := bytes.Split(in, fuzzSep)
		for _, inTx := range []bool{true, false} {
			var got []*providers.Transaction
			d := newChangeDecoder(poTables, staticResolver, 0, func(_ context.Context, tx *providers.Transaction) error {
				got = append(got, tx)
				return nil
			})
			d.budget = 1 << 10
			for _, m := range [][]byte{poOrders, poOther, poFull} {
				if err := d.handle(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if inTx {
				if err := d.handle(ctx, poBegin(0x10, at)); err != nil {
					t.Fatal(err)
				}
			}
			for _, m := range msgs {
				d.handle(ctx, m)
			}
			if inTx {
				d.handle(ctx, poCommit(0x10, at))
			}
			for _, tx := range got {
				for key, tc := range tx.Changes {
					checkBatchShape(t, key, tc)
				}
			}
		}
	})
}

// checkBatchShape checks that every vector of a table's changes holds one
// value per row.
func checkBatchShape(t *testing.T, key string, tc *providers.TableChanges) {
	t.Helper()
	if tc.Rows == nil || len(tc.Rows.Cols) != len(tc.Schema.Columns) {
		t.Fatalf("%s: rows do not match the schema", key)
	}
	for i := range tc.Rows.Cols {
		v := &tc.Rows.Cols[i]
		if v.Len() != tc.Rows.N || v.Valid != nil && len(v.Valid) != tc.Rows.N || v.Unchanged != nil && len(v.Unchanged) != tc.Rows.N {
			t.Fatalf("%s column %s: %d values for %d rows", key, tc.Schema.Columns[i].Name, v.Len(), tc.Rows.N)
		}
	}
	if k := tc.OldKeys; k != nil {
		if k.N != tc.Rows.N {
			t.Fatalf("%s: %d old keys for %d rows", key, k.N, tc.Rows.N)
		}
		for i := range k.Cols {
			if k.Cols[i].Len() != k.N {
				t.Fatalf("%s old key column %d: %d values for %d rows", key, i, k.Cols[i].Len(), k.N)
			}
		}
	}
}
