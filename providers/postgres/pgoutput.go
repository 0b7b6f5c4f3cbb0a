package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// This file turns pgoutput's messages (protocol version 1, text tuples)
// into transactions of record batches: the relation cache, tuple
// decoding and the assembly of one transaction's changes per table.
//
// Messages are parsed here rather than with pglogrepl.Parse, which trusts
// the lengths and counts it reads (a short or corrupt message panics it or
// makes it allocate what a count claims); tuple values are decoded straight
// from the message into the batch, without a copy per value.

// The metadata columns appended to every streamed table's schema (SPEC §4).
const (
	// CDCOpColumn holds the change: "I" insert, "U" update, "D" delete.
	CDCOpColumn = "_sluice_cdc_op"
	// LSNColumn holds the commit LSN of the change's transaction.
	LSNColumn = "_sluice_lsn"
	// CDCTimestampColumn holds the commit time of the change's
	// transaction.
	CDCTimestampColumn = "_sluice_cdc_timestamp"
)

// defaultTxBudget bounds the bytes of changes one transaction buffers
// before they are handed over as a Partial chunk (a variable for tests).
var defaultTxBudget = 64 << 20

// errShortMessage reports a pgoutput message that ends before its fields.
var errShortMessage = errors.New("pgoutput message ends early")

// walReader reads the fields of one message, remembering the first error
// instead of reading past the end.
type walReader struct {
	b   []byte
	err error
}

func (r *walReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err, r.b = errShortMessage, nil
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *walReader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *walReader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *walReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *walReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// str reads a NUL-terminated string.
func (r *walReader) str() string {
	if r.err != nil {
		return ""
	}
	i := bytes.IndexByte(r.b, 0)
	if i < 0 {
		r.err, r.b = errShortMessage, nil
		return ""
	}
	s := string(r.b[:i])
	r.b = r.b[i+1:]
	return s
}

// end checks the message was read whole.
func (r *walReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("pgoutput message with %d unexpected trailing bytes", len(r.b))
	}
	return r.err
}

// relationMsg is a Relation message: a table's columns as the stream
// sends them (published columns only; no dropped or generated ones).
type relationMsg struct {
	id        uint32
	namespace string
	name      string
	// identity is the replica identity: 'd' default (the primary key),
	// 'n' nothing, 'f' full, 'i' index.
	identity byte
	cols     []relationCol
}

type relationCol struct {
	// key marks a column of the replica identity.
	key    bool
	name   string
	typ    uint32
	typmod int32
}

func parseRelation(r *walReader) (*relationMsg, error) {
	m := &relationMsg{id: r.u32(), namespace: r.str(), name: r.str(), identity: r.u8()}
	n := int(r.u16())
	// A column takes at least 10 bytes: never believe a count the
	// message cannot hold.
	if r.err == nil && n > len(r.b)/10 {
		return nil, fmt.Errorf("relation message claims %d columns in %d bytes", n, len(r.b))
	}
	m.cols = make([]relationCol, 0, n)
	for range n {
		c := relationCol{key: r.u8()&1 != 0, name: r.str(), typ: r.u32(), typmod: int32(r.u32())}
		m.cols = append(m.cols, c)
	}
	return m, r.end()
}

// tupleCol is one column of a tuple: kind 'n' null, 'u' unchanged TOAST
// value (not sent), 't' text (data), 'b' binary.
type tupleCol struct {
	kind byte
	data []byte
}

// parseTuple reads a TupleData into dst (reused), whose values point into
// the message.
func parseTuple(r *walReader, dst []tupleCol) ([]tupleCol, error) {
	n := int(r.u16())
	if r.err == nil && n > len(r.b) {
		return nil, fmt.Errorf("tuple claims %d columns in %d bytes", n, len(r.b))
	}
	dst = dst[:0]
	for range n {
		c := tupleCol{kind: r.u8()}
		switch c.kind {
		case 'n', 'u':
		case 't', 'b':
			c.data = r.take(int(r.u32()))
		default:
			if r.err == nil {
				return nil, fmt.Errorf("tuple column of unknown kind %q", c.kind)
			}
		}
		dst = append(dst, c)
	}
	return dst, r.err
}

// cdcColumnInfo is what the catalog adds to a Relation message's column.
type cdcColumnInfo struct {
	typ        *codec.PGType
	sourceType string // format_type()
	nullable   bool
}

// cdcRelationInfo is what the catalog adds to a Relation message.
type cdcRelationInfo struct {
	// cols has one entry per column of the message.
	cols []cdcColumnInfo
	// primaryKey is the table's primary key, in key order; nil without
	// one.
	primaryKey []string
}

// relationResolver looks a Relation message up in the catalog.
type relationResolver func(ctx context.Context, m *relationMsg) (*cdcRelationInfo, error)

// cdcRelation is a cached Relation message and how its tuples are decoded.
type cdcRelation struct {
	msg *relationMsg
	// key is the table's key in StreamRequest.Tables; "" for tables not
	// streamed, whose changes are skipped.
	key    string
	schema *records.Schema
	// out is, per message column, its position in schema (-1 when the
	// column is not read); decs its decoder.
	out  []int
	decs []*codec.TextDecoder
	// keyMsg are the message positions of the key columns.
	keyMsg []int
	// keyOnIdentity reports that every key column is part of the replica
	// identity, so that an old key tuple ('K') carries the old key.
	keyOnIdentity bool
	keySchema     *records.Schema
	// meta is the position of the first metadata column in schema.
	meta int
}

// cdcTableID names a source table.
type cdcTableID struct{ schema, table string }

// cdcTxState is the transaction being received.
type cdcTxState struct {
	active bool
	// skip is set for a transaction at or before the start position.
	skip   bool
	lsn    pglogrepl.LSN
	micros int64 // commit time, µs since 1970
	tables map[string]*cdcTableTx
	bytes  int
	// chunks counts the Partial chunks handed over.
	chunks int
}

type cdcTableTx struct {
	rel *cdcRelation
	tc  *providers.TableChanges
}

// changeDecoder turns pgoutput messages into transactions.
type changeDecoder struct {
	tables  map[string]providers.ReadRequest
	byName  map[cdcTableID]string
	resolve relationResolver
	// skipThrough is the start position: transactions committed at or
	// before it are skipped.
	skipThrough pglogrepl.LSN
	// budget bounds the bytes one transaction buffers.
	budget int
	// emit hands a transaction (or a Partial chunk of one) over.
	emit func(ctx context.Context, tx *providers.Transaction) error

	relations      map[uint32]*cdcRelation
	tx             cdcTxState
	newTup, oldTup []tupleCol
	// err is the first error: a decoder that failed part-way through a
	// row is not used again.
	err error
}

func newChangeDecoder(tables map[string]providers.ReadRequest, resolve relationResolver, skipThrough pglogrepl.LSN,
	emit func(context.Context, *providers.Transaction) error) *changeDecoder {
	d := &changeDecoder{
		tables: tables, byName: map[cdcTableID]string{}, resolve: resolve,
		skipThrough: skipThrough, budget: defaultTxBudget, emit: emit,
		relations: map[uint32]*cdcRelation{},
	}
	for key, req := range tables {
		d.byName[cdcTableID{req.Schema, req.Table}] = key
	}
	return d
}

// inTx reports whether a transaction has begun and not yet committed.
func (d *changeDecoder) inTx() bool { return d.tx.active }

// handle decodes one pgoutput message (an XLogData payload).
func (d *changeDecoder) handle(ctx context.Context, data []byte) error {
	if d.err != nil {
		return d.err
	}
	if err := d.handleMsg(ctx, data); err != nil {
		d.err = err
		return err
	}
	return nil
}

func (d *changeDecoder) handleMsg(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("empty pgoutput message")
	}
	r := &walReader{b: data[1:]}
	switch data[0] {
	case 'B':
		return d.begin(r)
	case 'C':
		return d.commit(ctx, r)
	case 'R':
		return d.relationMessage(ctx, r)
	case 'I', 'U', 'D':
		return d.change(ctx, data[0], r, len(data))
	case 'T':
		return d.truncate(r)
	case 'O', 'Y', 'M':
		// Origin, Type (the catalog is asked instead) and logical
		// decoding messages carry nothing sluice keeps.
		return nil
	case 'S', 'E', 'c', 'A':
		return fmt.Errorf("pgoutput sent a streamed in-progress transaction (%q), which protocol version 1 does not", data[0])
	}
	return fmt.Errorf("unknown pgoutput message %q", data[0])
}

func (d *changeDecoder) begin(r *walReader) error {
	lsn := pglogrepl.LSN(r.u64())
	t := int64(r.u64())
	r.u32() // xid
	if err := r.end(); err != nil {
		return fmt.Errorf("begin message: %w", err)
	}
	if d.tx.active {
		return errors.New("pgoutput began a transaction inside another")
	}
	d.tx = cdcTxState{active: true, skip: lsn <= d.skipThrough, lsn: lsn, micros: t + codec.PGEpochMicros, tables: map[string]*cdcTableTx{}}
	return nil
}

func (d *changeDecoder) commit(ctx context.Context, r *walReader) error {
	r.u8() // flags
	lsn := pglogrepl.LSN(r.u64())
	r.u64() // end of the commit record
	r.u64() // commit time, as in begin
	if err := r.end(); err != nil {
		return fmt.Errorf("commit message: %w", err)
	}
	if !d.tx.active {
		return errors.New("pgoutput committed a transaction it did not begin")
	}
	if lsn != d.tx.lsn {
		return fmt.Errorf("pgoutput committed at %s a transaction it began for %s", lsn, d.tx.lsn)
	}
	var err error
	if !d.tx.skip {
		err = d.flush(ctx, false)
	}
	d.tx = cdcTxState{}
	return err
}

// flush hands the changes buffered over: a Partial chunk, or the end of
// the transaction.
func (d *changeDecoder) flush(ctx context.Context, partial bool) error {
	changes := map[string]*providers.TableChanges{}
	for key, tt := range d.tx.tables {
		if tt.tc.Rows.N > 0 || tt.tc.Truncated {
			changes[key] = tt.tc
		}
	}
	d.tx.tables = map[string]*cdcTableTx{}
	d.tx.bytes = 0
	if len(changes) == 0 && (partial || d.tx.chunks == 0) {
		// Nothing for the sink; but after Partial chunks the last one is
		// handed over even empty, as the end of the transaction.
		return nil
	}
	if partial {
		d.tx.chunks++
	}
	return d.emit(ctx, &providers.Transaction{
		CommitLSN:  d.tx.lsn.String(),
		CommitTime: time.UnixMicro(d.tx.micros).UTC(),
		Changes:    changes,
		Partial:    partial,
	})
}

func (d *changeDecoder) relationMessage(ctx context.Context, r *walReader) error {
	m, err := parseRelation(r)
	if err != nil {
		return fmt.Errorf("relation message: %w", err)
	}
	rel, err := d.buildRelation(ctx, m)
	if err != nil {
		return err
	}
	old := d.relations[m.id]
	d.relations[m.id] = rel
	if rel.key == "" {
		return nil
	}
	if old != nil && old.key == rel.key && schemaEqual(old.schema, rel.schema) {
		// Sent again (a new session, a cache invalidation) unchanged:
		// keep the schema value, so that a sink can compare pointers.
		rel.schema, rel.keySchema = old.schema, old.keySchema
	}
	if tt, ok := d.tx.tables[rel.key]; ok && tt.tc.Schema != rel.schema {
		// The table changed (ALTER TABLE) inside this transaction: the
		// rows so far have the old schema.
		if tt.tc.Rows.N > 0 {
			if err := d.flush(ctx, true); err != nil {
				return err
			}
		} else {
			tt.rel = rel
			tt.tc.Schema = rel.schema
			tt.tc.Rows = records.NewBatch(rel.schema, 8)
			tt.tc.OldKeys = nil
		}
	}
	return nil
}

func schemaEqual(a, b *records.Schema) bool {
	return a != nil && b != nil && reflect.DeepEqual(a.Columns, b.Columns) && reflect.DeepEqual(a.PrimaryKey, b.PrimaryKey)
}

// buildRelation makes the cache entry of a Relation message: for a
// streamed table, the schema of the requested columns (and the key) with
// their types from the mapping, plus the metadata columns.
func (d *changeDecoder) buildRelation(ctx context.Context, m *relationMsg) (*cdcRelation, error) {
	rel := &cdcRelation{msg: m}
	key, ok := d.byName[cdcTableID{m.namespace, m.name}]
	if !ok {
		return rel, nil
	}
	rel.key = key
	req := d.tables[key]
	name := tableName(providers.ReadRequest{Schema: m.namespace, Table: m.name})
	info, err := d.resolve(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", name, err)
	}
	infos := info.cols
	if len(infos) != len(m.cols) {
		return nil, fmt.Errorf("reading the columns of %s: %d of %d found", name, len(infos), len(m.cols))
	}
	// The key, as a snapshot read takes it: the requested one, else the
	// table's primary key; else the replica identity index, which pgoutput
	// flags (with REPLICA IDENTITY FULL it flags every column).
	keys := req.PrimaryKey
	if len(keys) == 0 {
		keys = info.primaryKey
	}
	if len(keys) == 0 && (m.identity == 'd' || m.identity == 'i') {
		for _, c := range m.cols {
			if c.key {
				keys = append(keys, c.name)
			}
		}
	}
	want := map[string]bool{}
	for _, c := range req.Columns {
		want[c] = true
	}
	for _, k := range keys {
		want[k] = true
	}
	all := req.Columns == nil
	s := &records.Schema{Columns: []records.Column{}, PrimaryKey: append([]string(nil), keys...)}
	rel.out = make([]int, len(m.cols))
	rel.decs = make([]*codec.TextDecoder, len(m.cols))
	for i, c := range m.cols {
		rel.out[i] = -1
		if !all && !want[c.name] || s.Index(c.name) >= 0 {
			continue
		}
		pt := codec.MapType(infos[i].typ)
		dec, err := codec.NewColumnTextDecoder(pt, infos[i].typ)
		if err != nil {
			return nil, fmt.Errorf("%s column %s: %w", name, pgx.Identifier{c.name}.Sanitize(), err)
		}
		rel.out[i], rel.decs[i] = len(s.Columns), dec
		s.Columns = append(s.Columns, records.Column{
			Name: c.name, Type: pt, SourceType: infos[i].sourceType, Nullable: infos[i].nullable,
		})
	}
	rel.keyOnIdentity = true
	for _, k := range keys {
		pos := -1
		for i, c := range m.cols {
			if c.name == k && rel.out[i] >= 0 {
				pos = i
				break
			}
		}
		if pos < 0 {
			return nil, fmt.Errorf("%s has no column %s of its key any more (or the publication leaves it out): resync the table", name, pgx.Identifier{k}.Sanitize())
		}
		rel.keyMsg = append(rel.keyMsg, pos)
		rel.keyOnIdentity = rel.keyOnIdentity && m.cols[pos].key
	}
	rel.keySchema = &records.Schema{PrimaryKey: s.PrimaryKey}
	for _, pos := range rel.keyMsg {
		rel.keySchema.Columns = append(rel.keySchema.Columns, s.Columns[rel.out[pos]])
	}
	rel.meta = len(s.Columns)
	s.Columns = append(s.Columns,
		records.Column{Name: CDCOpColumn, Type: codec.ParquetString},
		records.Column{Name: LSNColumn, Type: codec.ParquetInt64},
		records.Column{Name: CDCTimestampColumn, Type: codec.ParquetTimestampTZ},
	)
	rel.schema = s
	return rel, nil
}

// table returns the transaction's changes of a relation's table.
func (d *changeDecoder) table(rel *cdcRelation) *cdcTableTx {
	tt, ok := d.tx.tables[rel.key]
	if !ok {
		tt = &cdcTableTx{rel: rel, tc: &providers.TableChanges{Schema: rel.schema, Rows: records.NewBatch(rel.schema, 1)}}
		d.tx.tables[rel.key] = tt
	}
	return tt
}

func (d *changeDecoder) change(ctx context.Context, op byte, r *walReader, size int) error {
	id := r.u32()
	if r.err != nil {
		return fmt.Errorf("change message: %w", r.err)
	}
	if !d.tx.active {
		return errors.New("pgoutput sent a change outside a transaction")
	}
	rel := d.relations[id]
	if rel == nil {
		return fmt.Errorf("pgoutput sent a change of relation %d before its Relation message", id)
	}
	if d.tx.skip || rel.key == "" {
		return nil
	}
	var err error
	var oldKind byte
	oldTup, newTup := d.oldTup[:0], d.newTup[:0]
	kind := r.u8()
	switch op {
	case 'I':
		if kind != 'N' {
			return fmt.Errorf("insert message with tuple kind %q", kind)
		}
		newTup, err = parseTuple(r, newTup)
	case 'U':
		if kind == 'K' || kind == 'O' {
			oldKind = kind
			if oldTup, err = parseTuple(r, oldTup); err != nil {
				break
			}
			kind = r.u8()
		}
		if kind != 'N' {
			return fmt.Errorf("update message with tuple kind %q", kind)
		}
		newTup, err = parseTuple(r, newTup)
	case 'D':
		if kind != 'K' && kind != 'O' {
			return fmt.Errorf("delete message with tuple kind %q", kind)
		}
		oldKind = kind
		oldTup, err = parseTuple(r, oldTup)
	}
	d.oldTup, d.newTup = oldTup, newTup
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return fmt.Errorf("%s message: %w", opName(op), err)
	}
	n := len(rel.msg.cols)
	if op != 'D' && len(newTup) != n || oldKind != 0 && len(oldTup) != n {
		return fmt.Errorf("%s message for %s with a tuple of %d columns, the relation has %d", opName(op), rel.key, max(len(newTup), len(oldTup)), n)
	}
	tt := d.table(rel)
	switch op {
	case 'D':
		err = d.appendRow(tt, op, oldTup, nil)
	default:
		if oldKind == 0 {
			oldTup = nil
		}
		err = d.appendRow(tt, op, newTup, oldTup)
	}
	if err != nil {
		return err
	}
	if op == 'U' && oldTup != nil && len(rel.keyMsg) > 0 && (oldKind == 'O' || rel.keyOnIdentity) && keyChanged(rel, oldTup, newTup) {
		err = d.appendOldKey(tt, oldTup)
	} else if tt.tc.OldKeys != nil {
		appendNullRow(tt.tc.OldKeys)
	}
	if err != nil {
		return err
	}
	d.tx.bytes += size + 8*len(rel.schema.Columns)
	if d.tx.bytes > d.budget {
		return d.flush(ctx, true)
	}
	return nil
}

func opName(op byte) string {
	switch op {
	case 'I':
		return "insert"
	case 'U':
		return "update"
	}
	return "delete"
}

// effective is the value of column i of a new tuple: an unchanged TOAST
// value is taken from the old tuple when it has it (REPLICA IDENTITY FULL
// logs the old row whole).
func tupleValue(newTup, oldTup []tupleCol, i int) tupleCol {
	c := newTup[i]
	if c.kind == 'u' && oldTup != nil && oldTup[i].kind == 't' {
		return oldTup[i]
	}
	return c
}

// appendRow appends a change to the table's rows: tup's values, then the
// metadata columns.
func (d *changeDecoder) appendRow(tt *cdcTableTx, op byte, tup, oldTup []tupleCol) error {
	rel := tt.rel
	b := tt.tc.Rows
	row := b.N
	for i, o := range rel.out {
		if o < 0 {
			continue
		}
		v := &b.Cols[o]
		c := tupleValue(tup, oldTup, i)
		if err := appendValue(v, rel.decs[i], c, row); err != nil {
			return fmt.Errorf("%s column %s: %w", rel.key, pgx.Identifier{rel.msg.cols[i].name}.Sanitize(), err)
		}
	}
	b.Cols[rel.meta].AppendString(string(op))
	b.Cols[rel.meta+1].AppendInt64(int64(d.tx.lsn))
	b.Cols[rel.meta+2].AppendInt64(d.tx.micros)
	endRow(b)
	return nil
}

// appendValue appends one tuple value to v, which holds row values.
func appendValue(v *records.Vec, dec *codec.TextDecoder, c tupleCol, row int) error {
	switch c.kind {
	case 'n':
		v.AppendNull()
	case 'u':
		v.AppendNull()
		if v.Unchanged == nil {
			v.Unchanged = make([]bool, row, row+1)
		}
		v.Unchanged = append(v.Unchanged, true)
	case 't':
		return dec.Decode(v, c.data)
	default:
		return fmt.Errorf("value of kind %q (binary values are not requested)", c.kind)
	}
	return nil
}

// endRow closes a row: the Unchanged marks of the other columns are
// filled in, and the row counted.
func endRow(b *records.Batch) {
	b.N++
	for i := range b.Cols {
		if v := &b.Cols[i]; v.Unchanged != nil && len(v.Unchanged) < b.N {
			v.Unchanged = append(v.Unchanged, false)
		}
	}
}

// keyChanged reports whether an update's old tuple holds another key
// than its new tuple.
func keyChanged(rel *cdcRelation, oldTup, newTup []tupleCol) bool {
	for _, i := range rel.keyMsg {
		o, n := oldTup[i], tupleValue(newTup, oldTup, i)
		if o.kind != n.kind || !bytes.Equal(o.data, n.data) {
			return true
		}
	}
	return false
}

// appendOldKey records the previous key of the row just appended.
func (d *changeDecoder) appendOldKey(tt *cdcTableTx, oldTup []tupleCol) error {
	rel := tt.rel
	if tt.tc.OldKeys == nil {
		tt.tc.OldKeys = records.NewBatch(rel.keySchema, 8)
		for tt.tc.OldKeys.N < tt.tc.Rows.N-1 {
			appendNullRow(tt.tc.OldKeys)
		}
	}
	b := tt.tc.OldKeys
	for j, i := range rel.keyMsg {
		if err := appendValue(&b.Cols[j], rel.decs[i], oldTup[i], b.N); err != nil {
			return fmt.Errorf("%s old key column %s: %w", rel.key, pgx.Identifier{rel.msg.cols[i].name}.Sanitize(), err)
		}
	}
	endRow(b)
	return nil
}

func appendNullRow(b *records.Batch) {
	for i := range b.Cols {
		b.Cols[i].AppendNull()
	}
	endRow(b)
}

func (d *changeDecoder) truncate(r *walReader) error {
	n := r.u32()
	r.u8() // CASCADE, RESTART IDENTITY
	if r.err != nil {
		return fmt.Errorf("truncate message: %w", r.err)
	}
	if uint64(n)*4 != uint64(len(r.b)) {
		return fmt.Errorf("truncate message of %d relations in %d bytes", n, len(r.b))
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = r.u32()
	}
	if err := r.end(); err != nil {
		return fmt.Errorf("truncate message: %w", err)
	}
	if !d.tx.active {
		return errors.New("pgoutput sent a truncate outside a transaction")
	}
	for _, id := range ids {
		rel := d.relations[id]
		if rel == nil {
			return fmt.Errorf("pgoutput truncated relation %d before its Relation message", id)
		}
		if d.tx.skip || rel.key == "" {
			continue
		}
		tt := d.table(rel)
		// Changes before the truncate are gone with it.
		tt.tc.Truncated = true
		tt.tc.Rows = records.NewBatch(rel.schema, 8)
		tt.tc.OldKeys = nil
	}
	return nil
}
