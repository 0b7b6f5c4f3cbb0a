// Package state is what sluice has applied: the sources, their resources
// (publications, slots, webhook endpoints) and the tables, as they were
// when apply last ran. Secrets are never stored, only keyed fingerprints
// that reveal whether a secret changed.
//
// # The state document
//
// A state is one JSON document (Encode, Decode): the fields of State,
// indented by two spaces, object keys in a fixed order (struct fields in
// declaration order, map keys sorted), ending in a newline, so that equal
// states encode to equal bytes:
//
//	{
//	  "format_version": 2,
//	  "lineage": "6f1c...",
//	  "serial": 3,
//	  "sources": {
//	    "postgres.prod": {"address": "postgres.prod", "type": "postgres", ..., "tables": {"orders": {...}}}
//	  }
//	}
//
// format_version is FormatVersion; a reader refuses a newer one
// (ErrNewerFormat: upgrade sluice) rather than drop what it does not know,
// and upgrades an older one in memory (migrate.go: one step per version),
// so that the next write stores the current version; earlier versions kept
// by the postgres backend stay as they were written. A table's settings are
// recorded typed as the configuration decoded them (sync type, frequency,
// new_columns, cdc_output, hash) with the warehouse tables apply chose for it
// (warehouse_table, history_table): readers never derive a name. A
// frequency that does not parse (a document edited by hand) still reads,
// and is an error for the table when it is scheduled.
// lineage names one history of the state and never changes; serial grows
// by one with every write. A saved plan records both, and apply refuses it
// when they have moved on. Write refuses a state whose lineage differs from
// the stored one, or whose serial is behind it (ErrStateChanged): another
// process wrote in between. A document that cannot be read is an error
// (ErrCorrupt, with the line and column); sluice never replaces it with an
// empty state, which would forget the slots and webhooks it created.
//
// Before the first write there is nothing stored, and Read returns New():
// serial 0 and a fresh lineage on every read. Serial 0 therefore means
// "nothing recorded", whatever the lineage; a saved plan made from it is
// stale only if the serial has moved since.
//
// # Backend local
//
// The state file (default .sluice/state.json, relative to the
// configuration's directory) has these beside it, all of mode 0600 in a
// directory created 0700:
//
//	state.json         the current version
//	state.json.backup  the version before the last write
//	state.json.lock    while locked: the holder's LockInfo as JSON
//	state.json.key     the fingerprint key, 64 hex digits
//
// A write goes to a temporary file in the same directory, which is synced,
// renamed over the state file, and then the directory is synced: a crash
// leaves the old or the new version, never a mix. Writers hold a short
// flock on the directory while they check the stored version and rename
// the next, so two writers of one version cannot both succeed even without
// the state lock. Reading a missing file gives New() and writes nothing.
//
// The lock is flock(2) (LOCK_EX|LOCK_NB) on the open lock file, held for
// the whole operation; the file's content only says who holds it. Locks
// belong to open file descriptions, so two Lock calls in one process
// exclude each other as two processes do. The kernel releases the flock
// when the holder exits in any way, including SIGKILL or a power cut: a
// lock file left behind by a process that died does not lock anything, and
// the next Lock takes it over. So force-unlock is for a holder that is
// alive but stuck: it removes the lock file (only when its ID matches),
// after which the next Lock creates a new file and takes the lock while
// the stuck process still believes it holds the old one; that process's
// next Write then fails, since its lock file is gone. Unlock removes the
// lock file before releasing the flock; a waiter that opened the old file
// notices it was replaced and starts again.
//
// # Other backends
//
// Open opens the local backend itself and any other through the function
// its package registered (RegisterBackend), so that this package, and the
// runner, apply and the planner that use it, link no database driver. The
// postgres backend is package state/pgstate; a program that opens states
// from configurations (cmd/sluice) imports it, and Open of a backend the
// program was built without says which package to import.
//
// # The runner lock
//
// One runner (`sluice run`, `run -once`, `sync`) at a time per state:
// LockRunner fails at once with a *RunnerLockedError naming the holder's
// operation, pid, host and start. Local: flock(2) on state.json.runner.lock
// beside the state file, which holds the runner's RunnerInfo. Postgres: the
// session advisory lock 0x736c756963650004 on a connection of its own,
// described by the row (kind 'runner', address 'lock') of sluice.status, so
// that it excludes runners on other machines too. Either is released when
// the runner's process dies. RunnerHolder reads who holds it without
// taking it (postgres: pg_locks) or by a shared flock held for a moment
// (local; LockRunner tells such a probe from a runner and tries again).
// A running status record names its runner (TableStatus.Owner); readers
// show records whose runner no longer holds the lock as interrupted
// (MarkInterrupted), and the next runner records them so.
//
// # Sync requests
//
// `sluice sync` next to a running `sluice run` daemon (which holds the
// runner lock) hands its tables to the daemon as a SyncRequest kept
// beside the status records: local, one JSON file per request in
// state.sync-requests/ beside the state file, written as a synced
// temporary file renamed into place; postgres, a row of sluice.status of
// kind 'sync_request' (address: the request ID), so that no new table is
// needed. The requester creates the request and deletes it once answered;
// the runner holding the lock records that it took it and, when every
// table has its result, its answer. The daemon lists requests every
// second (one directory listing, or one query on the primary key's
// range). Requests that no runner answered are taken by the next runner
// to start, or expire after SyncRequestExpiry; answers nobody collected
// are removed after SyncRequestKeep.
//
// # The fingerprint key
//
// FingerprintKey returns a 32-byte random key created on first use and
// stored beside the state, never in it: in the key file (local) or in
// sluice.keys (postgres), protected by the file's mode or the database's
// permissions. Whoever can read the key and the state can test guesses of
// a secret against its fingerprint, so keep the key as private as the
// state's secrets deserve. Losing the key loses no data: every sensitive
// setting then shows as changed in the next plan, and the next apply
// records fingerprints under the new key.
package state
