package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/state"
)

// runnerLockKey is the postgres backend's runner lock (see the keys in
// postgres.go).
const runnerLockKey int64 = 0x736c756963650004

// runnerStatusKind and runnerStatusAddr are the row of sluice.status that
// describes the holder of the postgres runner lock.
const (
	runnerStatusKind = "runner"
	runnerStatusAddr = "lock"
)

// LockRunner takes the runner's session advisory lock on a connection of
// its own, kept open while the runner runs, and describes the holder in
// sluice.status.
func (b *Postgres) LockRunner(ctx context.Context, info state.RunnerInfo) (state.RunnerLock, error) {
	l := &pgRunnerLock{b: b, info: info}
	if err := l.lock(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (b *Postgres) runnerLockName() string {
	return fmt.Sprintf("advisory lock %d of database %q on %s", runnerLockKey, b.cfg.Database, b.cfg.Host)
}

// RunnerHolder reads pg_locks for the session holding the runner lock,
// and the holder's description.
func (b *Postgres) RunnerHolder(ctx context.Context) (*state.RunnerInfo, error) {
	var pid int
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		var err error
		pid, err = advisoryLockHolder(ctx, conn, runnerLockKey)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find the runner: %w", err)
	}
	if pid == 0 {
		return nil, nil
	}
	h := state.WaitForRunner(func() *state.RunnerInfo {
		var info *state.RunnerInfo
		_ = b.withConn(ctx, func(conn *pgx.Conn) error {
			info = readPgRunnerInfo(ctx, conn, pid)
			return nil
		})
		return info
	})
	if h == nil {
		return &state.RunnerInfo{BackendPID: pid}, nil
	}
	return h, nil
}

// readPgRunnerInfo reads the holder's description, nil unless it is that
// of the session pid.
func readPgRunnerInfo(ctx context.Context, conn *pgx.Conn, pid int) *state.RunnerInfo {
	var info state.RunnerInfo
	err := conn.QueryRow(ctx, `SELECT record FROM `+pgStatusTable+` WHERE kind = $1 AND address = $2`, runnerStatusKind, runnerStatusAddr).Scan(&info)
	if err != nil || info.ID == "" || (pid != 0 && info.BackendPID != pid) {
		return nil
	}
	return &info
}

// advisoryLockHolder returns the backend PID holding a session advisory
// lock on key, 0 when none does.
func advisoryLockHolder(ctx context.Context, conn *pgx.Conn, key int64) (int, error) {
	var pid int
	err := conn.QueryRow(ctx, `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid::bigint = $1 AND objid::bigint = $2`,
		int64(uint32(key>>32)), int64(uint32(key))).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return pid, err
}

type pgRunnerLock struct {
	b    *Postgres
	info state.RunnerInfo

	mu   sync.Mutex
	conn *pgx.Conn
	done bool
}

// lock connects and takes the lock; l.mu is held or l is not shared yet.
func (l *pgRunnerLock) lock(ctx context.Context) error {
	conn, err := l.b.connect(ctx)
	if err != nil {
		return err
	}
	var ok bool
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1), pg_backend_pid()`, runnerLockKey).Scan(&ok, &pid); err != nil {
		conn.Close(context.Background())
		return fmt.Errorf("take the runner lock: %w", err)
	}
	if !ok {
		holder, _ := advisoryLockHolder(ctx, conn, runnerLockKey)
		info := state.WaitForRunner(func() *state.RunnerInfo { return readPgRunnerInfo(ctx, conn, holder) })
		conn.Close(context.Background())
		return &state.RunnerLockedError{Lock: l.b.runnerLockName(), Holder: info}
	}
	l.info.BackendPID = pid
	data, _ := json.Marshal(l.info)
	if _, err := conn.Exec(ctx, `INSERT INTO `+pgStatusTable+` (kind, address, record, updated_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (kind, address) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at`,
		runnerStatusKind, runnerStatusAddr, data); err != nil {
		conn.Close(context.Background())
		return fmt.Errorf("record the runner holding the lock: %w", err)
	}
	l.conn = conn
	return nil
}

// Check pings the lock's session; after a lost connection (a restart of
// the state database) it takes the lock again.
func (l *pgRunnerLock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return errors.New("the runner lock was released")
	}
	if l.conn != nil && !l.conn.IsClosed() && l.conn.Ping(ctx) == nil {
		return nil
	}
	if l.conn != nil {
		l.conn.Close(context.Background())
		l.conn = nil
	}
	err := l.lock(ctx)
	var locked *state.RunnerLockedError
	if errors.As(err, &locked) {
		return fmt.Errorf("the connection holding the runner lock was lost, and %w", err)
	}
	// Unreachable: nobody else can take the lock either; try again later.
	return nil
}

func (l *pgRunnerLock) Unlock() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done || l.conn == nil {
		l.done = true
		return nil
	}
	l.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer l.conn.Close(ctx)
	// Only this runner's description: another of the same name may have
	// taken the lock after this one's session was lost.
	_, _ = l.conn.Exec(ctx, `DELETE FROM `+pgStatusTable+` WHERE kind = $1 AND address = $2 AND record->>'id' = $3 AND coalesce(record->>'instance', '') = $4`,
		runnerStatusKind, runnerStatusAddr, l.info.ID, l.info.Instance)
	_, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, runnerLockKey)
	return err
}
