package parquet

import (
	"errors"
	"fmt"
	"io"
	"os"

	pq "github.com/parquet-go/parquet-go"

	"github.com/sluice-dev/sluice/internal/records"
)

// fileReader reads a data file back into batches of the table schema, a
// row group at a time (row groups are bounded by the writer, so memory is
// too), its columns in parallel. Columns the file lacks read as NULL.
type fileReader struct {
	path   string
	f      *os.File
	pf     *pq.File
	schema *records.Schema
	// leaf[i] is the file column holding table column i, nil if absent.
	leaf []*fileColumn
}

type fileColumn struct {
	leaf   int // leaf column index in the file
	maxDef int
	// listDef is the definition level of a present but empty list (LIST
	// columns only); a null element has listDef+1 < maxDef.
	listDef int
	isList  bool
}

func openFile(path string, schema *records.Schema) (*fileReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening data file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening data file: %w", err)
	}
	pf, err := pq.OpenFile(f, st.Size(), pq.SkipBloomFilters(true), pq.SkipPageIndex(true), pq.ReadBufferSize(1<<20))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading data file %s: %w", path, err)
	}
	r := &fileReader{path: path, f: f, pf: pf, schema: schema, leaf: make([]*fileColumn, len(schema.Columns))}
	byName := map[string]*pq.Column{}
	for _, c := range pf.Root().Columns() {
		byName[c.Name()] = c
	}
	for i, c := range schema.Columns {
		fc := byName[c.Name]
		if fc == nil {
			continue
		}
		col, err := resolveColumn(fc, c.Type)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("reading data file %s: column %q: %w", path, c.Name, err)
		}
		r.leaf[i] = col
	}
	return r, nil
}

func resolveColumn(c *pq.Column, t records.ParquetType) (*fileColumn, error) {
	if t.Physical != records.PhysicalGroup {
		if !c.Leaf() {
			return nil, fmt.Errorf("the file holds a group where a %s is expected", describe(t))
		}
		return &fileColumn{leaf: c.Index(), maxDef: c.MaxDefinitionLevel()}, nil
	}
	// <col> (LIST) / list (repeated) / element
	if c.Leaf() || len(c.Columns()) != 1 {
		return nil, fmt.Errorf("the file does not hold a LIST")
	}
	list := c.Columns()[0]
	if !list.Repeated() || len(list.Columns()) != 1 || !list.Columns()[0].Leaf() {
		return nil, fmt.Errorf("the file holds an unsupported LIST layout")
	}
	elem := list.Columns()[0]
	return &fileColumn{leaf: elem.Index(), maxDef: elem.MaxDefinitionLevel(), listDef: c.MaxDefinitionLevel(), isList: true}, nil
}

func (r *fileReader) close() error { return r.f.Close() }

// numRowGroups is the number of row groups of the file.
func (r *fileReader) numRowGroups() int { return len(r.pf.RowGroups()) }

// readRowGroup reads row group g into b (reset first). only, when not nil,
// lists the table columns to read; the others are left empty.
func (r *fileReader) readRowGroup(g int, b *records.Batch, only []int) error {
	b.Reset()
	rg := r.pf.RowGroups()[g]
	n := int(rg.NumRows())
	chunks := rg.ColumnChunks()
	read := func(i int) error {
		v := &b.Cols[i]
		fc := r.leaf[i]
		if fc == nil {
			for range n {
				v.AppendNull()
			}
			return nil
		}
		if err := r.readColumn(chunks[fc.leaf], fc, v, r.schema.Columns[i].Type); err != nil {
			return fmt.Errorf("reading column %q of data file %s: %w", r.schema.Columns[i].Name, r.path, err)
		}
		if got := v.Len(); got != n {
			return fmt.Errorf("reading column %q of data file %s: %d values in a row group of %d rows", r.schema.Columns[i].Name, r.path, got, n)
		}
		return nil
	}
	var err error
	if only != nil {
		err = parallel(len(only), func(k int) error { return read(only[k]) })
	} else {
		err = parallel(len(b.Cols), read)
	}
	if err != nil {
		return err
	}
	b.N = n
	return nil
}

func (r *fileReader) readColumn(chunk pq.ColumnChunk, fc *fileColumn, v *records.Vec, t records.ParquetType) error {
	pages := chunk.Pages()
	defer pages.Close()
	var buf []pq.Value
	var et records.ParquetType
	if fc.isList {
		et = *t.Element
	}
	open := false // a list value is being read
	for {
		page, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if !fc.isList && fastRead(page, fc, v, t) {
			pq.Release(page)
			continue
		}
		if buf == nil {
			buf = make([]pq.Value, 1024)
		}
		values := page.Values()
		for {
			n, err := values.ReadValues(buf)
			for _, val := range buf[:n] {
				if !fc.isList {
					if val.DefinitionLevel() < fc.maxDef {
						v.AppendNull()
					} else if err := appendValue(v, t, val); err != nil {
						return err
					}
					continue
				}
				if val.RepetitionLevel() == 0 {
					if open {
						v.EndList()
						open = false
					}
					switch def := val.DefinitionLevel(); {
					case def < fc.listDef:
						v.AppendNull()
						continue
					case def == fc.listDef:
						v.EndList() // empty
						continue
					}
					open = true
				}
				if val.DefinitionLevel() < fc.maxDef {
					v.List.Elem.AppendNull()
				} else if err := appendValue(&v.List.Elem, et, val); err != nil {
					return err
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
		pq.Release(page)
	}
	if open {
		v.EndList()
	}
	return nil
}

func appendValue(v *records.Vec, t records.ParquetType, val pq.Value) error {
	switch t.Physical {
	case records.PhysicalBoolean:
		v.AppendBool(val.Boolean())
	case records.PhysicalInt32:
		v.AppendInt32(val.Int32())
	case records.PhysicalInt64:
		v.AppendInt64(val.Int64())
	case records.PhysicalFloat:
		v.AppendFloat32(val.Float())
	case records.PhysicalDouble:
		v.AppendFloat64(val.Double())
	case records.PhysicalByteArray, records.PhysicalFixedLenByteArray:
		v.AppendBytes(val.ByteArray())
	default:
		return fmt.Errorf("unsupported physical type %s", t.Physical)
	}
	return nil
}

// fastRead appends the values of a page of a flat column straight from its
// decoded buffers (no parquet.Value per value), for the physical types
// whose buffers are plain arrays; it reports false for the others
// (booleans, dictionary pages), which take the generic path.
func fastRead(page pq.Page, fc *fileColumn, v *records.Vec, t records.ParquetType) bool {
	if page.Dictionary() != nil || page.RepetitionLevels() != nil {
		return false
	}
	defs := page.DefinitionLevels()
	n := int(page.NumValues())
	if defs != nil && len(defs) != n {
		return false
	}
	maxDef := byte(fc.maxDef)
	present := func(i int) bool { return defs == nil || defs[i] == maxDef }
	base := v.Len()
	data := page.Data()
	switch t.Physical {
	case records.PhysicalInt32:
		v.I32 = appendFixed(v.I32, data.Int32(), defs, maxDef)
	case records.PhysicalInt64:
		v.I64 = appendFixed(v.I64, data.Int64(), defs, maxDef)
	case records.PhysicalFloat:
		v.F32 = appendFixed(v.F32, data.Float(), defs, maxDef)
	case records.PhysicalDouble:
		v.F64 = appendFixed(v.F64, data.Double(), defs, maxDef)
	case records.PhysicalByteArray:
		vals, offs := data.ByteArray()
		if len(offs) == 0 {
			offs = []uint32{0}
		}
		shift := int32(len(v.Data)) - int32(offs[0])
		v.Data = append(v.Data, vals[offs[0]:offs[len(offs)-1]]...)
		k := 0
		for i := range n {
			if present(i) {
				k++
			}
			v.Offsets = append(v.Offsets, int32(offs[k])+shift)
		}
	case records.PhysicalFixedLenByteArray:
		vals, size := data.FixedLenByteArray()
		k := 0
		for i := range n {
			if present(i) {
				v.Data = append(v.Data, vals[k*size:(k+1)*size]...)
				k++
			}
			v.Offsets = append(v.Offsets, int32(len(v.Data)))
		}
	default:
		return false
	}
	// Validity: Valid stays nil while every value is present.
	nulls := defs != nil && countNot(defs, maxDef) > 0
	switch {
	case v.Valid == nil && !nulls:
	case v.Valid == nil:
		v.Valid = make([]bool, base, base+n)
		for i := range v.Valid {
			v.Valid[i] = true
		}
		fallthrough
	default:
		for i := range n {
			v.Valid = append(v.Valid, present(i))
		}
	}
	return true
}

// appendFixed appends the values of a page, a zero in the slot of each
// null.
func appendFixed[T any](dst, vals []T, defs []byte, maxDef byte) []T {
	if defs == nil || len(vals) == len(defs) {
		return append(dst, vals...)
	}
	var zero T
	k := 0
	for _, d := range defs {
		if d == maxDef {
			dst = append(dst, vals[k])
			k++
		} else {
			dst = append(dst, zero)
		}
	}
	return dst
}

func countNot(defs []byte, max byte) int {
	n := 0
	for _, d := range defs {
		if d != max {
			n++
		}
	}
	return n
}
