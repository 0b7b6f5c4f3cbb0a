package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// Snapshot reads (full_refresh, and the first sync of a table) stream
// `COPY (SELECT ...) TO STDOUT (FORMAT binary)` into batches. A large table
// is split into ranges of pages (ctid ranges, read with TID range scans,
// PostgreSQL 14+) and a large partitioned table into its partitions, read
// by several connections that all import one exported snapshot, so that
// the copy is as consistent as a single COPY.
//
// Every read runs in a REPEATABLE READ READ ONLY transaction that first
// takes ACCESS SHARE on the table (which SELECT takes anyway) and then
// reads the table's columns: no ALTER TABLE can change the table between
// the catalog read and the data read, so the decoders match the data.
// Batches carry the schema read inside that transaction.

const (
	// defaultBatchRows is the batch size when the request sets none.
	defaultBatchRows = 50_000
	// batchBytes cuts a batch early when its rows are large, so that
	// memory stays bounded by the batch whatever the row size.
	batchBytes = 64 << 20
	// readCloseTimeout bounds the goodbye to the server after a read.
	readCloseTimeout = 5 * time.Second
)

// readSettings are the session settings of every read, so that text forms
// (the STRING columns of types read as text, the committed cursor) do not
// depend on the server's or the role's defaults: ISO dates, UTC for
// timestamptz in text forms, hex bytea, shortest exact floats. Reads may
// take long: the role's statement and idle-in-transaction timeouts do
// not apply to them. The CDC path should start its replication
// connection with the same settings, so that a row gets the same values
// by every path.
const readSettings = `SET LOCAL DateStyle = 'ISO, YMD';
SET LOCAL IntervalStyle = 'postgres';
SET LOCAL TimeZone = 'UTC';
SET LOCAL extra_float_digits = 3;
SET LOCAL bytea_output = 'hex';
SET LOCAL statement_timeout = 0;
SET LOCAL idle_in_transaction_session_timeout = 0`

const beginReadSQL = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

// snapshotTuning decides when and how a snapshot is split; tests use
// small values.
type snapshotTuning struct {
	// minParallelBytes is the size from which a table is read by several
	// connections.
	minParallelBytes int64
	// minChunkBytes is the smallest range of pages one COPY reads.
	minChunkBytes int64
}

var defaultTuning = snapshotTuning{minParallelBytes: 64 << 20, minChunkBytes: 16 << 20}

// readTx is a read's connection, in its transaction.
type readTx struct {
	conn  *pgx.Conn
	info  *tableInfo
	major int
	// xmin is the snapshot's xmin, epoch-extended: every transaction
	// older than it is visible to the snapshot or aborted.
	xmin uint64
	// snapshot is the id of the snapshot the parallel readers import:
	// exported by the read when asked for, or the request's Snapshot.
	snapshot  string
	blockSize int64
}

// connectRead opens a connection of its own for a read, so that reads of
// several tables (and the provider's other uses) do not wait for each
// other.
func (p *Provider) connectRead(ctx context.Context) (*pgx.Conn, error) {
	return p.dialer.Connect(ctx)
}

// beginRead connects, starts the read's transaction, locks the table and
// reads its columns and the snapshot's xmin (and exports the snapshot
// when export is set).
func (p *Provider) beginRead(ctx context.Context, req providers.ReadRequest, export bool) (*readTx, error) {
	conn, err := p.connectRead(ctx)
	if err != nil {
		return nil, err
	}
	rt := &readTx{conn: conn, major: serverMajor(conn)}
	if err := rt.begin(ctx, req, export); err != nil {
		rt.close()
		return nil, err
	}
	return rt, nil
}

// begin starts the transaction, locks the table and reads its columns.
func (rt *readTx) begin(ctx context.Context, req providers.ReadRequest, export bool) error {
	conn := rt.conn
	// The kind decides whether the table can be locked, and must be known
	// before the transaction's first query takes its snapshot: the lock
	// must come first.
	kind := string(relkindQuery)
	if req.Query == "" {
		if err := conn.QueryRow(ctx, relkindSQL, req.Schema, req.Table).Scan(&kind); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return missingTable(req)
			}
			return fmt.Errorf("reading %s: %w", displayName(req), err)
		}
	}
	begin := beginReadSQL + ";\n" + readSettings
	if req.Snapshot != "" {
		// An imported snapshot must be set before the transaction's first
		// query; LOCK and SET take none.
		if !snapshotIDPattern.MatchString(req.Snapshot) {
			return fmt.Errorf("reading %s: %q is not an exported snapshot id", displayName(req), req.Snapshot)
		}
		begin = beginReadSQL + ";\nSET TRANSACTION SNAPSHOT '" + req.Snapshot + "';\n" + readSettings
		rt.snapshot = req.Snapshot
	}
	if kind[0] != relkindMatView && kind[0] != relkindQuery {
		// Materialized views cannot be locked; REFRESH swaps their
		// contents whole, so a read sees one version or the other. A
		// query's tables are read in the transaction's one snapshot.
		begin += ";\nLOCK TABLE " + tableName(req) + " IN ACCESS SHARE MODE"
	}
	if _, err := conn.PgConn().Exec(ctx, begin).ReadAll(); err != nil {
		return fmt.Errorf("starting the read of %s: %w", displayName(req), err)
	}
	var err error
	rt.info, err = loadTable(ctx, conn, req, func(b *pgx.Batch) {
		b.Queue(snapshotSQL(rt.major, export)).QueryRow(func(row pgx.Row) error {
			if export {
				return row.Scan(&rt.xmin, &rt.blockSize, &rt.snapshot)
			}
			return row.Scan(&rt.xmin, &rt.blockSize)
		})
	})
	if err != nil {
		return err
	}
	if rt.info.relkind != kind[0] {
		return fmt.Errorf("%s was replaced while the read started; run the sync again", displayName(req))
	}
	return nil
}

// snapshotSQL reads the transaction snapshot's xmin (with its epoch),
// the page size and, when export is set, exports the snapshot.
func snapshotSQL(major int, export bool) string {
	sql := `SELECT pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())`
	if major >= 13 {
		sql = `SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::int8`
	}
	sql += `, pg_catalog.current_setting('block_size')::int8`
	if export {
		sql += `, pg_catalog.pg_export_snapshot()`
	}
	return sql
}

// commit ends the read's transaction (read-only: nothing to write).
func (rt *readTx) commit(ctx context.Context) error {
	if _, err := rt.conn.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("ending the read of %s: %w", rt.info.name, err)
	}
	return nil
}

// close closes the connection; an open transaction ends with it.
func (rt *readTx) close() {
	ctx, cancel := context.WithTimeout(context.Background(), readCloseTimeout)
	defer cancel()
	rt.conn.Close(ctx)
}

// decoders lists the column decoders of a read, cloned so that concurrent
// readers never share one.
func (info *tableInfo) decoders() []*codec.Decoder {
	out := make([]*codec.Decoder, len(info.cols))
	for i, c := range info.cols {
		if i < len(info.schema.Columns) {
			out[i] = c.dec.CloneFor(info.schema.Columns[i].Type)
		} else {
			out[i] = c.dec.Clone()
		}
	}
	return out
}

// batchSink fills batches and hands each full one on.
type batchSink struct {
	b        *records.Batch
	maxRows  int
	bytes    int
	rows     int64
	handOver func(full *records.Batch) (*records.Batch, error)
}

// emitSink hands each full batch to emit and then reuses it.
func emitSink(s *records.Schema, rows int, emit func(*records.Batch) error) *batchSink {
	return &batchSink{
		b:       records.NewBatch(s, rows),
		maxRows: rows,
		handOver: func(full *records.Batch) (*records.Batch, error) {
			err := emit(full)
			full.Reset()
			return full, err
		},
	}
}

func (s *batchSink) Batch() *records.Batch { return s.b }

func (s *batchSink) RowDone(size int) error {
	s.rows++
	s.bytes += size
	if s.b.N >= s.maxRows || s.bytes >= batchBytes {
		return s.flush()
	}
	return nil
}

// flush hands over the current batch, if it holds rows.
func (s *batchSink) flush() error {
	if s.b.N == 0 {
		return nil
	}
	next, err := s.handOver(s.b)
	if err != nil {
		return err
	}
	s.b, s.bytes = next, 0
	return nil
}

// ReadSnapshot reads the whole table req names, consistently, in batches
// of req.BatchRows rows: the requested columns plus the key and cursor
// (see Schema). With req.Parallel > 1, a table larger than 64 MiB is read
// in ranges of pages, and a partitioned table of that size partition by
// partition, by up to req.Parallel connections sharing one snapshot;
// emit is still called from one goroutine at a time. With req.Snapshot
// (an exported snapshot, ExportedSnapshot.Name) every connection imports
// it, so that the read is exactly the data before a replication slot's
// consistent point (DESIGN invariant 2).
//
// The position returned records the snapshot: Xmin is the snapshot's
// xmin horizon (epoch-extended), from which an xmin sync continues. When
// req.Cursor is set, Cursor and BoundaryKeys are the cursor's greatest
// value in the snapshot and the keys of the rows holding it (found with
// one more query in the same snapshot, cheap when the cursor is
// indexed), from which an incremental or append sync continues.
func (p *Provider) ReadSnapshot(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (records.Position, error) {
	pos, err := p.readSnapshot(ctx, req, emit, defaultTuning)
	return pos, p.classified(err)
}

func (p *Provider) readSnapshot(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error, tuning snapshotTuning) (records.Position, error) {
	req = p.normalize(req)
	// With req.Snapshot every connection imports it; the read's own
	// snapshot is exported only for its parallel readers otherwise.
	rt, err := p.beginRead(ctx, req, req.Parallel > 1 && req.Snapshot == "")
	if err != nil {
		return records.Position{}, err
	}
	defer rt.close()
	info := rt.info
	var chunks []chunk
	if req.Parallel > 1 {
		if chunks, err = rt.planChunks(ctx, tuning, req.Parallel); err != nil {
			return records.Position{}, err
		}
	}
	if len(chunks) > 1 {
		err = p.readParallel(ctx, rt, chunks, req, emit)
	} else {
		sink := emitSink(info.schema, req.BatchRows, emit)
		stream := codec.NewCopyStream(info.decoders(), sink)
		if err = copyInto(ctx, rt.conn, stream, copySQL(info, info.from(), chunk{})); err == nil {
			err = sink.flush()
		}
	}
	if err != nil {
		return records.Position{}, err
	}
	pos := records.Position{Xmin: rt.xmin}
	if req.Cursor != "" {
		if pos.Cursor, pos.BoundaryKeys, err = rt.cursorMark(ctx, req.Cursor); err != nil {
			return records.Position{}, err
		}
	}
	return pos, rt.commit(ctx)
}

// copyInto runs a COPY TO STDOUT into stream and checks the stream ended
// properly.
func copyInto(ctx context.Context, conn *pgx.Conn, stream *codec.CopyStream, sql string) error {
	stream.Reset()
	if _, err := conn.PgConn().CopyTo(ctx, stream, sql); err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if err := stream.Finish(); err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	return nil
}

// chunk is one COPY of a parallel snapshot: a relation (the table, or
// one partition), whole or a range of its pages.
type chunk struct {
	from   string // the FROM item
	ranged bool
	// lo and hi are the first page and the page after the last; hi < 0
	// reads to the end (pages added since the size was read hold no row
	// the snapshot sees, but the range stays open to be sure).
	lo, hi int64
}

// The page range of a chunk is passed in settings, so that the COPY
// statement, which takes no parameters, holds no value: TID range scans
// accept stable expressions as bounds.
const (
	ctidLoSetting = "sluice.ctid_lo"
	ctidHiSetting = "sluice.ctid_hi"
	setRangeSQL   = `SELECT pg_catalog.set_config('` + ctidLoSetting + `', $1, true), pg_catalog.set_config('` + ctidHiSetting + `', $2, true)`
)

// copySQL is the COPY of a chunk (the zero chunk: all of info.from()).
func copySQL(info *tableInfo, from string, c chunk) string {
	sql := "COPY (SELECT " + info.selectList() + " FROM " + from
	if c.ranged {
		sql += " WHERE ctid >= pg_catalog.current_setting('" + ctidLoSetting + "')::tid"
		if c.hi >= 0 {
			sql += " AND ctid < pg_catalog.current_setting('" + ctidHiSetting + "')::tid"
		}
	}
	return sql + ") TO STDOUT (FORMAT binary)"
}

// leavesSQL lists the leaf partitions of a partitioned table ($1) with
// their sizes, and whether reading them directly reads what reading the
// parent does: privileges on the parent let a user read its partitions
// through it, not directly, and row-level security applies the policies
// of the table named in the query.
const leavesSQL = `SELECT n.nspname::text, c.relname::text, c.relkind::text,
	CASE WHEN c.relkind IN ('r', 'm') THEN pg_catalog.pg_relation_size(c.oid) ELSE 0 END,
	pg_catalog.has_table_privilege(c.oid, 'SELECT')
		AND NOT pg_catalog.row_security_active(c.oid)
		AND NOT pg_catalog.row_security_active($1::oid)
FROM pg_catalog.pg_partition_tree($1::oid::regclass) pt
JOIN pg_catalog.pg_class c ON c.oid = pt.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE pt.isleaf
ORDER BY 4 DESC`

// planChunks splits a snapshot of a large table (into ranges of pages)
// or of a large partitioned table (into its partitions, each split
// further when large), or returns nil to read it with one COPY.
func (rt *readTx) planChunks(ctx context.Context, tuning snapshotTuning, parallel int) ([]chunk, error) {
	type rel struct {
		from string
		kind byte
		size int64
	}
	var rels []rel
	var total int64
	switch {
	case rt.info.relkind == relkindTable:
		rels = []rel{{rt.info.from(), relkindTable, rt.info.size}}
		total = rt.info.size
	case rt.info.relkind == relkindPartitioned && rt.major >= 12:
		rows, err := rt.conn.Query(ctx, leavesSQL, rt.info.oid)
		if err != nil {
			return nil, fmt.Errorf("listing the partitions of %s: %w", rt.info.name, err)
		}
		direct := true
		for rows.Next() {
			var schema, name, kind string
			var size int64
			var readable bool
			if err := rows.Scan(&schema, &name, &kind, &size, &readable); err != nil {
				rows.Close()
				return nil, fmt.Errorf("listing the partitions of %s: %w", rt.info.name, err)
			}
			rels = append(rels, rel{"ONLY " + pgx.Identifier{schema, name}.Sanitize(), kind[0], size})
			total += size
			direct = direct && readable
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("listing the partitions of %s: %w", rt.info.name, err)
		}
		if !direct {
			return nil, nil
		}
	}
	if total < tuning.minParallelBytes || rt.blockSize <= 0 {
		return nil, nil
	}
	// A few chunks per connection even out their speeds.
	target := max(tuning.minChunkBytes, total/int64(4*parallel))
	var chunks []chunk
	for _, r := range rels {
		// TID range scans came with PostgreSQL 14; before, a ctid range
		// would scan the whole table.
		if r.kind != relkindTable || rt.major < 14 || r.size <= target {
			chunks = append(chunks, chunk{from: r.from})
			continue
		}
		step := (target + rt.blockSize - 1) / rt.blockSize
		pages := r.size / rt.blockSize
		for lo := int64(0); ; lo += step {
			if lo+step >= pages {
				chunks = append(chunks, chunk{from: r.from, ranged: true, lo: lo, hi: -1})
				break
			}
			chunks = append(chunks, chunk{from: r.from, ranged: true, lo: lo, hi: lo + step})
		}
	}
	return chunks, nil
}

// snapshotIDPattern is the shape of pg_export_snapshot's ids
// ("00000003-0000001B-1"); SET TRANSACTION SNAPSHOT takes no parameter,
// so the id is written into the statement, and only once checked.
var snapshotIDPattern = regexp.MustCompile(`^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$`)

// workBatch is a full batch on its way from a worker to emit, and the way
// back to its worker.
type workBatch struct {
	b    *records.Batch
	back chan *records.Batch
}

// readParallel reads the chunks with up to req.Parallel connections: the
// read's own and more that import its snapshot. Workers fill batches of
// their own (two each, so one fills while the other is emitted); this
// goroutine calls emit with each.
func (p *Provider) readParallel(ctx context.Context, rt *readTx, chunks []chunk, req providers.ReadRequest, emit func(*records.Batch) error) error {
	if !snapshotIDPattern.MatchString(rt.snapshot) {
		return fmt.Errorf("reading %s: unexpected snapshot id %q", rt.info.name, rt.snapshot)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	queue := make(chan chunk, len(chunks))
	for _, c := range chunks {
		queue <- c
	}
	close(queue)

	var (
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}

	full := make(chan workBatch)
	var wg sync.WaitGroup
	for w := range min(req.Parallel, len(chunks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.snapshotWorker(ctx, rt, w, queue, req, full); err != nil {
				fail(err)
			}
		}()
	}
	go func() {
		wg.Wait()
		close(full)
	}()
	for wb := range full {
		if !failed() {
			if err := emit(wb.b); err != nil {
				fail(err)
			}
		}
		wb.b.Reset()
		wb.back <- wb.b // never blocks: the channel has room for all of a worker's batches
	}
	// A worker that failed because another one did reports the
	// cancellation; the first error is the cause.
	return firstErr
}

// snapshotWorker reads chunks from queue until it is empty. Worker 0 uses
// the read's connection; the others connect and import its snapshot.
func (p *Provider) snapshotWorker(ctx context.Context, rt *readTx, w int, queue <-chan chunk, req providers.ReadRequest, full chan<- workBatch) error {
	info := rt.info
	conn := rt.conn
	if w > 0 {
		var err error
		if conn, err = p.connectRead(ctx); err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), readCloseTimeout)
			defer cancel()
			conn.Close(ctx)
		}()
		begin := beginReadSQL + ";\nSET TRANSACTION SNAPSHOT '" + rt.snapshot + "';\n" + readSettings
		if _, err := conn.PgConn().Exec(ctx, begin).ReadAll(); err != nil {
			return fmt.Errorf("reading %s: importing the snapshot: %w", info.name, err)
		}
	}

	back := make(chan *records.Batch, 2)
	back <- records.NewBatch(info.schema, req.BatchRows)
	spare := 1 // batches not yet allocated
	sink := &batchSink{b: <-back, maxRows: req.BatchRows}
	sink.handOver = func(b *records.Batch) (*records.Batch, error) {
		select {
		case full <- workBatch{b, back}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if spare > 0 {
			spare--
			return records.NewBatch(info.schema, req.BatchRows), nil
		}
		select {
		case nb := <-back:
			return nb, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	stream := codec.NewCopyStream(info.decoders(), sink)
	for c := range queue {
		if c.ranged {
			lo, hi := tid(c.lo), tid(c.hi)
			if _, err := conn.Exec(ctx, setRangeSQL, lo, hi); err != nil {
				return fmt.Errorf("reading %s: %w", info.name, err)
			}
		}
		if err := copyInto(ctx, conn, stream, copySQL(info, c.from, c)); err != nil {
			return fmt.Errorf("%s: %w", info.name, err)
		}
	}
	if sink.b.N > 0 {
		select {
		case full <- workBatch{sink.b, back}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// tid is the first tuple id of a page, as text.
func tid(page int64) string {
	if page < 0 {
		return ""
	}
	return "(" + strconv.FormatInt(page, 10) + ",0)"
}
