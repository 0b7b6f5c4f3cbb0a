package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// Custom SQL tables (table blocks with a query): the rows of a SELECT
// instead of a table's. The query is read as a relation, (query) AS q,
// so that every read (snapshot COPY, cursor reads) is the same as a
// view's; its columns and types come from the server's description of
// the prepared query, without running it.

// relkindQuery is the relkind a custom SQL table is read as: like a view
// (never split into ctid ranges, never locked).
const relkindQuery = 'q'

// queryFrom is the FROM item of a custom SQL table.
func queryFrom(query string) string {
	return "(" + trimQuery(query) + ") AS q"
}

// trimQuery drops the whitespace and semicolons that end a query as
// written, which a subquery cannot hold.
func trimQuery(query string) string {
	return strings.TrimRight(strings.TrimSpace(query), "; \t\r\n")
}

// queryTypesSQL reads each described column's format_type ($1 oids, $2
// typmods, in order).
const queryTypesSQL = `SELECT pg_catalog.format_type(x.oid, x.typmod)
FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS x(oid, typmod, i)
ORDER BY x.i`

var queryTypeClosureSQL = codec.TypeClosureSQL(`seed(oid) AS (SELECT unnest($1::oid[]))`)

// loadQuery describes a custom SQL table: the query's result columns, by
// preparing it (the server parses and plans it, and reports an error in
// it, without running it), then their types in one round trip with the
// queries more queues.
func loadQuery(ctx context.Context, conn *pgx.Conn, req providers.ReadRequest, more func(*pgx.Batch)) (*tableInfo, error) {
	info := &tableInfo{relkind: relkindQuery, ident: queryFrom(req.Query), name: req.Table}
	// The query as written, so that the server's errors point into it.
	sd, err := conn.PgConn().Prepare(ctx, "", trimQuery(req.Query), nil)
	if err != nil {
		return nil, fmt.Errorf("the query of %s: %w", info.name, err)
	}
	if len(sd.ParamOIDs) > 0 {
		return nil, fmt.Errorf("the query of %s has parameters ($1...); write the values into it (variables and locals can build it)", info.name)
	}
	// Read as a subquery: only a SELECT (or VALUES, TABLE) can be one.
	if _, err := conn.PgConn().Prepare(ctx, "", "SELECT * FROM "+info.ident, nil); err != nil {
		return nil, fmt.Errorf("the query of %s must be a SELECT, which sluice reads as a subquery (SELECT ... FROM (query) q): %w", info.name, err)
	}
	oids := make([]uint32, len(sd.Fields))
	mods := make([]int32, len(sd.Fields))
	seen := map[string]bool{}
	for i, f := range sd.Fields {
		if seen[f.Name] {
			return nil, fmt.Errorf("the query of %s returns two columns named %s: give them different names (AS)", info.name, pgx.Identifier{f.Name}.Sanitize())
		}
		seen[f.Name] = true
		oids[i], mods[i] = f.DataTypeOID, f.TypeModifier
	}
	var formats []string
	types := codec.TypeCatalog{}
	b := &pgx.Batch{}
	b.Queue(queryTypesSQL, oids, mods).Query(func(rows pgx.Rows) error {
		var err error
		formats, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	b.Queue(queryTypeClosureSQL, oids).Query(func(rows pgx.Rows) error { return types.Scan(rows) })
	if more != nil {
		more(b)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("reading the column types of the query of %s: %w", info.name, err)
	}
	want := map[string]bool{}
	all := req.Columns == nil
	for _, c := range req.Columns {
		want[c] = true
	}
	for _, k := range req.PrimaryKey {
		want[k] = true
	}
	if req.Cursor != "" {
		want[req.Cursor] = true
	}
	info.schema = &records.Schema{Columns: []records.Column{}, PrimaryKey: append([]string{}, req.PrimaryKey...)}
	for i, f := range sd.Fields {
		if !all && !want[f.Name] {
			continue
		}
		// A query's column keeps no array dimensions (0: any).
		t := types.Resolve(f.DataTypeOID, f.TypeModifier, 0)
		pt := codec.MapType(t)
		rc, err := planColumn(f.Name, t, pt)
		if err != nil {
			return nil, fmt.Errorf("the query of %s: %w", info.name, err)
		}
		info.cols = append(info.cols, rc)
		// Nullability is not described: every column may be NULL.
		info.schema.Columns = append(info.schema.Columns, records.Column{Name: f.Name, Type: pt, SourceType: formats[i], Nullable: true})
	}
	var missing []string
	for _, n := range append(append(append([]string(nil), req.Columns...), req.PrimaryKey...), req.Cursor) {
		if n != "" && info.schema.Index(n) < 0 {
			missing = append(missing, pgx.Identifier{n}.Sanitize())
		}
	}
	if len(missing) > 0 {
		var got []string
		for _, f := range sd.Fields {
			got = append(got, pgx.Identifier{f.Name}.Sanitize())
		}
		return nil, fmt.Errorf("the query of %s returns no column %s (it returns %s): check columns, primary_key and incremental_field against the query's result", info.name, strings.Join(missing, ", "), strings.Join(got, ", "))
	}
	if len(req.PrimaryKey) > 0 {
		idx, err := info.schema.KeyIndexes()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", info.name, err)
		}
		info.keyIdx = idx
	}
	return info, nil
}

// DescribeQuery returns the schema a custom SQL table's read gives
// (providers.QueryDescriber): its query prepared, not run.
func (p *Provider) DescribeQuery(ctx context.Context, req providers.ReadRequest) (_ *records.Schema, err error) {
	return p.Schema(ctx, req)
}
