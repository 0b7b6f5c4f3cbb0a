package parquet

import (
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// AsWarehouse returns w as the runner's warehouse.Warehouse.
func AsWarehouse(w *Warehouse) warehouse.Warehouse { return adapter{w} }

type adapter struct{ w *Warehouse }

func (a adapter) Table(name string) (warehouse.Table, error) {
	t, err := a.w.Table(name)
	if err != nil {
		return nil, err
	}
	return tableAdapter{t}, nil
}

type tableAdapter struct{ t *Table }

// Position is the committed position. A damaged table counts as committed
// even when its manifest is unreadable: the runner then begins the sync it
// would have (a Merge or Append, which fails saying to resync), rather than
// silently reloading a table whose rows the source may no longer hold.
func (a tableAdapter) Position() (records.Position, bool) {
	m := a.t.Manifest()
	return m.Position, m.Version > 0 || a.t.Damaged() != nil
}

func (a tableAdapter) Begin(mode warehouse.Mode, schema *records.Schema, sync string) (warehouse.Tx, error) {
	m := Replace
	switch mode {
	case warehouse.Merge:
		m = Merge
	case warehouse.Append:
		m = Append
	}
	tx, err := a.t.Begin(m, schema, WithSyncMode(sync))
	if err != nil {
		return nil, asSchemaChanged(err)
	}
	return txAdapter{tx}, nil
}

type txAdapter struct{ tx *Tx }

func (a txAdapter) Write(b *records.Batch) error { return asSchemaChanged(a.tx.Write(b)) }

func (a txAdapter) Commit(pos records.Position) (int64, error) {
	m, err := a.tx.Commit(pos)
	if err != nil {
		return 0, asSchemaChanged(err)
	}
	return m.Rows, nil
}

func (a txAdapter) Abort() error { return a.tx.Abort() }

// asSchemaChanged makes this package's schema error recognisable as the
// warehouse-wide one.
func asSchemaChanged(err error) error {
	if err != nil && errors.Is(err, ErrSchemaChanged) && !errors.Is(err, warehouse.ErrSchemaChanged) {
		return fmt.Errorf("%w: %w", warehouse.ErrSchemaChanged, err)
	}
	return err
}
