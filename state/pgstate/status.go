package pgstate

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/state"
)

// ReadStatus reads the status records.
func (b *Postgres) ReadStatus(ctx context.Context) (*state.Status, error) {
	st := state.NewStatus()
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
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	return st, nil
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

// PutTableStatus records one table's status.
func (b *Postgres) PutTableStatus(ctx context.Context, ts *state.TableStatus) error {
	return b.putStatus(ctx, "table", ts.Address, ts)
}

// PutSourceStatus records one source's status.
func (b *Postgres) PutSourceStatus(ctx context.Context, ss *state.SourceStatus) error {
	return b.putStatus(ctx, "source", ss.Address, ss)
}
