package iceberg

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	iceberggo "github.com/apache/iceberg-go"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// icebergSchema maps a records schema (plus _sluice_synced_at) to an
// Iceberg schema with field ids in source order.
func icebergSchema(s *records.Schema) (*iceberggo.Schema, error) {
	id := 0
	next := func() int { id++; return id }
	fields := make([]iceberggo.NestedField, 0, len(s.Columns)+1)
	for _, c := range s.Columns {
		fid := next()
		typ, err := icebergType(c.Type, next)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		fields = append(fields, iceberggo.NestedField{ID: fid, Name: c.Name, Type: typ})
	}
	fields = append(fields, iceberggo.NestedField{ID: next(), Name: SyncedAtColumn, Type: iceberggo.PrimitiveTypes.TimestampTz})
	return iceberggo.NewSchema(0, fields...), nil
}

// icebergType is SPEC §5's type t as an Iceberg type; next hands out the
// field ids of list elements.
func icebergType(t records.ParquetType, next func() int) (iceberggo.Type, error) {
	switch t.Logical {
	case records.LogicalDecimal:
		if t.Precision < 1 || t.Precision > 38 {
			return nil, fmt.Errorf("%s: Iceberg decimals hold 1 to 38 digits", t.Name)
		}
		return iceberggo.DecimalTypeOf(t.Precision, t.Scale), nil
	case records.LogicalString, records.LogicalJSON:
		return iceberggo.PrimitiveTypes.String, nil
	case records.LogicalDate:
		return iceberggo.PrimitiveTypes.Date, nil
	case records.LogicalTime:
		return iceberggo.PrimitiveTypes.Time, nil
	case records.LogicalTimestamp:
		if t.AdjustedToUTC {
			return iceberggo.PrimitiveTypes.TimestampTz, nil
		}
		return iceberggo.PrimitiveTypes.Timestamp, nil
	case records.LogicalList:
		if t.Element == nil {
			return nil, fmt.Errorf("%s: a list without an element type", t.Name)
		}
		eid := next()
		et, err := icebergType(*t.Element, next)
		if err != nil {
			return nil, err
		}
		return &iceberggo.ListType{ElementID: eid, Element: et}, nil
	}
	switch t.Physical {
	case records.PhysicalBoolean:
		return iceberggo.PrimitiveTypes.Bool, nil
	case records.PhysicalInt32:
		return iceberggo.PrimitiveTypes.Int32, nil
	case records.PhysicalInt64:
		return iceberggo.PrimitiveTypes.Int64, nil
	case records.PhysicalFloat:
		return iceberggo.PrimitiveTypes.Float32, nil
	case records.PhysicalDouble:
		return iceberggo.PrimitiveTypes.Float64, nil
	case records.PhysicalByteArray:
		return iceberggo.PrimitiveTypes.Binary, nil
	}
	return nil, fmt.Errorf("type %s has no Iceberg type", t.Name)
}

// compatible reports a column of want whose type differs from the same
// column of have (wrapping warehouse.ErrSchemaChanged).
func compatible(have, want *iceberggo.Schema) error {
	for _, f := range want.Fields() {
		h, ok := have.FindFieldByName(f.Name)
		if ok && !h.Type.Equals(f.Type) {
			return fmt.Errorf("column %q is %s in the table and %s now: %w", f.Name, h.Type, f.Type, errSchemaChanged)
		}
	}
	return nil
}

// newColumns is the columns of want that have lacks.
func newColumns(have, want *iceberggo.Schema) []iceberggo.NestedField {
	var out []iceberggo.NestedField
	for _, f := range want.Fields() {
		if _, ok := have.FindFieldByName(f.Name); !ok {
			out = append(out, f)
		}
	}
	return out
}

// cloneBatch copies b deeply enough to survive the caller reusing it.
func cloneBatch(b *records.Batch) records.Batch {
	out := records.Batch{Schema: b.Schema, N: b.N, Cols: make([]records.Vec, len(b.Cols))}
	for i := range b.Cols {
		out.Cols[i] = cloneVec(&b.Cols[i])
	}
	return out
}

func cloneVec(v *records.Vec) records.Vec {
	c := records.Vec{
		Valid:   append([]bool(nil), v.Valid...),
		Bool:    append([]bool(nil), v.Bool...),
		I32:     append([]int32(nil), v.I32...),
		I64:     append([]int64(nil), v.I64...),
		F32:     append([]float32(nil), v.F32...),
		F64:     append([]float64(nil), v.F64...),
		Offsets: append([]int32(nil), v.Offsets...),
		Data:    append([]byte(nil), v.Data...),
	}
	if v.List != nil {
		c.List = &records.ListVec{Offsets: append([]int32(nil), v.List.Offsets...), Elem: cloneVec(&v.List.Elem)}
	}
	return c
}

// toArrow converts a batch to an Arrow record of the table's Arrow schema
// asc, matching columns by name: table columns the batch lacks are NULL,
// _sluice_synced_at is syncedAt.
func toArrow(mem memory.Allocator, asc *arrow.Schema, b *records.Batch, syncedAt time.Time) (arrow.RecordBatch, error) {
	rb := array.NewRecordBuilder(mem, asc)
	defer rb.Release()
	for fi, f := range asc.Fields() {
		fb := rb.Field(fi)
		fb.Reserve(b.N)
		if f.Name == SyncedAtColumn {
			ts := arrow.Timestamp(syncedAt.UnixMicro())
			for i := 0; i < b.N; i++ {
				fb.(*array.TimestampBuilder).Append(ts)
			}
			continue
		}
		ci := b.Schema.Index(f.Name)
		if ci < 0 {
			fb.AppendNulls(b.N)
			continue
		}
		col := b.Schema.Columns[ci]
		if appendBulk(fb, &b.Cols[ci], b.N) {
			continue
		}
		if err := appendVec(fb, col.Type, &b.Cols[ci], 0, b.N); err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name, err)
		}
	}
	return rb.NewRecordBatch(), nil
}

// appendBulk appends the first n values of v to fb at once where the
// types allow (the value slices are Arrow's); false: value by value.
func appendBulk(fb array.Builder, v *records.Vec, n int) bool {
	var valid []bool
	if v.Valid != nil {
		valid = v.Valid[:n]
	}
	switch b := fb.(type) {
	case *array.Int64Builder:
		if len(v.I64) >= n {
			b.AppendValues(v.I64[:n], valid)
			return true
		}
	case *array.Int32Builder:
		if len(v.I32) >= n {
			b.AppendValues(v.I32[:n], valid)
			return true
		}
	case *array.Float64Builder:
		if len(v.F64) >= n {
			b.AppendValues(v.F64[:n], valid)
			return true
		}
	case *array.Float32Builder:
		if len(v.F32) >= n {
			b.AppendValues(v.F32[:n], valid)
			return true
		}
	case *array.BooleanBuilder:
		if len(v.Bool) >= n {
			b.AppendValues(v.Bool[:n], valid)
			return true
		}
	case *array.TimestampBuilder:
		if len(v.I64) >= n && n > 0 {
			b.AppendValues(unsafe.Slice((*arrow.Timestamp)(unsafe.Pointer(&v.I64[0])), n), valid)
			return true
		}
	case *array.Time64Builder:
		if len(v.I64) >= n && n > 0 {
			b.AppendValues(unsafe.Slice((*arrow.Time64)(unsafe.Pointer(&v.I64[0])), n), valid)
			return true
		}
	case *array.Date32Builder:
		if len(v.I32) >= n && n > 0 {
			b.AppendValues(unsafe.Slice((*arrow.Date32)(unsafe.Pointer(&v.I32[0])), n), valid)
			return true
		}
	case *array.StringBuilder:
		if len(v.Offsets) > n {
			b.ReserveData(int(v.Offsets[n] - v.Offsets[0]))
			for i := 0; i < n; i++ {
				if v.IsNull(i) {
					b.AppendNull()
				} else {
					b.BinaryBuilder.Append(v.Data[v.Offsets[i]:v.Offsets[i+1]])
				}
			}
			return true
		}
	case *array.Decimal128Builder:
		switch {
		case len(v.I64) >= n:
			b.Reserve(n)
			for i := 0; i < n; i++ {
				if v.IsNull(i) {
					b.AppendNull()
				} else {
					b.UnsafeAppend(decimal128.FromI64(v.I64[i]))
				}
			}
			return true
		case len(v.I32) >= n:
			b.Reserve(n)
			for i := 0; i < n; i++ {
				if v.IsNull(i) {
					b.AppendNull()
				} else {
					b.UnsafeAppend(decimal128.FromI64(int64(v.I32[i])))
				}
			}
			return true
		}
	case *array.ListBuilder:
		l := v.List
		if l == nil || len(l.Offsets) <= n || l.Offsets[0] != 0 || l.Elem.HasExact() {
			return false
		}
		valid := valid
		if valid == nil {
			valid = make([]bool, n)
			for i := range valid {
				valid[i] = true
			}
		}
		m := int(l.Offsets[n])
		eb := b.ValueBuilder()
		if !appendBulk(eb, &l.Elem, m) {
			return false
		}
		b.AppendValues(l.Offsets[:n], valid)
		return true
	case *array.BinaryBuilder:
		if len(v.Offsets) > n {
			b.ReserveData(int(v.Offsets[n] - v.Offsets[0]))
			for i := 0; i < n; i++ {
				if v.IsNull(i) {
					b.AppendNull()
				} else {
					b.Append(v.Data[v.Offsets[i]:v.Offsets[i+1]])
				}
			}
			return true
		}
	}
	return false
}

// appendVec appends values [from, to) of v, of type t, to fb.
func appendVec(fb array.Builder, t records.ParquetType, v *records.Vec, from, to int) error {
	for i := from; i < to; i++ {
		if v.IsNull(i) {
			fb.AppendNull()
			continue
		}
		switch b := fb.(type) {
		case *array.BooleanBuilder:
			b.Append(v.Bool[i])
		case *array.Int32Builder:
			b.Append(v.I32[i])
		case *array.Int64Builder:
			b.Append(v.I64[i])
		case *array.Float32Builder:
			b.Append(v.F32[i])
		case *array.Float64Builder:
			b.Append(v.F64[i])
		case *array.Date32Builder:
			b.Append(arrow.Date32(v.I32[i]))
		case *array.Time64Builder:
			b.Append(arrow.Time64(v.I64[i]))
		case *array.TimestampBuilder:
			b.Append(arrow.Timestamp(v.I64[i]))
		case *array.StringBuilder:
			b.BinaryBuilder.Append(v.Bytes(i))
		case *array.BinaryBuilder:
			b.Append(v.Bytes(i))
		case *array.Decimal128Builder:
			n, err := decimalAt(t, v, i)
			if err != nil {
				return err
			}
			b.Append(n)
		case *array.ListBuilder:
			if v.List == nil || t.Element == nil {
				return fmt.Errorf("a list column without list values")
			}
			b.Append(true)
			if err := appendVec(b.ValueBuilder(), *t.Element, &v.List.Elem, int(v.List.Offsets[i]), int(v.List.Offsets[i+1])); err != nil {
				return err
			}
		default:
			return fmt.Errorf("no conversion of %s to Arrow %T", t.Name, fb)
		}
	}
	return nil
}

// decimalAt is decimal value i of v: unscaled in I32 or I64, or
// big-endian two's complement bytes.
func decimalAt(t records.ParquetType, v *records.Vec, i int) (decimal128.Num, error) {
	switch t.Physical {
	case records.PhysicalInt32:
		return decimal128.FromI64(int64(v.I32[i])), nil
	case records.PhysicalInt64:
		return decimal128.FromI64(v.I64[i]), nil
	}
	raw := v.Bytes(i)
	if len(raw) > 16 {
		return decimal128.Num{}, fmt.Errorf("a decimal of %d bytes does not fit 128 bits", len(raw))
	}
	var buf [16]byte
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		for k := range buf {
			buf[k] = 0xff
		}
	}
	copy(buf[16-len(raw):], raw)
	return decimal128.New(int64(binary.BigEndian.Uint64(buf[:8])), binary.BigEndian.Uint64(buf[8:])), nil
}

// syncedAtType is _sluice_synced_at's type in the recorded schema.
var syncedAtType = records.ParquetType{
	Physical:      records.PhysicalInt64,
	Logical:       records.LogicalTimestamp,
	AdjustedToUTC: true,
	Name:          "TIMESTAMP(MICROS,UTC)",
}

// recordedSchema is the schema a commit records: for Replace the new
// columns alone, for Merge and Append the previous ones with the new
// added (a column the source dropped stays); _sluice_synced_at last.
func recordedSchema(prev, s *records.Schema, mode warehouse.Mode) *records.Schema {
	out := &records.Schema{PrimaryKey: append([]string(nil), s.PrimaryKey...)}
	if mode != warehouse.Replace && prev != nil {
		// The table's columns in their order: the previous ones first.
		var kept []records.Column
		for _, c := range prev.Columns {
			if i := s.Index(c.Name); i >= 0 {
				kept = append(kept, s.Columns[i])
			} else if c.Name != SyncedAtColumn {
				kept = append(kept, c)
			}
		}
		for _, c := range s.Columns {
			if prev.Index(c.Name) < 0 {
				kept = append(kept, c)
			}
		}
		out.Columns = kept
	} else {
		out.Columns = append(out.Columns, s.Columns...)
	}
	out.Columns = append(out.Columns, records.Column{Name: SyncedAtColumn, Type: syncedAtType, SourceType: "timestamptz", Nullable: true})
	return out
}

// appendArrow appends value i of arr (read from a data file) to dst, of
// type t.
func appendArrow(dst *records.Vec, t records.ParquetType, arr arrow.Array, i int) error {
	if arr == nil || arr.IsNull(i) {
		dst.AppendNull()
		return nil
	}
	switch a := arr.(type) {
	case *array.Boolean:
		dst.AppendBool(a.Value(i))
	case *array.Int32:
		if t.Physical == records.PhysicalInt64 {
			dst.AppendInt64(int64(a.Value(i)))
		} else {
			dst.AppendInt32(a.Value(i))
		}
	case *array.Int64:
		dst.AppendInt64(a.Value(i))
	case *array.Float32:
		dst.AppendFloat32(a.Value(i))
	case *array.Float64:
		dst.AppendFloat64(a.Value(i))
	case *array.Date32:
		dst.AppendInt32(int32(a.Value(i)))
	case *array.Time64:
		dst.AppendInt64(int64(a.Value(i)))
	case *array.Timestamp:
		dst.AppendInt64(int64(a.Value(i)))
	case *array.String:
		dst.AppendString(a.Value(i))
	case *array.LargeString:
		dst.AppendString(a.Value(i))
	case *array.Binary:
		dst.AppendBytes(a.Value(i))
	case *array.LargeBinary:
		dst.AppendBytes(a.Value(i))
	case *array.Decimal128:
		n := a.Value(i)
		switch t.Physical {
		case records.PhysicalInt32:
			dst.AppendInt32(int32(n.LowBits()))
		case records.PhysicalInt64:
			dst.AppendInt64(int64(n.LowBits()))
		default:
			var buf [16]byte
			binary.BigEndian.PutUint64(buf[:8], uint64(n.HighBits()))
			binary.BigEndian.PutUint64(buf[8:], n.LowBits())
			l := t.Length
			if l <= 0 || l > 16 {
				l = 16
			}
			dst.AppendBytes(buf[16-l:])
		}
	case *array.List:
		if dst.List == nil || t.Element == nil {
			return fmt.Errorf("a list value for the %s column", t.Name)
		}
		start, end := a.ValueOffsets(i)
		vals := a.ListValues()
		for j := start; j < end; j++ {
			if err := appendArrow(&dst.List.Elem, *t.Element, vals, int(j)); err != nil {
				return err
			}
		}
		dst.EndList()
	default:
		return fmt.Errorf("no conversion of Arrow %s to %s", arr.DataType(), t.Name)
	}
	return nil
}
