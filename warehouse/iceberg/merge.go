package iceberg

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	iceberggo "github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// Merge-on-read: a merge (or history) commit writes its rows to new data
// files as they come and, at Commit, one position delete file for the
// rows they replace, both in one RowDelta snapshot:
//
//   - the stored rows of the transaction's keys (found through the key
//     index, index.go), and
//   - the transaction's own earlier rows of a key that came again (a
//     position delete applies to data files of its own snapshot too).
//
// A row with unchanged values (records.Vec.Unchanged) is held back until
// Commit, when the key's previous version (an earlier row of the
// transaction, read back from its file, or the stored row) fills them.
//
// A history commit closes versions instead of replacing them: the
// version a later one ends is deleted by position and written again
// with valid_to set, in the same snapshot.

// merge is the state of a merge or history transaction.
type merge struct {
	keyIdx  []int // the key columns in the batches
	kc      *keyColumns
	keys    map[string]keyState
	deletes []rowRef // the transaction's own rows replaced
	keyBuf  []byte

	// Rows held back for their unchanged values.
	held     *records.Batch
	heldInfo []heldRow

	// History: valid_from, valid_to and the op of the batches, and the
	// own rows to write again closed.
	opIdx, fromIdx, toIdx int
	reclose               []closing
}

// keyState is what the transaction did to one key.
type keyState struct {
	ref      rowRef // its latest written row
	written  bool   // ref is set
	held     int    // its latest row is held back (index into held), or -1
	open     bool   // history: the latest written version is open
	firstRow int64  // history: valid_from of its first version
}

type heldRow struct {
	key        string
	prevRef    rowRef // the previous row was written here
	prevHeld   int    // or held back (-1: neither, the stored row is)
	hasPrev    bool
	superseded bool
}

type closing struct {
	ref rowRef
	at  int64 // valid_to, microseconds
}

func (tx *Tx) initKeys() error {
	keyIdx, err := tx.schema.KeyIndexes()
	if err != nil {
		return err
	}
	if len(keyIdx) == 0 {
		return fmt.Errorf("a merge needs a primary key")
	}
	tx.keyIdx = keyIdx
	tx.keys = map[string]keyState{}
	tx.kc, err = tx.keyColumns()
	if err != nil {
		return err
	}
	if tx.history {
		tx.opIdx = tx.schema.Index(warehouse.HistoryOpColumn)
		tx.fromIdx = tx.schema.Index(warehouse.ValidFromColumn)
		tx.toIdx = tx.schema.Index(warehouse.ValidToColumn)
	}
	return nil
}

// keyColumns is how the table's key is read from its files.
func (tx *Tx) keyColumns() (*keyColumns, error) {
	kc := &keyColumns{schema: &records.Schema{}}
	sc := tx.staged.Schema()
	for i, k := range tx.keyIdx {
		c := tx.schema.Columns[k]
		f, ok := sc.FindFieldByName(c.Name)
		if !ok {
			return nil, fmt.Errorf("key column %q is not in the table", c.Name)
		}
		kc.schema.Columns = append(kc.schema.Columns, c)
		kc.schema.PrimaryKey = append(kc.schema.PrimaryKey, c.Name)
		kc.ids = append(kc.ids, f.ID)
		_ = i
	}
	if len(kc.ids) == 1 {
		p := kc.schema.Columns[0].Type.Physical
		kc.isInt = p == records.PhysicalInt32 || p == records.PhysicalInt64
	}
	if tx.history {
		f, ok := sc.FindFieldByName(warehouse.ValidToColumn)
		if !ok {
			return nil, fmt.Errorf("column %s is not in the table", warehouse.ValidToColumn)
		}
		kc.validTo = f.ID
	}
	return kc, nil
}

// hasUnchanged reports whether row r of b lacks a value.
func hasUnchanged(b *records.Batch, r int) bool {
	for i := range b.Cols {
		if u := b.Cols[i].Unchanged; r < len(u) && u[r] {
			return true
		}
	}
	return false
}

func (tx *Tx) writeMerge(b *records.Batch) error {
	// Rows with unchanged values wait for Commit; the others are written
	// now.
	var heldRows []bool
	out := b
	for r := 0; r < b.N; r++ {
		if hasUnchanged(b, r) {
			if heldRows == nil {
				heldRows = make([]bool, b.N)
			}
			heldRows[r] = true
		}
	}
	if heldRows != nil {
		out = records.NewBatch(b.Schema, b.N)
		if tx.held == nil {
			tx.held = records.NewBatch(b.Schema, 16)
		}
		for r := 0; r < b.N; r++ {
			dst := out
			if heldRows[r] {
				dst = tx.held
			}
			for c := range b.Cols {
				dst.Cols[c].AppendFrom(b.Schema.Columns[c].Type, &b.Cols[c], r)
				if heldRows[r] {
					u := b.Cols[c].Unchanged
					dv := &dst.Cols[c]
					for len(dv.Unchanged) < dst.N {
						dv.Unchanged = append(dv.Unchanged, false)
					}
					dv.Unchanged = append(dv.Unchanged, r < len(u) && u[r])
				}
			}
			dst.N++
		}
	}
	var at placement
	if out.N > 0 {
		var err error
		if at, err = tx.writeRows(out); err != nil {
			return err
		}
	}
	j := 0 // the row's index among those written
	for r := 0; r < b.N; r++ {
		tx.keyBuf = b.AppendKey(tx.keyBuf[:0], r, tx.keyIdx)
		st, seen := tx.keys[string(tx.keyBuf)]
		if !seen {
			st.held = -1
		}
		if heldRows != nil && heldRows[r] {
			h := heldRow{key: string(tx.keyBuf), prevHeld: -1}
			switch {
			case st.held >= 0:
				h.prevHeld, h.hasPrev = st.held, true
				tx.heldInfo[st.held].superseded = true
			case st.written:
				h.prevRef, h.hasPrev = st.ref, true
				tx.deletes = append(tx.deletes, st.ref)
				st.written = false
			}
			st.held = len(tx.heldInfo)
			tx.heldInfo = append(tx.heldInfo, h)
		} else {
			if st.held >= 0 {
				tx.heldInfo[st.held].superseded = true
				st.held = -1
			}
			if st.written {
				tx.deletes = append(tx.deletes, st.ref)
			}
			st.ref, st.written = at.ref(j), true
			j++
		}
		tx.keys[string(tx.keyBuf)] = st
	}
	return nil
}

// resolveHeld fills the held rows' unchanged values from their keys'
// previous versions and writes those still the latest of their key.
func (tx *Tx) resolveHeld(ctx context.Context) error {
	if len(tx.heldInfo) == 0 {
		return nil
	}
	if err := tx.dw.closeFile(); err != nil {
		return err
	}
	fs, err := tx.staged.FS(ctx)
	if err != nil {
		return err
	}
	ids := tx.fieldIDs(tx.schema)
	// The previous versions in the transaction's own files.
	own := records.NewBatch(tx.schema, 16)
	ownRow := map[rowRef]int{}
	var refs []rowRef
	var storedKeys [][]byte
	for _, h := range tx.heldInfo {
		switch {
		case h.hasPrev && h.prevHeld < 0:
			refs = append(refs, h.prevRef)
		case !h.hasPrev:
			storedKeys = append(storedKeys, []byte(h.key))
		}
	}
	if err := readRefs(ctx, fs, refs, own, ids, ownRow); err != nil {
		return err
	}
	// The stored versions.
	stored := records.NewBatch(tx.schema, 16)
	storedRow := map[string]int{}
	if err := tx.readStored(ctx, storedKeys, stored, storedRow); err != nil {
		return err
	}
	resolved := records.NewBatch(tx.schema, len(tx.heldInfo))
	for i, h := range tx.heldInfo {
		var src *records.Batch
		sr := -1
		switch {
		case h.hasPrev && h.prevHeld >= 0:
			src, sr = resolved, h.prevHeld
		case h.hasPrev:
			if r, ok := ownRow[h.prevRef]; ok {
				src, sr = own, r
			}
		default:
			if r, ok := storedRow[h.key]; ok {
				src, sr = stored, r
			}
		}
		for c := range resolved.Cols {
			typ := tx.schema.Columns[c].Type
			if u := tx.held.Cols[c].Unchanged; i < len(u) && u[i] {
				if src != nil {
					resolved.Cols[c].AppendFrom(typ, &src.Cols[c], sr)
				} else {
					resolved.Cols[c].AppendNull()
				}
				continue
			}
			resolved.Cols[c].AppendFrom(typ, &tx.held.Cols[c], i)
		}
		resolved.N++
	}
	latest := records.NewBatch(tx.schema, len(tx.heldInfo))
	for i, h := range tx.heldInfo {
		if h.superseded {
			continue
		}
		for c := range latest.Cols {
			latest.Cols[c].AppendFrom(tx.schema.Columns[c].Type, &resolved.Cols[c], i)
		}
		latest.N++
	}
	if latest.N > 0 {
		if _, err := tx.writeRows(latest); err != nil {
			return err
		}
	}
	tx.held, tx.heldInfo = nil, nil
	return nil
}

// fieldIDs is the table's field id of each column of s (0: none).
func (tx *Tx) fieldIDs(s *records.Schema) []int {
	sc := tx.staged.Schema()
	ids := make([]int, len(s.Columns))
	for i, c := range s.Columns {
		if f, ok := sc.FindFieldByName(c.Name); ok {
			ids[i] = f.ID
		}
	}
	return ids
}

// readRefs reads the rows refs into dst, noting each one's row in at.
func readRefs(ctx context.Context, fs iceio.IO, refs []rowRef, dst *records.Batch, ids []int, at map[rowRef]int) error {
	refs = slices.Clone(refs)
	slices.SortFunc(refs, compareRef)
	refs = slices.CompactFunc(refs, func(a, b rowRef) bool { return compareRef(a, b) == 0 })
	for len(refs) > 0 {
		n := 1
		for n < len(refs) && refs[n].path == refs[0].path {
			n++
		}
		positions := make([]int64, n)
		for i, r := range refs[:n] {
			positions[i] = r.pos
		}
		first := dst.N
		if err := readRows(ctx, fs, refs[0].path, positions, dst, ids); err != nil {
			return err
		}
		for i, r := range refs[:n] {
			at[r] = first + i
		}
		refs = refs[n:]
	}
	return nil
}

// readStored reads the stored (live; for a history table the current)
// rows of keys (encoded) into dst, noting each key's row in at.
func (tx *Tx) readStored(ctx context.Context, keys [][]byte, dst *records.Batch, at map[string]int) error {
	if len(keys) == 0 {
		return nil
	}
	keys = sortedKeys(keys)
	var refs []rowRef
	keyOf := map[rowRef]string{}
	err := tx.t.findRows(ctx, tx.t.tbl, tx.kc, keys, false, func(f found) error {
		refs = append(refs, f.ref)
		keyOf[f.ref] = string(f.key)
		return nil
	})
	if err != nil {
		return err
	}
	fs, err := tx.staged.FS(ctx)
	if err != nil {
		return err
	}
	rowOf := map[rowRef]int{}
	if err := readRefs(ctx, fs, refs, dst, tx.fieldIDs(dst.Schema), rowOf); err != nil {
		return err
	}
	for ref, row := range rowOf {
		at[keyOf[ref]] = row
	}
	return nil
}

func sortedKeys(keys [][]byte) [][]byte {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, bytes.Compare)
	return slices.CompactFunc(keys, bytes.Equal)
}

func (tx *Tx) writeHistory(b *records.Batch) error {
	// valid_to as the commit writes it: a delete's own version is closed
	// at once, the others are open.
	to := records.Vec{I64: make([]int64, 0, b.N)}
	from := &b.Cols[tx.fromIdx]
	ops := &b.Cols[tx.opIdx]
	for r := 0; r < b.N; r++ {
		if isDelete(ops, r) && !from.IsNull(r) {
			to.AppendInt64(from.I64[r])
		} else {
			to.AppendNull()
		}
	}
	out := *b
	out.Cols = slices.Clone(b.Cols)
	out.Cols[tx.toIdx] = to
	at, err := tx.writeRows(&out)
	if err != nil {
		return err
	}
	for r := 0; r < b.N; r++ {
		tx.keyBuf = b.AppendKey(tx.keyBuf[:0], r, tx.keyIdx)
		vf := int64(0)
		if !from.IsNull(r) {
			vf = from.I64[r]
		}
		st, seen := tx.keys[string(tx.keyBuf)]
		if !seen {
			st.firstRow = vf
		} else if st.open {
			// This version ends the key's previous one, written by this
			// transaction: write it again closed.
			tx.reclose = append(tx.reclose, closing{ref: st.ref, at: vf})
			tx.deletes = append(tx.deletes, st.ref)
		}
		st.ref, st.written, st.open = at.ref(r), true, !isDelete(ops, r)
		tx.keys[string(tx.keyBuf)] = st
	}
	return nil
}

func isDelete(ops *records.Vec, r int) bool {
	v := ops.Bytes(r)
	return len(v) > 0 && v[0] == 'D'
}

// commitDelta stages a merge or history commit: the data files written,
// the rows they replace or close deleted by position, one snapshot.
func (tx *Tx) commitDelta(ctx context.Context, props iceberggo.Properties) error {
	if err := tx.resolveHeld(ctx); err != nil {
		return err
	}
	keys := make([][]byte, 0, len(tx.keys))
	for k := range tx.keys {
		keys = append(keys, []byte(k))
	}
	keys = sortedKeys(keys)
	deletes := tx.deletes
	if tx.history {
		var closes []closing
		if !tx.closeAllAt.IsZero() {
			at := tx.closeAllAt.UnixMicro()
			err := tx.t.findRows(ctx, tx.t.tbl, tx.kc, nil, true, func(f found) error {
				closes = append(closes, closing{ref: f.ref, at: at})
				return nil
			})
			if err != nil {
				return fmt.Errorf("finding the current versions: %w", err)
			}
		} else {
			err := tx.t.findRows(ctx, tx.t.tbl, tx.kc, keys, false, func(f found) error {
				closes = append(closes, closing{ref: f.ref, at: tx.keys[string(f.key)].firstRow})
				return nil
			})
			if err != nil {
				return fmt.Errorf("finding the current versions: %w", err)
			}
		}
		for _, c := range closes {
			deletes = append(deletes, c.ref)
		}
		if err := tx.writeClosed(ctx, append(closes, tx.reclose...)); err != nil {
			return err
		}
	} else {
		err := tx.t.findRows(ctx, tx.t.tbl, tx.kc, keys, false, func(f found) error {
			deletes = append(deletes, f.ref)
			return nil
		})
		if err != nil {
			return fmt.Errorf("finding the stored rows of the keys: %w", err)
		}
	}
	if err := tx.dw.closeFile(); err != nil {
		return err
	}
	stage(stageData)
	dels, refs, err := tx.dw.writePositionDeletes(deletes)
	if err != nil {
		return err
	}
	tx.deleted = refs
	for _, d := range dels {
		tx.delFiles = append(tx.delFiles, d.path)
	}
	stage(stageDeletes)
	added := tx.dw.dataFiles()
	if len(added) == 0 && len(dels) == 0 {
		return emptyCommit(ctx, tx.txn, tx.asc, props)
	}
	rd := tx.txn.NewRowDelta(props)
	rd.AddRows(added...)
	for _, d := range dels {
		rd.AddDeletes(d.df)
	}
	return rd.Commit(ctx)
}

// writeClosed writes again, with valid_to set, the versions closes ends
// (their old rows are deleted by position in the same commit).
func (tx *Tx) writeClosed(ctx context.Context, closes []closing) error {
	if len(closes) == 0 {
		return nil
	}
	if err := tx.dw.closeFile(); err != nil {
		return err
	}
	fs, err := tx.staged.FS(ctx)
	if err != nil {
		return err
	}
	// Every column of the table, so that columns the source dropped keep
	// their values.
	s := tx.rec
	toIdx := s.Index(warehouse.ValidToColumn)
	const chunk = 16 << 10
	for start := 0; start < len(closes); start += chunk {
		part := closes[start:min(start+chunk, len(closes))]
		refs := make([]rowRef, len(part))
		for i, c := range part {
			refs[i] = c.ref
		}
		b := records.NewBatch(s, len(part))
		at := map[rowRef]int{}
		if err := readRefs(ctx, fs, refs, b, tx.fieldIDs(s), at); err != nil {
			return fmt.Errorf("reading the versions to close: %w", err)
		}
		closeAt := make([]int64, b.N)
		for _, c := range part {
			closeAt[at[c.ref]] = c.at
		}
		b.Cols[toIdx] = records.Vec{I64: closeAt}
		if _, err := tx.writeRows(b); err != nil {
			return err
		}
	}
	return nil
}
