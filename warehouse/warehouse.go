package warehouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
)

// Mode is how a commit combines new rows with the table.
type Mode int

// Commit modes.
const (
	Replace Mode = iota // the rows written are the whole table (full_refresh, resync)
	Merge               // one row per primary key, incoming rows win (incremental, xmin, cdc)
	Append              // rows are added (append, cdc history)
)

func (m Mode) String() string {
	switch m {
	case Replace:
		return "replace"
	case Merge:
		return "merge"
	case Append:
		return "append"
	}
	return "unknown"
}

// Warehouse is a destination of tables.
type Warehouse interface {
	// Table opens the table called name (a runner table name; the
	// warehouse maps it to its own naming) and reads its committed
	// position. A table never written opens too, uncommitted. Opening
	// may complete or undo a commit a crash interrupted.
	Table(ctx context.Context, name string) (Table, error)
	// Close releases the warehouse's connections and files; transactions
	// still open are rolled back.
	Close() error
}

// Table is one warehouse table.
type Table interface {
	// Position is the committed sync position as of the table's opening
	// or its last commit through this value; committed is false for a
	// table never written. It does no I/O.
	Position() (pos records.Position, committed bool)
	// Begin starts a commit of mode; schema is the schema of the batches
	// Write takes, sync the table's sync type, recorded with the data.
	Begin(ctx context.Context, mode Mode, schema *records.Schema, sync string) (Tx, error)
}

// Tx is one commit in progress. Nothing it writes is visible until Commit,
// which makes the rows and the position the table's current version at
// once; Abort (or a crash) leaves the previous version intact. A Tx is used
// by one goroutine; Commit or Abort must end it.
type Tx interface {
	// Write adds a batch of the schema given to Begin; the batch may be
	// reused once Write returns. After a failed Write the transaction can
	// only be aborted.
	Write(ctx context.Context, b *records.Batch) error
	// Commit makes the rows and pos the table's current version and
	// returns the rows the table holds now. An error means the previous
	// version is intact, and the transaction is ended.
	Commit(ctx context.Context, pos records.Position) (rows int64, err error)
	// Abort ends the transaction without committing; aborting an ended
	// transaction does nothing. It rolls back whatever ctx says: ctx only
	// bounds the clean-up of what the transaction wrote.
	Abort(ctx context.Context) error
}

// HistoryTable is a Table that can hold a cdc history table (SPEC §4): one
// row per version of a source row, closed (ValidToColumn set) by the next
// version of its key.
type HistoryTable interface {
	Table
	// BeginHistory starts a transaction adding versions. schema holds
	// HistoryOpColumn (STRING), ValidFromColumn and ValidToColumn
	// (TIMESTAMP) and the source's primary key (CheckHistorySchema); the
	// incoming rows' valid_to is ignored. Rows arrive in change order;
	// each closes the key's previous version at its valid_from, and a
	// delete ('D') is closed at its own valid_from. A non-zero closeAllAt
	// closes every current version at that time first (a truncate, or a
	// resync whose rows become the current versions).
	BeginHistory(ctx context.Context, schema *records.Schema, sync string, closeAllAt time.Time) (Tx, error)
}

// Lookuper is a Table that reads the stored rows of given keys.
type Lookuper interface {
	// Lookup calls fn with the committed rows whose primary key is one
	// of the keys in keys, a batch of the table's key columns (same names
	// and types, in key order); fn may be called several times, each time
	// with a batch (reused afterwards) and the rows of it to read. Keys
	// that match no row are left out. With current set, only the current
	// versions of a history table are read. Values come back with the
	// types of the recorded schema (SchemaReader).
	Lookup(ctx context.Context, keys *records.Batch, current bool, fn func(b *records.Batch, rows []int32) error) error
}

// SchemaReader is a Table that records the schema it was committed with.
type SchemaReader interface {
	// Schema is the committed schema (the columns with the types the
	// batches carried, _sluice_synced_at included, and the key) as of the
	// last opening or commit, nil when none is recorded. It does no I/O.
	Schema() *records.Schema
}

// Scanner is a Table whose committed rows can be read back.
type Scanner interface {
	// Scan calls fn with every committed row, in batches of the recorded
	// schema (reused afterwards), all of one committed version.
	Scan(ctx context.Context, fn func(*records.Batch) error) error
}

// CDCTable is what a table needs to hold a cdc table or its history: the
// runner refuses cdc tables on a warehouse whose tables are not CDCTables.
type CDCTable interface {
	HistoryTable
	Lookuper
	SchemaReader
}

// Checker is a Warehouse that can check, before anything is written, that
// sluice may write to it (plan runs it).
type Checker interface {
	// Check returns an error saying what to grant when the warehouse's
	// user may not create or write its tables.
	Check(ctx context.Context) error
}

// ErrDamaged is wrapped by the errors of a table whose committed files or
// manifest are damaged: retrying does not help, a resync (a Replace) does.
var ErrDamaged = errors.New("the table is damaged")

// ErrSchemaChanged is returned (wrapped) when a column's type or the key
// changed: the table must be reloaded in full.
var ErrSchemaChanged = errors.New("the table's schema changed incompatibly: a full resync is needed")

// The columns of a cdc history table (SPEC §4) that a history commit reads
// and sets: the change's kind ('D' for a delete), when the version began,
// and when a later change ended it (NULL while it is current).
const (
	HistoryOpColumn = "_sluice_cdc_op"
	ValidFromColumn = "valid_from"
	ValidToColumn   = "valid_to"
)

// CheckHistorySchema checks that a schema can be written to a history
// table: it has the source's primary key, HistoryOpColumn as a string and
// ValidFromColumn and ValidToColumn as timestamps.
func CheckHistorySchema(s *records.Schema) error {
	if s == nil || len(s.PrimaryKey) == 0 {
		return errors.New("a history table needs the source table's primary key")
	}
	for _, c := range []struct {
		name     string
		physical records.Physical
	}{{HistoryOpColumn, records.PhysicalByteArray}, {ValidFromColumn, records.PhysicalInt64}, {ValidToColumn, records.PhysicalInt64}} {
		i := s.Index(c.name)
		if i < 0 {
			return fmt.Errorf("a history table needs column %q", c.name)
		}
		if s.Columns[i].Type.Physical != c.physical {
			return fmt.Errorf("column %q of a history table must be %s, not %s", c.name, c.physical, s.Columns[i].Type.Name)
		}
	}
	return nil
}

// ExactKeeper is implemented by a warehouse whose columns keep the
// source's types (the PostgreSQL warehouse): it writes every value a
// batch carries an exact text form of (records.Vec.Exact) as that value,
// so the Parquet type's limits (SPEC §5) do not apply to it.
type ExactKeeper interface {
	KeepsExactValues() bool
}

func keepsExact(w Warehouse) bool {
	k, ok := w.(ExactKeeper)
	return ok && k.KeepsExactValues()
}

// Nulled counts the values of b that w writes as NULL because its columns
// cannot hold them: for the Parquet warehouse every value the batch's
// vectors count as nulled, for an ExactKeeper those without an exact
// text form.
func Nulled(w Warehouse, b *records.Batch) int64 {
	var n int64
	for i := range b.Cols {
		n += NulledIn(w, &b.Cols[i])
	}
	return n
}

// NulledIn is Nulled for one column's values.
func NulledIn(w Warehouse, v *records.Vec) int64 {
	if keepsExact(w) {
		return int64(v.LostNulled())
	}
	n := int64(v.Nulled)
	if v.List != nil {
		n += int64(v.List.Elem.Nulled)
	}
	return n
}

// NulledWarning is the message of the warning that values were written
// as NULL (Nulled), naming the kind of warehouse they were written to.
func NulledWarning(w Warehouse) string {
	if keepsExact(w) {
		return "values the PostgreSQL warehouse's column types cannot hold were written as NULL"
	}
	name := "Parquet"
	if n, ok := w.(Named); ok {
		name = n.Name()
	}
	return "values the Parquet type cannot hold were written as NULL in the " + name + " warehouse"
}

// Named is a Warehouse that says what kind it is in messages ("Iceberg");
// one that is not is the Parquet warehouse.
type Named interface {
	Name() string
}

// Maintainer is a Table that keeps itself cheap to write and read between
// commits (the Iceberg warehouse: compaction of small files and delete
// files, snapshot expiry, removal of files no snapshot lists). The runner
// calls Maintain after a successful commit of the table, from the
// goroutine that syncs it, so maintenance never races a commit of the same
// table from this process; a table's writer lock keeps other processes
// out. Maintain does bounded work per call (what its policy says is due),
// lands what it does as commits that carry the position forward unchanged,
// and returns nil when nothing was due.
type Maintainer interface {
	Maintain(ctx context.Context) (MaintenanceReport, error)
}

// MaintenanceReport says what one Maintain call did, for the runner's log.
type MaintenanceReport struct {
	// Compacted is the number of data and delete files rewritten, Written
	// the number of data files that replaced them.
	Compacted, Written int
	// ExpiredSnapshots is the number of snapshots expired; RemovedFiles
	// the files deleted (expired or orphaned).
	ExpiredSnapshots, RemovedFiles int
	// Pending says that more was due than one call's bound allowed: the
	// next call goes on.
	Pending bool
}

// Empty reports whether nothing was done.
func (r MaintenanceReport) Empty() bool { return r == MaintenanceReport{} }

// Versioned is a Table whose committed version has a name a reader can
// open without sluice (the Iceberg warehouse: the metadata file and the
// snapshot id); `sluice status -json` shows it.
type Versioned interface {
	// Version is the current version as of the table's opening or last
	// commit; zero before the first commit. It does no I/O.
	Version() TableVersion
}

// TableVersion names a committed version of a table.
type TableVersion struct {
	MetadataLocation string `json:"metadata_location,omitempty"`
	SnapshotID       int64  `json:"snapshot_id,omitempty"`
}

// ColumnRename is one column renamed in place: From is its name in the
// warehouse table, To its new one, Source the source column's name when
// it differs from To (recorded as records.Column.SourceName).
type ColumnRename struct {
	From, To, Source string
}

// ColumnRenamer is a Table that can rename its columns in place, keeping
// its rows (the PostgreSQL and Iceberg warehouses; a Parquet table is
// reloaded instead). The runner renames before it reads or writes a
// table, so that lookups and commits see the new names.
type ColumnRenamer interface {
	// RenameColumns renames columns of the committed table, in the table
	// and in its recorded schema (the key included), in one commit that
	// leaves its rows and position as they are. A rename whose From the
	// table lacks, or whose To it already has, is an error; the renames
	// are made in order. A table never committed has nothing to rename.
	RenameColumns(ctx context.Context, renames []ColumnRename) error
}

// RenamedSchema is s with renames applied to its columns and key.
func RenamedSchema(s *records.Schema, renames []ColumnRename) *records.Schema {
	if s == nil {
		return nil
	}
	out := &records.Schema{Columns: append([]records.Column(nil), s.Columns...), PrimaryKey: append([]string(nil), s.PrimaryKey...)}
	for _, r := range renames {
		if i := out.Index(r.From); i >= 0 {
			out.Columns[i].Name, out.Columns[i].SourceName = r.To, r.Source
		}
		for k, n := range out.PrimaryKey {
			if n == r.From {
				out.PrimaryKey[k] = r.To
			}
		}
	}
	return out
}
