package parquet

import (
	"fmt"
	"reflect"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/sluice-dev/sluice/internal/records"
)

// SyncedAtColumn is the metadata column the writer adds to every row: when
// the commit that wrote the row began (TIMESTAMP micros, UTC).
const SyncedAtColumn = "_sluice_synced_at"

var syncedAtType = records.ParquetType{
	Physical:      records.PhysicalInt64,
	Logical:       records.LogicalTimestamp,
	AdjustedToUTC: true,
	Name:          "TIMESTAMP(MICROS,UTC)",
}

// parquetSchema builds the Parquet schema of a table schema: one OPTIONAL
// column per column, in the table's order (parquet.Group would sort them by
// name, so the root is an orderedGroup).
func parquetSchema(s *records.Schema) (*pq.Schema, error) {
	root := make(orderedGroup, len(s.Columns))
	for i, c := range s.Columns {
		n, err := columnNode(c.Type)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		root[i] = field{Node: pq.Optional(n), name: c.Name}
	}
	return pq.NewSchema("schema", root), nil
}

// columnNode is the Parquet node of a column type (SPEC §5), before it is
// made OPTIONAL.
func columnNode(t records.ParquetType) (node pq.Node, err error) {
	// The constructors of parquet-go panic on impossible combinations
	// (DECIMAL(40) on INT64); a bad type from a source is an error.
	defer func() {
		if r := recover(); r != nil {
			node, err = nil, fmt.Errorf("unsupported Parquet type %s: %v", describe(t), r)
		}
	}()
	switch t.Logical {
	case records.LogicalNone:
		switch t.Physical {
		case records.PhysicalBoolean:
			return pq.Leaf(pq.BooleanType), nil
		case records.PhysicalInt32:
			return pq.Leaf(pq.Int32Type), nil
		case records.PhysicalInt64:
			return pq.Leaf(pq.Int64Type), nil
		case records.PhysicalFloat:
			return pq.Leaf(pq.FloatType), nil
		case records.PhysicalDouble:
			return pq.Leaf(pq.DoubleType), nil
		case records.PhysicalByteArray:
			return pq.Leaf(pq.ByteArrayType), nil
		case records.PhysicalFixedLenByteArray:
			if t.Length <= 0 {
				return nil, fmt.Errorf("FIXED_LEN_BYTE_ARRAY without a length")
			}
			return pq.Leaf(pq.FixedLenByteArrayType(t.Length)), nil
		}
	case records.LogicalInt16:
		if t.Physical == records.PhysicalInt32 {
			return pq.Int(16), nil
		}
	case records.LogicalDecimal:
		switch t.Physical {
		case records.PhysicalInt32:
			return pq.Decimal(t.Scale, t.Precision, pq.Int32Type), nil
		case records.PhysicalInt64:
			return pq.Decimal(t.Scale, t.Precision, pq.Int64Type), nil
		case records.PhysicalFixedLenByteArray:
			if t.Length <= 0 {
				return nil, fmt.Errorf("DECIMAL on FIXED_LEN_BYTE_ARRAY without a length")
			}
			return pq.Decimal(t.Scale, t.Precision, pq.FixedLenByteArrayType(t.Length)), nil
		}
	case records.LogicalString:
		if t.Physical == records.PhysicalByteArray {
			return pq.String(), nil
		}
	case records.LogicalJSON:
		if t.Physical == records.PhysicalByteArray {
			return pq.JSON(), nil
		}
	case records.LogicalDate:
		if t.Physical == records.PhysicalInt32 {
			return pq.Date(), nil
		}
	case records.LogicalTime:
		if t.Physical == records.PhysicalInt64 {
			return pq.TimeAdjusted(pq.Microsecond, false), nil
		}
	case records.LogicalTimestamp:
		if t.Physical == records.PhysicalInt64 {
			return pq.TimestampAdjusted(pq.Microsecond, t.AdjustedToUTC), nil
		}
	case records.LogicalList:
		if t.Physical == records.PhysicalGroup && t.Element != nil && t.Element.Physical != records.PhysicalGroup {
			elem, err := columnNode(*t.Element)
			if err != nil {
				return nil, err
			}
			// Elements are OPTIONAL: PostgreSQL arrays hold NULLs. pq.List
			// writes the standard 3-level form: <col> (LIST) / list
			// (repeated) / element.
			return pq.List(pq.Optional(elem)), nil
		}
	}
	return nil, fmt.Errorf("unsupported Parquet type %s", describe(t))
}

func describe(t records.ParquetType) string {
	if t.Name != "" {
		return t.Name
	}
	if t.Logical != "" {
		return fmt.Sprintf("%s(%s)", t.Logical, t.Physical)
	}
	return string(t.Physical)
}

// sameType reports whether two column types are written the same way, so
// that files of one can be read as the other.
func sameType(a, b records.ParquetType) bool {
	if a.Physical != b.Physical || a.Logical != b.Logical || a.AdjustedToUTC != b.AdjustedToUTC {
		return false
	}
	switch {
	case a.Logical == records.LogicalDecimal && (a.Precision != b.Precision || a.Scale != b.Scale):
		return false
	case a.Physical == records.PhysicalFixedLenByteArray && a.Length != b.Length:
		return false
	case a.Physical == records.PhysicalGroup:
		if a.Element == nil || b.Element == nil {
			return a.Element == b.Element
		}
		return sameType(*a.Element, *b.Element)
	}
	return true
}

// orderedGroup is a Parquet group whose fields keep the order given, unlike
// parquet.Group, which sorts them by name: a table's columns are written in
// source order, so SELECT * shows them as the source does.
type orderedGroup []pq.Field

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return pq.NewSchema("", g).String() }
func (g orderedGroup) Type() pq.Type               { return pq.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []pq.Field          { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }

// GoType is a map: rows of a table are never Go structs here (column names
// need not be Go identifiers), values are written column by column.
func (g orderedGroup) GoType() reflect.Type { return reflect.TypeFor[map[string]any]() }

type field struct {
	pq.Node
	name string
}

func (f field) Name() string { return f.name }

func (f field) Value(base reflect.Value) reflect.Value {
	if base.Kind() == reflect.Map {
		return base.MapIndex(reflect.ValueOf(f.name))
	}
	return reflect.Value{}
}
