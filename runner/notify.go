package runner

import (
	"context"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/runner/notify"
	"github.com/sluice-dev/sluice/state"
)

// Notifications (Options.Notify, package runner/notify) follow the table
// status records: a record that becomes failed is a failure, one that
// becomes completed after a failure a recovery. A failure is deduplicated
// within the runner's life by the notifier, and across runs (run -once
// from cron) by the record itself: a table whose previous record is
// already failed was notified then, so it sends no new failure, and its
// next success is a recovery.

// staleEvery is how often the daemon looks for stale tables.
const staleEvery = time.Minute

// notifiedFailure reports whether a record is a failure that was
// notified: not a sync interrupted by its runner's end, nor one abandoned
// at a shutdown, which are no failures of the table.
func notifiedFailure(ts *state.TableStatus) bool {
	return ts.State == state.StateFailed && notifiable(ts.LastError)
}

func notifiable(errText string) bool {
	return errText != state.InterruptedError && !strings.Contains(errText, context.Canceled.Error())
}

// notifyStatus tells the notifier of a table's new record; wasFailed says
// whether the record it replaced was a notified failure.
func (r *Runner) notifyStatus(wasFailed bool, ts *state.TableStatus) {
	n := r.opt.Notify
	if n == nil {
		return
	}
	if wasFailed {
		n.Seed(ts.Address)
	}
	switch ts.State {
	case state.StateFailed:
		if notifiable(ts.LastError) {
			n.TableFailed(ts.Address, ts.LastError, r.opt.Now())
		}
	case state.StateCompleted:
		n.TableSucceeded(ts.Address, ts.LastSyncAt)
	}
}

// checkStale looks for stale tables every staleEvery: enabled batch and
// webhook tables whose last successful sync is older than a notify
// block's stale_after. A cdc table is as fresh as its stream, which
// wal_lag watches: a quiet source commits nothing for hours. A fleet
// runner looks at the shared records of the tables it synced last, so
// that one runner speaks of each table.
func (r *Runner) checkStale(ctx context.Context, jobs []job, now time.Time) {
	if r.opt.Notify == nil || now.Sub(r.staleChecked) < staleEvery {
		return
	}
	r.staleChecked = now
	records := map[string]state.TableStatus{}
	if r.fleet() {
		st, err := r.opt.Status.ReadStatus(ctx)
		if err != nil {
			r.opt.Logger.Warn("cannot read status to look for stale tables", "error", err)
			return
		}
		for addr, ts := range st.Tables {
			if ts.Runner == r.id() {
				records[addr] = *ts
			}
		}
	} else {
		for _, ts := range r.Statuses() {
			records[ts.Address] = ts
		}
	}
	var tables []notify.Freshness
	for _, j := range jobs {
		ts, ok := records[j.addr]
		if !ok || !j.table.Enabled || j.table.Sync == config.SyncCDC {
			continue
		}
		tables = append(tables, notify.Freshness{Address: j.addr, LastSyncAt: ts.LastSyncAt})
	}
	r.opt.Notify.CheckStale(tables, now)
}

// lagLevel is the notifier's level of a slot's state.
func lagLevel(slotState string) string {
	switch slotState {
	case "warning":
		return "warning"
	case "failed":
		return "critical"
	}
	return ""
}
