// Package warehouse is the destination contract: the interfaces the runner
// writes through, and what each implementation guarantees. The Parquet
// warehouse (warehouse/parquet: files and a manifest per table) and the
// PostgreSQL warehouse (warehouse/postgres: typed tables and a positions
// table) implement it; a new one (Iceberg: snapshots on object storage)
// implements the same interfaces, passes the same kind of tests (crash at
// every step of a commit, cancel a commit in flight), and needs no change
// to the runner.
//
// # Contexts
//
// Every method that may do I/O takes a context first. Cancelling it stops
// the call promptly wherever it waits on something remote (a COPY, an
// upload, a commit waiting for a lock; local work at the latest between
// batches or files) and the call returns an error wrapping ctx.Err(); a
// transaction whose Write or Commit failed is rolled back, and nothing of
// it is ever visible. A commit past its point of no return (a manifest
// being renamed into place) may finish instead.
// Position and SchemaReader.Schema read what the table's opening or last
// commit loaded and do no I/O. Abort ends a transaction whatever its
// context says: the runner aborts with the cancelled context of a run
// that is shutting down.
//
// # Tables and transactions
//
// Warehouse.Table opens a table by its runner name (the warehouse maps it
// to its own naming: a directory, a PostgreSQL identifier, an Iceberg
// table identifier) and loads its committed position; a table never
// written opens too, with committed false. Opening may finish or undo
// what a crash left (the Parquet warehouse completes a commit whose
// manifest landed and removes files no version owns).
//
// Table.Begin starts a Tx: Write streams batches (memory stays bounded
// whatever the number of rows), Commit lands them. One transaction writes
// a table at a time, across processes: Begin waits for or refuses (saying
// so) a second writer. A Tx is used by one goroutine.
//
// # Commit: the rows and the position at once
//
// Commit makes the transaction's rows and the sync position
// (records.Position) the table's current version atomically: a reader,
// and a runner restarted after a crash anywhere, sees either the previous
// rows with the previous position or the new rows with the new position
// (DESIGN invariant 1: nothing lost, nothing applied twice). Commit
// returns the rows the table holds afterwards (the runner's status shows
// it). Until Commit returns nil nothing is visible; when it returns an
// error the previous version is intact (an implementation whose commit
// point is remote, such as a catalog's compare-and-swap, that cannot tell
// whether it landed says so in the error, and Table reads the truth at
// the next opening). The position is the table's own: Table.Position
// returns exactly what was committed, Extra included.
//
// The schema given to Begin is recorded with the commit (its columns'
// records types and the primary key, plus _sluice_synced_at, when the
// commit began, which every implementation adds to every row).
// Merge and Append add columns new to the table (a column the source
// dropped stays, NULL in new rows); a column whose type changed, or a
// changed primary key for Merge, fails Begin (or Write) with an error
// wrapping ErrSchemaChanged, and the runner resyncs with Replace. A table
// whose committed data is damaged (a file the manifest lists is missing,
// an unreadable manifest or snapshot) fails Merge and Append with an error
// wrapping ErrDamaged, which no retry fixes; a Replace starts it anew.
//
// # Modes
//
//   - Replace: the rows written are the whole table (full_refresh, a
//     resync, a cdc snapshot). The previous version stays readable until
//     the commit lands.
//   - Merge: one row per primary key; an incoming row replaces the
//     stored row with its key, and within one transaction the last row of
//     a key wins. A value a change did not carry (records.Vec.Unchanged,
//     an unchanged TOAST value) keeps the key's earlier value: from an
//     earlier row of the transaction, else from the stored row. Columns
//     the incoming rows lack become NULL, as in a new row. Deletes arrive
//     as rows (tombstones, _sluice_deleted).
//   - Append: the rows are added; nothing is replaced (append syncs).
//
// # Capabilities
//
// Beyond Warehouse, Table and Tx an implementation may implement:
//
//   - CDCTable (HistoryTable, Lookuper and SchemaReader): needed for cdc
//     tables; the runner refuses cdc tables on a warehouse without it.
//     BeginHistory writes a history table (SPEC §4): each incoming
//     version closes its key's current one (ValidToColumn set to its
//     ValidFromColumn), a delete's own row is closed at once, so that
//     `valid_to IS NULL` is exactly the live rows, and closeAllAt closes
//     every current version first (a truncate or resync). Lookup reads
//     the stored rows of given keys (the current versions of a history
//     table with current set) with the recorded schema's types: the runner
//     fills unchanged values and tombstones from them.
//   - Scanner: reads a whole committed version back (tests, the demo).
//   - ExactKeeper: columns that keep the source's types (values the
//     Parquet types cannot hold are written exactly, not as NULL).
//   - Checker: says before anything is written (sluice plan) what to
//     grant when the warehouse's user may not write.
//
// # Abort and crashes
//
// Abort rolls back a transaction that has not committed, releases its
// table, and removes what it wrote where that is cheap; aborting an ended
// transaction does nothing. A crash (the process killed anywhere) is an
// Abort that never ran: the previous version stays the table's, the
// table's writer lock is freed with the process (flock, the session's
// advisory lock), and whatever the transaction left (staged files, a
// half-written new table, uploaded data files no snapshot lists) is never
// visible and is removed by a later opening or Begin, never a file a
// committed version lists.
package warehouse
