package parquet

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// Option configures a transaction.
type Option func(*txOptions)

type txOptions struct {
	syncMode     string
	expectedRows int64
	// repair lets a Merge begin on a damaged table, without the files it
	// lost: a history resync, which closes every current version.
	repair bool
}

// WithSyncMode records the sluice sync type ("full_refresh",
// "incremental", "cdc", ...) in the manifest.
func WithSyncMode(mode string) Option { return func(o *txOptions) { o.syncMode = mode } }

// WithExpectedRows tells how many rows the table will hold (the source's
// estimate), so that a Replace of a table with a primary key, or the first
// merge into an empty one, can choose its bucket count up front. Without it
// a Replace uses the previous version's size and a first merge the size of
// its own rows.
func WithExpectedRows(n int64) Option { return func(o *txOptions) { o.expectedRows = n } }

// Stages at which the test hook runs during Commit.
const (
	stageBeforeManifest = "before-manifest" // new files durable in _sluice/staged/, manifest not replaced
	stageAfterManifest  = "after-manifest"  // manifest replaced, new files still staged
	stageAfterPublish   = "after-publish"   // new files renamed into place, replaced files not removed
	stageAfterCleanup   = "after-cleanup"   // replaced files removed
)

// Tx writes one new version of a table. Rows go to new files as they are
// written (memory stays bounded whatever the number of rows); nothing is
// visible in the manifest until Commit, and Abort (or a crash) leaves the
// previous version as it was. Commit or Abort must end it: until then it
// holds the table's lock. A Tx is used by one goroutine.
type Tx struct {
	t     *Table
	lock  *tableLock
	mode  warehouse.Mode
	opts  txOptions
	base  *Manifest
	stage string // _sluice/staged/: where the new files are written
	// sweep removes, when the commit lands, every data file of the table
	// directory the new version does not list, not only those of base: a
	// Replace, which may repair a table whose manifest was lost.
	sweep    bool
	in       *records.Schema // the schema of incoming batches
	inOK     *records.Schema // the last batch schema checked against in
	cols     *columns        // the new version's table schema
	inMap    []int           // table column i is incoming column inMap[i]; -1: NULL
	syncedAt int64
	version  int64
	// rewriteAll is set when the schema gained columns: every file kept
	// from the previous version is rewritten with NULLs for them, so that
	// all files of the table have the same columns.
	rewriteAll bool
	nulled     int64
	view       *records.Batch // an incoming batch seen as the table schema
	nulls      []records.Vec  // per table column, all NULL, for columns the batch lacks
	synced     records.Vec

	buckets   int       // Replace with a key: the bucket count
	outs      []*output // Replace: one per bucket (or one unbucketed); Append: one
	rowSel    [][]int32 // Replace with buckets: rows of the batch per bucket
	rowBucket []uint8   // the bucket of each row of the batch
	merge     *mergeState

	err  error // sticky: the first failed Write
	done bool
}

var (
	_ warehouse.Tx       = (*Tx)(nil)
	_ warehouse.CDCTable = (*Table)(nil)
	_ warehouse.Scanner  = (*Table)(nil)
)

// Begin starts a transaction writing rows of the given schema
// (warehouse.Table): BeginTx with the sync type recorded in the manifest.
func (t *Table) Begin(ctx context.Context, mode warehouse.Mode, schema *records.Schema, sync string) (warehouse.Tx, error) {
	tx, err := t.BeginTx(ctx, mode, schema, WithSyncMode(sync))
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// BeginTx starts a transaction writing rows of the given schema. The table's
// new schema is the incoming one for Replace; for Merge and Append it is
// the committed schema with the incoming columns added (a column the
// source dropped stays, NULL in new rows). A column whose Parquet type
// changed, or a changed primary key for Merge, fails with
// warehouse.ErrSchemaChanged: the caller resyncs with Replace.
//
// Only one transaction writes a table at a time, across processes: Begin
// fails while another holds it.
func (t *Table) BeginTx(ctx context.Context, mode warehouse.Mode, schema *records.Schema, opts ...Option) (*Tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("beginning a write to table %s: %w", t.name, err)
	}
	if mode != warehouse.Replace && mode != warehouse.Merge && mode != warehouse.Append {
		return nil, fmt.Errorf("beginning a write to table %s: unknown mode %d", t.name, mode)
	}
	if err := os.MkdirAll(filepath.Join(t.dir, metaDir), 0o755); err != nil {
		return nil, fmt.Errorf("beginning a write to table %s: %w", t.name, err)
	}
	lock, err := tryLock(filepath.Join(t.dir, metaDir, lockName))
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("beginning a write to table %s: another sync is writing it; retry when it finished", t.name)
	}
	if err != nil {
		return nil, fmt.Errorf("beginning a write to table %s: %w", t.name, err)
	}
	tx := &Tx{t: t, lock: lock, mode: mode, in: schema}
	for _, o := range opts {
		o(&tx.opts)
	}
	if err := tx.begin(); err != nil {
		lock.unlock()
		return nil, fmt.Errorf("beginning a write to table %s: %w", t.name, err)
	}
	return tx, nil
}

func (tx *Tx) begin() error {
	t := tx.t
	// Under the lock: an interrupted commit is completed or its files
	// removed now.
	missing, err := t.recover()
	if err != nil {
		return err
	}
	tx.base = t.Manifest()
	tx.sweep = tx.mode == warehouse.Replace
	if damage := t.Damaged(); damage != nil {
		switch {
		case tx.mode == warehouse.Replace:
			// A Replace needs none of the old files: it starts the table
			// anew, and its commit removes whatever the old version left.
		case tx.opts.repair && tx.base.Version > 0:
			// Keep what survived; the commit drops what is gone. (With an
			// unreadable manifest nothing is known to survive: a history
			// cannot be started anew without the user removing it, since
			// the source cannot give it back.)
			base := tx.base.clone()
			base.Files = slices.DeleteFunc(base.Files, func(f FileInfo) bool { return missing[f.Name] })
			base.Rows = 0
			for _, f := range base.Files {
				base.Rows += f.Rows
			}
			tx.base, tx.sweep = base, true
		default:
			return damage
		}
		if tx.base.Version == 0 {
			// The manifest is unreadable: name the new files after a
			// version newer than any file's, so that none is reused.
			tx.base = &Manifest{Format: manifestFormat, Version: lastFileVersion(t.dir)}
		}
	}
	tx.stage = filepath.Join(t.dir, metaDir, stagedDir)
	if err := os.MkdirAll(tx.stage, 0o755); err != nil {
		return err
	}
	if err := checkIncoming(tx.in); err != nil {
		return err
	}
	tableSchema, err := tx.evolve()
	if err != nil {
		return err
	}
	if tx.cols, err = newColumns(tableSchema); err != nil {
		return err
	}
	tx.inMap = make([]int, len(tableSchema.Columns))
	for i, c := range tableSchema.Columns {
		tx.inMap[i] = tx.in.Index(c.Name)
	}
	tx.inMap[len(tx.inMap)-1] = -1 // _sluice_synced_at
	tx.version = tx.base.Version + 1
	tx.syncedAt = t.w.now().UTC().UnixMicro()
	tx.view = &records.Batch{Schema: tableSchema, Cols: make([]records.Vec, len(tableSchema.Columns))}
	tx.nulls = make([]records.Vec, len(tableSchema.Columns))

	switch tx.mode {
	case warehouse.Replace:
		if tx.cols.keyCols != nil {
			rows := tx.opts.expectedRows
			if rows <= 0 {
				rows = tx.base.Rows
			}
			tx.buckets = chooseBuckets(rows, t.w.lim.bucketRows, maxBuckets)
			tx.outs = make([]*output, tx.buckets)
			tx.rowSel = make([][]int32, tx.buckets)
		} else {
			tx.outs = []*output{newOutput(tx.stage, tx.version, -1, tx.cols, t.w.lim)}
		}
	case warehouse.Append:
		tx.outs = []*output{newOutput(tx.stage, tx.version, -1, tx.cols, t.w.lim)}
	case warehouse.Merge:
		if tx.cols.keyCols == nil {
			return fmt.Errorf("a merge needs a primary key: the table has none (declare primary_key, or sync it with full_refresh or append)")
		}
		tx.merge = newMergeState(tx)
	}
	return nil
}

// checkIncoming rejects schemas the warehouse cannot write.
func checkIncoming(s *records.Schema) error {
	if s == nil || len(s.Columns) == 0 {
		return fmt.Errorf("the schema has no columns")
	}
	seen := make(map[string]bool, len(s.Columns))
	for _, c := range s.Columns {
		if c.Name == SyncedAtColumn {
			return fmt.Errorf("column %q is reserved: the warehouse adds it", SyncedAtColumn)
		}
		if c.Name == "" {
			return fmt.Errorf("a column has an empty name")
		}
		if seen[c.Name] {
			return fmt.Errorf("column %q appears twice", c.Name)
		}
		seen[c.Name] = true
		if _, err := columnNode(c.Type); err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
	}
	if _, err := s.KeyIndexes(); err != nil {
		return err
	}
	return nil
}

// evolve computes the schema of the new version.
func (tx *Tx) evolve() (*records.Schema, error) {
	synced := records.Column{Name: SyncedAtColumn, Type: syncedAtType, SourceType: "timestamp with time zone"}
	fresh := func() *records.Schema {
		s := &records.Schema{PrimaryKey: slices.Clone(tx.in.PrimaryKey)}
		s.Columns = append(slices.Clone(tx.in.Columns), synced)
		return s
	}
	base := tx.base
	if tx.mode == warehouse.Replace || base.Version == 0 || len(base.Schema.Columns) == 0 {
		return fresh(), nil
	}
	old := base.Schema.Records()
	if base.Rows == 0 && len(base.Files) == 0 {
		// An empty table has no files to keep compatible.
		return fresh(), nil
	}
	if tx.mode == warehouse.Merge && len(old.PrimaryKey) > 0 && !slices.Equal(old.PrimaryKey, tx.in.PrimaryKey) {
		return nil, fmt.Errorf("%w: the primary key changed from %q to %q", warehouse.ErrSchemaChanged, old.PrimaryKey, tx.in.PrimaryKey)
	}
	s := &records.Schema{PrimaryKey: slices.Clone(old.PrimaryKey)}
	if len(tx.in.PrimaryKey) > 0 {
		s.PrimaryKey = slices.Clone(tx.in.PrimaryKey)
	}
	for _, c := range old.Columns {
		if c.Name == SyncedAtColumn {
			continue
		}
		if i := tx.in.Index(c.Name); i >= 0 {
			n := tx.in.Columns[i]
			if !sameType(c.Type, n.Type) {
				return nil, fmt.Errorf("%w: column %q changed from %s (%s) to %s (%s)", warehouse.ErrSchemaChanged, c.Name, describe(c.Type), c.SourceType, describe(n.Type), n.SourceType)
			}
			c.SourceType, c.Nullable, c.Type.Name = n.SourceType, n.Nullable, n.Type.Name
		}
		s.Columns = append(s.Columns, c)
	}
	for _, c := range tx.in.Columns {
		if old.Index(c.Name) < 0 {
			s.Columns = append(s.Columns, c)
			tx.rewriteAll = true
		}
	}
	s.Columns = append(s.Columns, synced)
	if _, err := s.KeyIndexes(); err != nil {
		return nil, err
	}
	return s, nil
}

// maxBuckets bounds a table's bucket count, and so the outputs a Replace
// keeps open at once.
const maxBuckets = 64

// chooseBuckets picks the bucket count for a table of rows rows: a power of
// two such that a bucket holds about bucketRows (one file), at most limit.
func chooseBuckets(rows, bucketRows int64, limit int) int {
	n := (rows + bucketRows - 1) / bucketRows
	if n <= 1 {
		return 1
	}
	b := 1 << bits.Len64(uint64(n-1))
	return min(b, limit)
}

// Write adds a batch of rows. The batch's schema must have the columns of
// the schema given to Begin, in that order; the batch may be reused once
// Write returns. After a failed Write (a cancelled ctx too) the
// transaction can only be aborted.
func (tx *Tx) Write(ctx context.Context, b *records.Batch) error {
	if tx.done {
		return fmt.Errorf("writing table %s: the transaction has ended", tx.t.name)
	}
	if tx.err != nil {
		return tx.err
	}
	err := ctx.Err()
	if err == nil {
		err = tx.write(b)
	}
	if err != nil {
		tx.err = fmt.Errorf("writing table %s: %w", tx.t.name, err)
		return tx.err
	}
	return nil
}

func (tx *Tx) write(b *records.Batch) error {
	if err := tx.checkBatch(b); err != nil {
		return err
	}
	if b.N == 0 {
		return nil
	}
	for i := range b.Cols {
		tx.nulled += int64(b.Cols[i].Nulled)
		if l := b.Cols[i].List; l != nil {
			tx.nulled += int64(l.Elem.Nulled)
		}
	}
	view := tx.mapBatch(b)
	switch {
	case tx.merge != nil:
		return tx.merge.add(view)
	case tx.buckets > 0:
		return tx.writeBuckets(view)
	default:
		return tx.outs[0].write(view, nil)
	}
}

func (tx *Tx) checkBatch(b *records.Batch) error {
	if b.Schema != tx.inOK {
		if b.Schema == nil || len(b.Schema.Columns) != len(tx.in.Columns) {
			return fmt.Errorf("the batch's columns are not those given to Begin")
		}
		for i, c := range b.Schema.Columns {
			if c.Name != tx.in.Columns[i].Name || !sameType(c.Type, tx.in.Columns[i].Type) {
				return fmt.Errorf("the batch's column %d is %q %s, not %q %s as given to Begin", i, c.Name, describe(c.Type), tx.in.Columns[i].Name, describe(tx.in.Columns[i].Type))
			}
		}
		tx.inOK = b.Schema
	}
	if len(b.Cols) != len(tx.in.Columns) {
		return fmt.Errorf("the batch has %d column vectors for %d columns", len(b.Cols), len(tx.in.Columns))
	}
	for i := range b.Cols {
		if n := b.Cols[i].Len(); n < b.N && !(n == 0 && b.N == 0) {
			return fmt.Errorf("column %q holds %d values for %d rows", tx.in.Columns[i].Name, n, b.N)
		}
	}
	return nil
}

// mapBatch presents an incoming batch as a batch of the table schema,
// sharing its vectors: columns it lacks are NULL, _sluice_synced_at is the
// transaction's time.
func (tx *Tx) mapBatch(b *records.Batch) *records.Batch {
	v := tx.view
	v.N = b.N
	last := len(v.Cols) - 1
	for i, j := range tx.inMap {
		switch {
		case j >= 0:
			v.Cols[i] = b.Cols[j]
		case i == last:
			if len(tx.synced.I64) < b.N {
				tx.synced.I64 = make([]int64, max(b.N, 2*len(tx.synced.I64)))
				for k := range tx.synced.I64 {
					tx.synced.I64[k] = tx.syncedAt
				}
			}
			v.Cols[i] = records.Vec{I64: tx.synced.I64[:b.N]}
		default:
			v.Cols[i] = tx.nullVec(i, b.N)
		}
	}
	return v
}

// nullVec returns n NULLs of table column i.
func (tx *Tx) nullVec(i, n int) records.Vec {
	nv := &tx.nulls[i]
	if len(nv.Valid) < n {
		*nv = records.NewBatch(&records.Schema{Columns: []records.Column{tx.cols.schema.Columns[i]}}, n).Cols[0]
		for range max(n, 1024) {
			nv.AppendNull()
		}
	}
	out := *nv
	out.Valid = nv.Valid[:n]
	return out
}

// writeBuckets writes a Replace batch to the outputs of its rows' buckets.
func (tx *Tx) writeBuckets(view *records.Batch) error {
	for i := range tx.rowSel {
		tx.rowSel[i] = tx.rowSel[i][:0]
	}
	if tx.buckets == 1 {
		tx.rowSel[0] = append(tx.rowSel[0], identity(view.N)...)
	} else {
		// Hashing the keys is the one per-row step outside the column
		// writers: spread it over the cores too.
		if cap(tx.rowBucket) < view.N {
			tx.rowBucket = make([]uint8, view.N)
		}
		rb := tx.rowBucket[:view.N]
		const chunk = 8192
		mask := uint64(tx.buckets - 1)
		bufs := make([][]byte, (view.N+chunk-1)/chunk)
		parallel(len(bufs), func(c int) error {
			for r := c * chunk; r < min((c+1)*chunk, view.N); r++ {
				bufs[c] = view.AppendKey(bufs[c][:0], r, tx.cols.keyCols)
				rb[r] = uint8(records.KeyHash(bufs[c]) & mask)
			}
			return nil
		})
		for r, bk := range rb {
			tx.rowSel[bk] = append(tx.rowSel[bk], int32(r))
		}
	}
	for bk, rows := range tx.rowSel {
		if len(rows) == 0 {
			continue
		}
		if tx.outs[bk] == nil {
			tx.outs[bk] = newOutput(tx.stage, tx.version, bk, tx.cols, tx.t.w.lim.scaled(tx.buckets))
		}
		if err := tx.outs[bk].write(view, rows); err != nil {
			return err
		}
	}
	return nil
}

// scaled divides the memory-bound limits among n outputs open at once: a
// Replace of 64 buckets holds 64 row groups of 2 MiB and pages of 64 KiB.
func (l limits) scaled(n int) limits {
	if n <= 1 {
		return l
	}
	l.rowGroupBytes = max(2<<20, min(l.rowGroupBytes, (128<<20)/int64(n)))
	l.pageBytes = max(64<<10, l.pageBytes/n)
	return l
}

// Commit makes the written rows a new version of the table, together with
// the sync position pos, and returns the new manifest. The new files, so
// far in _sluice/staged/, are made durable, then the manifest is
// atomically replaced (the commit lands), then the new files are renamed
// into the table directory and the files of the previous version that are
// no longer listed are removed (publish). If Commit fails before the
// manifest was replaced, the previous version is intact and the
// transaction's files are removed. A ctx cancelled before the commit
// begins aborts it; once the files are being made durable the commit
// runs to its end (a local fsync and rename cannot be interrupted).
// It returns the rows the table holds now.
func (tx *Tx) Commit(ctx context.Context, pos records.Position) (int64, error) {
	m, err := tx.commitManifest(ctx, pos)
	if err != nil {
		return 0, err
	}
	return m.Rows, nil
}

// commitManifest is Commit, returning the new version's manifest.
func (tx *Tx) commitManifest(ctx context.Context, pos records.Position) (*Manifest, error) {
	if tx.done {
		return nil, fmt.Errorf("committing table %s: the transaction has ended", tx.t.name)
	}
	if tx.err != nil {
		tx.abort()
		return nil, tx.err
	}
	if err := ctx.Err(); err != nil {
		tx.abort()
		return nil, fmt.Errorf("committing table %s: %w", tx.t.name, err)
	}
	// A local directory is no fleet's warehouse: the guard's last chance
	// is before the files are made durable.
	if err := warehouse.CheckCommitGuard(ctx); err != nil {
		tx.abort()
		return nil, fmt.Errorf("committing table %s: %w", tx.t.name, err)
	}
	m, err := tx.commit(pos)
	if err != nil {
		tx.abort()
		return nil, fmt.Errorf("committing table %s: %w", tx.t.name, err)
	}
	return m, nil
}

func (tx *Tx) commit(pos records.Position) (*Manifest, error) {
	t := tx.t
	var files []FileInfo
	buckets := tx.base.Buckets
	switch tx.mode {
	case warehouse.Replace:
		buckets = tx.buckets
		for _, o := range tx.outs {
			if o == nil {
				continue
			}
			fs, err := o.close()
			if err != nil {
				return nil, err
			}
			files = append(files, fs...)
		}
	case warehouse.Append:
		kept := tx.base.Files
		if tx.rewriteAll {
			var err error
			if kept, err = tx.rewriteFiles(kept); err != nil {
				return nil, err
			}
		}
		fs, err := tx.outs[0].close()
		if err != nil {
			return nil, err
		}
		files = append(slices.Clone(kept), fs...)
	case warehouse.Merge:
		var err error
		if files, buckets, err = tx.merge.commit(); err != nil {
			return nil, err
		}
	}

	m := &Manifest{
		Format:         manifestFormat,
		Version:        tx.version,
		CommittedAt:    t.w.now().UTC(),
		Mode:           tx.mode.String(),
		SyncMode:       tx.opts.syncMode,
		CommitWarnings: tx.nulled,
		Warnings:       tx.nulled,
		Position:       pos,
		Schema:         schemaOf(tx.cols.schema),
		Buckets:        buckets,
		Files:          files,
	}
	if m.SyncMode == "" {
		m.SyncMode = tx.base.SyncMode
	}
	if tx.mode != warehouse.Replace {
		m.Warnings += tx.base.Warnings
	}
	if buckets > 0 {
		m.KeyHash = keyHashName
	}
	for _, f := range files {
		m.Rows += f.Rows
		m.Bytes += f.Bytes
	}
	if m.Files == nil {
		m.Files = []FileInfo{}
	}
	// What the commit replaces: base's files it no longer lists, and for a
	// sweep every other data file in the table directory, listed now so
	// that the visible step below is only renames and removes.
	listed := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		listed[f.Name] = true
	}
	var replaced []string
	for _, f := range tx.base.Files {
		if !listed[f.Name] {
			replaced = append(replaced, f.Name)
		}
	}
	if tx.sweep {
		entries, err := os.ReadDir(t.dir)
		if err != nil {
			return nil, fmt.Errorf("listing the table directory: %w", err)
		}
		replaced = replaced[:0]
		for _, e := range entries {
			if e.Type().IsRegular() && strings.HasSuffix(e.Name(), dataExt) && !listed[e.Name()] {
				replaced = append(replaced, e.Name())
			}
		}
	}
	var added []string
	inBase := make(map[string]bool, len(tx.base.Files))
	for _, f := range tx.base.Files {
		inBase[f.Name] = true
	}
	for _, f := range m.Files {
		if !inBase[f.Name] {
			added = append(added, f.Name)
		}
	}

	if err := syncDir(tx.stage); err != nil {
		return nil, err
	}
	if err := tx.hook(stageBeforeManifest); err != nil {
		return nil, err
	}
	if err := writeManifest(t.dir, m); err != nil {
		return nil, err
	}
	// The commit has landed: from here on nothing may undo it. A crash
	// from here on is completed by the next open or Begin (recover).
	tx.done = true
	t.mu.Lock()
	t.m, t.damage = m, nil
	t.mu.Unlock()
	defer tx.lock.unlock()
	if tx.hook(stageAfterManifest) != nil {
		return m, nil
	}
	tx.publish(added, replaced)
	return m, nil
}

// publish is the step of a commit that a reader globbing
// <table>/*.parquet sees: the new files are renamed from _sluice/staged/
// into the table directory, then the replaced ones removed, back to back,
// with no fsync or read in between, so that the step lasts as little as
// the filesystem allows (a rename or unlink per file). Until then a glob
// sees the previous version, whole; after it, the new one. In between it
// may see the previous version's files with some of the new ones, then
// the new version's with some of the old ones (the package documentation,
// under Readers, says what that means for each mode). Failing to rename or
// remove is harmless: Scan and Lookup find a listed file still staged, and
// the next open or Begin completes the commit.
func (tx *Tx) publish(added, replaced []string) {
	dir := tx.t.dir
	for _, name := range added {
		os.Rename(filepath.Join(tx.stage, name), filepath.Join(dir, name))
	}
	if tx.hook(stageAfterPublish) != nil {
		return
	}
	for _, name := range replaced {
		os.Remove(filepath.Join(dir, name))
	}
	if tx.hook(stageAfterCleanup) != nil {
		return
	}
	// Nothing a glob reaches from here on.
	if tx.merge != nil {
		tx.merge.removeSpill()
	}
	os.Remove(tx.stage) // empty unless a rename failed
	syncDir(dir)
}

// lastFileVersion is the highest version a data file of dir is named
// after (<version>-<bucket>-<random>.parquet), 0 if none.
func lastFileVersion(dir string) int64 {
	var last int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), dataExt)
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(name, "-")
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > last {
			last = n
		}
	}
	return last
}

func (tx *Tx) hook(stage string) error {
	if h := tx.t.w.hook; h != nil {
		return h(stage)
	}
	return nil
}

// Abort ends the transaction without committing: its files are removed
// and the previous version stays as it was. Aborting an ended transaction
// does nothing. The files are local: ctx is not needed.
func (tx *Tx) Abort(context.Context) error { return tx.abort() }

func (tx *Tx) abort() error {
	if tx.done {
		return nil
	}
	tx.done = true
	defer tx.lock.unlock()
	for _, o := range tx.outs {
		if o != nil {
			o.discard()
		}
	}
	if tx.merge != nil {
		tx.merge.discard()
	}
	os.Remove(tx.stage) // if empty: the next Begin creates it again
	return nil
}

// rewriteFiles copies files into new ones of the transaction's schema (the
// columns they lack become NULL), keeping their buckets.
func (tx *Tx) rewriteFiles(files []FileInfo) ([]FileInfo, error) {
	var out []FileInfo
	for _, f := range files {
		o := newOutput(tx.stage, tx.version, f.Bucket, tx.cols, tx.t.w.lim)
		tx.outs = append(tx.outs, o) // so that Abort removes it
		err := tx.forEachRowGroup(f, nil, func(b *records.Batch) error { return o.write(b, nil) })
		if err != nil {
			return nil, err
		}
		fs, err := o.close()
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

// forEachRowGroup reads a file of the table a row group at a time, as
// batches of the transaction's schema (only: the columns to read, nil for
// all).
func (tx *Tx) forEachRowGroup(f FileInfo, only []int, fn func(*records.Batch) error) error {
	r, err := openFile(filepath.Join(tx.t.dir, f.Name), tx.cols.schema)
	if err != nil {
		return err
	}
	defer r.close()
	b := records.NewBatch(tx.cols.schema, 0)
	for g := range r.numRowGroups() {
		if err := r.readRowGroup(g, b, only); err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}
