package main

import (
	"fmt"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// openWarehouse opens the configured destination for the runner.
func openWarehouse(cfg *config.Config) (warehouse.Warehouse, error) {
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
		return parquet.AsWarehouse(w), nil
	}
	return nil, fmt.Errorf("warehouse backend %q is not available in this version of sluice; use backend = \"parquet\"", cfg.Warehouse.Backend)
}
