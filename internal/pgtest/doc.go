// Package pgtest runs throwaway PostgreSQL 15 clusters for tests and for the
// demo.
//
// A cluster lives in its own temporary directory (data directory, Unix
// socket, server log), listens on a free TCP port of 127.0.0.1 and is
// configured for logical replication (wal_level=logical) and for speed
// (fsync=off). Stop removes it. So that nothing is left behind when the
// process dies without calling Stop (a panic, a test timeout, SIGKILL), every
// cluster also has a watchdog: a small shell process that waits for this
// process to go away and then stops the server and removes the directory.
//
// Tests use one shared cluster per test package and a fresh database per
// test:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.NewDB(t) // dropped again when the test ends
//		...
//	}
//
// Setting PGTEST_URL (a postgres:// URL of a superuser on a running server)
// makes Main use that server instead of starting one; NewDB then creates its
// databases there. PGTEST_BINDIR points at the server binaries when they are
// not in /usr/lib/postgresql/15/bin.
//
// PostgreSQL refuses to run as root, so when this process is root the server
// runs as the "postgres" OS user.
package pgtest
