package codec

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/records"
)

// This file is the one place where PostgreSQL types become Parquet types
// (SPEC §5). Inspect shows the mapping, and the snapshot, cursor and CDC
// readers and the Parquet writer build their schemas from it, so that a row
// gets the same values whichever path it arrives by.

// The Parquet types are records' own, so that readers, the CDC stream and
// the warehouse share one description; these names keep the mapping's
// code short.
type (
	// Physical is a Parquet physical type.
	Physical = records.Physical
	// Logical is a Parquet logical type annotation.
	Logical = records.Logical
	// ParquetType describes the Parquet column a PostgreSQL type is
	// written as (see records.ParquetType).
	ParquetType = records.ParquetType
)

// The physical and logical types, as records names them.
const (
	PhysicalBoolean           = records.PhysicalBoolean
	PhysicalInt32             = records.PhysicalInt32
	PhysicalInt64             = records.PhysicalInt64
	PhysicalFloat             = records.PhysicalFloat
	PhysicalDouble            = records.PhysicalDouble
	PhysicalByteArray         = records.PhysicalByteArray
	PhysicalFixedLenByteArray = records.PhysicalFixedLenByteArray
	PhysicalGroup             = records.PhysicalGroup

	LogicalNone      = records.LogicalNone
	LogicalInt16     = records.LogicalInt16
	LogicalDecimal   = records.LogicalDecimal
	LogicalString    = records.LogicalString
	LogicalJSON      = records.LogicalJSON
	LogicalDate      = records.LogicalDate
	LogicalTime      = records.LogicalTime
	LogicalTimestamp = records.LogicalTimestamp
	LogicalList      = records.LogicalList
)

// PGType is a PostgreSQL type as the catalog describes it, resolved far
// enough to be mapped without another query: domains carry their base type
// and arrays their element type.
type PGType struct {
	OID    uint32
	Schema string // pg_type's schema, "pg_catalog" for built-in types
	Name   string // pg_type.typname, "int4", "_text", "citext"
	// Type is pg_type.typtype: 'b' base, 'c' composite, 'd' domain,
	// 'e' enum, 'p' pseudo, 'r' range, 'm' multirange.
	Type byte
	// Category is pg_type.typcategory ('A' for arrays, 'S' for strings...).
	Category byte
	// Typmod is the type modifier in force (atttypmod of a column, typtypmod
	// for a domain's base type): numeric precision and scale, varchar
	// length; -1 when none.
	Typmod int32
	// Dims is the declared number of array dimensions (attndims, or the
	// domain's typndims), 0 when not declared. PostgreSQL does not enforce
	// it, so a reader must still be ready for a value of another shape.
	Dims int
	// Base is the base type of a domain.
	Base *PGType
	// Elem is the element type of an array.
	Elem *PGType
}

// Types the mapping recognizes that pgtype does not name: two built-in
// OIDs, and citext, an extension type whose OID differs per database.
const (
	oidInt2Vector  = 22
	oidOIDVector   = 30
	citextTypeName = "citext"
)

// maxDecimalPrecision is the largest precision a Parquet DECIMAL column is
// written with; wider numerics are written as exact strings.
const MaxDecimalPrecision = 38

// maxResolveDepth bounds the domain and array chains followed, in case the
// catalog is inconsistent: PostgreSQL itself never nests this deep.
const maxResolveDepth = 32

// builtinArrays maps the built-in array types to their element types, so
// that the mapping works without a catalog for them (CDC relation messages
// carry only OIDs).
var builtinArrays = map[uint32]uint32{
	pgtype.BoolArrayOID:        pgtype.BoolOID,
	pgtype.ByteaArrayOID:       pgtype.ByteaOID,
	pgtype.NameArrayOID:        pgtype.NameOID,
	pgtype.Int2ArrayOID:        pgtype.Int2OID,
	pgtype.Int4ArrayOID:        pgtype.Int4OID,
	pgtype.Int8ArrayOID:        pgtype.Int8OID,
	pgtype.TextArrayOID:        pgtype.TextOID,
	pgtype.BPCharArrayOID:      pgtype.BPCharOID,
	pgtype.VarcharArrayOID:     pgtype.VarcharOID,
	pgtype.Float4ArrayOID:      pgtype.Float4OID,
	pgtype.Float8ArrayOID:      pgtype.Float8OID,
	pgtype.NumericArrayOID:     pgtype.NumericOID,
	pgtype.DateArrayOID:        pgtype.DateOID,
	pgtype.TimeArrayOID:        pgtype.TimeOID,
	pgtype.TimestampArrayOID:   pgtype.TimestampOID,
	pgtype.TimestamptzArrayOID: pgtype.TimestamptzOID,
	pgtype.IntervalArrayOID:    pgtype.IntervalOID,
	pgtype.UUIDArrayOID:        pgtype.UUIDOID,
	pgtype.JSONArrayOID:        pgtype.JSONOID,
	pgtype.JSONBArrayOID:       pgtype.JSONBOID,
	pgtype.InetArrayOID:        pgtype.InetOID,
	pgtype.CIDRArrayOID:        pgtype.CIDROID,
	pgtype.MacaddrArrayOID:     pgtype.MacaddrOID,
	pgtype.TimetzArrayOID:      pgtype.TimetzOID,
	pgtype.OIDArrayOID:         pgtype.OIDOID,
}

// The Parquet types without parameters that MapType returns.
var (
	ParquetBoolean     = ParquetType{Physical: PhysicalBoolean, Name: "BOOLEAN"}
	ParquetInt16       = ParquetType{Physical: PhysicalInt32, Logical: LogicalInt16, Name: "INT16"}
	ParquetInt32       = ParquetType{Physical: PhysicalInt32, Name: "INT32"}
	ParquetInt64       = ParquetType{Physical: PhysicalInt64, Name: "INT64"}
	ParquetFloat       = ParquetType{Physical: PhysicalFloat, Name: "FLOAT"}
	ParquetDouble      = ParquetType{Physical: PhysicalDouble, Name: "DOUBLE"}
	ParquetString      = ParquetType{Physical: PhysicalByteArray, Logical: LogicalString, Name: "STRING"}
	ParquetJSON        = ParquetType{Physical: PhysicalByteArray, Logical: LogicalJSON, Name: "JSON"}
	ParquetBytes       = ParquetType{Physical: PhysicalByteArray, Name: "BYTE_ARRAY"}
	ParquetDate        = ParquetType{Physical: PhysicalInt32, Logical: LogicalDate, Name: "DATE"}
	ParquetTime        = ParquetType{Physical: PhysicalInt64, Logical: LogicalTime, Name: "TIME(MICROS)"}
	ParquetTimestamp   = ParquetType{Physical: PhysicalInt64, Logical: LogicalTimestamp, Name: "TIMESTAMP(MICROS)"}
	ParquetTimestampTZ = ParquetType{Physical: PhysicalInt64, Logical: LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}
)

// MapType returns the Parquet type of a PostgreSQL type (SPEC §5). Domains
// map as their base type, one-dimensional arrays as a LIST of their element
// type, and every type Parquet has no equivalent for as STRING.
func MapType(t *PGType) ParquetType {
	return mapType(t, 0)
}

func mapType(t *PGType, depth int) ParquetType {
	if t == nil || depth > maxResolveDepth {
		return ParquetString
	}
	if t.Type == 'd' && t.Base != nil {
		return mapType(t.Base, depth+1)
	}
	if elem := ArrayElem(t); elem != nil {
		if t.Dims > 1 {
			// Parquet LISTs of LISTs would need the dimensions fixed per
			// column; PostgreSQL fixes them per value.
			return ParquetString
		}
		e := mapType(elem, depth+1)
		return ParquetType{Physical: PhysicalGroup, Logical: LogicalList, Element: &e, Name: "LIST<" + e.Name + ">"}
	}
	switch t.OID {
	case pgtype.BoolOID:
		return ParquetBoolean
	case pgtype.Int2OID:
		return ParquetInt16
	case pgtype.Int4OID:
		return ParquetInt32
	case pgtype.Int8OID:
		return ParquetInt64
	case pgtype.Float4OID:
		return ParquetFloat
	case pgtype.Float8OID:
		return ParquetDouble
	case pgtype.NumericOID:
		if p, s, ok := NumericTypmod(t.Typmod); ok {
			return decimalType(p, s)
		}
		return ParquetString
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.QCharOID:
		return ParquetString
	case pgtype.DateOID:
		return ParquetDate
	case pgtype.TimestampOID:
		return ParquetTimestamp
	case pgtype.TimestamptzOID:
		return ParquetTimestampTZ
	case pgtype.TimeOID:
		return ParquetTime
	case pgtype.UUIDOID:
		return ParquetString
	case pgtype.JSONOID, pgtype.JSONBOID:
		return ParquetJSON
	case pgtype.ByteaOID:
		return ParquetBytes
	}
	switch {
	case t.Type == 'e', t.Type == 'b' && t.Name == citextTypeName:
		// Enums and citext (an extension type, so without a fixed OID)
		// are text.
		return ParquetString
	}
	// interval, inet, cidr, macaddr, timetz, money, bit, xml, tsvector,
	// geometric, oid types, ranges, multiranges, composite types...
	return ParquetString
}

// arrayElem returns the element type of an array type, nil for other
// types. int2vector and oidvector have an element type but their own text
// form, so they are not treated as arrays.
func ArrayElem(t *PGType) *PGType {
	if t.OID == oidInt2Vector || t.OID == oidOIDVector {
		return nil
	}
	if t.Elem != nil && t.Category == 'A' {
		return t.Elem
	}
	if e, ok := builtinArrays[t.OID]; ok && t.Elem == nil {
		return &PGType{OID: e, Type: 'b', Typmod: t.Typmod}
	}
	return nil
}

// numericTypmod decodes numeric's type modifier: ((precision << 16) |
// (scale & 0x7ff)) + 4, the scale being an 11-bit signed number since
// PostgreSQL 15 allows negative scales and scales above the precision.
func NumericTypmod(typmod int32) (precision, scale int, ok bool) {
	if typmod < 4 {
		return 0, 0, false
	}
	t := typmod - 4
	precision = int(t>>16) & 0xffff
	scale = (int(t&0x7ff) ^ 1024) - 1024
	return precision, scale, true
}

// decimalType maps numeric(p,s). A negative scale (numeric(5,-2) holds
// multiples of 100 up to 9999900) needs p-s integer digits; a scale above
// the precision (numeric(2,5) holds 0.00099 at most) needs s fractional
// digits; Parquet requires 0 <= scale <= precision.
func decimalType(p, s int) ParquetType {
	switch {
	case s < 0:
		p, s = p-s, 0
	case s > p:
		p = s
	}
	if p < 1 || p > MaxDecimalPrecision {
		return ParquetString
	}
	pt := ParquetType{Logical: LogicalDecimal, Precision: p, Scale: s, Name: fmt.Sprintf("DECIMAL(%d,%d)", p, s)}
	// The smallest physical type that holds p digits, as the Parquet
	// format recommends.
	switch {
	case p <= 9:
		pt.Physical = PhysicalInt32
	case p <= 18:
		pt.Physical = PhysicalInt64
	default:
		pt.Physical = PhysicalFixedLenByteArray
		pt.Length = decimalBytes(p)
	}
	return pt
}

// decimalBytes is the smallest two's-complement width holding p digits.
func decimalBytes(p int) int {
	for n := 1; ; n++ {
		if float64(8*n-1)*math.Log10(2) >= float64(p) {
			return n
		}
	}
}

// TypeCatalog holds pg_type rows by OID, as loaded by LoadTypes or by
// inspect, to resolve column types into PGType values.
type TypeCatalog map[uint32]typeRow

type typeRow struct {
	oid        uint32
	schema     string
	name       string
	typtype    byte
	category   byte
	baseType   uint32
	baseTypmod int32
	ndims      int
	elem       uint32
}

// typeColumns is the select list scanned by scanTypeRows, over pg_type ty
// and pg_namespace n.
const typeColumns = `ty.oid, n.nspname, ty.typname, ty.typtype::text, ty.typcategory::text,
	ty.typbasetype, ty.typtypmod, ty.typndims, ty.typelem`

// typeClosureSQL loads the types in the seed CTE and, transitively, the
// base types of domains and element types of arrays they refer to.
// seedCTEs must define seed(oid).
func TypeClosureSQL(seedCTEs string) string {
	return `WITH RECURSIVE ` + seedCTEs + `,
closure(oid) AS (
	SELECT oid FROM seed
	UNION
	SELECT x.oid
	FROM closure c
	JOIN pg_catalog.pg_type ty ON ty.oid = c.oid
	CROSS JOIN LATERAL (VALUES (ty.typbasetype), (ty.typelem)) AS x(oid)
	WHERE x.oid <> 0
)
SELECT ` + typeColumns + `
FROM closure c
JOIN pg_catalog.pg_type ty ON ty.oid = c.oid
JOIN pg_catalog.pg_namespace n ON n.oid = ty.typnamespace`
}

// Scan adds the types of rows, which select typeColumns (see
// TypeClosureSQL), to the catalog.
func (c TypeCatalog) Scan(rows pgx.Rows) error {
	for rows.Next() {
		var r typeRow
		var typtype, category string
		if err := rows.Scan(&r.oid, &r.schema, &r.name, &typtype, &category,
			&r.baseType, &r.baseTypmod, &r.ndims, &r.elem); err != nil {
			return err
		}
		if typtype != "" {
			r.typtype = typtype[0]
		}
		if category != "" {
			r.category = category[0]
		}
		c[r.oid] = r
	}
	return rows.Err()
}

// Querier runs a query: a *pgx.Conn, a pgx.Tx or a pool.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// LoadTypes reads the catalog rows of the given types and of the types they
// refer to (domain bases, array elements), in one query.
func LoadTypes(ctx context.Context, conn Querier, oids []uint32) (TypeCatalog, error) {
	c := TypeCatalog{}
	rows, err := conn.Query(ctx, TypeClosureSQL(`seed(oid) AS (SELECT unnest($1::oid[]))`), oids)
	if err != nil {
		return nil, fmt.Errorf("reading pg_type: %w", err)
	}
	defer rows.Close()
	if err := c.Scan(rows); err != nil {
		return nil, fmt.Errorf("reading pg_type: %w", err)
	}
	return c, nil
}

// Resolve builds the PGType of a column of type oid with modifier typmod and
// dims declared array dimensions. Types missing from the catalog (or a nil
// catalog) resolve as far as the built-in OIDs allow.
func (c TypeCatalog) Resolve(oid uint32, typmod int32, dims int) *PGType {
	return c.resolve(oid, typmod, dims, 0)
}

func (c TypeCatalog) resolve(oid uint32, typmod int32, dims, depth int) *PGType {
	t := &PGType{OID: oid, Typmod: typmod, Dims: dims}
	r, ok := c[oid]
	if !ok {
		return t
	}
	t.Schema, t.Name, t.Type, t.Category = r.schema, r.name, r.typtype, r.category
	if depth >= maxResolveDepth {
		return t
	}
	switch {
	case r.typtype == 'd' && r.baseType != 0:
		// A domain's own modifier and dimensions are those of its
		// definition (CREATE DOMAIN d AS numeric(10,2)); a column cannot
		// add its own.
		t.Base = c.resolve(r.baseType, r.baseTypmod, r.ndims, depth+1)
	case r.category == 'A' && r.elem != 0:
		// A column's modifier applies to the elements: numeric(10,2)[].
		t.Elem = c.resolve(r.elem, typmod, 0, depth+1)
	}
	return t
}

// String shows a type for messages and test failures.
func (t *PGType) String() string {
	if t == nil {
		return "<nil>"
	}
	name := t.Name
	if name == "" {
		name = "oid " + strconv.FormatUint(uint64(t.OID), 10)
	}
	return name
}

// baseType follows a domain chain to the underlying type.
func BaseType(t *PGType) *PGType {
	for i := 0; t != nil && t.Type == 'd' && t.Base != nil && i < maxResolveDepth; i++ {
		t = t.Base
	}
	return t
}
