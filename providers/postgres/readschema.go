package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pg/codec"
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
	typ  *codec.PGType
	// expr is the select-list expression: the quoted column, or its text
	// form when its binary format is not decoded (see planColumn).
	expr string
	// asText reports that expr is the column's text form.
	asText bool
	// resultOID is the type the server sends for expr: the base type of
	// the column, or text for a text form.
	resultOID uint32
	dec       *codec.Decoder
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

var tableTypesSQL = codec.TypeClosureSQL(relCTE + `,
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
		if r.Query != "" {
			// A custom SQL table is no relation: its query's errors
			// are its read's.
			schemas[i], names[i] = "", ""
		}
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
	if req.Query != "" {
		return loadQuery(ctx, conn, req, more)
	}
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
		types = codec.TypeCatalog{}
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
		return types.Scan(rows)
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
		pt := codec.MapType(t)
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

// planColumn chooses how a column is read (codec.ColumnDecoder): its
// binary format decoded when the decoder knows it, else its text form.
func planColumn(name string, t *codec.PGType, pt records.ParquetType) (readCol, error) {
	ident := pgx.Identifier{name}.Sanitize()
	rc := readCol{name: name, typ: t, expr: ident}
	d, asText, oid, err := codec.ColumnDecoder(t, pt)
	if err != nil {
		return rc, fmt.Errorf("column %s: %w", ident, err)
	}
	rc.dec, rc.resultOID = d, oid
	if asText {
		rc.asText, rc.expr = true, textForm(ident)
	}
	return rc, nil
}
