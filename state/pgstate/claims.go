package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-dev/sluice/state"
)

// DefaultClaimTimeout is how long a runner that stopped answering (a
// SIGSTOP, a frozen machine, a partition) keeps its claims: the server
// ends its claim session after this long without a query.
const DefaultClaimTimeout = 20 * time.Second

// runnersKept is how long the runners table remembers a runner that
// stopped or was killed, for `sluice status`.
const runnersKept = 24 * time.Hour

// NewPool opens a pool of connections to the state database, for the
// job engine of a fleet (River) and the shared webhook journals.
func (b *Postgres) NewPool(ctx context.Context, maxConns int32, application string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(b.url)
	if err != nil {
		return nil, errors.New("state backend postgres: the url is not a valid PostgreSQL connection string")
	}
	if maxConns > 0 {
		pc.MaxConns = maxConns
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = application
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("state backend postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state backend postgres: connect: %w", err)
	}
	return pool, nil
}

// claimKey is the advisory lock key of a claim: a 64-bit FNV-1a hash of
// "sluice claim " and the claim's key (a collision would only make two
// units of work exclusive of each other).
func claimKey(key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("sluice claim "))
	h.Write([]byte(key))
	return int64(h.Sum64())
}

// Claims is a runner's claim session (state.Claimer): a connection of its
// own to the state database, on which its claims are session advisory
// locks, with idle_session_timeout set to the claim timeout, so that the
// server ends it (freeing the claims) when the runner stops answering.
// A heartbeat every quarter of the timeout keeps it open and records the
// runner's last heartbeat in sluice.runners.
type Claims struct {
	b       *Postgres
	info    state.RunnerInfo
	timeout time.Duration

	mu   sync.Mutex
	conn *pgx.Conn
	gen  int // the session: a claim of an earlier one is lost
	lost chan struct{}
	held map[string]int // key -> session

	stop chan struct{}
	done chan struct{}
}

var _ state.Claimer = (*Claims)(nil)

// OpenClaims opens info's claim session, records the runner in
// sluice.runners and starts its heartbeat. timeout <= 0 is
// DefaultClaimTimeout.
func (b *Postgres) OpenClaims(ctx context.Context, info state.RunnerInfo, timeout time.Duration) (*Claims, error) {
	if timeout <= 0 {
		timeout = DefaultClaimTimeout
	}
	c := &Claims{b: b, info: info, timeout: timeout, held: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	if err := c.Renew(ctx); err != nil {
		return nil, err
	}
	go c.heartbeat()
	return c, nil
}

// Info is the runner, with the backend PID of its current session.
func (c *Claims) Info() state.RunnerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Renew opens a new claim session (the first, or after one was lost) and
// records the runner. Claims of an earlier session stay lost.
func (c *Claims) Renew(ctx context.Context) error {
	cfg := c.b.cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "sluice runner " + c.info.ID
	cfg.RuntimeParams["idle_session_timeout"] = strconv.FormatInt(c.timeout.Milliseconds(), 10)
	// A claim session never runs long statements; a stuck one must not
	// hold the runner's claims forever.
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(c.timeout.Milliseconds(), 10)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("state backend postgres: open the runner's claim session: %w", err)
	}
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		conn.Close(context.Background())
		return fmt.Errorf("state backend postgres: open the runner's claim session: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close(context.Background())
	}
	c.info.BackendPID = pid
	c.conn, c.gen, c.lost = conn, c.gen+1, make(chan struct{})
	c.held = map[string]int{}
	data, _ := json.Marshal(c.info)
	if _, err := conn.Exec(ctx, `INSERT INTO `+pgRunnersTable+` (instance, id, record, heartbeat_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (instance) DO UPDATE SET record = excluded.record, heartbeat_at = now(), stopped_at = NULL`,
		c.info.Instance, c.info.ID, data); err != nil {
		return c.fail(fmt.Errorf("state backend postgres: record the runner: %w", err))
	}
	// The runner's own claim says it is alive (Runners).
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, claimKey("runner:"+c.info.Instance)); err != nil {
		return c.fail(fmt.Errorf("state backend postgres: claim the runner's name: %w", err))
	}
	_, _ = conn.Exec(ctx, `DELETE FROM `+pgRunnersTable+` WHERE heartbeat_at < now() - $1::interval`, runnersKept.String())
	return nil
}

// fail closes the session as lost; c.mu is held.
func (c *Claims) fail(err error) error {
	if c.conn != nil {
		c.conn.Close(context.Background())
		c.conn = nil
	}
	select {
	case <-c.lost:
	default:
		close(c.lost)
	}
	return err
}

func (c *Claims) heartbeat() {
	defer close(c.done)
	t := time.NewTicker(c.timeout / 4)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout/2)
			_, err := c.conn.Exec(ctx, `UPDATE `+pgRunnersTable+` SET heartbeat_at = now() WHERE instance = $1`, c.info.Instance)
			cancel()
			if err != nil {
				_ = c.fail(err)
			}
		}
		c.mu.Unlock()
	}
}

// Lost is closed when the current session ended.
func (c *Claims) Lost() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// TryClaim takes the claim on key in the current session.
func (c *Claims) TryClaim(ctx context.Context, key string) (state.Claim, error) {
	c.mu.Lock()
	if c.conn == nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: the runner's claim session ended", state.ErrClaimLost)
	}
	if _, ok := c.held[key]; ok {
		c.mu.Unlock()
		// Held by this runner already (another of its goroutines).
		return nil, &state.ClaimedError{Key: key, Holder: &c.info}
	}
	var ok bool
	err := c.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, claimKey(key)).Scan(&ok)
	if err != nil {
		if c.conn.IsClosed() {
			_ = c.fail(err)
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("state backend postgres: claim %s: %w", key, err)
	}
	if ok {
		c.held[key] = c.gen
		cl := &pgClaim{c: c, key: key, gen: c.gen}
		c.mu.Unlock()
		return cl, nil
	}
	c.mu.Unlock()
	holder, _ := c.Holder(ctx, key)
	return nil, &state.ClaimedError{Key: key, Holder: holder}
}

// Holder returns the runner whose session holds the claim on key.
func (c *Claims) Holder(ctx context.Context, key string) (*state.RunnerInfo, error) {
	return c.b.ClaimHolder(ctx, key)
}

// ClaimHolder returns the runner whose session holds the claim on key,
// nil when none does.
func (b *Postgres) ClaimHolder(ctx context.Context, key string) (*state.RunnerInfo, error) {
	var info *state.RunnerInfo
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		pid, err := advisoryLockHolder(ctx, conn, claimKey(key))
		if err != nil || pid == 0 {
			return err
		}
		var rec state.RunnerInfo
		err = conn.QueryRow(ctx, `SELECT record FROM `+pgRunnersTable+` WHERE (record->>'backend_pid')::int = $1 ORDER BY heartbeat_at DESC LIMIT 1`, pid).Scan(&rec)
		if errors.Is(err, pgx.ErrNoRows) {
			info = &state.RunnerInfo{BackendPID: pid}
			return nil
		}
		info = &rec
		return err
	})
	return info, err
}

// Close records that the runner stopped and ends its session, releasing
// every claim.
func (c *Claims) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
		close(c.stop)
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = c.conn.Exec(ctx, `UPDATE `+pgRunnersTable+` SET stopped_at = now(), heartbeat_at = now() WHERE instance = $1`, c.info.Instance)
	// Released now, not when the server notices the closed connection:
	// another runner takes the work over at once.
	_, _ = c.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
	err := c.conn.Close(ctx)
	c.conn = nil
	return err
}

type pgClaim struct {
	c   *Claims
	key string
	gen int
}

func (p *pgClaim) Key() string { return p.key }

func (p *pgClaim) Check(ctx context.Context) error {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.held[p.key]; !ok || g != p.gen || c.gen != p.gen || c.conn == nil {
		return fmt.Errorf("%w on %s", state.ErrClaimLost, p.key)
	}
	// The session is alive only if the server still answers on it: one
	// that ended (idle_session_timeout while this process was stopped)
	// took its advisory locks with it.
	if _, err := c.conn.Exec(ctx, `SELECT 1`); err != nil {
		if c.conn.IsClosed() || ctx.Err() == nil {
			_ = c.fail(err)
			return fmt.Errorf("%w on %s: its session ended: %v", state.ErrClaimLost, p.key, err)
		}
		return err
	}
	return nil
}

func (p *pgClaim) Release(ctx context.Context) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.held[p.key]; !ok || g != p.gen || c.gen != p.gen || c.conn == nil {
		return
	}
	delete(c.held, p.key)
	if _, err := c.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, claimKey(p.key)); err != nil && c.conn.IsClosed() {
		_ = c.fail(err)
	}
}

// Runners returns the runners recorded in the last day, with whether
// each one's claim session is open now.
func (b *Postgres) Runners(ctx context.Context) ([]state.RunnerStatus, error) {
	var out []state.RunnerStatus
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT record, heartbeat_at, stopped_at FROM `+pgRunnersTable+`
			WHERE heartbeat_at > now() - $1::interval ORDER BY id, heartbeat_at`, runnersKept.String())
		if err != nil {
			return err
		}
		for rows.Next() {
			var rs state.RunnerStatus
			var stopped *time.Time
			if err := rows.Scan(&rs.RunnerInfo, &rs.LastHeartbeat, &stopped); err != nil {
				return err
			}
			if stopped != nil {
				rs.Stopped = stopped.UTC()
			}
			rs.LastHeartbeat = rs.LastHeartbeat.UTC()
			out = append(out, rs)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			pid, err := advisoryLockHolder(ctx, conn, claimKey("runner:"+out[i].Instance))
			if err != nil {
				return err
			}
			out[i].Alive = pid != 0 && pid == out[i].BackendPID
		}
		return nil
	})
	if err != nil {
		if isUndefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("state backend postgres: read the runners: %w", err)
	}
	return out, nil
}

// isUndefinedTable reports a table that does not exist (yet).
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
