package iceberg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
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

// ErrNotSupported is wrapped by the error of what this warehouse does not
// do yet (Merge, history tables).
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
	// configuration layer makes it absolute), or "postgres://...". Empty:
	// SQLite at <Location>/catalog.db for a local Location.
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
	Endpoint        string // e.g. "http://127.0.0.1:7070"; empty: AWS
	Region          string
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

// Warehouse is an Iceberg warehouse: a SQL catalog and a warehouse
// directory.
type Warehouse struct {
	db  *sql.DB
	cat *sqlcat.Catalog
	ns  string
	dir string
	// maint is Options.Maintenance.
	maint MaintenancePolicy
	// beforeCommit, set by tests, runs before the catalog commit: an
	// error stands for a crash after the data files were written.
	beforeCommit func() error
}

var _ warehouse.Warehouse = (*Warehouse)(nil)

// Open opens (creating as needed) the warehouse directory, its SQLite
// catalog and the namespace.
func Open(ctx context.Context, o Options) (*Warehouse, error) {
	if o.Location == "" {
		return nil, errors.New("iceberg warehouse: no location given")
	}
	dir, err := filepath.Abs(o.Location)
	if err != nil {
		return nil, fmt.Errorf("iceberg warehouse: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("iceberg warehouse: %w", err)
	}
	ns := o.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	catPath := strings.TrimPrefix(strings.TrimPrefix(o.CatalogURL, "sqlite://"), "sqlite:")
	if catPath == "" {
		catPath = filepath.Join(dir, "catalog.db")
	}
	db, err := sql.Open("sqlite", "file:"+catPath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, fmt.Errorf("iceberg warehouse: opening the catalog %s: %w", catPath, err)
	}
	cat, err := sqlcat.NewCatalog("sluice", db, sqlcat.SQLite, iceberggo.Properties{"warehouse": dir})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("iceberg warehouse: opening the catalog %s: %w", catPath, err)
	}
	w := &Warehouse{db: db, cat: cat, ns: ns, dir: dir, maint: o.Maintenance}
	exists, err := cat.CheckNamespaceExists(ctx, table.Identifier{ns})
	if err == nil && !exists {
		err = cat.CreateNamespace(ctx, table.Identifier{ns}, nil)
		if errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			err = nil
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("iceberg warehouse: namespace %q in the catalog %s: %w", ns, catPath, err)
	}
	return w, nil
}

// Close closes the catalog.
func (w *Warehouse) Close() error { return w.db.Close() }

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
