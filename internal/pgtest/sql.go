package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// slotDropTimeout bounds how long DropDatabase keeps terminating walsenders
// that reconnect to the database's replication slots.
const slotDropTimeout = 30 * time.Second

// Exec runs sql in database dbname as the superuser. It uses the simple
// query protocol, so sql may hold several statements.
func (c *Cluster) Exec(ctx context.Context, dbname, sql string) error {
	if err := execURL(ctx, c.URL(dbname), sql); err != nil {
		return fmt.Errorf("pgtest: database %q: %w", dbname, err)
	}
	return nil
}

// CreateDatabase creates database name and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	return createDatabase(ctx, c.URL("postgres"), name)
}

// DropDatabase drops database name and everything that would keep it: its
// replication slots go first (their walsenders terminated), then DROP
// DATABASE ... WITH (FORCE) disconnects the remaining sessions. Dropping a
// database that does not exist is not an error.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	return dropDatabase(ctx, c.URL("postgres"), name)
}

// Reload makes the server re-read postgresql.conf, postgresql.auto.conf
// (ALTER SYSTEM SET) and pg_hba.conf, and returns once it has: new
// connections see the new configuration.
func (c *Cluster) Reload(ctx context.Context) error {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return errors.New("pgtest: reload: cluster is stopped")
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: reload: %w", err)
	}
	defer conn.Close(context.Background())
	// pg_reload_conf only signals the postmaster. The postmaster re-reads
	// the files and then signals every backend, this one included, so once
	// this session's load time moves the reload is complete.
	var before time.Time
	if err := conn.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&before); err != nil {
		return fmt.Errorf("pgtest: reload: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("pgtest: reload: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		var now time.Time
		if err := conn.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&now); err != nil {
			return fmt.Errorf("pgtest: reload: waiting for the new configuration: %w", err)
		}
		if now.After(before) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: reload: configuration not reloaded: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// execURL runs sql (simple protocol, several statements allowed) through a
// connection of its own.
func execURL(ctx context.Context, connURL, sql string) error {
	conn, err := pgconn.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql).ReadAll()
	return err
}

// createDatabase creates database name on the server of adminURL (a
// superuser's URL) and returns adminURL with its database replaced by name.
func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	if name == "" {
		return "", errors.New("pgtest: create database: empty name")
	}
	dbURL, err := withDatabase(adminURL, name)
	if err != nil {
		return "", err
	}
	if err := execURL(ctx, adminURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %q: %w", name, err)
	}
	return dbURL, nil
}

// dropDatabase drops database name on the server of adminURL; see
// Cluster.DropDatabase.
func dropDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("pgtest: drop database %q: %w", name, err)
	}
	defer conn.Close(context.Background())
	if err := dropSlots(ctx, conn, name); err != nil {
		return fmt.Errorf("pgtest: drop database %q: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %q: %w", name, err)
	}
	return nil
}

// dropSlots drops the replication slots of database name, which DROP
// DATABASE refuses to drop itself. A slot in use cannot be dropped, so its
// walsender is terminated first; it releases the slot a moment later, and a
// client may reconnect meanwhile, hence the loop.
func dropSlots(ctx context.Context, conn *pgx.Conn, name string) error {
	deadline := time.Now().Add(slotDropTimeout)
	for {
		rows, err := conn.Query(ctx, "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = $1", name)
		if err != nil {
			return fmt.Errorf("list replication slots: %w", err)
		}
		type slot struct {
			name string
			pid  *int32
		}
		slots, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (slot, error) {
			var s slot
			err := r.Scan(&s.name, &s.pid)
			return s, err
		})
		if err != nil {
			return fmt.Errorf("list replication slots: %w", err)
		}
		if len(slots) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			names := make([]string, len(slots))
			for i, s := range slots {
				names[i] = s.name
			}
			return fmt.Errorf("replication slots still in use after %s: %s", slotDropTimeout, strings.Join(names, ", "))
		}
		waiting := false // a slot is still held by a walsender
		for _, s := range slots {
			if s.pid != nil {
				waiting = true
				if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", *s.pid); err != nil {
					return fmt.Errorf("terminate walsender of slot %q: %w", s.name, err)
				}
				continue
			}
			_, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", s.name)
			var pgErr *pgconn.PgError
			switch {
			case err == nil:
			case errors.As(err, &pgErr) && pgErr.Code == "55006": // object_in_use: taken again
				waiting = true
			case errors.As(err, &pgErr) && pgErr.Code == "42704": // undefined_object: dropped meanwhile
			default:
				return fmt.Errorf("drop replication slot %q: %w", s.name, err)
			}
		}
		if !waiting {
			continue // list again: a slot may have been created meanwhile
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// withDatabase returns the postgres:// URL u with its database replaced by
// name.
func withDatabase(u, name string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "postgres" && parsed.Scheme != "postgresql") {
		// Not the error itself: it would quote the URL and its password.
		return "", errors.New("pgtest: server URL is not a postgres:// URL")
	}
	parsed.Path = "/" + name
	parsed.RawPath = ""
	return parsed.String(), nil
}
