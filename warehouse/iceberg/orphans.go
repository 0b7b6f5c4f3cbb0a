package iceberg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apache/iceberg-go/table"
)

// RemoveOrphans removes, in every table of the namespace, the files under
// the table's location that no snapshot or metadata file lists and that
// are older than OrphanAge: what commits that failed or were killed left
// behind. The runner calls it at start. Each table is swept under its
// writer lock, and the age keeps the files of a commit in flight in a
// process that does not take the lock. A table that fails is reported
// and the others are still swept.
func (w *Warehouse) RemoveOrphans(ctx context.Context) error {
	var errs []error
	for ident, err := range w.cat.ListTables(ctx, table.Identifier{w.ns}) {
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("iceberg warehouse: listing the tables of namespace %q: %w", w.ns, err))...)
		}
		name := ident[len(ident)-1]
		t := &Table{w: w, ident: table.Identifier{w.ns, name}}
		if err := t.sweepOrphans(ctx, OrphanAge); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweepOrphans takes the table's writer lock, loads it and removes its
// orphan files older than age.
func (t *Table) sweepOrphans(ctx context.Context, age time.Duration) error {
	unlock, err := t.w.lockTable(ctx, t.ident[1])
	if err != nil {
		return fmt.Errorf("iceberg table %s: removing orphan files: taking the writer lock: %w", t.name(), err)
	}
	defer unlock()
	tbl, err := t.w.cat.LoadTable(ctx, t.ident)
	if err != nil {
		return fmt.Errorf("iceberg table %s: removing orphan files: %w", t.name(), err)
	}
	t.tbl = tbl
	_, err = t.removeOrphans(ctx, age)
	return err
}

// removeOrphans removes the files under the table's location older than
// age that neither a snapshot (manifest lists, manifests, data and delete
// files) nor the metadata (current and logged metadata files, statistics)
// lists, with iceberg-go's orphan cleanup (which lists through the table's
// FileIO: a local directory, or an object store prefix as a directory).
// The caller holds the writer lock, and t.tbl is current.
func (t *Table) removeOrphans(ctx context.Context, age time.Duration) (int, error) {
	// Position files (positionInlineMax) are listed by snapshot summaries,
	// not manifests: the ones a snapshot still names stay.
	keep := positionFiles(t.tbl.Metadata())
	fs, err := t.tbl.FS(ctx)
	if err != nil {
		return 0, fmt.Errorf("iceberg table %s: removing orphan files: %w", t.name(), err)
	}
	res, err := t.tbl.DeleteOrphanFiles(ctx, table.WithFilesOlderThan(age), table.WithDeleteFunc(func(path string) error {
		if keep[pathBase(path)] {
			return nil
		}
		return fs.Remove(path)
	}))
	if err != nil {
		return 0, fmt.Errorf("iceberg table %s: removing orphan files: %w", t.name(), err)
	}
	n := 0
	for _, f := range res.DeletedFiles {
		if !keep[pathBase(f)] {
			n++
		}
	}
	return n, nil
}
