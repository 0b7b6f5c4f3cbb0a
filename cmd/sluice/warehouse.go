package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/parquet"
	"github.com/sluice-dev/sluice/warehouse/postgres"
)

// warehouseOpenTimeout bounds connecting to a postgres warehouse and
// creating its schema and positions table.
const warehouseOpenTimeout = 2 * time.Minute

// openWarehouse opens the configured destination for the runner; the
// caller closes it.
func openWarehouse(ctx context.Context, cfg *config.Config) (warehouse.Warehouse, error) {
	switch cfg.Warehouse.Backend {
	case "", "parquet":
		root, err := config.ResolvePath(cfg.Dir, cfg.Warehouse.Path)
		if err != nil {
			return nil, err
		}
		w, err := parquet.Open(root)
		if err != nil {
			return nil, err
		}
		return w, nil
	case "postgres":
		ctx, cancel := context.WithTimeout(ctx, warehouseOpenTimeout)
		defer cancel()
		w, err := postgres.Open(ctx, &cfg.Warehouse, cfg.Dir)
		if err != nil {
			return nil, err
		}
		return w, nil
	}
	return nil, fmt.Errorf("warehouse backend %q is not available in this version of sluice; use backend = \"parquet\" or \"postgres\"", cfg.Warehouse.Backend)
}
