package pgjournal

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/runner/journal"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	t0  = time.Unix(1_700_000_000, 0)
	ctx = context.Background()
)

func newPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// openPG opens the journal of stripe.billing, compacting whenever asked.
func openPG(t testing.TB, pool *pgxpool.Pool, now time.Time) *PG {
	t.Helper()
	p, err := OpenPostgres(ctx, pool, "stripe.billing", now)
	if err != nil {
		t.Fatal(err)
	}
	p.compactEvery = 0
	t.Cleanup(p.Close)
	return p
}

func appendPG(t testing.TB, j journal.Store, now time.Time, evs ...[2]string) {
	t.Helper()
	for _, ev := range evs {
		dup, err := j.Append(ctx, ev[0], ev[1], []byte(`{"id": "`+ev[0]+`"}`), now)
		if err != nil || dup {
			t.Fatalf("append %s: dup %v, %v", ev[0], dup, err)
		}
	}
}

func pending(t testing.TB, j journal.Store, table string, done uint64) []journal.Record {
	t.Helper()
	recs, err := j.Pending(ctx, table, done)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func count(t testing.TB, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPGAppendPendingCommitted: records are read back by table past a
// committed sequence number, in order, also by another runner (another
// pool); an id journaled by either is a duplicate for both.
func TestPGAppendPendingCommitted(t *testing.T) {
	url := pgtest.NewDB(t)
	pool1, pool2 := newPool(t, url), newPool(t, url)
	j1 := openPG(t, pool1, t0)
	appendPG(t, j1, t0, [2]string{"evt_1", "charges"}, [2]string{"evt_2", "customers"}, [2]string{"evt_3", "charges"})
	if dup, err := j1.Append(ctx, "evt_1", "charges", []byte(`{}`), t0); err != nil || !dup {
		t.Fatalf("redelivery: dup %v, %v", dup, err)
	}
	recs := pending(t, j1, "charges", 0)
	want := []journal.Record{
		{Seq: 1, ID: "evt_1", Table: "charges", Received: t0.Unix(), Event: []byte(`{"id":"evt_1"}`)},
		{Seq: 3, ID: "evt_3", Table: "charges", Received: t0.Unix(), Event: []byte(`{"id":"evt_3"}`)},
	}
	if diff := cmp.Diff(want, recs); diff != "" {
		t.Errorf("pending charges (-want +got):\n%s", diff)
	}
	if !hasPending(t, j1, "charges") || hasPending(t, j1, "other") {
		t.Error("HasPending before any commit")
	}

	j2 := openPG(t, pool2, t0)
	if dup, err := j2.Append(ctx, "evt_2", "customers", []byte(`{}`), t0); err != nil || !dup {
		t.Errorf("an id the other runner journaled: dup %v, %v", dup, err)
	}
	j2.Committed("charges", 1)
	if diff := cmp.Diff([]string{"evt_3"}, ids(pending(t, j2, "charges", 1))); diff != "" {
		t.Errorf("pending charges past 1 (-want +got):\n%s", diff)
	}
	j2.Committed("charges", 3)
	if hasPending(t, j2, "charges") {
		t.Error("charges pending after committing its last record")
	}
	if !hasPending(t, j1, "charges") {
		t.Error("the other runner, which does not know the commit, sees nothing pending")
	}
	if _, err := j1.Append(ctx, "evt_4", "charges", []byte(`not json`), t0); err == nil {
		t.Error("a body that is not JSON was journaled")
	}
	j1.Close()
	if _, err := j1.Append(ctx, "evt_5", "charges", []byte(`{}`), t0); err == nil {
		t.Error("append to a closed journal")
	}
	if n := count(t, pool1, `SELECT count(*) FROM sluice.webhook_journal`); n != 3 {
		t.Errorf("%d records, want 3", n)
	}
}

// TestPGSequence: numbers go on past the highest number a table committed,
// even when the journal's tables lost theirs, and per source.
func TestPGSequence(t *testing.T) {
	pool := newPool(t, pgtest.NewDB(t))
	j := openPG(t, pool, t0)
	j.Committed("charges", 100)
	appendPG(t, j, t0, [2]string{"evt_1", "charges"})
	other, err := OpenPostgres(ctx, pool, "stripe.other", t0)
	if err != nil {
		t.Fatal(err)
	}
	appendPG(t, other, t0, [2]string{"evt_1", "charges"}) // another source: not a duplicate
	// Another runner, which knows no commit, goes on from the counter.
	appendPG(t, openPG(t, pool, t0), t0, [2]string{"evt_2", "charges"})
	got := []uint64{pending(t, j, "charges", 0)[0].Seq, pending(t, j, "charges", 0)[1].Seq, pending(t, other, "charges", 0)[0].Seq}
	if diff := cmp.Diff([]uint64{101, 102, 1}, got); diff != "" {
		t.Errorf("sequence numbers (-want +got):\n%s", diff)
	}
}

// TestPGCompact: committed records are dropped, and those of tables no
// longer live once past the grace; their ids are still recognised until
// journal.SeenRetention has passed, those of records still pending for as long as
// they are; sequence numbers go on from the last one.
func TestPGCompact(t *testing.T) {
	pool := newPool(t, pgtest.NewDB(t))
	j := openPG(t, pool, t0)
	appendPG(t, j, t0, [2]string{"evt_1", "charges"}, [2]string{"evt_2", "gone"}, [2]string{"evt_3", "charges"})
	j.Committed("charges", 3)
	live := map[string]bool{"charges": true}
	if err := j.Compact(ctx, live, t0); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM sluice.webhook_journal WHERE event_id = 'evt_2'`); n != 1 {
		t.Errorf("the record of a table not live was dropped within the grace")
	}
	if err := j.Compact(ctx, live, t0.Add(orphanGrace+time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM sluice.webhook_journal`); n != 0 {
		t.Errorf("%d records after compaction, want 0", n)
	}

	j = openPG(t, pool, t0.Add(time.Hour))
	if dup, _ := j.Append(ctx, "evt_1", "charges", []byte(`{}`), t0.Add(time.Hour)); !dup {
		t.Error("a compacted id is not recognised")
	}
	appendPG(t, j, t0, [2]string{"evt_4", "charges"})
	if recs := pending(t, j, "charges", 0); len(recs) != 1 || recs[0].Seq != 4 {
		t.Errorf("sequence after compaction: %+v", recs)
	}
	later := t0.Add(journal.SeenRetention + time.Hour)
	if err := j.Compact(ctx, live, later); err != nil {
		t.Fatal(err)
	}
	if dup, _ := j.Append(ctx, "evt_4", "charges", []byte(`{}`), later); !dup {
		t.Error("the id of a pending record is forgotten")
	}
	if dup, _ := j.Append(ctx, "evt_1", "charges", []byte(`{"id":"evt_1"}`), later); dup {
		t.Error("an id past journal.SeenRetention is still remembered")
	}
	// Opening forgets ids past journal.SeenRetention too.
	if n := count(t, pool, `SELECT count(*) FROM sluice.webhook_seen`); n != 2 {
		t.Errorf("%d seen ids, want 2 (evt_1 again, evt_4)", n)
	}
	openPG(t, pool, later.Add(journal.SeenRetention+time.Hour))
	if n := count(t, pool, `SELECT count(*) FROM sluice.webhook_seen`); n != 2 {
		t.Errorf("%d seen ids after an open, want 2: both records are pending", n)
	}
	j.Committed("charges", 5)
	if err := j.Compact(ctx, live, later); err != nil {
		t.Fatal(err)
	}
	openPG(t, pool, later.Add(journal.SeenRetention+time.Hour))
	if n := count(t, pool, `SELECT count(*) FROM sluice.webhook_seen`); n != 0 {
		t.Errorf("%d seen ids after an open past their retention, want 0", n)
	}
}

// TestPGPendingBounds: one read stops at the bounds of a commit, the
// record that crosses the byte bound included, as the file journal's.
func TestPGPendingBounds(t *testing.T) {
	pool := newPool(t, pgtest.NewDB(t))
	j := openPG(t, pool, t0)
	for i := range 5 {
		body := fmt.Sprintf(`{"id":"evt_%d","pad":"%s"}`, i, strings.Repeat("x", 100-23))
		if len(body) != 100 {
			t.Fatalf("body of %d bytes", len(body))
		}
		if _, err := j.Append(ctx, fmt.Sprintf("evt_%d", i), "charges", []byte(body), t0); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ events, bytes, want int }{
		{10, 1 << 20, 5}, {3, 1 << 20, 3}, {10, 150, 2}, {10, 200, 2}, {10, 201, 3}, {10, 1, 1},
	} {
		j.maxEvents, j.maxBytes = c.events, c.bytes
		if got := len(pending(t, j, "charges", 0)); got != c.want {
			t.Errorf("bounds %d events, %d bytes: %d records, want %d", c.events, c.bytes, got, c.want)
		}
	}
}

// TestPGOpenConcurrently: runners starting at once on a new database all
// find or create the tables.
func TestPGOpenConcurrently(t *testing.T) {
	url := pgtest.NewDB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		pool := newPool(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := OpenPostgres(ctx, pool, fmt.Sprintf("stripe.s%d", i%2), t0)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestPGConcurrentAppends: goroutines of two runners (two pools) append
// to one source at once, some of them the same ids; a reader that applies
// what it reads, past the last number it read, while they do, gets every
// journaled record of its table exactly once and in order: none committed
// after it read past its number.
func TestPGConcurrentAppends(t *testing.T) {
	url := pgtest.NewDB(t)
	pools := []*pgxpool.Pool{newPool(t, url), newPool(t, url)}
	runners := []*PG{openPG(t, pools[0], t0), openPG(t, pools[1], t0)}
	reader := openPG(t, newPool(t, url), t0)
	reader.maxEvents = 7 // many reads, each racing the appends

	const writers, perWriter, shared = 8, 60, 30
	var (
		mu        sync.Mutex
		journaled = map[string]int{} // charges ids appended as new
		sharedNew = map[string]int{}
	)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := runners[w%2]
			for i := range perWriter {
				id, table := fmt.Sprintf("evt_%d_%d", w, i), "charges"
				if i%3 == 2 {
					table = "customers"
				}
				if i%2 == 1 && i/2 < shared {
					// The same delivery reaching both runners at once.
					id, table = fmt.Sprintf("evt_shared_%d", i/2), "charges"
				}
				dup, err := j.Append(ctx, id, table, []byte(`{"id":"`+id+`"}`), t0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if !dup && table == "charges" {
					journaled[id]++
				}
				if !dup && strings.HasPrefix(id, "evt_shared_") {
					sharedNew[id]++
				}
				mu.Unlock()
			}
		}()
	}
	stop := make(chan struct{})
	readDone := make(chan []journal.Record)
	go func() {
		var got []journal.Record
		var done uint64
		drain := func() bool {
			recs, err := reader.Pending(ctx, "charges", done)
			if err != nil {
				t.Error(err)
				return false
			}
			got = append(got, recs...)
			if len(recs) > 0 {
				done = recs[len(recs)-1].Seq
			}
			return len(recs) > 0
		}
		for {
			select {
			case <-stop:
				for drain() {
				}
				readDone <- got
				return
			default:
				drain()
			}
		}
	}()
	wg.Wait()
	close(stop)
	got := <-readDone

	var seqs []uint64
	read := map[string]int{}
	for _, r := range got {
		seqs = append(seqs, r.Seq)
		read[r.ID]++
	}
	if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
		t.Errorf("sequence numbers not strictly increasing: %v", seqs)
	}
	if diff := cmp.Diff(journaled, read); diff != "" {
		t.Errorf("ids read (-journaled +read):\n%s", diff)
	}
	for id, n := range sharedNew {
		if n != 1 {
			t.Errorf("%s journaled %d times", id, n)
		}
	}
	if len(sharedNew) != shared {
		t.Errorf("%d shared ids journaled, want %d", len(sharedNew), shared)
	}
	if n := count(t, pools[0], `SELECT count(*) FROM sluice.webhook_journal`); n != count(t, pools[0], `SELECT count(*) FROM sluice.webhook_seen`) {
		t.Errorf("records and seen ids differ: %d records", n)
	}
}

// TestPGCompactConcurrently: runners compacting at once while others
// append lose nothing pending.
func TestPGCompactConcurrently(t *testing.T) {
	url := pgtest.NewDB(t)
	var js []*PG
	for range 3 {
		js = append(js, openPG(t, newPool(t, url), t0))
	}
	appendPG(t, js[0], t0, [2]string{"evt_a", "charges"}, [2]string{"evt_b", "charges"})
	for _, j := range js {
		j.Committed("charges", 1)
	}
	var wg sync.WaitGroup
	for i, j := range js {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 20 {
				if err := j.Compact(ctx, map[string]bool{"charges": true}, t0.Add(time.Duration(k)*time.Second)); err != nil {
					t.Error(err)
				}
				appendPG(t, j, t0, [2]string{fmt.Sprintf("evt_%d_%d", i, k), "charges"})
			}
		}()
	}
	wg.Wait()
	recs := pending(t, js[0], "charges", 0)
	if len(recs) != 61 || recs[0].ID != "evt_b" {
		t.Errorf("%d records left, first %+v; want 61 from evt_b", len(recs), recs[0])
	}
}

// BenchmarkPGAppend measures the latency of an append (one durable
// commit, synchronous_commit on) on a server that syncs its WAL (pgtest's
// clusters do not), and on pgtest's for comparison: p50 and p99 per op.
func BenchmarkPGAppend(b *testing.B) {
	c, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"fsync": "on", "synchronous_commit": "off"}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	for _, server := range []struct{ name, url string }{{"fsync=on", c.URL("postgres")}, {"fsync=off", pgtest.NewDB(b)}} {
		b.Run(server.name, func(b *testing.B) {
			pool := newPool(b, server.url)
			j := openPG(b, pool, t0)
			body := []byte(`{"id":"evt","object":"event","pad":"` + strings.Repeat("x", 2000) + `"}`)
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if _, err := j.Append(ctx, fmt.Sprintf("evt_%s_%d", server.name, i), "charges", body, t0); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			sort.Slice(took, func(a, c int) bool { return took[a] < took[c] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

func hasPending(t *testing.T, j journal.Store, table string) bool {
	t.Helper()
	ok, err := j.HasPending(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
func ids(recs []journal.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}
