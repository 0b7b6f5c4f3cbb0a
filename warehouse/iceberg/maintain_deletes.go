package iceberg

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

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

// consolidation merges the position delete files that apply to one data
// file only (file-scoped) into one, as Iceberg's
// rewrite_position_delete_files does: a reader then opens one delete file
// per data file, and the cost is that of the deletes, not of the data
// file (whose rewrite waits until DeleteRatioThreshold of it is deleted).
type consolidation struct {
	target  iceberggo.DataFile
	deletes []iceberggo.DataFile
	bytes   int64
}

var posFieldID = func() int {
	f, _ := iceberggo.PositionalDeleteSchema.FindFieldByName("pos")
	return f.ID
}()

// consolidatable says whether the data file's partition values can be
// written into a new delete file's manifest entry as they are (the
// partition types sluice uses: none, identity or bucket of a key).
func consolidatable(f iceberggo.DataFile) bool {
	for _, v := range f.Partition() {
		switch v.(type) {
		case nil, int32, int64, string:
		default:
			return false
		}
	}
	return true
}

// writeConsolidated reads c's delete files' positions for c.target and
// writes them, sorted and without duplicates, into one new position
// delete file whose file_path bounds name the target (file-scoped).
func writeConsolidated(ctx context.Context, tbl *table.Table, fs iceio.IO, c consolidation) (iceberggo.DataFile, error) {
	target := c.target.FilePath()
	var positions []int64
	for _, d := range c.deletes {
		ps, err := readPositions(ctx, fs, d.FilePath(), target)
		if err != nil {
			return nil, fmt.Errorf("reading the position delete file %s: %w", d.FilePath(), err)
		}
		positions = append(positions, ps...)
	}
	slices.Sort(positions)
	positions = slices.Compact(positions)
	if len(positions) == 0 {
		return nil, fmt.Errorf("the position delete files of %s hold no position for it", target)
	}

	sc, err := table.SchemaToArrowSchema(iceberggo.PositionalDeleteSchema, nil, true, false)
	if err != nil {
		return nil, err
	}
	pb := array.NewStringBuilder(memory.DefaultAllocator)
	defer pb.Release()
	ob := array.NewInt64Builder(memory.DefaultAllocator)
	defer ob.Release()
	for _, p := range positions {
		pb.Append(target)
		ob.Append(p)
	}
	paths, poss := pb.NewArray(), ob.NewArray()
	defer paths.Release()
	defer poss.Release()
	rec := array.NewRecordBatch(sc, []arrow.Array{paths, poss}, int64(len(positions)))
	defer rec.Release()

	locs, err := tbl.LocationProvider()
	if err != nil {
		return nil, err
	}
	path := locs.NewDataLocation("deletes-" + uuid.NewString() + ".parquet")
	wfs, ok := fs.(iceio.WriteFileIO)
	if !ok {
		return nil, fmt.Errorf("the table's file IO %T cannot write", fs)
	}
	fw, err := wfs.Create(path)
	if err != nil {
		return nil, err
	}
	cw := &countingWriter{w: fw}
	pw, err := pqarrow.NewFileWriter(sc, cw, parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd)), pqarrow.DefaultWriterProps())
	if err != nil {
		fw.Close()
		return nil, err
	}
	if err := pw.Write(rec); err != nil {
		pw.Close()
		return nil, err
	}
	// Closing the Parquet writer closes the file.
	if err := pw.Close(); err != nil {
		return nil, err
	}

	spec := tbl.Metadata().PartitionSpecByID(int(c.target.SpecID()))
	if spec == nil {
		return nil, fmt.Errorf("data file %s has the unknown partition spec %d", target, c.target.SpecID())
	}
	b, err := iceberggo.NewDataFileBuilder(*spec, iceberggo.EntryContentPosDeletes, path, iceberggo.ParquetFile,
		c.target.Partition(), nil, nil, int64(len(positions)), cw.n)
	if err != nil {
		return nil, err
	}
	le := func(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
	// Equal file_path bounds make the file apply to the target only, for
	// scan planning and for the next compaction.
	b.LowerBoundValues(map[int][]byte{filePathFieldID: []byte(target), posFieldID: le(positions[0])}).
		UpperBoundValues(map[int][]byte{filePathFieldID: []byte(target), posFieldID: le(positions[len(positions)-1])}).
		ValueCounts(map[int]int64{filePathFieldID: int64(len(positions)), posFieldID: int64(len(positions))}).
		NullValueCounts(map[int]int64{filePathFieldID: 0, posFieldID: 0})
	return b.Build(), nil
}

// readPositions reads the positions a position delete file holds for the
// data file target.
func readPositions(ctx context.Context, fs iceio.IO, path, target string) ([]int64, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	at, err := pqarrow.ReadTable(ctx, f, parquet.NewReaderProperties(memory.DefaultAllocator), pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	defer at.Release()
	sc := at.Schema()
	pi, oi := sc.FieldIndices("file_path"), sc.FieldIndices("pos")
	if len(pi) != 1 || len(oi) != 1 {
		return nil, errors.New("no file_path and pos columns")
	}
	pcol, ocol := at.Column(pi[0]).Data().Chunks(), at.Column(oi[0]).Data().Chunks()
	if len(pcol) != len(ocol) {
		return nil, errors.New("file_path and pos are chunked differently")
	}
	var out []int64
	for i := range pcol {
		ps, ok1 := pcol[i].(interface{ Value(int) string })
		os, ok2 := ocol[i].(*array.Int64)
		if !ok1 || !ok2 || pcol[i].Len() != ocol[i].Len() {
			return nil, fmt.Errorf("file_path %s and pos %s are not a string and a long", pcol[i].DataType(), ocol[i].DataType())
		}
		for j := 0; j < ocol[i].Len(); j++ {
			if ps.Value(j) == target {
				out = append(out, os.Value(j))
			}
		}
	}
	return out, nil
}

// bySize orders scan tasks by data file size.
func bySize(a, b table.FileScanTask) int {
	return cmp.Compare(a.File.FileSizeBytes(), b.File.FileSizeBytes())
}
