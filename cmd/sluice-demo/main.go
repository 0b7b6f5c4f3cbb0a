// Command sluice-demo is what `make demo` runs: it starts a throwaway
// PostgreSQL 15, loads a small sample shop into it, and runs the built
// bin/sluice against the quickstart configuration (examples/quickstart),
// copied into .demo/ at the repository root. The server and its data are
// removed at the end; .demo/ stays for a look at what sluice wrote.
//
// With -warehouse=iceberg (or SLUICE_DEMO_WAREHOUSE=iceberg) the copied
// configuration's warehouse block is replaced by one block writing Apache
// Iceberg tables into .demo/lake, with the SQL catalog (SQLite) beside the
// state; the tables are read back through the warehouse's Scanner either
// way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/iceberg"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// step is one sluice command of the demo.
type step struct {
	title string   // shown in the step's header: "==> sluice validate"
	args  []string // sluice's arguments, after -chdir=.demo
	// sql, when set, runs in the shop database before the command, to show
	// how a change at the source reaches the warehouse.
	sql string
}

// steps run in order; the first to fail ends the demo.
var steps = []step{
	{title: "sluice validate", args: []string{"validate"}},
	{title: "sluice plan (what apply would do)", args: []string{"plan"}},
	{title: "sluice apply -auto-approve", args: []string{"apply", "-auto-approve"}},
	{title: "sluice plan -detailed-exitcode (right after apply: nothing to do, exit 0)", args: []string{"plan", "-detailed-exitcode"}},
	{title: "sluice show (the recorded state)", args: []string{"show"}},
	{title: "sluice run -once (sync every table that is due: all of them, the first time)", args: []string{"run", "-once"}},
	{title: "sluice status", args: []string{"status"}},
	{
		title: "a customer changes, another comes and goes; sluice run -once streams the changes (cdc)",
		sql: "UPDATE customers SET email = 'new-' || email WHERE id = 1; " +
			"INSERT INTO customers (name, email, country, created_at, updated_at) VALUES ('Passing Visitor', 'visitor@example.com', 'NL', now(), now()); " +
			"DELETE FROM customers WHERE email = 'visitor@example.com'",
		args: []string{"run", "-once"},
	},
	{
		title: "an order is paid and a new one comes; orders sync hourly, so sluice sync runs it now",
		sql: "UPDATE orders SET status = 'paid', updated_at = now() WHERE id = 1; " +
			"INSERT INTO orders (customer_id, status, total, items, created_at, updated_at) VALUES (1, 'new', 42.00, '[]', now(), now())",
		args: []string{"sync", "postgres.shop/orders"},
	},
}

const (
	workDirName = ".demo"
	exampleDir  = "examples/quickstart"
	database    = "shop"
)

// icebergBlock is the warehouse block of -warehouse=iceberg: the one
// block that points the quickstart at Iceberg.
const icebergBlock = `warehouse {
  backend   = "iceberg"
  path      = "lake"   # or s3://bucket/prefix with an s3 { } block
  namespace = "sluice"
  # catalog { type = "sql", url = "sqlite:lake.db" }  # default: SQLite beside the state
}`

// icebergDir is where -warehouse=iceberg writes, in the work directory.
const icebergDir = "lake"

// demoWarehouse is the warehouse the demo writes: "parquet" or "iceberg".
var demoWarehouse = "parquet"

func main() {
	def := demoWarehouse
	if v := os.Getenv("SLUICE_DEMO_WAREHOUSE"); v != "" {
		def = v
	}
	flag.StringVar(&demoWarehouse, "warehouse", def, "the warehouse to write: parquet (the quickstart's), or iceberg (Iceberg tables in .demo/lake); also SLUICE_DEMO_WAREHOUSE")
	flag.Parse()
	if demoWarehouse != "parquet" && demoWarehouse != "iceberg" {
		fmt.Fprintf(os.Stderr, "sluice-demo: -warehouse=%q: use parquet or iceberg\n", demoWarehouse)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sluice-demo: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole demo. The server is stopped and removed whatever
// happens, ^C included.
func run(ctx context.Context, out io.Writer) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "bin", "sluice")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("bin/sluice is missing (%w); build it with `make build`, or run `make demo`, which builds it first", err)
	}

	fmt.Fprintln(out, "==> starting a throwaway PostgreSQL 15")
	c, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    listening on 127.0.0.1:%d, data in %s\n", c.Port(), c.Dir())
	err = runSteps(ctx, out, c, root, bin)
	if ctx.Err() != nil {
		err = errors.New("interrupted") // what failed then is only a consequence
	}
	if stopErr := c.Stop(); stopErr != nil {
		return errors.Join(err, fmt.Errorf("stop PostgreSQL: %w", stopErr))
	}
	if err != nil {
		fmt.Fprintf(out, "==> stopped PostgreSQL and removed its data (%s)\n", c.Dir())
		return err
	}
	fmt.Fprintf(out, `==> done
    A throwaway PostgreSQL 15 ran on 127.0.0.1:%d with the sample database %q.
    The configuration is in %s/ (a copy of %s); what sluice wrote is there too.
    PostgreSQL has been stopped and the database removed with its data directory.
`, c.Port(), database, workDirName, exampleDir)
	return nil
}

// runSteps loads the sample database, prepares the work directory and runs
// the steps.
func runSteps(ctx context.Context, out io.Writer, c *pgtest.Cluster, root, bin string) error {
	fmt.Fprintf(out, "==> loading the sample database %q\n", database)
	url, err := loadShop(ctx, out, c)
	if err != nil {
		return err
	}
	work := filepath.Join(root, workDirName)
	files, err := prepareWorkDir(work, filepath.Join(root, exampleDir))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "==> configuration: %s copied from %s into %s/\n", strings.Join(files, ", "), exampleDir, workDirName)
	if demoWarehouse == "iceberg" {
		if err := useIceberg(filepath.Join(work, "main.hcl")); err != nil {
			return err
		}
		fmt.Fprintf(out, "    its warehouse block replaced by:\n%s\n", indent(icebergBlock, "      "))
	}

	env := append(os.Environ(), "SLUICE_VAR_pg_url="+url)
	for _, s := range steps {
		fmt.Fprintf(out, "\n==> %s\n", s.title)
		if s.sql != "" {
			fmt.Fprintf(out, "    %s\n", s.sql)
			if err := c.Exec(ctx, database, s.sql); err != nil {
				return err
			}
		}
		cmd := exec.CommandContext(ctx, bin, append([]string{"-chdir=" + workDirName}, s.args...)...)
		cmd.Dir = root
		cmd.Env = env
		cmd.Stdout = out
		cmd.Stderr = os.Stderr
		// On ^C sluice gets SIGINT from the terminal itself; on SIGTERM to
		// the demo alone, pass it on and give sluice time to finish.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
	}
	fmt.Fprintln(out)
	w, err := openDemoWarehouse(ctx, work)
	if err != nil {
		return err
	}
	defer w.Close()
	return readBack(ctx, out, url, w)
}

// warehouseBlock matches the quickstart's warehouse block (no nested
// blocks).
var warehouseBlock = regexp.MustCompile(`(?m)^warehouse \{[^}]*\}`)

// useIceberg replaces the warehouse block of the configuration file at
// path with icebergBlock.
func useIceberg(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(warehouseBlock.FindAllIndex(b, -1)) != 1 {
		return fmt.Errorf("%s: expected one warehouse block to replace", path)
	}
	b = warehouseBlock.ReplaceAll(b, []byte(icebergBlock))
	return os.WriteFile(path, b, 0o644)
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// openDemoWarehouse opens what the demo's sluice wrote into work.
func openDemoWarehouse(ctx context.Context, work string) (warehouse.Warehouse, error) {
	if demoWarehouse == "iceberg" {
		return iceberg.Open(ctx, iceberg.Options{
			Location:   filepath.Join(work, icebergDir),
			Namespace:  "sluice",
			CatalogURL: "sqlite://" + filepath.Join(work, ".sluice", "iceberg-catalog.db"),
		})
	}
	return parquet.Open(filepath.Join(work, "warehouse"))
}

// scanTable reads a committed warehouse table back through its Scanner.
func scanTable(ctx context.Context, w warehouse.Warehouse, name string, fn func(*records.Batch) error) (warehouse.Table, error) {
	t, err := w.Table(ctx, name)
	if err != nil {
		return nil, err
	}
	sc, ok := t.(warehouse.Scanner)
	if !ok {
		return nil, fmt.Errorf("the %s warehouse's table %s cannot be read back (no warehouse.Scanner)", demoWarehouse, name)
	}
	return t, sc.Scan(ctx, fn)
}

// showHistory prints what CDC made of the two customers the demo changed:
// the consolidated rows (a tombstone for the deleted one) and every
// version in the history table.
func showHistory(ctx context.Context, out io.Writer, w warehouse.Warehouse) error {
	for _, t := range []struct{ name, cols string }{
		{"shop_customers", "id,email,_sluice_deleted"},
		{"shop_customers_cdc", "id,email,_sluice_cdc_op,valid_to"},
	} {
		cols := strings.Split(t.cols, ",")
		fmt.Fprintf(out, "\n    %s, the changed customers (%s):\n", t.name, strings.Join(cols, ", "))
		_, err := scanTable(ctx, w, t.name, func(b *records.Batch) error {
			for i := 0; i < b.N; i++ {
				id := b.Cols[b.Schema.Index("id")]
				if id.IsNull(i) || id.I64[i] != 1 && id.I64[i] <= 200 {
					continue
				}
				var parts []string
				for _, c := range cols {
					parts = append(parts, cell(&b.Cols[b.Schema.Index(c)], i))
				}
				fmt.Fprintf(out, "      %s\n", strings.Join(parts, "  "))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// cell renders one value for the demo's listing.
func cell(v *records.Vec, i int) string {
	switch {
	case v.IsNull(i):
		return "NULL"
	case v.I64 != nil:
		if v.I64[i] > 1e15 { // microseconds: a timestamp
			return time.UnixMicro(v.I64[i]).UTC().Format(time.RFC3339)
		}
		return fmt.Sprint(v.I64[i])
	case v.Bool != nil:
		return fmt.Sprint(v.Bool[i])
	}
	return string(v.Bytes(i))
}

// readBack reads every warehouse table back, compares the row count
// with the source table's, and shows how to query it.
func readBack(ctx context.Context, out io.Writer, url string, w warehouse.Warehouse) error {
	where := workDirName + "/warehouse"
	if demoWarehouse == "iceberg" {
		where = workDirName + "/" + icebergDir
	}
	fmt.Fprintf(out, "==> reading the %s warehouse back (%s)\n", demoWarehouse, where)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    WAREHOUSE TABLE\tLIVE ROWS\tSOURCE ROWS\tVERSION\t")
	var ordersMetadata string
	for _, t := range []struct{ warehouse, source string }{
		{"shop_customers", "customers"}, {"shop_orders", "orders"}, {"shop_events", "events"},
	} {
		// A cdc table keeps deleted rows as tombstones: count the live ones.
		var rows int64
		tb, err := scanTable(ctx, w, t.warehouse, func(b *records.Batch) error {
			deleted := b.Schema.Index("_sluice_deleted")
			for i := 0; i < b.N; i++ {
				if deleted < 0 || b.Cols[deleted].IsNull(i) || !b.Cols[deleted].Bool[i] {
					rows++
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		var want int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t.source}.Sanitize()).Scan(&want); err != nil {
			return err
		}
		version := "-"
		switch tb := tb.(type) {
		case *parquet.Table:
			version = fmt.Sprintf("%d files", len(tb.Manifest().Files))
		case warehouse.Versioned:
			v := tb.Version()
			version = fmt.Sprintf("snapshot %d", v.SnapshotID)
			if t.warehouse == "shop_orders" {
				ordersMetadata = v.MetadataLocation
			}
		}
		fmt.Fprintf(tw, "    %s\t%d\t%d\t%s\t\n", t.warehouse, rows, want, version)
		if rows != want {
			tw.Flush()
			return fmt.Errorf("%s holds %d rows, the source %d", t.warehouse, rows, want)
		}
	}
	tw.Flush()
	if err := showHistory(ctx, out, w); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n    Query it with DuckDB (from the repository root):\n")
	if demoWarehouse == "iceberg" {
		if ordersMetadata == "" {
			ordersMetadata = workDirName + "/" + icebergDir + "/sluice.db/shop_orders/metadata/<newest>.metadata.json"
		}
		fmt.Fprintf(out, "      INSTALL iceberg; LOAD iceberg;\n")
		fmt.Fprintf(out, "      SELECT status, count(*), sum(total) FROM iceberg_scan('%s') GROUP BY status;\n", ordersMetadata)
		fmt.Fprintf(out, "    (sluice status -json names every table's current metadata file; the catalog is %s/.sluice/iceberg-catalog.db)\n\n", workDirName)
		return nil
	}
	fmt.Fprintf(out, "      SELECT status, count(*), sum(total) FROM read_parquet('%s/warehouse/shop_orders/*.parquet') GROUP BY status;\n\n", workDirName)
	return nil
}

// loadShop creates and fills the sample database and returns its URL.
func loadShop(ctx context.Context, out io.Writer, c *pgtest.Cluster) (string, error) {
	url, err := c.CreateDatabase(ctx, database)
	if err != nil {
		return "", err
	}
	if err := c.Exec(ctx, database, shopSQL); err != nil {
		return "", fmt.Errorf("load the sample data: %w", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", database, err)
	}
	defer conn.Close(context.Background())
	var customers, orders, events int64
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM events)`).
		Scan(&customers, &orders, &events)
	if err != nil {
		return "", fmt.Errorf("count the sample rows: %w", err)
	}
	fmt.Fprintf(out, "    %d customers, %d orders, %d events\n    SLUICE_VAR_pg_url=%s\n", customers, orders, events, url)
	return url, nil
}

// prepareWorkDir replaces work with a directory holding the *.hcl files of
// example, and returns their names.
func prepareWorkDir(work, example string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(example, "*.hcl"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", example, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no *.hcl files in %s", example)
	}
	if err := os.RemoveAll(work); err != nil {
		return nil, fmt.Errorf("remove the old work directory: %w", err)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("create the work directory: %w", err)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read example: %w", err)
		}
		names[i] = filepath.Base(p)
		if err := os.WriteFile(filepath.Join(work, names[i]), b, 0o644); err != nil {
			return nil, fmt.Errorf("copy example: %w", err)
		}
	}
	return names, nil
}

// repoRoot is the nearest directory from the working directory up that
// holds go.mod: `make demo` and `go run ./cmd/sluice-demo` run at the root.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sluice repository (no go.mod above the working directory); run `make demo` there")
		}
		dir = parent
	}
}
