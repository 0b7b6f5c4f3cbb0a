// Package postgres is the PostgreSQL warehouse (`warehouse { backend =
// "postgres" }`): each warehouse table is a table of one schema of a
// PostgreSQL database, written with the sync semantics of the Parquet
// warehouse (SPEC §4).
//
// # Tables and types
//
// A runner table name becomes TableName(name) in the configured schema.
// Columns keep the source's names (always quoted) and, where the source
// named a built-in type that the batch's values fit, its type (codec.ColumnType,
// internal/pg/codec); otherwise the type the Parquet mapping implies. _sluice_synced_at
// (timestamptz, when the commit began) ends every table; metadata columns
// the batch carries (_sluice_lsn, _sluice_deleted, ...) are ordinary
// columns. Tables written by Replace or Merge get the schema's primary key
// (not append syncs, which keep every version of a key).
//
// # Commits
//
// A transaction (Table.Begin) is one PostgreSQL transaction on a
// connection of its own, serialized per table by an advisory lock. Rows
// arrive by COPY FROM STDIN: in the binary format when every column has a
// binary writer (internal/pg/codec's BinaryEncoder: numbers, numeric, text types, json, jsonb,
// bytea, dates and times, uuid, and one-dimensional arrays of those),
// else in the text format (codec.TextEncoder), each value in PostgreSQL's text
// form, which the column type's input function reads exactly (interval,
// inet, ranges, multi-dimensional arrays carried as strings...). A value
// the batch's Parquet type cannot hold (±infinity, numeric NaN, an array
// of several dimensions or with other lower bounds than 1, a list with
// such elements) arrives with its exact text form (records.Vec.Exact);
// a batch that carries one is copied in the text format with that form,
// so the table keeps every value of the source exactly, and no warning
// is counted for it (Warehouse.KeepsExactValues):
//
//   - Replace copies (FREEZE) into a new table; Commit builds its primary
//     key, carries over what users added to the old table (privileges,
//     comments, their own indexes), drops the old table (refusing, with
//     the views named, when views depend on it and drop_cascade is off),
//     and renames the new one in place.
//   - Merge copies into a temporary staging table with each row's order
//     and the columns it left unchanged; Commit fills unchanged values from
//     the key's earlier staged row, else from the stored row, then upserts
//     the last row of each key (INSERT ... ON CONFLICT DO UPDATE), setting
//     columns the incoming row lacks to NULL as a new row would have them.
//   - Append copies into the table.
//   - A history transaction (BeginHistory, cdc.go) stages as Merge does,
//     then closes the versions the staged ones end and inserts them.
//
// The position is written to <schema>._sluice_positions in the same
// transaction, with the row count and the table's schema (the Parquet
// types of its columns, which Lookup and Scan decode values by); nothing is
// visible until COMMIT, and an error, Abort or crash before it leaves the
// previous version and position.
//
// # Schema changes
//
// Merge and Append add new columns (ALTER TABLE ADD COLUMN); a column
// whose type differs from the table's, or for Merge a different primary
// key, fails Begin with an error wrapping warehouse.ErrSchemaChanged, and
// the runner resyncs with a Replace.
//
// # Connections and values
//
// Connections are internal/pg's, made as a source's are (libpq's
// conventions, TLS, SSH tunnels) with errors that name the warehouse
// block; values are encoded and read back by internal/pg/codec, the codec
// the PostgreSQL source decodes with, so that a value read back is the
// value written.
package postgres
