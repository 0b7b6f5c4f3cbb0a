// Package pgstate is the postgres state backend: the state, its lock,
// the runner lock, status records and sync requests in a PostgreSQL
// database. Importing it registers backend "postgres" with state.Open;
// package state holds the model and the interfaces this package
// implements (state.Backend, state.RunnerLocker, state.StatusStore,
// state.SyncRequests).
//
// Everything lives in schema "sluice", created (with its tables) on first
// use when missing:
//
//	sluice.state_versions (lineage, serial, state jsonb, written_at, written_by)  every version, primary key (lineage, serial)
//	sluice.state_lock     (id, info jsonb, created_at)                            the lock holder's LockInfo
//	sluice.keys           (name, key bytea)                                       the fingerprint key, row "fingerprint"
//
// Read returns the version with the highest serial; there is one lineage
// per database. Write checks the latest version and inserts the next one in
// a transaction serialized by a transaction-level advisory lock, so two
// writers cannot both succeed; a unique violation is reported as
// ErrStateChanged too.
//
// The lock is a session-level advisory lock (pg_try_advisory_lock, retried
// until the timeout) on a connection of its own that stays open until
// unlock, plus a row in sluice.state_lock with the LockInfo, including the
// session's backend PID, so that a waiter can name the holder. A session's
// advisory locks die with it, so a holder that crashes releases the lock
// as soon as the server notices the connection closed; its row is stale
// and the next holder deletes it. While a backend holds the lock, its reads
// and writes use the lock's session. ForceUnlock ID deletes the row and,
// when the session holding the advisory lock is the one recorded for ID,
// terminates it with pg_terminate_backend (which needs the same role or
// membership in pg_signal_backend): the lock is released, and the stuck
// process's next statement fails instead of writing without the lock.
//
// The advisory lock keys are 0x736c75696365 ("sluice") followed by 0001
// (the state lock), 0002 (writes), 0003 (creating the tables) and 0004
// (the runner lock).
package pgstate
