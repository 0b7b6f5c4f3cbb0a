package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The server of a test package, set by Main before any test runs.
var (
	shared   *Cluster // nil when PGTEST_URL names the server
	adminURL string   // a superuser's URL of the server NewDB creates databases on
	dbSeq    atomic.Int64
)

// Main is for TestMain: it starts one cluster shared by the package's tests
// (or, when PGTEST_URL is set, uses that server), runs the tests, stops the
// cluster and exits with the tests' status. opts, at most one, configure
// the cluster.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M, opts ...Options) {
	os.Exit(runMain(m, opts))
}

func runMain(m *testing.M, opts []Options) int {
	if u := os.Getenv("PGTEST_URL"); u != "" {
		adminURL = u
		return m.Run()
	}
	if len(opts) > 1 {
		fmt.Fprintln(os.Stderr, "pgtest.Main: at most one Options")
		return 1
	}
	var o Options
	if len(opts) == 1 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := Start(ctx, o)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest.Main: %v\n", err)
		return 1
	}
	shared, adminURL = c, c.URL("postgres")
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest.Main: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Shared is the cluster Main started, nil when PGTEST_URL is used or Main
// was not called.
func Shared() *Cluster { return shared }

// NewDB creates a database with a unique name on the package's server and
// returns its URL; it is dropped (with its replication slots) when the test
// and its subtests have finished. It needs Main in TestMain.
func NewDB(t testing.TB) string {
	t.Helper()
	if adminURL == "" {
		t.Fatal("pgtest.NewDB: no server; call pgtest.Main(m) from TestMain (or set PGTEST_URL)")
	}
	name := dbName(t.Name(), os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := createDatabase(ctx, adminURL, name)
	if err != nil {
		t.Fatalf("pgtest.NewDB: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dropDatabase(ctx, adminURL, name); err != nil {
			t.Errorf("pgtest.NewDB cleanup: %v", err)
		}
	})
	return url
}

// dbName makes a database name from a test name, unique across the test
// processes that share a server (pid) and within one (seq), and within
// PostgreSQL's 63-byte limit.
func dbName(testName string, pid int, seq int64) string {
	suffix := fmt.Sprintf("_%d_%d", pid, seq)
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len()+len(suffix) >= 63 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String() + suffix
}
