package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	_ "modernc.org/sqlite" // the SQLite driver of the default catalog

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// Table is one Iceberg table.
type Table struct {
	w         *Warehouse
	ident     table.Identifier
	tbl       *table.Table // nil until created
	pos       records.Position
	committed bool
}

// load takes tbl's state: the position of the newest snapshot in the
// current snapshot's ancestry that has one.
func (t *Table) load(tbl *table.Table) error {
	t.tbl, t.pos, t.committed = tbl, records.Position{}, false
	md := tbl.Metadata()
	for s := md.CurrentSnapshot(); s != nil; {
		if s.Summary != nil {
			if p, ok := s.Summary.Properties[PositionProperty]; ok {
				if err := json.Unmarshal([]byte(p), &t.pos); err != nil {
					return fmt.Errorf("iceberg table %s: snapshot %d has an unreadable %s: %v: %w", t.name(), s.SnapshotID, PositionProperty, err, warehouse.ErrDamaged)
				}
				t.committed = true
				return nil
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return nil
}

func (t *Table) name() string { return t.ident[0] + "." + t.ident[1] }

// Position is the committed position; committed is false for a table
// never committed to.
func (t *Table) Position() (records.Position, bool) { return t.pos, t.committed }

// MetadataLocation is the table's current metadata file ("" before the
// first commit), which readers without the catalog open.
func (t *Table) MetadataLocation() string {
	if t.tbl == nil {
		return ""
	}
	return t.tbl.MetadataLocation()
}

// Begin starts a Replace or Append transaction.
func (t *Table) Begin(ctx context.Context, mode warehouse.Mode, schema *records.Schema, sync string) (warehouse.Tx, error) {
	if mode != warehouse.Replace && mode != warehouse.Append {
		return nil, fmt.Errorf("iceberg table %s: %s: %w", t.name(), mode, ErrNotSupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if schema.Index(SyncedAtColumn) >= 0 {
		return nil, fmt.Errorf("iceberg table %s: column %s is sluice's own", t.name(), SyncedAtColumn)
	}
	want, err := icebergSchema(schema)
	if err != nil {
		return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	if t.tbl != nil {
		if err := compatible(t.tbl.Schema(), want); err != nil {
			return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
		}
	}
	return &Tx{t: t, mode: mode, schema: schema, want: want, syncedAt: time.Now().UTC()}, nil
}

// Tx is a transaction on one table: the rows written, buffered as Arrow
// batches until Commit.
type Tx struct {
	t        *Table
	mode     warehouse.Mode
	schema   *records.Schema
	want     *iceberggo.Schema
	syncedAt time.Time
	batches  []records.Batch
	rows     int64
	ended    bool
}

// Write adds a batch's rows; the batch may be reused after Write returns.
func (tx *Tx) Write(ctx context.Context, b *records.Batch) error {
	if tx.ended {
		return errors.New("iceberg: write on an ended transaction")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(b.Cols) != len(tx.schema.Columns) {
		return fmt.Errorf("iceberg table %s: a batch of %d columns for a schema of %d", tx.t.name(), len(b.Cols), len(tx.schema.Columns))
	}
	tx.batches = append(tx.batches, cloneBatch(b))
	tx.rows += int64(b.N)
	return nil
}

// Commit lands the rows and pos in one snapshot.
func (tx *Tx) Commit(ctx context.Context, pos records.Position) (int64, error) {
	if tx.ended {
		return 0, errors.New("iceberg: commit of an ended transaction")
	}
	tx.ended = true
	defer func() { tx.batches = nil }()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t := tx.t
	posJSON, err := json.Marshal(pos)
	if err != nil {
		return 0, err
	}
	if t.tbl == nil {
		tbl, err := t.w.cat.CreateTable(ctx, t.ident, tx.want, catalog.WithProperties(iceberggo.Properties{"format-version": "2"}))
		if errors.Is(err, catalog.ErrTableAlreadyExists) {
			tbl, err = t.w.cat.LoadTable(ctx, t.ident)
		}
		if err != nil {
			return 0, fmt.Errorf("iceberg table %s: creating: %w", t.name(), err)
		}
		if err := t.load(tbl); err != nil {
			return 0, err
		}
	}
	txn := t.tbl.NewTransaction()
	if missing := newColumns(t.tbl.Schema(), tx.want); len(missing) > 0 {
		us := txn.UpdateSchema(true, false)
		for _, f := range missing {
			us = us.AddColumn([]string{f.Name}, f.Type, "", false, nil)
		}
		if err := us.Commit(); err != nil {
			return 0, fmt.Errorf("iceberg table %s: adding columns: %w", t.name(), err)
		}
	}
	staged, err := txn.StagedTable()
	if err != nil {
		return 0, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	sc := staged.Schema()
	asc, err := table.SchemaToArrowSchema(sc, nil, true, false)
	if err != nil {
		return 0, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	recs := make([]arrow.RecordBatch, 0, len(tx.batches))
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for i := range tx.batches {
		r, err := toArrow(memory.DefaultAllocator, asc, &tx.batches[i], tx.syncedAt)
		if err != nil {
			return 0, fmt.Errorf("iceberg table %s: %w", t.name(), err)
		}
		recs = append(recs, r)
	}
	rdr, err := array.NewRecordReader(asc, recs)
	if err != nil {
		return 0, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	defer rdr.Release()
	props := iceberggo.Properties{PositionProperty: string(posJSON), "sluice.sync-mode": tx.mode.String()}
	if tx.mode == warehouse.Replace {
		err = txn.Overwrite(ctx, rdr, props)
	} else {
		err = txn.Append(ctx, rdr, props)
	}
	if err != nil {
		return 0, fmt.Errorf("iceberg table %s: writing: %w", t.name(), err)
	}
	if t.w.beforeCommit != nil {
		if err := t.w.beforeCommit(); err != nil {
			return 0, err
		}
	}
	tbl, err := txn.Commit(ctx)
	if err != nil {
		// The catalog's compare-and-swap is the commit point: an error
		// before it leaves the previous snapshot; the next opening reads
		// which snapshot is current either way.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, fmt.Errorf("iceberg table %s: commit: %w (%w)", t.name(), err, ctxErr)
		}
		return 0, fmt.Errorf("iceberg table %s: commit (the previous snapshot stays current unless the catalog took it; the next opening reads which): %w", t.name(), err)
	}
	if err := t.load(tbl); err != nil {
		return 0, err
	}
	return totalRecords(tbl), nil
}

// Abort drops the buffered rows; nothing was written.
func (tx *Tx) Abort(ctx context.Context) error {
	tx.ended = true
	tx.batches = nil
	return nil
}

// totalRecords is the current snapshot's row count (its summary's
// total-records, which counts data file rows minus nothing deleted yet:
// exact while the table has no delete files, as Replace and Append make).
func totalRecords(tbl *table.Table) int64 {
	s := tbl.CurrentSnapshot()
	if s == nil || s.Summary == nil {
		return 0
	}
	n, _ := strconv.ParseInt(s.Summary.Properties["total-records"], 10, 64)
	return n
}

var errSchemaChanged = warehouse.ErrSchemaChanged
