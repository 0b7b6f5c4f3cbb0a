package iceberg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	_ "modernc.org/sqlite" // the SQLite driver of the default catalog

	"github.com/sluice-dev/sluice/warehouse"
)

// PositionProperty is the snapshot summary property holding the sync
// position (records.Position as JSON) the snapshot's rows bring the table to.
const PositionProperty = "sluice.position"

// SyncedAtColumn is the metadata column added to every row: when the
// commit began (timestamptz).
const SyncedAtColumn = "_sluice_synced_at"

// DefaultNamespace is the Iceberg namespace of the tables unless
// Options.Namespace says otherwise.
const DefaultNamespace = "sluice"

// ErrNotSupported is wrapped by the error of a mode this warehouse does
// not know.
var ErrNotSupported = errors.New("not supported yet by the iceberg warehouse")

// Options configures Open.
type Options struct {
	// Location is where the tables' data and metadata go: a local
	// directory (created if missing), or an object store URL
	// ("s3://bucket/prefix", "gs://bucket/prefix").
	Location string
	// Namespace is the Iceberg namespace of the tables (default "sluice").
	Namespace string
	// CatalogURL is the SQL catalog's database: "sqlite:///abs/path.db",
	// "sqlite:relative.db" (relative to the working directory; the
	// configuration layer makes it absolute), or "postgres://..." (the
	// catalog tables in the URL's database, search_path schema). Empty:
	// SQLite at <Location>/catalog.db for a local Location; an object
	// store Location needs one (Open says so).
	CatalogURL string
	// S3 configures an s3:// Location; zero values fall back to the AWS
	// SDK's usual chain (AWS_* variables, profiles, instance roles).
	S3 S3Options
	// Maintenance is the compaction and snapshot-expiry policy; zero
	// values take the defaults.
	Maintenance MaintenancePolicy
}

// S3Options configures access to an S3-compatible object store.
type S3Options struct {
	// Endpoint is the S3 server, e.g. "http://127.0.0.1:7070"; empty:
	// AWS (or AWS_S3_ENDPOINT).
	Endpoint string
	// Region is the bucket's region; empty: AWS_REGION or the profile's.
	Region string
	// PathStyle addresses buckets as endpoint/bucket (MinIO, Versity,
	// most servers other than AWS) instead of bucket.endpoint; it is on
	// anyway for an endpoint on an IP address or localhost.
	PathStyle       bool
	AccessKeyID     string // sensitive: never stored or printed
	SecretAccessKey string // sensitive: never stored or printed
}

// MaintenancePolicy says when Table.Maintain compacts a table and which
// snapshots it expires.
type MaintenancePolicy struct {
	// Retention is how long snapshots stay readable (time travel) before
	// expiry; default 24h. The current snapshot never expires.
	Retention time.Duration
}

// Warehouse is an Iceberg warehouse: a SQL catalog and a location for the
// tables' files.
type Warehouse struct {
	db  *sql.DB
	cat *sqlcat.Catalog
	ns  string
	// dir is the location: an absolute directory, or an object store URL
	// (scheme://bucket[/prefix], no trailing slash). Tables live under
	// <dir>/<namespace>.db/<table>/.
	dir string
	// maint is Options.Maintenance.
	maint MaintenancePolicy
	loc   location
	// props are the catalog's and FileIO's properties; they hold the S3
	// secret key: never print them.
	props   iceberggo.Properties
	catalog *catalogDB
	// lockDir holds the flock files of the tables' writer locks (SQLite
	// catalog): <catalog file>.locks.
	lockDir string
	// pgLocks are the writer locks held in a PostgreSQL catalog.
	pgLocks pgLocks
	// beforeCommit, set by tests, runs before the catalog commit: an
	// error stands for a crash after the data files were written.
	beforeCommit func() error
}

var (
	_ warehouse.Warehouse = (*Warehouse)(nil)
	_ warehouse.Checker   = (*Warehouse)(nil)
)

// catalogName is the SQL catalog's catalog_name of sluice's tables; other
// engines reading the catalog use it as the catalog's name.
const catalogName = "sluice"

// Open opens (creating as needed) the location, the SQL catalog and the
// namespace. It writes nothing to an object store; Check says whether the
// bucket can be written.
//
// Location: a local directory (created if missing), s3://bucket/prefix, or
// gs://bucket/prefix. CatalogURL: sqlite:///abs/path.db, sqlite:relative.db
// or postgres://...; empty means SQLite at <Location>/catalog.db for a
// local directory, and is an error for an object store. S3 access uses
// Options.S3 where set and the AWS SDK's default chain otherwise.
func Open(ctx context.Context, o Options) (*Warehouse, error) {
	if o.Location == "" {
		return nil, errors.New("iceberg warehouse: no location given")
	}
	loc, err := parseLocation(o.Location)
	if err != nil {
		return nil, fmt.Errorf("iceberg warehouse: %w", err)
	}
	ns := o.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	props := ioProperties(loc, o.S3)
	switch loc.kind {
	case localLocation:
		if err := os.MkdirAll(loc.url, 0o755); err != nil {
			return nil, fmt.Errorf("iceberg warehouse: %w", err)
		}
	case s3Location:
		if err := checkS3Config(ctx, props); err != nil {
			return nil, fmt.Errorf("iceberg warehouse %s: %w", loc.url, err)
		}
	}
	cdb, err := openCatalogDB(o.CatalogURL, loc)
	if err != nil {
		return nil, fmt.Errorf("iceberg warehouse: %w", err)
	}
	cat, err := sqlcat.NewCatalog(catalogName, cdb.db, catalogDialect(cdb.kind), props)
	if err != nil {
		cdb.db.Close()
		return nil, fmt.Errorf("iceberg warehouse: opening the catalog %s: %w%s", cdb.name, err, catalogHint(cdb, err))
	}
	w := &Warehouse{db: cdb.db, cat: cat, ns: ns, dir: loc.url, loc: loc, props: props, catalog: cdb, maint: o.Maintenance}
	if cdb.kind == sqliteCatalog {
		w.lockDir = cdb.path + ".locks"
	}
	exists, err := cat.CheckNamespaceExists(ctx, table.Identifier{ns})
	if err == nil && !exists {
		err = cat.CreateNamespace(ctx, table.Identifier{ns}, nil)
		if errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			err = nil
		}
	}
	if err != nil {
		cdb.db.Close()
		return nil, fmt.Errorf("iceberg warehouse: namespace %q in the catalog %s: %w%s", ns, cdb.name, err, catalogHint(cdb, err))
	}
	return w, nil
}

func catalogDialect(k catalogKind) sqlcat.SupportedDialect {
	if k == postgresCatalog {
		return sqlcat.Postgres
	}
	return sqlcat.SQLite
}

// tableLocation is where the table called name keeps its files:
// <location>/<namespace>.db/<name>, each name made a path segment that
// means the same to every reader (see pathSegment). iceberg-go's default
// location would URL-escape them instead: a table "a b" gets the object
// key "a%20b", which readers that decode locations as URIs (Hadoop's
// s3a) look for as "a b". Pass it to CreateTable with
// catalog.WithLocation.
func (w *Warehouse) tableLocation(name string) string {
	return w.dir + "/" + pathSegment(w.ns) + ".db/" + pathSegment(name)
}

// pathSegment is s with every byte but ASCII letters, digits, '_', '-'
// and '.' written ~XX (hex): characters that no URI parser, object store
// or file system changes, so a plain identifier stays as it is and any
// other maps to a distinct segment ("a b" → "a~20b").
func pathSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "~%02X", c)
		}
	}
	return b.String()
}

// fileIO is the FileIO of the location (with the S3 settings of Options).
func (w *Warehouse) fileIO(ctx context.Context) (icebergio.IO, error) {
	return icebergio.LoadFS(ctx, w.props, w.dir)
}

// Name is the warehouse's kind in messages (warehouse.Named).
func (w *Warehouse) Name() string { return "Iceberg" }

// Close closes the catalog.
func (w *Warehouse) Close() error {
	w.pgLocks.close()
	return errors.Join(w.cat.Close(), w.db.Close())
}

// Table opens the table named name in the namespace and loads the
// position of its newest snapshot that has one.
func (w *Warehouse) Table(ctx context.Context, name string) (warehouse.Table, error) {
	t := &Table{w: w, ident: table.Identifier{w.ns, name}}
	tbl, err := w.cat.LoadTable(ctx, t.ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("iceberg table %s.%s: %w", w.ns, name, err)
	}
	if err := t.load(tbl); err != nil {
		return nil, err
	}
	return t, nil
}
