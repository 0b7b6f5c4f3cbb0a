package codec

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluice-dev/sluice/internal/records"
)

// ColumnDecoder chooses how a column of type t, mapped to pt, is read:
// its binary format decoded (resultOID, the base type, is what the server
// sends) when the decoder knows it, else its text form (asText; the
// server sends text), which is what the mapping makes of every type
// Parquet has no equivalent for. A LIST of such elements is read as the
// array's text form and split by the decoder of logical replication's
// text (textdecode.go), so that both paths make the same elements of it.
// Domains are read as their base type.
func ColumnDecoder(t *PGType, pt records.ParquetType) (dec *Decoder, asText bool, resultOID uint32, err error) {
	b := BaseType(t)
	if pt.Physical == records.PhysicalGroup {
		if pt.Element == nil {
			return nil, false, 0, errors.New("LIST type without an element type")
		}
		var elem *PGType
		if b != nil {
			elem = BaseType(ArrayElem(b))
		}
		if d, ok := nativeDecoder(elem, *pt.Element); ok {
			return &Decoder{kind: decList, elem: d}, false, b.OID, nil
		}
		td, err := newTextDecoder(pt, t)
		if err != nil {
			return nil, false, 0, err
		}
		return &Decoder{kind: decTextList, text: td}, true, pgtype.TextOID, nil
	}
	if d, ok := nativeDecoder(b, pt); ok {
		return d, false, b.OID, nil
	}
	if isString(pt) {
		return &Decoder{kind: decBytes}, true, pgtype.TextOID, nil
	}
	return nil, false, 0, fmt.Errorf("no decoder for %s as %s", t, pt.Name)
}

func isString(pt records.ParquetType) bool {
	return pt.Physical == records.PhysicalByteArray && pt.Logical == records.LogicalString
}

// nativeDecoder returns the decoder of the binary format of a (base)
// type into its Parquet type, when sluice decodes it.
func nativeDecoder(b *PGType, pt records.ParquetType) (*Decoder, bool) {
	if b == nil {
		return nil, false
	}
	phys, logical := pt.Physical, pt.Logical
	var d *Decoder
	switch b.OID {
	case pgtype.BoolOID:
		if phys == records.PhysicalBoolean {
			d = &Decoder{kind: decBool}
		}
	case pgtype.Int2OID:
		if phys == records.PhysicalInt32 {
			d = &Decoder{kind: decInt2}
		}
	case pgtype.Int4OID:
		if phys == records.PhysicalInt32 {
			d = &Decoder{kind: decInt4}
		}
	case pgtype.Int8OID:
		if phys == records.PhysicalInt64 {
			d = &Decoder{kind: decInt8}
		}
	case pgtype.Float4OID:
		if phys == records.PhysicalFloat {
			d = &Decoder{kind: decFloat4}
		}
	case pgtype.Float8OID:
		if phys == records.PhysicalDouble {
			d = &Decoder{kind: decFloat8}
		}
	case pgtype.NumericOID:
		switch {
		case logical == records.LogicalDecimal:
			d = decimalDecoder(pt)
		case isString(pt):
			d = &Decoder{kind: decNumericText}
		}
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		if isString(pt) {
			d = &Decoder{kind: decBytes}
		}
	case pgtype.ByteaOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalNone {
			d = &Decoder{kind: decBytes}
		}
	case pgtype.JSONOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalJSON {
			d = &Decoder{kind: decBytes}
		}
	case pgtype.JSONBOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalJSON {
			d = &Decoder{kind: decJSONB}
		}
	case pgtype.DateOID:
		if phys == records.PhysicalInt32 && logical == records.LogicalDate {
			d = &Decoder{kind: decDate}
		}
	case pgtype.TimeOID:
		if phys == records.PhysicalInt64 && logical == records.LogicalTime {
			d = &Decoder{kind: decTime}
		}
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		if phys == records.PhysicalInt64 && logical == records.LogicalTimestamp {
			d = &Decoder{kind: decTimestamp}
		}
	case pgtype.UUIDOID:
		if isString(pt) {
			d = &Decoder{kind: decUUID}
		}
	default:
		// Enum labels and citext are sent as text.
		if (b.Type == 'e' || b.Type == 'b' && b.Name == citextTypeName) && isString(pt) {
			d = &Decoder{kind: decBytes}
		}
	}
	return d, d != nil
}

// decimalDecoder decodes numeric into a DECIMAL's physical type.
func decimalDecoder(pt records.ParquetType) *Decoder {
	d := &Decoder{scale: pt.Scale, precision: pt.Precision}
	switch pt.Physical {
	case records.PhysicalInt32:
		d.kind = decNumeric32
	case records.PhysicalInt64:
		d.kind = decNumeric64
	case records.PhysicalFixedLenByteArray:
		if pt.Length < 1 || pt.Length > 16 || pt.Precision > MaxDecimalPrecision {
			return nil
		}
		d.kind, d.width = decNumericFixed, pt.Length
	default:
		return nil
	}
	if pt.Scale < 0 || pt.Precision < 1 || pt.Precision > MaxDecimalPrecision {
		return nil
	}
	return d
}
