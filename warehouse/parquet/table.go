package parquet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

const (
	metaDir           = "_sluice"
	manifestName      = "manifest.json"
	tmpManifestPrefix = "manifest.json.tmp-"
	lockName          = "lock"
	spillPrefix       = "spill-"
	// stagedDir (under _sluice/) holds a transaction's data files until
	// its commit lands: the table directory's *.parquet glob does not
	// reach them, and neither does a reader that skips directories named
	// _* (Spark, Arrow datasets).
	stagedDir = "staged"
	dataExt   = ".parquet"
)

// Warehouse is a directory of tables, one subdirectory each (SPEC §4).
type Warehouse struct {
	root   string
	lim    limits
	now    func() time.Time
	hook   func(stage string) error
	spillB int64 // bytes of incoming merge rows held in memory before spilling
}

// Open opens the warehouse rooted at the directory root, creating it if
// needed.
func Open(root string) (*Warehouse, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating the warehouse directory: %w", err)
	}
	return &Warehouse{root: root, lim: defaultLimits, now: time.Now, spillB: 64 << 20}, nil
}

var _ warehouse.Warehouse = (*Warehouse)(nil)

// Close does nothing: a Parquet warehouse holds no connection, and each
// transaction its own table lock (warehouse.Warehouse).
func (w *Warehouse) Close() error { return nil }

// Root is the warehouse directory.
func (w *Warehouse) Root() string { return w.root }

func (w *Warehouse) tableDir(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`+"\x00") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("invalid warehouse table name %q: it must be a single directory name", name)
	}
	return filepath.Join(w.root, name), nil
}

// Table opens the table called name. A table that does not exist yet has
// a zero manifest; its directory is created by its first Begin.
//
// Opening recovers from an interrupted commit (Table.recover): a commit
// whose manifest landed is completed, and files no committed version owns
// are removed. Recovery is skipped while another writer holds the table.
//
// A damaged table (its manifest unreadable, or a data file it lists
// missing) still opens: Damaged says why, Merge and Append transactions
// refuse it, and a Replace (a resync) starts it anew.
//
// Table is warehouse.Warehouse's; OpenTable returns the *Table.
func (w *Warehouse) Table(ctx context.Context, name string) (warehouse.Table, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("opening table %s: %w", name, err)
	}
	t, err := w.OpenTable(name)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// OpenTable opens the table called name (see Table).
func (w *Warehouse) OpenTable(name string) (*Table, error) {
	dir, err := w.tableDir(name)
	if err != nil {
		return nil, err
	}
	t := &Table{w: w, name: name, dir: dir}
	if _, err := os.Stat(filepath.Join(dir, metaDir)); errors.Is(err, os.ErrNotExist) {
		t.m = &Manifest{Format: manifestFormat}
		return t, nil
	}
	lock, err := tryLock(filepath.Join(dir, metaDir, lockName))
	switch {
	case errors.Is(err, errLocked):
		// Another writer is committing: its files are not strays.
		m, err := readManifest(dir)
		if err != nil {
			m, t.damage = &Manifest{Format: manifestFormat}, err
		}
		t.m = m
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("opening table %s: %w", name, err)
	}
	defer lock.unlock()
	if _, err := t.recover(); err != nil {
		return nil, fmt.Errorf("opening table %s: %w", name, err)
	}
	return t, nil
}

// Drop removes a table and its files. The directory is first renamed away,
// so that a crash part-way leaves either the whole table or none of it.
func (w *Warehouse) Drop(name string) error {
	dir, err := w.tableDir(name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	lock, err := tryLock(filepath.Join(dir, metaDir, lockName))
	if errors.Is(err, errLocked) {
		return fmt.Errorf("dropping table %s: it is being written; retry when the sync finished", name)
	}
	if err != nil {
		return fmt.Errorf("dropping table %s: %w", name, err)
	}
	defer lock.unlock()
	trash := filepath.Join(w.root, ".dropped-"+name+"-"+randomHex(4))
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("dropping table %s: %w", name, err)
	}
	if err := syncDir(w.root); err != nil {
		return fmt.Errorf("dropping table %s: %w", name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("dropping table %s: removing %s: %w", name, trash, err)
	}
	return nil
}

// Table is one warehouse table: a directory of Parquet files and the
// manifest naming them. Its methods are safe for concurrent use; one
// transaction at a time writes it.
type Table struct {
	w    *Warehouse
	name string
	dir  string
	mu   sync.Mutex
	m    *Manifest
	// damage is why the table needs a resync (see Damaged), nil when its
	// manifest and every file it lists are there.
	damage error
}

// Name is the table's name (its directory in the warehouse).
func (t *Table) Name() string { return t.name }

// Dir is the table's directory: read_parquet('<Dir>/*.parquet') reads it
// (see the package documentation for what it sees during a commit).
func (t *Table) Dir() string { return t.dir }

// Damaged returns why the table cannot take a Merge or Append (its
// manifest is unreadable, or a data file it lists is missing), as of the
// last open or Begin; nil when it is whole. A Replace, which needs none of
// the old files, repairs it.
func (t *Table) Damaged() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.damage
}

// Position is the committed position as of the last open, Begin or
// Commit (warehouse.Table). A damaged table counts as committed even when
// its manifest is unreadable: the runner then begins the sync it would
// have (a Merge or Append, which fails saying to resync), rather than
// silently reloading a table whose rows the source may no longer hold.
func (t *Table) Position() (records.Position, bool) {
	m := t.Manifest()
	return m.Position, m.Version > 0 || t.Damaged() != nil
}

// Schema is the committed schema (its last column _sluice_synced_at), nil
// for a table never committed (warehouse.SchemaReader).
func (t *Table) Schema() *records.Schema {
	m := t.Manifest()
	if m.Version == 0 {
		return nil
	}
	return m.Schema.Records()
}

// Manifest returns the committed version as this Table last saw it (at
// open, Begin or Commit); its Version is 0 when the table was never
// committed. The caller must not modify it.
func (t *Table) Manifest() *Manifest {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m
}

// recover reloads the manifest, completes a commit whose manifest landed
// and removes what no committed version owns. The caller holds the table
// lock.
//
// A landed commit's new files may still be in _sluice/staged/ (a crash
// while they were renamed into place): they are renamed now. Data files of
// the table directory that the manifest does not list (a commit's replaced
// files not yet removed, or files of the old layout that wrote straight into
// the table directory), staged files it does not list (a commit that never
// landed), temporary manifests and spill directories are removed. A file
// the manifest lists is never removed.
//
// A table whose manifest is unreadable, or which lists a file that is
// nowhere, is damaged: recover records why (Damaged) and returns the names
// of the missing files. With an unreadable manifest no data file is
// touched: which of them are the table is unknown.
func (t *Table) recover() (missing map[string]bool, err error) {
	m, merr := readManifest(t.dir)
	if merr != nil {
		m = &Manifest{Format: manifestFormat}
	}
	listed := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		listed[f.Name] = true
	}
	meta := filepath.Join(t.dir, metaDir)
	entries, err := os.ReadDir(meta)
	if err != nil {
		return nil, fmt.Errorf("listing the table directory: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpManifestPrefix) || strings.HasPrefix(e.Name(), spillPrefix) {
			if err := os.RemoveAll(filepath.Join(meta, e.Name())); err != nil {
				return nil, fmt.Errorf("removing temporary files of an interrupted commit: %w", err)
			}
		}
	}
	if merr == nil {
		if err := t.rollForward(listed); err != nil {
			return nil, err
		}
	}
	var damage error
	if merr != nil {
		damage = merr
	}
	for _, f := range m.Files {
		if _, err := os.Stat(filepath.Join(t.dir, f.Name)); err != nil {
			if missing == nil {
				missing = map[string]bool{}
				damage = fmt.Errorf("data file %s of version %d is missing (%v): %w; resync it (sluice resync), which reloads it from the source", f.Name, m.Version, err, warehouse.ErrDamaged)
			}
			missing[f.Name] = true
		}
	}
	t.mu.Lock()
	t.m, t.damage = m, damage
	t.mu.Unlock()
	return missing, nil
}

// rollForward renames the staged files the manifest lists into the table
// directory and removes every other staged file and every data file of the
// table directory the manifest does not list.
func (t *Table) rollForward(listed map[string]bool) error {
	staged := filepath.Join(t.dir, metaDir, stagedDir)
	entries, err := os.ReadDir(staged)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listing the table directory: %w", err)
	}
	changed := false
	for _, e := range entries {
		src := filepath.Join(staged, e.Name())
		dst := filepath.Join(t.dir, e.Name())
		if listed[e.Name()] {
			if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
				if err := os.Rename(src, dst); err != nil {
					return fmt.Errorf("completing an interrupted commit: %w", err)
				}
				changed = true
				continue
			}
		}
		if err := os.RemoveAll(src); err != nil {
			return fmt.Errorf("removing a data file of an interrupted commit: %w", err)
		}
	}
	if err == nil {
		os.Remove(staged) // empty now; a Begin creates it again
	}
	entries, err = os.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("listing the table directory: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), dataExt) || listed[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(t.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing a data file of an interrupted commit: %w", err)
		}
		changed = true
	}
	if changed {
		return syncDir(t.dir)
	}
	return nil
}

// Rename moves the table to newName (a directory rename, atomic). It fails
// while the table is being written or when newName exists.
func (t *Table) Rename(newName string) error {
	dst, err := t.w.tableDir(newName)
	if err != nil {
		return err
	}
	lock, err := tryLock(filepath.Join(t.dir, metaDir, lockName))
	if errors.Is(err, errLocked) {
		return fmt.Errorf("renaming table %s: it is being written; retry when the sync finished", t.name)
	}
	if err != nil {
		return fmt.Errorf("renaming table %s: %w", t.name, err)
	}
	defer lock.unlock()
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("renaming table %s: table %s already exists", t.name, newName)
	}
	if err := os.Rename(t.dir, dst); err != nil {
		return fmt.Errorf("renaming table %s: %w", t.name, err)
	}
	if err := syncDir(t.w.root); err != nil {
		return fmt.Errorf("renaming table %s: %w", t.name, err)
	}
	t.mu.Lock()
	t.name, t.dir = newName, dst
	t.mu.Unlock()
	return nil
}

// Scan reads the committed table back, calling fn with batches of up to a
// row group of rows. The batch's schema is the table's (its last column is
// _sluice_synced_at); the batch is reused after fn returns. Files are
// opened up front, so a commit landing during the scan does not disturb
// it: the scan sees the version that was committed when it began. A
// cancelled ctx stops it between row groups.
func (t *Table) Scan(ctx context.Context, fn func(*records.Batch) error) error {
	t.mu.Lock()
	dir := t.dir
	t.mu.Unlock()
	var m *Manifest
	var readers []*fileReader
	defer func() {
		for _, r := range readers {
			r.close()
		}
	}()
	// A commit landing between reading the manifest and opening the files
	// may remove some: then read the new manifest and start over.
	for attempt := 0; ; attempt++ {
		var err error
		if m, err = readManifest(dir); err != nil {
			return err
		}
		var missing error
		for _, f := range m.Files {
			r, err := openListed(dir, f.Name, m.Schema.Records())
			if errors.Is(err, os.ErrNotExist) && attempt < 10 {
				missing = err
				break
			}
			if err != nil {
				return fmt.Errorf("scanning table %s: %w", t.name, err)
			}
			readers = append(readers, r)
		}
		if missing == nil {
			break
		}
		for _, r := range readers {
			r.close()
		}
		readers = nil
	}
	if m.Version == 0 || len(m.Files) == 0 {
		return nil
	}
	schema := readers[0].schema
	b := records.NewBatch(schema, 0)
	for _, r := range readers {
		for g := range r.numRowGroups() {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("scanning table %s: %w", t.name, err)
			}
			if err := r.readRowGroup(g, b, nil); err != nil {
				return fmt.Errorf("scanning table %s: %w", t.name, err)
			}
			if err := fn(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// openListed opens a data file a manifest lists: in the table directory,
// or still in _sluice/staged/ while the commit that listed it renames its
// files into place.
func openListed(dir, name string, schema *records.Schema) (*fileReader, error) {
	r, err := openFile(filepath.Join(dir, name), schema)
	if errors.Is(err, os.ErrNotExist) {
		if r2, err2 := openFile(filepath.Join(dir, metaDir, stagedDir, name), schema); err2 == nil {
			return r2, nil
		}
	}
	return r, err
}
