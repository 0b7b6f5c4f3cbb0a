package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
)

// Resources manages a source's publication and replication slot.
type Resources struct {
	conn *pgx.Conn
	src  *config.Source
}

var _ providers.ResourceManager = (*Resources)(nil)

// OpenResources connects to the source to manage its CDC resources.
func OpenResources(ctx context.Context, src *config.Source) (*Resources, error) {
	conn, err := Connect(ctx, src)
	if err != nil {
		return nil, err
	}
	return &Resources{conn: conn, src: src}, nil
}

// Close closes the connection.
func (r *Resources) Close() error { return r.conn.Close(context.Background()) }

// tableIdent turns a recorded "schema.table" into a quoted identifier.
func tableIdent(qualified string) (string, error) {
	schema, table, err := config.ParseTableName(qualified)
	if err != nil {
		return "", err
	}
	if schema == "" {
		return pgx.Identifier{table}.Sanitize(), nil
	}
	return pgx.Identifier{schema, table}.Sanitize(), nil
}

// PublicationTables lists the tables the publication holds by name (its
// own relations, not the partitions it reaches through them).
func (r *Resources) PublicationTables(ctx context.Context, name string) ([]string, bool, error) {
	var exists bool
	if err := r.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, name).Scan(&exists); err != nil {
		return nil, false, fmt.Errorf("reading publication %s: %w", name, err)
	}
	if !exists {
		return nil, false, nil
	}
	rows, err := r.conn.Query(ctx, `
		SELECT n.nspname, c.relname
		FROM pg_publication p
		JOIN pg_publication_rel pr ON pr.prpubid = p.oid
		JOIN pg_class c ON c.oid = pr.prrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = $1`, name)
	if err != nil {
		return nil, true, fmt.Errorf("reading the tables of publication %s: %w", name, err)
	}
	var out []string
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table); err != nil {
			return nil, true, err
		}
		out = append(out, config.QualifiedName(schema, table))
	}
	if err := rows.Err(); err != nil {
		return nil, true, err
	}
	sort.Strings(out)
	return out, true, nil
}

// EnsurePublication creates the publication, or alters it to hold exactly
// tables, in one transaction. publish_via_partition_root makes changes to
// partitions arrive as changes of the partitioned table sluice syncs.
func (r *Resources) EnsurePublication(ctx context.Context, name string, tables []string) error {
	current, exists, err := r.PublicationTables(ctx, name)
	if err != nil {
		return err
	}
	pub := pgx.Identifier{name}.Sanitize()
	idents := func(list []string) (string, error) {
		var out []string
		for _, t := range list {
			id, err := tableIdent(t)
			if err != nil {
				return "", err
			}
			out = append(out, id)
		}
		return strings.Join(out, ", "), nil
	}
	var stmts []string
	if !exists {
		list, err := idents(tables)
		if err != nil {
			return err
		}
		stmts = append(stmts, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true)", pub, list))
	} else {
		add, drop := difference(tables, current), difference(current, tables)
		if len(add) > 0 {
			list, err := idents(add)
			if err != nil {
				return err
			}
			stmts = append(stmts, fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", pub, list))
		}
		if len(drop) > 0 {
			list, err := idents(drop)
			if err != nil {
				return err
			}
			stmts = append(stmts, fmt.Sprintf("ALTER PUBLICATION %s DROP TABLE %s", pub, list))
		}
		stmts = append(stmts, fmt.Sprintf("ALTER PUBLICATION %s SET (publish_via_partition_root = true)", pub))
	}
	err = pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publication %s: %w%s", name, err, privilegeHint(err, r.src))
	}
	return nil
}

func privilegeHint(err error, src *config.Source) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Sprintf(". The user needs CREATE on the database and ownership of the tables to manage a publication; run `sluice check %s`, or set cdc { management = \"self_managed\" } and have a DBA create the publication", src.Address())
	}
	return ""
}

// DropPublication drops the publication if it exists.
func (r *Resources) DropPublication(ctx context.Context, name string) error {
	if _, err := r.conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("dropping publication %s: %w", name, err)
	}
	return nil
}

// CreateSlot creates a pgoutput slot, or adopts an existing one: apply may
// be re-run after it created the slot but failed to record it.
func (r *Resources) CreateSlot(ctx context.Context, name string) (string, error) {
	var plugin, lsn string
	var database *string
	err := r.conn.QueryRow(ctx, `SELECT plugin, coalesce(confirmed_flush_lsn, restart_lsn)::text, database
		FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&plugin, &lsn, &database)
	switch {
	case err == nil:
		var current string
		if err := r.conn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
			return "", err
		}
		if plugin != "pgoutput" || database == nil || *database != current {
			db := "(physical)"
			if database != nil {
				db = *database
			}
			return "", fmt.Errorf("replication slot %s already exists with plugin %q in database %s; sluice needs a pgoutput slot in %s: choose another cdc { slot = ... } or drop it", name, plugin, db, current)
		}
		return lsn, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("reading replication slot %s: %w", name, err)
	}
	if err := r.conn.QueryRow(ctx, `SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, name).Scan(&lsn); err != nil {
		return "", fmt.Errorf("creating replication slot %s: %w%s", name, err, slotHint(err, r.src))
	}
	return lsn, nil
}

func slotHint(err error, src *config.Source) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42501":
			return fmt.Sprintf(". The user needs the REPLICATION attribute (ALTER ROLE ... REPLICATION; on RDS: GRANT rds_replication TO ...); run `sluice check %s`", src.Address())
		case "53400":
			return fmt.Sprintf(". Raise max_replication_slots or drop an unused slot; run `sluice check %s`", src.Address())
		case "55000":
			return fmt.Sprintf(". Set wal_level = logical and restart the server; run `sluice check %s`", src.Address())
		}
	}
	return ""
}

// DropSlot drops the slot if it exists. A slot in use is not dropped: the
// process streaming from it (a running `sluice run`?) must stop first.
func (r *Resources) DropSlot(ctx context.Context, name string) error {
	var active bool
	var pid *int32
	err := r.conn.QueryRow(ctx, `SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&active, &pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading replication slot %s: %w", name, err)
	}
	if active {
		p := int32(0)
		if pid != nil {
			p = *pid
		}
		return fmt.Errorf("replication slot %s is in use by server process %d; stop the process streaming from it (sluice run?) and apply again", name, p)
	}
	if _, err := r.conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, name); err != nil {
		return fmt.Errorf("dropping replication slot %s: %w", name, err)
	}
	return nil
}

// difference returns the elements of a not in b.
func difference(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

// openResources is OpenResources for the registry (a nil *Resources
// must not become a non-nil interface).
func openResources(ctx context.Context, src *config.Source) (providers.ResourceManager, error) {
	r, err := OpenResources(ctx, src)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// The capabilities the provider implements.
var (
	_ providers.Source               = (*Provider)(nil)
	_ providers.Checker              = (*Provider)(nil)
	_ providers.SlotWatcher          = (*Provider)(nil)
	_ providers.WALPositioner        = (*Provider)(nil)
	_ providers.TemporarySnapshotter = (*Provider)(nil)
	_ providers.ChangeStream         = (*Provider)(nil)
	_ providers.SnapshotReader       = (*Provider)(nil)
	_ providers.CursorReader         = (*Provider)(nil)
	_ providers.CursorMarker         = (*Provider)(nil)
	_ providers.ResourceManager      = (*Resources)(nil)
)
