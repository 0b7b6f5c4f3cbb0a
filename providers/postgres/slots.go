package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/providers"
)

// SlotStatus reads a replication slot for the WAL monitor, with inspect's
// query; nil when the slot does not exist.
func (p *Provider) SlotStatus(ctx context.Context, name string) (*providers.Slot, error) {
	s := &providers.Slot{}
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, slotSQL, name).Scan(&s.Name, &s.Plugin, &s.Database, &s.Active, &s.WALStatus,
			&s.ConfirmedFlushLSN, &s.RestartLSN, &s.LagBytes)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading replication slot %s: %w", name, err)
	}
	return s, nil
}

// CreateTemporarySnapshot exports a snapshot with a temporary logical
// slot (pgoutput), leaving the source's own slot alone: tables added to a
// source that is already streaming are snapshotted under it. The server
// drops the slot when release closes its connection.
func (p *Provider) CreateTemporarySnapshot(ctx context.Context) (_ providers.ExportedSnapshot, _ func() error, err error) {
	defer func() { err = p.classified(err) }()
	var snap providers.ExportedSnapshot
	conn, err := p.dialer.ConnectReplication(ctx)
	if err != nil {
		return snap, nil, err
	}
	release := sync.OnceValue(func() error {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return conn.Close(cctx)
	})
	// Slot names are [a-z0-9_]; a temporary one need only be unique.
	name := fmt.Sprintf("sluice_tmp_%d_%d", os.Getpid(), time.Now().UnixNano())
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		release()
		return snap, nil, fmt.Errorf("creating a temporary replication slot for a snapshot (it needs a free slot: max_replication_slots): %w", err)
	}
	return providers.ExportedSnapshot{Name: res.SnapshotName, ConsistentLSN: res.ConsistentPoint}, release, nil
}
