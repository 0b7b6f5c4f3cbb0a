package codec

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

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

// MaxDecimalPrecision is the largest precision a Parquet DECIMAL column is
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

// ArrayElem returns the element type of an array type, nil for other
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

// NumericTypmod decodes numeric's type modifier: ((precision << 16) |
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

// String shows a type for messages and test failures.
// String is the type's name as messages show it.
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

// BaseType follows a domain chain to the underlying type.
func BaseType(t *PGType) *PGType {
	for i := 0; t != nil && t.Type == 'd' && t.Base != nil && i < maxResolveDepth; i++ {
		t = t.Base
	}
	return t
}

// Column types. A warehouse column keeps the source's type when the source
// named a built-in PostgreSQL type (records.Column.SourceType holds
// format_type's text, "numeric(12,2)", "text[]", "timestamp with time
// zone") and the batch's values are of that type: every value is written in
// PostgreSQL's text form (COPY ... FORMAT text), which the type's input
// function reads back exactly. Anything else — an enum or a domain (whose
// SourceType is their own name), an extension type the warehouse may lack,
// another source's type names ("string", "integer" from Stripe), a
// SourceType that does not match the values ("pg_lsn" held as INT64) —
// gets the type the Parquet type implies (SPEC §5 read backwards).

// builtinType matches format_type's spelling of a built-in type: a name,
// an optional modifier, an optional "with[out] time zone", optional array
// brackets.
var builtinType = regexp.MustCompile(`^([a-z"][a-z0-9_ "]*?)(\([0-9, -]+\))?( with time zone| without time zone)?((?:\[\])*)$`)

// familyOf groups the built-in type names by the batch values they can
// hold; "" marks types whose values travel as text (STRING).
var familyOf = map[string]string{
	"boolean":          "bool",
	"smallint":         "int16",
	"integer":          "int32",
	"bigint":           "int64",
	"real":             "float",
	"double precision": "double",
	"numeric":          "numeric",
	"json":             "json",
	"jsonb":            "json",
	"bytea":            "bytea",
	"date":             "date",
	"time":             "time",
	"timestamp":        "timestamp",
	// Types written as text in the batch (STRING): their text form is
	// their input.
	"text": "", "character varying": "", "character": "", `"char"`: "", "name": "",
	"uuid": "", "interval": "", "inet": "", "cidr": "", "macaddr": "", "macaddr8": "",
	"money": "", "bit": "", "bit varying": "", "xml": "", "tsvector": "", "tsquery": "",
	"point": "", "line": "", "lseg": "", "box": "", "path": "", "polygon": "", "circle": "",
	"int4range": "", "int8range": "", "numrange": "", "tsrange": "", "tstzrange": "", "daterange": "",
	"int4multirange": "", "int8multirange": "", "nummultirange": "", "tsmultirange": "",
	"tstzmultirange": "", "datemultirange": "",
	"oid": "", "pg_lsn": "", "jsonpath": "", "txid_snapshot": "", "pg_snapshot": "", "xid": "", "xid8": "",
	"cid": "", "tid": "", "int2vector": "", "oidvector": "",
	// Not the reg* types (regclass, regtype...): their input looks names
	// up in the warehouse's catalog, where the source's objects are not;
	// their text form is kept as text.
}

// parsedType is a SourceType split into its parts.
type parsedType struct {
	base   string // "numeric", "timestamp", "character varying"
	mod    string // "(12,2)" or ""
	tz     string // " with time zone", " without time zone" or ""
	arrays int    // number of "[]"
}

func parseSourceType(s string) (parsedType, bool) {
	m := builtinType.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return parsedType{}, false
	}
	p := parsedType{base: strings.TrimSpace(m[1]), mod: m[2], tz: m[3], arrays: len(m[4]) / 2}
	// "time with time zone" (timetz) travels as text; time and timestamp
	// with or without a zone have their own families.
	if _, ok := familyOf[p.base]; !ok {
		return parsedType{}, false
	}
	if p.tz != "" && p.base != "time" && p.base != "timestamp" {
		return parsedType{}, false
	}
	return p, true
}

func (p parsedType) String() string {
	return p.base + p.mod + p.tz + strings.Repeat("[]", p.arrays)
}

// family is what batch values a parsed type holds.
func (p parsedType) family() string {
	f := familyOf[p.base]
	switch {
	case p.base == "time" && p.tz == " with time zone":
		return "" // timetz: text
	case p.base == "timestamp" && p.tz == " with time zone":
		return "timestamptz"
	}
	return f
}

// familyOfParquet is the family of values a Parquet type carries.
func familyOfParquet(t records.ParquetType) string {
	switch t.Logical {
	case records.LogicalInt16:
		return "int16"
	case records.LogicalDecimal:
		return "numeric"
	case records.LogicalString:
		return ""
	case records.LogicalJSON:
		return "json"
	case records.LogicalDate:
		return "date"
	case records.LogicalTime:
		return "time"
	case records.LogicalTimestamp:
		if t.AdjustedToUTC {
			return "timestamptz"
		}
		return "timestamp"
	}
	switch t.Physical {
	case records.PhysicalBoolean:
		return "bool"
	case records.PhysicalInt32:
		return "int32"
	case records.PhysicalInt64:
		return "int64"
	case records.PhysicalFloat:
		return "float"
	case records.PhysicalDouble:
		return "double"
	case records.PhysicalByteArray:
		return "bytea"
	}
	return "?"
}

// ColumnType returns the SQL type of a warehouse column, in format_type's
// spelling (so that it compares equal to what the catalog reports for an
// existing column).
func ColumnType(c records.Column) (string, error) {
	if p, ok := parseSourceType(c.SourceType); ok && fits(p, c.Type) {
		return p.String(), nil
	}
	return impliedType(c.Type)
}

// fits reports whether the values of Parquet type t, in their text form,
// are what a column of type p holds.
func fits(p parsedType, t records.ParquetType) bool {
	switch {
	case t.Logical == records.LogicalString:
		// A STRING holds the value's text form, which is the input of any
		// type (arrays of several dimensions included: SPEC §5 writes them
		// as text).
		return true
	case t.Logical == records.LogicalList:
		if p.arrays != 1 || t.Element == nil {
			return false
		}
		elem := p
		elem.arrays = 0
		return fits(elem, *t.Element)
	case p.arrays != 0:
		return false
	}
	// numeric(p,s) is kept as the source declared it, negative scales and
	// scales above the precision included: the DECIMAL's values are its
	// values.
	return p.family() == familyOfParquet(t)
}

// impliedType is the SQL type a Parquet type reads back as.
func impliedType(t records.ParquetType) (string, error) {
	switch f := familyOfParquet(t); f {
	case "bool":
		return "boolean", nil
	case "int16":
		return "smallint", nil
	case "int32":
		return "integer", nil
	case "int64":
		return "bigint", nil
	case "float":
		return "real", nil
	case "double":
		return "double precision", nil
	case "numeric":
		return fmt.Sprintf("numeric(%d,%d)", t.Precision, t.Scale), nil
	case "":
		return "text", nil
	case "json":
		return "jsonb", nil
	case "bytea":
		return "bytea", nil
	case "date":
		return "date", nil
	case "time":
		return "time without time zone", nil
	case "timestamp":
		return "timestamp without time zone", nil
	case "timestamptz":
		return "timestamp with time zone", nil
	}
	if t.Logical == records.LogicalList && t.Element != nil && t.Element.Logical != records.LogicalList {
		e, err := impliedType(*t.Element)
		if err != nil {
			return "", err
		}
		return e + "[]", nil
	}
	return "", fmt.Errorf("no PostgreSQL type for Parquet type %s", t.Name)
}
