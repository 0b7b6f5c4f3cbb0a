package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	iceberggo "github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
)

// dataCodec compresses data files (a variable for the benchmarks).
var dataCodec = compress.Codecs.Snappy

// Sizes of what a transaction writes. A row group is the unit of memory:
// the Parquet writer buffers one (encoded) before it goes out, so a
// transaction's memory is bounded by it whatever its number of rows.
var (
	targetFileBytes  int64 = 128 << 20
	rowGroupRows     int64 = 128 << 10
	rowGroupMaxBytes int64 = 16 << 20
)

// writtenFile is a Parquet file a transaction wrote.
type writtenFile struct {
	path string
	rows int64
	df   iceberggo.DataFile
	refs []rowRef // of a position delete file: what it deletes, sorted
}

// dataWriter streams Arrow records into the table's Parquet data files,
// starting a new file past targetFileBytes. Every row's file and position
// is known when it is written (merge and history commits delete rows of
// their own files by position).
type dataWriter struct {
	fs      iceio.WriteFileIO
	loc     table.LocationProvider
	sc      *iceberggo.Schema
	asc     *arrow.Schema
	spec    iceberggo.PartitionSpec
	props   iceberggo.Properties
	prefix  string
	wprops  *parquet.WriterProperties
	n       int
	cur     *openFile
	files   []writtenFile
	created []string // every file created, for Abort
}

type openFile struct {
	path string
	cw   *countingWriter
	pw   *pqarrow.FileWriter
	rows int64
}

type countingWriter struct {
	w iceio.FileWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Close() error { return c.w.Close() }

var _ io.WriteCloser = (*countingWriter)(nil)

// writerProps is the Parquet writer's configuration for files of asc:
// zstd, statistics, and dictionaries that fall back to plain encoding
// when they do not pay (a key column of distinct values), as Iceberg's
// Java writer does.
func writerProps(asc *arrow.Schema) (*parquet.WriterProperties, error) {
	base := []parquet.WriterProperty{
		parquet.WithCompression(dataCodec),
		parquet.WithMaxRowGroupLength(rowGroupRows),
		parquet.WithDictionaryDefault(true),
		parquet.WithStats(true),
	}
	ps, err := pqarrow.ToParquet(asc, parquet.NewWriterProperties(base...), pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, err
	}
	for i := range ps.NumColumns() {
		base = append(base, parquet.WithDictionaryCostFallbackPath(ps.Column(i).ColumnPath(), true))
	}
	return parquet.NewWriterProperties(base...), nil
}

func newDataWriter(ctx context.Context, tbl *table.Table, sc *iceberggo.Schema, prefix string) (*dataWriter, error) {
	fs, err := writeFS(ctx, tbl)
	if err != nil {
		return nil, err
	}
	loc, err := tbl.LocationProvider()
	if err != nil {
		return nil, err
	}
	asc, err := table.SchemaToArrowSchema(sc, nil, true, false)
	if err != nil {
		return nil, err
	}
	wprops, err := writerProps(asc)
	if err != nil {
		return nil, err
	}
	return &dataWriter{fs: fs, loc: loc, sc: sc, asc: asc, spec: tbl.Spec(), props: tbl.Properties(), prefix: prefix, wprops: wprops}, nil
}

func writeFS(ctx context.Context, tbl *table.Table) (iceio.WriteFileIO, error) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	wfs, ok := fs.(iceio.WriteFileIO)
	if !ok {
		return nil, fmt.Errorf("the table's file system (%T) cannot write", fs)
	}
	return wfs, nil
}

// writePosition writes a sync position too big for the snapshot summary
// (see positionInlineMax) as a file of the transaction, and returns its
// location.
func (w *dataWriter) writePosition(b []byte) (string, error) {
	path := w.loc.NewDataLocation(w.prefix + positionFileSuffix)
	f, err := w.fs.Create(path)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", path, err)
	}
	w.created = append(w.created, path)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// newPath is the location of a new file of the transaction.
func (w *dataWriter) newPath(kind string) string {
	w.n++
	return w.loc.NewDataLocation(fmt.Sprintf("%s-%s-%05d.parquet", w.prefix, kind, w.n))
}

// write appends rec's rows; it returns the file and the position the
// first of them got (the others follow it in the same file).
func (w *dataWriter) write(rec arrow.RecordBatch) (path string, pos int64, err error) {
	if w.cur == nil {
		if err := w.open(); err != nil {
			return "", 0, err
		}
	}
	f := w.cur
	path, pos = f.path, f.rows
	if rec.NumRows() == 0 {
		return path, pos, nil
	}
	if err := f.pw.WriteBuffered(rec); err != nil {
		return "", 0, fmt.Errorf("writing %s: %w", f.path, err)
	}
	f.rows += rec.NumRows()
	if max(f.pw.RowGroupTotalBytesWritten(), f.pw.RowGroupTotalCompressedBytes()) > rowGroupMaxBytes {
		if err := f.pw.NewBufferedRowGroupChecked(); err != nil {
			return "", 0, fmt.Errorf("writing %s: %w", f.path, err)
		}
	}
	if f.cw.n+f.pw.RowGroupTotalCompressedBytes() >= targetFileBytes {
		err = w.closeFile()
	}
	return path, pos, err
}

func (w *dataWriter) open() error {
	path := w.newPath("data")
	fw, err := w.fs.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	w.created = append(w.created, path)
	cw := &countingWriter{w: fw}
	pw, err := pqarrow.NewFileWriter(w.asc, cw, w.wprops, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(memory.DefaultAllocator), pqarrow.WithStoreSchema()))
	if err != nil {
		fw.Close()
		return fmt.Errorf("creating %s: %w", path, err)
	}
	w.cur = &openFile{path: path, cw: cw, pw: pw}
	return nil
}

// closeFile finishes the current file (if any) and describes it for the
// manifest.
func (w *dataWriter) closeFile() error {
	f := w.cur
	if f == nil {
		return nil
	}
	w.cur = nil
	if err := f.pw.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if f.rows == 0 {
		w.remove(context.Background(), []string{f.path})
		return nil
	}
	md, err := f.pw.FileMetadata()
	if err != nil {
		return err
	}
	df, err := table.DataFileFromMetadata(table.DataFileArgs{
		Schema: w.sc, Spec: w.spec, Format: iceberggo.ParquetFile, Metadata: md,
		FilePath: f.path, FileSize: f.cw.n, Content: iceberggo.EntryContentData,
		Properties: w.props, FormatVersion: 2,
	})
	if err != nil {
		return fmt.Errorf("describing %s: %w", f.path, err)
	}
	w.files = append(w.files, writtenFile{path: f.path, rows: f.rows, df: df})
	return nil
}

// dataFiles is the files written, once closeFile ran.
func (w *dataWriter) dataFiles() []iceberggo.DataFile {
	out := make([]iceberggo.DataFile, len(w.files))
	for i, f := range w.files {
		out[i] = f.df
	}
	return out
}

// abort removes every file written (best effort: what stays is listed by
// no snapshot, an orphan the maintenance removes).
func (w *dataWriter) abort() {
	if w.cur != nil {
		w.cur.pw.Close()
		w.cur = nil
	}
	w.remove(context.Background(), w.created)
	w.created, w.files = nil, nil
}

func (w *dataWriter) remove(_ context.Context, paths []string) {
	for _, p := range paths {
		w.fs.Remove(p)
		w.created = slices.DeleteFunc(w.created, func(c string) bool { return c == p })
	}
}

// Position delete files (Iceberg spec "Position Delete Files"): the
// reserved field ids of file_path and pos.
const (
	fieldIDDeleteFilePath = 2147483546
	fieldIDDeletePos      = 2147483545
)

var (
	posDeleteSchema = iceberggo.NewSchema(0,
		iceberggo.NestedField{ID: fieldIDDeleteFilePath, Name: "file_path", Type: iceberggo.PrimitiveTypes.String, Required: true},
		iceberggo.NestedField{ID: fieldIDDeletePos, Name: "pos", Type: iceberggo.PrimitiveTypes.Int64, Required: true},
	)
	posDeleteArrow = arrow.NewSchema([]arrow.Field{
		{Name: "file_path", Type: arrow.BinaryTypes.String, Metadata: arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{"2147483546"})},
		{Name: "pos", Type: arrow.PrimitiveTypes.Int64, Metadata: arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{"2147483545"})},
	}, nil)
)

// rowRef is a row of a data file.
type rowRef struct {
	path string
	pos  int64
}

func compareRef(a, b rowRef) int {
	if c := strings.Compare(a.path, b.path); c != 0 {
		return c
	}
	switch {
	case a.pos < b.pos:
		return -1
	case a.pos > b.pos:
		return 1
	}
	return 0
}

// writePositionDeletes writes the position deletes of refs, one file per
// data file they delete rows of (file-scoped: its referenced data file is
// set). One file per data file costs a few small files per commit, but it
// is what keeps maintenance cheap: a data file's own delete files can be
// merged into one without rewriting the data, and dropped with the data
// file, whereas a delete file shared by many data files stays until all
// of them are rewritten, and readers must check it against every one.
// It returns the files with the refs sorted and deduplicated.
func (w *dataWriter) writePositionDeletes(refs []rowRef) ([]*writtenFile, []rowRef, error) {
	if len(refs) == 0 {
		return nil, nil, nil
	}
	slices.SortFunc(refs, compareRef)
	refs = slices.CompactFunc(refs, func(a, b rowRef) bool { return compareRef(a, b) == 0 })
	var out []*writtenFile
	for start := 0; start < len(refs); {
		end := start + 1
		for end < len(refs) && refs[end].path == refs[start].path {
			end++
		}
		f, err := w.writeDeleteFile(refs[start:end])
		if err != nil {
			return nil, nil, err
		}
		out = append(out, f)
		start = end
	}
	return out, refs, nil
}

// writeDeleteFile writes one position delete file of refs (sorted,
// distinct, all of one data file).
func (w *dataWriter) writeDeleteFile(refs []rowRef) (*writtenFile, error) {
	path := w.newPath("deletes")
	fw, err := w.fs.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	w.created = append(w.created, path)
	cw := &countingWriter{w: fw}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(1), parquet.WithMaxRowGroupLength(1<<20), parquet.WithStats(true))
	pw, err := pqarrow.NewFileWriter(posDeleteArrow, cw, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		fw.Close()
		return nil, err
	}
	const chunk = 64 << 10
	for start := 0; start < len(refs); start += chunk {
		end := min(start+chunk, len(refs))
		pb := array.NewStringBuilder(memory.DefaultAllocator)
		ib := array.NewInt64Builder(memory.DefaultAllocator)
		for _, r := range refs[start:end] {
			pb.Append(r.path)
			ib.Append(r.pos)
		}
		pa, ia := pb.NewArray(), ib.NewArray()
		pb.Release()
		ib.Release()
		rec := array.NewRecordBatch(posDeleteArrow, []arrow.Array{pa, ia}, int64(end-start))
		err := pw.WriteBuffered(rec)
		rec.Release()
		pa.Release()
		ia.Release()
		if err != nil {
			pw.Close()
			return nil, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := pw.Close(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	md, err := pw.FileMetadata()
	if err != nil {
		return nil, err
	}
	args := table.DataFileArgs{
		Schema: posDeleteSchema, Spec: w.spec, Format: iceberggo.ParquetFile, Metadata: md,
		FilePath: path, FileSize: cw.n, Content: iceberggo.EntryContentPosDeletes,
		Properties: w.props, FormatVersion: 2,
	}
	// A file-scoped delete file: readers skip it for every other file.
	// It names its data file, unless that file is added by this very
	// commit (a key that came twice): iceberg-go checks a referenced data
	// file against the snapshot before, so that one is scoped by its
	// exact file_path bounds alone (full metrics, not truncated).
	if ref := refs[0].path; !slices.Contains(w.created, ref) {
		args.ReferencedDataFile = &ref
	} else {
		args.Properties = maps.Clone(w.props)
		if args.Properties == nil {
			args.Properties = iceberggo.Properties{}
		}
		args.Properties[table.MetricsModeColumnConfPrefix+".file_path"] = "full"
	}
	df, err := table.DataFileFromMetadata(args)
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", path, err)
	}
	return &writtenFile{path: path, rows: int64(len(refs)), df: df, refs: refs}, nil
}

// newTxPrefix names a transaction's files: unique, so that a file is
// never overwritten, and telling which commit wrote it.
func newTxPrefix() string { return uuid.NewString() }

var errEnded = errors.New("iceberg: the transaction has ended")

// parallelWriter spreads a Replace's or an Append's records over
// writers of their own files, each in its own goroutine, so that
// encoding and compression use every core (positions are not needed:
// nothing deletes these rows by position in the same commit). Memory is
// a row group and a queued record per writer.
type parallelWriter struct {
	workers []*dataWriter
	chans   []chan arrow.RecordBatch
	next    int
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
	done    bool
}

// parallelWriters is how many writers a Replace or Append runs.
var parallelWriters = min(runtime.GOMAXPROCS(0), 2)

func newParallelWriter(ctx context.Context, tbl *table.Table, sc *iceberggo.Schema, prefix string, n int) (*parallelWriter, error) {
	p := &parallelWriter{}
	for i := range n {
		dw, err := newDataWriter(ctx, tbl, sc, fmt.Sprintf("%s-w%d", prefix, i))
		if err != nil {
			return nil, err
		}
		ch := make(chan arrow.RecordBatch, 1)
		p.workers = append(p.workers, dw)
		p.chans = append(p.chans, ch)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for rec := range ch {
				if p.failed() == nil {
					if _, _, err := dw.write(rec); err != nil {
						p.fail(err)
					}
				}
				rec.Release()
			}
		}()
	}
	return p, nil
}

func (p *parallelWriter) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *parallelWriter) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// write hands rec (released by the writer) to the next writer.
func (p *parallelWriter) write(ctx context.Context, rec arrow.RecordBatch) error {
	if err := p.failed(); err != nil {
		rec.Release()
		return err
	}
	select {
	case p.chans[p.next] <- rec:
	case <-ctx.Done():
		rec.Release()
		return ctx.Err()
	}
	p.next = (p.next + 1) % len(p.chans)
	return nil
}

// finish waits for the writers and moves their files, closed unless
// the writing failed, into dw.
func (p *parallelWriter) finish(dw *dataWriter) error {
	if !p.done {
		p.done = true
		for _, ch := range p.chans {
			close(ch)
		}
		p.wg.Wait()
	}
	err := p.failed()
	for _, w := range p.workers {
		if err == nil {
			err = w.closeFile()
		} else if w.cur != nil {
			w.cur.pw.Close()
			w.cur = nil
		}
		dw.files = append(dw.files, w.files...)
		dw.created = append(dw.created, w.created...)
		w.files, w.created = nil, nil
	}
	return err
}
