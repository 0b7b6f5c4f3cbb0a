package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// SchemaProperty is the table property holding the schema the last
// commit recorded (records.Schema as JSON), set by the commit's own
// catalog commit.
const SchemaProperty = "sluice.schema"

// ModeProperty is the snapshot summary property naming the sluice commit
// mode that made the snapshot.
const ModeProperty = "sluice.sync-mode"

// Table is one Iceberg table.
type Table struct {
	w         *Warehouse
	ident     table.Identifier
	tbl       *table.Table // nil until created
	pos       records.Position
	committed bool
	schema    *records.Schema // recorded; nil before the first commit
	// mu guards the fields above (set by load) and filesState, the files
	// of the snapshot last planned or committed (index.go).
	mu         sync.Mutex
	filesState *snapshotFiles
}

var (
	_ warehouse.CDCTable  = (*Table)(nil)
	_ warehouse.Scanner   = (*Table)(nil)
	_ warehouse.Versioned = (*Table)(nil)
)

// load takes tbl's state: the position of the newest snapshot in the
// current snapshot's ancestry that has one, and the recorded schema.
func (t *Table) load(tbl *table.Table) error {
	var pos records.Position
	var committed bool
	var schema *records.Schema
	if s, ok := tbl.Properties()[SchemaProperty]; ok {
		var rs records.Schema
		if err := json.Unmarshal([]byte(s), &rs); err != nil {
			return fmt.Errorf("iceberg table %s: unreadable table property %s: %v: %w", t.name(), SchemaProperty, err, warehouse.ErrDamaged)
		}
		schema = &rs
	}
	md := tbl.Metadata()
	for s := md.CurrentSnapshot(); s != nil; {
		if s.Summary != nil {
			if p, ok := s.Summary.Properties[PositionProperty]; ok {
				b, err := readPosition(tbl, p)
				if err != nil {
					return fmt.Errorf("iceberg table %s: snapshot %d: %w: %w", t.name(), s.SnapshotID, err, warehouse.ErrDamaged)
				}
				if err := json.Unmarshal(b, &pos); err != nil {
					return fmt.Errorf("iceberg table %s: snapshot %d has an unreadable %s: %v: %w", t.name(), s.SnapshotID, PositionProperty, err, warehouse.ErrDamaged)
				}
				committed = true
				break
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	t.mu.Lock()
	t.tbl, t.pos, t.committed, t.schema = tbl, pos, committed, schema
	t.mu.Unlock()
	return nil
}

// positionInlineMax is the largest position kept in the snapshot summary
// itself. A bigger one (an incremental cursor whose value thousands of rows
// share keeps all their keys) goes to a file of the commit, which the
// summary names: every metadata file holds every snapshot's summary, so an
// inline 500 kB position would be rewritten, and parsed at every opening,
// once per snapshot kept.
const positionInlineMax = 4 << 10

// positionFileMark starts a position property naming its file (JSON never
// starts with it), and positionFileSuffix ends such a file's name.
const (
	positionFileMark   = "@"
	positionFileSuffix = "-position.json"
)

// readPosition is the position JSON a snapshot's position property p
// holds or names.
func readPosition(tbl *table.Table, p string) ([]byte, error) {
	path, ok := strings.CutPrefix(p, positionFileMark)
	if !ok {
		return []byte(p), nil
	}
	fs, err := tbl.FS(context.Background())
	if err != nil {
		return nil, err
	}
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the position file %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("the position file %s: %w", path, err)
	}
	return b, nil
}

// positionFiles are the position files the table's snapshots name, by
// base name (orphan cleanup keeps them: no manifest lists them).
func positionFiles(md table.Metadata) map[string]bool {
	keep := map[string]bool{}
	for _, s := range md.Snapshots() {
		if s.Summary == nil {
			continue
		}
		if path, ok := strings.CutPrefix(s.Summary.Properties[PositionProperty], positionFileMark); ok {
			keep[pathBase(path)] = true
		}
	}
	return keep
}

func pathBase(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// state is the table as last loaded (Lookup and Scan may run beside a
// commit of another goroutine).
func (t *Table) state() (tbl *table.Table, schema *records.Schema, committed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tbl, t.schema, t.committed
}

func (t *Table) name() string { return t.ident[0] + "." + t.ident[1] }

// Position is the committed position; committed is false for a table
// never committed to.
func (t *Table) Position() (records.Position, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos, t.committed
}

// Schema is the schema the last commit recorded (nil before the first).
func (t *Table) Schema() *records.Schema {
	_, schema, committed := t.state()
	if !committed {
		return nil
	}
	return schema
}

// MetadataLocation is the table's current metadata file ("" before the
// first commit), which readers without the catalog open.
func (t *Table) MetadataLocation() string {
	tbl, _, _ := t.state()
	if tbl == nil {
		return ""
	}
	return tbl.MetadataLocation()
}

// Version is the current metadata file and snapshot id.
func (t *Table) Version() warehouse.TableVersion {
	tbl, _, _ := t.state()
	if tbl == nil || tbl.CurrentSnapshot() == nil {
		return warehouse.TableVersion{}
	}
	return warehouse.TableVersion{MetadataLocation: tbl.MetadataLocation(), SnapshotID: tbl.CurrentSnapshot().SnapshotID}
}

// Begin starts a Replace, Merge or Append transaction.
func (t *Table) Begin(ctx context.Context, mode warehouse.Mode, schema *records.Schema, sync string) (warehouse.Tx, error) {
	if mode != warehouse.Replace && mode != warehouse.Merge && mode != warehouse.Append {
		return nil, fmt.Errorf("iceberg table %s: mode %s: %w", t.name(), mode, ErrNotSupported)
	}
	if mode == warehouse.Merge {
		if len(schema.PrimaryKey) == 0 {
			return nil, fmt.Errorf("iceberg table %s: a merge needs a primary key", t.name())
		}
	}
	return t.begin(ctx, mode, false, schema, time.Time{})
}

// BeginHistory starts a transaction adding versions to a history table
// (warehouse.HistoryTable).
func (t *Table) BeginHistory(ctx context.Context, schema *records.Schema, sync string, closeAllAt time.Time) (warehouse.Tx, error) {
	if err := warehouse.CheckHistorySchema(schema); err != nil {
		return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	return t.begin(ctx, warehouse.Append, true, schema, closeAllAt)
}

func (t *Table) begin(ctx context.Context, mode warehouse.Mode, history bool, schema *records.Schema, closeAllAt time.Time) (_ warehouse.Tx, err error) {
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
	unlock, err := t.w.lockTable(ctx, t.ident[1])
	if err != nil {
		return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	// Another process may have committed since the opening: start from
	// the catalog's current version.
	tbl, err := t.w.cat.LoadTable(ctx, t.ident)
	switch {
	case errors.Is(err, catalog.ErrNoSuchTable):
		tbl, err = t.w.cat.CreateTable(ctx, t.ident, want, catalog.WithLocation(t.w.tableLocation(t.ident[1])), catalog.WithProperties(iceberggo.Properties{"format-version": "2"}))
		if errors.Is(err, catalog.ErrTableAlreadyExists) {
			tbl, err = t.w.cat.LoadTable(ctx, t.ident)
		}
		if err != nil {
			return nil, fmt.Errorf("iceberg table %s: creating: %w", t.name(), err)
		}
	case err != nil:
		return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	if err := t.load(tbl); err != nil {
		return nil, err
	}
	have := tbl.Schema()
	if mode != warehouse.Replace {
		if err := compatible(have, want); err != nil {
			return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
		}
		if mode == warehouse.Merge && t.committed && t.schema != nil && len(t.schema.PrimaryKey) > 0 && !slices.Equal(t.schema.PrimaryKey, schema.PrimaryKey) {
			return nil, fmt.Errorf("iceberg table %s: the primary key was %v and is %v now: %w", t.name(), t.schema.PrimaryKey, schema.PrimaryKey, errSchemaChanged)
		}
	}
	var parent int64
	if s := tbl.CurrentSnapshot(); s != nil {
		parent = s.SnapshotID
	}
	txn := tbl.NewTransaction()
	if mode == warehouse.Replace {
		// Columns the new rows lack, or whose type changed, are dropped
		// by id: no file is rewritten, and the old ones go with the
		// overwrite.
		var drop []string
		for _, f := range have.Fields() {
			if f.Name == SyncedAtColumn {
				continue
			}
			if w, ok := want.FindFieldByName(f.Name); !ok || !w.Type.Equals(f.Type) {
				drop = append(drop, f.Name)
			}
		}
		if len(drop) > 0 {
			us := txn.UpdateSchema(true, true)
			for _, name := range drop {
				us = us.DeleteColumn([]string{name})
			}
			if err := us.Commit(); err != nil {
				return nil, fmt.Errorf("iceberg table %s: dropping columns %v: %w", t.name(), drop, err)
			}
		}
	}
	staged, err := txn.StagedTable()
	if err != nil {
		return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	if missing := newColumns(staged.Schema(), want); len(missing) > 0 {
		us := txn.UpdateSchema(true, false)
		for _, f := range missing {
			us = us.AddColumn([]string{f.Name}, f.Type, "", false, nil)
		}
		if err := us.Commit(); err != nil {
			return nil, fmt.Errorf("iceberg table %s: adding columns: %w", t.name(), err)
		}
		if staged, err = txn.StagedTable(); err != nil {
			return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
		}
	}
	prev := t.schema
	if !t.committed {
		prev = nil
	}
	recMode := mode
	if history {
		recMode = warehouse.Merge
	}
	tx := &Tx{
		t: t, mode: mode, history: history, closeAllAt: closeAllAt, schema: schema,
		rec: recordedSchema(prev, schema, recMode), txn: txn, staged: staged.Table,
		syncedAt: time.Now().UTC(), unlock: unlock, parent: parent,
	}
	if tx.asc, err = table.SchemaToArrowSchema(staged.Schema(), nil, true, false); err != nil {
		return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	if tx.dw, err = newDataWriter(ctx, staged.Table, staged.Schema(), newTxPrefix()); err != nil {
		return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	if !history && mode != warehouse.Merge && parallelWriters > 1 {
		if tx.pw, err = newParallelWriter(ctx, staged.Table, staged.Schema(), tx.dw.prefix, parallelWriters); err != nil {
			return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
		}
	}
	if mode == warehouse.Merge || history {
		if err := tx.initKeys(); err != nil {
			return nil, fmt.Errorf("iceberg table %s: %w", t.name(), err)
		}
	}
	return tx, nil
}

// Tx is a transaction on one table. Its rows stream into new data files
// as they are written (memory: a row group); Commit adds those files,
// and for a merge or history commit a position delete file, in one
// snapshot.
type Tx struct {
	t          *Table
	mode       warehouse.Mode
	history    bool
	closeAllAt time.Time
	schema     *records.Schema // of the batches written
	rec        *records.Schema // recorded by the commit
	txn        *table.Transaction
	staged     *table.Table
	asc        *arrow.Schema
	dw         *dataWriter
	pw         *parallelWriter // Replace and Append
	syncedAt   time.Time
	unlock     func()
	rows       int64
	ended      bool
	parent     int64    // the snapshot the transaction started from
	delFiles   []string // the position delete files it wrote
	deleted    []rowRef // the rows they delete

	merge // merge and history state
}

// Write adds a batch's rows; the batch may be reused after Write returns.
func (tx *Tx) Write(ctx context.Context, b *records.Batch) error {
	if tx.ended {
		return errEnded
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(b.Cols) != len(tx.schema.Columns) {
		return fmt.Errorf("iceberg table %s: a batch of %d columns for a schema of %d", tx.t.name(), len(b.Cols), len(tx.schema.Columns))
	}
	if b.N == 0 {
		return nil
	}
	var err error
	switch {
	case tx.history:
		err = tx.writeHistory(b)
	case tx.mode == warehouse.Merge:
		err = tx.writeMerge(b)
	case tx.pw != nil:
		var rec arrow.RecordBatch
		if rec, err = toArrow(memory.DefaultAllocator, tx.asc, b, tx.syncedAt); err == nil {
			// In slices of a row group, for files to roll at their size.
			n, step := rec.NumRows(), max(rowGroupRows, 1)
			for lo := int64(0); lo < n && err == nil; lo += step {
				err = tx.pw.write(ctx, rec.NewSlice(lo, min(lo+step, n)))
			}
			rec.Release()
			tx.rows += int64(b.N)
		}
	default:
		_, err = tx.writeRows(b)
	}
	if err != nil {
		return fmt.Errorf("iceberg table %s: %w", tx.t.name(), err)
	}
	return nil
}

// writeRows writes b's rows to the data files, in slices of at most a
// row group so that files roll at their target size: where each row went.
func (tx *Tx) writeRows(b *records.Batch) (placement, error) {
	rec, err := toArrow(memory.DefaultAllocator, tx.asc, b, tx.syncedAt)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	var at placement
	n := rec.NumRows()
	step := max(rowGroupRows, 1)
	for lo := int64(0); lo < n; lo += step {
		part := rec.NewSlice(lo, min(lo+step, n))
		path, pos, err := tx.dw.write(part)
		part.Release()
		if err != nil {
			return nil, err
		}
		at = append(at, span{path: path, pos: pos, rows: int(min(step, n-lo))})
	}
	tx.rows += int64(b.N)
	return at, nil
}

// placement is where consecutive rows went: spans of rows in one file.
type placement []span

type span struct {
	path string
	pos  int64 // of the span's first row
	rows int
}

// ref is the file and position of row i.
func (p placement) ref(i int) rowRef {
	for _, s := range p {
		if i < s.rows {
			return rowRef{s.path, s.pos + int64(i)}
		}
		i -= s.rows
	}
	panic("iceberg: a row beyond the rows written")
}

// Stages of a commit, for the crash tests (stageHook).
const (
	stageData      = "data"      // the data files are written
	stageDeletes   = "deletes"   // the position delete file is written
	stageManifests = "manifests" // the manifests and manifest list are written
	stageCatalog   = "catalog"   // the catalog took the commit
)

// stageHook, set by tests, runs at each stage of a commit.
var stageHook func(stage string)

func stage(s string) {
	if stageHook != nil {
		stageHook(s)
	}
}

// Commit lands the rows and pos in one snapshot.
func (tx *Tx) Commit(ctx context.Context, pos records.Position) (rows int64, err error) {
	if tx.ended {
		return 0, errEnded
	}
	tx.ended = true
	defer tx.unlock()
	// Until the catalog is asked, a failure leaves files no snapshot
	// lists: removed now. Once asked, a failure may still have landed
	// (a lost reply): the files stay, for the next opening to read the
	// truth and the orphan cleanup to remove them if not.
	asked := false
	defer func() {
		if !asked {
			if tx.pw != nil {
				tx.pw.finish(tx.dw)
			}
			tx.dw.abort()
		}
	}()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t := tx.t
	posJSON, err := json.Marshal(pos)
	if err != nil {
		return 0, err
	}
	posProp := string(posJSON)
	if len(posJSON) > positionInlineMax {
		path, err := tx.dw.writePosition(posJSON)
		if err != nil {
			return 0, fmt.Errorf("iceberg table %s: %w", t.name(), err)
		}
		posProp = positionFileMark + path
	}
	props := iceberggo.Properties{PositionProperty: posProp, ModeProperty: tx.modeName()}
	recJSON, err := json.Marshal(tx.rec)
	if err != nil {
		return 0, err
	}
	if tx.staged.Properties()[SchemaProperty] != string(recJSON) {
		if err := tx.txn.SetProperties(iceberggo.Properties{SchemaProperty: string(recJSON)}); err != nil {
			return 0, fmt.Errorf("iceberg table %s: %w", t.name(), err)
		}
	}
	switch {
	case tx.history || tx.mode == warehouse.Merge:
		err = tx.commitDelta(ctx, props)
	default:
		err = tx.commitFiles(ctx, props)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			return 0, fmt.Errorf("iceberg table %s: %w (%w)", t.name(), err, ctxErr)
		}
		return 0, fmt.Errorf("iceberg table %s: %w", t.name(), err)
	}
	stage(stageManifests)
	if t.w.beforeCommit != nil {
		if err := t.w.beforeCommit(); err != nil {
			return 0, err
		}
	}
	if err := warehouse.CheckCommitGuard(ctx); err != nil {
		return 0, err
	}
	asked = true
	tbl, err := tx.txn.Commit(ctx)
	if err != nil {
		// The catalog's compare-and-swap is the commit point: an error
		// before it leaves the previous snapshot; the next opening reads
		// which snapshot is current either way.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, fmt.Errorf("iceberg table %s: commit: %w (%w)", t.name(), err, ctxErr)
		}
		return 0, fmt.Errorf("iceberg table %s: commit (the previous snapshot stays current unless the catalog took it; the next opening reads which): %w", t.name(), err)
	}
	stage(stageCatalog)
	if err := t.load(tbl); err != nil {
		return 0, err
	}
	t.afterCommit(tbl, tx.parent, tx.mode == warehouse.Replace && !tx.history, tx.dw.dataFiles(), tx.delFiles, tx.deleted)
	return liveRows(tbl), nil
}

func (tx *Tx) modeName() string {
	if tx.history {
		return "history"
	}
	return tx.mode.String()
}

// commitFiles stages a Replace (an overwrite removing every data and
// delete file of the table) or an Append.
func (tx *Tx) commitFiles(ctx context.Context, props iceberggo.Properties) error {
	if tx.pw != nil {
		if err := tx.pw.finish(tx.dw); err != nil {
			return err
		}
	}
	if err := tx.dw.closeFile(); err != nil {
		return err
	}
	stage(stageData)
	added := tx.dw.dataFiles()
	if tx.mode == warehouse.Append {
		if len(added) == 0 {
			return emptyCommit(ctx, tx.txn, tx.asc, props)
		}
		return tx.txn.AddDataFiles(ctx, added, props, table.WithoutDuplicateCheck())
	}
	var oldData, oldDeletes []iceberggo.DataFile
	if tx.t.tbl.CurrentSnapshot() != nil {
		tasks, err := tx.t.tbl.Scan().PlanFiles(ctx)
		if err != nil {
			return fmt.Errorf("listing the table's files: %w", err)
		}
		seen := map[string]bool{}
		for _, task := range tasks {
			if !seen[task.File.FilePath()] {
				seen[task.File.FilePath()] = true
				oldData = append(oldData, task.File)
			}
			for _, d := range slices.Concat(task.DeleteFiles, task.EqualityDeleteFiles, task.DeletionVectorFiles) {
				if !seen[d.FilePath()] {
					seen[d.FilePath()] = true
					oldDeletes = append(oldDeletes, d)
				}
			}
		}
	}
	switch {
	case len(oldData) == 0 && len(added) == 0:
		return emptyCommit(ctx, tx.txn, tx.asc, props)
	case len(oldData) == 0:
		return tx.txn.AddDataFiles(ctx, added, props, table.WithoutDuplicateCheck())
	case len(oldDeletes) > 0:
		return tx.txn.ReplaceFiles(ctx, oldData, added, oldDeletes, props)
	default:
		return tx.txn.ReplaceDataFilesWithDataFiles(ctx, oldData, added, props)
	}
}

// emptyCommit stages a snapshot that changes no file: it carries the
// position of a commit without rows.
func emptyCommit(ctx context.Context, txn *table.Transaction, asc *arrow.Schema, props iceberggo.Properties) error {
	rdr, err := array.NewRecordReader(asc, nil)
	if err != nil {
		return err
	}
	defer rdr.Release()
	return txn.Append(ctx, rdr, props)
}

// Abort drops what the transaction wrote.
func (tx *Tx) Abort(ctx context.Context) error {
	if tx.ended {
		return nil
	}
	tx.ended = true
	if tx.pw != nil {
		tx.pw.finish(tx.dw)
	}
	tx.dw.abort()
	tx.unlock()
	return nil
}

// liveRows is the current snapshot's row count: its data files' rows
// less its position deletes (exact: a commit never deletes a row twice).
func liveRows(tbl *table.Table) int64 {
	s := tbl.CurrentSnapshot()
	if s == nil || s.Summary == nil {
		return 0
	}
	n, _ := strconv.ParseInt(s.Summary.Properties["total-records"], 10, 64)
	d, _ := strconv.ParseInt(s.Summary.Properties["total-position-deletes"], 10, 64)
	return n - d
}

var (
	errSchemaChanged = warehouse.ErrSchemaChanged
	errDamaged       = warehouse.ErrDamaged
)
