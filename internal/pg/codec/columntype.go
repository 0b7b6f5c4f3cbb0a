package codec

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-dev/sluice/internal/records"
)

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

// columnType returns the SQL type of a warehouse column, in format_type's
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
