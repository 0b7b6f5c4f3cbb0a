package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/warehouse"
)

// cdcSink receives the stream's transactions and commits them to the
// warehouse tables (see "Commit protocol" in cdc.go). Transactions are
// buffered; a background flusher commits the buffered whole transactions
// every interval, or sooner when maxChanges or maxBytes is reached, while
// the stream goes on decoding the next ones. Past twice maxBytes the
// stream waits for a commit, which then includes the chunks of a
// transaction still arriving.
type cdcSink struct {
	e          *cdcEngine
	tables     map[string]*tableSink
	order      []*tableSink
	stop       providers.StreamPosition
	maxChanges int
	maxBytes   int64
	interval   time.Duration

	mu        sync.Mutex
	pendRows  int
	pendBytes int64
	pendSince time.Time
	// handed is the last transaction handed over whole; open one of which
	// chunks were handed over (zero: none).
	handed, open providers.StreamPosition
	// committed: every transaction handed over whole up to it is
	// committed in every warehouse table. reported is the last position
	// Flushed gave the stream.
	committed, reported providers.StreamPosition
	inflight            bool
	err                 error
	resnapshot          *errResnapshot
	wake                chan struct{}

	flushMu sync.Mutex
}

// tableSink is one table's buffered changes.
type tableSink struct {
	s     *cdcSink
	t     *cdcTable
	items []*pendingItem
	// schema is the stream schema of the buffered changes.
	schema *records.Schema
	// txLSN is the transaction whose changes txN counts (a TRUNCATE is a
	// change too), so that a restart can skip the ones committed.
	txLSN providers.StreamPosition
	txN   int64
	// inflight is set while a flush commits some of the table's changes
	// (taken from items, not committed yet).
	inflight bool
}

// pendingItem is one table's changes of one transaction chunk.
type pendingItem struct {
	// lsn is the transaction's commit LSN, prev the last transaction
	// handed over whole before it.
	lsn, prev providers.StreamPosition
	micros    int64 // commit time
	// base is the index of the item's first change among the table's
	// changes of the transaction.
	base     int64
	truncate bool // a TRUNCATE comes before rows
	rows     *records.Batch
	oldKeys  *records.Batch
	bytes    int64
}

// changes counts the item's changes.
func (it *pendingItem) changes() int64 {
	n := int64(it.rows.N)
	if it.truncate {
		n++
	}
	return n
}

// Defaults of the flush triggers (Options.CDCFlushChanges and
// CDCFlushInterval) and of the memory bound.
const (
	defaultFlushChanges  = 50_000
	defaultFlushInterval = time.Second
	defaultFlushBytes    = 32 << 20
)

func newCDCSink(e *cdcEngine, live []*cdcTable, start, stop providers.StreamPosition) *cdcSink {
	s := &cdcSink{
		e: e, tables: map[string]*tableSink{}, stop: stop,
		maxChanges: e.flushChanges, maxBytes: e.flushBytes, interval: e.flushInterval,
		handed: start, committed: start, reported: start, wake: make(chan struct{}, 1),
	}
	for _, t := range live {
		ts := &tableSink{s: s, t: t}
		s.tables[t.key] = ts
		s.order = append(s.order, ts)
	}
	return s
}

// Transaction buffers a transaction's changes (a chunk of it when
// Partial).
func (s *cdcSink) Transaction(ctx context.Context, tx *providers.Transaction) error {
	lsn, err := s.e.cs.DecodePosition(tx.CommitLSN)
	if err != nil {
		return err
	}
	micros := tx.CommitTime.UnixMicro()
	if tx, err = s.hashed(tx); err != nil {
		return err
	}
	tx = s.renamedTransaction(tx)
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return s.err
	}
	changed := false
	for key, tc := range tx.Changes {
		if ts := s.tables[key]; ts != nil && ts.schema != nil && tc.Schema != ts.schema && !sameSchema(ts.schema, tc.Schema) {
			changed = true
		}
	}
	s.mu.Unlock()
	if changed {
		// What was buffered under the old columns commits first.
		if err := s.flush(ctx, true); err != nil {
			return err
		}
	}

	s.mu.Lock()
	for key, tc := range tx.Changes {
		ts := s.tables[key]
		if ts == nil {
			continue
		}
		if tc.Schema != ts.schema {
			if ts.schema == nil || !sameSchema(ts.schema, tc.Schema) {
				if why := s.e.schemaChange(ts.t, tc.Schema); why != "" {
					ts.t.resnapshot = true
					s.resnapshot = &errResnapshot{table: ts.t.j.addr, reason: why}
					s.err = s.resnapshot
					s.mu.Unlock()
					return s.resnapshot
				}
			}
			ts.schema = tc.Schema
		}
		if ts.txLSN != lsn {
			ts.txLSN, ts.txN = lsn, 0
		}
		it := &pendingItem{lsn: lsn, prev: s.handed, micros: micros, base: ts.txN, truncate: tc.Truncated,
			rows: tc.Rows, oldKeys: tc.OldKeys, bytes: estimateBytes(tc.Rows) + estimateBytes(tc.OldKeys)}
		ts.txN += it.changes()
		if ts.skipsAll(it) {
			continue
		}
		if s.pendRows == 0 {
			s.pendSince = time.Now()
		}
		ts.items = append(ts.items, it)
		s.pendRows += int(it.changes())
		s.pendBytes += it.bytes
	}
	if tx.Partial {
		s.open = lsn
	} else {
		s.open, s.handed = providers.StreamPosition{}, lsn
	}
	full := s.pendRows >= s.maxChanges || s.pendBytes >= s.maxBytes
	hard := s.pendBytes >= 2*s.maxBytes || s.pendRows >= 2*s.maxChanges
	last := !s.stop.IsZero() && !tx.Partial && !lsn.Before(s.stop)
	s.mu.Unlock()
	switch {
	case hard || last:
		// Backpressure (memory), or the end of run -once: commit now, so
		// that the stream's last report covers it.
		return s.flush(ctx, hard)
	case full:
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// hashed is tx with the hash columns of its tables hashed (hasher): rows,
// old keys and so the keys changes are looked up and merged by. tx itself
// when no table of it has hash columns.
func (s *cdcSink) hashed(tx *providers.Transaction) (*providers.Transaction, error) {
	var out *providers.Transaction
	for key, tc := range tx.Changes {
		ts := s.tables[key]
		if ts == nil || ts.t.hash == nil {
			continue
		}
		if out == nil {
			c := *tx
			c.Changes = maps.Clone(tx.Changes)
			out = &c
		}
		h := ts.t.hash
		hc := *tc
		var err error
		if hc.Schema, err = h.schema(tc.Schema); err != nil {
			return nil, err
		}
		if hc.Rows, err = h.batch(tc.Rows); err != nil {
			return nil, err
		}
		if hc.OldKeys, err = h.batch(tc.OldKeys); err != nil {
			return nil, err
		}
		out.Changes[key] = &hc
	}
	if out == nil {
		return tx, nil
	}
	return out, nil
}

// Flushed is the position the slot may be confirmed to: every
// transaction up to it is committed; with nothing buffered, the last one
// handed over.
func (s *cdcSink) Flushed() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.committed
	if s.pendRows == 0 && !s.inflight && s.open.IsZero() && s.err == nil {
		v = providers.Later(v, s.handed)
	}
	s.reported = providers.Later(s.reported, v)
	return s.e.cs.EncodePosition(v)
}

// positions returns what is committed and what was reported.
func (s *cdcSink) positions() (committed, reported providers.StreamPosition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed, s.reported
}

// flusher commits buffered transactions when they are due, until ctx
// ends. A failed commit stops the stream.
//
// The flusher stops once ctx is done (the stream ended), but a commit in
// flight then runs to its end under commitCtx: only cancelling that (a
// shutdown) cancels it.
func (s *cdcSink) flusher(ctx, commitCtx context.Context, cancelStream context.CancelFunc) {
	tick := time.NewTicker(max(s.interval/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		s.mu.Lock()
		due := s.pendRows > 0 && (s.pendRows >= s.maxChanges || s.pendBytes >= s.maxBytes || time.Since(s.pendSince) >= s.interval)
		s.mu.Unlock()
		if !due {
			continue
		}
		if err := s.flush(commitCtx, false); err != nil {
			if ctx.Err() == nil {
				cancelStream()
			}
			return
		}
	}
}

// close commits what was handed over whole, once the stream has ended;
// after a failed commit nothing more is (the changes it lost from the
// buffer come again when the stream restarts from the committed
// positions).
func (s *cdcSink) close(ctx context.Context) error {
	if err := s.failure(); err != nil {
		return err
	}
	return s.flush(ctx, false)
}

// failure is the error that stopped the sink, if any.
func (s *cdcSink) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// flush commits the buffered whole transactions (and, with partial, the
// chunks of the one arriving) to every table's warehouse tables.
func (s *cdcSink) flush(ctx context.Context, partial bool) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	through := s.handed
	var open providers.StreamPosition
	if partial {
		open = s.open
	}
	takes := make([][]*pendingItem, len(s.order))
	took := false
	s.pendRows, s.pendBytes = 0, 0
	for k, ts := range s.order {
		if s.resnapshot != nil && ts.t.resnapshot {
			// Read again from a new snapshot: its buffered changes go.
			ts.items = nil
			continue
		}
		n := 0
		for n < len(ts.items) && (!through.Before(ts.items[n].lsn) || !open.IsZero() && ts.items[n].lsn == open) {
			n++
		}
		takes[k] = ts.items[:n:n]
		ts.items = ts.items[n:]
		ts.inflight = n > 0
		took = took || n > 0
		for _, it := range ts.items {
			s.pendRows += int(it.changes())
			s.pendBytes += it.bytes
		}
	}
	if s.pendRows > 0 {
		s.pendSince = time.Now()
	}
	s.inflight = took
	s.mu.Unlock()

	var err error
	start := time.Now()
	defer func() {
		if took {
			s.e.log.Debug("committed", "through", s.e.cs.EncodePosition(through), "partial", !open.IsZero(), "seconds", time.Since(start).Seconds(), "error", err)
		}
	}()
	for k, ts := range s.order {
		if len(takes[k]) == 0 {
			continue
		}
		if cerr := ts.commit(ctx, takes[k], through, open); cerr != nil {
			var rs *errResnapshot
			if errors.As(cerr, &rs) {
				s.mu.Lock()
				ts.t.resnapshot = true
				if s.resnapshot == nil {
					s.resnapshot = rs
				}
				s.mu.Unlock()
			}
			if err == nil {
				err = cerr
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = false
	for _, ts := range s.order {
		ts.inflight = false
	}
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return err
	}
	s.committed = providers.Later(s.committed, through)
	return nil
}

// skipsAll reports whether every warehouse table of the table holds the
// item's changes already.
func (ts *tableSink) skipsAll(it *pendingItem) bool {
	for _, o := range ts.t.outs {
		if skipped(o, it) < it.changes() {
			return false
		}
	}
	return true
}

// skipped is how many of the item's first changes o holds already.
func skipped(o *cdcOutput, it *pendingItem) int64 {
	n := it.changes()
	switch {
	case !o.lsn.Before(it.lsn):
		return n
	case it.lsn == o.partLSN:
		return min(max(o.partN-it.base, 0), n)
	}
	return 0
}

// advanced is o's position after the first n changes of the transaction
// committed at lsn, every transaction up to through being applied; never
// behind o's own.
func advanced(o *cdcOutput, through, lsn providers.StreamPosition, n int64) records.Position {
	cand := &cdcOutput{lsn: providers.Later(o.lsn, through), partLSN: lsn, partN: n}
	if n == 0 || !cand.lsn.Before(lsn) {
		cand.partLSN, cand.partN = providers.StreamPosition{}, 0
	}
	if cand.behind(o) {
		return o.pos
	}
	return cdcPosition(o.pc, cand.lsn, cand.partLSN, cand.partN)
}

// commit commits a table's items: the rows between TRUNCATEs as one
// commit of each warehouse table, each TRUNCATE as one of its own.
func (ts *tableSink) commit(ctx context.Context, items []*pendingItem, through, open providers.StreamPosition) error {
	var acc []*pendingItem
	for _, it := range items {
		if !it.truncate {
			acc = append(acc, it)
			continue
		}
		if len(acc) > 0 {
			if err := ts.commitRows(ctx, acc, func(o *cdcOutput) records.Position { return advanced(o, it.prev, it.lsn, it.base) }); err != nil {
				return err
			}
			acc = nil
		}
		if err := ts.commitTruncate(ctx, it); err != nil {
			return err
		}
		rest := *it
		rest.truncate, rest.base = false, it.base+1
		if rest.rows.N > 0 {
			acc = append(acc, &rest)
		}
	}
	last := items[len(items)-1]
	final := func(o *cdcOutput) records.Position { return advanced(o, through, providers.StreamPosition{}, 0) }
	if !open.IsZero() && last.lsn == open {
		final = func(o *cdcOutput) records.Position {
			return advanced(o, through, open, last.base+last.changes())
		}
	}
	return ts.commitRows(ctx, acc, final)
}

// commitTruncate empties the consolidated table (a TRUNCATE leaves the
// table as a snapshot taken right after it would: no rows, no
// tombstones) and closes every current version of the history table at
// the TRUNCATE's commit time.
func (ts *tableSink) commitTruncate(ctx context.Context, it *pendingItem) error {
	t := ts.t
	src := sourceColumns(ts.schema)
	for _, o := range t.outs {
		if skipped(o, it) > 0 {
			continue
		}
		s, err := outputSchema(src, o.history)
		if err != nil {
			return err
		}
		var tx warehouse.Tx
		if o.history {
			tx, err = o.wt.BeginHistory(ctx, s, string(config.SyncCDC), time.UnixMicro(it.micros))
		} else {
			tx, err = o.wt.Begin(ctx, warehouse.Replace, s, string(config.SyncCDC))
		}
		if err != nil {
			return ts.commitError(err)
		}
		pos := advanced(o, it.prev, it.lsn, it.base+1)
		rows, err := tx.Commit(ctx, pos)
		if err != nil {
			tx.Abort(ctx)
			return ts.commitError(err)
		}
		if err := ts.setPosition(o, pos); err != nil {
			return err
		}
		t.eng.logger.Info("table truncated at the source", "table", o.name, "rows", rows)
	}
	return nil
}

// setPosition records a commit's position; the stream reads positions
// (Transaction) while the flusher commits.
func (ts *tableSink) setPosition(o *cdcOutput, pos records.Position) error {
	ts.s.mu.Lock()
	defer ts.s.mu.Unlock()
	return o.setPosition(pos)
}

func (ts *tableSink) commitError(err error) error {
	if errors.Is(err, warehouse.ErrSchemaChanged) {
		return &errResnapshot{table: ts.t.j.addr, reason: err.Error()}
	}
	return err
}

// commitRows commits rows to each warehouse table that lacks some of
// them, with the position pos gives.
func (ts *tableSink) commitRows(ctx context.Context, items []*pendingItem, pos func(*cdcOutput) records.Position) error {
	if len(items) == 0 {
		return nil
	}
	t := ts.t
	b, err := newChangeBuild(ts, items)
	if err != nil {
		return err
	}
	if err := b.resolve(ctx); err != nil {
		return err
	}
	var tableRows, applied int64
	var version warehouse.TableVersion
	for k, o := range t.outs {
		var from []int // per item, the first row o lacks
		n := 0
		for _, it := range items {
			sk := int(skipped(o, it))
			from = append(from, sk)
			n += it.rows.N - sk
		}
		if n == 0 {
			continue
		}
		s, err := outputSchema(b.src, o.history)
		if err != nil {
			return err
		}
		var tx warehouse.Tx
		if o.history {
			tx, err = o.wt.BeginHistory(ctx, s, string(config.SyncCDC), time.Time{})
		} else {
			tx, err = o.wt.Begin(ctx, warehouse.Merge, s, string(config.SyncCDC))
		}
		if err != nil {
			return ts.commitError(err)
		}
		ob := &outBuilder{history: o.history, schema: s, tx: tx, max: outBatchRows}
		if err := b.write(ctx, ob, from); err != nil {
			tx.Abort(ctx)
			return ts.commitError(err)
		}
		p := pos(o)
		rows, err := tx.Commit(ctx, p)
		if err != nil {
			tx.Abort(ctx)
			return ts.commitError(err)
		}
		if err := ts.setPosition(o, p); err != nil {
			return err
		}
		v := t.eng.maint.after(ctx, o.name, o.wt, tableVersion(o.wt))
		if k == 0 {
			tableRows, applied, version = rows, int64(n), v
		}
	}
	if applied > 0 {
		t.eng.committed(ctx, t.j, applied, tableRows, b.warnings, version)
	}
	return nil
}

// outBatchRows bounds the rows of a batch written to the warehouse.
const outBatchRows = 16 * 1024

// changeBuild turns a table's buffered items into warehouse rows: the
// source columns (with unchanged TOAST values and the values of deleted
// rows taken from the stored version), then the metadata.
type changeBuild struct {
	ts     *tableSink
	items  []*pendingItem
	stream *records.Schema // the items' schema
	src    *records.Schema // its source columns
	// srcIdx are the source columns' positions in stream; opIdx the
	// position of _sluice_cdc_op; keyIdx the key's.
	srcIdx []int
	opIdx  int
	keyIdx []int
	// keyInSrc marks the source columns of the key.
	keyInSrc []bool
	// resolved, when set, holds every row (after the first row no table
	// lacks) with its values resolved, in change order: for each change,
	// a key update's tombstone first (see changes).
	resolved *records.Batch
	changes  []buildChange
	warnings int64
}

// buildChange is one row of resolved: a change (item, row), or the
// tombstone of the key a key update left.
type buildChange struct {
	item, row    int
	oldKeyDelete bool
}

func newChangeBuild(ts *tableSink, items []*pendingItem) (*changeBuild, error) {
	s := items[0].rows.Schema
	b := &changeBuild{ts: ts, items: items, stream: s, src: sourceColumns(s), opIdx: s.Index(colOp)}
	if b.opIdx < 0 {
		return nil, fmt.Errorf("%s: the stream's rows lack %s", ts.t.j.addr, colOp)
	}
	for _, c := range b.src.Columns {
		b.srcIdx = append(b.srcIdx, s.Index(c.Name))
	}
	var err error
	if b.keyIdx, err = s.KeyIndexes(); err != nil || len(b.keyIdx) == 0 {
		return nil, fmt.Errorf("%s: cdc needs a primary key", ts.t.j.addr)
	}
	b.keyInSrc = make([]bool, len(b.srcIdx))
	for j, c := range b.srcIdx {
		b.keyInSrc[j] = slices.Contains(b.keyIdx, c)
	}
	for _, it := range items {
		for _, c := range b.srcIdx {
			b.warnings += warehouse.NulledIn(ts.t.eng.warehouse, &it.rows.Cols[c])
		}
	}
	return b, nil
}

// hasOldKey reports whether row r of an item changed its key.
func hasOldKey(it *pendingItem, r int) bool {
	return it.oldKeys != nil && r < it.oldKeys.N && !it.oldKeys.Cols[0].IsNull(r)
}

// isOp reports whether row r of an item is the change op.
func (b *changeBuild) op(it *pendingItem, r int) byte {
	v := it.rows.Cols[b.opIdx].Bytes(r)
	if len(v) == 0 {
		return 'U'
	}
	return v[0]
}

// bareDelete reports whether row r is a delete that carries only the key
// (replica identity default): its other values are the stored ones.
func (b *changeBuild) bareDelete(it *pendingItem, r int) bool {
	if b.op(it, r) != 'D' {
		return false
	}
	for j, c := range b.srcIdx {
		if !b.keyInSrc[j] && !it.rows.Cols[c].IsNull(r) {
			return false
		}
	}
	return true
}

// unchanged reports whether row r has a value the change did not carry.
func (b *changeBuild) unchanged(it *pendingItem, r int) bool {
	for _, c := range b.srcIdx {
		if u := it.rows.Cols[c].Unchanged; u != nil && r < len(u) && u[r] {
			return true
		}
	}
	return false
}

// needsFill reports whether some row takes values from the key's stored
// version.
func (b *changeBuild) needsFill() bool {
	for _, it := range b.items {
		for r := range it.rows.N {
			if hasOldKey(it, r) || b.bareDelete(it, r) || b.unchanged(it, r) {
				return true
			}
		}
	}
	return false
}

// resolve fills in, when some rows need them, the values changes did not
// carry: from the key's previous change among the items, else from its
// stored version in the warehouse table furthest behind (so that the
// values are those just before the items, whichever tables already hold
// some of them).
func (b *changeBuild) resolve(ctx context.Context) error {
	if !b.needsFill() {
		return nil
	}
	t := b.ts.t
	firstRow := make([]int, len(b.items))
	for i, it := range b.items {
		firstRow[i] = it.rows.N
		for _, o := range t.outs {
			firstRow[i] = min(firstRow[i], int(skipped(o, it)))
		}
	}
	keySchema := &records.Schema{PrimaryKey: b.stream.PrimaryKey}
	for _, k := range b.keyIdx {
		keySchema.Columns = append(keySchema.Columns, b.stream.Columns[k])
	}
	keyCols := make([]int, len(b.keyIdx))
	for i := range keyCols {
		keyCols[i] = i
	}
	// The keys whose stored version is needed: those a row needs before
	// any row of them was seen.
	type keyed struct{ row, src string }
	var keys []keyed
	seen := map[string]bool{}
	lookup := records.NewBatch(keySchema, 16)
	var buf []byte
	for i, it := range b.items {
		for r := firstRow[i]; r < it.rows.N; r++ {
			var oldKey string
			if hasOldKey(it, r) {
				buf = it.oldKeys.AppendKey(buf[:0], r, keyCols)
				oldKey = string(buf)
				if !seen[oldKey] {
					appendRow(lookup, it.oldKeys, keyCols, r)
					seen[oldKey] = true
				}
				b.changes = append(b.changes, buildChange{item: i, row: r, oldKeyDelete: true})
				keys = append(keys, keyed{oldKey, oldKey})
			}
			buf = it.rows.AppendKey(buf[:0], r, b.keyIdx)
			key := string(buf)
			src := key
			if oldKey != "" {
				src = oldKey
			}
			if (b.bareDelete(it, r) || b.unchanged(it, r)) && !seen[src] {
				appendRow(lookup, it.rows, b.keyIdx, r)
			}
			seen[key], seen[src] = true, true
			b.changes = append(b.changes, buildChange{item: i, row: r})
			keys = append(keys, keyed{key, src})
		}
	}
	// The stored versions, from the table furthest behind.
	var stored *records.Batch
	storedRow := map[string]int{}
	if lookup.N > 0 {
		o := t.outs[0]
		for _, p := range t.outs[1:] {
			if p.behind(o) {
				o = p
			}
		}
		err := o.wt.Lookup(ctx, lookup, o.history, func(lb *records.Batch, rows []int32) error {
			if stored == nil {
				stored = records.NewBatch(lb.Schema, len(rows))
			}
			kc, err := lb.Schema.KeyIndexes()
			if err != nil {
				return err
			}
			to := -1
			if o.history {
				to = lb.Schema.Index(colValidTo)
			}
			for _, r := range rows {
				if to >= 0 && !lb.Cols[to].IsNull(int(r)) {
					continue
				}
				buf = lb.AppendKey(buf[:0], int(r), kc)
				storedRow[string(buf)] = stored.N
				appendRow(stored, lb, nil, int(r))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading the stored rows of %s for unchanged values and deletes: %w", o.name, err)
		}
	}
	// Every row, resolved in change order.
	storedCol := make([]int, len(b.srcIdx))
	for j, c := range b.src.Columns {
		storedCol[j] = -1
		if stored != nil {
			if k := stored.Schema.Index(c.Name); k >= 0 && sameType(stored.Schema.Columns[k].Type, c.Type) {
				storedCol[j] = k
			}
		}
	}
	b.resolved = records.NewBatch(b.src, len(b.changes))
	latest := map[string]int{}
	missing := 0
	for n, ch := range b.changes {
		it := b.items[ch.item]
		k := keys[n]
		prev, havePrev := latest[k.src]
		stRow, haveStored := storedRow[k.src]
		fillAll := ch.oldKeyDelete || b.bareDelete(it, ch.row)
		needs := false
		for j, c := range b.srcIdx {
			dst := &b.resolved.Cols[j]
			typ := b.src.Columns[j].Type
			v := &it.rows.Cols[c]
			fromPrev := fillAll && !b.keyInSrc[j] || v.Unchanged != nil && ch.row < len(v.Unchanged) && v.Unchanged[ch.row]
			switch {
			case ch.oldKeyDelete && b.keyInSrc[j]:
				dst.AppendFrom(typ, &it.oldKeys.Cols[slices.Index(b.keyIdx, c)], ch.row)
			case !fromPrev:
				dst.AppendFrom(typ, v, ch.row)
			case havePrev:
				dst.AppendFrom(typ, &b.resolved.Cols[j], prev)
			case haveStored && storedCol[j] >= 0:
				dst.AppendFrom(typ, &stored.Cols[storedCol[j]], stRow)
			default:
				dst.AppendNull()
				needs = needs || !fillAll
			}
		}
		b.resolved.N++
		latest[k.row] = n
		if needs {
			missing++
		}
	}
	if missing > 0 {
		t.eng.logger.Warn("unchanged values whose stored version was not found were written as NULL", "table", t.j.addr, "rows", missing)
	}
	return nil
}

// appendRow appends row r of src (the columns cols of it, in order; nil:
// all) to dst.
func appendRow(dst, src *records.Batch, cols []int, r int) {
	if cols == nil {
		for i := range dst.Cols {
			dst.Cols[i].AppendFrom(dst.Schema.Columns[i].Type, &src.Cols[i], r)
		}
	} else {
		for i, c := range cols {
			dst.Cols[i].AppendFrom(dst.Schema.Columns[i].Type, &src.Cols[c], r)
		}
	}
	dst.N++
}

// write writes the rows each warehouse table lacks (from[i]: the first
// row of item i it lacks) to ob.
func (b *changeBuild) write(ctx context.Context, ob *outBuilder, from []int) error {
	if b.resolved == nil {
		for i, it := range b.items {
			for r := from[i]; r < it.rows.N; r++ {
				if err := ob.add(ctx, it.rows, b.srcIdx, r, b.op(it, r), it); err != nil {
					return err
				}
			}
		}
		return ob.flush(ctx)
	}
	all := identityCols(len(b.srcIdx))
	for n, ch := range b.changes {
		it := b.items[ch.item]
		if ch.row < from[ch.item] {
			continue
		}
		op := b.op(it, ch.row)
		if ch.oldKeyDelete {
			op = 'D'
		}
		if err := ob.add(ctx, b.resolved, all, n, op, it); err != nil {
			return err
		}
	}
	return ob.flush(ctx)
}

func identityCols(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// outBuilder collects rows of a warehouse table and writes them in
// batches.
type outBuilder struct {
	history bool
	schema  *records.Schema
	tx      warehouse.Tx
	b       *records.Batch
	max     int
}

var opNames = map[byte]string{'I': "I", 'U': "U", 'D': "D"}

// add appends row r of src (its source columns cols) with the metadata
// of a change op of item it.
func (ob *outBuilder) add(ctx context.Context, src *records.Batch, cols []int, r int, op byte, it *pendingItem) error {
	if ob.b == nil {
		ob.b = records.NewBatch(ob.schema, ob.max)
	}
	b := ob.b
	for j, c := range cols {
		b.Cols[j].AppendFrom(ob.schema.Columns[j].Type, &src.Cols[c], r)
	}
	n := len(cols)
	if ob.history {
		name, ok := opNames[op]
		if !ok {
			name = string(op)
		}
		b.Cols[n].AppendString(name)
		b.Cols[n+1].AppendInt64(it.micros)
		b.Cols[n+2].AppendInt64(it.lsn.Ordinal())
		b.Cols[n+3].AppendInt64(it.micros)
		b.Cols[n+4].AppendNull()
	} else {
		b.Cols[n].AppendInt64(it.lsn.Ordinal())
		b.Cols[n+1].AppendBool(op == 'D')
		if op == 'D' {
			b.Cols[n+2].AppendInt64(it.micros)
		} else {
			b.Cols[n+2].AppendNull()
		}
	}
	b.N++
	if b.N >= ob.max {
		return ob.flush(ctx)
	}
	return nil
}

func (ob *outBuilder) flush(ctx context.Context) error {
	if ob.b == nil || ob.b.N == 0 {
		return nil
	}
	err := ob.tx.Write(ctx, ob.b)
	ob.b.Reset()
	return err
}

// sameType reports whether two Parquet types hold the same values.
func sameType(a, b records.ParquetType) bool {
	if a.Physical != b.Physical || a.Logical != b.Logical || a.AdjustedToUTC != b.AdjustedToUTC ||
		a.Precision != b.Precision || a.Scale != b.Scale || a.Length != b.Length {
		return false
	}
	if a.Element == nil || b.Element == nil {
		return a.Element == b.Element
	}
	return sameType(*a.Element, *b.Element)
}

func sameSchema(a, b *records.Schema) bool {
	return a != nil && b != nil && reflect.DeepEqual(a.Columns, b.Columns) && slices.Equal(a.PrimaryKey, b.PrimaryKey)
}

// estimateBytes is about the memory a batch holds: what its vectors
// allocated (a transaction's small batches have room for more rows than
// they hold) and their headers.
func estimateBytes(b *records.Batch) int64 {
	if b == nil {
		return 0
	}
	n := int64(256)
	for i := range b.Cols {
		n += vecBytes(&b.Cols[i])
	}
	return n
}

func vecBytes(v *records.Vec) int64 {
	n := int64(192 + cap(v.Valid) + cap(v.Bool) + 4*cap(v.I32) + 8*cap(v.I64) + 4*cap(v.F32) + 8*cap(v.F64) +
		4*cap(v.Offsets) + cap(v.Data) + cap(v.Unchanged))
	if v.List != nil {
		n += int64(4*cap(v.List.Offsets)) + vecBytes(&v.List.Elem)
	}
	return n
}

// schemaChange says why a table whose stream schema became s must be read
// again, or "" when its warehouse tables can take the new rows: a column
// whose type changed, a new primary key, or a column added when the
// table's new_columns is full_resync. A dropped column is NULL from then
// on; an added one (sync_forward) is NULL in older rows.
func (e *cdcEngine) schemaChange(t *cdcTable, s *records.Schema) string {
	src := sourceColumns(s)
	for _, o := range t.outs {
		have := o.wt.Schema()
		if have == nil {
			continue
		}
		if len(have.PrimaryKey) > 0 && !slices.Equal(have.PrimaryKey, src.PrimaryKey) {
			return fmt.Sprintf("the primary key changed from %q to %q", have.PrimaryKey, src.PrimaryKey)
		}
		for _, c := range src.Columns {
			i := have.Index(c.Name)
			switch {
			case i < 0 && t.j.table.NewColumns == "full_resync":
				return fmt.Sprintf("column %q was added (new_columns = \"full_resync\")", c.Name)
			case i >= 0 && !sameType(have.Columns[i].Type, c.Type):
				return fmt.Sprintf("column %q changed type to %s", c.Name, c.SourceType)
			}
		}
	}
	return ""
}
