package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// This file builds the schema of a table read (snapshot, cursor or xmin):
// which columns are read, with which Parquet type (MapType, the one
// mapping), by which select-list expression and decoder.

// tableInfo is what a read knows of its table, loaded in one round trip.
type tableInfo struct {
	oid     uint32
	relkind byte
	// size is the main fork's size in bytes (tables and materialized
	// views; 0 for others), to decide whether to split a snapshot.
	size int64
	// ident is the quoted, schema-qualified name; name is how messages
	// name the table, as the configuration writes it.
	ident, name string
	schema      *records.Schema
	// cols are parallel to schema.Columns.
	cols []readCol
	// keyIdx are the positions of the key columns; nil without a key.
	keyIdx []int
}

// readCol is one column as read.
type readCol struct {
	name string
	typ  *PGType
	// expr is the select-list expression: the quoted column, or its text
	// form when its binary format is not decoded (see planColumn).
	expr string
	// asText reports that expr is the column's text form.
	asText bool
	// resultOID is the type the server sends for expr: the base type of
	// the column, or text for a text form.
	resultOID uint32
	dec       *decoder
}

// exprFor is the column's select-list expression applied to x (the
// column, or a parameter of its type).
func (c *readCol) exprFor(x string) string {
	if c.asText {
		return textForm(x)
	}
	return x
}

// textForm is the expression of x's text form: what the type's output
// function prints, as logical replication sends it. format's %s calls the
// output function; a cast to text would not always (inet and cidr, whose
// casts to text always show the netmask, "char"), and a cast of an array
// to text[] casts each element. format makes an empty string of NULL,
// hence the CASE (num_nulls, because a composite value whose fields are
// all NULL IS NULL without being NULL).
func textForm(x string) string {
	return "CASE WHEN pg_catalog.num_nulls(" + x + ") = 0 THEN pg_catalog.format('%s', " + x + ") END"
}

// defaultSchema is where tables are looked up when neither the request
// nor the source names a schema.
const defaultSchema = "public"

// tableColumnsSQL reads a relation and its columns in attnum order ($1
// schema, $2 name). A relation without columns still gives one row, with
// NULL column fields.
const tableColumnsSQL = `WITH ` + relCTE + `
SELECT r.oid, r.relkind::text,
	CASE WHEN r.relkind IN ('r', 'm') THEN pg_catalog.pg_relation_size(r.oid) ELSE 0 END,
	ARRAY(
		SELECT a.attname::text
		FROM pg_catalog.pg_constraint con
		CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
		WHERE con.conrelid = r.oid AND con.contype = 'p'
		ORDER BY k.ord),
	a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
	a.atttypid, a.atttypmod, a.attndims
FROM rel r
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

const relCTE = `rel AS (
	SELECT c.oid, c.relkind
	FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = $2
)`

var tableTypesSQL = typeClosureSQL(relCTE + `,
seed(oid) AS (
	SELECT a.atttypid
	FROM rel r
	JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
	WHERE a.attnum > 0 AND NOT a.attisdropped
)`)

// relkindSQL reads only the kind of a relation, before a read's
// transaction starts (see beginRead).
const relkindSQL = `SELECT c.relkind::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`

// Schema returns the schema of a table as a read of req gives it: the
// requested columns (all when req.Columns is nil) plus the key and the
// cursor, in column order, each with its Parquet type from the type
// mapping (MapType), its type as format_type() shows it and its
// nullability; the key is req.PrimaryKey, or the table's live primary key.
// It reads the catalog in one round trip.
func (p *Provider) Schema(ctx context.Context, req providers.ReadRequest) (_ *records.Schema, err error) {
	defer func() { err = p.classified(err) }()
	req = p.normalize(req)
	var info *tableInfo
	err = p.withConn(ctx, func(conn *pgx.Conn) error {
		var err error
		info, err = loadTable(ctx, conn, req, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return info.schema, nil
}

// normalize fills the defaults of a request: the source's schema.
func (p *Provider) normalize(req providers.ReadRequest) providers.ReadRequest {
	if req.Schema == "" && p.src != nil && p.src.Postgres != nil {
		req.Schema = p.src.Postgres.Schema
	}
	if req.Schema == "" {
		req.Schema = defaultSchema
	}
	if req.BatchRows <= 0 {
		req.BatchRows = defaultBatchRows
	}
	return req
}

// tableName is the quoted, schema-qualified name of the table of req.
func tableName(req providers.ReadRequest) string {
	return pgx.Identifier{req.Schema, req.Table}.Sanitize()
}

// displayName is how messages name the table of req: as the
// configuration writes it.
func displayName(req providers.ReadRequest) string {
	return config.QualifiedName(req.Schema, req.Table)
}

// missingTable is the error of a read of a table the catalog does not
// have: dropped or renamed since it was configured, or never there.
func missingTable(req providers.ReadRequest) error {
	return fmt.Errorf("table %s does not exist at the source, or the user may not see it: if it was dropped or renamed, "+
		"restore it, or remove its table block and run `sluice apply`; names are case-sensitive (`sluice inspect` lists the tables)", displayName(req))
}

// missingTablesSQL returns the positions of the ($1 schemas, $2 names)
// pairs that name no relation.
const missingTablesSQL = `SELECT x.i::int
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(schema, name, i)
WHERE NOT EXISTS (
	SELECT 1 FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = x.schema AND c.relname = x.name)`

// MissingTables tells which of the tables of reqs do not exist (or the
// user may not see), in one query.
func (p *Provider) MissingTables(ctx context.Context, reqs []providers.ReadRequest) ([]error, error) {
	out := make([]error, len(reqs))
	if len(reqs) == 0 {
		return out, nil
	}
	schemas, names := make([]string, len(reqs)), make([]string, len(reqs))
	for i, r := range reqs {
		r = p.normalize(r)
		schemas[i], names[i] = r.Schema, r.Table
	}
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, missingTablesSQL, schemas, names)
		if err != nil {
			return err
		}
		positions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		for _, i := range positions {
			out[i-1] = missingTable(p.normalize(reqs[i-1]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checking that the tables exist: %w", err)
	}
	return out, nil
}

// loadTable reads the table of req from the catalog, in one round trip
// that also runs the extra queries queued by more (nil for none).
func loadTable(ctx context.Context, conn *pgx.Conn, req providers.ReadRequest, more func(*pgx.Batch)) (*tableInfo, error) {
	type attr struct {
		name, format string
		nullable     bool
		oid          uint32
		typmod       int32
		dims         int
	}
	var (
		info  = &tableInfo{ident: tableName(req), name: displayName(req)}
		found bool
		pk    []string
		attrs []attr
		types = TypeCatalog{}
	)
	b := &pgx.Batch{}
	b.Queue(tableColumnsSQL, req.Schema, req.Table).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var kind string
			var name, format *string
			var nullable *bool
			var oid *uint32
			var typmod *int32
			var dims *int
			if err := rows.Scan(&info.oid, &kind, &info.size, &pk, &name, &format, &nullable, &oid, &typmod, &dims); err != nil {
				return err
			}
			found = true
			info.relkind = kind[0]
			if name != nil {
				attrs = append(attrs, attr{*name, *format, *nullable, *oid, *typmod, *dims})
			}
		}
		return rows.Err()
	})
	b.Queue(tableTypesSQL, req.Schema, req.Table).Query(func(rows pgx.Rows) error {
		return types.scan(rows)
	})
	if more != nil {
		more(b)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", info.name, err)
	}
	if !found {
		return nil, missingTable(req)
	}

	keys := req.PrimaryKey
	if keys == nil {
		keys = pk
	}
	want := map[string]bool{}
	all := req.Columns == nil
	for _, c := range req.Columns {
		want[c] = true
	}
	for _, k := range keys {
		want[k] = true
	}
	if req.Cursor != "" {
		want[req.Cursor] = true
	}
	info.schema = &records.Schema{Columns: []records.Column{}, PrimaryKey: append([]string{}, keys...)}
	for _, a := range attrs {
		if !all && !want[a.name] {
			continue
		}
		delete(want, a.name)
		t := types.Resolve(a.oid, a.typmod, a.dims)
		pt := MapType(t)
		rc, err := planColumn(a.name, t, pt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", info.name, err)
		}
		info.cols = append(info.cols, rc)
		info.schema.Columns = append(info.schema.Columns, records.Column{
			Name: a.name, Type: pt, SourceType: a.format, Nullable: a.nullable,
		})
	}
	// Names asked for that the table lacks, in the order asked. With every
	// column read, want still holds the names of the key and the cursor,
	// found or not.
	var missing []string
	for _, n := range append(append(append([]string(nil), req.Columns...), keys...), req.Cursor) {
		if want[n] && (!all || info.schema.Index(n) < 0) {
			missing = append(missing, pgx.Identifier{n}.Sanitize())
		}
		delete(want, n)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("table %s has no column %s: check the table's columns, primary_key and incremental_field (names are case-sensitive)", info.name, strings.Join(missing, ", "))
	}
	if len(keys) > 0 {
		idx, err := info.schema.KeyIndexes()
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", info.name, err)
		}
		info.keyIdx = idx
	}
	return info, nil
}

// from is the FROM item of a read of the table. Ordinary tables are read
// with ONLY: inheritance children are tables of their own, listed and
// synced separately; partitioned tables are read through the parent.
func (info *tableInfo) from() string {
	switch info.relkind {
	case relkindTable, relkindMatView, 'f':
		return "ONLY " + info.ident
	}
	return info.ident
}

// selectList is the select list of a read: every column's expression.
func (info *tableInfo) selectList() string {
	var sb strings.Builder
	for i, c := range info.cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.expr)
	}
	if len(info.cols) == 0 {
		// A table without columns still has rows; COPY needs no columns,
		// but a select list does not allow none either way.
		return ""
	}
	return sb.String()
}

// planColumn chooses how a column is read: its binary format decoded
// when the decoder knows it, else its text form, which is what the
// mapping makes of every type Parquet has no equivalent for. A LIST of
// such elements is read as the array's text form and split by the
// decoder of logical replication's text (textdecode.go), so that both
// paths make the same elements of it. Domains are read as their base
// type.
func planColumn(name string, t *PGType, pt records.ParquetType) (readCol, error) {
	ident := pgx.Identifier{name}.Sanitize()
	rc := readCol{name: name, typ: t, expr: ident}
	b := baseType(t)
	if pt.Physical == records.PhysicalGroup {
		if pt.Element == nil {
			return rc, fmt.Errorf("column %s: LIST type without an element type", ident)
		}
		var elem *PGType
		if b != nil {
			elem = baseType(arrayElem(b))
		}
		if d, ok := nativeDecoder(elem, *pt.Element); ok {
			rc.dec = &decoder{kind: decList, elem: d}
			rc.resultOID = b.OID
			return rc, nil
		}
		td, err := newTextDecoder(pt, t)
		if err != nil {
			return rc, fmt.Errorf("column %s: %w", ident, err)
		}
		rc.dec = &decoder{kind: decTextList, text: td}
		rc.asText, rc.expr, rc.resultOID = true, textForm(ident), pgtype.TextOID
		return rc, nil
	}
	if d, ok := nativeDecoder(b, pt); ok {
		rc.dec = d
		rc.resultOID = b.OID
		return rc, nil
	}
	if isString(pt) {
		rc.dec = &decoder{kind: decBytes}
		rc.asText, rc.expr, rc.resultOID = true, textForm(ident), pgtype.TextOID
		return rc, nil
	}
	return rc, fmt.Errorf("column %s: no decoder for %s as %s", ident, t, pt.Name)
}

func isString(pt records.ParquetType) bool {
	return pt.Physical == records.PhysicalByteArray && pt.Logical == records.LogicalString
}

// nativeDecoder returns the decoder of the binary format of a (base)
// type into its Parquet type, when sluice decodes it.
func nativeDecoder(b *PGType, pt records.ParquetType) (*decoder, bool) {
	if b == nil {
		return nil, false
	}
	phys, logical := pt.Physical, pt.Logical
	var d *decoder
	switch b.OID {
	case pgtype.BoolOID:
		if phys == records.PhysicalBoolean {
			d = &decoder{kind: decBool}
		}
	case pgtype.Int2OID:
		if phys == records.PhysicalInt32 {
			d = &decoder{kind: decInt2}
		}
	case pgtype.Int4OID:
		if phys == records.PhysicalInt32 {
			d = &decoder{kind: decInt4}
		}
	case pgtype.Int8OID:
		if phys == records.PhysicalInt64 {
			d = &decoder{kind: decInt8}
		}
	case pgtype.Float4OID:
		if phys == records.PhysicalFloat {
			d = &decoder{kind: decFloat4}
		}
	case pgtype.Float8OID:
		if phys == records.PhysicalDouble {
			d = &decoder{kind: decFloat8}
		}
	case pgtype.NumericOID:
		switch {
		case logical == records.LogicalDecimal:
			d = decimalDecoder(pt)
		case isString(pt):
			d = &decoder{kind: decNumericText}
		}
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		if isString(pt) {
			d = &decoder{kind: decBytes}
		}
	case pgtype.ByteaOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalNone {
			d = &decoder{kind: decBytes}
		}
	case pgtype.JSONOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalJSON {
			d = &decoder{kind: decBytes}
		}
	case pgtype.JSONBOID:
		if phys == records.PhysicalByteArray && logical == records.LogicalJSON {
			d = &decoder{kind: decJSONB}
		}
	case pgtype.DateOID:
		if phys == records.PhysicalInt32 && logical == records.LogicalDate {
			d = &decoder{kind: decDate}
		}
	case pgtype.TimeOID:
		if phys == records.PhysicalInt64 && logical == records.LogicalTime {
			d = &decoder{kind: decTime}
		}
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		if phys == records.PhysicalInt64 && logical == records.LogicalTimestamp {
			d = &decoder{kind: decTimestamp}
		}
	case pgtype.UUIDOID:
		if isString(pt) {
			d = &decoder{kind: decUUID}
		}
	default:
		// Enum labels and citext are sent as text.
		if (b.Type == 'e' || b.Type == 'b' && b.Name == citextTypeName) && isString(pt) {
			d = &decoder{kind: decBytes}
		}
	}
	return d, d != nil
}

// decimalDecoder decodes numeric into a DECIMAL's physical type.
func decimalDecoder(pt records.ParquetType) *decoder {
	d := &decoder{scale: pt.Scale, precision: pt.Precision}
	switch pt.Physical {
	case records.PhysicalInt32:
		d.kind = decNumeric32
	case records.PhysicalInt64:
		d.kind = decNumeric64
	case records.PhysicalFixedLenByteArray:
		if pt.Length < 1 || pt.Length > 16 || pt.Precision > maxDecimalPrecision {
			return nil
		}
		d.kind, d.width = decNumericFixed, pt.Length
	default:
		return nil
	}
	if pt.Scale < 0 || pt.Precision < 1 || pt.Precision > maxDecimalPrecision {
		return nil
	}
	return d
}
