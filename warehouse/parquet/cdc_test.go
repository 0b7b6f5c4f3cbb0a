package parquet

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

var historySchema = &records.Schema{
	Columns: []records.Column{
		col("id", tInt64), col("v", tString),
		col(HistoryOpColumn, tString), col(ValidFromColumn, tTSTZ), col(ValidToColumn, tTSTZ),
	},
	PrimaryKey: []string{"id"},
}

// historyModel is the expected content of a history table: every version.
type historyModel struct {
	rows [][]any
	open map[int]int // key -> index of its current version in rows
}

func (m *historyModel) change(id int, v any, op string, at int) {
	if i, ok := m.open[id]; ok {
		m.rows[i][4] = at
		delete(m.open, id)
	}
	row := []any{id, v, op, at, nil}
	if op == "D" {
		row[4] = at
	} else {
		m.open[id] = len(m.rows)
	}
	m.rows = append(m.rows, row)
}

func (m *historyModel) closeAll(at int) {
	for id, i := range m.open {
		m.rows[i][4] = at
		delete(m.open, id)
	}
}

func (m *historyModel) sorted() [][]any {
	out := make([][]any, len(m.rows))
	for i, r := range m.rows {
		out[i] = slices.Clone(r)
	}
	sortRows(out)
	return out
}

// TestHistoryClosesVersions drives a history table through random
// inserts, updates, deletes and re-inserts of a few keys, several changes
// of one key per commit, TRUNCATE-like close-alls and bucket growth, and
// compares every version (valid_from, valid_to) with a model; it also
// checks the layout the cost depends on: current files hold only current
// versions, one per key.
func TestHistoryClosesVersions(t *testing.T) {
	for _, tiny := range []bool{false, true} {
		t.Run(fmt.Sprintf("tiny=%v", tiny), func(t *testing.T) {
			w := openTestWarehouse(t)
			if tiny {
				tinyLimits(w)
			}
			tb := mustTable(t, w, "h_cdc")
			m := &historyModel{open: map[int]int{}}
			rng := rand.New(rand.NewPCG(3, 4))
			clock := 1_000_000
			next := 0
			for round := range 30 {
				var closeAt time.Time
				if round%11 == 10 {
					clock += 10
					closeAt = time.UnixMicro(int64(clock))
					m.closeAll(clock)
				}
				tx, err := tb.BeginHistoryTx(ctx, historySchema, closeAt)
				if err != nil {
					t.Fatal(err)
				}
				var rows [][]any
				for range rng.IntN(40) {
					clock += 1 + rng.IntN(3)
					var id int
					if next == 0 || rng.IntN(3) == 0 {
						id = next
						next++
					} else {
						id = rng.IntN(next)
					}
					op := "U"
					_, live := m.open[id]
					switch {
					case !live:
						op = "I"
					case rng.IntN(5) == 0:
						op = "D"
					}
					v := any(fmt.Sprintf("r%d", round))
					if rng.IntN(10) == 0 {
						v = nil
					}
					m.change(id, v, op, clock)
					// valid_to arrives NULL or garbage: the commit sets it.
					rows = append(rows, []any{id, v, op, clock, rng.IntN(2) * 7})
				}
				for len(rows) > 0 {
					n := min(len(rows), 1+rng.IntN(10))
					if err := tx.Write(ctx, batchOf(t, historySchema, rows[:n])); err != nil {
						t.Fatal(err)
					}
					rows = rows[n:]
				}
				if _, err := tx.Commit(ctx, records.Position{LSN: fmt.Sprint(round)}); err != nil {
					t.Fatal(err)
				}
				_, got := scanAll(t, tb)
				if got := withoutSyncedAt(got); !reflect.DeepEqual(m.sorted(), got) {
					t.Fatalf("round %d: versions (-want +got):\n%s", round, cmp.Diff(m.sorted(), got))
				}
				checkHistoryLayout(t, tb)
			}
			if tiny && tb.Manifest().Buckets < 2 {
				t.Errorf("%d buckets after %d keys at 10 rows a bucket", tb.Manifest().Buckets, next)
			}
		})
	}
}

// checkHistoryLayout checks that bucketed files hold only current
// versions of their bucket, at most one per key, and unbucketed ones only
// closed versions.
func checkHistoryLayout(t *testing.T, tb *Table) {
	t.Helper()
	m := tb.Manifest()
	s := m.Schema.Records()
	keyCols, _ := s.KeyIndexes()
	to := s.Index(ValidToColumn)
	seen := map[string]bool{}
	small := 0
	for _, f := range m.Files {
		r, err := openFile(filepath.Join(tb.Dir(), f.Name), s)
		if err != nil {
			t.Fatal(err)
		}
		b := records.NewBatch(s, 0)
		for g := range r.numRowGroups() {
			if err := r.readRowGroup(g, b, nil); err != nil {
				t.Fatal(err)
			}
			for row := range b.N {
				key := b.AppendKey(nil, row, keyCols)
				current := b.Cols[to].IsNull(row)
				switch {
				case f.Bucket >= 0 && !current:
					t.Errorf("file %s of bucket %d holds a closed version", f.Name, f.Bucket)
				case f.Bucket < 0 && current:
					t.Errorf("closed file %s holds a current version", f.Name)
				case f.Bucket >= 0 && int(records.KeyHash(key)&uint64(m.Buckets-1)) != f.Bucket:
					t.Errorf("file %s of bucket %d holds a key of another bucket", f.Name, f.Bucket)
				case current && seen[string(key)]:
					t.Errorf("two current versions of key %x", key)
				}
				if current {
					seen[string(key)] = true
				}
			}
		}
		r.close()
		if f.Bucket < 0 && f.Rows < tb.w.lim.fileRows/4 {
			small++
		}
	}
	if small > maxSmallFiles {
		t.Errorf("%d small closed files: they are not folded", small)
	}
}

// TestLookup finds the stored rows of keys in a merged table (every row)
// and in a history table (current versions only).
func TestLookup(t *testing.T) {
	w := openTestWarehouse(t)
	tinyLimits(w)
	kv := mustTable(t, w, "kv")
	var rows [][]any
	for id := range 100 {
		rows = append(rows, []any{id, fmt.Sprintf("v%d", id), id})
	}
	commitRows(t, kv, warehouse.Replace, kvSchema, records.Position{}, rows, WithExpectedRows(100))
	commitRows(t, kv, warehouse.Merge, kvSchema, records.Position{}, [][]any{{7, "seven", 70}, {200, "new", 1}})

	keySchema := &records.Schema{Columns: []records.Column{col("id", tInt64)}, PrimaryKey: []string{"id"}}
	lookup := func(tb *Table, current bool, ids ...any) [][]any {
		t.Helper()
		var keys [][]any
		for _, id := range ids {
			keys = append(keys, []any{id})
		}
		var got [][]any
		err := tb.Lookup(ctx, batchOf(t, keySchema, keys), current, func(b *records.Batch, sel []int32) error {
			all := rowsOf(b)
			for _, r := range sel {
				got = append(got, all[r][:len(all[r])-1])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sortRows(got)
		return got
	}
	want := [][]any{{3, "v3", 3}, {7, "seven", 70}, {200, "new", 1}}
	if diff := cmp.Diff(want, lookup(kv, false, 7, 3, 200, 5000, 3)); diff != "" {
		t.Errorf("merged table (-want +got):\n%s", diff)
	}

	h := mustTable(t, w, "h_cdc")
	hs := historySchema
	for i, step := range [][][]any{
		{{1, "a", "I", 10, nil}, {2, "b", "I", 10, nil}},
		{{1, "a2", "U", 20, nil}, {2, nil, "D", 20, nil}},
	} {
		tx, err := h.BeginHistoryTx(ctx, hs, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, batchOf(t, hs, step)); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Commit(ctx, records.Position{LSN: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([][]any{{1, "a2", "U", 20, nil}}, lookup(h, true, 1, 2)); diff != "" {
		t.Errorf("current versions (-want +got):\n%s", diff)
	}
	if got := lookup(h, false, 1, 2); len(got) != 4 {
		t.Errorf("every version: %v", got)
	}
}
