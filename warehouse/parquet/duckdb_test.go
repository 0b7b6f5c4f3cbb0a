package parquet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// duckdbReader is a Node.js script that queries
// read_parquet('<dir>/*.parquet') with DuckDB in a loop and prints one JSON
// line per query: when it started and ended (µs since 1970), the rows and
// distinct keys it counted, or DuckDB's error.
const duckdbReader = `
const { DuckDBInstance } = require('@duckdb/node-api');
const [dir, ms] = process.argv.slice(2);
// The wall clock, as Go's time.Now reads it: performance.timeOrigin can
// be milliseconds off it, which made reads look quiet that were not.
const now = () => Date.now() * 1000;
(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const sql = "SELECT count(*)::BIGINT AS n, count(DISTINCT id)::BIGINT AS d FROM read_parquet('" + dir + "/*.parquet')";
  const until = Date.now() + Number(ms);
  while (Date.now() < until) {
    const start = now();
    let line;
    try {
      const r = await c.runAndReadAll(sql);
      const [n, d] = r.getRows()[0];
      line = { start, end: now(), n: Number(n), d: Number(d) };
    } catch (e) {
      line = { start, end: now(), err: String(e.message || e) };
    }
    console.log(JSON.stringify(line));
  }
})();
`

// TestDuckDBGlobReader is TestGlobReaderSeesOneVersion with DuckDB as the
// reader, as a user queries the warehouse. It needs Node.js and the npm
// package @duckdb/node-api (which ships DuckDB), which `make test`
// installs (scripts/ensure-duckdb.sh) and names in SLUICE_TEST_DUCKDB;
// without it the test looks in that script's cache directory, and fails
// when DuckDB is nowhere.
func TestDuckDBGlobReader(t *testing.T) {
	modules := duckdbModules()
	if modules == "" {
		msg := "DuckDB is not installed: run `bash scripts/ensure-duckdb.sh` (make test does) or set SLUICE_TEST_DUCKDB to the node_modules directory holding @duckdb/node-api"
		t.Fatal(msg)
	}
	w := openTestWarehouse(t)
	tinyLimits(w)
	const keys = 200
	tb := mustTable(t, w, "kv")
	commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, kvRows(seq(keys), "v0", 0), WithExpectedRows(keys))

	var mu sync.Mutex
	var windows [][2]int64 // publish steps, µs since 1970
	w.hook = func(stage string) error {
		now := time.Now().UnixMicro()
		mu.Lock()
		defer mu.Unlock()
		switch stage {
		case stageAfterManifest:
			windows = append(windows, [2]int64{now, 0})
		case stageAfterCleanup:
			windows[len(windows)-1][1] = now
		}
		return nil
	}

	script := filepath.Join(t.TempDir(), "reader.js")
	if err := os.WriteFile(script, []byte(duckdbReader), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, tb.Dir(), "6000")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type read struct {
		Start, End int64
		N, D       int
		Err        string
	}
	var reads []read
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r read
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("reader printed %q: %v", sc.Text(), err)
				continue
			}
			reads = append(reads, r)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	time.Sleep(500 * time.Millisecond) // DuckDB starts
	for v := 1; time.Now().Before(deadline); v++ {
		tag := fmt.Sprintf("v%d", v)
		if v%2 == 0 {
			commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, kvRows(seq(keys), tag, v))
		} else {
			commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, kvRows(seq(keys)[:keys/3], tag, v))
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the DuckDB reader: %v", err)
	}

	// A read is quiet when no publish step overlaps it, with 10 ms of
	// slack for Date.now's millisecond steps and the scheduling of two
	// processes on a loaded machine.
	const slack = 10_000
	quiet := func(r read) bool {
		for _, win := range windows {
			if r.Start-slack <= win[1] && win[0] <= r.End+slack {
				return false
			}
		}
		return true
	}
	var nQuiet, nOverlap, nTorn, nGone int
	for _, r := range reads {
		q := quiet(r)
		switch {
		case r.Err != "" && !q && strings.Contains(r.Err, "No such file"):
			nOverlap++
			nGone++
		case r.Err != "":
			t.Errorf("DuckDB failed (quiet %v): %s", q, r.Err)
		case q:
			nQuiet++
			if r.N != keys || r.D != keys {
				t.Errorf("with no commit publishing, DuckDB read %d rows of %d keys, want %d once each", r.N, r.D, keys)
			}
		default:
			nOverlap++
			if r.N != keys || r.D != keys {
				nTorn++
			}
		}
	}
	if nQuiet == 0 {
		t.Error("no DuckDB read ran between commits: the test checked nothing")
	}
	t.Logf("DuckDB reads: %d between commits, %d overlapping one of %d publish steps (%d torn, %d hit a removed file)", nQuiet, nOverlap, len(windows), nTorn, nGone)
}

// duckdbModules is the node_modules directory holding @duckdb/node-api:
// SLUICE_TEST_DUCKDB, else where scripts/ensure-duckdb.sh installs it.
func duckdbModules() string {
	if m := os.Getenv("SLUICE_TEST_DUCKDB"); m != "" {
		return m
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	found, _ := filepath.Glob(filepath.Join(cache, "sluice", "duckdb-*", "node_modules", "@duckdb", "node-api"))
	if len(found) == 0 {
		return ""
	}
	return filepath.Dir(filepath.Dir(found[len(found)-1]))
}
