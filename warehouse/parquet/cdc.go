package parquet

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// This file holds what CDC tables need beyond Replace, Merge and Append:
// history tables whose versions are closed by later changes, and lookups
// of the stored version of given keys.
//
// # History tables
//
// A history table (SPEC §4, <prefix>_<table>_cdc) holds one row per
// version of a source row: valid_from is when the version began, valid_to
// when a later change (or the row's delete) ended it, NULL while it is
// current. A delete's own row (_sluice_cdc_op = 'D') is closed at once
// (valid_to = valid_from), so that `WHERE valid_to IS NULL` is exactly the
// live rows and a point-in-time query
// `valid_from <= T AND (valid_to IS NULL OR valid_to > T)` sees a deleted
// row nowhere after its delete.
//
// Closing a version rewrites the file holding it, so the table keeps its
// versions apart: current versions live in files of hash buckets, as a
// merged table's rows do (at most one per key), and closed versions in
// unbucketed files (FileInfo.Bucket -1) that are never rewritten again. A
// history commit (BeginHistory) works bucket by bucket like a merge: for
// each bucket with incoming keys, the current files holding one of them
// are rewritten, their versions of those keys moved to this commit's
// closed file with valid_to set; the incoming versions go to the bucket's
// new current file, or straight to the closed file when a later incoming
// version (or their own delete) closes them. So a commit costs what a
// merge of the same keys into a table of the current rows costs, plus
// writing the versions it closed; the closed versions, which grow without
// bound, are only ever appended. A commit folds the small closed files of
// earlier commits into its own once there are many, as merges do with a
// bucket's small files.

// The columns of a history table that the history commit reads and sets;
// the runner builds them (SPEC §4).
const (
	HistoryOpColumn = warehouse.HistoryOpColumn
	ValidFromColumn = warehouse.ValidFromColumn
	ValidToColumn   = warehouse.ValidToColumn
)

// historyDeleteOp is the _sluice_cdc_op of a delete.
var historyDeleteOp = []byte("D")

// historySpec says how a merge transaction writes a history table.
type historySpec struct {
	op, from, to int // positions in the transaction's table schema
	// closeAll closes every current version at closeAt (µs since 1970)
	// before the incoming versions: a TRUNCATE, or a resync whose snapshot
	// becomes the new current versions.
	closeAll bool
	closeAt  int64
}

// BeginHistory starts a transaction adding versions to a history table.
// schema must hold the columns HistoryOpColumn (STRING), ValidFromColumn
// and ValidToColumn (TIMESTAMP) and the source table's primary key; the
// incoming rows' valid_to is ignored (the commit sets it). Rows arrive in
// change order; each closes the key's previous version at its valid_from.
// A non-zero closeAllAt closes every current version at that time first.
//
// The table must be written only by history transactions: their layout
// (current versions bucketed, closed ones not) is what makes a commit cost
// no more than a merge.
//
// BeginHistory is warehouse.HistoryTable's: BeginHistoryTx with the sync
// type recorded in the manifest.
func (t *Table) BeginHistory(ctx context.Context, schema *records.Schema, sync string, closeAllAt time.Time) (warehouse.Tx, error) {
	tx, err := t.BeginHistoryTx(ctx, schema, closeAllAt, WithSyncMode(sync))
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// BeginHistoryTx is BeginHistory with the transaction's options.
func (t *Table) BeginHistoryTx(ctx context.Context, schema *records.Schema, closeAllAt time.Time, opts ...Option) (*Tx, error) {
	if err := warehouse.CheckHistorySchema(schema); err != nil {
		return nil, fmt.Errorf("beginning a write to history table %s: %w", t.name, err)
	}
	if !closeAllAt.IsZero() {
		// A resync closes every current version: it may start a damaged
		// history anew from the files that survive.
		opts = append(slices.Clone(opts), func(o *txOptions) { o.repair = true })
	}
	tx, err := t.BeginTx(ctx, warehouse.Merge, schema, opts...)
	if err != nil {
		return nil, err
	}
	s := tx.cols.schema
	h := &historySpec{op: s.Index(HistoryOpColumn), from: s.Index(ValidFromColumn), to: s.Index(ValidToColumn)}
	if !closeAllAt.IsZero() {
		h.closeAll, h.closeAt = true, closeAllAt.UTC().UnixMicro()
	}
	tx.merge.history = h
	return tx, nil
}

// commitHistory is the commit of a history transaction: mergeState.commit
// with versions closed instead of replaced. It returns the new version's
// files and bucket count.
func (ms *mergeState) commitHistory() ([]FileInfo, int, error) {
	tx := ms.tx
	base := tx.base
	old := base.Buckets
	if base.KeyHash != keyHashName {
		old = 0
	}
	current := make([][]FileInfo, max(old, 1))
	var closed, unknown []FileInfo
	var currentRows int64
	for _, f := range base.Files {
		switch {
		case old > 0 && f.Bucket >= 0 && f.Bucket < old:
			current[f.Bucket] = append(current[f.Bucket], f)
			currentRows += f.Rows
		case old > 0 && f.Bucket < 0:
			closed = append(closed, f)
		default:
			// Not this layout (written before the table had buckets):
			// every row is sorted out by its valid_to.
			unknown = append(unknown, f)
		}
	}
	rows := max(tx.opts.expectedRows, currentRows+ms.incoming)
	bucketRows := tx.t.w.lim.bucketRows
	buckets := old
	switch {
	case old == 0:
		buckets = chooseBuckets(rows, bucketRows, ms.parts)
	case old < maxBuckets && rows > 4*int64(old)*bucketRows:
		buckets = max(old, chooseBuckets(rows, bucketRows, maxBuckets))
	}
	closedOut := newOutput(tx.stage, tx.version, -1, tx.cols, tx.t.w.lim)
	tx.outs = append(tx.outs, closedOut) // so that Abort removes it
	var files []FileInfo
	for b := range buckets {
		cur, sources := current[b%len(current)], unknown
		if buckets != old {
			cur, sources = nil, append(slices.Clone(unknown), current[b%len(current)]...)
			if old == 0 {
				sources = unknown
			}
		}
		fs, err := ms.historyBucket(b, buckets, cur, sources, closedOut)
		if err != nil {
			return nil, 0, err
		}
		files = append(files, fs...)
	}
	// Closed files are final; the small ones (one per commit) are folded
	// into this commit's once there are many, and all are rewritten when
	// the schema gained a column.
	keep := closed
	var fold []FileInfo
	if tx.rewriteAll {
		keep, fold = nil, closed
	} else {
		for _, f := range closed {
			if f.Rows < tx.t.w.lim.fileRows/4 {
				fold = append(fold, f)
			}
		}
		if len(fold) >= maxSmallFiles {
			keep = slices.DeleteFunc(slices.Clone(closed), func(f FileInfo) bool { return f.Rows < tx.t.w.lim.fileRows/4 })
		} else {
			fold = nil
		}
	}
	for _, f := range fold {
		if err := tx.forEachRowGroup(f, nil, func(b *records.Batch) error { return closedOut.write(b, nil) }); err != nil {
			return nil, 0, err
		}
	}
	written, err := closedOut.close()
	if err != nil {
		return nil, 0, err
	}
	files = append(files, keep...)
	return append(files, written...), buckets, nil
}

// historyBucket writes bucket b of a history commit: cur are its current
// files (kept unless they hold a version this commit closes), sources
// files whose rows of bucket b are all sorted out again. Versions closed
// go to closedOut.
func (ms *mergeState) historyBucket(b, buckets int, cur, sources []FileInfo, closedOut *output) ([]FileInfo, error) {
	tx := ms.tx
	h := ms.history
	keyCols := tx.cols.keyCols
	mask := uint64(buckets - 1)

	// The incoming versions of the bucket, in change order: when each
	// begins, whether it is a delete, and which later version (if any)
	// closes it; and for each key its first version, which closes the
	// stored one.
	var first, last keySet
	var from []int64
	var next []int32
	var del []bool
	err := ms.forEachIncoming(b, buckets, func(batch *records.Batch, rows []int32) error {
		for _, r := range rows {
			ms.keyBuf = batch.AppendKey(ms.keyBuf[:0], int(r), keyCols)
			hash := records.KeyHash(ms.keyBuf)
			if int(hash&mask) != b {
				continue
			}
			s := int64(len(from))
			from = append(from, batch.Cols[h.from].I64[r])
			del = append(del, bytes.Equal(batch.Cols[h.op].Bytes(int(r)), historyDeleteOp))
			next = append(next, -1)
			if p, ok := last.get(ms.keyBuf, hash); ok {
				next[p] = int32(s)
			} else {
				first.put(ms.keyBuf, hash, s)
			}
			last.put(ms.keyBuf, hash, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if first.len() == 0 && !h.closeAll && !tx.rewriteAll && len(sources) == 0 {
		return cur, nil
	}

	// The current files to rewrite: those holding a key this commit
	// closes (all of them when it closes everything or the schema grew),
	// and the small ones once there are many.
	rewrite, keep, err := ms.splitFiles(cur, &first, h.closeAll || tx.rewriteAll)
	if err != nil {
		return nil, err
	}

	out := newOutput(tx.stage, tx.version, b, tx.cols, tx.t.w.lim)
	tx.outs = append(tx.outs, out) // so that Abort removes it
	// Never nil: an output writes every row for a nil selection.
	open, shut := make([]int32, 0, 1024), make([]int32, 0, 1024)
	carry := func(f FileInfo, filterBucket bool) error {
		return tx.forEachRowGroup(f, nil, func(batch *records.Batch) error {
			open, shut = open[:0], shut[:0]
			to := &batch.Cols[h.to]
			for r := range batch.N {
				ms.keyBuf = batch.AppendKey(ms.keyBuf[:0], r, keyCols)
				hash := records.KeyHash(ms.keyBuf)
				if filterBucket && int(hash&mask) != b {
					continue
				}
				switch s, ok := first.get(ms.keyBuf, hash); {
				case !to.IsNull(r):
					shut = append(shut, int32(r)) // closed before (another layout)
				case h.closeAll:
					setInt64(to, r, h.closeAt)
					shut = append(shut, int32(r))
				case ok:
					setInt64(to, r, from[s])
					shut = append(shut, int32(r))
				default:
					open = append(open, int32(r))
				}
			}
			if err := out.write(batch, open); err != nil {
				return err
			}
			return closedOut.write(batch, shut)
		})
	}
	for _, f := range rewrite {
		if err := carry(f, false); err != nil {
			return nil, err
		}
	}
	for _, f := range sources {
		if err := carry(f, true); err != nil {
			return nil, err
		}
	}
	var s int64
	err = ms.forEachIncoming(b, buckets, func(batch *records.Batch, rows []int32) error {
		open, shut = open[:0], shut[:0]
		to := &batch.Cols[h.to]
		for _, r := range rows {
			ms.keyBuf = batch.AppendKey(ms.keyBuf[:0], int(r), keyCols)
			if int(records.KeyHash(ms.keyBuf)&mask) != b {
				continue
			}
			switch {
			case del[s]:
				setInt64(to, int(r), from[s])
				shut = append(shut, r)
			case next[s] >= 0:
				setInt64(to, int(r), from[next[s]])
				shut = append(shut, r)
			default:
				setNull(to, int(r))
				open = append(open, r)
			}
			s++
		}
		if err := out.write(batch, open); err != nil {
			return err
		}
		return closedOut.write(batch, shut)
	})
	if err != nil {
		return nil, err
	}
	written, err := out.close()
	if err != nil {
		return nil, err
	}
	return append(keep, written...), nil
}

// setInt64 sets value r of an INT64 vector (which holds a slot for every
// row, null or not).
func setInt64(v *records.Vec, r int, x int64) {
	if v.Valid != nil {
		v.Valid[r] = true
	}
	v.I64[r] = x
}

// setNull makes value r of a vector null.
func setNull(v *records.Vec, r int) {
	if v.Valid == nil {
		v.Valid = make([]bool, v.Len())
		for i := range v.Valid {
			v.Valid[i] = true
		}
	}
	v.Valid[r] = false
}

// Lookup calls fn with the committed rows whose primary key is one of
// the keys in keys, a batch of the table's key columns (same names and
// types, in key order); fn may be called several times, each time with a
// batch (reused afterwards) and the rows of it that match. With current
// set, the closed versions of a history table are not read. It reads only
// the files whose bucket and key range may hold a key, and of those only
// the row groups that hold one (probed by their key columns first). A
// cancelled ctx stops it between files.
func (t *Table) Lookup(ctx context.Context, keys *records.Batch, current bool, fn func(b *records.Batch, rows []int32) error) error {
	if keys == nil || keys.N == 0 {
		return nil
	}
	m, err := readManifest(t.dir)
	if err != nil {
		return fmt.Errorf("looking up rows of table %s: %w", t.name, err)
	}
	if m.Version == 0 || len(m.Files) == 0 {
		return nil
	}
	schema := m.Schema.Records()
	keyCols, err := schema.KeyIndexes()
	if err != nil || len(keyCols) == 0 {
		return fmt.Errorf("looking up rows of table %s: the table has no primary key", t.name)
	}
	if len(keys.Schema.Columns) != len(keyCols) {
		return fmt.Errorf("looking up rows of table %s: %d key columns given for a key of %d", t.name, len(keys.Schema.Columns), len(keyCols))
	}
	inCols := make([]int, len(keyCols))
	for i, k := range keyCols {
		c, in := schema.Columns[k], keys.Schema.Columns[i]
		if c.Name != in.Name || !sameType(c.Type, in.Type) {
			return fmt.Errorf("looking up rows of table %s: key column %d is %q %s, not %q %s", t.name, i, in.Name, describe(in.Type), c.Name, describe(c.Type))
		}
		inCols[i] = i
	}
	bucketed := m.Buckets > 0 && m.KeyHash == keyHashName
	var set keySet
	byBucket := make([][][]byte, max(m.Buckets, 1))
	var buf []byte
	for r := range keys.N {
		buf = keys.AppendKey(buf[:0], r, inCols)
		h := records.KeyHash(buf)
		if _, ok := set.get(buf, h); ok {
			continue
		}
		set.put(buf, h, int64(r))
		b := 0
		if bucketed {
			b = int(h & uint64(m.Buckets-1))
		}
		byBucket[b] = append(byBucket[b], bytes.Clone(buf))
	}
	all := set.sorted()
	for i := range byBucket {
		slices.SortFunc(byBucket[i], bytes.Compare)
	}
	for _, f := range m.Files {
		cand := all
		if bucketed {
			if f.Bucket < 0 && current {
				continue
			}
			if f.Bucket >= 0 && f.Bucket < m.Buckets {
				cand = byBucket[f.Bucket]
			}
		}
		if !anyWithin(cand, f.KeyMin, f.KeyMax) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("looking up rows of table %s: %w", t.name, err)
		}
		if err := lookupFile(t.dir, f.Name, schema, keyCols, &set, fn); err != nil {
			return fmt.Errorf("looking up rows of table %s: %w", t.name, err)
		}
	}
	return nil
}

// lookupFile calls fn with the rows of one file whose key is in set, a
// row group at a time.
func lookupFile(dir, name string, schema *records.Schema, keyCols []int, set *keySet, fn func(*records.Batch, []int32) error) error {
	r, err := openListed(dir, name, schema)
	if err != nil {
		return err
	}
	defer r.close()
	keysOnly := records.NewBatch(schema, 0)
	full := records.NewBatch(schema, 0)
	var buf []byte
	var sel []int32
	for g := range r.numRowGroups() {
		if err := r.readRowGroup(g, keysOnly, keyCols); err != nil {
			return err
		}
		sel = sel[:0]
		for row := range keysOnly.N {
			buf = keysOnly.AppendKey(buf[:0], row, keyCols)
			if _, ok := set.get(buf, records.KeyHash(buf)); ok {
				sel = append(sel, int32(row))
			}
		}
		if len(sel) == 0 {
			continue
		}
		if err := r.readRowGroup(g, full, nil); err != nil {
			return err
		}
		if err := fn(full, sel); err != nil {
			return err
		}
	}
	return nil
}
