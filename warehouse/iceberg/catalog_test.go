package iceberg

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

func TestParseLocation(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		want location
		err  string
	}{
		{in: "/abs/dir/", want: location{kind: localLocation, url: "/abs/dir"}},
		{in: "rel/dir", want: location{kind: localLocation, url: filepath.Join(wd, "rel/dir")}},
		{in: "file:///abs/dir", want: location{kind: localLocation, url: "/abs/dir"}},
		{in: "s3://lake", want: location{kind: s3Location, url: "s3://lake", bucket: "lake"}},
		{in: "s3://lake/sluice/prod/", want: location{kind: s3Location, url: "s3://lake/sluice/prod", bucket: "lake"}},
		{in: "s3a://lake/x", want: location{kind: s3Location, url: "s3://lake/x", bucket: "lake"}},
		{in: "gs://lake/x", want: location{kind: gcsLocation, url: "gs://lake/x", bucket: "lake"}},
		{in: "s3:///x", err: "names no bucket"},
		{in: "s3://key:secret@lake/x", err: "without credentials"},
		{in: "s3://lake/x?versionId=1", err: "without credentials, port, query or fragment"},
		{in: "ftp://host/x", err: `unsupported scheme "ftp"`},
		{in: "file://host/x", err: "file:///absolute/path"},
	} {
		got, err := parseLocation(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseLocation(%q) = %+v, %v; want an error saying %q", c.in, got, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret@") {
				t.Errorf("parseLocation(%q)'s error shows the credentials: %v", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseLocation(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestCatalogURLs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	local := location{kind: localLocation, url: filepath.Join(dir, "wh")}
	for _, c := range []struct {
		url  string
		loc  location
		path string // the SQLite file
		err  string
	}{
		{url: "", loc: local, path: filepath.Join(dir, "wh", "catalog.db")},
		{url: "sqlite://" + filepath.Join(dir, "abs.db"), loc: local, path: filepath.Join(dir, "abs.db")},
		{url: "sqlite:rel.db", loc: local, path: filepath.Join(dir, "rel.db")},
		{url: "sqlite:sub/rel?#%.db", loc: local, path: filepath.Join(dir, "sub", "rel?#%.db")},
		{url: "", loc: location{kind: s3Location, url: "s3://b/p", bucket: "b"}, err: "set the warehouse's catalog.url"},
		{url: "sqlite:", loc: local, err: "names no file"},
		{url: "mysql://u:hunter2@h/db", loc: local, err: "use sqlite:///abs/path.db, sqlite:relative.db or postgres://"},
	} {
		cdb, err := openCatalogDB(c.url, c.loc)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("openCatalogDB(%q) = %v; want an error saying %q, without the password", c.url, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("openCatalogDB(%q): %v", c.url, err)
			continue
		}
		if err := cdb.db.Ping(); err != nil {
			t.Errorf("openCatalogDB(%q): %v", c.url, err)
		}
		cdb.db.Close()
		if cdb.kind != sqliteCatalog || cdb.path != c.path {
			t.Errorf("openCatalogDB(%q) = %v %q, want SQLite at %q", c.url, cdb.kind, cdb.path, c.path)
		}
		if _, err := os.Stat(c.path); err != nil {
			t.Errorf("openCatalogDB(%q) made no file at %s: %v", c.url, c.path, err)
		}
	}
}

// TestOpenErrors: what Open refuses says what to do, and never shows a
// password or secret key.
func TestOpenErrors(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	cat := "sqlite://" + filepath.Join(t.TempDir(), "c.db")
	for _, c := range []struct {
		name string
		opts Options
		want []string
	}{
		{"no location", Options{}, []string{"no location"}},
		{"object store without catalog", Options{Location: "s3://b/p", S3: S3Options{Region: "eu-west-1"}}, []string{"catalog.url"}},
		{"half a key pair", Options{Location: "s3://b/p", CatalogURL: cat, S3: S3Options{Region: "eu-west-1", SecretAccessKey: "hunter2"}}, []string{"set both"}},
		{"no region", Options{Location: "s3://b/p", CatalogURL: cat}, []string{"no S3 region", "AWS_REGION"}},
		{"unreachable PostgreSQL", Options{Location: t.TempDir(), CatalogURL: "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"}, []string{"127.0.0.1:1", "is PostgreSQL running"}},
	} {
		w, err := Open(context.Background(), c.opts)
		if err == nil {
			w.Close()
			t.Errorf("%s: Open succeeded", c.name)
			continue
		}
		for _, want := range c.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Open = %v; want it to say %q", c.name, err, want)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: Open's error shows the secret: %v", c.name, err)
		}
	}
}

// TestPostgresCatalogLocal: a local directory with a PostgreSQL catalog:
// the position survives a reopen, icebird reads the rows, and the files
// are under <dir>/sluice.db/<table>.
func TestPostgresCatalogLocal(t *testing.T) {
	st := testStore{name: "local+postgres", opts: Options{Location: t.TempDir(), CatalogURL: pgCatalogURL(t), Namespace: "lake"}}
	tb := openTable(t, st.open(t), "kv")
	commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: "1"}, kvSimpleBatch(1, 2))
	commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: "2"}, kvSimpleBatch(0))
	reopened := openTable(t, st.open(t), "kv")
	if pos, ok := reopened.Position(); !ok || pos.Cursor != "2" {
		t.Errorf("reopened position %+v (%v), want cursor 2", pos, ok)
	}
	if diff := cmp.Diff(kvSimpleRows(0, 1, 2), sortRows(readIndependent(t, st, reopened))); diff != "" {
		t.Errorf("icebird reads (-want +got):\n%s", diff)
	}
	if want := filepath.Join(st.opts.Location, "lake.db", "kv", "metadata") + "/"; !strings.HasPrefix(reopened.MetadataLocation(), want) {
		t.Errorf("metadata at %s, want under %s", reopened.MetadataLocation(), want)
	}
	if _, err := os.Stat(filepath.Join(st.opts.Location, "catalog.db")); err == nil {
		t.Error("a SQLite catalog was made beside a PostgreSQL one")
	}
}

// TestCheckCatalog: Check passes on a catalog the user may write and
// leaves nothing behind; a PostgreSQL user who may only read the catalog
// is told the GRANT to run.
func TestCheckCatalog(t *testing.T) {
	ctx := context.Background()
	w := openTest(t, t.TempDir())
	if err := w.Check(ctx); err != nil {
		t.Fatalf("Check of a local warehouse: %v", err)
	}
	if probes, _ := filepath.Glob(filepath.Join(w.dir, "_sluice", "check-*")); len(probes) != 0 {
		t.Errorf("Check left %v", probes)
	}

	admin := pgCatalogURL(t)
	dir := t.TempDir()
	openTestOpts(t, Options{Location: dir, CatalogURL: admin}) // creates the catalog tables
	pgExec(t, admin,
		"DROP ROLE IF EXISTS catalog_reader",
		"CREATE ROLE catalog_reader LOGIN",
		"GRANT USAGE, CREATE ON SCHEMA public TO catalog_reader",
		"GRANT SELECT ON iceberg_tables, iceberg_namespace_properties TO catalog_reader")
	u, _ := url.Parse(admin)
	u.User = url.User("catalog_reader")
	reader := openTestOpts(t, Options{Location: dir, CatalogURL: u.String()})
	err := reader.Check(ctx)
	for _, want := range []string{"cannot be written", "GRANT SELECT, INSERT, UPDATE, DELETE ON iceberg_tables, iceberg_namespace_properties"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check as a read-only user = %v; want it to say %q", err, want)
		}
	}
	pgExec(t, admin, "GRANT INSERT, UPDATE, DELETE ON iceberg_tables, iceberg_namespace_properties TO catalog_reader")
	if err := reader.Check(ctx); err != nil {
		t.Errorf("Check after the GRANT: %v", err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM iceberg_namespace_properties WHERE namespace <> 'sluice') + (SELECT count(*) FROM iceberg_tables)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("Check left %d rows in the catalog", n)
	}
	pgExec(t, admin, "DROP OWNED BY catalog_reader", "DROP ROLE catalog_reader")
}

func openTestOpts(t *testing.T, o Options) *Warehouse {
	t.Helper()
	w, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}
