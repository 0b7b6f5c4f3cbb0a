package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/runner/notify"
	"github.com/sluice-dev/sluice/state"
)

// WAL protection: a replication slot keeps the WAL its consumer has not
// confirmed, so a stream that stops (or falls behind) makes the server
// keep WAL until its disk fills. The monitor reads every source slot's lag
// (pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)) and
// wal_status every WALCheckInterval and records it in the source's status
// and the sluice_slot_lag_bytes metric:
//
//   - over lag_warning: state "warning", logged;
//   - over lag_critical: state "failed". A managed source with
//     auto_drop_slot has its stream stopped and its slot and publication
//     dropped, so that the server keeps its disk: resync required (`sluice
//     apply` creates them again, and the runner snapshots the source's cdc
//     tables again). A self-managed source (or auto_drop_slot = false) is
//     only marked failed: sluice never drops what it does not manage.
//   - wal_status "lost" (the server already removed WAL the slot needed),
//     or no slot: state "failed", resync required.

// defaultWALCheckInterval is how often the monitor reads a slot.
const defaultWALCheckInterval = 30 * time.Second

// slotProbe reads one source's slot, keeping its connection between
// readings.
type slotProbe struct {
	src  *config.Source
	open func(ctx context.Context, src *config.Source) (providers.Source, error)
	prov providers.Source
}

// read returns the slot, or nil when it does not exist.
func (p *slotProbe) read(ctx context.Context) (*providers.Slot, error) {
	name := p.src.Postgres.CDC.Slot
	if p.prov == nil {
		prov, err := p.open(ctx, p.src)
		if err != nil {
			return nil, err
		}
		p.prov = prov
	}
	ss, ok := p.prov.(providers.SlotWatcher)
	if !ok {
		return nil, fmt.Errorf("%s sources have no replication slot to watch", p.src.Type)
	}
	return ss.SlotStatus(ctx, name)
}

func (p *slotProbe) close() {
	if p.prov != nil {
		p.prov.Close()
	}
}

// slotWatch is the monitor's memory of one source between readings.
type slotWatch struct {
	src   *config.Source
	probe *slotProbe
	// missing counts consecutive readings without the slot: the runner
	// recreates an unused slot to export a snapshot, so one reading
	// between the drop and the creation is no failure.
	missing int
	// dropped records that the monitor dropped the slot itself.
	dropped string
	last    string // the last state recorded
}

// slotMonitor reads the slots of sources with cdc tables (the WAL
// monitor) and keeps what it last saw of each, from its dependencies: the
// source's provider (a providers.SlotWatcher), its resource manager to drop
// a slot, where source status records go, metrics, logger and clock.
type slotMonitor struct {
	open func(ctx context.Context, src *config.Source) (providers.Source, error)
	// openResources opens a source's resource manager (Options.Resources;
	// nil: a slot over lag_critical cannot be dropped).
	openResources func(ctx context.Context, src *config.Source) (providers.ResourceManager, error)
	// put writes a source's status record (with its webhook counters).
	put      func(ctx context.Context, ss *state.SourceStatus) error
	metrics  *Metrics
	log      hclog.Logger
	now      func() time.Time
	interval time.Duration
	// notify is told of each reading (nil: no notify block).
	notify *notify.Notifier

	mu sync.Mutex
	// health is the slot health last recorded, by source.
	health map[string]*state.SourceStatus
}

// monitor watches a source's slot until ctx ends. stopEngine stops the
// source's stream (before its slot is dropped).
func (m *slotMonitor) monitor(ctx context.Context, src *config.Source, rs *state.Source, stopEngine func()) {
	if src.Postgres == nil {
		return
	}
	w := &slotWatch{src: src, probe: &slotProbe{src: src, open: m.open}}
	defer w.probe.close()
	for {
		m.check(ctx, w, 2, stopEngine)
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.interval):
		}
	}
}

// checkOnce reads a source's slot once (at the end of run -once).
func (m *slotMonitor) checkOnce(ctx context.Context, src *config.Source, rs *state.Source) {
	if src.Postgres == nil || ctx.Err() != nil {
		return
	}
	w := &slotWatch{src: src, probe: &slotProbe{src: src, open: m.open}}
	defer w.probe.close()
	m.check(ctx, w, 1, func() {})
}

// check takes one reading and acts on it; a missing slot counts after
// confirmMissing readings in a row.
func (m *slotMonitor) check(ctx context.Context, w *slotWatch, confirmMissing int, stopEngine func()) {
	cdc := w.src.Postgres.CDC
	addr := w.src.Address()
	slot, err := w.probe.read(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("cannot read the replication slot's lag", "source", addr, "error", err)
		}
		return
	}
	ss := &state.SourceStatus{Address: addr, State: "healthy", UpdatedAt: m.now().UTC()}
	switch {
	case slot == nil:
		w.missing++
		if w.missing < confirmMissing {
			return
		}
		ss.State = "failed"
		ss.Message = fmt.Sprintf("replication slot %s does not exist: resync required. Run `sluice apply` to create it; the runner then snapshots the source's cdc tables again", cdc.Slot)
		if w.dropped != "" {
			ss.Message = w.dropped
		}
	case slot.WALStatus == "lost":
		ss.State, ss.SlotLagBytes = "failed", slot.LagBytes
		ss.Message = fmt.Sprintf("replication slot %s lost WAL it needed (wal_status = lost; max_slot_wal_keep_size was exceeded): resync required. Run `sluice apply`, which replaces the slot; the runner then snapshots the source's cdc tables again", cdc.Slot)
	case slot.LagBytes >= cdc.LagCritical:
		ss.State, ss.SlotLagBytes = "failed", slot.LagBytes
		if cdc.Management == "managed" && cdc.AutoDropSlot {
			ss.Message = m.dropSlot(ctx, w, slot.LagBytes, stopEngine)
			w.dropped = ss.Message
		} else {
			ss.Message = fmt.Sprintf("replication slot %s retains %s of WAL, over lag_critical (%s); sluice leaves it (%s): let the stream catch up, or drop the slot, which means a resync",
				cdc.Slot, config.FormatSize(slot.LagBytes), config.FormatSize(cdc.LagCritical), leaveReason(cdc))
		}
	case slot.LagBytes >= cdc.LagWarning:
		ss.State, ss.SlotLagBytes = "warning", slot.LagBytes
		ss.Message = fmt.Sprintf("replication slot %s retains %s of WAL, over lag_warning (%s)", cdc.Slot, config.FormatSize(slot.LagBytes), config.FormatSize(cdc.LagWarning))
	default:
		ss.SlotLagBytes = slot.LagBytes
	}
	if slot != nil {
		w.missing = 0
		if ss.State == "healthy" {
			w.dropped = ""
		}
	}
	m.metrics.slotLag.WithLabelValues(addr).Set(float64(ss.SlotLagBytes))
	m.notify.SourceLag(addr, lagLevel(ss.State), ss.SlotLagBytes, ss.Message, ss.UpdatedAt)
	if ss.State != w.last {
		switch ss.State {
		case "healthy":
			m.log.Info("replication slot healthy", "source", addr, "lag_bytes", ss.SlotLagBytes)
		case "warning":
			m.log.Warn(ss.Message, "source", addr, "lag_bytes", ss.SlotLagBytes)
		default:
			m.log.Error(ss.Message, "source", addr, "lag_bytes", ss.SlotLagBytes)
		}
		w.last = ss.State
	}
	m.recordHealth(ctx, ss)
}

func leaveReason(cdc config.CDC) string {
	if cdc.Management != "managed" {
		return "self_managed"
	}
	return "auto_drop_slot = false"
}

// dropSlot stops the source's stream and drops its slot and publication,
// and returns the status message saying so.
func (m *slotMonitor) dropSlot(ctx context.Context, w *slotWatch, lag int64, stopEngine func()) string {
	cdc := w.src.Postgres.CDC
	head := fmt.Sprintf("replication slot %s retained %s of WAL, over lag_critical (%s)", cdc.Slot, config.FormatSize(lag), config.FormatSize(cdc.LagCritical))
	stopEngine()
	rm, err := m.resources(ctx, w.src)
	if err == nil {
		defer rm.Close()
		// The stopped stream's server process may hold the slot for a
		// moment after the stream ended.
		for range 25 {
			if err = rm.DropSlot(ctx, cdc.Slot); err == nil || !strings.Contains(err.Error(), "in use") || ctx.Err() != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err == nil {
			err = rm.DropPublication(ctx, cdc.Publication)
		}
	}
	if err != nil {
		return fmt.Sprintf("%s; dropping it (auto_drop_slot) failed: %v", head, err)
	}
	return fmt.Sprintf("%s: sluice dropped it and publication %s (auto_drop_slot), so that the server keeps its disk. Resync required: run `sluice apply` to create them again; the runner then snapshots the source's cdc tables again",
		head, cdc.Publication)
}

// resources opens the resource manager of a source.
func (m *slotMonitor) resources(ctx context.Context, src *config.Source) (providers.ResourceManager, error) {
	if m.openResources != nil {
		return m.openResources(ctx, src)
	}
	return nil, fmt.Errorf("no resource manager to drop the slot of %s (Options.Resources is not set)", src.Address())
}

// slotLost records a source whose slot is gone as failed (resync
// required) and reports whether err was that.
func (m *slotMonitor) slotLost(ctx context.Context, src *config.Source, err error) bool {
	if !errors.Is(err, providers.ErrSlotLost) {
		return false
	}
	ss := &state.SourceStatus{Address: src.Address(), State: "failed", Message: errorText(err) + " (resync required)", UpdatedAt: m.now().UTC()}
	m.notify.SourceLag(ss.Address, lagLevel(ss.State), 0, ss.Message, ss.UpdatedAt)
	m.recordHealth(ctx, ss)
	return true
}

// recordHealth records a source's health as the WAL monitor (or the
// stream) saw it; reportSource keeps it when a table's sync reports.
func (m *slotMonitor) recordHealth(ctx context.Context, ss *state.SourceStatus) {
	m.mu.Lock()
	cp := *ss
	m.health[ss.Address] = &cp
	m.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := m.put(sctx, ss); err != nil {
		m.log.Warn("cannot record source status", "source", ss.Address, "error", err)
	}
}

// withHealth adds what the WAL monitor last saw of the source's slot
// to a source status: its lag, and its state unless ss is worse.
func (m *slotMonitor) withHealth(ss *state.SourceStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h := m.health[ss.Address]; h != nil {
		ss.SlotLagBytes = h.SlotLagBytes
		if ss.State == "healthy" {
			ss.State, ss.Message = h.State, h.Message
		}
	}
}
