package iceberg

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go/table"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// lookupChunk bounds the rows one Lookup callback gets.
const lookupChunk = 16 << 10

// Lookup calls fn with the stored rows of the keys (a batch of the key
// columns); with current set only the versions whose valid_to is NULL.
// The rows come with the recorded schema's types.
func (t *Table) Lookup(ctx context.Context, keys *records.Batch, current bool, fn func(b *records.Batch, rows []int32) error) error {
	tbl, rs, committed := t.state()
	if !committed || rs == nil || keys == nil || keys.N == 0 || tbl == nil {
		return nil
	}
	kc := &keyColumns{schema: &records.Schema{PrimaryKey: rs.PrimaryKey}}
	sc := tbl.Schema()
	keyCols := make([]int, len(rs.PrimaryKey))
	for i, k := range rs.PrimaryKey {
		ci := keys.Schema.Index(k)
		ri := rs.Index(k)
		f, ok := sc.FindFieldByName(k)
		if ci < 0 || ri < 0 || !ok {
			return fmt.Errorf("iceberg table %s: the lookup keys lack key column %q", t.name(), k)
		}
		keyCols[i] = ci
		kc.schema.Columns = append(kc.schema.Columns, rs.Columns[ri])
		kc.ids = append(kc.ids, f.ID)
	}
	if len(kc.ids) == 1 {
		p := kc.schema.Columns[0].Type.Physical
		kc.isInt = p == records.PhysicalInt32 || p == records.PhysicalInt64
	}
	if current {
		if f, ok := sc.FindFieldByName(warehouse.ValidToColumn); ok {
			kc.validTo = f.ID
		}
	}
	enc := make([][]byte, keys.N)
	for r := 0; r < keys.N; r++ {
		enc[r] = keys.AppendKey(nil, r, keyCols)
	}
	enc = sortedKeys(enc)
	var refs []rowRef
	err := t.findRows(ctx, tbl, kc, enc, false, func(f found) error {
		refs = append(refs, f.ref)
		return nil
	})
	if err != nil {
		return fmt.Errorf("iceberg table %s: lookup: %w", t.name(), err)
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return err
	}
	ids := make([]int, len(rs.Columns))
	for i, c := range rs.Columns {
		if f, ok := sc.FindFieldByName(c.Name); ok {
			ids[i] = f.ID
		}
	}
	for start := 0; start < len(refs); start += lookupChunk {
		part := refs[start:min(start+lookupChunk, len(refs))]
		b := records.NewBatch(rs, len(part))
		if err := readRefs(ctx, fs, part, b, ids, map[rowRef]int{}); err != nil {
			return fmt.Errorf("iceberg table %s: lookup: %w", t.name(), err)
		}
		rows := make([]int32, b.N)
		for i := range rows {
			rows[i] = int32(i)
		}
		if err := fn(b, rows); err != nil {
			return err
		}
	}
	return nil
}

// Scan calls fn with every row of the current snapshot (position deletes
// applied), in batches of the recorded schema.
func (t *Table) Scan(ctx context.Context, fn func(*records.Batch) error) error {
	tbl, rs, committed := t.state()
	if !committed || rs == nil || tbl == nil || tbl.CurrentSnapshot() == nil {
		return nil
	}
	scan := tbl.Scan(table.WithSnapshotID(tbl.CurrentSnapshot().SnapshotID))
	_, recs, err := scan.ToArrowRecords(ctx)
	if err != nil {
		return fmt.Errorf("iceberg table %s: scan: %w", t.name(), err)
	}
	b := records.NewBatch(rs, 1024)
	for rec, err := range recs {
		if err != nil {
			return fmt.Errorf("iceberg table %s: scan: %w", t.name(), err)
		}
		err = func() error {
			defer rec.Release()
			b.Reset()
			cols := make([]arrow.Array, len(rs.Columns))
			for i, c := range rs.Columns {
				if idx := rec.Schema().FieldIndices(c.Name); len(idx) > 0 {
					cols[i] = rec.Column(idx[0])
				}
			}
			for r := 0; r < int(rec.NumRows()); r++ {
				for i, c := range rs.Columns {
					if err := appendArrow(&b.Cols[i], c.Type, cols[i], r); err != nil {
						return fmt.Errorf("column %q: %w", c.Name, err)
					}
				}
				b.N++
			}
			return fn(b)
		}()
		if err != nil {
			return err
		}
	}
	return nil
}
