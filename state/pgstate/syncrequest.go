package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/state"
)

// syncRequestKind is the kind of sluice.status rows holding sync requests
// (address: the request ID). Status readers skip kinds they do not know,
// and the table exists wherever status works, so requests need no table
// of their own.
const syncRequestKind = "sync_request"

// PutSyncRequest upserts the request's row.
func (b *Postgres) PutSyncRequest(ctx context.Context, req *state.SyncRequest) error {
	if err := state.CheckRequestID(req.ID); err != nil {
		return err
	}
	if err := b.putStatus(ctx, syncRequestKind, req.ID, req); err != nil {
		return fmt.Errorf("record sync request: %w", err)
	}
	return nil
}

// SyncRequest reads the request's row.
func (b *Postgres) SyncRequest(ctx context.Context, id string) (*state.SyncRequest, error) {
	var req *state.SyncRequest
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		var r state.SyncRequest
		err := conn.QueryRow(ctx, `SELECT record FROM `+pgStatusTable+` WHERE kind = $1 AND address = $2`, syncRequestKind, id).Scan(&r)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err == nil {
			req = &r
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read sync request: %w", err)
	}
	return req, nil
}

// ListSyncRequests reads the request rows (an index range of the status
// table's primary key).
func (b *Postgres) ListSyncRequests(ctx context.Context) ([]*state.SyncRequest, error) {
	var out []*state.SyncRequest
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT record FROM `+pgStatusTable+` WHERE kind = $1`, syncRequestKind)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				return err
			}
			var req state.SyncRequest
			if json.Unmarshal(data, &req) == nil && req.ID != "" {
				out = append(out, &req)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list sync requests: %w", err)
	}
	state.SortRequests(out)
	return out, nil
}

// DeleteSyncRequest deletes the request's row.
func (b *Postgres) DeleteSyncRequest(ctx context.Context, id string) error {
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `DELETE FROM `+pgStatusTable+` WHERE kind = $1 AND address = $2`, syncRequestKind, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete sync request: %w", err)
	}
	return nil
}
