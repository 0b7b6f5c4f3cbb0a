package iceberg

import (
	"bytes"
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	iofs "io/fs"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	iceberggo "github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/sluice-dev/sluice/internal/records"
)

// Finding the stored rows of keys (merge, history, Lookup).
//
// Data files are immutable, so the keys of each are decoded once and kept
// in a bounded in-process cache (keyCacheBytes, least recently used out):
// exact keys, sorted, with their row positions. A commit then costs a
// binary search per changed key and file instead of a read of every key
// column. The position delete files (also immutable) are cached the same
// way. Files planned for a commit are pruned by the manifests' column
// bounds first (a row filter on the key), so a table loaded in key order
// reads only the files whose key range holds a changed key.

// keyCacheBytes bounds the memory of the decoded keys and deletes.
var keyCacheBytes int64 = 96 << 20

// fileStats counts, for the benchmark, what finding keys read.
var fileStats struct {
	sync.Mutex
	keyFilesRead, deleteFilesRead int
	bytesRead                     int64
}

// keyIndex is the sorted keys of one data file.
type keyIndex struct {
	ints []int64  // a single integer key: its values, sorted
	i32  []int32  // or, for an INT32 column, these
	keys []byte   // otherwise the encoded keys (records.AppendKey), sorted
	offs []uint32 // key i is keys[offs[i]:offs[i+1]]
	pos  []int32  // the row of the i-th key; nil: row i
	npos int      // the number of keys
}

// byKey sorts keys with their rows, equal keys by row: what a stable
// sort gives (the rows start ascending), by the in-place pdqsort of
// sort.Sort, several times faster than sort.Stable's merges.
type byKey struct {
	k []int64
	p []int32
}

func (s byKey) Len() int { return len(s.k) }
func (s byKey) Less(i, j int) bool {
	return s.k[i] < s.k[j] || s.k[i] == s.k[j] && s.p[i] < s.p[j]
}
func (s byKey) Swap(i, j int) {
	s.k[i], s.k[j] = s.k[j], s.k[i]
	s.p[i], s.p[j] = s.p[j], s.p[i]
}

// byKey32 sorts INT32 keys with their rows.
type byKey32 struct {
	k []int32
	p []int32
}

func (s byKey32) Len() int { return len(s.k) }
func (s byKey32) Less(i, j int) bool {
	return s.k[i] < s.k[j] || s.k[i] == s.k[j] && s.p[i] < s.p[j]
}
func (s byKey32) Swap(i, j int) {
	s.k[i], s.k[j] = s.k[j], s.k[i]
	s.p[i], s.p[j] = s.p[j], s.p[i]
}

// rowsAt is the rows of keys i to j.
func (x *keyIndex) rowsAt(i, j int) []int32 {
	if x.pos != nil {
		return x.pos[i:j]
	}
	out := make([]int32, j-i)
	for k := range out {
		out[k] = int32(i + k)
	}
	return out
}

func (x *keyIndex) size() int64 {
	return int64(8*cap(x.ints) + 4*cap(x.i32) + cap(x.keys) + 4*cap(x.offs) + 4*cap(x.pos) + 64)
}

func (x *keyIndex) n() int { return x.npos }

// find returns the rows holding key (encoded; intKey when the index is of
// integers).
func (x *keyIndex) find(key []byte, intKey int64, isInt bool) []int32 {
	if x.i32 != nil {
		if intKey < math.MinInt32 || intKey > math.MaxInt32 {
			return nil
		}
		k := int32(intKey)
		lo, _ := slices.BinarySearch(x.i32, k)
		hi := lo
		for hi < len(x.i32) && x.i32[hi] == k {
			hi++
		}
		return x.rowsAt(lo, hi)
	}
	if x.ints != nil || (isInt && x.keys == nil) {
		lo, _ := slices.BinarySearch(x.ints, intKey)
		hi := lo
		for hi < len(x.ints) && x.ints[hi] == intKey {
			hi++
		}
		return x.rowsAt(lo, hi)
	}
	at := func(i int) []byte { return x.keys[x.offs[i]:x.offs[i+1]] }
	n := x.n()
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(at(m), key) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	end := lo
	for end < n && bytes.Equal(at(end), key) {
		end++
	}
	return x.rowsAt(lo, end)
}

// intKeyOf decodes an encoded single integer key (records.AppendKey of an
// INT32 or INT64 value).
func intKeyOf(key []byte) (int64, bool) {
	switch {
	case len(key) == 9 && key[0] == 1:
		return int64(binary.BigEndian.Uint64(key[1:]) ^ (1 << 63)), true
	case len(key) == 5 && key[0] == 1:
		return int64(int32(binary.BigEndian.Uint32(key[1:]) ^ (1 << 31))), true
	}
	return 0, false
}

// lru is the cache of decoded keys and deletes, by file.
type lru struct {
	mu    sync.Mutex
	bytes int64
	ll    *list.List
	m     map[string]*list.Element
}

type lruEntry struct {
	key  string
	val  any
	size int64
}

var cache = &lru{ll: list.New(), m: map[string]*list.Element{}}

func (c *lru) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry).val, true
	}
	return nil, false
}

func (c *lru) put(key string, val any, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.bytes -= e.Value.(*lruEntry).size
		c.ll.Remove(e)
	}
	c.m[key] = c.ll.PushFront(&lruEntry{key: key, val: val, size: size})
	c.bytes += size
	for c.bytes > keyCacheBytes && c.ll.Len() > 1 {
		e := c.ll.Back()
		en := e.Value.(*lruEntry)
		c.ll.Remove(e)
		delete(c.m, en.key)
		c.bytes -= en.size
	}
}

// parquetFile is an open data or delete file.
type parquetFile struct {
	f  iceio.File
	fr *pqarrow.FileReader
}

func openParquet(ctx context.Context, fs iceio.IO, path string) (*parquetFile, error) {
	f, err := fs.Open(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("file %s, listed by the table, is missing (%v): %w", path, err, errDamaged)
	}
	if err != nil {
		return nil, err
	}
	rdr, err := file.NewParquetReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %v: %w", path, err, errDamaged)
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		rdr.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &parquetFile{f: f, fr: fr}, nil
}

func (p *parquetFile) Close() error { return p.fr.ParquetReader().Close() }

// leaves maps the field ids of the file's top-level columns to their
// leaf column indexes.
func (p *parquetFile) leaves() map[int][]int {
	out := map[int][]int{}
	for _, f := range p.fr.Manifest.Fields {
		id := fieldID(f.Field)
		if id < 0 {
			continue
		}
		var walk func(sf pqarrow.SchemaField)
		walk = func(sf pqarrow.SchemaField) {
			if sf.IsLeaf() {
				out[id] = append(out[id], sf.ColIndex)
			}
			for _, c := range sf.Children {
				walk(c)
			}
		}
		walk(f)
	}
	return out
}

func fieldID(f *arrow.Field) int {
	if f == nil {
		return -1
	}
	if i := f.Metadata.FindKey("PARQUET:field_id"); i >= 0 {
		if id, err := strconv.Atoi(f.Metadata.Values()[i]); err == nil {
			return id
		}
	}
	return -1
}

// readColumns reads the columns of the field ids (in that order; a field
// the file lacks comes back nil) of the row groups rgs (nil: all).
func (p *parquetFile) readColumns(ctx context.Context, ids []int, rgs []int) ([]*arrow.Chunked, int64, func(), error) {
	leaves := p.leaves()
	var idx []int
	for _, id := range ids {
		idx = append(idx, leaves[id]...)
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	if rgs == nil {
		for i := range p.fr.ParquetReader().NumRowGroups() {
			rgs = append(rgs, i)
		}
	}
	var read int64
	for _, rg := range rgs {
		md := p.fr.ParquetReader().MetaData().RowGroup(rg)
		for _, c := range idx {
			if cc, err := md.ColumnChunk(c); err == nil {
				read += cc.TotalCompressedSize()
			}
		}
	}
	out := make([]*arrow.Chunked, len(ids))
	if len(idx) == 0 {
		return out, read, func() {}, nil
	}
	tbl, err := p.fr.ReadRowGroups(ctx, idx, rgs)
	if err != nil {
		return nil, 0, nil, err
	}
	for i := 0; i < int(tbl.NumCols()); i++ {
		f := tbl.Schema().Field(i)
		id := fieldID(&f)
		for j, want := range ids {
			if want == id {
				out[j] = tbl.Column(i).Data()
			}
		}
	}
	return out, read, tbl.Release, nil
}

// keyColumns is how the keys of a table are read from its files.
type keyColumns struct {
	schema  *records.Schema // the key columns, as a schema
	ids     []int           // their field ids
	isInt   bool            // a single integer key
	validTo int             // field id of valid_to when only open rows count; 0 otherwise
}

func (kc *keyColumns) cacheKey(path string) string {
	return fmt.Sprintf("keys|%d|%v|%s", kc.validTo, kc.ids, path)
}

// fileKeys returns the key index of the data file at path.
func (kc *keyColumns) fileKeys(ctx context.Context, fs iceio.IO, path string) (*keyIndex, error) {
	ck := kc.cacheKey(path)
	if v, ok := cache.get(ck); ok {
		return v.(*keyIndex), nil
	}
	p, err := openParquet(ctx, fs, path)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	ids := kc.ids
	if kc.validTo != 0 {
		ids = append(slices.Clone(ids), kc.validTo)
	}
	n := int(p.fr.ParquetReader().NumRows())
	b := records.NewBatch(kc.schema, min(n, 1<<16))
	keyCols := make([]int, len(kc.ids))
	for i := range keyCols {
		keyCols[i] = i
	}
	x := &keyIndex{}
	var ints []int64
	var ints32 []int32
	if kc.isInt {
		if kc.schema.Columns[0].Type.Physical == records.PhysicalInt32 {
			ints32 = make([]int32, 0, n)
		} else {
			ints = make([]int64, 0, n)
		}
	}
	// Positions are kept only once a row is out of order (a file in key
	// order needs none).
	count, identity := 0, true
	addPos := func(p int32) {
		if identity && int(p) == count {
			count++
			return
		}
		if identity {
			identity = false
			x.pos = make([]int32, count, max(2*count, 1024))
			for i := range x.pos {
				x.pos[i] = int32(i)
			}
		}
		x.pos = append(x.pos, p)
		count++
	}
	var encs [][]byte // only for non-integer keys
	var arena []byte
	var keyBuf []byte
	// Walk the chunks of every column together.
	type cursor struct {
		chunks  []arrow.Array
		ci, off int
	}
	pr := p.fr.ParquetReader()
	row := 0
	for rg := range pr.NumRowGroups() {
		// One row group at a time: memory is the index, not the column.
		cols, read, release, err := p.readColumns(ctx, ids, []int{rg})
		if err != nil {
			return nil, fmt.Errorf("reading the keys of %s: %w", path, err)
		}
		fileStats.Lock()
		fileStats.bytesRead += read
		fileStats.Unlock()
		for i, c := range cols[:len(kc.ids)] {
			if c == nil {
				release()
				return nil, fmt.Errorf("data file %s lacks key column %q: %w", path, kc.schema.Columns[i].Name, errDamaged)
			}
		}
		curs := make([]cursor, len(cols))
		for i, c := range cols {
			if c != nil {
				curs[i] = cursor{chunks: c.Chunks()}
			}
		}
		end := row + int(pr.MetaData().RowGroup(rg).NumRows())
		if err := func() error {
			defer release()
			for row < end {
				// The rows until the shortest current chunk ends.
				span := end - row
				for i := range curs {
					if curs[i].chunks == nil {
						continue
					}
					for curs[i].ci < len(curs[i].chunks) && curs[i].off >= curs[i].chunks[curs[i].ci].Len() {
						curs[i].ci, curs[i].off = curs[i].ci+1, 0
					}
					if curs[i].ci == len(curs[i].chunks) {
						return fmt.Errorf("data file %s: a column ends early", path)
					}
					span = min(span, curs[i].chunks[curs[i].ci].Len()-curs[i].off)
				}
				// A plain integer key is taken from Arrow as it is.
				if kc.isInt && kc.validTo == 0 {
					c := &curs[0]
					switch a := c.chunks[c.ci].(type) {
					case *array.Int64:
						for k := 0; k < span; k++ {
							if a.IsValid(c.off + k) {
								ints = append(ints, a.Value(c.off+k))
								addPos(int32(row + k))
							}
						}
						curs[0].off += span
						row += span
						continue
					case *array.Int32:
						for k := 0; k < span; k++ {
							if a.IsValid(c.off + k) {
								if ints32 != nil {
									ints32 = append(ints32, a.Value(c.off+k))
								} else {
									ints = append(ints, int64(a.Value(c.off+k)))
								}
								addPos(int32(row + k))
							}
						}
						curs[0].off += span
						row += span
						continue
					}
				}
				b.Reset()
				for k := 0; k < span; k++ {
					for i := range kc.ids {
						c := &curs[i]
						if err := appendArrow(&b.Cols[i], kc.schema.Columns[i].Type, c.chunks[c.ci], c.off+k); err != nil {
							return err
						}
					}
					b.N++
				}
				var vt arrow.Array
				vtOff := 0
				if kc.validTo != 0 && curs[len(curs)-1].chunks != nil {
					c := &curs[len(curs)-1]
					vt, vtOff = c.chunks[c.ci], c.off
				}
				for k := 0; k < span; k++ {
					if vt != nil && !vt.IsNull(vtOff+k) {
						continue // a closed version
					}
					pos := int32(row + k)
					if kc.isInt {
						v := &b.Cols[0]
						if v.IsNull(k) {
							continue
						}
						var iv int64
						if v.I64 != nil {
							iv = v.I64[k]
						} else {
							iv = int64(v.I32[k])
						}
						ints = append(ints, iv)
						addPos(pos)
						continue
					}
					keyBuf = b.AppendKey(keyBuf[:0], k, keyCols)
					start := len(arena)
					arena = append(arena, keyBuf...)
					encs = append(encs, arena[start:len(arena):len(arena)])
					addPos(pos)
				}
				for i := range curs {
					curs[i].off += span
				}
				row += span
			}
			return nil
		}(); err != nil {
			return nil, err
		}
	}
	fileStats.Lock()
	fileStats.keyFilesRead++
	fileStats.Unlock()
	if ints32 != nil && len(ints) > 0 {
		// Values came both ways (not in files sluice writes): as int64.
		for _, v := range ints32 {
			ints = append(ints, int64(v))
		}
		ints32 = nil
	}
	if ints32 != nil {
		if !slices.IsSorted(ints32) {
			if x.pos == nil {
				x.pos = make([]int32, count)
				for i := range x.pos {
					x.pos[i] = int32(i)
				}
			}
			sort.Sort(byKey32{ints32, x.pos})
		}
		x.i32 = slices.Clip(ints32)
	} else if kc.isInt {
		if !slices.IsSorted(ints) {
			if x.pos == nil {
				x.pos = make([]int32, count)
				for i := range x.pos {
					x.pos[i] = int32(i)
				}
			}
			sort.Sort(byKey{ints, x.pos})
		}
		x.ints = slices.Clip(ints)
		if x.ints == nil {
			x.ints = []int64{}
		}
	} else {
		if x.pos == nil {
			x.pos = make([]int32, count)
			for i := range x.pos {
				x.pos[i] = int32(i)
			}
		}
		perm := make([]int32, len(encs))
		for i := range perm {
			perm[i] = int32(i)
		}
		slices.SortStableFunc(perm, func(a, b int32) int { return bytes.Compare(encs[a], encs[b]) })
		x.keys = make([]byte, 0, len(arena))
		offs := make([]uint32, 1, len(encs)+1)
		pos := make([]int32, len(encs))
		for i, j := range perm {
			x.keys = append(x.keys, encs[j]...)
			offs = append(offs, uint32(len(x.keys)))
			pos[i] = x.pos[j]
		}
		x.offs, x.pos = offs, pos
	}
	// Rows in key order (a table loaded in key order) need no positions.
	x.npos = count
	if x.pos != nil && !isIdentity(x.pos) {
		x.pos = slices.Clip(x.pos)
	} else {
		x.pos = nil
	}
	cache.put(ck, x, x.size())
	return x, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deletedRows is what one position delete file deletes: by data file,
// sorted positions.
type deletedRows map[string][]int64

func (d deletedRows) size() int64 {
	var n int64
	for k, v := range d {
		n += int64(len(k)) + 8*int64(cap(v)) + 48
	}
	return n
}

// positionDeletes reads (or takes from the cache) a position delete file.
func positionDeletes(ctx context.Context, fs iceio.IO, path string) (deletedRows, error) {
	ck := "deletes|" + path
	if v, ok := cache.get(ck); ok {
		return v.(deletedRows), nil
	}
	p, err := openParquet(ctx, fs, path)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	cols, read, release, err := p.readColumns(ctx, []int{fieldIDDeleteFilePath, fieldIDDeletePos}, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the position deletes %s: %w", path, err)
	}
	defer release()
	fileStats.Lock()
	fileStats.deleteFilesRead++
	fileStats.bytesRead += read
	fileStats.Unlock()
	if cols[0] == nil || cols[1] == nil {
		return nil, fmt.Errorf("position delete file %s lacks file_path or pos", path)
	}
	d := deletedRows{}
	// The paths are copied once per distinct value (the file is sorted by
	// path): a string of the Arrow column points into its buffer, which
	// the cached result would otherwise keep whole.
	var last string
	pc := cols[1].Chunks()
	for ci, chunk := range cols[0].Chunks() {
		poss, ok := pc[ci].(*array.Int64)
		if !ok || pc[ci].Len() != chunk.Len() {
			return nil, fmt.Errorf("position delete file %s: unexpected column layout", path)
		}
		for i := 0; i < chunk.Len(); i++ {
			var fp string
			switch a := chunk.(type) {
			case *array.String:
				fp = a.Value(i)
			case *array.Binary:
				fp = string(a.Value(i))
			default:
				return nil, fmt.Errorf("position delete file %s: file_path is %s", path, chunk.DataType())
			}
			if fp != last {
				last = strings.Clone(fp)
			}
			d[last] = append(d[last], poss.Value(i))
		}
	}
	for k, v := range d {
		slices.Sort(v)
		d[k] = v
	}
	cache.put(ck, d, d.size())
	return d, nil
}

// liveFile is a data file of the snapshot.
type liveFile struct {
	path   string
	rows   int64
	bounds map[int][2][]byte // the column bounds of the manifest, by field id
}

// snapshotFiles is the data and position delete files of one snapshot.
// The state of the snapshot a commit made is derived from its parent's
// and what the commit added, so that a commit reads no manifest; any
// other snapshot (a maintenance commit, another process) is planned from
// its manifests once.
type snapshotFiles struct {
	snapshot int64
	data     []liveFile
	deletes  []string // position delete files
	// deleted is every row the delete files delete: sorted positions by
	// data file (a lookup is one binary search, however many delete
	// files the table has).
	deleted map[string][]int64
}

// addDeleted merges rows (sorted by file and position) into deleted.
func (f *snapshotFiles) addDeleted(refs []rowRef) {
	if f.deleted == nil {
		f.deleted = map[string][]int64{}
	}
	for len(refs) > 0 {
		n := 1
		for n < len(refs) && refs[n].path == refs[0].path {
			n++
		}
		old := f.deleted[refs[0].path]
		merged := make([]int64, 0, len(old)+n)
		i := 0
		for _, r := range refs[:n] {
			for i < len(old) && old[i] < r.pos {
				merged = append(merged, old[i])
				i++
			}
			merged = append(merged, r.pos)
		}
		merged = append(merged, old[i:]...)
		f.deleted[refs[0].path] = merged
		refs = refs[n:]
	}
}

func (f *snapshotFiles) isDeleted(path string, pos int64) bool {
	_, ok := slices.BinarySearch(f.deleted[path], pos)
	return ok
}

func fileOf(df iceberggo.DataFile) liveFile {
	lf := liveFile{path: df.FilePath(), rows: df.Count()}
	lo, hi := df.LowerBoundValues(), df.UpperBoundValues()
	for id, l := range lo {
		if h, ok := hi[id]; ok {
			if lf.bounds == nil {
				lf.bounds = map[int][2][]byte{}
			}
			lf.bounds[id] = [2][]byte{l, h}
		}
	}
	return lf
}

// files returns the files of tbl's current snapshot.
func (t *Table) files(ctx context.Context, tbl *table.Table) (*snapshotFiles, error) {
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return &snapshotFiles{}, nil
	}
	t.mu.Lock()
	f := t.filesState
	t.mu.Unlock()
	if f != nil && f.snapshot == snap.SnapshotID {
		return f, nil
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, err
	}
	f = &snapshotFiles{snapshot: snap.SnapshotID}
	seen := map[string]bool{}
	for _, task := range tasks {
		if len(task.EqualityDeleteFiles) > 0 || len(task.DeletionVectorFiles) > 0 {
			return nil, fmt.Errorf("data file %s has equality deletes or deletion vectors, which sluice does not write", task.File.FilePath())
		}
		f.data = append(f.data, fileOf(task.File))
		for _, d := range task.DeleteFiles {
			if !seen[d.FilePath()] {
				seen[d.FilePath()] = true
				f.deletes = append(f.deletes, d.FilePath())
			}
		}
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	for _, dp := range f.deletes {
		d, err := positionDeletes(ctx, fs, dp)
		if err != nil {
			return nil, err
		}
		var refs []rowRef
		for path, rows := range d {
			for _, r := range rows {
				refs = append(refs, rowRef{path, r})
			}
		}
		slices.SortFunc(refs, compareRef)
		f.addDeleted(refs)
	}
	t.mu.Lock()
	t.filesState = f
	t.mu.Unlock()
	return f, nil
}

// afterCommit derives the files of the snapshot a commit made from its
// parent's (a replace drops the parent's files); when the parent is not
// the one the state has (the catalog retried the commit on a newer
// version), the next use plans the snapshot anew.
func (t *Table) afterCommit(tbl *table.Table, parent int64, replace bool, added []iceberggo.DataFile, deletes []string, deleted []rowRef) {
	t.mu.Lock()
	defer t.mu.Unlock()
	snap := tbl.CurrentSnapshot()
	prev := t.filesState
	t.filesState = nil
	if snap == nil {
		return
	}
	parentOK := snap.ParentSnapshotID != nil && *snap.ParentSnapshotID == parent || snap.ParentSnapshotID == nil && parent == 0
	if !parentOK {
		return
	}
	if !replace && (prev == nil || prev.snapshot != parent) {
		if parent != 0 {
			return
		}
		prev = &snapshotFiles{}
	}
	f := &snapshotFiles{snapshot: snap.SnapshotID}
	if !replace {
		// A state is never changed once made (a Lookup may be reading
		// the parent's): appends past its length and a new map.
		f.data, f.deletes, f.deleted = slices.Clip(prev.data), slices.Clip(prev.deletes), maps.Clone(prev.deleted)
	}
	for _, df := range added {
		f.data = append(f.data, fileOf(df))
	}
	f.deletes = append(f.deletes, deletes...)
	f.addDeleted(deleted)
	t.filesState = f
}

// mayHold reports whether a file can hold one of ints (sorted), by its
// key bounds (a single integer key; otherwise it may).
func mayHold(kc *keyColumns, lf *liveFile, ints []int64) bool {
	if !kc.isInt || len(ints) == 0 || kc.schema.Columns[0].Type.Logical == records.LogicalDecimal {
		// Decimal bounds are big-endian unscaled bytes, not ints.
		return true
	}
	b, ok := lf.bounds[kc.ids[0]]
	if !ok {
		return true
	}
	lo, okl := boundInt(b[0])
	hi, okh := boundInt(b[1])
	if !okl || !okh {
		return true
	}
	i, _ := slices.BinarySearch(ints, lo)
	return i < len(ints) && ints[i] <= hi
}

// boundInt decodes an Iceberg single-value bound of an int or long.
func boundInt(b []byte) (int64, bool) {
	switch len(b) {
	case 4:
		return int64(int32(binary.LittleEndian.Uint32(b))), true
	case 8:
		return int64(binary.LittleEndian.Uint64(b)), true
	}
	return 0, false
}

// found is a stored row of a key.
type found struct {
	key []byte
	ref rowRef
}

// findRows looks up the live rows of the keys (encoded, sorted and
// distinct; all: every row) in tbl's current snapshot and calls fn with
// each (a key may have several rows in a table that got duplicates).
func (t *Table) findRows(ctx context.Context, tbl *table.Table, kc *keyColumns, keys [][]byte, all bool, fn func(found) error) error {
	if tbl == nil || tbl.CurrentSnapshot() == nil || (!all && len(keys) == 0) {
		return nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return err
	}
	sf, err := t.files(ctx, tbl)
	if err != nil {
		return err
	}
	var ints []int64
	if kc.isInt {
		ints = make([]int64, len(keys))
		for i, k := range keys {
			ints[i], _ = intKeyOf(k)
		}
		slices.Sort(ints)
	}
	for i := range sf.data {
		lf := &sf.data[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		if !all && !mayHold(kc, lf, ints) {
			continue
		}
		x, err := kc.fileKeys(ctx, fs, lf.path)
		if err != nil {
			return err
		}
		check := func(key []byte, rows []int32) error {
			for _, r := range rows {
				if !sf.isDeleted(lf.path, int64(r)) {
					if err := fn(found{key: key, ref: rowRef{lf.path, int64(r)}}); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if all {
			for j := 0; j < x.n(); j++ {
				var key []byte
				if x.keys != nil {
					key = x.keys[x.offs[j]:x.offs[j+1]]
				}
				if err := check(key, x.rowsAt(j, j+1)); err != nil {
					return err
				}
			}
			continue
		}
		for _, k := range keys {
			iv, _ := intKeyOf(k)
			if rows := x.find(k, iv, kc.isInt); len(rows) > 0 {
				if err := check(k, rows); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readRows reads the rows at positions (sorted) of the data file at path
// into dst (a batch of the recorded schema), matching columns by field id
// (ids[i] is dst's column i's; 0 or a column the file lacks: NULL).
func readRows(ctx context.Context, fs iceio.IO, path string, positions []int64, dst *records.Batch, ids []int) error {
	if len(positions) == 0 {
		return nil
	}
	p, err := openParquet(ctx, fs, path)
	if err != nil {
		return err
	}
	defer p.Close()
	pr := p.fr.ParquetReader()
	// The row groups holding the positions.
	var rgs []int
	var starts []int64
	var start int64
	k := 0
	for rg := range pr.NumRowGroups() {
		n := pr.MetaData().RowGroup(rg).NumRows()
		if k < len(positions) && positions[k] < start+n {
			rgs = append(rgs, rg)
			starts = append(starts, start)
			for k < len(positions) && positions[k] < start+n {
				k++
			}
		}
		start += n
	}
	if k < len(positions) {
		return fmt.Errorf("data file %s has %d rows, not row %d: %w", path, start, positions[k], errDamaged)
	}
	k = 0
	for gi, rg := range rgs {
		cols, _, release, err := p.readColumns(ctx, ids, []int{rg})
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		for k < len(positions) && (gi+1 == len(rgs) || positions[k] < starts[gi+1]) {
			off := positions[k] - starts[gi]
			for c := range dst.Cols {
				var arr arrow.Array
				idx := int(off)
				if cols[c] != nil {
					for _, ch := range cols[c].Chunks() {
						if idx < ch.Len() {
							arr = ch
							break
						}
						idx -= ch.Len()
					}
				}
				if err := appendArrow(&dst.Cols[c], dst.Schema.Columns[c].Type, arr, idx); err != nil {
					release()
					return fmt.Errorf("reading %s: column %q: %w", path, dst.Schema.Columns[c].Name, err)
				}
			}
			dst.N++
			k++
		}
		release()
	}
	return nil
}

func isIdentity(pos []int32) bool {
	for i, p := range pos {
		if int(p) != i {
			return false
		}
	}
	return true
}
