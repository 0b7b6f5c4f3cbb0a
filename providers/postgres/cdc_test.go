package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/providers"
)

const (
	cdcSlot = "sluice_cdc_test"
	cdcPub  = "sluice_pub_cdc"
)

// cdcEnv is a fresh database with a provider, for the stream's tests.
type cdcEnv struct {
	t    *testing.T
	ctx  context.Context
	url  string
	conn *pgx.Conn
	p    *Provider
}

func newCDCEnv(t *testing.T, setup string) *cdcEnv {
	t.Helper()
	url := pgtest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	p, err := New(cdcSource(url))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e := &cdcEnv{t: t, ctx: ctx, url: url, conn: conn, p: p}
	e.exec(setup)
	return e
}

func cdcSource(url string) *config.Source {
	return &config.Source{
		Type: "postgres", Name: "cdc", Prefix: "postgres",
		Postgres: &config.Postgres{ConnectionString: url, Schema: "public", ConnectTimeout: config.DefaultConnectTimeout},
	}
}

func (e *cdcEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.conn.Exec(e.ctx, sql, args...); err != nil {
		e.t.Fatalf("%v\n%s", err, sql)
	}
}

// lsn is the server's current WAL position, as the runner would read it
// before draining the stream.
func (e *cdcEnv) lsn() string {
	e.t.Helper()
	s, err := e.p.CurrentLSN(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// createSlot creates the test slot without a snapshot, and returns its
// consistent point.
func (e *cdcEnv) createSlot() string {
	e.t.Helper()
	var s string
	if err := e.conn.QueryRow(e.ctx, "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", cdcSlot).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// confirmed waits until no process streams from the slot (so that every
// status update sent was processed) and returns its confirmed_flush_lsn.
func (e *cdcEnv) confirmed() pglogrepl.LSN {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var active bool
		var lsn string
		if err := e.conn.QueryRow(e.ctx, "SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", cdcSlot).Scan(&active, &lsn); err != nil {
			e.t.Fatal(err)
		}
		if !active {
			return mustLSN(e.t, lsn)
		}
		if time.Now().After(deadline) {
			e.t.Fatal("the slot is still in use")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustLSN(t testing.TB, s string) pglogrepl.LSN {
	t.Helper()
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// drain streams from start until what is committed now, into sink.
func (e *cdcEnv) drain(start string, tables map[string]providers.ReadRequest, sink providers.ChangeSink) error {
	e.t.Helper()
	e.waitSlotIdle()
	req := providers.StreamRequest{Slot: cdcSlot, Publication: cdcPub, Tables: tables, StartLSN: start, StopAtLSN: e.lsn()}
	return e.p.Stream(e.ctx, req, sink)
}

// waitSlotIdle waits for the walsender of a previous stream to let go of
// the slot: the server ends it a moment after the client closed.
func (e *cdcEnv) waitSlotIdle() {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var active bool
		err := e.conn.QueryRow(e.ctx, `SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1`, cdcSlot).Scan(&active)
		if err != nil {
			e.t.Fatal(err)
		}
		if !active {
			return
		}
	}
	e.t.Fatalf("slot %s is still in use", cdcSlot)
}

// cdcSink collects transactions; it reports everything handed over as
// flushed unless flushed says otherwise.
type cdcSink struct {
	mu      sync.Mutex
	txs     []*providers.Transaction
	flushed func(txs []*providers.Transaction) string
}

func (s *cdcSink) Transaction(_ context.Context, tx *providers.Transaction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txs = append(s.txs, tx)
	return nil
}

func (s *cdcSink) Flushed() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flushed != nil {
		return s.flushed(s.txs)
	}
	if len(s.txs) == 0 {
		return ""
	}
	return s.txs[len(s.txs)-1].CommitLSN
}

func (s *cdcSink) all() []*providers.Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.txs)
}

// neverFlushed is a sink's Flushed that never commits anything.
func neverFlushed([]*providers.Transaction) string { return "" }

func columnNames(tc *providers.TableChanges) []string {
	var out []string
	for _, c := range tc.Schema.Columns {
		out = append(out, c.Name)
	}
	return out
}

func TestStreamChanges(t *testing.T) {
	e := newCDCEnv(t, `
		CREATE TABLE orders (id bigint PRIMARY KEY, note text, total numeric(10,2), tags text[]);
		CREATE TABLE "Mixed Case" ("ID" int PRIMARY KEY, "Value" text);
		CREATE TABLE ignored (id int PRIMARY KEY);
		CREATE TABLE unpublished (id int PRIMARY KEY);
		CREATE PUBLICATION `+cdcPub+` FOR TABLE orders, "Mixed Case", ignored;
		INSERT INTO orders VALUES (0, 'before the slot', 0, NULL);`)
	start := e.createSlot()
	e.exec(`INSERT INTO orders VALUES (1, 'first', -12.3, '{a,"b c",NULL}'), (2, NULL, NULL, '{}');
		INSERT INTO "Mixed Case" VALUES (1, 'x')`)
	e.exec(`UPDATE orders SET note = 'changed' WHERE id = 1`)
	e.exec(`UPDATE orders SET id = 20 WHERE id = 2`)
	e.exec(`DELETE FROM orders WHERE id = 1`)
	e.exec(`INSERT INTO ignored VALUES (1); INSERT INTO unpublished VALUES (1)`)
	e.exec(`TRUNCATE orders`)
	e.exec(`INSERT INTO orders VALUES (3, 'after', 1, '{}')`)
	tables := map[string]providers.ReadRequest{
		"orders":       {Schema: "public", Table: "orders"},
		`"Mixed Case"`: {Table: "Mixed Case"},
	}
	sink := &cdcSink{flushed: neverFlushed}
	if err := e.drain("", tables, sink); err != nil {
		t.Fatal(err)
	}
	txs := sink.all()
	type change struct {
		Table string
		Rows  [][]any
		Keys  [][]any
		Trunc bool
	}
	var got [][]change
	var last pglogrepl.LSN
	for _, tx := range txs {
		lsn := mustLSN(t, tx.CommitLSN)
		if lsn <= last || tx.Partial || time.Since(tx.CommitTime) > time.Minute {
			t.Errorf("transaction %s at %s after %s, partial %v", tx.CommitLSN, tx.CommitTime, last, tx.Partial)
		}
		last = lsn
		var cs []change
		for _, key := range []string{"orders", `"Mixed Case"`} {
			if tc := tx.Changes[key]; tc != nil {
				cs = append(cs, change{key, tableRows(t, tx, tc), keyRows(tc), tc.Truncated})
			}
		}
		got = append(got, cs)
	}
	want := [][]change{
		{
			{Table: "orders", Rows: [][]any{
				{int64(1), "first", int64(-1230), []any{"a", "b c", nil}, "I"},
				{int64(2), nil, nil, []any{}, "I"},
			}},
			{Table: `"Mixed Case"`, Rows: [][]any{{int32(1), "x", "I"}}},
		},
		{{Table: "orders", Rows: [][]any{{int64(1), "changed", int64(-1230), []any{"a", "b c", nil}, "U"}}}},
		{{Table: "orders", Rows: [][]any{{int64(20), nil, nil, []any{}, "U"}}, Keys: [][]any{{int64(2)}}}},
		{{Table: "orders", Rows: [][]any{{int64(1), nil, nil, nil, "D"}}}},
		{{Table: "orders", Trunc: true}},
		{{Table: "orders", Rows: [][]any{{int64(3), "after", int64(100), []any{}, "I"}}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("transactions (-want +got):\n%s", diff)
	}
	s := txs[0].Changes["orders"].Schema
	type col struct {
		Name, Type, SourceType string
		Nullable               bool
	}
	var cols []col
	for _, c := range s.Columns {
		cols = append(cols, col{c.Name, c.Type.Name, c.SourceType, c.Nullable})
	}
	wantCols := []col{
		{"id", "INT64", "bigint", false},
		{"note", "STRING", "text", true},
		{"total", "DECIMAL(10,2)", "numeric(10,2)", true},
		{"tags", "LIST<STRING>", "text[]", true},
		{CDCOpColumn, "STRING", "", false},
		{LSNColumn, "INT64", "", false},
		{CDCTimestampColumn, "TIMESTAMP(MICROS,UTC)", "", false},
	}
	if diff := cmp.Diff(wantCols, cols); diff != "" {
		t.Errorf("schema (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"id"}, s.PrimaryKey); diff != "" {
		t.Errorf("key (-want +got):\n%s", diff)
	}

	// The sink never flushed: the slot was not confirmed up to the first
	// transaction handed over (WAL before it, with nothing pending, may be).
	if got, first := e.confirmed(), mustLSN(t, txs[0].CommitLSN); got < mustLSN(t, start) || got >= first {
		t.Errorf("confirmed_flush_lsn %s, want from the slot's start %s and before the first commit %s", got, start, first)
	}

	// A restart from the third transaction's position gets only the later
	// ones, although the server sends them all again.
	sink = &cdcSink{}
	if err := e.drain(txs[2].CommitLSN, tables, sink); err != nil {
		t.Fatal(err)
	}
	var lsns []string
	for _, tx := range sink.all() {
		lsns = append(lsns, tx.CommitLSN)
	}
	var wantLSNs []string
	for _, tx := range txs[3:] {
		wantLSNs = append(wantLSNs, tx.CommitLSN)
	}
	if diff := cmp.Diff(wantLSNs, lsns); diff != "" {
		t.Errorf("after a restart (-want +got):\n%s", diff)
	}
	// This sink flushed everything and nothing is pending: the slot is
	// confirmed at least that far.
	if got := e.confirmed(); got < mustLSN(t, txs[len(txs)-1].CommitLSN) {
		t.Errorf("confirmed_flush_lsn %s, want at least %s", got, txs[len(txs)-1].CommitLSN)
	}
}

// TestStreamConfirmsOnlyFlushed checks that the slot is confirmed exactly
// as far as the sink committed while later transactions are pending.
func TestStreamConfirmsOnlyFlushed(t *testing.T) {
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY);
		CREATE PUBLICATION `+cdcPub+` FOR TABLE t`)
	e.createSlot()
	for i := range 3 {
		e.exec(`INSERT INTO t VALUES ($1)`, i)
	}
	sink := &cdcSink{flushed: func(txs []*providers.Transaction) string {
		if len(txs) == 0 {
			return ""
		}
		return txs[0].CommitLSN
	}}
	if err := e.drain("", map[string]providers.ReadRequest{"t": {Table: "t"}}, sink); err != nil {
		t.Fatal(err)
	}
	txs := sink.all()
	if len(txs) != 3 {
		t.Fatalf("%d transactions, want 3", len(txs))
	}
	if got, want := e.confirmed(), mustLSN(t, txs[0].CommitLSN); got != want {
		t.Errorf("confirmed_flush_lsn %s, want %s (the sink's Flushed)", got, want)
	}
}

// TestStreamIdleSlotAdvances checks DESIGN invariant 8: with nothing
// pending, the slot follows the server's WAL, so that writes to tables
// sluice does not stream retain no WAL.
func TestStreamIdleSlotAdvances(t *testing.T) {
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY);
		CREATE TABLE other (id int PRIMARY KEY);
		CREATE PUBLICATION `+cdcPub+` FOR TABLE t`)
	e.createSlot()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		done <- e.p.Stream(ctx, providers.StreamRequest{Slot: cdcSlot, Publication: cdcPub,
			Tables: map[string]providers.ReadRequest{"t": {Table: "t"}}}, &cdcSink{})
	}()
	for i := range 20 {
		e.exec(`INSERT INTO other VALUES ($1)`, i)
	}
	target := mustLSN(t, e.lsn())
	deadline := time.Now().Add(10 * time.Second)
	for {
		var lsn string
		if err := e.conn.QueryRow(e.ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", cdcSlot).Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		if mustLSN(t, lsn) >= target {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("confirmed_flush_lsn %s did not reach %s", lsn, target)
		}
		select {
		case err := <-done:
			t.Fatalf("the stream ended: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Stream after cancel: %v", err)
	}
}

func TestStreamTOAST(t *testing.T) {
	e := newCDCEnv(t, `
		CREATE TABLE docs (id int PRIMARY KEY, body text, n int);
		ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
		CREATE TABLE docs_full (id int PRIMARY KEY, body text, n int);
		ALTER TABLE docs_full ALTER COLUMN body SET STORAGE EXTERNAL;
		ALTER TABLE docs_full REPLICA IDENTITY FULL;
		CREATE PUBLICATION `+cdcPub+` FOR TABLE docs, docs_full;
		INSERT INTO docs VALUES (1, repeat('x', 100000), 0);
		INSERT INTO docs_full VALUES (1, repeat('y', 100000), 0);`)
	e.createSlot()
	e.exec(`UPDATE docs SET n = 1; UPDATE docs_full SET n = 1`)
	e.exec(`UPDATE docs SET id = 2; UPDATE docs_full SET id = 2`)
	e.exec(`DELETE FROM docs; DELETE FROM docs_full`)
	sink := &cdcSink{}
	tables := map[string]providers.ReadRequest{"docs": {Table: "docs"}, "docs_full": {Table: "docs_full"}}
	if err := e.drain("", tables, sink); err != nil {
		t.Fatal(err)
	}
	txs := sink.all()
	if len(txs) != 3 {
		t.Fatalf("%d transactions, want 3", len(txs))
	}
	x, y := strings.Repeat("x", 100000), strings.Repeat("y", 100000)
	var rows, fullRows, keys, fullKeys [][]any
	for _, tx := range txs {
		rows = append(rows, tableRows(t, tx, tx.Changes["docs"])...)
		fullRows = append(fullRows, tableRows(t, tx, tx.Changes["docs_full"])...)
		keys = append(keys, keyRows(tx.Changes["docs"])...)
		fullKeys = append(fullKeys, keyRows(tx.Changes["docs_full"])...)
	}
	want := [][]any{
		// The body was not changed, so not sent: marked, never NULL.
		{int32(1), unchangedMark, int32(1), "U"},
		{int32(2), unchangedMark, int32(1), "U"},
		{int32(2), nil, nil, "D"},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("docs (-want +got):\n%s", diff)
	}
	// REPLICA IDENTITY FULL logs the old row whole: the body is known.
	want = [][]any{
		{int32(1), y, int32(1), "U"},
		{int32(2), y, int32(1), "U"},
		{int32(2), y, int32(1), "D"},
	}
	if diff := cmp.Diff(want, fullRows); diff != "" {
		t.Errorf("docs_full (-want +got):\n%s", diff[:min(len(diff), 2000)])
	}
	if diff := cmp.Diff([][]any{{int32(1)}}, keys); diff != "" {
		t.Errorf("docs old keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]any{{int32(1)}}, fullKeys); diff != "" {
		t.Errorf("docs_full old keys (-want +got):\n%s", diff)
	}
	_ = x
}

func TestStreamSchemaChanges(t *testing.T) {
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY, a text);
		CREATE PUBLICATION `+cdcPub+` FOR TABLE t`)
	e.createSlot()
	e.exec(`INSERT INTO t VALUES (1, 'a1')`)
	e.exec(`ALTER TABLE t ADD COLUMN b int NOT NULL DEFAULT 7`)
	e.exec(`INSERT INTO t VALUES (2, 'a2', 2)`)
	e.exec(`BEGIN;
		INSERT INTO t VALUES (3, 'a3', 3);
		ALTER TABLE t ADD COLUMN c numeric(5,1)[];
		INSERT INTO t VALUES (4, 'a4', 4, '{1.5}');
		COMMIT`)
	e.exec(`ALTER TABLE t DROP COLUMN a`)
	e.exec(`INSERT INTO t VALUES (5, 5, NULL)`)
	sink := &cdcSink{}
	if err := e.drain("", map[string]providers.ReadRequest{"t": {Table: "t"}}, sink); err != nil {
		t.Fatal(err)
	}
	type chunk struct {
		Partial bool
		Columns []string
		Rows    [][]any
	}
	var got []chunk
	for _, tx := range sink.all() {
		tc := tx.Changes["t"]
		if tc == nil {
			continue
		}
		got = append(got, chunk{tx.Partial, columnNames(tc), tableRows(t, tx, tc)})
	}
	meta := []string{CDCOpColumn, LSNColumn, CDCTimestampColumn}
	want := []chunk{
		{false, append([]string{"id", "a"}, meta...), [][]any{{int32(1), "a1", "I"}}},
		{false, append([]string{"id", "a", "b"}, meta...), [][]any{{int32(2), "a2", int32(2), "I"}}},
		{true, append([]string{"id", "a", "b"}, meta...), [][]any{{int32(3), "a3", int32(3), "I"}}},
		{false, append([]string{"id", "a", "b", "c"}, meta...), [][]any{{int32(4), "a4", int32(4), []any{int32(15)}, "I"}}},
		{false, append([]string{"id", "b", "c"}, meta...), [][]any{{int32(5), int32(5), nil, "I"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chunks (-want +got):\n%s", diff)
	}
	txs := sink.all()
	last := txs[len(txs)-1].Changes["t"].Schema
	if c := last.Columns[last.Index("b")]; c.Nullable || c.SourceType != "integer" {
		t.Errorf("column b: %+v", c)
	}
	if c := last.Columns[last.Index("c")]; c.Type.Name != "LIST<DECIMAL(5,1)>" || c.SourceType != "numeric(5,1)[]" {
		t.Errorf("column c: %+v", c)
	}
}

// TestStreamLargeTransaction checks that a transaction over the memory
// budget is handed over in Partial chunks holding all its rows.
func TestStreamLargeTransaction(t *testing.T) {
	old := defaultTxBudget
	defaultTxBudget = 16 << 10
	t.Cleanup(func() { defaultTxBudget = old })
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
		CREATE PUBLICATION `+cdcPub+` FOR TABLE t`)
	e.createSlot()
	e.exec(`INSERT INTO t SELECT i, repeat('v', 100) FROM generate_series(1, 2000) i`)
	sink := &cdcSink{}
	if err := e.drain("", map[string]providers.ReadRequest{"t": {Table: "t"}}, sink); err != nil {
		t.Fatal(err)
	}
	txs := sink.all()
	rows := 0
	next := int32(1)
	for i, tx := range txs {
		if tx.CommitLSN != txs[0].CommitLSN || tx.Partial != (i < len(txs)-1) {
			t.Fatalf("chunk %d: %s partial %v", i, tx.CommitLSN, tx.Partial)
		}
		if tc := tx.Changes["t"]; tc != nil {
			for _, id := range tc.Rows.Cols[0].I32 {
				if id != next {
					t.Fatalf("row %d in chunk %d, want %d", id, i, next)
				}
				next++
			}
			rows += tc.Rows.N
		}
	}
	if rows != 2000 || len(txs) < 10 {
		t.Errorf("%d rows in %d chunks", rows, len(txs))
	}
}

// TestCreateSnapshotSlot checks DESIGN invariant 2: the exported snapshot
// and the stream from the slot's consistent point are exactly the table,
// with a writer busy while the slot is created.
func TestCreateSnapshotSlot(t *testing.T) {
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY);
		CREATE PUBLICATION `+cdcPub+` FOR TABLE t;
		INSERT INTO t SELECT generate_series(1, 100)`)
	// A slot left over by an earlier attempt is replaced.
	e.createSlot()

	var next atomic.Int32
	next.Store(101)
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(e.ctx, e.url)
		if err != nil {
			writerDone <- err
			return
		}
		defer conn.Close(context.Background())
		for {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if _, err := conn.Exec(e.ctx, "INSERT INTO t VALUES ($1)", next.Add(1)-1); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	for next.Load() < 120 {
		time.Sleep(time.Millisecond)
	}
	snap, release, err := e.p.CreateSnapshotSlot(e.ctx, cdcSlot)
	if err != nil {
		t.Fatal(err)
	}
	for n := next.Load(); next.Load() < n+20; {
		time.Sleep(time.Millisecond)
	}
	// The snapshot is readable while the slot's connection is open,
	// however many rows were written since.
	reader, err := pgx.Connect(e.ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	tx, err := reader.BeginTx(e.ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, "SET TRANSACTION SNAPSHOT '"+snap.Name+"'"); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	rows, err := tx.Query(e.ctx, "SELECT id FROM t")
	if err != nil {
		t.Fatal(err)
	}
	snapIDs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	tx.Rollback(e.ctx)
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}

	sink := &cdcSink{}
	if err := e.drain(snap.ConsistentLSN, map[string]providers.ReadRequest{"t": {Table: "t"}}, sink); err != nil {
		t.Fatal(err)
	}
	seen := map[int32]string{}
	for _, id := range snapIDs {
		seen[id] = "snapshot"
	}
	streamed := 0
	for _, tx := range sink.all() {
		for _, id := range tx.Changes["t"].Rows.Cols[0].I32 {
			if seen[id] != "" {
				t.Errorf("row %d in the %s and in the stream", id, seen[id])
			}
			seen[id] = "stream"
			streamed++
		}
	}
	var all []int32
	rows, err = e.conn.Query(e.ctx, "SELECT id FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	if all, err = pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(all) {
		t.Errorf("snapshot + stream hold %d rows, the table %d", len(seen), len(all))
	}
	for _, id := range all {
		if seen[id] == "" {
			t.Errorf("row %d missing from snapshot + stream", id)
		}
	}
	if len(snapIDs) < 120 || streamed < 20 {
		t.Errorf("%d rows in the snapshot, %d streamed: the writer was not running across the slot's creation", len(snapIDs), streamed)
	}
}

func TestCreateSnapshotSlotInUse(t *testing.T) {
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION `+cdcPub+` FOR TABLE t`)
	e.createSlot()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	done := make(chan error, 1)
	req := providers.StreamRequest{Slot: cdcSlot, Publication: cdcPub, Tables: map[string]providers.ReadRequest{"t": {Table: "t"}}}
	go func() { done <- e.p.Stream(ctx, req, &cdcSink{}) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var active bool
		if err := e.conn.QueryRow(e.ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", cdcSlot).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := e.p.CreateSnapshotSlot(e.ctx, cdcSlot); err == nil || !strings.Contains(err.Error(), "is in use by server process") {
		t.Errorf("CreateSnapshotSlot of a slot in use: %v", err)
	}
	if err := e.p.Stream(e.ctx, req, &cdcSink{}); err == nil || !strings.Contains(err.Error(), "is in use by server process") {
		t.Errorf("a second stream: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Stream after cancel: %v", err)
	}
}

func TestStreamErrors(t *testing.T) {
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	tables := map[string]providers.ReadRequest{"t": {Table: "t"}}
	err := e.drain("", tables, &cdcSink{})
	if !errors.Is(err, ErrSlotLost) || !strings.Contains(err.Error(), "sluice apply") {
		t.Errorf("without a slot: %v", err)
	}
	e.createSlot()
	if err := e.drain("", tables, &cdcSink{}); err == nil || !strings.Contains(err.Error(), "publication "+cdcPub+" does not exist; run `sluice apply`") {
		t.Errorf("without a publication: %v", err)
	}
	e.exec(`CREATE PUBLICATION ` + cdcPub + ` FOR TABLE t`)
	req := providers.StreamRequest{Slot: cdcSlot, Publication: cdcPub, Tables: tables, StartLSN: "nonsense"}
	if err := e.p.Stream(e.ctx, req, &cdcSink{}); err == nil || !strings.Contains(err.Error(), "is not an LSN") {
		t.Errorf("a bad StartLSN: %v", err)
	}
	// A sink that fails stops the stream with its error.
	e.exec(`INSERT INTO t VALUES (1)`)
	failing := errors.New("warehouse unavailable")
	if err := e.drain("", tables, failingSink{failing}); !errors.Is(err, failing) {
		t.Errorf("a failing sink: %v", err)
	}
	// A key column the table does not have.
	bad := map[string]providers.ReadRequest{"t": {Table: "t", PrimaryKey: []string{"nope"}}}
	if err := e.drain("", bad, &cdcSink{}); err == nil || !strings.Contains(err.Error(), `no column "nope" of its key`) {
		t.Errorf("a missing key column: %v", err)
	}
}

type failingSink struct{ err error }

func (s failingSink) Transaction(context.Context, *providers.Transaction) error { return s.err }
func (s failingSink) Flushed() string                                           { return "" }

// TestStreamWALLevel checks the error on a server without logical
// decoding.
func TestStreamWALLevel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"wal_level": "replica"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	p, err := New(cdcSource(c.URL("postgres")))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Stream(ctx, providers.StreamRequest{Slot: cdcSlot, Publication: cdcPub}, &cdcSink{})
	if err == nil || !strings.Contains(err.Error(), "wal_level is replica") || !strings.Contains(err.Error(), "set wal_level = logical") {
		t.Errorf("Stream: %v", err)
	}
	_, _, err = p.CreateSnapshotSlot(ctx, cdcSlot)
	if err == nil || !strings.Contains(err.Error(), "wal_level = logical") {
		t.Errorf("CreateSnapshotSlot: %v", err)
	}
}

// TestStreamMatchesSnapshot checks that a row has the same values by CDC
// (text tuples) as by a snapshot (binary COPY) and the same schema, for a
// column of every type of SPEC §5 and the values at their edges; and that
// STRING columns hold PostgreSQL's text form.
func TestStreamMatchesSnapshot(t *testing.T) {
	e := newCDCEnv(t, `
		CREATE TYPE mood AS ENUM ('sad', 'happy');
		CREATE DOMAIN amount AS numeric(8,3);
		CREATE TABLE everything (
			id int PRIMARY KEY, b bool, i2 smallint, i4 int, i8 bigint, f4 real, f8 double precision,
			n numeric(10,2), nbig numeric(30,5), nfree numeric, nneg numeric(5,-2),
			t text, vc varchar(10), c char(3), nm name, e mood,
			d date, ts timestamp, tstz timestamptz, tm time, u uuid, j json, jb jsonb, by bytea,
			ia int[], ta text[], na numeric(6,2)[], da date[], tsa timestamptz[], ba bytea[],
			iv interval, ip inet, ttz timetz, dm amount, i2d int[][], bx box[], mo money, ca char(3)[], ipa inet[]);
		CREATE PUBLICATION `+cdcPub+` FOR TABLE everything`)
	e.createSlot()
	e.exec(`INSERT INTO everything VALUES
		(1, true, 12, 345, 6789, 1.25, 3.141592653589793, 12345678.91, 1234567890123456789012345.12345, 0.1, 12300,
		 'text', 'varchar', 'abc', 'name', 'happy',
		 '2026-11-21', '2026-11-21 10:11:12.123456', '2026-11-21 10:11:12.5+01', '13:14:15.000016',
		 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1,  "b":2}', '{"b": [1, 2, null], "a": "x"}', '\x0001feff',
		 '{1,2,3}', '{a,"b c"}', '{1.50,-2.25}', '{2026-11-21}', '{"2026-11-21 10:00:00+00"}', '{"\\x00ff"}',
		 '1 year 2 mons -3 days 04:05:06.5', '192.168.0.1/24', '10:00:00+05:30', 12345.678, '{{1,2},{3,4}}',
		 '{(1,1),(0,0);(2,2),(1,1)}', 12.34, '{ab,abc}', '{10.0.0.1,::1/64}'),
		(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(3, false, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity', 'NaN', -123456789012345678901234.56789,
		 'Infinity', -9999900,
		 E'héllo ✓ "quoted" \\back\nline', '', 'ab', '', 'sad',
		 '0044-03-15 BC', '1900-01-01 00:00:00.000001', 'infinity', '24:00:00',
		 '00000000-0000-0000-0000-000000000000', '[]', '{}', '\x',
		 '{{1,2},{3,4}}', ARRAY[NULL, '', 'a"b', 'c,d', 'NULL', E'back\\slash', ' spaced '], '{-1.5,NULL}', '{infinity,1969-12-31}',
		 '{"0001-01-01 00:00:00+00 BC"}', '{NULL,"\\x"}',
		 '-1 days', '::1', '00:00:00-03', -1.5, '{}', '{}', -0.01, '{NULL}', '{}'),
		(4, true, 32767, 2147483647, 9223372036854775807, 3.4028235e38, 5e-324, -0.01, 0, 'NaN', 0,
		 repeat('x', 3000), 'x', 'x', 'x', 'happy',
		 'infinity', '-infinity', '1970-01-01 00:00:00+00', '00:00:00',
		 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'null', '"s"', repeat('ab', 2000)::bytea,
		 '[0:2]={5,NULL,6}', ARRAY['NULL'], '{}', '{-infinity}', '{NULL}', '{}',
		 '0', '10.0.0.0/8', '24:00:00+00', 0, '{{NULL}}', NULL, 0, '{}', '{NULL}')`)
	tables := map[string]providers.ReadRequest{"everything": {Table: "everything"}}
	sink := &cdcSink{}
	if err := e.drain("", tables, sink); err != nil {
		t.Fatal(err)
	}
	txs := sink.all()
	if len(txs) != 1 {
		t.Fatalf("%d transactions, want 1", len(txs))
	}
	streamed := txs[0].Changes["everything"]

	var snapSchema []records.Column
	var snapRows [][]any
	nulled := map[string]int{}
	_, err := e.p.ReadSnapshot(e.ctx, providers.ReadRequest{Table: "everything"}, func(b *records.Batch) error {
		if snapSchema == nil {
			snapSchema = slices.Clone(b.Schema.Columns)
		}
		for i := range b.N {
			var row []any
			for c, col := range b.Schema.Columns {
				row = append(row, recordstest.Value(&b.Cols[c], col.Type, i))
			}
			snapRows = append(snapRows, row)
		}
		for c, col := range b.Schema.Columns {
			nulled[col.Name] += b.Cols[c].Nulled
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := len(streamed.Schema.Columns) - 3
	if diff := cmp.Diff(snapSchema, streamed.Schema.Columns[:n]); diff != "" {
		t.Errorf("schemas, snapshot - stream +:\n%s", diff)
	}
	var rows [][]any
	for _, r := range tableRows(t, txs[0], streamed) {
		rows = append(rows, r[:n])
	}
	if diff := cmp.Diff(snapRows, rows, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("values, snapshot - stream +:\n%s", diff)
	}
	streamNulled := map[string]int{}
	for c, col := range streamed.Schema.Columns[:n] {
		streamNulled[col.Name] += streamed.Rows.Cols[c].Nulled
	}
	if diff := cmp.Diff(nulled, streamNulled); diff != "" {
		t.Errorf("values set to NULL, snapshot - stream +:\n%s", diff)
	}
	wantNulled := map[string]int{"n": 1, "d": 1, "ts": 1, "tstz": 1, "da": 2, "ia": 1}
	for name, want := range wantNulled {
		if streamNulled[name] != want {
			t.Errorf("column %s: %d values set to NULL, want %d", name, streamNulled[name], want)
		}
	}

	// STRING columns hold the text form, as the output function prints
	// it (which a ::text cast does not always: inet's shows the mask,
	// char(n)'s drops the padding).
	if _, err := e.conn.Exec(e.ctx, streamSettings); err != nil {
		t.Fatal(err)
	}
	for c, col := range streamed.Schema.Columns[:n] {
		if col.Type.Logical != records.LogicalString && col.Type.Logical != records.LogicalJSON {
			continue
		}
		ident := pgx.Identifier{col.Name}.Sanitize()
		rows, err := e.conn.Query(e.ctx, "SELECT CASE WHEN "+ident+" IS NOT NULL THEN format('%s', "+ident+") END FROM everything ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[*string])
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range texts {
			got := recordstest.Value(&streamed.Rows.Cols[c], col.Type, i)
			var w any
			if want != nil {
				w = *want
			}
			if got != w {
				t.Errorf("row %d column %s: %q, want %q", i+1, col.Name, got, w)
			}
		}
	}
}

// slowSink takes its time with each transaction, as a warehouse commit
// may.
type slowSink struct {
	cdcSink
	delay time.Duration
}

func (s *slowSink) Transaction(ctx context.Context, tx *providers.Transaction) error {
	time.Sleep(s.delay)
	return s.cdcSink.Transaction(ctx, tx)
}

// TestStreamSlowSink checks that the server keeps hearing from the stream
// while the sink works longer than wal_sender_timeout.
func TestStreamSlowSink(t *testing.T) {
	old := standbyInterval
	standbyInterval = 100 * time.Millisecond
	t.Cleanup(func() { standbyInterval = old })
	e := newCDCEnv(t, `CREATE TABLE t (id int PRIMARY KEY);
		CREATE PUBLICATION `+cdcPub+` FOR TABLE t`)
	var db string
	if err := e.conn.QueryRow(e.ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	e.exec(`ALTER DATABASE ` + pgx.Identifier{db}.Sanitize() + ` SET wal_sender_timeout = '400ms'`)
	e.createSlot()
	e.exec(`INSERT INTO t VALUES (1)`)
	e.exec(`INSERT INTO t VALUES (2)`)
	sink := &slowSink{delay: 1200 * time.Millisecond}
	if err := e.drain("", map[string]providers.ReadRequest{"t": {Table: "t"}}, sink); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.all()); n != 2 {
		t.Errorf("%d transactions, want 2", n)
	}
}
