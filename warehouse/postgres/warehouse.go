package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pg"
	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// PositionsTable is the sluice-owned table, in the warehouse schema, that
// holds each table's committed sync position; a commit updates it in the
// transaction that writes the rows.
const PositionsTable = "_sluice_positions"

// SyncedAtColumn is the metadata column every row gets: when the commit
// that wrote it began.
const SyncedAtColumn = "_sluice_synced_at"

// metaTimeout bounds the catalog and position queries of opening a table
// and beginning a transaction, within the caller's context.
const metaTimeout = time.Minute

// Warehouse is a PostgreSQL database (one schema of it) as the runner's
// destination. It is safe for concurrent use; each transaction has a
// connection of its own.
type Warehouse struct {
	dialer      *pg.Dialer
	schema      string
	dropCascade bool

	mu   sync.Mutex
	conn *pgx.Conn // catalog and position reads

	// idle are connections of committed transactions, kept for the next
	// ones: a cdc table commits every second or so, and a connection
	// (through TLS or an SSH tunnel) costs more than the commit.
	idleMu sync.Mutex
	idle   []*pgx.Conn
}

// maxIdleConns is how many transaction connections are kept between
// transactions.
const maxIdleConns = 4

// txConn returns a connection for a transaction: an idle one, else a new
// one.
func (w *Warehouse) txConn(ctx context.Context) (*pgx.Conn, error) {
	w.idleMu.Lock()
	for len(w.idle) > 0 {
		c := w.idle[len(w.idle)-1]
		w.idle = w.idle[:len(w.idle)-1]
		if !c.IsClosed() && c.PgConn().TxStatus() == 'I' {
			w.idleMu.Unlock()
			return c, nil
		}
		c.Close(ctx)
	}
	w.idleMu.Unlock()
	return w.dialer.Connect(ctx)
}

// releaseConn keeps the connection of a committed transaction for the
// next one, or closes it when enough are kept.
func (w *Warehouse) releaseConn(c *pgx.Conn) {
	w.idleMu.Lock()
	if len(w.idle) < maxIdleConns && !c.IsClosed() && c.PgConn().TxStatus() == 'I' {
		w.idle = append(w.idle, c)
		w.idleMu.Unlock()
		return
	}
	w.idleMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Close(ctx)
}

var (
	_ warehouse.Warehouse = (*Warehouse)(nil)
	_ warehouse.Checker   = (*Warehouse)(nil)
)

// New returns the warehouse of a warehouse block without connecting (plan
// uses it for Check); it connects on first use. dir is the configuration's
// directory, which relative certificate paths are relative to.
func New(w *config.Warehouse, dir string) *Warehouse {
	schema := w.Schema
	if schema == "" {
		schema = config.DefaultSchema
	}
	return &Warehouse{dialer: pg.NewWarehouseDialer(w, dir), schema: schema, dropCascade: w.DropCascade}
}

// Open connects to the warehouse database and makes sure the schema and
// the positions table exist (creating them needs the CREATE privilege; the
// error says which GRANT is missing).
func Open(ctx context.Context, w *config.Warehouse, dir string) (*Warehouse, error) {
	wh := New(w, dir)
	if err := wh.setup(ctx); err != nil {
		wh.Close()
		return nil, err
	}
	return wh, nil
}

// Close closes the warehouse's connections.
func (w *Warehouse) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if w.conn != nil {
		err = w.conn.Close(ctx)
		w.conn = nil
	}
	w.idleMu.Lock()
	for _, c := range w.idle {
		c.Close(ctx)
	}
	w.idle = nil
	w.idleMu.Unlock()
	return errors.Join(err, w.dialer.Close())
}

// Schema is the schema the warehouse tables live in.
// KeepsExactValues reports that the warehouse's columns keep the source's
// types, so it writes the exact text form of every value the Parquet type
// cannot hold (warehouse.ExactKeeper).
func (w *Warehouse) KeepsExactValues() bool { return true }

func (w *Warehouse) Schema() string { return w.schema }

func (w *Warehouse) positionsIdent() string {
	return pgx.Identifier{w.schema, PositionsTable}.Sanitize()
}

func (w *Warehouse) setup(ctx context.Context) error {
	return w.withConn(ctx, func(conn *pgx.Conn) error {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, w.schema).Scan(&exists); err != nil {
			return fmt.Errorf("warehouse: looking up schema %q: %w", w.schema, err)
		}
		if !exists {
			if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{w.schema}.Sanitize()); err != nil {
				return w.privilegeError(ctx, conn, fmt.Errorf("warehouse: creating schema %q: %w", w.schema, err))
			}
		}
		// IF NOT EXISTS still fails when two sessions create the table at
		// once (a unique violation in the catalog): the other one won.
		_, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+w.positionsIdent()+` (
	table_name   text PRIMARY KEY,
	position     jsonb NOT NULL,
	sync         text NOT NULL,
	mode         text NOT NULL,
	rows         bigint NOT NULL,
	committed_at timestamptz NOT NULL,
	schema       jsonb
)`)
		var pe *pgconn.PgError
		if err != nil && !(errors.As(err, &pe) && pe.Code == "23505") {
			return w.privilegeError(ctx, conn, fmt.Errorf("warehouse: creating %s.%s: %w", w.schema, PositionsTable, err))
		}
		// The table's schema (records types, key) was added later: a
		// positions table of an earlier version gets the column. Looked
		// up first, so that a user who may write to the table but does
		// not own it is not stopped by ALTER's ownership check.
		var hasSchema bool
		err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'schema' AND NOT attisdropped)`,
			w.positionsIdent()).Scan(&hasSchema)
		if err != nil {
			return fmt.Errorf("warehouse: reading %s.%s: %w", w.schema, PositionsTable, err)
		}
		if !hasSchema {
			if _, err := conn.Exec(ctx, `ALTER TABLE `+w.positionsIdent()+` ADD COLUMN IF NOT EXISTS schema jsonb`); err != nil {
				return fmt.Errorf("warehouse: adding column schema to %s.%s: %w", w.schema, PositionsTable, err)
			}
		}
		return nil
	})
}

// withConn runs fn on the catalog connection, reconnecting when it broke.
func (w *Warehouse) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil || w.conn.IsClosed() {
		conn, err := w.dialer.Connect(ctx)
		if err != nil {
			return fmt.Errorf("connecting to the warehouse: %w", err)
		}
		// Lookup and Scan read values in the text forms the decoders
		// read.
		if _, err := conn.PgConn().Exec(ctx, codec.SessionSettings).ReadAll(); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("setting up the warehouse connection: %w", err)
		}
		w.conn = conn
	}
	return fn(w.conn)
}

// Check verifies that the warehouse user may create tables in the schema
// (or create the schema); the error says which statement to run when not.
func (w *Warehouse) Check(ctx context.Context) error {
	return w.withConn(ctx, func(conn *pgx.Conn) error {
		return w.checkPrivileges(ctx, conn)
	})
}

func (w *Warehouse) checkPrivileges(ctx context.Context, conn *pgx.Conn) error {
	var (
		user, db                                 string
		schemaExists, mayCreate, mayCreateSchema bool
	)
	err := conn.QueryRow(ctx, `
SELECT current_user, current_database(), n.oid IS NOT NULL,
       coalesce(has_schema_privilege(n.oid, 'CREATE') AND has_schema_privilege(n.oid, 'USAGE'), false),
       has_database_privilege(current_database(), 'CREATE')
FROM (SELECT) AS one LEFT JOIN pg_namespace n ON n.nspname = $1`, w.schema).Scan(&user, &db, &schemaExists, &mayCreate, &mayCreateSchema)
	if err != nil {
		return fmt.Errorf("warehouse: checking privileges on schema %q: %w", w.schema, err)
	}
	schemaIdent, userIdent := pgx.Identifier{w.schema}.Sanitize(), pgx.Identifier{user}.Sanitize()
	switch {
	case !schemaExists && !mayCreateSchema:
		return fmt.Errorf("warehouse: schema %s does not exist in database %q and user %s may not create it; as an administrator run: CREATE SCHEMA %s AUTHORIZATION %s;",
			schemaIdent, db, userIdent, schemaIdent, userIdent)
	case schemaExists && !mayCreate:
		return fmt.Errorf("warehouse: user %s may not create tables in schema %s; as the schema's owner run: GRANT USAGE, CREATE ON SCHEMA %s TO %s;",
			userIdent, schemaIdent, schemaIdent, userIdent)
	}
	return nil
}

// privilegeError explains a failed CREATE with the GRANT to run, when a
// missing privilege is why.
func (w *Warehouse) privilegeError(ctx context.Context, conn *pgx.Conn, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		if cerr := w.checkPrivileges(ctx, conn); cerr != nil {
			return cerr
		}
	}
	return err
}

// Table returns the warehouse table of a runner table name (TableName
// makes it a PostgreSQL identifier). Its committed position is read now.
func (w *Warehouse) Table(ctx context.Context, name string) (warehouse.Table, error) {
	t, err := w.table(ctx, name)
	if err != nil {
		return nil, classify(err)
	}
	return t, nil
}

func (w *Warehouse) table(ctx context.Context, name string) (*Table, error) {
	t := &Table{w: w, name: TableName(name)}
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	err := w.withConn(ctx, func(conn *pgx.Conn) error {
		var raw, schema []byte
		err := conn.QueryRow(ctx, `SELECT position, schema FROM `+w.positionsIdent()+` WHERE table_name = $1`, t.name).Scan(&raw, &schema)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &t.pos); err != nil {
			return fmt.Errorf("decoding the position: %w", err)
		}
		if t.schema, err = decodeSchema(schema); err != nil {
			return err
		}
		t.committed = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("warehouse table %s.%s: reading its position: %w", w.schema, t.name, err)
	}
	return t, nil
}

// Table is one warehouse table.
type Table struct {
	w    *Warehouse
	name string // the PostgreSQL identifier

	mu        sync.Mutex
	pos       records.Position
	committed bool
	// schema is the committed schema: the columns with the types the
	// batches carried (and _sluice_synced_at), and the key. Nil for a
	// table never committed, or committed before sluice recorded it.
	schema *records.Schema
}

var (
	_ warehouse.CDCTable = (*Table)(nil)
	_ warehouse.Scanner  = (*Table)(nil)
)

// Name is the table's PostgreSQL name (in the warehouse's schema).
func (t *Table) Name() string { return t.name }

// Position is the position committed when the table was opened or by its
// last commit through this value.
func (t *Table) Position() (records.Position, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos, t.committed
}

// Schema is the table's committed schema (see Table.schema), nil when
// none is recorded.
func (t *Table) Schema() *records.Schema {
	t.mu.Lock()
	defer t.mu.Unlock()
	return cloneSchema(t.schema)
}

// decodeSchema reads a schema recorded with a position; NULL is none.
func decodeSchema(raw []byte) (*records.Schema, error) {
	if raw == nil {
		return nil, nil
	}
	var s records.Schema
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("decoding the recorded schema: %w", err)
	}
	return &s, nil
}

func cloneSchema(s *records.Schema) *records.Schema {
	if s == nil {
		return nil
	}
	return &records.Schema{Columns: slices.Clone(s.Columns), PrimaryKey: slices.Clone(s.PrimaryKey)}
}

func (t *Table) ident() string { return pgx.Identifier{t.w.schema, t.name}.Sanitize() }

func (t *Table) qualified() string { return t.w.schema + "." + t.name }

// quoteList quotes each name and joins them with commas; prefix (such as
// "s.") is put before each.
func quoteList(names []string, prefix string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(prefix)
		b.WriteString(pgx.Identifier{n}.Sanitize())
	}
	return b.String()
}
