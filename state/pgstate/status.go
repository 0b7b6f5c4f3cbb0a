package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/state"
)

// ReadStatus reads the status records.
func (b *Postgres) ReadStatus(ctx context.Context) (*state.Status, error) {
	st := state.NewStatus()
	var counts []webhookCounts
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT kind, record FROM `+pgStatusTable)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var kind string
			var rec []byte
			if err := rows.Scan(&kind, &rec); err != nil {
				return err
			}
			switch kind {
			case "table":
				var ts state.TableStatus
				if err := json.Unmarshal(rec, &ts); err == nil {
					st.Tables[ts.Address] = &ts
				}
			case "source":
				var ss state.SourceStatus
				if err := json.Unmarshal(rec, &ss); err == nil {
					st.Sources[ss.Address] = &ss
				}
			case webhookCountsKind:
				var c webhookCounts
				if err := json.Unmarshal(rec, &c); err == nil {
					counts = append(counts, c)
				}
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	// A fleet's webhook counters, added to by every runner, stand for
	// those in the source's record.
	for _, c := range counts {
		if ss := st.Sources[c.Address]; ss != nil {
			ss.EventsReceived, ss.EventsRejected, ss.EventsApplied = c.Received, c.Rejected, c.Applied
			if c.LastEventAt.After(ss.LastEventAt) {
				ss.LastEventAt = c.LastEventAt
			}
		}
	}
	return st, nil
}

// webhookCountsKind is the row of sluice.status holding a source's
// webhook counters in a fleet: every runner receives and applies events,
// and adds what it counted (AddWebhookCounts), so that none overwrites
// another's.
const webhookCountsKind = "webhook_counts"

type webhookCounts struct {
	Address     string    `json:"address"`
	Received    int64     `json:"events_received"`
	Rejected    int64     `json:"events_rejected"`
	Applied     int64     `json:"events_applied"`
	LastEventAt time.Time `json:"last_event_at"`
}

// AddWebhookCounts adds to a source's webhook counters in one statement
// (state.WebhookCounter); the first addition starts from the counters in
// the source's record.
func (b *Postgres) AddWebhookCounts(ctx context.Context, addr string, received, rejected, applied int64, lastEventAt time.Time) error {
	return b.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `INSERT INTO `+pgStatusTable+` AS s (kind, address, record, updated_at)
			SELECT $1, $2, jsonb_build_object('address', $2::text,
				'events_received', coalesce((src.record->>'events_received')::bigint, 0) + $3,
				'events_rejected', coalesce((src.record->>'events_rejected')::bigint, 0) + $4,
				'events_applied', coalesce((src.record->>'events_applied')::bigint, 0) + $5,
				'last_event_at', to_jsonb($6::timestamptz)), now()
			FROM (SELECT 1) one LEFT JOIN `+pgStatusTable+` src ON src.kind = 'source' AND src.address = $2
			ON CONFLICT (kind, address) DO UPDATE SET record = jsonb_build_object('address', $2::text,
				'events_received', (s.record->>'events_received')::bigint + $3,
				'events_rejected', (s.record->>'events_rejected')::bigint + $4,
				'events_applied', (s.record->>'events_applied')::bigint + $5,
				'last_event_at', to_jsonb(GREATEST((s.record->>'last_event_at')::timestamptz, $6::timestamptz))),
				updated_at = now()`,
			webhookCountsKind, addr, received, rejected, applied, lastEventAt.UTC())
		return err
	})
}

func (b *Postgres) putStatus(ctx context.Context, kind, addr string, rec any) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return b.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `INSERT INTO `+pgStatusTable+` (kind, address, record, updated_at) VALUES ($1, $2, $3, now())
			ON CONFLICT (kind, address) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at`, kind, addr, data)
		return err
	})
}

// ReadTableStatus reads one table's status record, nil when it has none
// (state.TableStatusReader).
func (b *Postgres) ReadTableStatus(ctx context.Context, addr string) (*state.TableStatus, error) {
	var ts *state.TableStatus
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		var rec []byte
		err := conn.QueryRow(ctx, `SELECT record FROM `+pgStatusTable+` WHERE kind = 'table' AND address = $1`, addr).Scan(&rec)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		ts = &state.TableStatus{}
		return json.Unmarshal(rec, ts)
	})
	if err != nil {
		return nil, fmt.Errorf("read the status of %s: %w", addr, err)
	}
	return ts, nil
}

// PutTableStatus records one table's status.
func (b *Postgres) PutTableStatus(ctx context.Context, ts *state.TableStatus) error {
	return b.putStatus(ctx, "table", ts.Address, ts)
}

// PutSourceStatus records one source's status.
func (b *Postgres) PutSourceStatus(ctx context.Context, ss *state.SourceStatus) error {
	return b.putStatus(ctx, "source", ss.Address, ss)
}
