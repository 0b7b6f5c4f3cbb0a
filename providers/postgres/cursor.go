package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// Cursor reads (incremental and append) select the rows whose cursor is at
// or past the committed value, in cursor order, in one REPEATABLE READ
// transaction:
//
//	SELECT <columns> FROM t WHERE c IS NOT NULL AND c >= $1 ORDER BY c
//
// The committed position is the greatest cursor value read, in
// PostgreSQL's text form, and the keys of the rows holding it
// (BoundaryKeys). The next read starts at that value again (>=), so that
// rows committed later with the same value are not lost, and skips the
// rows whose keys were committed. Rows with a NULL cursor are never read
// by a cursor sync, only by a full resync (a snapshot). A row committed
// after a read with a cursor value below the one committed (a transaction
// that set updated_at = now() and committed late) is missed: that is the
// nature of cursor syncs; xmin and cdc syncs do not have this limit.
//
// Keys are opaque: the first 128 bits of SHA-256 over the key columns'
// binary values (the whole row's for a table without a key, which append
// syncs allow), base64url. A key may appear several times (identical
// rows of a table without a key); each occurrence skips one row.
//
// Xmin reads use the row's xmin, the transaction that wrote its current
// version, as the cursor; see ReadXmin.

// ReadIncremental reads the rows of an incremental or append sync past
// req.From (all rows with a cursor on the first sync, From.Cursor "").
// The position returned is req.From when no row was read.
func (p *Provider) ReadIncremental(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (_ records.Position, err error) {
	defer func() { err = p.classified(err) }()
	req = p.normalize(req)
	if req.Cursor == "" {
		return records.Position{}, fmt.Errorf("reading %s incrementally: no incremental_field", displayName(req))
	}
	rt, err := p.beginRead(ctx, req, false)
	if err != nil {
		return records.Position{}, err
	}
	defer rt.close()
	info := rt.info
	ci := info.schema.Index(req.Cursor)
	cc := info.cols[ci]
	cursorIdent := pgx.Identifier{req.Cursor}.Sanitize()

	// The committed value, as the cursor column's binary value, to tell
	// the rows that hold it.
	var from []byte
	var args [][]byte
	if req.From.Cursor != "" {
		args = [][]byte{[]byte(req.From.Cursor)}
		rr := rt.conn.PgConn().ExecParams(ctx, "SELECT "+cc.exprFor("$1"), args, []uint32{cc.typ.OID}, nil, binaryResults)
		for rr.NextRow() {
			from = bytes.Clone(rr.Values()[0])
		}
		if _, err := rr.Close(); err != nil {
			return records.Position{}, fmt.Errorf("reading %s: the committed cursor value %q is not a %s: %w; resync the table", info.name, req.From.Cursor, info.schema.Columns[ci].SourceType, err)
		}
	}
	skip := map[string]int{}
	for _, k := range req.From.BoundaryKeys {
		skip[k]++
	}
	resume := len(req.From.AfterKey) > 0
	batched := req.CommitRows > 0 && req.Commit != nil
	if resume && from == nil {
		return records.Position{}, fmt.Errorf("reading %s: the committed position has a key but no cursor value; resync the table", info.name)
	}
	if (resume || batched) && len(info.keyIdx) == 0 {
		return records.Position{}, needsKey(info, req)
	}

	sql := "SELECT " + info.selectList() + " FROM " + info.from() + " WHERE " + cursorIdent + " IS NOT NULL"
	var oids []uint32
	switch {
	case from != nil && resume:
		ph, kargs, koids, err := info.afterKeyArgs(req.From.AfterKey, 2)
		if err != nil {
			return records.Position{}, err
		}
		sql += " AND (" + cursorIdent + ", " + info.keyList() + ") > ($1, " + ph + ")"
		args, oids = append(args, kargs...), append([]uint32{cc.typ.OID}, koids...)
	case from != nil:
		sql += " AND " + cursorIdent + " >= $1"
		oids = []uint32{cc.typ.OID}
	default:
		args = nil
	}
	sql += " ORDER BY " + cursorIdent
	if resume || batched {
		sql += ", " + info.keyList()
	}

	keyIdx := info.keyOrRow()
	isNumeric := cc.resultOID == pgtype.NumericOID
	equal := func(a, b []byte) bool {
		if isNumeric {
			return codec.NumericEqual(a, b)
		}
		return bytes.Equal(a, b)
	}
	// The rows of the greatest value read so far: its binary value and the
	// raw keys (length-prefixed binary values) of its rows. spans reports
	// that rows of the group were committed before (a commit part-way, or
	// the resumed position's own value): its keys then come from the
	// snapshot at the end (keysAt), not from this read's rows alone.
	var (
		group   []byte
		grouped bool
		spans   bool
		keys    rawKeys
		key     []byte
	)
	sink := emitSink(info.schema, req.BatchRows, emit)
	last := newLastRow(append([]int{ci}, info.keyIdx...))
	keep := func(vals [][]byte) (bool, error) {
		v := vals[ci]
		if !grouped || !equal(v, group) {
			spans = !grouped && resume && equal(v, from)
			group, grouped = append(group[:0], v...), true
			keys.reset()
		}
		if batched {
			last.keep(vals)
		}
		key = appendRawKey(key[:0], vals, keyIdx)
		keys.add(key)
		if from != nil && len(skip) > 0 && equal(v, from) {
			if k := hashKey(key); skip[k] > 0 {
				skip[k]--
				return false, nil
			}
		}
		return true, nil
	}
	err = readAll(ctx, rt, sql, args, oids, info, sink, keep, batched, req.CommitRows, func() error {
		texts, err := rt.textForms(ctx, last.idx, last.vals)
		if err != nil {
			return err
		}
		pos := req.From
		pos.Cursor, pos.AfterKey, pos.BoundaryKeys = texts[0], texts[1:], nil
		if from != nil && equal(last.vals[0], from) {
			// Rows of the committed value the position skips, which
			// may still come after this key.
			pos.BoundaryKeys = req.From.BoundaryKeys
		}
		spans = true
		return req.Commit(pos)
	})
	if err != nil {
		return records.Position{}, err
	}
	pos := req.From
	pos.AfterKey = nil
	switch {
	case !grouped && !resume:
		return req.From, rt.commit(ctx)
	case !grouped:
		// Nothing past the resumed position: it becomes a plain one.
		pos.BoundaryKeys, err = rt.keysAt(ctx, cc, req.Cursor, pos.Cursor)
		if err != nil {
			return records.Position{}, err
		}
		return pos, rt.commit(ctx)
	}
	pos.Cursor, err = rt.cursorText(ctx, cc, group)
	if err != nil {
		return records.Position{}, err
	}
	if spans {
		pos.BoundaryKeys, err = rt.keysAt(ctx, cc, req.Cursor, pos.Cursor)
		if err != nil {
			return records.Position{}, err
		}
	} else {
		pos.BoundaryKeys = keys.hashes()
	}
	return pos, rt.commit(ctx)
}

// CursorMark returns where a cursor sync without historical load starts:
// the cursor's greatest value now and the keys of the rows holding it, as
// ReadIncremental commits them, so that a read from it returns only the
// rows that come later; the zero Position when no row has a cursor.
func (p *Provider) CursorMark(ctx context.Context, req providers.ReadRequest) (_ records.Position, err error) {
	defer func() { err = p.classified(err) }()
	req = p.normalize(req)
	if req.Cursor == "" {
		return records.Position{}, fmt.Errorf("reading %s incrementally: no incremental_field", displayName(req))
	}
	rt, err := p.beginRead(ctx, req, false)
	if err != nil {
		return records.Position{}, err
	}
	defer rt.close()
	var pos records.Position
	if pos.Cursor, pos.BoundaryKeys, err = rt.cursorMark(ctx, req.Cursor); err != nil {
		return records.Position{}, err
	}
	if pos.Cursor == "" {
		pos.BoundaryKeys = nil
	}
	return pos, rt.commit(ctx)
}

// binaryResults asks for every result column in binary format.
var binaryResults = []int16{1}

// keyOrRow is the columns that identify a row: the key, or every column
// read for a table without one.
func (info *tableInfo) keyOrRow() []int {
	if len(info.keyIdx) > 0 {
		return info.keyIdx
	}
	all := make([]int, len(info.cols))
	for i := range all {
		all[i] = i
	}
	return all
}

// cursorText returns the text form of a cursor value read in binary.
func (rt *readTx) cursorText(ctx context.Context, cc readCol, v []byte) (string, error) {
	if cc.resultOID == pgtype.TextOID {
		return string(v), nil
	}
	var text string
	rr := rt.conn.PgConn().ExecParams(ctx, "SELECT pg_catalog.format('%s', $1)", [][]byte{v}, []uint32{cc.resultOID}, binaryResults, nil)
	for rr.NextRow() {
		text = string(rr.Values()[0])
	}
	if _, err := rr.Close(); err != nil {
		return "", fmt.Errorf("reading %s: the text form of the cursor %s: %w", rt.info.name, cc.expr, err)
	}
	return text, nil
}

// cursorMark finds, in the read's snapshot, the cursor's greatest value
// and the keys of the rows that hold it: where a cursor sync continues
// after a snapshot.
func (rt *readTx) cursorMark(ctx context.Context, cursor string) (string, []string, error) {
	info := rt.info
	ci := info.schema.Index(cursor)
	c := pgx.Identifier{cursor}.Sanitize()
	idx := info.keyOrRow()
	sql := "SELECT "
	for _, i := range idx {
		sql += info.cols[i].expr + ", "
	}
	sql += "pg_catalog.format('%s', " + c + ") FROM " + info.from() + " WHERE " + c + " = (SELECT max(" + c + ") FROM " + info.from() + ")"
	var (
		text string
		keys rawKeys
		key  []byte
		vals = make([][]byte, len(info.cols))
	)
	rr := rt.conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, binaryResults)
	for rr.NextRow() {
		row := rr.Values()
		for j, i := range idx {
			vals[i] = row[j]
		}
		key = appendRawKey(key[:0], vals, idx)
		keys.add(key)
		text = string(row[len(idx)])
	}
	if _, err := rr.Close(); err != nil {
		return "", nil, fmt.Errorf("reading %s: the greatest value of %s: %w", info.name, info.cols[ci].expr, err)
	}
	return text, keys.hashes(), nil
}

// readRows runs a query whose results come in binary and decodes each row
// that keep accepts (nil: every row) into the sink's batches.
func readRows(ctx context.Context, conn *pgx.Conn, sql string, args [][]byte, oids []uint32, info *tableInfo, sink *batchSink, keep func([][]byte) (bool, error)) error {
	decs := info.decoders()
	rr := conn.PgConn().ExecParams(ctx, sql, args, oids, nil, binaryResults)
	if err := checkResultTypes(info, rr.FieldDescriptions()); err != nil {
		rr.Close()
		return err
	}
	for rr.NextRow() {
		vals := rr.Values()
		if keep != nil {
			ok, err := keep(vals)
			if err != nil {
				rr.Close()
				return err
			}
			if !ok {
				continue
			}
		}
		if err := codec.DecodeRow(decs, sink.Batch(), vals); err != nil {
			rr.Close()
			return fmt.Errorf("reading %s: %w", info.name, err)
		}
		size := 0
		for _, v := range vals {
			size += 4 + len(v)
		}
		if err := sink.RowDone(size); err != nil {
			rr.Close()
			return err
		}
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("reading %s: %w", info.name, err)
	}
	return nil
}

// checkResultTypes makes sure the server sends the types the decoders
// expect (a domain's base type, text for the casts). The read holds a
// lock that keeps the table's definition, so a mismatch is a bug, but
// one that must not turn into wrong values.
func checkResultTypes(info *tableInfo, fds []pgconn.FieldDescription) error {
	if fds == nil {
		return nil // the query failed: Close reports why
	}
	if len(fds) != len(info.cols) {
		return fmt.Errorf("reading %s: %d result columns, want %d", info.name, len(fds), len(info.cols))
	}
	for i, fd := range fds {
		if fd.DataTypeOID != info.cols[i].resultOID {
			return fmt.Errorf("reading %s: column %s arrives as type %d, want %d; run the sync again", info.name, info.cols[i].expr, fd.DataTypeOID, info.cols[i].resultOID)
		}
	}
	return nil
}

// rawKeys holds the raw keys of a group of rows.
type rawKeys struct {
	data []byte
	ends []int
}

func (k *rawKeys) reset() { k.data, k.ends = k.data[:0], k.ends[:0] }

func (k *rawKeys) add(key []byte) {
	k.data = append(k.data, key...)
	k.ends = append(k.ends, len(k.data))
}

func (k *rawKeys) hashes() []string {
	out := make([]string, len(k.ends))
	start := 0
	for i, end := range k.ends {
		out[i] = hashKey(k.data[start:end])
		start = end
	}
	return out
}

// appendRawKey appends the key columns' binary values, each with its
// length (-1 for NULL), so that no two keys run together.
func appendRawKey(dst []byte, vals [][]byte, idx []int) []byte {
	for _, i := range idx {
		if vals[i] == nil {
			dst = binary.BigEndian.AppendUint32(dst, 0xFFFFFFFF)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(vals[i])))
		dst = append(dst, vals[i]...)
	}
	return dst
}

// hashKey encodes a raw key as it is recorded in Position.BoundaryKeys.
func hashKey(raw []byte) string {
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// xminHorizon bounds how far (in transactions) the committed xmin may
// lag for the next read to select by it: xmin comparisons are modulo
// 2^32, meaningful within 2^31 of the current transaction; the margin
// covers transactions started while the read begins.
const xminHorizon = 1<<31 - 1<<24

// ReadXmin reads the rows written (inserted or updated) since req.From.Xmin,
// using the row's xmin as the cursor: every row on the first sync (Xmin
// 0), then
//
//	SELECT <columns> FROM t WHERE age(xmin) >= 0 AND age(xmin) <= age($1::xid)
//
// with $1 the committed xmin horizon. age() compares transaction ids
// modulo 2^32 relative to the current one, so the comparison stays right
// across wraparound. Frozen rows keep their original xmin (PostgreSQL
// 9.4+ freezes with a flag), so a row written after the last sync and
// frozen since is still read; rows frozen with the old FrozenTransactionId
// have an age of 2^31-1 and rows older than 2^31 transactions a negative
// one: they are left out, as they were read by an earlier sync. The
// position returned is the snapshot's xmin horizon (epoch-extended): the
// next read takes the transactions that had not finished when this one's
// snapshot was taken, so nothing committed later is missed; rows of
// transactions that finished while others were still running may be read
// twice, which merging by key absorbs.
//
// When the committed horizon is more than about 2^31 transactions old (or
// ahead of the server, which happens when the source was restored from a
// backup), the comparison cannot be trusted and the whole table is read.
//
// Limits: xmin changes on every update, so an xmin sync catches inserts
// and updates but never deletes; no index serves xmin, so every sync
// scans the whole table (cheaper to read than to copy, but a scan).
func (p *Provider) ReadXmin(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (_ records.Position, err error) {
	defer func() { err = p.classified(err) }()
	req = p.normalize(req)
	rt, err := p.beginRead(ctx, req, false)
	if err != nil {
		return records.Position{}, err
	}
	defer rt.close()
	info := rt.info
	if info.relkind != relkindTable && info.relkind != relkindPartitioned && info.relkind != relkindMatView {
		return records.Position{}, fmt.Errorf("%s is a %s: xmin syncs read tables; use full_refresh", info.name, kindName(info.relkind))
	}
	resume := len(req.From.AfterKey) > 0
	batched := req.CommitRows > 0 && req.Commit != nil
	if resume || batched {
		if len(info.keyIdx) == 0 {
			return records.Position{}, needsKey(info, req)
		}
		return p.readXminBatched(ctx, rt, req, emit, resume, batched)
	}
	sql := "SELECT " + info.selectList() + " FROM " + info.from()
	var args [][]byte
	var oids []uint32
	last := req.From.Xmin
	if last != 0 && last <= rt.xmin && rt.xmin-last < xminHorizon {
		sql += " WHERE pg_catalog.age(xmin) >= 0 AND pg_catalog.age(xmin) <= pg_catalog.age($1::xid)"
		args = [][]byte{[]byte(strconv.FormatUint(last&0xFFFFFFFF, 10))}
		oids = []uint32{pgtype.XIDOID}
	}
	sink := emitSink(info.schema, req.BatchRows, emit)
	if err := readRows(ctx, rt.conn, sql, args, oids, info, sink, nil); err != nil {
		return records.Position{}, err
	}
	if err := sink.flush(); err != nil {
		return records.Position{}, err
	}
	pos := req.From
	pos.Xmin = rt.xmin
	return pos, rt.commit(ctx)
}

// readXminBatched is ReadXmin in xmin-then-key order, for a batched read
// or one that resumes a batched read's position. The order is the age of
// xmin, descending (oldest first), which follows transaction ids across
// wraparound; a resumed read takes the rows after the position's
// (xmin, key):
//
//	WHERE age(xmin) >= 0 AND (age(xmin) < age($1::xid) OR (xmin = $1::xid AND (k) > ($2)))
//
// The positions committed part-way keep as Xmin the horizon of the first
// read of the chain, and so does the final one of a resumed read: rows of
// transactions that were running when that read started, committed since
// with an xmin below the last row's, are read by the next sync (merging
// by key absorbs rows read twice).
func (p *Provider) readXminBatched(ctx context.Context, rt *readTx, req providers.ReadRequest, emit func(*records.Batch) error, resume, batched bool) (records.Position, error) {
	info := rt.info
	sql := "SELECT " + info.selectList() + " FROM " + info.from()
	var args [][]byte
	var oids []uint32
	horizon := rt.xmin
	last := req.From.Xmin
	switch {
	case resume:
		ph, kargs, koids, err := info.afterKeyArgs(req.From.AfterKey, 2)
		if err != nil {
			return records.Position{}, err
		}
		sql += " WHERE pg_catalog.age(xmin) >= 0 AND (pg_catalog.age(xmin) < pg_catalog.age($1::xid) OR (xmin = $1::xid AND (" + info.keyList() + ") > (" + ph + ")))"
		args = append([][]byte{[]byte(req.From.Cursor)}, kargs...)
		oids = append([]uint32{pgtype.XIDOID}, koids...)
		horizon = last
	case last != 0 && last <= rt.xmin && rt.xmin-last < xminHorizon:
		sql += " WHERE pg_catalog.age(xmin) >= 0 AND pg_catalog.age(xmin) <= pg_catalog.age($1::xid)"
		args = [][]byte{[]byte(strconv.FormatUint(last&0xFFFFFFFF, 10))}
		oids = []uint32{pgtype.XIDOID}
	}
	sql += " ORDER BY pg_catalog.age(xmin) DESC, " + info.keyList()
	sink := emitSink(info.schema, req.BatchRows, emit)
	lastRow := newLastRow(info.keyIdx)
	keep := func(vals [][]byte) (bool, error) {
		lastRow.keep(vals)
		return true, nil
	}
	err := readAll(ctx, rt, sql, args, oids, info, sink, keep, batched, req.CommitRows, func() error {
		key, err := rt.textForms(ctx, lastRow.idx, lastRow.vals)
		if err != nil {
			return err
		}
		xmin, err := rt.rowXmin(ctx, key)
		if err != nil {
			return err
		}
		pos := req.From
		pos.Xmin, pos.Cursor, pos.AfterKey = horizon, xmin, key
		return req.Commit(pos)
	})
	if err != nil {
		return records.Position{}, err
	}
	pos := req.From
	pos.Xmin, pos.Cursor, pos.AfterKey = horizon, "", nil
	return pos, rt.commit(ctx)
}

// readAll runs a cursor or xmin read into sink and flushes it: with
// batched, through a server-side cursor, calling boundary every
// commitRows rows (batch_size); otherwise in one query.
func readAll(ctx context.Context, rt *readTx, sql string, args [][]byte, oids []uint32, info *tableInfo, sink *batchSink,
	keep func([][]byte) (bool, error), batched bool, commitRows int, boundary func() error) error {
	var err error
	if batched {
		err = fetchRows(ctx, rt.conn, sql, args, oids, info, sink, keep, commitRows, boundary)
	} else {
		err = readRows(ctx, rt.conn, sql, args, oids, info, sink, keep)
	}
	if err != nil {
		return err
	}
	return sink.flush()
}

// kindName names a relation kind for messages.
func kindName(k byte) string {
	if n, ok := relkindNames[k]; ok {
		return n
	}
	if k == 'f' {
		return "foreign table"
	}
	return fmt.Sprintf("relation of kind %q", k)
}
