package postgres

import (
	stdcmp "cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

var errKilled = errors.New("killed")

// killedRead reads with CommitRows rows per commit and fails at commit
// number killAt, as a killed runner would: it returns the ids of the rows
// committed before (emitted up to the last commit that succeeded) and
// that commit's position.
func killedRead(t *testing.T, read func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error), req providers.ReadRequest, commitRows, killAt int) ([]int64, records.Position) {
	t.Helper()
	got := &collected{}
	var committed []int64
	var pos records.Position
	commits := 0
	req.CommitRows = commitRows
	req.Commit = func(p records.Position) error {
		if commits++; commits == killAt {
			return errKilled
		}
		if len(p.AfterKey) == 0 || p.Cursor == "" {
			t.Errorf("commit %d: position %+v has no cursor and key", commits, p)
		}
		committed, pos = got.ints("id"), p
		return nil
	}
	if _, err := read(context.Background(), req, got.emit); !errors.Is(err, errKilled) {
		t.Fatalf("read: %v, want the kill at commit %d", err, killAt)
	}
	if want := (killAt - 1) * commitRows; len(committed) != want {
		t.Fatalf("%d rows committed before the kill, want %d", len(committed), want)
	}
	return committed, pos
}

// TestBatchedIncrementalResume: a batched read of rows that share cursor
// values across its commits is killed; the read resumed from the last
// commit gives exactly the rest, in cursor-then-key order, and ends on a
// plain position from which later syncs go on as always.
func TestBatchedIncrementalResume(t *testing.T) {
	for _, batchedAgain := range []bool{true, false} {
		t.Run(fmt.Sprintf("resumed batched=%v", batchedAgain), func(t *testing.T) {
			f := newReaderFixture(t)
			// Groups of 700 rows share a cursor value; commits come every
			// 1000 rows, inside groups. The key is (g, name).
			f.exec(`CREATE TABLE t (id int NOT NULL, g int, name text, updated_at timestamptz, PRIMARY KEY (g, name));
			INSERT INTO t SELECT i, i % 7, 'n' || i, '2024-01-01'::timestamptz + (i / 700) * interval '1 hour' FROM generate_series(1, 4500) i`)
			req := providers.ReadRequest{Table: "t", Cursor: "updated_at", BatchRows: 300}
			committed, pos := killedRead(t, f.p.ReadIncremental, req, 1000, 3)
			if pos.Cursor != "2024-01-01 02:00:00+00" {
				t.Errorf("position after 2000 rows: cursor %q, want the third group's", pos.Cursor)
			}

			// Rows written between the kill and the resume, past the position.
			f.exec(`INSERT INTO t VALUES (4501, 0, 'late', '2024-01-01 06:00:00+00')`)
			req.From = pos
			if batchedAgain {
				req.CommitRows = 1000
				req.Commit = func(records.Position) error { return nil }
			}
			got := &collected{}
			final, err := f.p.ReadIncremental(context.Background(), req, got.emit)
			if err != nil {
				t.Fatal(err)
			}
			// Cursor then key order.
			type ord struct {
				at   string
				g    int32
				name string
			}
			var order []ord
			for _, r := range got.rows {
				order = append(order, ord{fmt.Sprint(r["updated_at"]), r["g"].(int32), r["name"].(string)})
			}
			if !slices.IsSortedFunc(order, func(a, b ord) int {
				if c := stdcmp.Compare(a.at, b.at); c != 0 {
					return c
				}
				if c := stdcmp.Compare(a.g, b.g); c != 0 {
					return c
				}
				return stdcmp.Compare(a.name, b.name)
			}) {
				t.Errorf("the resumed read is not in cursor-then-key order")
			}
			all := append(committed, got.ints("id")...)
			slices.Sort(all)
			if d := cmp.Diff(seq(1, 4501), all); d != "" {
				t.Errorf("committed + resumed rows (-want +got):\n%s", d)
			}
			if final.Cursor != "2024-01-01 06:00:00+00" || len(final.BoundaryKeys) != 302 || final.AfterKey != nil {
				t.Errorf("final position %q, %d keys, after %v; want the last group's 302 keys and no key to continue after", final.Cursor, len(final.BoundaryKeys), final.AfterKey)
			}
			req = providers.ReadRequest{Table: "t", Cursor: "updated_at", BatchRows: 300, From: final}
			runSyncs(t, f, f.p.ReadIncremental, req, "id", []syncStep{
				{"", nil, "2024-01-01 06:00:00+00", 302},
				{`INSERT INTO t VALUES (4502, 1, 'late', '2024-01-01 06:00:00+00')`, []int64{4502}, "2024-01-01 06:00:00+00", 303},
			})
		})
	}
}

// TestBatchedIncrementalEndsOnBoundary: a resumed position past which no
// row is left becomes a plain position holding its group's keys.
func TestBatchedIncrementalEndsOnBoundary(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, updated_at int NOT NULL);
	INSERT INTO t SELECT i, i / 1500 FROM generate_series(1, 2000) i`)
	req := providers.ReadRequest{Table: "t", Cursor: "updated_at", BatchRows: 500}
	var positions []records.Position
	req.CommitRows, req.Commit = 1000, func(p records.Position) error { positions = append(positions, p); return nil }
	got := &collected{}
	final, err := f.p.ReadIncremental(context.Background(), req, got.emit)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(seq(1, 2000), got.ints("id")); d != "" {
		t.Errorf("rows (-want +got):\n%s", d)
	}
	// 2000 rows: commits after 1000 and 2000 rows, then the final one.
	want := []records.Position{{Cursor: "0", AfterKey: []string{"1000"}}, {Cursor: "1", AfterKey: []string{"2000"}}}
	if d := cmp.Diff(want, positions); d != "" {
		t.Errorf("positions (-want +got):\n%s", d)
	}
	if final.Cursor != "1" || len(final.BoundaryKeys) != 501 || final.AfterKey != nil {
		t.Errorf("final %+v", final)
	}
	// Resuming from the last commit: nothing left, a plain position.
	req = providers.ReadRequest{Table: "t", Cursor: "updated_at", From: positions[1]}
	got = &collected{}
	again, err := f.p.ReadIncremental(context.Background(), req, got.emit)
	if err != nil || len(got.rows) != 0 {
		t.Fatalf("resumed read: %d rows, %v", len(got.rows), err)
	}
	if d := cmp.Diff(final, again, cmpSortedKeys); d != "" {
		t.Errorf("resumed empty read's position (-want +got):\n%s", d)
	}
}

// TestBatchedXminResume: rows of one transaction share an xmin across
// commits; a killed xmin read resumes exactly, and keeps the first read's
// horizon so that the next sync misses nothing.
func TestBatchedXminResume(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE x (id int PRIMARY KEY, v text)`)
	for i := range 3 {
		f.exec(fmt.Sprintf(`INSERT INTO x SELECT i, 'v' FROM generate_series(%d, %d) i`, i*1500+1, i*1500+1500))
	}
	req := providers.ReadRequest{Table: "x", BatchRows: 400}
	committed, pos := killedRead(t, f.p.ReadXmin, req, 1000, 3)
	if pos.Xmin == 0 {
		t.Fatalf("position %+v has no horizon", pos)
	}
	req.From = pos
	got := &collected{}
	final, err := f.p.ReadXmin(context.Background(), req, got.emit)
	if err != nil {
		t.Fatal(err)
	}
	all := append(committed, got.ints("id")...)
	slices.Sort(all)
	if d := cmp.Diff(seq(1, 4500), all); d != "" {
		t.Errorf("committed + resumed rows (-want +got):\n%s", d)
	}
	if final.Xmin != pos.Xmin || final.Cursor != "" || final.AfterKey != nil {
		t.Errorf("final %+v, want the first read's horizon %d and no key", final, pos.Xmin)
	}
	f.exec(`UPDATE x SET v = 'w' WHERE id = 7`)
	got = &collected{}
	req = providers.ReadRequest{Table: "x", From: final}
	if _, err := f.p.ReadXmin(context.Background(), req, got.emit); err != nil {
		t.Fatal(err)
	}
	if ids := got.ints("id"); !slices.Contains(ids, 7) {
		t.Errorf("next sync read %v, want row 7", ids)
	}
}

// TestBatchedNeedsKey: a table without a key cannot be read in batches.
func TestBatchedNeedsKey(t *testing.T) {
	f := newReaderFixture(t)
	f.exec(`CREATE TABLE nk (at int); INSERT INTO nk SELECT i FROM generate_series(1, 10) i`)
	req := providers.ReadRequest{Table: "nk", Cursor: "at", CommitRows: 1000, Commit: func(records.Position) error { return nil }}
	_, err := f.p.ReadIncremental(context.Background(), req, (&collected{}).emit)
	if err == nil || !strings.Contains(err.Error(), "batch_size needs a primary key") {
		t.Errorf("error %v", err)
	}
}
