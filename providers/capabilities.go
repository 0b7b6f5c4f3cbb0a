package providers

import (
	"context"

	"github.com/sluice-dev/sluice/internal/records"
)

// Capabilities a source may offer besides those of providers.go. Callers
// (the runner, apply, the CLI) discover them with type assertions on a
// Source and never name a concrete provider.

// Checker verifies a source's CDC prerequisites (`sluice check`, and the
// planner's input for sources with cdc tables).
type Checker interface {
	// Check returns one Check per prerequisite; a failed one has a Fix.
	Check(ctx context.Context) ([]Check, error)
}

// ChecksValid reports whether every check that is not a warning passed.
func ChecksValid(checks []Check) bool {
	for _, c := range checks {
		if !c.OK && !c.Warning {
			return false
		}
	}
	return true
}

// SlotWatcher reads a source's replication slot, for the WAL monitor and
// `sluice status`.
type SlotWatcher interface {
	// SlotStatus returns the slot, or nil when it does not exist.
	SlotStatus(ctx context.Context, slot string) (*Slot, error)
}

// WALPositioner tells a ChangeStream source's current position: what
// run -once streams up to (StreamRequest.StopAtLSN).
type WALPositioner interface {
	CurrentLSN(ctx context.Context) (string, error)
}

// TemporarySnapshotter is a ChangeStream that can export a snapshot with a
// temporary slot, for tables added to a source that is already streaming:
// their snapshot is read from it and the stream's changes after its
// consistent point are merged on top.
type TemporarySnapshotter interface {
	// CreateTemporarySnapshot exports a snapshot, held until release is
	// called.
	CreateTemporarySnapshot(ctx context.Context) (snap ExportedSnapshot, release func() error, err error)
}

// CursorMarker finds where an incremental or append table without
// historical load (historical_load = false) starts: the cursor's greatest
// value now and the keys of the rows holding it, as CursorReader commits a
// position, so that a read from it returns only the rows that come later.
// A table with no cursor value gives the zero Position (read everything).
type CursorMarker interface {
	CursorMark(ctx context.Context, req ReadRequest) (records.Position, error)
}
