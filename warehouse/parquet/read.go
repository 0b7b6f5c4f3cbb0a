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
// too). Columns the file lacks read as NULL.
type fileReader struct {
	path   string
	f      *os.File
	pf     *pq.File
	schema *records.Schema
	// leaf[i] is the file column holding table column i, nil if absent.
	leaf []*fileColumn
	buf  []pq.Value
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
	if only != nil {
		for _, i := range only {
			if err := read(i); err != nil {
				return err
			}
		}
	} else {
		for i := range b.Cols {
			if err := read(i); err != nil {
				return err
			}
		}
	}
	b.N = n
	return nil
}

func (r *fileReader) readColumn(chunk pq.ColumnChunk, fc *fileColumn, v *records.Vec, t records.ParquetType) error {
	pages := chunk.Pages()
	defer pages.Close()
	if cap(r.buf) == 0 {
		r.buf = make([]pq.Value, 4096)
	}
	buf := r.buf[:cap(r.buf)]
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
