package runner

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/warehouse"
)

// MaintenanceInterval is the least time between two maintenance calls
// (warehouse.Maintainer) of one table, unless the last call left work
// pending: Maintain does bounded work per call, so after a call that says
// more is due, the next commit of the table calls it again. A table every
// commit rewrites (a small hot table of a change stream) is compacted once
// per interval, not after every commit: each maintenance is a catalog
// commit of its own.
//
// Maintenance runs right after a successful commit, from the goroutine
// that committed (a batch sync's, the cdc sink's flusher, the webhook
// applier holding the table's lock), so it never races a commit of the
// same table from this runner. It is best effort: an error is logged as a
// warning and the sync stays successful.
const MaintenanceInterval = 30 * time.Second

// maintainer calls warehouse tables' Maintain after their commits, at
// most once per MaintenanceInterval per table unless work remains.
type maintainer struct {
	now func() time.Time
	log hclog.Logger

	mu sync.Mutex
	// due is when each warehouse table (by name) may be maintained again.
	due map[string]time.Time
}

func newMaintainer(now func() time.Time, log hclog.Logger) *maintainer {
	return &maintainer{now: now, log: log, due: map[string]time.Time{}}
}

// after maintains table t, called name in the warehouse, after a commit
// that left it at version v, when t is a warehouse.Maintainer and its
// maintenance is due. It returns the table's version afterwards (v when
// nothing was committed). A nil maintainer or table does nothing.
func (m *maintainer) after(ctx context.Context, name string, t warehouse.Table, v warehouse.TableVersion) warehouse.TableVersion {
	if m == nil || t == nil {
		return v
	}
	mt, ok := t.(warehouse.Maintainer)
	if !ok {
		return v
	}
	now := m.now()
	m.mu.Lock()
	if now.Before(m.due[name]) {
		m.mu.Unlock()
		return v
	}
	// Claimed before the call: one writer per table commits at a time,
	// but a second one must not start another call meanwhile.
	m.due[name] = now.Add(MaintenanceInterval)
	m.mu.Unlock()

	start := m.now()
	rep, err := mt.Maintain(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: nothing to report; the next start catches up.
	case err != nil:
		m.log.Warn("table maintenance failed; the table stays correct, only slower to read and write until it succeeds",
			"table", name, "error", err)
	case !rep.Empty():
		m.log.Info("table maintained", "table", name,
			"files_compacted", rep.Compacted, "files_written", rep.Written,
			"snapshots_expired", rep.ExpiredSnapshots, "files_removed", rep.RemovedFiles,
			"seconds", m.now().Sub(start).Seconds())
		if rep.Pending {
			// More was due than one call does: the next commit goes on.
			m.mu.Lock()
			m.due[name] = time.Time{}
			m.mu.Unlock()
		}
	}
	if nv := tableVersion(t); nv != (warehouse.TableVersion{}) {
		return nv
	}
	return v
}

// tableVersion is a committed table's version when its warehouse names
// versions (warehouse.Versioned), zero otherwise.
func tableVersion(t warehouse.Table) warehouse.TableVersion {
	if vt, ok := t.(warehouse.Versioned); ok {
		return vt.Version()
	}
	return warehouse.TableVersion{}
}
