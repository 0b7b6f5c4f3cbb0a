package parquet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/sluice-dev/sluice/internal/records"
)

// limits bound what a writer holds and writes. Memory is bounded by the
// row group (its compressed pages stay in memory until it is complete) and
// a page per column, never by the table (DESIGN invariant 4).
type limits struct {
	rowGroupRows  int   // rows per row group
	rowGroupBytes int64 // bytes per row group (compressed, estimated)
	fileRows      int64 // rows per file
	fileBytes     int64 // bytes per file
	pageBytes     int   // uncompressed bytes per page
	bucketRows    int64 // rows per hash bucket a table's bucket count aims at
}

var defaultLimits = limits{
	rowGroupRows:  128 * 1024,
	rowGroupBytes: 64 << 20,
	fileRows:      1 << 20,
	fileBytes:     256 << 20,
	pageBytes:     256 << 10,
	bucketRows:    1 << 20,
}

// writeSlice is how many rows are written between checks of the row group
// and file limits, and the unit of work handed to the column workers.
const writeSlice = 16 * 1024

// valuesChunk is how many rows of one column are converted to parquet.Value
// and handed to the column writer at a time.
const valuesChunk = 1024

var zstdCodec = &zstd.Codec{Level: zstd.SpeedFastest}

// columns is the table schema with what the writer needs of it per column.
type columns struct {
	schema  *records.Schema // the table schema, _sluice_synced_at last
	pschema *pq.Schema
	keyCols []int // positions of the primary key columns; nil without a key
	// noBounds are the paths of columns written without min/max: parquet-go
	// orders FIXED_LEN_BYTE_ARRAY as unsigned bytes, but a DECIMAL there
	// is signed, and wrong bounds would make readers skip row groups that
	// match a filter.
	noBounds []pq.WriterOption
}

func newColumns(s *records.Schema) (*columns, error) {
	ps, err := parquetSchema(s)
	if err != nil {
		return nil, err
	}
	c := &columns{schema: s, pschema: ps}
	for _, col := range s.Columns {
		switch {
		case col.Type.Physical == records.PhysicalFixedLenByteArray:
			c.noBounds = append(c.noBounds, pq.SkipPageBounds(col.Name))
		case col.Type.Element != nil && col.Type.Element.Physical == records.PhysicalFixedLenByteArray:
			c.noBounds = append(c.noBounds, pq.SkipPageBounds(col.Name, "list", "element"))
		}
	}
	if len(s.PrimaryKey) > 0 {
		if c.keyCols, err = s.KeyIndexes(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// fileWriter writes one data file.
type fileWriter struct {
	cols    *columns
	path    string
	f       *os.File
	w       *pq.GenericWriter[any]
	cw      []*pq.ColumnWriter
	rows    int64
	rgRows  int
	rgStart int64 // file size when the current row group began
	keyMin  []byte
	keyMax  []byte
	keyBuf  []byte
	scratch [][]pq.Value // per worker
	// temporary files (merge spills) are not synced: a crash discards
	// them anyway.
	temporary bool
}

func createFile(path string, cols *columns, lim limits) (*fileWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating data file: %w", err)
	}
	opts := []pq.WriterOption{
		cols.pschema,
		pq.Compression(zstdCodec),
		pq.PageBufferSize(lim.pageBytes),
		pq.WriteBufferSize(1 << 20),
		pq.MaxRowsPerRowGroup(int64(lim.rowGroupRows)),
		pq.CreatedBy("sluice", "", ""),
		// Integers (ids, timestamps, decimals) as deltas: smaller pages to
		// compress, and smaller files.
		pq.DefaultEncodingFor(pq.Int32, &pq.DeltaBinaryPacked),
		pq.DefaultEncodingFor(pq.Int64, &pq.DeltaBinaryPacked),
		// Min/max per page go to the page index and the column chunk
		// statistics (what DuckDB and Arrow prune with), not also to every
		// page header: the bounds of string pages are costly to compute.
		pq.DataPageStatistics(false),
	}
	opts = append(opts, cols.noBounds...)
	w := pq.NewGenericWriter[any](f, opts...)
	return &fileWriter{cols: cols, path: path, f: f, w: w, cw: w.ColumnWriters()}, nil
}

// write appends the rows of b (whose schema is the table's) listed in rows.
func (fw *fileWriter) write(b *records.Batch, rows []int32) error {
	if len(rows) == 0 {
		return nil
	}
	keys := fw.cols.keyCols != nil
	tasks := len(b.Cols)
	if keys {
		tasks++ // the key range is one more task
	}
	workers := min(runtime.GOMAXPROCS(0), tasks)
	if len(rows) < 2*valuesChunk {
		workers = 1
	}
	for len(fw.scratch) < workers {
		fw.scratch = append(fw.scratch, make([]pq.Value, 0, 4*valuesChunk))
	}
	var next atomic.Int32
	errs := make([]error, tasks)
	work := func(worker int) {
		for {
			i := int(next.Add(1)) - 1
			if i >= tasks {
				return
			}
			if i == len(b.Cols) {
				fw.keyRange(b, rows)
				continue
			}
			errs[i] = fw.writeColumn(worker, i, &b.Cols[i], b.Schema.Columns[i].Type, rows)
		}
	}
	if workers == 1 {
		work(0)
	} else {
		var wg sync.WaitGroup
		for k := range workers {
			wg.Go(func() { work(k) })
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("writing column %q: %w", b.Schema.Columns[i].Name, err)
		}
	}
	fw.rows += int64(len(rows))
	fw.rgRows += len(rows)
	return nil
}

func (fw *fileWriter) keyRange(b *records.Batch, rows []int32) {
	for _, r := range rows {
		fw.keyBuf = b.AppendKey(fw.keyBuf[:0], int(r), fw.cols.keyCols)
		if fw.keyMin == nil || bytes.Compare(fw.keyBuf, fw.keyMin) < 0 {
			fw.keyMin = append(fw.keyMin[:0], fw.keyBuf...)
		}
		if fw.keyMax == nil || bytes.Compare(fw.keyBuf, fw.keyMax) > 0 {
			fw.keyMax = append(fw.keyMax[:0], fw.keyBuf...)
		}
	}
}

// writeColumn converts the listed values of one column to parquet.Value,
// a chunk at a time, and hands them to the column's writer, which encodes
// and compresses a page whenever its buffer is full.
func (fw *fileWriter) writeColumn(worker, col int, v *records.Vec, t records.ParquetType, rows []int32) error {
	cw := fw.cw[col]
	buf := fw.scratch[worker]
	defer func() { fw.scratch[worker] = buf[:0] }()
	for start := 0; start < len(rows); start += valuesChunk {
		chunk := rows[start:min(start+valuesChunk, len(rows))]
		var err error
		if t.Physical == records.PhysicalGroup {
			buf, err = appendListValues(buf[:0], v, t, chunk)
		} else {
			buf, err = appendLeafValues(buf[:0], v, t, chunk)
		}
		if err != nil {
			return err
		}
		if _, err := cw.WriteRowValues(buf); err != nil {
			return err
		}
	}
	return nil
}

// appendLeafValues converts values of an OPTIONAL leaf column (definition
// level 1 when present, 0 when null). One loop per type, written out: a
// function value per type would cost a call per value.
//
// Levels are set in place (SetDefinitionLevel inlines, Value.Level does
// not); the column index is left unset: a ColumnWriter knows its column.
func appendLeafValues(dst []pq.Value, v *records.Vec, t records.ParquetType, rows []int32) ([]pq.Value, error) {
	n := len(dst)
	dst = slices.Grow(dst, len(rows))[:n+len(rows)]
	out := dst[n:]
	valid := v.Valid
	switch t.Physical {
	case records.PhysicalBoolean:
		for i, r := range rows {
			if valid != nil && !valid[r] {
				out[i] = pq.Value{}
				continue
			}
			val := pq.BooleanValue(v.Bool[r])
			val.SetDefinitionLevel(1)
			out[i] = val
		}
	case records.PhysicalInt32:
		for i, r := range rows {
			if valid != nil && !valid[r] {
				out[i] = pq.Value{}
				continue
			}
			val := pq.Int32Value(v.I32[r])
			val.SetDefinitionLevel(1)
			out[i] = val
		}
	case records.PhysicalInt64:
		for i, r := range rows {
			if valid != nil && !valid[r] {
				out[i] = pq.Value{}
				continue
			}
			val := pq.Int64Value(v.I64[r])
			val.SetDefinitionLevel(1)
			out[i] = val
		}
	case records.PhysicalFloat:
		for i, r := range rows {
			if valid != nil && !valid[r] {
				out[i] = pq.Value{}
				continue
			}
			val := pq.FloatValue(v.F32[r])
			val.SetDefinitionLevel(1)
			out[i] = val
		}
	case records.PhysicalDouble:
		for i, r := range rows {
			if valid != nil && !valid[r] {
				out[i] = pq.Value{}
				continue
			}
			val := pq.DoubleValue(v.F64[r])
			val.SetDefinitionLevel(1)
			out[i] = val
		}
	case records.PhysicalByteArray:
		for i, r := range rows {
			if valid != nil && !valid[r] {
				out[i] = pq.Value{}
				continue
			}
			val := pq.ByteArrayValue(v.Data[v.Offsets[r]:v.Offsets[r+1]])
			val.SetDefinitionLevel(1)
			out[i] = val
		}
	case records.PhysicalFixedLenByteArray:
		for _, r := range rows {
			if b := v.Data[v.Offsets[r]:v.Offsets[r+1]]; len(b) != t.Length && (valid == nil || valid[r]) {
				return dst[:n], fmt.Errorf("a value of %d bytes in a FIXED_LEN_BYTE_ARRAY(%d) column", len(b), t.Length)
			}
		}
		for i, r := range rows {
			if valid != nil && !valid[r] {
				out[i] = pq.Value{}
				continue
			}
			val := pq.FixedLenByteArrayValue(v.Data[v.Offsets[r]:v.Offsets[r+1]])
			val.SetDefinitionLevel(1)
			out[i] = val
		}
	default:
		return dst[:n], fmt.Errorf("unsupported physical type %s", t.Physical)
	}
	return dst, nil
}

// appendListValues converts values of an OPTIONAL LIST column of OPTIONAL
// elements: definition level 0 for a null list, 1 for an empty one, 2 for
// a null element, 3 for an element; repetition level 1 for every element
// after a row's first.
func appendListValues(dst []pq.Value, v *records.Vec, t records.ParquetType, rows []int32) ([]pq.Value, error) {
	l := v.List
	et := *t.Element
	for _, r := range rows {
		if v.IsNull(int(r)) {
			dst = append(dst, pq.Value{})
			continue
		}
		lo, hi := l.Offsets[r], l.Offsets[r+1]
		if lo == hi {
			dst = append(dst, pq.Value{})
			dst[len(dst)-1].SetDefinitionLevel(1)
			continue
		}
		for j := lo; j < hi; j++ {
			var val pq.Value
			def := 2
			if !l.Elem.IsNull(int(j)) {
				var err error
				if val, err = leafValue(&l.Elem, et, int(j)); err != nil {
					return dst, err
				}
				def = 3
			}
			dst = append(dst, val)
			last := &dst[len(dst)-1]
			last.SetDefinitionLevel(def)
			if j > lo {
				last.SetRepetitionLevel(1)
			}
		}
	}
	return dst, nil
}

func leafValue(v *records.Vec, t records.ParquetType, i int) (pq.Value, error) {
	switch t.Physical {
	case records.PhysicalBoolean:
		return pq.BooleanValue(v.Bool[i]), nil
	case records.PhysicalInt32:
		return pq.Int32Value(v.I32[i]), nil
	case records.PhysicalInt64:
		return pq.Int64Value(v.I64[i]), nil
	case records.PhysicalFloat:
		return pq.FloatValue(v.F32[i]), nil
	case records.PhysicalDouble:
		return pq.DoubleValue(v.F64[i]), nil
	case records.PhysicalByteArray:
		return pq.ByteArrayValue(v.Data[v.Offsets[i]:v.Offsets[i+1]]), nil
	case records.PhysicalFixedLenByteArray:
		b := v.Data[v.Offsets[i]:v.Offsets[i+1]]
		if len(b) != t.Length {
			return pq.Value{}, fmt.Errorf("a value of %d bytes in a FIXED_LEN_BYTE_ARRAY(%d) column", len(b), t.Length)
		}
		return pq.FixedLenByteArrayValue(b), nil
	}
	return pq.Value{}, fmt.Errorf("unsupported physical type %s", t.Physical)
}

// flushRowGroup completes the current row group: the last page of every
// column is encoded and compressed in parallel, then the row group is
// copied to the file.
func (fw *fileWriter) flushRowGroup() error {
	if fw.rgRows == 0 {
		return nil
	}
	if err := parallel(len(fw.cw), func(i int) error { return fw.cw[i].Flush() }); err != nil {
		return fmt.Errorf("writing a row group: %w", err)
	}
	if err := fw.w.Flush(); err != nil {
		return fmt.Errorf("writing a row group: %w", err)
	}
	fw.rgRows = 0
	fw.rgStart = fw.w.Size()
	return nil
}

// close completes the file and makes it durable; the caller syncs the
// directory once for all the files of a commit.
func (fw *fileWriter) close() (FileInfo, error) {
	err := fw.flushRowGroup()
	if err == nil {
		err = fw.w.Close()
	}
	if err == nil && durable && !fw.temporary {
		err = fw.f.Sync()
	}
	var size int64
	if err == nil {
		var st os.FileInfo
		if st, err = fw.f.Stat(); err == nil {
			size = st.Size()
		}
	}
	if cerr := fw.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileInfo{}, fmt.Errorf("writing data file %s: %w", fw.path, err)
	}
	return FileInfo{Name: filepath.Base(fw.path), Rows: fw.rows, Bytes: size, Bucket: -1, KeyMin: fw.keyMin, KeyMax: fw.keyMax}, nil
}

// discard abandons the file.
func (fw *fileWriter) discard() {
	fw.f.Close()
	os.Remove(fw.path)
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines and returns the
// first error.
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				errs[i] = fn(i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// output is a stream of rows into data files of one bucket, rotated at the
// file limits. Files are named <version>-<bucket>-<random>.parquet so that
// names never repeat and tell where a file came from.
type output struct {
	dir     string
	version int64
	bucket  int // -1: not bucketed
	cols    *columns
	lim     limits
	cur     *fileWriter
	files   []FileInfo
	paths   []string // every file created, for Abort
}

func newOutput(dir string, version int64, bucket int, cols *columns, lim limits) *output {
	return &output{dir: dir, version: version, bucket: bucket, cols: cols, lim: lim}
}

// write appends rows of b (nil: all rows).
func (o *output) write(b *records.Batch, rows []int32) error {
	if rows == nil {
		rows = identity(b.N)
	}
	for len(rows) > 0 {
		if o.cur == nil {
			name := fmt.Sprintf("%d-%s-%s.parquet", o.version, bucketName(o.bucket), randomHex(6))
			path := filepath.Join(o.dir, name)
			fw, err := createFile(path, o.cols, o.lim)
			if err != nil {
				return err
			}
			o.cur = fw
			o.paths = append(o.paths, path)
		}
		fw := o.cur
		n := min(len(rows), writeSlice, o.lim.rowGroupRows-fw.rgRows)
		if fileLeft := o.lim.fileRows - fw.rows; int64(n) > fileLeft {
			n = int(fileLeft)
		}
		if err := fw.write(b, rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
		size := fw.w.Size()
		if fw.rgRows >= o.lim.rowGroupRows || size-fw.rgStart >= o.lim.rowGroupBytes {
			if err := fw.flushRowGroup(); err != nil {
				return err
			}
		}
		if fw.rows >= o.lim.fileRows || size >= o.lim.fileBytes {
			if err := o.closeFile(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o *output) closeFile() error {
	if o.cur == nil {
		return nil
	}
	fi, err := o.cur.close()
	o.cur = nil
	if err != nil {
		return err
	}
	fi.Bucket = o.bucket
	o.files = append(o.files, fi)
	return nil
}

// close completes the last file and returns all files written.
func (o *output) close() ([]FileInfo, error) {
	if err := o.closeFile(); err != nil {
		return nil, err
	}
	return o.files, nil
}

// discard removes every file the output created.
func (o *output) discard() {
	if o.cur != nil {
		o.cur.f.Close()
		o.cur = nil
	}
	for _, p := range o.paths {
		os.Remove(p)
	}
	o.paths, o.files = nil, nil
}

func bucketName(b int) string {
	if b < 0 {
		return "all"
	}
	return fmt.Sprintf("b%d", b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	identityMu  sync.Mutex
	identityBuf []int32
)

// identity returns the rows 0..n-1; the slice is shared and read-only.
func identity(n int) []int32 {
	identityMu.Lock()
	defer identityMu.Unlock()
	if len(identityBuf) < n {
		identityBuf = make([]int32, max(n, 2*len(identityBuf)))
		for i := range identityBuf {
			identityBuf[i] = int32(i)
		}
	}
	return identityBuf[:n]
}
