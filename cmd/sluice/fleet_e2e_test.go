package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	whPG "github.com/sluice-dev/sluice/warehouse/postgres"
)

// fleetShop is a shop whose configuration a fleet of `sluice run` processes
// (this test binary as sluice: startSluice) share through a postgres
// state backend, syncing into a PostgreSQL warehouse. Every warehouse
// commit is recorded by a trigger on the warehouse's positions table
// (commits), with the application_name of the committing session, which
// each runner sets to its name (PGAPPNAME): what the tests assert comes
// from the warehouse, not from the runners' logs.
type fleetShop struct {
	*shop
	t     *testing.T
	wh    *pgx.Conn
	procs map[string]*fleetProc
	mu    sync.Mutex
	w     *writer
}

type fleetProc struct {
	cmd *exec.Cmd
	log string
}

// fleetAudit records every commit (see fleetShop): a trigger on the
// positions table, which the warehouse creates (whPG.Open).
const fleetAudit = `
CREATE TABLE public.commits (
	table_name text NOT NULL,
	runner     text NOT NULL,
	at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.commits (table_name, runner) VALUES (NEW.table_name, current_setting('application_name'));
	RETURN NEW;
END $$;
CREATE TRIGGER audit AFTER INSERT OR UPDATE ON raw._sluice_positions FOR EACH ROW EXECUTE FUNCTION public.audit();
`

// newFleet makes the shop, its 12 batch tables (b01..b12, full_refresh
// every minute) and its cdc table (events), the warehouse with its audit,
// and applies the configuration.
func newFleet(t *testing.T, batchTables int) *fleetShop {
	s := newShop(t)
	stateURL := pgtest.NewDB(t)
	whURL := pgtest.NewDB(t)
	ctx := context.Background()
	wh, err := pgx.Connect(ctx, whURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close(context.Background()) })
	created, err := whPG.Open(ctx, &config.Warehouse{Backend: "postgres", URL: whURL, Schema: "raw"}, s.dir)
	if err != nil {
		t.Fatal(err)
	}
	created.Close()
	if _, err := wh.Exec(ctx, fleetAudit); err != nil {
		t.Fatal(err)
	}
	var tables strings.Builder
	tables.WriteString("  frequency = \"1m\"\n")
	for i := 1; i <= batchTables; i++ {
		name := fmt.Sprintf("b%02d", i)
		s.exec(fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, v text); INSERT INTO %s SELECT g, md5(g::text) FROM generate_series(1, 200) g`, name, name))
		fmt.Fprintf(&tables, "  table %q {\n    sync = \"full_refresh\"\n  }\n", name)
	}
	tables.WriteString("  table \"events\" {\n    sync = \"cdc\"\n  }\n")
	s.write(`state {
  backend = "postgres"
  url     = "` + stateURL + `"
}
warehouse {
  backend = "postgres"
  url     = "` + whURL + `"
  schema  = "raw"
}
runner {
  concurrency = 2
}
` + shopHeader + shopSource(tables.String()))
	s.runEnv()
	s.must(0, "apply", "-auto-approve")
	return &fleetShop{shop: s, t: t, wh: wh, procs: map[string]*fleetProc{}}
}

// start starts the runner named id.
func (f *fleetShop) start(id string) {
	f.t.Helper()
	f.t.Setenv("PGAPPNAME", id)
	f.t.Setenv("SLUICE_CLAIM_TIMEOUT", "4s")
	cmd, log := startSluice(f.t, "-chdir="+f.dir, "-no-color", "run", "-id="+id, "-listen=127.0.0.1:0", "-log-level=debug")
	f.mu.Lock()
	f.procs[id] = &fleetProc{cmd: cmd, log: log}
	f.mu.Unlock()
}

// signal sends sig to the runner id; for SIGKILL and SIGTERM it waits for
// the process to end, and returns how it ended.
func (f *fleetShop) signal(id string, sig syscall.Signal) error {
	f.t.Helper()
	f.mu.Lock()
	p := f.procs[id]
	f.mu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		f.t.Fatal(err)
	}
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		f.t.Fatalf("runner %s did not stop within 60s of %s:\n%s", id, sig, f.logs())
	}
	return nil
}

func (f *fleetShop) logs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.procs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		data, _ := os.ReadFile(f.procs[id].log)
		var lines []string
		for _, l := range strings.Split(string(data), "\n") {
			// River's own debug lines drown the runner's.
			if !strings.Contains(l, "sluice.river") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		fmt.Fprintf(&b, "--- %s (last lines)\n%s\n", id, strings.Join(lines, "\n"))
	}
	return b.String()
}

func (f *fleetShop) whQuery(sql string, args ...any) string {
	f.t.Helper()
	var v string
	if err := f.wh.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		f.t.Fatalf("%s: %v\n%s", sql, err, f.logs())
	}
	return v
}

// commitsOf returns the commits of a warehouse table: runner and time.
func (f *fleetShop) commitsOf(table string) (runners []string, at []time.Time) {
	f.t.Helper()
	rows, err := f.wh.Query(context.Background(), `SELECT runner, at FROM public.commits WHERE table_name = $1 ORDER BY at`, table)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		var t time.Time
		if err := rows.Scan(&r, &t); err != nil {
			f.t.Fatal(err)
		}
		runners, at = append(runners, r), append(at, t)
	}
	return runners, at
}

// lastCommit returns the runner and time of a table's latest commit.
func (f *fleetShop) lastCommit(table string) (string, time.Time) {
	runners, at := f.commitsOf(table)
	if len(runners) == 0 {
		return "", time.Time{}
	}
	return runners[len(runners)-1], at[len(at)-1]
}

// waitFor polls until ok or the timeout, failing the test with what.
func (f *fleetShop) waitFor(what string, timeout time.Duration, ok func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if f.w != nil && f.w.failed() != nil {
			f.t.Fatalf("the writer failed: %v", f.w.failed())
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %s\n%s", what, timeout, f.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writer inserts, updates and deletes events rows until stopped.
type writer struct {
	stop chan struct{}
	done chan struct{}
	n    atomic.Int64
	mu   sync.Mutex
	err  error
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (f *fleetShop) startWriter() *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	f.w = w
	conn, err := pgx.Connect(context.Background(), f.url)
	if err != nil {
		f.t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		for i := int64(1); ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			_, err := conn.Exec(context.Background(), `WITH
				ins AS (INSERT INTO events (id, kind, created_at) SELECT g, 'k' || g % 7, now() FROM generate_series($1::bigint * 10 + 1, $1::bigint * 10 + 10) g RETURNING 1),
				upd AS (UPDATE events SET kind = 'updated' WHERE id = $1::bigint * 10 - 3 RETURNING 1)
				DELETE FROM events WHERE id = $1::bigint * 10 - 7`, i)
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			w.n.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

func (w *writer) finish(t *testing.T) {
	close(w.stop)
	<-w.done
	if err := w.failed(); err != nil {
		t.Fatal(err)
	}
}

// converged reports whether the warehouse's events equal the source's:
// the same rows, each once (deleted rows are tombstones there).
func (f *fleetShop) converged() (bool, string) {
	src := f.query(`SELECT count(*) || ' ' || coalesce(sum(hashtext(id || kind)), 0) FROM events`)
	var dst string
	err := f.wh.QueryRow(context.Background(), `SELECT count(*) || ' ' || coalesce(sum(hashtext(id || kind)), 0) || ' ' || count(DISTINCT id) FROM raw.shop_events WHERE NOT _sluice_deleted`).Scan(&dst)
	if err != nil {
		return false, err.Error()
	}
	fields := strings.Fields(dst)
	return fields[0]+" "+fields[1] == src && fields[2] == fields[0], fmt.Sprintf("source %s, warehouse %s (count, hash, distinct ids)", src, dst)
}

func (f *fleetShop) waitConverged(timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := f.converged()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the warehouse's events do not equal the source's within %s: %s\n%s", timeout, msg, f.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFleetShares: three runners share 12 batch tables and a cdc table.
// The work spreads (at least two runners commit batch tables), every
// batch table is synced once per period (at a frequency of 1m, its
// commits are a period apart: no sync of a table overlapped another, none
// ran twice in a period),
// the cdc table is streamed by one runner and equals the source, and
// status shows each table's runner and every runner's heartbeat.
func TestFleetShares(t *testing.T) {
	f := newFleet(t, 12)
	w := f.startWriter()
	for _, id := range []string{"runner-1", "runner-2", "runner-3"} {
		f.start(id)
	}
	f.waitFor("every batch table synced once", 60*time.Second, func() bool {
		return f.whQuery(`SELECT count(DISTINCT table_name)::text FROM public.commits WHERE table_name LIKE 'shop_b%'`) == "12"
	})
	// Every table comes due again a period after its first sync: wait
	// for its second, whenever the first was (a slow machine starts late).
	f.waitFor("every batch table synced twice", 120*time.Second, func() bool {
		return f.whQuery(`SELECT count(*)::text FROM (SELECT table_name FROM public.commits WHERE table_name LIKE 'shop_b%' GROUP BY 1 HAVING count(*) >= 2) x`) == "12"
	})
	w.finish(t)
	f.waitConverged(30 * time.Second)

	spread := map[string]bool{}
	for i := 1; i <= 12; i++ {
		table := fmt.Sprintf("shop_b%02d", i)
		runners, at := f.commitsOf(table)
		for _, r := range runners {
			spread[r] = true
		}
		// Two syncs of a table one period apart at least: none overlapped
		// another, none ran twice in a period.
		for k := 1; k < len(at); k++ {
			if gap := at[k].Sub(at[k-1]); gap < 55*time.Second {
				t.Errorf("%s committed twice %s apart (by %v): two syncs in one period", table, gap, runners)
			}
		}
	}
	if len(spread) < 2 {
		t.Errorf("the batch tables were committed by %v only: the work did not spread", spread)
	}
	streamers, _ := f.commitsOf("shop_events")
	owners := map[string]bool{}
	for _, r := range streamers {
		owners[r] = true
	}
	if len(owners) != 1 {
		t.Errorf("the cdc table was committed by %v: one runner streams a source while it runs", owners)
	}

	out := f.must(0, "status", "-json")
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, tj := range st.Tables {
		if tj.Runner == "" || tj.State != "completed" {
			t.Errorf("status of %s: state %s, runner %q", tj.Address, tj.State, tj.Runner)
		}
	}
	alive := 0
	for _, r := range st.Runners {
		if r.State == "running" && time.Since(r.LastHeartbeat) < 15*time.Second {
			alive++
		}
	}
	if alive != 3 {
		t.Errorf("status shows %d running runners with a recent heartbeat, want 3: %+v", alive, st.Runners)
	}
	text := f.must(0, "status")
	for _, want := range []string{"RUNNER", "LAST HEARTBEAT", "runner-1", "runner-2", "runner-3", "LAST SYNCED BY"} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	// run -once beside the fleet leaves the stream to its runner.
	once := f.must(0, "run", "-once", "-id=by-hand")
	if l := line(once, "postgres.shop/events"); !strings.Contains(l, "elsewhere streamed by runner runner-") {
		t.Errorf("run -once beside the fleet, events: %q\n%s", l, once)
	}
	for _, id := range []string{"runner-1", "runner-2", "runner-3"} {
		if err := f.signal(id, syscall.SIGTERM); err != nil {
			t.Errorf("runner %s after SIGTERM: %v", id, err)
		}
	}
	out = f.must(0, "status", "-json")
	st = statusJSON{}
	_ = json.Unmarshal([]byte(out), &st)
	for _, r := range st.Runners {
		if r.State != "stopped" {
			t.Errorf("after SIGTERM, runner %s is %s", r.ID, r.State)
		}
	}
}

// TestFleetStreamTakeover: while a writer runs, the runner streaming the
// cdc table is killed (kill -9) five times at random points; each time
// another runner commits the stream within 30s. Then it is stopped with
// SIGTERM (another takes over at once), and stopped with SIGSTOP past the
// claim timeout: another takes over, and once continued, the stopped
// runner commits nothing more. At the end the warehouse equals the
// source: nothing lost, nothing twice.
func TestFleetStreamTakeover(t *testing.T) {
	f := newFleet(t, 1)
	w := f.startWriter()
	next := 4
	for _, id := range []string{"runner-1", "runner-2", "runner-3"} {
		f.start(id)
	}
	var owner string
	f.waitFor("the stream's first commit", 60*time.Second, func() bool {
		owner, _ = f.lastCommit("shop_events")
		return owner != ""
	})
	takeover := func(what string, old string, limit time.Duration) (string, time.Duration) {
		t.Helper()
		at := time.Now()
		var by string
		f.waitFor(what+": another runner streams", limit, func() bool {
			r, when := f.lastCommit("shop_events")
			by = r
			return r != old && when.After(at)
		})
		return by, time.Since(at)
	}
	for round := 1; round <= 5; round++ {
		// A random point: somewhere in the next 0-3s of streaming.
		time.Sleep(time.Duration(time.Now().UnixNano()%3000) * time.Millisecond)
		_ = f.signal(owner, syscall.SIGKILL)
		by, took := takeover(fmt.Sprintf("kill -9 #%d of %s", round, owner), owner, 30*time.Second)
		t.Logf("kill -9 #%d of %s: %s took the stream over in %s", round, owner, by, took.Round(100*time.Millisecond))
		id := fmt.Sprintf("runner-%d", next)
		next++
		f.start(id)
		owner = by
	}

	// SIGTERM hands the stream over at once.
	if err := f.signal(owner, syscall.SIGTERM); err != nil {
		t.Errorf("runner %s after SIGTERM: %v", owner, err)
	}
	by, took := takeover("SIGTERM of "+owner, owner, 15*time.Second)
	t.Logf("SIGTERM of %s: %s took the stream over in %s", owner, by, took.Round(100*time.Millisecond))
	owner = by

	// SIGSTOP past the claim timeout (4s): another runner takes over;
	// the stopped one, once continued, must not commit.
	stopped := owner
	stopAt := time.Now()
	_ = f.signal(stopped, syscall.SIGSTOP)
	by, took = takeover("SIGSTOP of "+stopped, stopped, 30*time.Second)
	t.Logf("SIGSTOP of %s: %s took the stream over in %s", stopped, by, took.Round(100*time.Millisecond))
	time.Sleep(2 * time.Second)
	_ = f.signal(stopped, syscall.SIGCONT)
	time.Sleep(8 * time.Second)
	w.finish(t)
	f.waitConverged(60 * time.Second)
	if n := f.whQuery(`SELECT count(*)::text FROM public.commits WHERE table_name = 'shop_events' AND runner = $1 AND at > $2`, stopped, stopAt); n != "0" {
		t.Errorf("runner %s committed %s times after it was stopped past its claim timeout\n%s", stopped, n, f.logs())
	}
	data, _ := os.ReadFile(f.procs[stopped].log)
	if !strings.Contains(string(data), "claim") {
		t.Errorf("the stopped runner's log does not say it lost its claim:\n%s", data)
	}
}
