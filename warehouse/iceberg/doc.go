// Package iceberg is the Iceberg warehouse: every table is an Apache
// Iceberg table (format v2) in a namespace (default "sluice") of a SQL
// catalog (the JDBC layout: iceberg_tables, iceberg_namespace_properties),
// on SQLite by default, with its data and metadata under a local warehouse
// directory (<dir>/<namespace>.db/<table>/{data,metadata}). It is written
// through github.com/apache/iceberg-go, and any Iceberg reader (Spark,
// Trino, DuckDB, PyIceberg, icebird) reads the tables.
//
// This is a first slice of the backend: it is not yet selectable in the
// configuration.
//
// # What it does
//
//   - Replace (full refresh, resync): one Overwrite snapshot whose data
//     files are the new rows; the table is created by the first commit.
//   - Append: one Append snapshot.
//   - Merge and history tables are not supported yet: Begin returns an
//     error saying so (ErrNotSupported).
//
// # The position: one snapshot, rows and position at once
//
// The sync position (records.Position, as JSON) is a property of the
// summary of the snapshot that adds the rows ("sluice.position"), so the
// catalog's compare-and-swap of the table's metadata pointer lands the
// rows and the position together or neither. Opening a table walks the
// ancestry of its current snapshot back to the newest snapshot carrying a
// position (maintenance snapshots such as compaction or expiry carry
// none). A table created but never committed to (a crash between the
// creation and the first commit) opens with committed false. Data files a
// failed or killed commit wrote are listed by no snapshot and never
// visible; removing them (orphan-file cleanup) is not done yet.
//
// # Types
//
// Columns keep the source names and get Iceberg field ids in source order
// (list elements get their own ids); every column is optional. SPEC §5's
// types map to Iceberg types:
//
//	BOOLEAN                  boolean
//	INT16, INT32             int
//	INT64                    long
//	FLOAT, DOUBLE            float, double
//	DECIMAL(p,s), p <= 38    decimal(p,s)
//	DATE                     date
//	TIME                     time (microseconds)
//	TIMESTAMP                timestamp, or timestamptz from timestamptz
//	STRING, JSON (text)      string
//	bytes (bytea)            binary
//	LIST<T>                  list<T>
//
// uuid stays a string (its canonical text form), as in the Parquet
// warehouse, so that every reader shows it the same way and the column
// types agree across warehouses. Everything else SPEC §5 writes as text is
// a string. Every row gets _sluice_synced_at (timestamptz): when the
// commit began. Columns new to the table are added by Iceberg schema
// evolution (new field ids, no rewrite); a column whose type changed
// fails Begin with an error wrapping warehouse.ErrSchemaChanged.
//
// # Not yet
//
// Merge (row deltas with position deletes), history tables and Lookup,
// object storage (s3://, gs://), a PostgreSQL catalog, a cross-process
// writer lock (concurrent writers are refused by the catalog's
// compare-and-swap instead: the later commit fails, the earlier stays),
// compaction and snapshot expiry. Write buffers a transaction's rows as
// Arrow batches in memory until Commit.
package iceberg
