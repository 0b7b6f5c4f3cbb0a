package runner

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

// Column renames (the rename attribute): sources are read by their
// column names, the warehouse sees only the new ones. Every schema and
// batch a provider hands over goes through the table's renamer before
// anything else (snapshot and cursor reads in commit, the cdc snapshot in
// snapshotTable, streamed changes in cdcSink.Transaction, webhook rows in
// applyWebhookEvents), so the sink's key lookups, its schema checks and
// the warehouse all work with warehouse names. A renamed column carries
// its source name (records.Column.SourceName), which the warehouse
// records, so that a later change of the rename finds the column to
// rename in place (renameInPlace).

// renamer maps a provider's schemas and batches to warehouse names; a nil
// renamer (no rename) hands them over unchanged.
type renamer struct {
	m  map[string]string
	mu sync.Mutex
	// memo keeps the renamed schema of each provider schema seen, so
	// that a stream's relation keeps one schema (cdcSink compares them
	// by pointer first).
	memo map[*records.Schema]*records.Schema
}

func newRenamer(m map[string]string) *renamer {
	if len(m) == 0 {
		return nil
	}
	return &renamer{m: m, memo: map[*records.Schema]*records.Schema{}}
}

// schema is s with the warehouse names.
func (r *renamer) schema(s *records.Schema) *records.Schema {
	if r == nil || s == nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if out, ok := r.memo[s]; ok && r.maps(s, out) {
		return out
	}
	out := &records.Schema{Columns: slices.Clone(s.Columns), PrimaryKey: slices.Clone(s.PrimaryKey)}
	for i, c := range out.Columns {
		if to, ok := r.m[c.Name]; ok && c.SourceName == "" {
			out.Columns[i].Name, out.Columns[i].SourceName = to, c.Name
		}
	}
	for k, n := range out.PrimaryKey {
		if to, ok := r.m[n]; ok {
			out.PrimaryKey[k] = to
		}
	}
	if len(r.memo) >= 64 {
		clear(r.memo)
	}
	r.memo[s] = out
	return out
}

// maps reports whether out is still s renamed (a provider might reuse a
// schema it changed).
func (r *renamer) maps(s, out *records.Schema) bool {
	if len(s.Columns) != len(out.Columns) || len(s.PrimaryKey) != len(out.PrimaryKey) {
		return false
	}
	for i, c := range s.Columns {
		o := out.Columns[i]
		o.Name, o.SourceName = c.Name, c.SourceName
		if to, ok := r.m[c.Name]; ok && c.SourceName == "" && out.Columns[i].Name != to || !ok && out.Columns[i].Name != c.Name {
			return false
		}
		if o.SourceType != c.SourceType || o.Nullable != c.Nullable || !sameType(o.Type, c.Type) {
			return false
		}
	}
	return true
}

// batch is b with the warehouse names: a copy sharing b's vectors.
func (r *renamer) batch(b *records.Batch) *records.Batch {
	if r == nil || b == nil {
		return b
	}
	out := *b
	out.Schema = r.schema(b.Schema)
	return &out
}

// renamedTransaction is tx with each table's changes in warehouse names:
// a copy, the provider's own left as they are.
func (s *cdcSink) renamedTransaction(tx *providers.Transaction) *providers.Transaction {
	var out *providers.Transaction
	for key, tc := range tx.Changes {
		ts := s.tables[key]
		if ts == nil || ts.t.ren == nil {
			continue
		}
		if out == nil {
			cp := *tx
			cp.Changes = make(map[string]*providers.TableChanges, len(tx.Changes))
			for k, v := range tx.Changes {
				cp.Changes[k] = v
			}
			out = &cp
		}
		ren := ts.t.ren
		c := *tc
		c.Schema, c.Rows, c.OldKeys = ren.schema(tc.Schema), ren.batch(tc.Rows), ren.batch(tc.OldKeys)
		out.Changes[key] = &c
	}
	if out == nil {
		return tx
	}
	return out
}

// columnRenames are the in-place renames that bring a warehouse table's
// committed schema to the names rename gives: a column recorded under a
// name other than its source column's new one is renamed. They are
// ordered so that no rename takes a name still in use; renames that
// exchange names cannot be, and are an error (plan resyncs such a table).
func columnRenames(stored *records.Schema, rename map[string]string) ([]warehouse.ColumnRename, error) {
	if stored == nil {
		return nil, nil
	}
	inUse := map[string]bool{}
	var pending []warehouse.ColumnRename
	for _, c := range stored.Columns {
		inUse[c.Name] = true
		src := c.SourceName
		if src == "" {
			src = c.Name
		}
		to := src
		if n, ok := rename[src]; ok {
			to = n
		}
		if to != c.Name {
			r := warehouse.ColumnRename{From: c.Name, To: to}
			if src != to {
				r.Source = src
			}
			pending = append(pending, r)
		}
	}
	var out []warehouse.ColumnRename
	for len(pending) > 0 {
		n := len(pending)
		pending = slices.DeleteFunc(pending, func(r warehouse.ColumnRename) bool {
			if inUse[r.To] {
				return false
			}
			out = append(out, r)
			delete(inUse, r.From)
			inUse[r.To] = true
			return true
		})
		if len(pending) == n {
			return nil, fmt.Errorf("cannot rename columns in place: the new names %v are taken by other columns; resync the table", pending)
		}
	}
	return out, nil
}

// renameInPlace renames the columns of a warehouse table whose rename
// changed since its last commit, before the table is read or written. A
// warehouse that cannot rename in place (Parquet) is left as it is: plan
// resyncs its tables when a rename changes. A failure is returned: the
// sync must not write under names the table does not have, unless it
// reloads the table (reloading), which replaces it under the new names.
func renameInPlace(ctx context.Context, wt warehouse.Table, t *state.Table, name string, reloading bool, log hclog.Logger) error {
	sr, ok1 := wt.(warehouse.SchemaReader)
	cr, ok2 := wt.(warehouse.ColumnRenamer)
	if !ok1 || !ok2 {
		return nil
	}
	renames, err := columnRenames(sr.Schema(), t.Rename)
	if err != nil {
		if reloading {
			return nil
		}
		return fmt.Errorf("warehouse table %s: %w", name, err)
	}
	if len(renames) == 0 {
		return nil
	}
	if err := cr.RenameColumns(ctx, renames); err != nil {
		return err
	}
	for _, r := range renames {
		log.Info("warehouse column renamed in place", "table", name, "from", r.From, "to", r.To)
	}
	return nil
}
