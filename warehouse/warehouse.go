// Package warehouse defines the destination as the runner uses it; the
// parquet package (and later postgres) implement it.
package warehouse

import (
	"errors"
	"fmt"

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
	Table(name string) (Table, error)
}

// Table is one warehouse table.
type Table interface {
	// Position is the committed sync position; committed is false for a
	// table never written.
	Position() (pos records.Position, committed bool)
	// Begin starts a commit; sync is the table's sync type, recorded with
	// the data.
	Begin(mode Mode, schema *records.Schema, sync string) (Tx, error)
}

// Tx is one commit in progress. Nothing it writes is visible until Commit,
// which makes the rows and the position the table's current version at
// once; Abort (or a crash) leaves the previous version intact.
type Tx interface {
	Write(b *records.Batch) error
	// Commit returns the rows the table holds now.
	Commit(pos records.Position) (rows int64, err error)
	Abort() error
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
	return "values the Parquet type cannot hold were written as NULL in the Parquet warehouse"
}
