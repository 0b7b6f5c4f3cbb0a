package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/providers"
)

var _ providers.RowEstimator = (*Provider)(nil)

// EstimateRows returns the planner's estimate of a table's rows (summed
// over the leaf partitions of a partitioned table, whose own estimate
// already counts them), never a COUNT(*); ok is false for a table never analyzed.
func (p *Provider) EstimateRows(ctx context.Context, req providers.ReadRequest) (int64, bool, error) {
	if req.Query != "" {
		// A query's rows are not known before it runs.
		return 0, false, nil
	}
	var rows *float64
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `
			SELECT sum(c.reltuples) FILTER (WHERE c.reltuples >= 0)
			FROM pg_catalog.pg_class c
			WHERE (c.oid = $1::regclass AND c.relkind <> 'p')
			   OR c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1::regclass) WHERE isleaf)`,
			pgx.Identifier{req.Schema, req.Table}.Sanitize()).Scan(&rows)
	})
	if err != nil || rows == nil {
		return 0, false, err
	}
	return int64(*rows), true, nil
}
