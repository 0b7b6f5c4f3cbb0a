package codec

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The catalog side of the type registry: pg_type rows loaded in one
// query, resolved into PGType values for MapType.

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

// TypeClosureSQL loads the types in the seed CTE and, transitively, the
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
