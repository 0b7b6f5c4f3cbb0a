package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/state"
)

// Sync requests (state.SyncRequest) are how `sluice sync` hands tables to
// the runner holding the runner lock. The daemon lists them every second
// and syncs their tables now, whatever their schedule:
//
//   - A batch table is answered by the first sync of it that starts after
//     the daemon took the request. A sync already running then finishes,
//     and the table runs again: only a sync that started after the
//     request is sure to see what was committed before it.
//   - A cdc table is streamed all along: when the daemon takes the
//     request it reads the source's WAL position, and answers the table
//     with its status once everything committed before that position is
//     committed to its warehouse tables, however far behind the stream is
//     (see watchCDC in cdcrequests.go); a stream that fails meanwhile, or
//     a slot that is lost, fails it.
//   - A webhook table whose bulk load is not due is answered with its
//     status: the daemon applies journaled events as they arrive. Due, it
//     is synced as a batch table.
//
// run -once and sync take the pending requests too when they start: a
// request whose daemon stopped is run by the next runner, or expires (not
// run) after state.SyncRequestExpiry.

// activeRequest is a request this runner took and has not answered.
type activeRequest struct {
	req     *state.SyncRequest
	waiting map[string]bool // tables whose answering sync has not started
	running map[string]bool // tables whose answering sync runs
	passive map[string]bool // answered with their status at readyAt
	readyAt time.Time
	// cdc are the cdc tables whose stream has not reached the request's
	// target yet (cdcrequests.go); takenAt is when this runner took it.
	cdc     map[string]bool
	takenAt time.Time
	results map[string]state.TableStatus
}

// tables are every table the request syncs (not those refused at take).
func (a *activeRequest) tables() []string {
	var out []string
	for _, m := range []map[string]bool{a.waiting, a.running, a.passive, a.cdc} {
		out = append(out, sortedKeys(m)...)
	}
	return out
}

// requestListWarnEvery bounds the warnings about a request store that
// cannot be read (listed every second).
const requestListWarnEvery = 5 * time.Minute

// takeRequests takes the requests no live runner has: those not taken,
// and those taken by a runner that stopped before answering (this runner
// holds the lock, so any other is gone). It removes done requests older
// than state.SyncRequestKeep and expires untaken ones older than
// state.SyncRequestExpiry. The taken ones are recorded as taken by this
// runner, and returned.
func (r *Runner) takeRequests(ctx context.Context, jobs []job, now time.Time) []*activeRequest {
	store := r.opt.Requests
	if store == nil {
		return nil
	}
	reqs, err := store.ListSyncRequests(ctx)
	if err != nil {
		if ctx.Err() == nil && now.Sub(r.requestWarned) >= requestListWarnEvery {
			r.requestWarned = now
			r.opt.Logger.Warn("cannot read sync requests; trying again every second", "error", err)
		}
		return nil
	}
	var taken []*activeRequest
	reloaded := false
	for _, req := range reqs {
		r.mu.Lock()
		_, active := r.requests[req.ID]
		r.mu.Unlock()
		switch {
		case active:
			continue
		case req.Done():
			if now.Sub(req.DoneAt) > state.SyncRequestKeep {
				_ = store.DeleteSyncRequest(ctx, req.ID)
			}
			continue
		case now.Sub(req.RequestedAt) > state.SyncRequestExpiry:
			req.DoneAt = now.UTC()
			req.Error = fmt.Sprintf("expired: no runner took it within %s of the request; it was not run", state.SyncRequestExpiry)
			r.opt.Logger.Warn("a sync request expired before a runner took it; it was not run", "request", req.ID, "tables", req.Tables, "requested_at", req.RequestedAt, "by", req.RequestedBy)
			r.putRequest(ctx, req)
			continue
		case req.Runner != "" && (r.opt.Owner == nil || req.Runner != r.opt.Owner.ID):
			r.opt.Logger.Warn("taking a sync request whose runner stopped before answering it", "request", req.ID, "tables", req.Tables)
		}
		if !reloaded && !r.knowsAll(jobs, req.Tables) {
			// Applied after this runner last read state?
			if err := r.Load(ctx); err == nil {
				jobs, _ = r.jobs()
			}
			reloaded = true
		}
		a := r.activate(req, jobs, now)
		req.TakenAt = now.UTC()
		if r.opt.Owner != nil {
			req.Runner = r.opt.Owner.ID
		}
		r.opt.Logger.Info("sync requested", "request", req.ID, "tables", req.Tables, "by", req.RequestedBy)
		r.putRequest(ctx, req)
		taken = append(taken, a)
	}
	return taken
}

func (r *Runner) knowsAll(jobs []job, addrs []string) bool {
	known := map[string]bool{}
	for _, j := range jobs {
		known[j.addr] = true
	}
	for _, a := range addrs {
		if !known[a] {
			return false
		}
	}
	return true
}

// activate sorts a request's tables into those synced now, those answered
// with their status, and those refused (answered at once as failed).
func (r *Runner) activate(req *state.SyncRequest, jobs []job, now time.Time) *activeRequest {
	a := &activeRequest{req: req, waiting: map[string]bool{}, running: map[string]bool{}, passive: map[string]bool{},
		cdc: map[string]bool{}, takenAt: now, results: map[string]state.TableStatus{}, readyAt: now.Add(2 * r.opt.CDCFlushInterval)}
	byAddr := map[string]job{}
	for _, j := range jobs {
		byAddr[j.addr] = j
	}
	for _, addr := range req.Tables {
		j, ok := byAddr[addr]
		switch {
		case !ok:
			a.results[addr] = state.TableStatus{Address: addr, State: state.StateFailed,
				LastError: "not synced: it is not an applied table of a configured source (did an apply remove it, or its source block?)"}
		case !j.table.Enabled:
			a.results[addr] = state.TableStatus{Address: addr, State: state.StateFailed,
				LastError: "not synced: it is disabled (enabled = false)"}
		case config.SyncType(j.table.Sync) == config.SyncCDC:
			a.cdc[addr] = true
		case config.SyncType(j.table.Sync) == config.SyncWebhook:
			r.mu.Lock()
			due, _, _ := NextSync(j.table, r.status[addr], now)
			r.mu.Unlock()
			if due {
				a.waiting[addr] = true
			} else {
				a.passive[addr] = true
			}
		default:
			a.waiting[addr] = true
		}
	}
	return a
}

// putRequest records a request, with a context of its own: an answer
// written at shutdown must not be lost.
func (r *Runner) putRequest(ctx context.Context, req *state.SyncRequest) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.opt.Requests.PutSyncRequest(sctx, req); err != nil {
		r.opt.Logger.Warn("cannot record sync request", "request", req.ID, "error", err)
	}
}

// finishRequest records a request's answer: every table's result, in the
// order it was asked for.
func (r *Runner) finishRequest(ctx context.Context, a *activeRequest) {
	req := a.req
	req.Results = req.Results[:0]
	for _, addr := range req.Tables {
		if res, ok := a.results[addr]; ok {
			res.Owner = nil
			req.Results = append(req.Results, res)
		}
	}
	req.DoneAt = r.opt.Now().UTC()
	r.putRequest(ctx, req)
	var failed []string
	for _, res := range req.Results {
		if res.State == state.StateFailed {
			failed = append(failed, res.Address)
		}
	}
	r.opt.Logger.Info("sync request answered", "request", req.ID, "tables", len(req.Results), "failed", failed)
}

// answerTaken answers requests taken by run -once or sync, after their
// syncs: each table's status as they left it.
func (r *Runner) answerTaken(ctx context.Context, taken []*activeRequest) {
	if ctx.Err() != nil {
		// Interrupted: the next runner takes them again.
		return
	}
	for _, a := range taken {
		r.mu.Lock()
		for _, addr := range a.tables() {
			if ts := r.status[addr]; ts != nil {
				a.results[addr] = *ts
			}
		}
		r.mu.Unlock()
		r.finishRequest(ctx, a)
	}
}

// The daemon's side.

// pollRequests takes new requests into the daemon's active ones.
func (r *Runner) pollRequests(ctx context.Context, jobs []job, now time.Time) {
	for _, a := range r.takeRequests(ctx, jobs, now) {
		r.mu.Lock()
		r.requests[a.req.ID] = a
		r.mu.Unlock()
		r.watchCDCTables(ctx, a, jobs)
	}
}

// requested reports whether an active request waits for a sync of addr
// to start.
func (r *Runner) requested(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.requests {
		if a.waiting[addr] {
			return true
		}
	}
	return false
}

// requestStarted hands a starting sync of addr to the requests waiting
// for one.
func (r *Runner) requestStarted(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.requests {
		if a.waiting[addr] {
			delete(a.waiting, addr)
			a.running[addr] = true
		}
	}
}

// requestFinished records the outcome of a sync of addr in the requests
// it answers.
func (r *Runner) requestFinished(ctx context.Context, addr string) {
	if ctx.Err() != nil {
		// A sync abandoned at shutdown answers nothing: the next runner
		// takes the request again.
		return
	}
	r.mu.Lock()
	for _, a := range r.requests {
		if a.running[addr] {
			delete(a.running, addr)
			if ts := r.status[addr]; ts != nil {
				a.results[addr] = *ts
			}
		}
	}
	r.mu.Unlock()
	r.answerRequests(ctx, nil, r.opt.Now())
}

// answerRequests answers the passive tables that are ready, and the
// waiting ones that an apply since the request removed or disabled (jobs:
// the applied tables, nil to skip that check), and records the requests
// whose every table has its result.
func (r *Runner) answerRequests(ctx context.Context, jobs []job, now time.Time) {
	if ctx.Err() != nil {
		return
	}
	var enabled map[string]bool
	if jobs != nil {
		enabled = map[string]bool{}
		for _, j := range jobs {
			enabled[j.addr] = j.table.Enabled
		}
	}
	r.mu.Lock()
	var done []*activeRequest
	for id, a := range r.requests {
		for _, m := range []map[string]bool{a.waiting, a.cdc} {
			for addr := range m {
				if enabled != nil && !enabled[addr] {
					a.results[addr] = state.TableStatus{Address: addr, State: state.StateFailed,
						LastError: "not synced: an apply since the request removed or disabled it"}
					delete(m, addr)
				}
			}
		}
		if !now.Before(a.readyAt) {
			for addr := range a.passive {
				// A bulk load that has not ended is waited for.
				if ts := r.status[addr]; ts == nil || !(ts.State == state.StateRunning || ts.State == state.StatePending && ts.LastError == "") {
					if ts != nil {
						a.results[addr] = *ts
					} else {
						a.results[addr] = state.TableStatus{Address: addr, State: state.StatePending}
					}
					delete(a.passive, addr)
				}
			}
		}
		if len(a.waiting)+len(a.running)+len(a.passive)+len(a.cdc) == 0 {
			done = append(done, a)
			delete(r.requests, id)
		}
	}
	r.mu.Unlock()
	for _, a := range done {
		r.finishRequest(ctx, a)
	}
}
