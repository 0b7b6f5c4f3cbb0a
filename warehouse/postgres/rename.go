package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/warehouse"
)

var _ warehouse.ColumnRenamer = (*Table)(nil)

// RenameColumns renames columns in place (warehouse.ColumnRenamer): ALTER
// TABLE ... RENAME COLUMN, which keeps the rows, the primary key and the
// indexes, and the recorded schema, in one transaction under the table's
// lock. A rename already made (by another process) is skipped.
func (t *Table) RenameColumns(ctx context.Context, renames []warehouse.ColumnRename) error {
	if len(renames) == 0 {
		return nil
	}
	if err := t.renameColumns(ctx, renames); err != nil {
		return classify(fmt.Errorf("renaming columns of %s: %w", t.qualified(), err))
	}
	return nil
}

func (t *Table) renameColumns(ctx context.Context, renames []warehouse.ColumnRename) (err error) {
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	conn, err := t.w.txConn(ctx)
	if err != nil {
		return err
	}
	tx := &Tx{t: t, conn: conn}
	defer func() {
		if err != nil {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			tx.close()
		}
	}()
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(t.w.schema, t.name)); err != nil {
		return fmt.Errorf("locking the table: %w", err)
	}
	old, err := tx.lookup(ctx, t.name)
	if err != nil {
		return err
	}
	if old == nil {
		return errors.New("the table does not exist")
	}
	var raw []byte
	if err := conn.QueryRow(ctx, `SELECT schema FROM `+t.w.positionsIdent()+` WHERE table_name = $1`, t.name).Scan(&raw); err != nil {
		return fmt.Errorf("reading the recorded schema: %w", err)
	}
	stored, err := decodeSchema(raw)
	if err != nil {
		return err
	}
	for _, r := range renames {
		_, hasFrom := old.columns[r.From]
		if _, hasTo := old.columns[r.To]; !hasFrom && hasTo {
			continue // another runner renamed it first
		}
		if !hasFrom {
			return fmt.Errorf("the table has no column %q", r.From)
		}
		if _, ok := old.columns[r.To]; ok {
			return fmt.Errorf("the table already has a column %q", r.To)
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", t.ident(), pgx.Identifier{r.From}.Sanitize(), pgx.Identifier{r.To}.Sanitize())); err != nil {
			return fmt.Errorf("renaming column %q to %q: %w", r.From, r.To, err)
		}
		old.columns[r.To] = old.columns[r.From]
		delete(old.columns, r.From)
	}
	schema := warehouse.RenamedSchema(stored, renames)
	rawSchema, err := json.Marshal(schema)
	if err != nil {
		return fmt.Errorf("encoding the schema: %w", err)
	}
	if _, err := conn.Exec(ctx, `UPDATE `+t.w.positionsIdent()+` SET schema = $2 WHERE table_name = $1`, t.name, rawSchema); err != nil {
		return fmt.Errorf("recording the schema: %w", err)
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return err
	}
	t.w.releaseConn(conn)
	t.mu.Lock()
	t.schema = schema
	t.mu.Unlock()
	return nil
}
