// Package providers defines what sluice needs from a source type, as small
// capability interfaces that each source type implements as far as it can,
// the registry through which provider packages make their type available
// (Register), and the model of what one introspection pass observes.
//
// runner, apply and planner import no provider package and no driver: every
// capability they use is an interface here (providers.go, capabilities.go,
// webhook.go), discovered on an opened Source with a type assertion, or a
// function of the registry (OpenResources, WebhookEvents). A change
// stream's positions are opaque ordered values the provider decodes and
// encodes (positions.go): callers compare and store them, never parse
// them. Only the command (cmd/sluice) imports the provider packages, to
// register them.
//
// The planner consumes Observed values and never talks to a source itself,
// so everything it needs to decide must be here.
package providers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
)

// Inspector introspects a live source in one pass (a constant number of
// catalog queries, whatever the number of tables).
type Inspector interface {
	Inspect(ctx context.Context) (*Observed, error)
}

// AllSchemasInspector is an Inspector that can also list the tables of
// every schema (`sluice inspect -all-schemas`), not only those the
// configuration looks in.
type AllSchemasInspector interface {
	InspectAllSchemas(ctx context.Context) (*Observed, error)
}

// TableChecker tells which tables of a list no longer exist at the source
// (dropped or renamed), in one round trip: a cdc stream, which receives
// nothing for a dropped table, would otherwise report it synced.
type TableChecker interface {
	// MissingTables returns, parallel to reqs, an error naming each table
	// that does not exist and what to do, nil for the others.
	MissingTables(ctx context.Context, reqs []ReadRequest) ([]error, error)
}

// Source is a configured source of any type. Other capabilities
// (SnapshotReader, CursorReader, ChangeStream, SlotWatcher, Checker,
// WebhookSource, WebhookManager, ...) are discovered with type assertions;
// a ResourceManager is opened through the registry (OpenResources).
type Source interface {
	Inspector
	// Close releases connections and tunnels.
	Close() error
}

// ResourceManager creates, verifies and removes the objects a source needs
// for CDC: a publication and a replication slot. Every method checks before
// it acts, so that apply can be re-run after a failure part-way.
type ResourceManager interface {
	// EnsurePublication makes the publication exist and hold exactly tables
	// ("schema.table" as config.QualifiedName writes them).
	EnsurePublication(ctx context.Context, name string, tables []string) error
	// PublicationTables lists the tables a publication holds, and whether
	// it exists.
	PublicationTables(ctx context.Context, name string) (tables []string, exists bool, err error)
	// DropPublication drops the publication if it exists.
	DropPublication(ctx context.Context, name string) error
	// CreateSlot creates a logical replication slot with pgoutput, or adopts
	// an existing one of that name, and returns its consistent point.
	CreateSlot(ctx context.Context, name string) (lsn string, err error)
	// DropSlot drops the slot if it exists.
	DropSlot(ctx context.Context, name string) error
	Close() error
}

// ReadRequest says what to read of one table.
type ReadRequest struct {
	// Schema and Table name the source table exactly.
	Schema, Table string
	// Query, when set, is a custom SQL table: the rows of this SELECT are
	// read instead of Schema.Table (Table then names it in messages), with
	// the cursor applied around it (SELECT ... FROM (Query) q WHERE cursor
	// > $1 ORDER BY cursor). Its key is PrimaryKey; it has no live one.
	Query string
	// Columns to read; nil reads every column. The key and the cursor are
	// always read, even when not listed.
	Columns    []string
	PrimaryKey []string
	// Cursor is the incremental_field of incremental and append syncs.
	Cursor string
	// From is the committed position; the zero Position reads from the
	// start.
	From records.Position
	// BatchRows bounds the rows of one batch (memory is bounded by it).
	BatchRows int
	// CommitRows, when positive with Commit set, asks a cursor or xmin
	// read (CursorReader) to stop every CommitRows rows read and call
	// Commit with the position after the rows emitted so far
	// (batch_size): the caller commits them, and a later read from that
	// position continues exactly after them. Commit's error ends the read.
	CommitRows int
	Commit     func(records.Position) error
	// Parallel is how many connections a snapshot of a large table may
	// use; 0 or 1 reads with one.
	Parallel int
	// Snapshot, when set, is an exported snapshot (ExportedSnapshot.Name)
	// every connection of a snapshot read imports, so that the read matches
	// a replication slot's starting point exactly.
	Snapshot string
}

// SnapshotReader reads a whole table, consistently (full_refresh, and
// the first sync of any table). emit is called with each batch, from one
// goroutine at a time; the batch is reused after emit returns.
type SnapshotReader interface {
	Schema(ctx context.Context, req ReadRequest) (*records.Schema, error)
	ReadSnapshot(ctx context.Context, req ReadRequest, emit func(*records.Batch) error) (records.Position, error)
}

// RowEstimator estimates a table's rows cheaply (from statistics), for
// progress lines with an ETA.
type RowEstimator interface {
	EstimateRows(ctx context.Context, req ReadRequest) (rows int64, ok bool, err error)
}

// CursorReader reads the rows past a committed position: incremental and
// append (by cursor column) and xmin syncs.
type CursorReader interface {
	ReadIncremental(ctx context.Context, req ReadRequest, emit func(*records.Batch) error) (records.Position, error)
	ReadXmin(ctx context.Context, req ReadRequest, emit func(*records.Batch) error) (records.Position, error)
}

// ChangeStream streams logical-replication changes of a source's cdc
// tables (PostgreSQL). Implementations confirm to the server only what
// the sink reports as committed (Flushed), never more.
type ChangeStream interface {
	// PositionCodec reads and writes the stream's positions (the LSNs of
	// the requests, transactions and slots below), which callers compare
	// and store without parsing them.
	PositionCodec
	// CreateSnapshotSlot creates the replication slot with an exported
	// snapshot (recreating the slot when it exists but was never used), and
	// keeps the exporting replication connection open until release is
	// called, so that snapshot readers can SET TRANSACTION SNAPSHOT to it.
	CreateSnapshotSlot(ctx context.Context, slot string) (snap ExportedSnapshot, release func() error, err error)
	// Stream reads changes from the slot, starting after req.StartLSN, and
	// hands them to sink one committed transaction at a time. With
	// req.StopAtLSN set it returns once every transaction committed at or
	// before it was handed over (run -once); otherwise it runs until ctx
	// is cancelled.
	Stream(ctx context.Context, req StreamRequest, sink ChangeSink) error
}

// ErrSlotLost reports that a replication slot is gone or has lost WAL it
// needed: changes were lost, and the source's cdc tables must be
// snapshotted again (with a new slot).
var ErrSlotLost = errors.New("replication slot lost")

// ExportedSnapshot is a snapshot exported with a new replication slot:
// snapshot + stream from ConsistentLSN is exactly the table's history.
type ExportedSnapshot struct {
	Name          string // for SET TRANSACTION SNAPSHOT
	ConsistentLSN string
}

// StreamRequest says what to stream.
type StreamRequest struct {
	Slot        string
	Publication string
	// Tables are the cdc tables, by config.QualifiedName, with the columns
	// and keys to decode.
	Tables map[string]ReadRequest
	// StartLSN is the committed position: changes at or before it are
	// skipped.
	StartLSN string
	// StopAtLSN, when set, ends the stream once everything committed at or
	// before it was handed to the sink.
	StopAtLSN string
	// TakeOver says the caller holds the stream's claim in a fleet of
	// runners: a process still streaming from the slot is one that lost
	// the claim (stopped, partitioned), and is terminated rather than
	// waited for. PostgreSQL allows one walsender per slot, which makes
	// the slot the fence between the old owner and the new.
	TakeOver bool
}

// ChangeSink receives decoded changes.
type ChangeSink interface {
	// Transaction receives the changes of one committed transaction. The
	// sink may buffer several transactions before committing them to the
	// warehouse.
	Transaction(ctx context.Context, tx *Transaction) error
	// Flushed is the LSN up to which every transaction handed over is
	// committed in the warehouse; the stream confirms (flush) only up to
	// it. With nothing pending, the stream may confirm the server's WAL end
	// reported in keepalives, so that idle sources retain no WAL.
	Flushed() string
}

// Transaction is one committed source transaction.
type Transaction struct {
	CommitLSN  string
	CommitTime time.Time
	// Changes are per table, by config.QualifiedName, in commit order.
	Changes map[string]*TableChanges
	// Partial marks one chunk of a transaction too large to hold in
	// memory at once (or in which a table's schema changed part-way):
	// more chunks with the same CommitLSN follow, the last one with
	// Partial unset. A sink must not record CommitLSN as its position
	// before the last chunk is committed: a restart skips transactions at
	// or before the position.
	Partial bool
}

// TableChanges are one table's changes within a transaction.
type TableChanges struct {
	// Truncated reports a TRUNCATE: the table must be re-snapshotted; Rows
	// holds only changes after it.
	Truncated bool
	// Schema is the table's schema as the stream's relation message gave
	// it (columns may have been added or dropped since the snapshot).
	Schema *records.Schema
	// Rows holds one row per change in the table's schema plus the
	// metadata columns _sluice_cdc_op (I, U, D), _sluice_lsn and
	// _sluice_cdc_timestamp. A delete carries the key (or the whole old
	// row with REPLICA IDENTITY FULL), the other columns null. Values a
	// change did not carry (unchanged TOAST) are marked in Vec.Unchanged.
	Rows *records.Batch
	// OldKeys holds, for updates that changed the key, the previous key
	// (same positions as Rows; null where the key did not change).
	OldKeys *records.Batch
}

// Factory opens a source from its configuration. It may connect lazily.
type Factory func(ctx context.Context, src *config.Source) (Source, error)

// ResourceFactory opens the resource manager of a configured source.
type ResourceFactory func(ctx context.Context, src *config.Source) (ResourceManager, error)

// Type is what a provider package registers for its source type: how to
// open a source, and what callers may ask of the type without one.
type Type struct {
	// Open opens a configured source.
	Open Factory
	// Resources opens the source's resource manager (publication, slot);
	// nil when the type has none to manage.
	Resources ResourceFactory
	// WebhookEvents lists, sorted, the event types a webhook endpoint
	// must deliver for the named tables (those that sync by webhook); nil
	// when the type receives no webhooks. The planner calls it, so it
	// must do no I/O.
	WebhookEvents func(tables []string) []string
	// TextForm returns how a non-null value of column c is written in
	// the source's own text form (PostgreSQL's output functions), which
	// hash columns hash; nil when the type has none. No I/O.
	TextForm func(c records.Column) (TextEncoder, error)
}

// TextEncoder appends the text form of non-null value i of v.
type TextEncoder func(out []byte, v *records.Vec, i int) []byte

var (
	mu       sync.Mutex
	registry = map[string]Type{}
)

// Register makes a source type available; provider packages call it from
// init.
func Register(sourceType string, t Type) {
	mu.Lock()
	defer mu.Unlock()
	registry[sourceType] = t
}

func lookup(sourceType string) (Type, bool) {
	mu.Lock()
	defer mu.Unlock()
	t, ok := registry[sourceType]
	return t, ok
}

// Open opens the configured source with its type's factory.
func Open(ctx context.Context, src *config.Source) (Source, error) {
	t, ok := lookup(src.Type)
	if !ok || t.Open == nil {
		return nil, fmt.Errorf("source type %q is not available in this build of sluice", src.Type)
	}
	return t.Open(ctx, src)
}

// OpenResources opens the resource manager of the configured source with
// its type's factory.
func OpenResources(ctx context.Context, src *config.Source) (ResourceManager, error) {
	t, ok := lookup(src.Type)
	if !ok || t.Resources == nil {
		return nil, fmt.Errorf("%s sources have no publication or slot to manage", src.Type)
	}
	return t.Resources(ctx, src)
}

// WebhookEvents lists, sorted, the event types a webhook endpoint of a
// source of the type must deliver for tables; none for a type that
// receives no webhooks (or is not in this build).
func WebhookEvents(sourceType string, tables []string) []string {
	t, ok := lookup(sourceType)
	if !ok || t.WebhookEvents == nil {
		return nil
	}
	return t.WebhookEvents(tables)
}

// TextForm returns how a non-null value of column c of a source of the
// type is written as text (Type.TextForm).
func TextForm(sourceType string, c records.Column) (TextEncoder, error) {
	t, ok := lookup(sourceType)
	if !ok || t.TextForm == nil {
		return nil, fmt.Errorf("%s sources have no text form of their values", sourceType)
	}
	return t.TextForm(c)
}

// Types lists the registered source types.
func Types() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Observed is what one introspection pass saw of a live source.
type Observed struct {
	// Source is the source's address, "postgres.prod".
	Source string `json:"source"`
	// ServerVersion is the server's version number (PostgreSQL's
	// server_version_num, e.g. 150004); 0 for non-database sources.
	ServerVersion int `json:"server_version,omitempty"`
	// WALPosition is pg_current_wal_lsn() at the time of the pass, as text.
	WALPosition string  `json:"wal_position,omitempty"`
	Tables      []Table `json:"tables"`
	// Publication is the source's publication, nil when it does not exist.
	Publication *Publication `json:"publication,omitempty"`
	// Slot is the source's replication slot, nil when it does not exist.
	Slot *Slot `json:"slot,omitempty"`
	// Checks are the CDC prerequisites, filled when the source has cdc
	// tables (or when asked by `sluice check`).
	Checks []Check `json:"checks,omitempty"`
	// Webhook is the registered webhook endpoint, nil when none matches.
	Webhook *WebhookEndpoint `json:"webhook,omitempty"`
	// Queries are the custom SQL tables' queries as the server describes
	// them (prepared, not run), by table label.
	Queries map[string]*QueryDescription `json:"queries,omitempty"`
}

// QueryDescription is a custom SQL table's query as the server describes
// it: its result columns, or why it cannot be read.
type QueryDescription struct {
	Columns []Column `json:"columns,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// QueryDescriber describes custom SQL tables' queries without running
// them (PostgreSQL: prepared).
type QueryDescriber interface {
	DescribeQuery(ctx context.Context, req ReadRequest) (*records.Schema, error)
}

// Table finds a table by schema and name (exact, case-sensitive), or nil.
func (o *Observed) Table(schema, name string) *Table {
	for i := range o.Tables {
		if o.Tables[i].Schema == schema && o.Tables[i].Name == name {
			return &o.Tables[i]
		}
	}
	return nil
}

// Table kinds.
const (
	KindTable            = "table"
	KindPartitionedTable = "partitioned table"
	KindView             = "view"
	KindMaterializedView = "materialized view"
	KindObject           = "object" // API objects (Stripe)
)

// Table is a live table (or view, or API object type) of a source.
type Table struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	// EstimatedRows comes from statistics (reltuples), never COUNT(*);
	// nil when the table was never analyzed.
	EstimatedRows *int64 `json:"estimated_rows"`
	// PrimaryKey lists the key's columns in key order; empty without one.
	PrimaryKey        []string           `json:"primary_key"`
	Columns           []Column           `json:"columns"`
	IncrementalFields []IncrementalField `json:"incremental_fields"`
	SyncTypes         []string           `json:"sync_types"`
	RecommendedSync   string             `json:"recommended_sync"`
	// RecommendedIncrementalField is the cursor recommended with an
	// incremental or append RecommendedSync.
	RecommendedIncrementalField string   `json:"recommended_incremental_field,omitempty"`
	Warnings                    []string `json:"warnings"`
	// ReplicaIdentity is "default", "nothing", "full" or "index".
	ReplicaIdentity string `json:"replica_identity,omitempty"`
	// SupportsWebhook reports whether changes to the object are pushed as
	// webhook events (Stripe objects).
	SupportsWebhook bool `json:"supports_webhook,omitempty"`
	// Pattern is the label of the tables block that plans this table
	// (inspect fills it from the configuration); "" when none does or a
	// table block declares it.
	Pattern string `json:"pattern,omitempty"`

	// SelectGrant, set when the user may not read the whole table, holds
	// the statements that would let it ("GRANT SELECT ON ... TO ...;").
	// The warnings say the same for people; the planner refuses a table
	// block that needs what the user cannot read.
	SelectGrant string `json:"-"`
	// ReadableColumns lists, when SelectGrant is set, the columns the
	// user may still read through column privileges.
	ReadableColumns []string `json:"-"`
	// Unpopulated marks a materialized view created WITH NO DATA and never
	// refreshed: reading it fails until REFRESH MATERIALIZED VIEW.
	Unpopulated bool `json:"-"`
}

// Column finds a column by exact name, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// Column is a live column.
type Column struct {
	Name string `json:"name"`
	// Type is the type as format_type() shows it ("numeric(12,2)").
	Type        string `json:"type"`
	Nullable    bool   `json:"nullable"`
	ParquetType string `json:"parquet_type"`
}

// IncrementalField is a column usable as a cursor.
type IncrementalField struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
	// Indexed reports whether an index leads on the column, which makes
	// `WHERE cursor > $1 ORDER BY cursor` cheap.
	Indexed bool `json:"indexed"`
}

// Publication is a PostgreSQL publication.
type Publication struct {
	Name string `json:"name"`
	// Tables lists the published tables as "schema.table", sorted.
	Tables                  []string `json:"tables"`
	AllTables               bool     `json:"all_tables,omitempty"`
	PublishViaPartitionRoot bool     `json:"publish_via_partition_root"`
	PublishInsert           bool     `json:"publish_insert"`
	PublishUpdate           bool     `json:"publish_update"`
	PublishDelete           bool     `json:"publish_delete"`
	PublishTruncate         bool     `json:"publish_truncate"`
	Owner                   string   `json:"owner,omitempty"`
}

// Slot is a replication slot.
type Slot struct {
	Name     string `json:"name"`
	Plugin   string `json:"plugin"`
	Database string `json:"database"`
	Active   bool   `json:"active"`
	// WALStatus is pg_replication_slots.wal_status: reserved, extended,
	// unreserved or lost.
	WALStatus         string `json:"wal_status"`
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn"`
	RestartLSN        string `json:"restart_lsn"`
	// LagBytes is pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn).
	LagBytes int64 `json:"lag_bytes"`
}

// Check is one CDC prerequisite (SPEC §7 `check -json`).
type Check struct {
	Check   string `json:"check"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Warning marks a check that does not block CDC but deserves attention;
	// a failed warning does not make the source invalid.
	Warning bool `json:"warning,omitempty"`
}

// WebhookEndpoint is a webhook registration at a push source.
type WebhookEndpoint struct {
	ID      string   `json:"id"`
	URL     string   `json:"url"`
	Enabled bool     `json:"enabled"`
	Events  []string `json:"events"`
}
