package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/providers"
)

// This file is the CDC stream: the replication slot created with an
// exported snapshot, START_REPLICATION with pgoutput, and the standby
// status updates that confirm to the server only what the sink has
// committed (DESIGN invariants 1, 2 and 8).

var _ providers.ChangeStream = (*Provider)(nil)

// ErrSlotLost reports that the replication slot is gone or has lost WAL it
// needed: changes were lost, and the source's cdc tables must be
// snapshotted again (with a new slot).
var ErrSlotLost = providers.ErrSlotLost

// streamSettings are the session settings of the streaming connection.
// pgoutput prints values with the session's output functions: these make
// the text forms unambiguous and equal to what the snapshot path reads
// (see readSettings): ISO dates, UTC offsets, postgres intervals, shortest
// exact floats, hex bytea.
const streamSettings = `SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET extra_float_digits = 3;
SET bytea_output = 'hex';
SET statement_timeout = 0`

// How often the stream reports its position to the server: well within
// wal_sender_timeout (60s by default), and often enough that the slot
// follows the warehouse closely. While draining up to StopAtLSN the
// stream asks the server for its position more often, so that run -once
// ends promptly.
var (
	standbyInterval = 5 * time.Second
	drainInterval   = 200 * time.Millisecond
)

// replCloseTimeout bounds the goodbye to the server on a replication
// connection.
const replCloseTimeout = 5 * time.Second

// CreateSnapshotSlot creates the logical replication slot slot (pgoutput)
// with an exported snapshot: a snapshot read that imports it (SET
// TRANSACTION SNAPSHOT, ReadRequest.Snapshot) sees exactly the data before
// the slot's consistent point, and streaming from the slot gives exactly
// the changes after it.
//
// An existing slot of that name is dropped first, unless a process
// streams from it: the caller (the runner) calls this only when no table
// of the source has committed a snapshot, so nothing depends on the old
// slot. The slot must be a pgoutput slot of this database; another is
// left alone.
//
// The snapshot lives as long as the connection that exported it stays
// open and idle: release closes it, and must be called once the snapshot
// readers have started their transactions (it may be called more than
// once).
func (p *Provider) CreateSnapshotSlot(ctx context.Context, slot string) (_ providers.ExportedSnapshot, _ func() error, err error) {
	defer func() { err = p.classified(err) }()
	var snap providers.ExportedSnapshot
	if slot == "" {
		return snap, nil, errors.New("creating a replication slot: no slot name")
	}
	if err := p.withConn(ctx, func(conn *pgx.Conn) error { return dropUnusedSlot(ctx, conn, slot) }); err != nil {
		return snap, nil, err
	}
	conn, err := p.dialer.ConnectReplication(ctx)
	if err != nil {
		return snap, nil, err
	}
	// The slot name is an identifier of the replication grammar; the
	// legacy option syntax works from PostgreSQL 10 to 17.
	sql := "CREATE_REPLICATION_SLOT " + pgx.Identifier{slot}.Sanitize() + " LOGICAL pgoutput EXPORT_SNAPSHOT"
	res, err := pglogrepl.ParseCreateReplicationSlot(conn.Exec(ctx, sql))
	if err != nil {
		closeReplication(conn)
		return snap, nil, fmt.Errorf("creating replication slot %s: %w%s", slot, err, slotHint(err, p.src))
	}
	snap = providers.ExportedSnapshot{Name: res.SnapshotName, ConsistentLSN: res.ConsistentPoint}
	release := sync.OnceValue(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), replCloseTimeout)
		defer cancel()
		return conn.Close(ctx)
	})
	return snap, release, nil
}

// dropUnusedSlot drops slot if it exists and no process streams from it.
func dropUnusedSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	var plugin, database, current string
	var pid *int32
	err := conn.QueryRow(ctx, `SELECT coalesce(s.plugin::text, ''), coalesce(s.database::text, ''), s.active_pid,
			pg_catalog.current_database()::text
		FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1`, slot).Scan(&plugin, &database, &pid, &current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("reading replication slot %s: %w", slot, err)
	case pid != nil:
		return fmt.Errorf("replication slot %s is in use by server process %d; stop the process streaming from it (another sluice run?) and try again", slot, *pid)
	case plugin != "pgoutput" || database != current:
		return fmt.Errorf("replication slot %s exists with plugin %q in database %q; sluice needs a pgoutput slot in %q: choose another cdc { slot = ... } or drop it", slot, plugin, database, current)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_catalog.pg_drop_replication_slot($1)`, slot); err != nil {
		return fmt.Errorf("dropping the unused replication slot %s before creating it again: %w", slot, err)
	}
	return nil
}

func closeReplication(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), replCloseTimeout)
	defer cancel()
	conn.Close(ctx)
}

// parseLSN parses an LSN as PostgreSQL writes it; "" is 0.
func parseLSN(s, what string) (pglogrepl.LSN, error) {
	if s == "" {
		return 0, nil
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not an LSN", what, s)
	}
	return lsn, nil
}

// CurrentLSN returns the position to stream up to (StreamRequest.StopAtLSN)
// to get every transaction committed so far: pg_current_wal_insert_lsn(),
// which, unlike pg_current_wal_lsn(), is past the transactions committed
// with synchronous_commit = off whose WAL is not written yet.
func (p *Provider) CurrentLSN(ctx context.Context) (string, error) {
	var lsn string
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text").Scan(&lsn)
	})
	if err != nil {
		return "", fmt.Errorf("reading the server's WAL position: %w", err)
	}
	return lsn, nil
}

// Stream streams the changes of req.Tables from the slot, one committed
// transaction at a time (transactions larger than the memory budget in
// Partial chunks), to sink. Transactions committed at or before
// req.StartLSN are skipped. The server is told the slot may advance only
// to what sink.Flushed reports, or, with nothing pending, to the WAL
// position the server reports, so that an idle source retains no WAL.
//
// With req.StopAtLSN (from CurrentLSN) it returns nil once every
// transaction committed at or before it was handed over; otherwise it
// runs until ctx is cancelled and returns ctx's error. A slot that is gone
// or lost WAL is reported as ErrSlotLost.
func (p *Provider) Stream(ctx context.Context, req providers.StreamRequest, sink providers.ChangeSink) (err error) {
	defer func() { err = p.classified(err) }()
	start, err := parseLSN(req.StartLSN, "StartLSN")
	if err != nil {
		return err
	}
	stop, err := parseLSN(req.StopAtLSN, "StopAtLSN")
	if err != nil {
		return err
	}
	if req.Slot == "" || req.Publication == "" {
		return errors.New("streaming changes: the slot and the publication must be named")
	}
	tables := make(map[string]providers.ReadRequest, len(req.Tables))
	for key, t := range req.Tables {
		tables[key] = p.normalize(t)
	}

	cat, err := p.dialer.Connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), replCloseTimeout)
		defer cancel()
		cat.Close(ctx)
	}()
	blockSize, err := checkStream(ctx, cat, req.Slot, req.Publication, req.TakeOver)
	if err != nil {
		return err
	}
	if stop != 0 && stop <= start {
		return nil
	}

	conn, err := p.dialer.ConnectReplication(ctx)
	if err != nil {
		return err
	}
	defer closeReplication(conn)
	if _, err := conn.Exec(ctx, streamSettings).ReadAll(); err != nil {
		return fmt.Errorf("setting up the replication connection: %w", err)
	}
	args := []string{
		"proto_version '1'",
		// A list of identifiers in a string literal.
		"publication_names " + quoteLiteral(pgx.Identifier{req.Publication}.Sanitize()),
	}
	for attempt := 0; ; attempt++ {
		err = pglogrepl.StartReplication(ctx, conn, pgx.Identifier{req.Slot}.Sanitize(), start,
			pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args})
		if err == nil || !req.TakeOver || !slotInUse(err) || attempt >= takeOverAttempts {
			break
		}
		if terr := terminateSlotHolder(ctx, cat, req.Slot); terr != nil {
			return fmt.Errorf("taking replication slot %s over from a runner that lost its claim: %w", req.Slot, terr)
		}
		select {
		case <-time.After(takeOverWait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return streamError(err, req.Slot, req.Publication, p)
	}

	s := &streamer{conn: conn, sink: sink, start: start, stop: stop, confirmed: start, blockSize: blockSize}
	s.dec = newChangeDecoder(tables, catalogResolver(cat), start, s.handOver)
	err = s.run(ctx)
	if err != nil && ctx.Err() == nil {
		return streamError(err, req.Slot, req.Publication, p)
	}
	return err
}

// quoteLiteral quotes a string literal of the replication grammar, which
// knows no backslash escapes.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// checkStreamSQL reads what streaming needs, to fail with a clear error
// before START_REPLICATION: wal_level, the publication and the slot.
const checkStreamSQL = `SELECT pg_catalog.current_setting('wal_level'), pg_catalog.current_setting('wal_block_size')::int8,
	EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $2),
	s.slot_name IS NOT NULL, coalesce(s.plugin::text, ''), coalesce(s.database::text, ''),
	coalesce(s.wal_status, ''), s.active_pid, pg_catalog.current_database()::text
FROM (SELECT 1) AS one
LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = $1`

// checkStream checks what streaming needs and returns the WAL page size.
// With takeOver, a process streaming from the slot is not an error: the
// stream terminates it when it starts.
func checkStream(ctx context.Context, conn *pgx.Conn, slot, publication string, takeOver bool) (uint64, error) {
	var walLevel, plugin, database, walStatus, current string
	var blockSize int64
	var pubExists, slotExists bool
	var pid *int32
	err := conn.QueryRow(ctx, checkStreamSQL, slot, publication).Scan(
		&walLevel, &blockSize, &pubExists, &slotExists, &plugin, &database, &walStatus, &pid, &current)
	if err != nil {
		return 0, fmt.Errorf("checking replication slot %s: %w", slot, err)
	}
	if blockSize <= 0 {
		return 0, fmt.Errorf("the server reports a wal_block_size of %d", blockSize)
	}
	if takeOver {
		pid = nil
	}
	return uint64(blockSize), checkStreamState(slot, publication, walLevel, plugin, database, walStatus, current, pubExists, slotExists, pid)
}

func checkStreamState(slot, publication, walLevel, plugin, database, walStatus, current string, pubExists, slotExists bool, pid *int32) error {
	switch {
	case walLevel != "logical":
		return fmt.Errorf("wal_level is %s, logical replication needs logical: set wal_level = logical in postgresql.conf (on managed services, the logical replication parameter) and restart the server", walLevel)
	case !slotExists:
		return fmt.Errorf("%w: replication slot %s does not exist (dropped by hand, by auto_drop_slot, or never created); run `sluice apply` to create it; the source's cdc tables are snapshotted again", ErrSlotLost, slot)
	case walStatus == "lost":
		return fmt.Errorf("%w: replication slot %s lost WAL it needed (max_slot_wal_keep_size was exceeded); drop it and run `sluice apply`; the source's cdc tables are snapshotted again", ErrSlotLost, slot)
	case plugin != "pgoutput" || database != current:
		return fmt.Errorf("replication slot %s has plugin %q in database %q; sluice needs a pgoutput slot in %q: choose another cdc { slot = ... } or drop it", slot, plugin, database, current)
	case pid != nil:
		return fmt.Errorf("replication slot %s is in use by server process %d; stop the process streaming from it (another sluice run?)", slot, *pid)
	case !pubExists:
		return fmt.Errorf("publication %s does not exist; run `sluice apply` to create it", publication)
	}
	return nil
}

// streamError adds what to do to an error of the stream.
func streamError(err error, slot, publication string, p *Provider) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return fmt.Errorf("streaming from replication slot %s: %w", slot, err)
	}
	hint := ""
	switch pgErr.Code {
	case "42704": // undefined_object
		if strings.Contains(pgErr.Message, "publication") {
			hint = fmt.Sprintf("; run `sluice apply` to create publication %s", publication)
		} else {
			return fmt.Errorf("%w: streaming from replication slot %s: %w; run `sluice apply` to create it; the source's cdc tables are snapshotted again", ErrSlotLost, slot, err)
		}
	case "55000": // object_not_in_prerequisite_state: WAL removed, slot invalidated
		if strings.Contains(pgErr.Message, "WAL") || strings.Contains(pgErr.Message, "invalidated") {
			return fmt.Errorf("%w: streaming from replication slot %s: %w", ErrSlotLost, slot, err)
		}
		hint = slotHint(err, p.src)
	case "55006": // object_in_use
		hint = "; stop the process streaming from it (another sluice run?)"
	default:
		hint = slotHint(err, p.src)
	}
	return fmt.Errorf("streaming from replication slot %s: %w%s", slot, err, hint)
}

// catalogResolver looks Relation messages up over conn, an ordinary
// connection (the replication connection cannot run queries while it
// streams), in one round trip: the columns' types (with the types they
// refer to, cached: only those not seen before), format_type() and, from
// pg_attribute, their declared array dimensions and nullability; and the
// table's primary key.
func catalogResolver(conn *pgx.Conn) relationResolver {
	types := codec.TypeCatalog{}
	seen := map[uint32]bool{}
	return func(ctx context.Context, m *relationMsg) (*cdcRelationInfo, error) {
		names := make([]string, len(m.cols))
		oids := make([]uint32, len(m.cols))
		mods := make([]int32, len(m.cols))
		var missing []uint32
		for i, c := range m.cols {
			names[i], oids[i], mods[i] = c.name, c.typ, c.typmod
			if !seen[c.typ] {
				seen[c.typ] = true
				missing = append(missing, c.typ)
			}
		}
		info := &cdcRelationInfo{cols: make([]cdcColumnInfo, len(m.cols))}
		infos := info.cols
		dims := make([]int, len(m.cols))
		b := &pgx.Batch{}
		if len(missing) > 0 {
			b.Queue(codec.TypeClosureSQL(`seed(oid) AS (SELECT unnest($1::oid[]))`), missing).Query(func(rows pgx.Rows) error {
				return types.Scan(rows)
			})
		}
		b.Queue(relationColumnsSQL, m.id, names, oids, mods).Query(func(rows pgx.Rows) error {
			i := 0
			for rows.Next() {
				if i >= len(infos) {
					return errors.New("more columns than asked for")
				}
				if err := rows.Scan(&infos[i].sourceType, &dims[i], &infos[i].nullable); err != nil {
					return err
				}
				i++
			}
			return rows.Err()
		})
		b.Queue(primaryKeySQL, m.id).QueryRow(func(row pgx.Row) error {
			return row.Scan(&info.primaryKey)
		})
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			for _, oid := range missing {
				delete(seen, oid)
			}
			return nil, err
		}
		for i, c := range m.cols {
			infos[i].typ = types.Resolve(c.typ, c.typmod, dims[i])
		}
		return info, nil
	}
}

// relationColumnsSQL describes the columns of a Relation message ($1 the
// relation's OID; $2, $3, $4 the columns' names, types and modifiers):
// format_type() and, from pg_attribute when the column still exists with
// that type, its declared dimensions and nullability.
const relationColumnsSQL = `SELECT pg_catalog.format_type(u.typ, u.mod), coalesce(a.attndims, 0)::int, coalesce(NOT a.attnotnull, true)
FROM unnest($2::text[], $3::oid[], $4::int4[]) WITH ORDINALITY AS u(name, typ, mod, i)
LEFT JOIN pg_catalog.pg_attribute a
	ON a.attrelid = $1::oid AND a.attname = u.name AND a.atttypid = u.typ AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY u.i`

// primaryKeySQL reads the primary key of relation $1, in key order.
const primaryKeySQL = `SELECT ARRAY(
	SELECT a.attname::text
	FROM pg_catalog.pg_constraint con
	CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
	JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
	WHERE con.conrelid = $1::oid AND con.contype = 'p'
	ORDER BY k.ord)`

// streamer runs one START_REPLICATION session.
type streamer struct {
	conn *pgconn.PgConn
	sink providers.ChangeSink
	dec  *changeDecoder
	// start is the committed position the stream started from; stop the
	// StopAtLSN, 0 for none.
	start, stop pglogrepl.LSN
	// walEnd is the highest WAL position the server reported in a
	// keepalive: everything before it was sent.
	walEnd pglogrepl.LSN
	// handed is the commit LSN of the last transaction handed over.
	handed pglogrepl.LSN
	// confirmed is the position last reported to the server.
	confirmed  pglogrepl.LSN
	nextStatus time.Time
	// stopReached is set once a transaction at or after stop was handed
	// over.
	stopReached bool
	// blockSize is the size of a WAL page.
	blockSize uint64
}

// xlogLongPageHeader is the size of the header of the first page of a
// WAL segment (SizeOfXLogLongPHD); other pages have a shorter one.
const xlogLongPageHeader = 40

// passed reports whether the server has sent everything before stop,
// given that it sent everything before walEnd. walEnd is the end of a
// record; stop, from pg_current_wal_insert_lsn(), is where the next record
// will go, which is past the page header when the last record ended on a
// page boundary: no record ends inside a page header, so reaching the
// boundary is reaching stop.
func (s *streamer) passed(walEnd pglogrepl.LSN) bool {
	if walEnd >= s.stop {
		return true
	}
	off := uint64(s.stop) % s.blockSize
	return off <= xlogLongPageHeader && uint64(walEnd) >= uint64(s.stop)-off
}

func (s *streamer) run(ctx context.Context) error {
	if err := s.sendStatus(s.stop != 0); err != nil {
		return err
	}
	for {
		if !time.Now().Before(s.nextStatus) {
			if err := s.sendStatus(s.stop != 0 && !s.dec.inTx()); err != nil {
				return err
			}
		}
		rctx, cancel := context.WithDeadline(ctx, s.nextStatus)
		msg, err := s.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				// Best effort: the slot keeps what was committed.
				s.sendStatus(false)
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			done, err := s.handle(ctx, m.Data)
			if err != nil {
				return err
			}
			if done {
				return s.sendStatus(false)
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		case *pgproto3.CopyDone:
			return errors.New("the server ended the replication stream")
		}
	}
}

// handle processes one CopyData message of the stream, and reports
// whether the stream is done (StopAtLSN reached).
func (s *streamer) handle(ctx context.Context, data []byte) (bool, error) {
	if len(data) == 0 {
		return false, nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return false, err
		}
		s.walEnd = max(s.walEnd, ka.ServerWALEnd)
		if s.stop != 0 && !s.dec.inTx() && s.passed(s.walEnd) {
			return true, nil
		}
		pos, err := s.position()
		if err != nil {
			return false, err
		}
		if ka.ReplyRequested || pos > s.confirmed {
			return false, s.sendStatus(false)
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return false, err
		}
		w := xld.WALData
		if s.stop != 0 && !s.dec.inTx() && len(w) >= 9 && w[0] == 'B' && pglogrepl.LSN(binary.BigEndian.Uint64(w[1:])) > s.stop {
			// Transactions arrive in commit order: every one committed
			// at or before stop was handed over.
			return true, nil
		}
		if err := s.dec.handle(ctx, w); err != nil {
			return false, err
		}
		return s.stopReached, nil
	}
	return false, nil
}

// handOver gives a transaction to the sink. The sink may take long
// (committing to the warehouse): meanwhile the server keeps hearing from
// the stream, so that wal_sender_timeout does not end it.
func (s *streamer) handOver(ctx context.Context, tx *providers.Transaction) error {
	lsn := s.dec.tx.lsn
	s.handed = lsn
	err := s.heartbeat(func() error { return s.sink.Transaction(ctx, tx) })
	if err != nil {
		return fmt.Errorf("handing over the transaction committed at %s: %w", tx.CommitLSN, err)
	}
	if s.stop != 0 && !tx.Partial && lsn >= s.stop {
		s.stopReached = true
	}
	return nil
}

// heartbeat runs fn, repeating the last status update every
// standbyInterval until it returns. Only the heartbeat writes to the
// connection meanwhile; the position is not recomputed, as the sink is
// busy.
func (s *streamer) heartbeat(fn func() error) error {
	var mu sync.Mutex
	stopped := false
	pos := s.confirmed
	var timer *time.Timer
	mu.Lock()
	timer = time.AfterFunc(standbyInterval, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, standbyStatus(pos, false))
		timer.Reset(standbyInterval)
	})
	mu.Unlock()
	err := fn()
	mu.Lock()
	stopped = true
	timer.Stop()
	mu.Unlock()
	return err
}

// position is how far the slot may be confirmed: what the sink has
// committed (never more); with nothing pending (every transaction handed
// over committed, none being received) the server's WAL position; never
// less than the start position or what was confirmed before.
func (s *streamer) position() (pglogrepl.LSN, error) {
	flushed, err := parseLSN(s.sink.Flushed(), "the sink's Flushed position")
	if err != nil {
		return 0, err
	}
	pos := max(s.start, s.confirmed, flushed)
	if !s.dec.inTx() && flushed >= s.handed {
		pos = max(pos, s.walEnd)
	}
	return pos, nil
}

func (s *streamer) sendStatus(reply bool) error {
	pos, err := s.position()
	if err != nil {
		return err
	}
	if err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, standbyStatus(pos, reply)); err != nil {
		return fmt.Errorf("sending the standby status: %w", err)
	}
	s.confirmed = pos
	interval := standbyInterval
	if s.stop != 0 {
		interval = drainInterval
	}
	s.nextStatus = time.Now().Add(interval)
	return nil
}

// standbyStatus reports pos as written, flushed and applied: the flush
// position is what the server confirms on the slot.
func standbyStatus(pos pglogrepl.LSN, reply bool) pglogrepl.StandbyStatusUpdate {
	return pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos,
		ReplyRequested: reply,
	}
}

// How a stream takes a slot over from a walsender of a runner that lost
// its claim: the walsender is terminated, and START_REPLICATION tried
// again while it exits.
const (
	takeOverAttempts = 20
	takeOverWait     = 250 * time.Millisecond
)

// slotInUse reports START_REPLICATION's refusal of a slot another process
// streams from.
func slotInUse(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55006"
}

// terminateSlotHolder ends the server process streaming from slot (the
// same role may end its own sessions; otherwise the role needs
// pg_signal_backend).
func terminateSlotHolder(ctx context.Context, conn *pgx.Conn, slot string) error {
	_, err := conn.Exec(ctx, `SELECT pg_catalog.pg_terminate_backend(active_pid, 5000)
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
	return err
}
