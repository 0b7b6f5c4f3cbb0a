package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

func TestDue(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		table    state.Table
		status   *state.TableStatus
		wantDue  bool
		wantNext time.Time
		wantErr  string
	}{
		{name: "never synced", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("1h")}, wantDue: true, wantNext: now},
		{name: "synced recently", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("1h")},
			status:  &state.TableStatus{LastSyncAt: now.Add(-30 * time.Minute), LastAttemptAt: now.Add(-31 * time.Minute)},
			wantDue: false, wantNext: now.Add(30 * time.Minute)},
		{name: "interval passed", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("1h")},
			status:  &state.TableStatus{LastSyncAt: now.Add(-2 * time.Hour), LastAttemptAt: now.Add(-2 * time.Hour)},
			wantDue: true, wantNext: now.Add(-time.Hour)},
		{name: "failed attempt waits a full interval", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("1h")},
			status:  &state.TableStatus{LastSyncAt: now.Add(-5 * time.Hour), LastAttemptAt: now.Add(-10 * time.Minute)},
			wantDue: false, wantNext: now.Add(50 * time.Minute)},
		{name: "daily not yet", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("daily@13:30")},
			status:  &state.TableStatus{LastSyncAt: now.Add(-22 * time.Hour)},
			wantDue: false, wantNext: time.Date(2026, 11, 21, 13, 30, 0, 0, time.UTC)},
		{name: "resync requested", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("24h"), ResyncRequestedAt: now.Add(-time.Minute)},
			status:  &state.TableStatus{LastSyncAt: now.Add(-time.Hour), LastFullSyncAt: now.Add(-time.Hour)},
			wantDue: true, wantNext: now},
		{name: "resync done", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("24h"), ResyncRequestedAt: now.Add(-2 * time.Hour)},
			status:  &state.TableStatus{LastSyncAt: now.Add(-time.Hour), LastFullSyncAt: now.Add(-time.Hour)},
			wantDue: false, wantNext: now.Add(23 * time.Hour)},
		{name: "disabled", table: state.Table{Enabled: false, Frequency: state.ParseFrequency("1h")}, wantDue: false},
		// A frequency that does not parse is an error naming the table,
		// never the default schedule.
		{name: "invalid frequency", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("hourly")},
			status:  &state.TableStatus{LastSyncAt: now.Add(-7 * time.Hour)},
			wantErr: `postgres.p/t: recorded frequency "hourly" is invalid`},
		{name: "no frequency", table: state.Table{Enabled: true},
			status:  &state.TableStatus{LastSyncAt: now.Add(-7 * time.Hour)},
			wantErr: `postgres.p/t: no frequency is recorded`},
		{name: "invalid frequency, never synced", table: state.Table{Enabled: true, Frequency: state.ParseFrequency("hourly")},
			wantDue: true, wantNext: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{Now: func() time.Time { return now }})
			j := job{table: &tt.table, addr: "postgres.p/t"}
			if tt.status != nil {
				tt.status.Address = j.addr
				r.status[j.addr] = tt.status
			}
			due, next, err := r.due(j, now)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("due: error %v, want one starting %q", err, tt.wantErr)
				}
				if ts := r.status[j.addr]; ts.State != state.StateFailed || ts.LastError != err.Error() {
					t.Errorf("status %q %q, want failed with the error", ts.State, ts.LastError)
				}
			} else if err != nil {
				t.Fatalf("due: %v", err)
			}
			if due != tt.wantDue || !next.Equal(tt.wantNext) {
				t.Errorf("due = %v, next = %s; want %v, %s", due, next, tt.wantDue, tt.wantNext)
			}
			if !tt.table.Enabled && r.status[j.addr].State != state.StateDisabled {
				t.Errorf("state = %q, want disabled", r.status[j.addr].State)
			}
		})
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		// Sources and warehouses classify their own errors (PostgreSQL's
		// by SQLSTATE): the runner takes the verdict.
		{fmt.Errorf("reading: %w", temporary(true)), true},
		{fmt.Errorf("committing: %w", temporary(false)), false},
		// The driver convention for a request never sent.
		{fmt.Errorf("writing: %w", safeToRetry(true)), true},
		{safeToRetry(false), false},
		{io.ErrUnexpectedEOF, true},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{errors.New("column \"x\" does not exist"), false},
		{fmt.Errorf("listing charges: %w", temporary(true)), true}, // a provider's own retryable error
		{temporary(false), false},
		// A damaged table fails the same way until it is resynced, even
		// when what broke it reads like an I/O hiccup.
		{fmt.Errorf("reading manifest: %w (%w)", io.ErrUnexpectedEOF, warehouse.ErrDamaged), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := Transient(tt.err); got != tt.want {
			t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// safeToRetry is an error of a driver's that says whether it was sent.
type safeToRetry bool

func (s safeToRetry) Error() string     { return "connection busy" }
func (s safeToRetry) SafeToRetry() bool { return bool(s) }

func TestBackoff(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Max: 10 * time.Second}.withDefaults()
	for attempt := 1; attempt <= 30; attempt++ {
		want := min(time.Second<<min(attempt-1, 20), 10*time.Second)
		for range 20 {
			d := p.backoff(attempt)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
}

// temporary is an error that says whether it passes, as provider errors do.
type temporary bool

func (t temporary) Error() string   { return "provider error" }
func (t temporary) Temporary() bool { return bool(t) }
