package pgstate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/state"
)

// Advisory lock keys of the postgres backend: "sluice" in ASCII, then a
// number per purpose. Another application taking these keys in the same
// database would contend with sluice.
const (
	// stateLockKey is the state lock, held by a session for an operation.
	stateLockKey int64 = 0x736c756963650001
	// writeLockKey serializes writers inside their write transaction, so
	// that the check of the latest version and the insert of the next are
	// one step even for writers that do not hold the state lock.
	writeLockKey int64 = 0x736c756963650002
	// setupLockKey serializes the creation of the schema and tables, which
	// CREATE ... IF NOT EXISTS alone does not make safe to run concurrently.
	setupLockKey int64 = 0x736c756963650003
)

// The tables of the postgres backend, quoted once here.
var (
	pgSchema        = pgx.Identifier{"sluice"}.Sanitize()
	pgVersionsTable = pgx.Identifier{"sluice", "state_versions"}.Sanitize()
	pgLockTable     = pgx.Identifier{"sluice", "state_lock"}.Sanitize()
	pgKeysTable     = pgx.Identifier{"sluice", "keys"}.Sanitize()
	pgStatusTable   = pgx.Identifier{"sluice", "status"}.Sanitize()
	pgVersionsIndex = pgx.Identifier{"state_versions_serial"}.Sanitize()
	pgRunnersTable  = pgx.Identifier{"sluice", "runners"}.Sanitize()
)

// fingerprintKeyName is the row of sluice.keys holding the fingerprint key.
const fingerprintKeyName = "fingerprint"

// Postgres is the postgres backend: every version of the state in
// sluice.state_versions, the lock as a session advisory lock described by
// a row of sluice.state_lock, the fingerprint key in sluice.keys. See the
// package documentation.
type Postgres struct {
	cfg *pgx.ConnConfig
	url string

	mu   sync.Mutex // guards conn and its use
	conn *pgx.Conn

	locksMu sync.Mutex
	held    []*pgLock
}

// OpenPostgres connects to the database at url and creates the schema and
// tables when they are missing.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// The error of a URL that does not parse may quote it, password
		// and all; only the reason is kept.
		var pce *pgconn.ParseConfigError
		if errors.As(err, &pce) {
			if inner := errors.Unwrap(pce); inner != nil {
				return nil, fmt.Errorf("state backend postgres: the url is not a valid PostgreSQL connection string: %w", inner)
			}
		}
		return nil, errors.New("state backend postgres: the url is not a valid PostgreSQL connection string")
	}
	b := &Postgres{cfg: cfg, url: url}
	b.mu.Lock()
	defer b.mu.Unlock()
	conn, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	if err := setupSchema(ctx, conn); err != nil {
		conn.Close(context.Background())
		b.conn = nil
		return nil, err
	}
	return b, nil
}

func (b *Postgres) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := b.cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "sluice state"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state backend postgres: connect: %w", err)
	}
	return conn, nil
}

// session returns the backend's connection, reconnecting after a lost one
// so that a long-running process survives a database restart. b.mu must
// be held.
func (b *Postgres) session(ctx context.Context) (*pgx.Conn, error) {
	if b.conn != nil && !b.conn.IsClosed() {
		return b.conn, nil
	}
	conn, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	b.conn = conn
	return conn, nil
}

// withConn runs fn on the session holding this backend's state lock, when
// it holds one, so that a lock broken by force-unlock (which terminates
// that session) also stops this process's writes; on the shared session
// otherwise.
func (b *Postgres) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	b.locksMu.Lock()
	var l *pgLock
	if n := len(b.held); n > 0 {
		l = b.held[n-1]
	}
	b.locksMu.Unlock()
	if l != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		err := fn(l.conn)
		if l.conn.IsClosed() {
			return fmt.Errorf("the session holding state lock %s was closed (terminated by force-unlock?); another process may hold the lock now, so nothing was done: %w", l.info.ID, err)
		}
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	conn, err := b.session(ctx)
	if err != nil {
		return err
	}
	return fn(conn)
}

func setupSchema(ctx context.Context, conn *pgx.Conn) error {
	// Usually everything exists, and a role without CREATE privileges can
	// then use a schema an administrator prepared.
	var ready bool
	err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL AND to_regclass($4) IS NOT NULL AND to_regclass($5) IS NOT NULL`,
		pgVersionsTable, pgLockTable, pgKeysTable, pgStatusTable, pgRunnersTable).Scan(&ready)
	if err != nil {
		return fmt.Errorf("state backend postgres: look for the state tables: %w", err)
	}
	if ready {
		return nil
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, setupLockKey); err != nil {
			return err
		}
		for _, ddl := range []string{
			`CREATE SCHEMA IF NOT EXISTS ` + pgSchema,
			`CREATE TABLE IF NOT EXISTS ` + pgVersionsTable + ` (
				lineage    text        NOT NULL,
				serial     bigint      NOT NULL,
				state      jsonb       NOT NULL,
				written_at timestamptz NOT NULL DEFAULT now(),
				written_by text        NOT NULL,
				PRIMARY KEY (lineage, serial))`,
			`CREATE INDEX IF NOT EXISTS ` + pgVersionsIndex + ` ON ` + pgVersionsTable + ` (serial DESC)`,
			`CREATE TABLE IF NOT EXISTS ` + pgLockTable + ` (
				id         text        PRIMARY KEY,
				info       jsonb       NOT NULL,
				created_at timestamptz NOT NULL DEFAULT now())`,
			`CREATE TABLE IF NOT EXISTS ` + pgKeysTable + ` (
				name text  PRIMARY KEY,
				key  bytea NOT NULL)`,
			`CREATE TABLE IF NOT EXISTS ` + pgStatusTable + ` (
				kind       text        NOT NULL,
				address    text        NOT NULL,
				record     jsonb       NOT NULL,
				updated_at timestamptz NOT NULL DEFAULT now(),
				PRIMARY KEY (kind, address))`,
			// The runners of a fleet (claims.go), by process.
			`CREATE TABLE IF NOT EXISTS ` + pgRunnersTable + ` (
				instance     text        PRIMARY KEY,
				id           text        NOT NULL,
				record       jsonb       NOT NULL,
				heartbeat_at timestamptz NOT NULL DEFAULT now(),
				stopped_at   timestamptz)`,
		} {
			if _, err := tx.Exec(ctx, ddl); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state backend postgres: create schema sluice and its tables (the role needs CREATE on the database, or an administrator creates them once): %w", err)
	}
	return nil
}

// Read returns the latest version, or New() when none was written.
func (b *Postgres) Read(ctx context.Context) (*state.State, error) {
	var doc []byte
	var serial int64
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT serial, state FROM `+pgVersionsTable+` ORDER BY serial DESC, written_at DESC LIMIT 1`).Scan(&serial, &doc)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return state.New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	st, err := state.Decode(doc, fmt.Sprintf("state version %d in %s", serial, pgVersionsTable))
	if err != nil {
		return nil, err
	}
	if st.Serial != serial {
		return nil, fmt.Errorf("%w: state version %d in %s says it is serial %d", state.ErrCorrupt, serial, pgVersionsTable, st.Serial)
	}
	return st, nil
}

// LatestVersion returns the lineage and serial of the latest version
// without reading it (state.VersionReader): a fleet's runners look every
// second whether apply wrote a new one.
func (b *Postgres) LatestVersion(ctx context.Context) (lineage string, serial int64, err error) {
	err = b.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT lineage, serial FROM `+pgVersionsTable+` ORDER BY serial DESC, written_at DESC LIMIT 1`).Scan(&lineage, &serial)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("read the state's version: %w", err)
	}
	return lineage, serial, nil
}

// Write inserts st as version st.Serial+1, keeping every earlier version.
func (b *Postgres) Write(ctx context.Context, st *state.State) error {
	if st == nil || st.Lineage == "" {
		return errors.New("write state: the state has no lineage; start from state.New() or Read")
	}
	next := *st
	next.FormatVersion = state.FormatVersion
	next.Serial = st.Serial + 1
	if next.Sources == nil {
		next.Sources = map[string]*state.Source{}
	}
	doc, err := state.Encode(&next)
	if err != nil {
		return err
	}
	err = b.withConn(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLockKey); err != nil {
				return err
			}
			var lineage string
			var serial int64
			err := tx.QueryRow(ctx, `SELECT lineage, serial FROM `+pgVersionsTable+` ORDER BY serial DESC, written_at DESC LIMIT 1`).Scan(&lineage, &serial)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return err
			default:
				if err := state.CheckSuccessor(lineage, serial, st); err != nil {
					return err
				}
			}
			_, err = tx.Exec(ctx, `INSERT INTO `+pgVersionsTable+` (lineage, serial, state, written_by) VALUES ($1, $2, $3, $4)`,
				next.Lineage, next.Serial, string(doc), state.WhoAmI())
			return err
		})
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("write state: %w: version %d was written by another process", state.ErrStateChanged, next.Serial)
	}
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	st.FormatVersion, st.Serial, st.Sources = next.FormatVersion, next.Serial, next.Sources
	return nil
}

// Versions returns the serials of the stored versions, oldest first.
func (b *Postgres) Versions(ctx context.Context) ([]int64, error) {
	var out []int64
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT serial FROM `+pgVersionsTable+` ORDER BY serial`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list state versions: %w", err)
	}
	return out, nil
}

// Lock takes the session advisory lock on a connection of its own, kept
// open until unlock, and records info in sluice.state_lock so that others
// can name the holder.
func (b *Postgres) Lock(ctx context.Context, info state.LockInfo, timeout time.Duration) (func() error, error) {
	info = info.Complete()
	conn, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("lock state: %w", err)
	}
	info.BackendPID = pid
	err = state.RetryLock(ctx, timeout, func() error {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, stateLockKey).Scan(&ok); err != nil {
			return fmt.Errorf("lock state: %w", err)
		}
		if !ok {
			return &state.LockedError{Holder: state.WaitForHolder(func() *state.LockInfo { return lockHolder(ctx, conn) })}
		}
		return nil
	})
	if err == nil {
		// Rows left by holders that died, whose advisory locks died with
		// their sessions, are stale now that this session holds the lock.
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `DELETE FROM `+pgLockTable); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+pgLockTable+` (id, info) VALUES ($1, $2)`, info.ID, info)
			return err
		})
		if err != nil {
			err = fmt.Errorf("lock state: record the holder: %w", err)
		}
	}
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	l := &pgLock{conn: conn, info: info}
	b.locksMu.Lock()
	b.held = append(b.held, l)
	b.locksMu.Unlock()
	return func() error {
		b.locksMu.Lock()
		for i, h := range b.held {
			if h == l {
				b.held = append(b.held[:i], b.held[i+1:]...)
				break
			}
		}
		b.locksMu.Unlock()
		return l.unlock()
	}, nil
}

// lockHolder reads the recorded holder, nil when there is none yet.
func lockHolder(ctx context.Context, conn *pgx.Conn) *state.LockInfo {
	var info state.LockInfo
	err := conn.QueryRow(ctx, `SELECT info FROM `+pgLockTable+` ORDER BY created_at DESC LIMIT 1`).Scan(&info)
	if err != nil || info.ID == "" {
		return nil
	}
	return &info
}

type pgLock struct {
	mu   sync.Mutex // guards conn
	conn *pgx.Conn
	info state.LockInfo

	done bool
	err  error
}

func (l *pgLock) unlock() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return l.err
	}
	l.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer l.conn.Close(ctx)
	if l.conn.IsClosed() {
		l.err = fmt.Errorf("unlock state: the session holding lock %s was closed before the release (terminated by force-unlock?), so the lock was already gone", l.info.ID)
		return l.err
	}
	if _, err := l.conn.Exec(ctx, `DELETE FROM `+pgLockTable+` WHERE id = $1`, l.info.ID); err != nil {
		// Closing the session releases the advisory lock regardless; the
		// row left behind is cleared by the next holder.
		l.err = fmt.Errorf("unlock state: %w", err)
		return l.err
	}
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, stateLockKey); err != nil {
		l.err = fmt.Errorf("unlock state: %w", err)
	}
	return l.err
}

// ForceUnlock deletes lock id's row and, when the session that holds the
// advisory lock is the one recorded for id, terminates it
// (pg_terminate_backend), which releases the lock.
func (b *Postgres) ForceUnlock(ctx context.Context, id string) error {
	// Always on the shared session: the lock's own session may be the one
	// to terminate.
	b.mu.Lock()
	defer b.mu.Unlock()
	conn, err := b.session(ctx)
	if err != nil {
		return err
	}
	return forceUnlock(ctx, conn, id)
}

func forceUnlock(ctx context.Context, conn *pgx.Conn, id string) error {
	var info state.LockInfo
	err := conn.QueryRow(ctx, `SELECT info FROM `+pgLockTable+` WHERE id = $1`, id).Scan(&info)
	if errors.Is(err, pgx.ErrNoRows) {
		if cur := lockHolder(ctx, conn); cur != nil {
			return fmt.Errorf("%w: the state lock is %s, not %q", state.ErrNoLock, cur, id)
		}
		return fmt.Errorf("%w: the state is not locked", state.ErrNoLock)
	}
	if err != nil {
		return fmt.Errorf("force-unlock: read the lock: %w", err)
	}
	holderPID, err := advisoryHolder(ctx, conn)
	if err != nil {
		return err
	}
	if holderPID != 0 && holderPID == info.BackendPID {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, holderPID).Scan(&ok); err != nil {
			return fmt.Errorf("force-unlock: terminate the session holding the lock (backend PID %d; the role needs to be its owner or a member of pg_signal_backend): %w", holderPID, err)
		}
		if err := waitReleased(ctx, conn, holderPID); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM `+pgLockTable+` WHERE id = $1`, id); err != nil {
		return fmt.Errorf("force-unlock: %w", err)
	}
	return nil
}

// advisoryHolder returns the backend PID holding the state lock, 0 when
// none does. pg_locks shows a bigint key's high half as classid and its
// low half as objid, with objsubid 1.
func advisoryHolder(ctx context.Context, conn *pgx.Conn) (int, error) {
	var pid int
	err := conn.QueryRow(ctx, `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid::bigint = $1 AND objid::bigint = $2`,
		stateLockKey>>32, stateLockKey&0xffffffff).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("force-unlock: find the session holding the lock: %w", err)
	}
	return pid, nil
}

// waitReleased waits for a terminated backend to let go of the lock:
// pg_terminate_backend only sends the signal.
func waitReleased(ctx context.Context, conn *pgx.Conn, pid int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, err := advisoryHolder(ctx, conn)
		if err != nil || cur != pid {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("force-unlock: backend PID %d was told to terminate but still holds the state lock after 10s", pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FingerprintKey returns the key in sluice.keys, creating it on first use.
func (b *Postgres) FingerprintKey(ctx context.Context) ([]byte, error) {
	var key []byte
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, `INSERT INTO `+pgKeysTable+` (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, fingerprintKeyName, state.NewKey()); err != nil {
			return err
		}
		return conn.QueryRow(ctx, `SELECT key FROM `+pgKeysTable+` WHERE name = $1`, fingerprintKeyName).Scan(&key)
	})
	if err != nil {
		return nil, fmt.Errorf("read fingerprint key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("fingerprint key in %s is damaged (%d bytes, want 32); delete its row to start a new key (every sensitive setting will then show as changed in the next plan)", pgKeysTable, len(key))
	}
	return key, nil
}

// Close releases the locks this backend still holds and disconnects.
func (b *Postgres) Close() error {
	b.locksMu.Lock()
	locks := b.held
	b.held = nil
	b.locksMu.Unlock()
	var errs []error
	for _, l := range locks {
		errs = append(errs, l.unlock())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		errs = append(errs, b.conn.Close(context.Background()))
		b.conn = nil
	}
	return errors.Join(errs...)
}
