package runner_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// syncBuffer is a log sink safe for the runner's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// onceLogged runs the runner once with up to 5 attempts per sync and
// returns the failed tables and how many retries were logged.
func (e *env) onceLogged() (failed []string, retries int, log string) {
	e.t.Helper()
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	var buf syncBuffer
	now := e.now
	r := runner.New(runner.Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w,
		Concurrency: 1, Now: func() time.Time { return now },
		Logger: hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug}),
		Retry:  runner.RetryPolicy{Attempts: 5, Base: time.Millisecond, Max: 10 * time.Millisecond},
	})
	failed, err = r.Once(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	log = buf.String()
	return failed, strings.Count(log, "transient failure; retrying"), log
}

// TestPermanentErrorsAreNotRetried syncs through a real server with
// errors that would fail again: a table the role may not read, a table
// dropped after apply, a source whose sslmode asks for TLS the server does
// not offer. Each fails at the first attempt with its message; the
// readable tables sync.
func TestPermanentErrorsAreNotRetried(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(e *env)
		failed      []string
		wantErr     string
		sourceState string
	}{
		{
			name: "permission denied",
			setup: func(e *env) {
				role := "noread_" + strings.ToLower(e.t.Name()[strings.LastIndexByte(e.t.Name(), '/')+1:])
				owner := e.cfg.Sources[0].Postgres.ConnectionString
				e.exec(fmt.Sprintf(`DROP ROLE IF EXISTS %[1]s; CREATE ROLE %[1]s LOGIN;
					GRANT SELECT ON items, "Mixed Case" TO %[1]s`, role))
				e.t.Cleanup(func() {
					c, err := pgx.Connect(context.Background(), owner)
					if err == nil {
						c.Exec(context.Background(), fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role))
						c.Close(context.Background())
					}
				})
				e.useRole(role)
			},
			failed:      []string{"postgres.db/log"},
			wantErr:     "permission denied for table log (SQLSTATE 42501)",
			sourceState: "healthy",
		},
		{
			name:        "undefined table",
			setup:       func(e *env) { e.exec(`DROP TABLE log`) },
			failed:      []string{"postgres.db/log"},
			wantErr:     "log",
			sourceState: "healthy",
		},
		{
			name:        "TLS required, server without TLS",
			setup:       func(e *env) { e.cfg.Sources[0].Postgres.SSLMode = "require" },
			failed:      []string{"postgres.db/Mixed Case", "postgres.db/items", "postgres.db/log"},
			wantErr:     "server refused TLS connection",
			sourceState: "failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(e)
			failed, retries, log := e.onceLogged()
			if retries != 0 {
				t.Errorf("%d retries of a permanent error; log:\n%s", retries, log)
			}
			sort.Strings(failed)
			if d := cmp.Diff(tt.failed, failed); d != "" {
				t.Errorf("failed (-want +got):\n%s", d)
			}
			ts := e.status(tt.failed[0])
			if ts.State != state.StateFailed || !strings.Contains(ts.LastError, tt.wantErr) {
				t.Errorf("status of %s = %+v, want failed with %q", tt.failed[0], ts, tt.wantErr)
			}
			// A source that cannot be connected to is failed, though a
			// retry would not help; one that refuses a table is not.
			st, err := e.local.ReadStatus(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Sources["postgres.db"]; got == nil || got.State != tt.sourceState {
				t.Errorf("source status = %+v, want %s", got, tt.sourceState)
			}
		})
	}
}

// TestTerminatedBackendIsRetried ends the session reading a table
// (pg_terminate_backend, as a failover or an administrator does): the
// sync is retried on a new connection and completes.
func TestTerminatedBackendIsRetried(t *testing.T) {
	e := newEnv(t)
	// The lock holds the read until its session is terminated.
	lock, err := pgx.Connect(e.ctx, e.cfg.Sources[0].Postgres.ConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(e.ctx)
	tx, err := lock.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, `LOCK TABLE log IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	killed := make(chan error, 1)
	go func() {
		killed <- func() error {
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				var n int
				err := e.conn.QueryRow(e.ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
					WHERE application_name = 'sluice' AND wait_event_type = 'Lock' AND datname = current_database()`).Scan(&n)
				if err != nil {
					return err
				}
				if n > 0 {
					return tx.Rollback(e.ctx)
				}
				time.Sleep(20 * time.Millisecond)
			}
			return fmt.Errorf("no read of log waited for the lock")
		}()
	}()
	failed, retries, log := e.onceLogged()
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Errorf("failed: %v; log:\n%s", failed, log)
	}
	if retries != 1 {
		t.Errorf("%d retries, want 1; log:\n%s", retries, log)
	}
	if !strings.Contains(log, "57P01") {
		t.Errorf("the retry was not for the terminated session (57P01); log:\n%s", log)
	}
	if got := len(e.rows("pg_log", "id")); got != 50 {
		t.Errorf("log has %d rows, want 50", got)
	}
}

// useRole makes the configuration connect as role instead of the owner.
func (e *env) useRole(role string) {
	e.t.Helper()
	cfg, diags := config.Load(e.dir, config.Options{})
	if diags.HasErrors() {
		e.t.Fatal(diags)
	}
	pg := cfg.Sources[0].Postgres
	cc, err := pgx.ParseConfig(pg.ConnectionString)
	if err != nil {
		e.t.Fatal(err)
	}
	pg.ConnectionString = fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", role, cc.Host, cc.Port, cc.Database)
	e.cfg = cfg
}
