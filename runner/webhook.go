package runner

// Webhook tables, as the runner sees them: which tables sync by webhook,
// their bulk load (the safety net for events never delivered), and the
// runner's handle on webhook intake (intake.go), which receives,
// journals and applies their events.
//
// A table's committed position holds the sequence number of the last
// journal record merged into it (Position.Extra["webhook_seq"]), in the
// same commit as the rows, so that a crash anywhere neither loses an
// acknowledged event nor applies one twice: on restart, the records past
// the committed number are merged. The bulk load keeps that number.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/runner/journal"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

const (
	// MaxWebhookBody bounds a delivery's body; Stripe's events are far
	// smaller. Larger bodies are answered 413.
	MaxWebhookBody = 1 << 20
	// WebhookSeqKey is the Position.Extra key of the last journal record
	// merged into a webhook table.
	WebhookSeqKey = "webhook_seq"
)

// webhookJobs lists the applied, enabled webhook tables of Stripe sources
// that are in the configuration; of one source when addr is not "".
// loaded is false, and jobs nil, until the runner has read its state.
func (r *Runner) webhookJobs(addr string) (jobs []job, loaded bool) {
	r.mu.Lock()
	loaded = r.st != nil
	r.mu.Unlock()
	if !loaded {
		return nil, false
	}
	all, _ := r.jobs()
	var out []job
	for _, j := range all {
		if j.table.Enabled && j.table.Sync == config.SyncWebhook && j.src.Stripe != nil &&
			(addr == "" || j.src.Address() == addr) {
			out = append(out, j)
		}
	}
	return out, true
}

// webhookURL is the endpoint apply registered for a source, "" when none.
func (r *Runner) webhookURL(addr string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st != nil {
		if rs := r.st.Sources[addr]; rs != nil && rs.Resources.Webhook != nil {
			return rs.Resources.Webhook.URL
		}
	}
	return ""
}

// Close releases the webhook journals. A runner that is not closed (a
// crash) leaves them as they are on disk; the next runner applies what
// they hold.
func (r *Runner) Close() error { return r.hooks.close() }

// WebhookHandler serves POST /webhooks/<source address>: mount it at
// "/webhooks/". Deliveries are bounded by the default WebhookLimits.
func (r *Runner) WebhookHandler() http.Handler { return r.LimitedWebhookHandler(WebhookLimits{}) }

// LimitedWebhookHandler is WebhookHandler with the limits l: how long a
// body may take and how many deliveries may be received at once.
func (r *Runner) LimitedWebhookHandler(l WebhookLimits) http.Handler { return r.hooks.handler(l) }

func positionSeq(pos records.Position) uint64 {
	n, _ := strconv.ParseUint(pos.Extra[WebhookSeqKey], 10, 64)
	return n
}

// syncWebhookTable is the sync of a webhook table: a bulk load (full
// refresh) at the table's frequency, the safety net for events never
// delivered, then the journaled events past it. The bulk load keeps the
// committed journal position, so the events that arrived before or during
// it are applied after it.
func (r *Runner) syncWebhookTable(ctx context.Context, j job) (result, error) {
	mu := r.hooks.tableLock(j.table.WarehouseTable)
	mu.Lock()
	defer mu.Unlock()
	// In a fleet, what the tableLock is within this runner: no other
	// runner applies the source's journal until the load has committed.
	release, err := r.hooks.holdWebhooks(ctx, j.src.Address())
	if err != nil {
		return result{}, err
	}
	defer release()
	src, err := r.opt.Open(ctx, j.src)
	if err != nil {
		return result{}, err
	}
	defer src.Close()
	sr, ok := src.(providers.SnapshotReader)
	if !ok {
		return result{}, fmt.Errorf("%s sources cannot be read by sluice run yet", j.src.Type)
	}
	ws, err := webhookSource(j, src)
	if err != nil {
		return result{}, err
	}
	wt, err := r.opt.Warehouse.Table(ctx, j.table.WarehouseTable)
	if err != nil {
		return result{}, err
	}
	from, _ := wt.Position()
	req := providers.ReadRequest{
		Schema: j.table.Schema, Table: j.table.Table, Columns: j.table.Columns, PrimaryKey: j.table.PrimaryKey,
		BatchRows: r.opt.BatchRows, Parallel: r.opt.Parallel,
	}
	schema, err := sr.Schema(ctx, req)
	if err != nil {
		return result{}, err
	}
	read := func(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (records.Position, error) {
		pos, err := sr.ReadSnapshot(ctx, req, emit)
		pos.Extra = maps.Clone(pos.Extra)
		if pos.Extra == nil {
			pos.Extra = map[string]string{}
		}
		pos.Extra[WebhookSeqKey] = strconv.FormatUint(positionSeq(from), 10)
		return pos, err
	}
	res, err := r.commit(ctx, j, src, wt, schema, req, result{mode: warehouse.Replace, full: true}, read)
	if err != nil {
		return res, err
	}
	applied, rows, err := r.hooks.applyWebhookEvents(ctx, j, ws)
	if errors.Is(err, journal.ErrLocked) {
		r.opt.Logger.Warn("the journaled webhook events are applied by the runner that receives them", "table", j.addr, "error", err)
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("the bulk load committed, but applying the webhook events received since failed: %w", err)
	}
	if applied > 0 {
		res.tableRows = rows
	} else {
		// Under the table's lock, as the applier's maintenance is.
		res.version = r.maint.after(ctx, j.table.WarehouseTable, res.table, res.version)
	}
	return res, nil
}

// putSourceStatus records a source's status with its webhook counters,
// remembering its health for the counters' later writes.
func (r *Runner) putSourceStatus(ctx context.Context, ss *state.SourceStatus) error {
	return r.hooks.putSourceStatus(ctx, ss)
}
