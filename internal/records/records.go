// Package records is how rows move from a source to the warehouse: in
// columnar batches with one schema per table, whatever path they came by
// (COPY snapshot, cursor read, CDC, API). The Parquet type of each column
// comes from the one type mapping (SPEC §5, providers/postgres MapType), so
// a row has the same values by every path.
package records

import "fmt"

// Physical is a Parquet physical type.
type Physical string

// The Parquet physical types sluice writes; PhysicalGroup stands for the
// nested group of a LIST.
const (
	PhysicalBoolean           Physical = "BOOLEAN"
	PhysicalInt32             Physical = "INT32"
	PhysicalInt64             Physical = "INT64"
	PhysicalFloat             Physical = "FLOAT"
	PhysicalDouble            Physical = "DOUBLE"
	PhysicalByteArray         Physical = "BYTE_ARRAY"
	PhysicalFixedLenByteArray Physical = "FIXED_LEN_BYTE_ARRAY"
	PhysicalGroup             Physical = "GROUP"
)

// Logical is a Parquet logical type annotation.
type Logical string

// The logical types sluice writes; LogicalNone is a plain physical value.
const (
	LogicalNone      Logical = ""
	LogicalInt16     Logical = "INT16" // INT(16, signed) over INT32
	LogicalDecimal   Logical = "DECIMAL"
	LogicalString    Logical = "STRING"
	LogicalJSON      Logical = "JSON"
	LogicalDate      Logical = "DATE"
	LogicalTime      Logical = "TIME"      // MICROS, not adjusted to UTC
	LogicalTimestamp Logical = "TIMESTAMP" // MICROS; AdjustedToUTC tells which kind
	LogicalList      Logical = "LIST"
)

// ParquetType describes the Parquet column a source type is written as.
//
// Every STRING and JSON column holds the source's text form of the value,
// so that a reader can always get the value by casting the column to text.
type ParquetType struct {
	Physical Physical
	Logical  Logical
	// Precision and Scale are set for DECIMAL.
	Precision, Scale int
	// Length is the byte width of a FIXED_LEN_BYTE_ARRAY (DECIMAL of more
	// than 18 digits).
	Length int
	// AdjustedToUTC is set for TIMESTAMP from timestamptz.
	AdjustedToUTC bool
	// Element is the element type of a LIST.
	Element *ParquetType
	// Name is the type as inspect shows it: "INT64", "DECIMAL(12,2)",
	// "STRING", "LIST<STRING>", "TIMESTAMP(MICROS,UTC)", "JSON".
	Name string
}

// Column is one column of a table's schema.
type Column struct {
	Name string
	Type ParquetType
	// SourceType is the type as the source names it ("numeric(12,2)"), so
	// that a type change at the source can be told from a new column.
	SourceType string
	Nullable   bool
	// SourceName is the source column's name when the column is renamed
	// in the warehouse (the table's rename attribute), "" when the names
	// are the same. Warehouses record it with the schema, so that a later
	// rename finds the column to rename in place.
	SourceName string `json:",omitempty"`
}

// Schema is the columns of a table, in source order, and its key.
type Schema struct {
	Columns []Column
	// PrimaryKey names the key columns, in key order; empty for tables
	// without a key (which can only be replaced or appended).
	PrimaryKey []string
}

// Index returns the position of the named column, or -1.
func (s *Schema) Index(name string) int {
	for i, c := range s.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// KeyIndexes returns the positions of the key columns.
func (s *Schema) KeyIndexes() ([]int, error) {
	out := make([]int, len(s.PrimaryKey))
	for i, k := range s.PrimaryKey {
		if out[i] = s.Index(k); out[i] < 0 {
			return nil, fmt.Errorf("primary key column %q is not among the columns", k)
		}
	}
	return out, nil
}

// Vec holds the values of one column of a batch. Which field holds them
// depends on the column's physical type:
//
//	BOOLEAN                         Bool
//	INT32 (int16, int32, DATE as days since 1970-01-01, DECIMAL p<=9 unscaled)   I32
//	INT64 (int64, TIME and TIMESTAMP as microseconds, DECIMAL p<=18 unscaled)    I64
//	FLOAT, DOUBLE                   F32, F64
//	BYTE_ARRAY (STRING, JSON, bytes), FIXED_LEN_BYTE_ARRAY (DECIMAL p>18,
//	big-endian two's complement)    Data[Offsets[i]:Offsets[i+1]]
//	GROUP (LIST)                    List
//
// Byte values live in one arena (Data) with Offsets of length N+1, so that a
// batch of millions of strings is a handful of allocations, not millions.
// A null value still takes its slot (zero, or an empty byte range).
type Vec struct {
	// Valid marks the non-null values; nil means every value is non-null.
	Valid []bool
	Bool  []bool
	I32   []int32
	I64   []int64
	F32   []float32
	F64   []float64
	// Offsets and Data hold byte values.
	Offsets []int32
	Data    []byte
	List    *ListVec
	// Unchanged marks values a change did not carry (PostgreSQL's
	// unchanged TOAST values in logical replication): a merge keeps the
	// stored value. nil means every value is present.
	Unchanged []bool
	// Nulled counts values set to NULL because the Parquet type cannot
	// hold them (numeric NaN in a DECIMAL column, ±infinity timestamps);
	// they are reported as warnings, never silently changed.
	Nulled int
	// Exact holds the source's exact text form of the values the Parquet
	// type cannot hold exactly (those Nulled counts, lists with such
	// elements, arrays whose bounds or dimensions a LIST drops), so that
	// a warehouse whose columns keep the source's types writes them as
	// they are; nil when there are none. Only a batch's column vectors
	// carry it, never a list's elements.
	Exact *Exact
}

// Exact is the exact text forms of some values of a Vec, in row order:
// row Rows[k]'s is Data[Offsets[k]:Offsets[k+1]].
type Exact struct {
	Rows    []int32
	Offsets []int32
	Data    []byte
	// Nulled is how many of the Vec's Nulled values these texts keep.
	Nulled int
}

// SetExact records the exact text form of the value last appended (the
// source's text form, which the source type's input function reads back
// as the same value), which kept nulled of the values the Vec's Nulled
// counts. text is copied.
func (v *Vec) SetExact(text []byte, nulled int) {
	v.setExact(int32(v.Len()-1), text, nulled)
}

func (v *Vec) setExact(row int32, text []byte, nulled int) {
	e := v.Exact
	if e == nil {
		e = &Exact{Offsets: []int32{0}}
		v.Exact = e
	}
	if n := len(e.Rows); n > 0 && e.Rows[n-1] == row {
		// The value was replaced (appended again at the same row).
		e.Data = e.Data[:e.Offsets[n-1]]
		e.Rows, e.Offsets = e.Rows[:n-1], e.Offsets[:n]
	}
	e.Rows = append(e.Rows, row)
	e.Data = append(e.Data, text...)
	e.Offsets = append(e.Offsets, int32(len(e.Data)))
	e.Nulled += nulled
}

// ExactAt returns the exact text form recorded for value i, if any.
func (v *Vec) ExactAt(i int) ([]byte, bool) {
	e := v.Exact
	if e == nil || len(e.Rows) == 0 {
		return nil, false
	}
	lo, hi := 0, len(e.Rows)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if int(e.Rows[m]) < i {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(e.Rows) && int(e.Rows[lo]) == i {
		return e.Data[e.Offsets[lo]:e.Offsets[lo+1]], true
	}
	return nil, false
}

// HasExact reports whether some value of the vector has an exact text
// form recorded.
func (v *Vec) HasExact() bool { return v.Exact != nil && len(v.Exact.Rows) > 0 }

// AppendFrom appends value i of src to v, both of type t, with its exact
// text form (CopyExact); a value src lacks (i past its end) is NULL.
func (v *Vec) AppendFrom(t ParquetType, src *Vec, i int) {
	if src.IsNull(i) || src.Len() <= i {
		v.AppendNull()
		v.CopyExact(src, i)
		return
	}
	switch t.Physical {
	case PhysicalBoolean:
		v.AppendBool(src.Bool[i])
	case PhysicalInt32:
		v.AppendInt32(src.I32[i])
	case PhysicalInt64:
		v.AppendInt64(src.I64[i])
	case PhysicalFloat:
		v.AppendFloat32(src.F32[i])
	case PhysicalDouble:
		v.AppendFloat64(src.F64[i])
	case PhysicalByteArray, PhysicalFixedLenByteArray:
		v.AppendBytes(src.Data[src.Offsets[i]:src.Offsets[i+1]])
	case PhysicalGroup:
		elem := ParquetType{Physical: PhysicalByteArray}
		if t.Element != nil {
			elem = *t.Element
		}
		for j := src.List.Offsets[i]; j < src.List.Offsets[i+1]; j++ {
			v.List.Elem.AppendFrom(elem, &src.List.Elem, int(j))
		}
		v.EndList()
	default:
		v.AppendNull()
		return
	}
	// A value can carry an exact text form too (a list's bounds and
	// dimensions).
	v.CopyExact(src, i)
}

// CopyExact records for the value last appended to v the exact text
// form that value i of src has, if any: the way rows are copied between
// batches keeps them.
func (v *Vec) CopyExact(src *Vec, i int) {
	if text, ok := src.ExactAt(i); ok {
		v.SetExact(text, 0)
	}
}

// LostNulled is how many of the values Nulled counts have no exact text
// form: what a warehouse whose columns keep the source's types still
// writes as NULL.
func (v *Vec) LostNulled() int {
	n := v.Nulled
	if v.Exact != nil {
		n -= v.Exact.Nulled
	}
	if v.List != nil {
		n += v.List.Elem.Nulled
	}
	return max(n, 0)
}

// ListVec holds the values of a LIST column: row i's elements are
// Elem[Offsets[i]:Offsets[i+1]].
type ListVec struct {
	Offsets []int32
	Elem    Vec
}

// IsNull reports whether value i is null.
func (v *Vec) IsNull(i int) bool { return v.Valid != nil && !v.Valid[i] }

// Bytes returns byte value i (nil for a null).
func (v *Vec) Bytes(i int) []byte {
	if v.IsNull(i) {
		return nil
	}
	return v.Data[v.Offsets[i]:v.Offsets[i+1]]
}

// Batch is a set of rows of one table, column by column.
type Batch struct {
	Schema *Schema
	N      int   // number of rows
	Cols   []Vec // one per schema column
}

// NewBatch returns an empty batch of the schema with room for n rows.
func NewBatch(s *Schema, n int) *Batch {
	b := &Batch{Schema: s, Cols: make([]Vec, len(s.Columns))}
	for i, c := range s.Columns {
		b.Cols[i] = newVec(c.Type, n)
	}
	return b
}

func newVec(t ParquetType, n int) Vec {
	var v Vec
	switch t.Physical {
	case PhysicalBoolean:
		v.Bool = make([]bool, 0, n)
	case PhysicalInt32:
		v.I32 = make([]int32, 0, n)
	case PhysicalInt64:
		v.I64 = make([]int64, 0, n)
	case PhysicalFloat:
		v.F32 = make([]float32, 0, n)
	case PhysicalDouble:
		v.F64 = make([]float64, 0, n)
	case PhysicalByteArray, PhysicalFixedLenByteArray:
		v.Offsets = make([]int32, 1, n+1)
	case PhysicalGroup:
		elem := ParquetType{Physical: PhysicalByteArray}
		if t.Element != nil {
			elem = *t.Element
		}
		v.List = &ListVec{Offsets: make([]int32, 1, n+1), Elem: newVec(elem, n)}
	}
	return v
}

// Reset empties the batch, keeping its memory for the next rows.
func (b *Batch) Reset() {
	b.N = 0
	for i := range b.Cols {
		b.Cols[i].reset()
	}
}

func (v *Vec) reset() {
	v.Valid = v.Valid[:0]
	v.Bool, v.I32, v.I64, v.F32, v.F64 = v.Bool[:0], v.I32[:0], v.I64[:0], v.F32[:0], v.F64[:0]
	if v.Offsets != nil {
		v.Offsets = v.Offsets[:1]
	}
	v.Data = v.Data[:0]
	v.Unchanged = v.Unchanged[:0]
	v.Nulled = 0
	if e := v.Exact; e != nil {
		e.Rows, e.Offsets, e.Data, e.Nulled = e.Rows[:0], e.Offsets[:1], e.Data[:0], 0
	}
	if v.List != nil {
		v.List.Offsets = v.List.Offsets[:1]
		v.List.Elem.reset()
	}
}

// Len is the number of values in the vector.
func (v *Vec) Len() int {
	switch {
	case v.Bool != nil:
		return len(v.Bool)
	case v.I32 != nil:
		return len(v.I32)
	case v.I64 != nil:
		return len(v.I64)
	case v.F32 != nil:
		return len(v.F32)
	case v.F64 != nil:
		return len(v.F64)
	case v.Offsets != nil:
		return len(v.Offsets) - 1
	case v.List != nil:
		return len(v.List.Offsets) - 1
	}
	return 0
}

// setValid records the validity of the value being appended at index n,
// allocating Valid only when the first null arrives.
func (v *Vec) setValid(n int, valid bool) {
	if v.Valid == nil {
		if valid {
			return
		}
		v.Valid = make([]bool, n, max(n+1, 2*n))
		for i := range v.Valid {
			v.Valid[i] = true
		}
	}
	v.Valid = append(v.Valid, valid)
}

// AppendNull appends a null of the vector's type.
func (v *Vec) AppendNull() {
	n := v.Len()
	switch {
	case v.Bool != nil:
		v.Bool = append(v.Bool, false)
	case v.I32 != nil:
		v.I32 = append(v.I32, 0)
	case v.I64 != nil:
		v.I64 = append(v.I64, 0)
	case v.F32 != nil:
		v.F32 = append(v.F32, 0)
	case v.F64 != nil:
		v.F64 = append(v.F64, 0)
	case v.Offsets != nil:
		v.Offsets = append(v.Offsets, int32(len(v.Data)))
	case v.List != nil:
		v.List.Offsets = append(v.List.Offsets, int32(v.List.Elem.Len()))
	}
	v.setValid(n, false)
}

// AppendBool appends a boolean.
func (v *Vec) AppendBool(x bool) { v.setValid(len(v.Bool), true); v.Bool = append(v.Bool, x) }

// AppendInt32 appends an INT32 value.
func (v *Vec) AppendInt32(x int32) { v.setValid(len(v.I32), true); v.I32 = append(v.I32, x) }

// AppendInt64 appends an INT64 value.
func (v *Vec) AppendInt64(x int64) { v.setValid(len(v.I64), true); v.I64 = append(v.I64, x) }

// AppendFloat32 appends a FLOAT value.
func (v *Vec) AppendFloat32(x float32) { v.setValid(len(v.F32), true); v.F32 = append(v.F32, x) }

// AppendFloat64 appends a DOUBLE value.
func (v *Vec) AppendFloat64(x float64) { v.setValid(len(v.F64), true); v.F64 = append(v.F64, x) }

// AppendBytes appends a byte value; b is copied.
func (v *Vec) AppendBytes(b []byte) {
	v.setValid(len(v.Offsets)-1, true)
	v.Data = append(v.Data, b...)
	v.Offsets = append(v.Offsets, int32(len(v.Data)))
}

// AppendString appends a string value.
func (v *Vec) AppendString(s string) {
	v.setValid(len(v.Offsets)-1, true)
	v.Data = append(v.Data, s...)
	v.Offsets = append(v.Offsets, int32(len(v.Data)))
}

// EndList closes a list value whose elements were appended to List.Elem
// since the previous EndList (or AppendNull).
func (v *Vec) EndList() {
	v.setValid(len(v.List.Offsets)-1, true)
	v.List.Offsets = append(v.List.Offsets, int32(v.List.Elem.Len()))
}

// Position is how far a table's sync has got, committed in the warehouse
// manifest with the data it covers (DESIGN invariant 1).
type Position struct {
	// Cursor is the last cursor value committed (incremental, append), in
	// the source's text form; "" before the first sync.
	Cursor string `json:"cursor,omitempty"`
	// BoundaryKeys are the encoded keys of the rows whose cursor equals
	// Cursor: the next read starts at Cursor again (>=, so rows committed
	// later with the same value are not lost) and skips these.
	BoundaryKeys []string `json:"boundary_keys,omitempty"`
	// AfterKey is set when a batched read (batch_size) committed part-way:
	// the text forms of the key columns of the last row committed, which
	// Cursor holds the cursor value (for an xmin table, the xmin) of. The
	// next read continues after (Cursor, AfterKey) in cursor-then-key
	// order; its final position has no AfterKey.
	AfterKey []string `json:"after_key,omitempty"`
	// Xmin is the 64-bit (epoch-extended) transaction id up to which rows
	// were read (xmin sync).
	Xmin uint64 `json:"xmin,omitempty"`
	// LSN is the commit LSN up to which changes were applied (cdc), as
	// PostgreSQL writes it ("16/B374D848").
	LSN string `json:"lsn,omitempty"`
	// SnapshotDone reports that the initial snapshot of a cdc table
	// committed.
	SnapshotDone bool `json:"snapshot_done,omitempty"`
	// Extra holds source-specific positions (API cursors).
	Extra map[string]string `json:"extra,omitempty"`
}
