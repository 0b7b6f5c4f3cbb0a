package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// verdict is what the runner reads of an error: its own Temporary method
// (not the net package's, which says false of a reset connection), if it
// has one.
func verdict(err error) (temporary, says bool) {
	var temp interface{ Temporary() bool }
	if !errors.As(err, &temp) {
		return false, false
	}
	if _, isNet := temp.(net.Error); isNet {
		return false, false
	}
	if _, isErrno := temp.(syscall.Errno); isErrno {
		return false, false
	}
	return temp.Temporary(), true
}

// TestErrorsSayWhetherToRetry: the warehouse's errors, from a real server,
// say themselves whether the write may succeed if tried again, so that the
// runner needs no SQLSTATE table of its own.
func TestErrorsSayWhetherToRetry(t *testing.T) {
	w := newWH(t, false)
	ctx := context.Background()
	tests := []struct {
		name string
		// fail makes a write fail at some step and returns its error.
		fail func(t *testing.T) error
		want bool
	}{
		{
			name: "session terminated before commit (57P01)",
			fail: func(t *testing.T) error {
				tbl, err := w.Table(ctx, "orders_killed")
				if err != nil {
					t.Fatal(err)
				}
				tx, err := tbl.Begin(ctx, warehouse.Replace, ordersSchema, "full_refresh")
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Abort(ctx)
				if err := tx.Write(ctx, ordersBatch(row{id: 1, name: "a"})); err != nil {
					t.Fatal(err)
				}
				exec(t, w.conn, `SELECT pg_terminate_backend($1)`, tx.(*Tx).conn.PgConn().PID())
				_, err = tx.Commit(ctx, records.Position{})
				return err
			},
			want: true,
		},
		{
			name: "bad data (22021)",
			fail: func(t *testing.T) error {
				_, err := tryCommit(w, "orders_bad", warehouse.Merge, ordersSchema, records.Position{}, ordersBatch(row{id: 3, name: "\x00"}))
				return err
			},
			want: false,
		},
		{
			name: "schema changed",
			fail: func(t *testing.T) error {
				commit(t, w, "orders_changed", warehouse.Merge, ordersSchema, records.Position{}, ordersBatch(row{id: 1}))
				other := &records.Schema{Columns: ordersSchema.Columns, PrimaryKey: []string{"id", "name"}}
				_, err := tryCommit(w, "orders_changed", warehouse.Merge, other, records.Position{})
				return err
			},
			want: false,
		},
		{
			name: "no privilege on the schema (42501)",
			fail: func(t *testing.T) error {
				exec(t, w.conn, `DROP ROLE IF EXISTS wh_reader; CREATE ROLE wh_reader LOGIN`)
				t.Cleanup(func() { w.conn.Exec(ctx, `DROP OWNED BY wh_reader; DROP ROLE wh_reader`) })
				// New, not Open, which would refuse at once.
				ro := New(&config.Warehouse{Backend: "postgres", URL: withUser(t, w.url, "wh_reader"), Schema: "wh"}, t.TempDir())
				defer ro.Close()
				_, err := tryCommit(ro, "orders_denied", warehouse.Replace, ordersSchema, records.Position{}, ordersBatch(row{id: 1}))
				return err
			},
			want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fail(t)
			if err == nil {
				t.Fatal("the write did not fail")
			}
			got, says := verdict(err)
			if !says || got != tt.want {
				t.Errorf("Temporary() = %v (has the method: %v), want %v; err: %v", got, says, tt.want, err)
			}
		})
	}
}

// TestTemporary is the verdict by SQLSTATE and connection state, for the
// codes a test server cannot easily be made to send.
func TestTemporary(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "40001"}, true}, // serialization_failure
		{&pgconn.PgError{Code: "40P01"}, true}, // deadlock_detected
		{&pgconn.PgError{Code: "57P01"}, true}, // admin_shutdown
		{&pgconn.PgError{Code: "08006"}, true}, // connection_failure
		{fmt.Errorf("reading: %w", &pgconn.PgError{Code: "53300"}), true},
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined_table
		{&pgconn.PgError{Code: "42501"}, false}, // insufficient_privilege
		{io.ErrUnexpectedEOF, true},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		// A host that does not exist is a configuration error, as for a
		// source (one verdict, internal/pg's); a lookup that timed out
		// may pass.
		{&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "wh.invalid", IsNotFound: true}}, false},
		{&net.OpError{Op: "dial", Err: &net.DNSError{Err: "i/o timeout", Name: "wh.example", IsTimeout: true}}, true},
		{fmt.Errorf("reading: %w (%w)", io.ErrUnexpectedEOF, warehouse.ErrDamaged), false},
		{errors.New("column \"x\" does not exist"), false},
	}
	for _, tt := range tests {
		got, says := verdict(classify(tt.err))
		if !says || got != tt.want {
			t.Errorf("classify(%v).Temporary() = %v (has the method: %v), want %v", tt.err, got, says, tt.want)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
