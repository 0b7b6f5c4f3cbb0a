package codec

import (
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/records"
)

// Rows reach PostgreSQL by COPY ... FROM STDIN in the text format. Every
// value is written in PostgreSQL's own text form, which the column type's
// input function reads back exactly; this is what lets a column keep the
// source's type (uuid, inet, interval, multi-dimensional arrays, ...) even
// when the batch carries it as a STRING, with no cast step after the copy.

// COPY's binary format. The text format makes the server parse every value
// with the type's input function; the binary format hands it the value
// already in the type's send form, which its receive function only checks.
// The receive functions get the column's typmod, as the input functions
// do, so numeric(p,s) rounds, character(n) pads and character varying(n)
// rejects long values in exactly the same way: a batch reads back the
// same in both formats (binary_test.go checks it value by value against
// the text format).
//
// Only types whose send form is simple and fixed are written here; for any
// other column ColumnBinaryEncoder says so and the caller keeps the text format
// for the whole table, since one COPY has one format.

// BinaryEncoder appends the binary (send) form of non-null value i of v,
// without the length word.
type BinaryEncoder func(out []byte, v *records.Vec, i int) ([]byte, error)

// ColumnBinaryEncoder returns how values of Parquet type t are written in
// COPY's binary format into a column of SQL type typ (format_type's
// spelling, exactly as ColumnType returns it: "integer", "numeric(12,2)",
// "numeric", "character(3)", "character varying(20)", "timestamp with time
// zone", "text[]", "uuid", "jsonb" ...). ok is false when the pair has no
// binary form here; the caller then copies the whole table in the text
// format.
func ColumnBinaryEncoder(t records.ParquetType, typ string) (f BinaryEncoder, ok bool) {
	p, ok := parseSourceType(typ)
	if !ok {
		return nil, false
	}
	switch p.arrays {
	case 0:
		f, _, ok := scalarBinaryAppender(t, p)
		return f, ok
	case 1:
		// Multi-dimensional arrays travel as STRING (SPEC §5): only a LIST
		// is an array here.
		if t.Logical != records.LogicalList || t.Physical != records.PhysicalGroup || t.Element == nil {
			return nil, false
		}
		p.arrays = 0
		elem, oid, ok := scalarBinaryAppender(*t.Element, p)
		if !ok {
			return nil, false
		}
		return func(out []byte, v *records.Vec, i int) ([]byte, error) {
			return appendBinaryArray(out, v.List, i, oid, elem)
		}, true
	}
	return nil, false
}

// scalarBinaryAppender is ColumnBinaryEncoder for a type that is not an array;
// oid is the type's OID, which an array of it names.
func scalarBinaryAppender(t records.ParquetType, p parsedType) (f BinaryEncoder, oid uint32, ok bool) {
	bytesOf := func(logical ...records.Logical) bool {
		if t.Physical != records.PhysicalByteArray {
			return false
		}
		for _, l := range logical {
			if t.Logical == l {
				return true
			}
		}
		return false
	}
	plain := func(ph records.Physical) bool { return t.Physical == ph && t.Logical == records.LogicalNone }
	switch p.base {
	case "boolean":
		if plain(records.PhysicalBoolean) {
			return appendBinaryBool, pgtype.BoolOID, true
		}
	case "smallint":
		if t.Physical == records.PhysicalInt32 && t.Logical == records.LogicalInt16 {
			return appendBinaryInt2, pgtype.Int2OID, true
		}
	case "integer":
		if plain(records.PhysicalInt32) {
			return appendBinaryInt4, pgtype.Int4OID, true
		}
	case "bigint":
		if plain(records.PhysicalInt64) {
			return appendBinaryInt8, pgtype.Int8OID, true
		}
	case "real":
		if plain(records.PhysicalFloat) {
			return appendBinaryFloat4, pgtype.Float4OID, true
		}
	case "double precision":
		if plain(records.PhysicalDouble) {
			return appendBinaryFloat8, pgtype.Float8OID, true
		}
	case "numeric":
		if f, ok := numericBinaryAppender(t); ok {
			return f, pgtype.NumericOID, true
		}
	case "text", "character varying", "character":
		// The raw text, as the text format writes it: textrecv, varcharrecv
		// and bpcharrecv check the encoding and apply the length exactly
		// as the input functions do.
		if bytesOf(records.LogicalString) {
			oid := map[string]uint32{"text": pgtype.TextOID, "character varying": pgtype.VarcharOID, "character": pgtype.BPCharOID}[p.base]
			return appendBinaryRaw, oid, true
		}
	case "json":
		if bytesOf(records.LogicalString, records.LogicalJSON) {
			return appendBinaryRaw, pgtype.JSONOID, true
		}
	case "jsonb":
		if bytesOf(records.LogicalString, records.LogicalJSON) {
			return appendBinaryJSONB, pgtype.JSONBOID, true
		}
	case "bytea":
		if bytesOf(records.LogicalNone) {
			return appendBinaryRaw, pgtype.ByteaOID, true
		}
	case "date":
		if t.Physical == records.PhysicalInt32 && t.Logical == records.LogicalDate {
			return appendBinaryDate, pgtype.DateOID, true
		}
	case "time":
		// timetz has another binary form (and family ""): text.
		if p.tz != " with time zone" && t.Physical == records.PhysicalInt64 && t.Logical == records.LogicalTime {
			return appendBinaryTime, pgtype.TimeOID, true
		}
	case "timestamp":
		if t.Physical == records.PhysicalInt64 && t.Logical == records.LogicalTimestamp && t.AdjustedToUTC == (p.tz == " with time zone") {
			if t.AdjustedToUTC {
				return appendBinaryTimestamp, pgtype.TimestamptzOID, true
			}
			return appendBinaryTimestamp, pgtype.TimestampOID, true
		}
	case "uuid":
		if bytesOf(records.LogicalString) {
			return appendBinaryUUID, pgtype.UUIDOID, true
		}
	}
	return nil, 0, false
}

// inputSyntaxError is the error for a value its type cannot read, worded as
// PostgreSQL words it; the value is quoted (and cut) so that the message
// stays one short line of valid UTF-8 even for binary junk, as it travels
// back through the server in CopyFail.
func inputSyntaxError(typ string, s []byte) error {
	return fmt.Errorf("invalid input syntax for type %s: %s", typ, quoteBadValue(s))
}

// quoteBadValue quotes a rejected value for an error, cut at 64 bytes.
func quoteBadValue(s []byte) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(string(s[:limit])) + "..."
	}
	return strconv.Quote(string(s))
}

// TextEncoder appends the text form of non-null value i of v (not yet
// escaped for COPY).
type TextEncoder func(out []byte, v *records.Vec, i int) []byte

// TextEncoderFor returns how values of Parquet type t are written.
func TextEncoderFor(t records.ParquetType) (TextEncoder, error) {
	switch t.Logical {
	case records.LogicalDecimal:
		scale := t.Scale
		switch t.Physical {
		case records.PhysicalInt32:
			return func(out []byte, v *records.Vec, i int) []byte { return appendDecimal(out, int64(v.I32[i]), scale) }, nil
		case records.PhysicalInt64:
			return func(out []byte, v *records.Vec, i int) []byte { return appendDecimal(out, v.I64[i], scale) }, nil
		case records.PhysicalFixedLenByteArray, records.PhysicalByteArray:
			return func(out []byte, v *records.Vec, i int) []byte { return appendBigDecimal(out, v.Bytes(i), scale) }, nil
		}
	case records.LogicalDate:
		return func(out []byte, v *records.Vec, i int) []byte { return appendDate(out, int64(v.I32[i])) }, nil
	case records.LogicalTime:
		return func(out []byte, v *records.Vec, i int) []byte { return appendTime(out, v.I64[i]) }, nil
	case records.LogicalTimestamp:
		tz := t.AdjustedToUTC
		return func(out []byte, v *records.Vec, i int) []byte { return AppendTimestamp(out, v.I64[i], tz) }, nil
	case records.LogicalList:
		if t.Element == nil || t.Element.Physical == records.PhysicalGroup {
			break
		}
		elem, err := TextEncoderFor(*t.Element)
		if err != nil {
			return nil, err
		}
		return func(out []byte, v *records.Vec, i int) []byte { return appendArray(out, v.List, i, elem, ',') }, nil
	}
	switch t.Physical {
	case records.PhysicalBoolean:
		return func(out []byte, v *records.Vec, i int) []byte {
			if v.Bool[i] {
				return append(out, 't')
			}
			return append(out, 'f')
		}, nil
	case records.PhysicalInt32:
		return func(out []byte, v *records.Vec, i int) []byte { return strconv.AppendInt(out, int64(v.I32[i]), 10) }, nil
	case records.PhysicalInt64:
		return func(out []byte, v *records.Vec, i int) []byte { return strconv.AppendInt(out, v.I64[i], 10) }, nil
	case records.PhysicalFloat:
		return func(out []byte, v *records.Vec, i int) []byte { return appendFloatText(out, float64(v.F32[i]), 32) }, nil
	case records.PhysicalDouble:
		return func(out []byte, v *records.Vec, i int) []byte { return appendFloatText(out, v.F64[i], 64) }, nil
	case records.PhysicalByteArray:
		if t.Logical == records.LogicalNone {
			return func(out []byte, v *records.Vec, i int) []byte { return appendBytea(out, v.Bytes(i)) }, nil
		}
		return func(out []byte, v *records.Vec, i int) []byte { return append(out, v.Bytes(i)...) }, nil
	}
	return nil, fmt.Errorf("cannot write Parquet type %s to PostgreSQL", t.Name)
}

// ColumnTextEncoder is TextEncoderFor for a column of SQL type typ (ColumnType's
// spelling): the elements of a box array are separated by ';', box's
// array delimiter, since a box's text holds commas.
func ColumnTextEncoder(t records.ParquetType, typ string) (TextEncoder, error) {
	if !IsBoxArray(typ) || t.Logical != records.LogicalList || t.Element == nil {
		return TextEncoderFor(t)
	}
	elem, err := TextEncoderFor(*t.Element)
	if err != nil {
		return nil, err
	}
	return func(out []byte, v *records.Vec, i int) []byte { return appendArray(out, v.List, i, elem, ';') }, nil
}
