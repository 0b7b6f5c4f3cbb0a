// Package parquet is the Parquet warehouse: each table is a directory of
// Parquet files and a manifest naming them (SPEC §4).
//
//	<root>/<table>/*.parquet              the table's files (see Readers for during a commit)
//	<root>/<table>/_sluice/manifest.json  the committed version (Manifest)
//	<root>/<table>/_sluice/lock           held by the one writer of the table
//	<root>/<table>/_sluice/staged/        a transaction's new files, until its commit lands
//
// # Commits
//
// A transaction (Table.Begin) streams rows into new files in
// _sluice/staged/, named <version>-<bucket>-<random>.parquet so that no name
// is ever reused: the table directory's *.parquet glob does not reach them,
// and neither do readers that skip directories named _* (Spark, Arrow
// datasets). Commit syncs them and the staging directory, then atomically
// replaces the manifest (temporary file, fsync, rename, fsync of _sluice/):
// the commit has landed. Then it publishes: the new files are renamed into
// the table directory and the files the new version no longer lists are
// removed, back to back. The sync position (records.Position) is part of the
// manifest, so it is committed atomically with the data it covers (DESIGN
// invariant 1).
//
// A crash before the manifest's rename leaves the previous version; after
// it, the new one. Opening the table (Warehouse.Table, and Begin) completes
// what a crash interrupted, under the table's lock: staged files the
// manifest lists are renamed into place, and other staged files, data files
// of the table directory that the manifest does not list, temporary
// manifests and spill directories are removed. A file the manifest lists is
// never removed. Tests kill a child process at every stage of a commit to
// check this.
//
// One transaction writes a table at a time, across processes: Begin takes
// an exclusive flock(2) on _sluice/lock, released by Commit, Abort or the
// death of the process.
//
// # Readers
//
// Readers take no lock. Scan and Lookup read the files the manifest lists
// (in the table directory, or still staged while a commit publishes), so
// they see exactly one version. A reader of read_parquet('<table>/*.parquet')
// (DuckDB, Spark, Arrow) lists the directory and then opens the files; what
// it sees depends on when it lists them relative to a commit's publish step:
//
//   - before the publish step (including while the transaction writes,
//     however long, and after a crash at any point before the manifest
//     landed): exactly the previous version's files;
//   - after it: exactly the new version's files;
//   - during it, which lasts as long as renaming the files the commit adds
//     and then removing those it replaces, with no fsync or read in between
//     (a rename or unlink per file: about a millisecond for tens of files, a
//     few on a loaded machine): all of the previous version's files plus
//     some of the new ones, then all of the new version's files plus some of
//     the old ones not yet removed. So the listing holds every file of one
//     of the two versions, and no row is missing, but a Replace or a Merge
//     may show a row twice (its old and its new version) and an Append some
//     of its new rows only;
//   - a reader that listed the files before the publish step and opens one of
//     the replaced files after it gets "file not found": the query fails
//     and can be retried.
//
// Every file a glob matches is complete: it was written and fsynced under
// another name. A crash in the middle of the publish step leaves the mixed
// listing until the next open or Begin of the table completes the commit.
//
// One directory cannot switch a glob from one set of files to another
// atomically. A directory per version behind a symlink swapped by rename(2)
// would make the listing atomic, but not the opens: they resolve the
// symlink again, so a reader that listed version N and opens a file after
// the swap still fails; it would also move the lock out of the table
// directory, change the layout of existing tables, need a link to every
// kept file per commit (cost proportional to the table, not to the files a
// merge touches) and symlinks that Windows restricts. Readers that need one
// version under any timing read the files the manifest lists, as Scan does.
//
// # Files
//
// Files are standard Parquet (format 2 data pages), readable by DuckDB,
// Arrow and Spark: one OPTIONAL column per source column, in source order
// and with the source's name whatever its characters, logical types as
// SPEC §5 maps them (LIST in the standard 3-level form with OPTIONAL
// elements), and _sluice_synced_at last: TIMESTAMP(MICROS, UTC), the time
// the transaction that wrote the row began. Every column is OPTIONAL,
// whatever the source's nullability: a value the Parquet type cannot hold
// becomes NULL (counted in Manifest.Warnings), and files written before a
// column existed hold NULLs for it. Pages are zstd-compressed (fastest
// level), integers delta-encoded; row groups hold at most 128Ki rows or
// about 64 MiB, files at most 1Mi rows or about 256 MiB. Column chunks
// carry min/max statistics and a page index, except DECIMALs on
// FIXED_LEN_BYTE_ARRAY, which parquet-go would order as unsigned bytes.
//
// Writing is column by column: each column's values go from the batch's
// vectors to parquet-go's column writers, which encode and compress a page
// whenever one is full; the columns of a batch are written in parallel,
// on every core. Memory is bounded by the batch and the row group (the
// compressed pages of the current row group wait in memory for it to
// complete), never by the table (DESIGN invariant 4): BenchmarkWriteReplace
// shows the peak heap flat from 1M to 4M rows.
//
// # Modes
//
// Replace makes the transaction's rows the whole table (full_refresh and
// resyncs); the previous version stays readable until the commit lands.
// Append adds files. Merge upserts by primary key: the table keeps one row
// per key and an incoming row replaces the row with its key; within one
// transaction the last row of a key wins; deletes are rows too (CDC
// tombstones).
//
// # Merge by hash bucket
//
// A table with a primary key is split into hash buckets: a row lives in
// bucket KeyHash(key) mod buckets (records.AppendKey encodes the key). The
// bucket count, a power of two, is chosen when the layout is first written
// (by a Replace, or by the first Merge into an empty table) so that a
// bucket holds about a file of rows (1Mi), at most 64 buckets; pass
// WithExpectedRows (the source's row estimate) so that a Replace can choose
// it before the rows arrive, else the previous version's size is used
// (else one bucket). A table that grows by merges to four times the rows
// its buckets were chosen for gets more at its next merge: each new bucket
// takes its share of the old bucket it splits from (the table is rewritten
// once, as by a Replace). Each file belongs to one bucket and records the
// range of the encoded keys it holds.
//
// A Merge commit works bucket by bucket, so that memory holds one bucket's
// incoming keys at a time. The incoming rows are kept in memory up to 64
// MiB, then spilled to Parquet files per partition under _sluice/spill-*;
// a key always falls in the same partition, which is all "the last row of
// a key wins" needs. For each bucket with incoming rows: its files whose
// key range may hold an incoming key are probed (reading only the key
// columns), the files that do hold one are rewritten without those rows,
// and the bucket gets a new file with the surviving rows and the incoming
// rows. Files of other buckets, and files holding none of the keys, are
// kept. So:
//
//   - inserting new keys rewrites nothing: each touched bucket gets a small
//     file (and ascending keys, as serial ids are, fall outside every
//     existing file's key range, so nothing is even probed). Once a bucket
//     has 8 small files the next merge touching it folds them into its new
//     file: file count stays bounded, at an amortized cost of rewriting
//     small files.
//   - updating keys rewrites the files that hold them. The files are
//     copy-on-write (a Parquet reader must see one row per key, there are
//     no delete files), so a change set touching every bucket rewrites
//     every bucket — the whole table. With random keys, k updated rows
//     touch about min(k, buckets) buckets: BenchmarkMerge1Percent's 10,000
//     random updates of a 1M-row table rewrite all of it, in about one and
//     a half times the time of writing it, while 10,000 inserts take a few
//     milliseconds. Updates clustered by key (recent rows of a serial id)
//     rewrite only the files whose key range holds them.
//   - more buckets mean smaller rewrites for small change sets (k below
//     the bucket count rewrites about k/buckets of the table) but more,
//     smaller files (a bucket's file is table/buckets rows) and more open
//     writers during a Replace (each holds a row group of memory, which is
//     why the limits are divided among them); fewer buckets the reverse.
//     Around one file of rows per bucket balances the two.
//
// Files without a bucket (written by Append, or before the table had a
// key) are redistributed into buckets by the first Merge.
//
// # Schema changes
//
// The schema of a new version is the incoming one for Replace; for Merge
// and Append it is the committed schema plus the incoming columns (a column
// the source dropped stays, NULL in new rows). When a column is added, the
// commit rewrites every file of the table with NULLs for it, so that a plain
// read_parquet('*.parquet') (without union_by_name) reads the table: a rare
// event that costs a rewrite of the table. A column whose Parquet type
// changed, or a changed primary key for Merge, fails Begin with
// warehouse.ErrSchemaChanged: the caller resyncs with Replace.
//
// # API
//
// Warehouse, Table and Tx implement package warehouse's interfaces
// directly (Warehouse.Table, Table.Begin and BeginHistory return them as
// such; Table is a warehouse.CDCTable and a warehouse.Scanner), and fail
// with warehouse.ErrSchemaChanged and warehouse.ErrDamaged. Tools and
// tests that need more use the concrete types: OpenTable returns the
// *Table (Manifest, Damaged, Dir), BeginTx and BeginHistoryTx take
// options (WithExpectedRows) and return the *Tx.
package parquet
