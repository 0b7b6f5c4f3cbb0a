package parquet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/sluice-dev/sluice/internal/records"
)

// spillParts is the number of partitions incoming merge rows are grouped
// in when the table has no buckets yet; the bucket count chosen at commit
// divides it, so that every partition falls in one bucket.
const spillParts = maxBuckets

// maxSmallFiles bounds the small files of a bucket (under a quarter of the
// file size limit): merges that only insert add a small file each (nothing
// is rewritten), and once a bucket has this many, the next merge touching
// it rewrites them into its new file.
const maxSmallFiles = 8

// mergeState holds the incoming rows of a Merge until Commit: in memory up
// to a limit (copied batches and, per partition, which of their rows fall
// in it), then spilled to one Parquet file per partition under
// _sluice/spill-<version>-<random>/. The rows of one partition keep their
// arrival order (memory after spill files), which is all "last row of a key
// wins" needs: a key always falls in the same partition.
type mergeState struct {
	tx       *Tx
	parts    int
	mem      []*records.Batch
	memBytes int64
	memRows  [][]rowRef // per partition
	spills   [][]string // per partition, in order
	spillDir string
	incoming int64 // rows written
	keyBuf   []byte
	// history, when set, makes this the commit of a history table
	// (BeginHistory, cdc.go): versions are closed, not replaced.
	history *historySpec
}

type rowRef struct{ batch, row int32 }

func newMergeState(tx *Tx) *mergeState {
	parts := spillParts
	if tx.base.Buckets > 0 && tx.base.KeyHash == keyHashName {
		parts = tx.base.Buckets
	}
	return &mergeState{tx: tx, parts: parts, memRows: make([][]rowRef, parts), spills: make([][]string, parts)}
}

func (ms *mergeState) add(view *records.Batch) error {
	b := copyBatch(view)
	bi := int32(len(ms.mem))
	ms.mem = append(ms.mem, b)
	ms.memBytes += batchBytes(b)
	ms.incoming += int64(b.N)
	mask := uint64(ms.parts - 1)
	for r := range b.N {
		ms.keyBuf = b.AppendKey(ms.keyBuf[:0], r, ms.tx.cols.keyCols)
		p := records.KeyHash(ms.keyBuf) & mask
		ms.memRows[p] = append(ms.memRows[p], rowRef{bi, int32(r)})
	}
	if ms.memBytes > ms.tx.t.w.spillB {
		return ms.spill()
	}
	return nil
}

// spill writes the in-memory rows to one file per partition, one file at a
// time (a single writer's memory), and forgets them.
func (ms *mergeState) spill() error {
	if ms.spillDir == "" {
		ms.spillDir = filepath.Join(ms.tx.t.dir, metaDir, fmt.Sprintf("%s%d-%s", spillPrefix, ms.tx.version, randomHex(4)))
		if err := os.Mkdir(ms.spillDir, 0o755); err != nil {
			return fmt.Errorf("spilling merge rows: %w", err)
		}
	}
	lim := ms.tx.t.w.lim
	lim.fileRows, lim.fileBytes = 1<<62, 1<<62 // one file per partition and spill
	for p, refs := range ms.memRows {
		if len(refs) == 0 {
			continue
		}
		path := filepath.Join(ms.spillDir, fmt.Sprintf("p%d-%d.parquet", p, len(ms.spills[p])))
		fw, err := createFile(path, ms.tx.cols, lim)
		if err != nil {
			return fmt.Errorf("spilling merge rows: %w", err)
		}
		fw.temporary = true
		ms.spills[p] = append(ms.spills[p], path)
		err = forEachRun(refs, func(bi int32, rows []int32) error {
			if err := fw.write(ms.mem[bi], rows); err != nil {
				return err
			}
			if fw.rgRows >= lim.rowGroupRows {
				return fw.flushRowGroup()
			}
			return nil
		})
		if err == nil {
			_, err = fw.close()
		}
		if err != nil {
			fw.discard()
			return fmt.Errorf("spilling merge rows: %w", err)
		}
		ms.memRows[p] = refs[:0]
	}
	ms.mem, ms.memBytes = nil, 0
	return nil
}

// forEachRun calls fn with the rows of refs grouped by batch, in order.
func forEachRun(refs []rowRef, fn func(batch int32, rows []int32) error) error {
	rows := make([]int32, 0, min(len(refs), 64*1024))
	for i := 0; i < len(refs); {
		bi := refs[i].batch
		rows = rows[:0]
		for ; i < len(refs) && refs[i].batch == bi; i++ {
			rows = append(rows, refs[i].row)
		}
		if err := fn(bi, rows); err != nil {
			return err
		}
	}
	return nil
}

// forEachIncoming calls fn with the incoming rows of the partitions that
// may hold rows of bucket b (of buckets), in arrival order per partition.
// A partition holds the rows whose key hash is p modulo the partition
// count, a bucket those whose hash is b modulo the bucket count (both
// powers of two): with no more buckets than partitions, the partitions
// p ≡ b hold exactly bucket b's rows; with more, partition b mod parts
// also holds other buckets' rows, which the caller skips.
func (ms *mergeState) forEachIncoming(b, buckets int, fn func(batch *records.Batch, rows []int32) error) error {
	step := min(buckets, ms.parts)
	for p := b % step; p < ms.parts; p += step {
		for _, path := range ms.spills[p] {
			r, err := openFile(path, ms.tx.cols.schema)
			if err != nil {
				return err
			}
			batch := records.NewBatch(ms.tx.cols.schema, 0)
			for g := range r.numRowGroups() {
				if err = r.readRowGroup(g, batch, nil); err != nil {
					break
				}
				if err = fn(batch, identity(batch.N)); err != nil {
					break
				}
			}
			r.close()
			if err != nil {
				return err
			}
		}
		err := forEachRun(ms.memRows[p], func(bi int32, rows []int32) error { return fn(ms.mem[bi], rows) })
		if err != nil {
			return err
		}
	}
	return nil
}

// commit merges the incoming rows into the table, bucket by bucket, and
// returns the new version's files and bucket count.
//
// For each bucket with incoming rows: the keys of its incoming rows are
// collected (with the position of each key's last row); its files whose
// key range may hold one of them are probed (key columns only), and those
// that do hold one are rewritten without those rows; the bucket's new file
// gets the surviving rows of the rewritten files and the last incoming row
// of each key. Files of other buckets, and files that hold none of the
// keys, are kept as they are.
//
// The table is redistributed instead (each file read once, every row
// written to its bucket's new file) when its files are not all in buckets
// (written by Append, before the table had a key, or by another key hash),
// and when it outgrew its buckets (four times the rows they were chosen
// for): then each old bucket is split into the new buckets that take its
// rows.
func (ms *mergeState) commit() ([]FileInfo, int, error) {
	if ms.history != nil {
		return ms.commitHistory()
	}
	tx := ms.tx
	base := tx.base
	bucketRows := tx.t.w.lim.bucketRows
	rows := max(tx.opts.expectedRows, base.Rows+ms.incoming)
	old := base.Buckets
	if base.KeyHash != keyHashName {
		old = 0
	}
	byBucket := make([][]FileInfo, max(old, 1))
	unbucketed := false
	for _, f := range base.Files {
		if old == 0 || f.Bucket < 0 || f.Bucket >= old {
			unbucketed = true
			break
		}
		byBucket[f.Bucket] = append(byBucket[f.Bucket], f)
	}
	buckets := old
	switch {
	case old == 0:
		buckets = chooseBuckets(rows, bucketRows, ms.parts)
	case old < maxBuckets && rows > 4*int64(old)*bucketRows:
		buckets = max(old, chooseBuckets(rows, bucketRows, maxBuckets))
	}
	var files []FileInfo
	if buckets == old && !unbucketed {
		for b := range buckets {
			fs, err := ms.mergeBucket(b, buckets, byBucket[b])
			if err != nil {
				return nil, 0, err
			}
			files = append(files, fs...)
		}
		return files, buckets, nil
	}
	// Redistribute: by old bucket when all files have one, else the whole
	// table at once.
	groups, sources := old, byBucket
	if unbucketed || old == 0 {
		groups, sources = 1, [][]FileInfo{base.Files}
	}
	for g := range groups {
		var members []int
		for b := g; b < buckets; b += groups {
			members = append(members, b)
		}
		fs, err := ms.splitGroup(members, buckets, sources[g])
		if err != nil {
			return nil, 0, err
		}
		files = append(files, fs...)
	}
	return files, buckets, nil
}

// incomingKeys collects the keys of bucket b's incoming rows, each with
// the sequence number of its last row.
func (ms *mergeState) incomingKeys(b, buckets int) (*keySet, error) {
	mask := uint64(buckets - 1)
	keyCols := ms.tx.cols.keyCols
	keys := &keySet{}
	var seq int64
	err := ms.forEachIncoming(b, buckets, func(batch *records.Batch, rows []int32) error {
		for _, r := range rows {
			ms.keyBuf = batch.AppendKey(ms.keyBuf[:0], int(r), keyCols)
			h := records.KeyHash(ms.keyBuf)
			if int(h&mask) != b {
				continue
			}
			keys.put(ms.keyBuf, h, seq)
			seq++
		}
		return nil
	})
	return keys, err
}

// writeIncoming writes the last incoming row of each key of bucket b.
func (ms *mergeState) writeIncoming(b, buckets int, keys *keySet, out *output) error {
	mask := uint64(buckets - 1)
	keyCols := ms.tx.cols.keyCols
	var seq int64
	sel := make([]int32, 0, 1024)
	return ms.forEachIncoming(b, buckets, func(batch *records.Batch, rows []int32) error {
		sel = sel[:0]
		for _, r := range rows {
			ms.keyBuf = batch.AppendKey(ms.keyBuf[:0], int(r), keyCols)
			h := records.KeyHash(ms.keyBuf)
			if int(h&mask) != b {
				continue
			}
			if last, _ := keys.get(ms.keyBuf, h); last == seq {
				sel = append(sel, r)
			}
			seq++
		}
		return out.write(batch, sel)
	})
}

// splitGroup writes the new buckets members (of buckets) from the files
// sources, which hold all the table's rows of those buckets: each file is
// read once and each row goes to its bucket's output unless an incoming
// row replaces it; then the incoming rows follow. The outputs are open at
// once, sharing the memory limits.
func (ms *mergeState) splitGroup(members []int, buckets int, sources []FileInfo) ([]FileInfo, error) {
	tx := ms.tx
	keyCols := tx.cols.keyCols
	mask := uint64(buckets - 1)
	keys := make(map[int]*keySet, len(members))
	outs := make(map[int]*output, len(members))
	sels := make(map[int][]int32, len(members))
	lim := tx.t.w.lim.scaled(len(members))
	for _, b := range members {
		k, err := ms.incomingKeys(b, buckets)
		if err != nil {
			return nil, err
		}
		keys[b] = k
		outs[b] = newOutput(tx.stage, tx.version, b, tx.cols, lim)
		tx.outs = append(tx.outs, outs[b]) // so that Abort removes them
	}
	for _, f := range sources {
		err := tx.forEachRowGroup(f, nil, func(batch *records.Batch) error {
			for b := range sels {
				sels[b] = sels[b][:0]
			}
			for r := range batch.N {
				ms.keyBuf = batch.AppendKey(ms.keyBuf[:0], r, keyCols)
				h := records.KeyHash(ms.keyBuf)
				b := int(h & mask)
				k := keys[b]
				if k == nil {
					return fmt.Errorf("data file %s holds a row of bucket %d, outside the buckets it was read for: the table is damaged; resync it", f.Name, b)
				}
				if _, ok := k.get(ms.keyBuf, h); ok {
					continue // replaced by an incoming row
				}
				sels[b] = append(sels[b], int32(r))
			}
			for b, sel := range sels {
				if err := outs[b].write(batch, sel); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var files []FileInfo
	for _, b := range members {
		if err := ms.writeIncoming(b, buckets, keys[b], outs[b]); err != nil {
			return nil, err
		}
		fs, err := outs[b].close()
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	return files, nil
}

// splitFiles sorts a bucket's current files into those a commit rewrites
// and those it keeps: rewritten are the files holding one of keys (all of
// them when all is set: the schema gained columns, or every version
// closes), and the small ones (the inserts of earlier commits) once there
// are many; full-size files are never folded.
func (ms *mergeState) splitFiles(files []FileInfo, keys *keySet, all bool) (rewrite, keep []FileInfo, err error) {
	sorted := keys.sorted()
	for _, f := range files {
		hit := all
		if !hit && anyWithin(sorted, f.KeyMin, f.KeyMax) {
			if hit, err = ms.probe(f, keys); err != nil {
				return nil, nil, err
			}
		}
		if hit {
			rewrite = append(rewrite, f)
		} else {
			keep = append(keep, f)
		}
	}
	small := func(f FileInfo) bool { return f.Rows < ms.tx.t.w.lim.fileRows/4 }
	if n := len(slices.DeleteFunc(slices.Clone(keep), func(f FileInfo) bool { return !small(f) })); n >= maxSmallFiles {
		for _, f := range keep {
			if small(f) {
				rewrite = append(rewrite, f)
			}
		}
		keep = slices.DeleteFunc(keep, small)
	}
	return rewrite, keep, nil
}

// mergeBucket writes bucket b, whose files are current: those holding an
// incoming key (or all, when the schema gained columns) are rewritten
// without the rows it replaces, the others kept.
func (ms *mergeState) mergeBucket(b, buckets int, current []FileInfo) ([]FileInfo, error) {
	tx := ms.tx
	keyCols := tx.cols.keyCols
	keys, err := ms.incomingKeys(b, buckets)
	if err != nil {
		return nil, err
	}
	if keys.len() == 0 && !tx.rewriteAll {
		return current, nil
	}

	rewrite, keep, err := ms.splitFiles(current, keys, tx.rewriteAll)
	if err != nil {
		return nil, err
	}

	out := newOutput(tx.stage, tx.version, b, tx.cols, tx.t.w.lim)
	tx.outs = append(tx.outs, out) // so that Abort removes it
	sel := make([]int32, 0, 1024)
	for _, f := range rewrite {
		err := tx.forEachRowGroup(f, nil, func(batch *records.Batch) error {
			sel = sel[:0]
			for r := range batch.N {
				ms.keyBuf = batch.AppendKey(ms.keyBuf[:0], r, keyCols)
				if _, ok := keys.get(ms.keyBuf, records.KeyHash(ms.keyBuf)); !ok {
					sel = append(sel, int32(r))
				}
			}
			return out.write(batch, sel)
		})
		if err != nil {
			return nil, err
		}
	}
	if err := ms.writeIncoming(b, buckets, keys, out); err != nil {
		return nil, err
	}
	written, err := out.close()
	if err != nil {
		return nil, err
	}
	return append(keep, written...), nil
}

// probe reports whether a file holds any of the keys, reading only its key
// columns.
func (ms *mergeState) probe(f FileInfo, keys *keySet) (bool, error) {
	found := false
	errFound := fmt.Errorf("found")
	err := ms.tx.forEachRowGroup(f, ms.tx.cols.keyCols, func(batch *records.Batch) error {
		for r := range batch.N {
			ms.keyBuf = batch.AppendKey(ms.keyBuf[:0], r, ms.tx.cols.keyCols)
			if _, ok := keys.get(ms.keyBuf, records.KeyHash(ms.keyBuf)); ok {
				found = true
				return errFound
			}
		}
		return nil
	})
	if err != nil && err != errFound {
		return false, err
	}
	return found, nil
}

func (ms *mergeState) removeSpill() {
	if ms.spillDir != "" {
		os.RemoveAll(ms.spillDir)
	}
}

func (ms *mergeState) discard() {
	ms.removeSpill()
	ms.mem = nil
}

// copyBatch returns a deep copy of b: incoming batches are reused by their
// producer once Write returns.
func copyBatch(b *records.Batch) *records.Batch {
	out := &records.Batch{Schema: b.Schema, N: b.N, Cols: make([]records.Vec, len(b.Cols))}
	for i := range b.Cols {
		out.Cols[i] = copyVec(&b.Cols[i], b.N)
	}
	return out
}

func copyVec(v *records.Vec, n int) records.Vec {
	out := records.Vec{Nulled: v.Nulled}
	if v.Valid != nil {
		out.Valid = slices.Clone(v.Valid[:n])
	}
	switch {
	case v.Bool != nil:
		out.Bool = slices.Clone(v.Bool[:n])
	case v.I32 != nil:
		out.I32 = slices.Clone(v.I32[:n])
	case v.I64 != nil:
		out.I64 = slices.Clone(v.I64[:n])
	case v.F32 != nil:
		out.F32 = slices.Clone(v.F32[:n])
	case v.F64 != nil:
		out.F64 = slices.Clone(v.F64[:n])
	case v.Offsets != nil:
		out.Offsets = slices.Clone(v.Offsets[:n+1])
		out.Data = bytes.Clone(v.Data[:v.Offsets[n]])
		if out.Data == nil {
			out.Data = []byte{}
		}
	case v.List != nil:
		m := int(v.List.Offsets[n])
		out.List = &records.ListVec{Offsets: slices.Clone(v.List.Offsets[:n+1]), Elem: copyVec(&v.List.Elem, m)}
	}
	return out
}

// batchBytes estimates the memory a batch holds.
func batchBytes(b *records.Batch) int64 {
	var n int64
	for i := range b.Cols {
		n += vecBytes(&b.Cols[i])
	}
	return n
}

func vecBytes(v *records.Vec) int64 {
	n := int64(len(v.Valid) + len(v.Bool) + 4*len(v.I32) + 8*len(v.I64) + 4*len(v.F32) + 8*len(v.F64) + 4*len(v.Offsets) + len(v.Data))
	if v.List != nil {
		n += int64(4*len(v.List.Offsets)) + vecBytes(&v.List.Elem)
	}
	return n
}
