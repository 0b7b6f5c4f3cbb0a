package iceberg

import (
	"context"
	"encoding/json"
	"fmt"

	iceberggo "github.com/apache/iceberg-go"

	"github.com/sluice-dev/sluice/warehouse"
)

var _ warehouse.ColumnRenamer = (*Table)(nil)

// RenameColumns renames columns in place (warehouse.ColumnRenamer): an
// Iceberg schema update renames the fields by id, so no data file is
// rewritten and readers find the old files' values under the new names.
// The schema update and the recorded schema (SchemaProperty) are one
// catalog commit, which adds no snapshot: the position stays. A rename
// already made (by another process) is skipped.
func (t *Table) RenameColumns(ctx context.Context, renames []warehouse.ColumnRename) error {
	if len(renames) == 0 {
		return nil
	}
	unlock, err := t.w.lockTable(ctx, t.ident[1])
	if err != nil {
		return fmt.Errorf("iceberg table %s: renaming columns: %w", t.name(), err)
	}
	defer unlock()
	tbl, err := t.w.cat.LoadTable(ctx, t.ident)
	if err != nil {
		return fmt.Errorf("iceberg table %s: renaming columns: %w", t.name(), err)
	}
	if err := t.load(tbl); err != nil {
		return err
	}
	have := tbl.Schema()
	txn := tbl.NewTransaction()
	us := txn.UpdateSchema(true, false)
	var done []warehouse.ColumnRename
	for _, r := range renames {
		_, hasFrom := have.FindFieldByName(r.From)
		if _, hasTo := have.FindFieldByName(r.To); !hasFrom && hasTo {
			continue // another process renamed it first
		}
		done = append(done, r)
		if !hasFrom {
			return fmt.Errorf("iceberg table %s: renaming columns: the table has no column %q", t.name(), r.From)
		}
		if _, ok := have.FindFieldByName(r.To); ok {
			return fmt.Errorf("iceberg table %s: renaming columns: the table already has a column %q", t.name(), r.To)
		}
		us = us.RenameColumn([]string{r.From}, r.To)
	}
	if len(done) == 0 {
		return nil
	}
	if err := us.Commit(); err != nil {
		return fmt.Errorf("iceberg table %s: renaming columns: %w", t.name(), err)
	}
	_, schema, _ := t.state()
	if schema != nil {
		raw, err := json.Marshal(warehouse.RenamedSchema(schema, renames))
		if err != nil {
			return err
		}
		if err := txn.SetProperties(iceberggo.Properties{SchemaProperty: string(raw)}); err != nil {
			return fmt.Errorf("iceberg table %s: renaming columns: %w", t.name(), err)
		}
	}
	tbl, err = txn.Commit(ctx)
	if err != nil {
		return fmt.Errorf("iceberg table %s: renaming columns: commit: %w", t.name(), err)
	}
	return t.load(tbl)
}
