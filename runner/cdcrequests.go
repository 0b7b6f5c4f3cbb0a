package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// Sync requests naming cdc tables, on the daemon: the tables stream all
// along, so a request is answered once the stream has carried to the
// warehouse everything committed before the request. When the daemon
// takes the request, a watcher per source reads the source's WAL position
// (the target, as run -once's drain does) and answers each table of the
// request once
//
//   - each of its warehouse tables committed a position at or past the
//     target, or
//   - the stream handed over a transaction committed at or past the
//     target (so every one before it arrived), and none of the table's
//     changes before the target is buffered or being committed, or
//   - the source's slot is confirmed at or past the target while the
//     table streams: the stream confirms only what every table committed,
//     or, with nothing pending, the server's WAL position (which is how
//     run -once's drain ends on an idle source). An idle table is thus
//     answered within the stream's status interval.
//
// It fails the table when its stream fails after the request was taken,
// when its stream does not carry it (failed at start: dropped at the
// source, a failed snapshot), and when the source's slot is lost or was
// dropped over lag_critical. A daemon that stops before answering leaves
// the request to the next runner.

// cdcWatchInterval is how often a watcher looks at the stream's progress;
// slotWatchInterval how often at most it reads the slot, when that
// decides.
var (
	cdcWatchInterval  = 200 * time.Millisecond
	slotWatchInterval = time.Second
)

// streamProgress is how far a table's stream got towards a target.
type streamProgress int

const (
	progressWaiting   streamProgress = iota // not streaming now (snapshot, restart, failure)
	progressStreaming                       // streaming, not known to be past the target
	progressReached                         // committed everything before the target
	progressNotLive                         // the stream under way does not carry the table
)

// setSink records the sink of the stream under way (nil: none).
func (e *cdcEngine) setSink(s *cdcSink) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sink = s
}

// progress says how far the stream under way got with table addr towards
// target.
func (e *cdcEngine) progress(addr string, target providers.StreamPosition) streamProgress {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sink
	if s == nil {
		return progressWaiting
	}
	var t *cdcTable
	for _, c := range e.tables {
		if c.j.addr == addr {
			t = c
		}
	}
	if t == nil {
		return progressWaiting // an apply changed the source's tables: a new engine comes
	}
	ts := s.tables[t.key]
	if ts == nil {
		return progressNotLive
	}
	// While a sink streams, its tables' positions change under s.mu only.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || ts.inflight {
		return progressWaiting
	}
	at := &cdcOutput{lsn: target}
	reached := true
	for _, o := range t.outs {
		if o.behind(at) {
			reached = false
		}
	}
	if reached || !s.handed.Before(target) && (len(ts.items) == 0 || !ts.items[0].lsn.Before(target)) {
		return progressReached
	}
	return progressStreaming
}

// setEngine records the engine running a source's stream (nil: none).
func (r *Runner) setEngine(src string, e *cdcEngine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e == nil {
		delete(r.engines, src)
	} else {
		r.engines[src] = e
	}
}

// setCDCDown records why a source's stream stays stopped (nil: it does
// not): the watchers fail the requests waiting for it.
func (r *Runner) setCDCDown(src string, err error) {
	r.mu.Lock()
	if err == nil {
		delete(r.cdcDown, src)
	} else {
		r.cdcDown[src] = err
	}
	r.mu.Unlock()
}

// watchCDCTables starts a watcher for each source of the cdc tables of a
// request the daemon took.
func (r *Runner) watchCDCTables(ctx context.Context, a *activeRequest, jobs []job) {
	bySource := map[string][]string{}
	srcs := map[string]*config.Source{}
	r.mu.Lock()
	for _, j := range jobs {
		if a.cdc[j.addr] {
			addr := j.src.Address()
			bySource[addr] = append(bySource[addr], j.addr)
			srcs[addr] = j.src
		}
	}
	r.mu.Unlock()
	for _, addr := range sortedKeys(bySource) {
		r.watchers.Add(1)
		go func() {
			defer r.watchers.Done()
			r.watchCDC(ctx, a, srcs[addr], bySource[addr])
		}()
	}
}

// watchCDC answers the tables (addresses) of source src in request a, as
// described at the top of this file.
func (r *Runner) watchCDC(ctx context.Context, a *activeRequest, src *config.Source, tables []string) {
	srcAddr := src.Address()
	failAll := func(err error) {
		r.mu.Lock()
		for _, addr := range tables {
			if a.cdc[addr] {
				a.results[addr] = failedResult(r.status[addr], addr, err)
				delete(a.cdc, addr)
			}
		}
		r.mu.Unlock()
		r.answerRequests(ctx, nil, r.opt.Now())
	}
	prov, err := r.opt.Open(ctx, src)
	if err != nil {
		if ctx.Err() == nil {
			failAll(fmt.Errorf("cannot connect to %s to read its WAL position: %w", srcAddr, err))
		}
		return
	}
	defer prov.Close()
	wp, ok := prov.(providers.WALPositioner)
	pc, ok2 := prov.(providers.PositionCodec)
	if !ok || !ok2 {
		failAll(fmt.Errorf("%s sources cannot tell their WAL position", src.Type))
		return
	}
	pos, err := wp.CurrentLSN(ctx)
	var target providers.StreamPosition
	if err == nil {
		target, err = pc.DecodePosition(pos)
	}
	if err != nil {
		if ctx.Err() == nil {
			failAll(err)
		}
		return
	}
	r.opt.Logger.Debug("sync request: waiting for the stream to commit what was committed before it", "request", a.req.ID, "source", srcAddr, "target", pos)
	slots, _ := prov.(providers.SlotWatcher)
	tick := time.NewTicker(cdcWatchInterval)
	defer tick.Stop()
	var slotRead time.Time
	for {
		var left []string
		r.mu.Lock()
		for _, addr := range tables {
			if a.cdc[addr] {
				left = append(left, addr)
			}
		}
		r.mu.Unlock()
		if len(left) == 0 || ctx.Err() != nil {
			return
		}
		answered := false
		var streaming []string
		for _, addr := range left {
			p := r.cdcProgress(a, srcAddr, addr, target)
			if p == progressStreaming {
				streaming = append(streaming, addr)
				continue
			}
			answered = r.answerCDC(a, srcAddr, addr, p) || answered
		}
		if len(streaming) > 0 && slots != nil && time.Since(slotRead) >= slotWatchInterval {
			slotRead = time.Now()
			slot, err := slots.SlotStatus(ctx, src.Postgres.CDC.Slot)
			var confirmed providers.StreamPosition
			if err == nil && slot != nil {
				confirmed, err = pc.DecodePosition(slot.ConfirmedFlushLSN)
			}
			if err == nil && slot != nil && !confirmed.Before(target) {
				for _, addr := range streaming {
					// Looked at again after the slot: a table whose
					// stream stopped meanwhile is not known to be there.
					p := r.cdcProgress(a, srcAddr, addr, target)
					if p == progressStreaming {
						p = progressReached
					}
					answered = r.answerCDC(a, srcAddr, addr, p) || answered
				}
			}
		}
		if answered {
			r.answerRequests(ctx, nil, r.opt.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// cdcProgress is how far the daemon's stream got with table addr towards
// target.
func (r *Runner) cdcProgress(a *activeRequest, src, addr string, target providers.StreamPosition) streamProgress {
	r.mu.Lock()
	e := r.engines[src]
	r.mu.Unlock()
	if e == nil {
		return progressWaiting
	}
	return e.progress(addr, target)
}

// answerCDC records table addr's answer in request a when p, or the
// table's status, decides it, and reports whether it did.
func (r *Runner) answerCDC(a *activeRequest, src, addr string, p streamProgress) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !a.cdc[addr] {
		return false
	}
	var ts state.TableStatus
	if cur := r.status[addr]; cur != nil {
		ts = *cur
	} else {
		ts = state.TableStatus{Address: addr, State: state.StatePending}
	}
	failedSince := ts.State == state.StateFailed && !ts.LastAttemptAt.Before(a.takenAt)
	switch {
	case failedSince:
		// The stream failed after the request was taken.
	case r.cdcDown[src] != nil:
		ts = failedResult(&ts, addr, r.cdcDown[src])
	case p == progressNotLive:
		if ts.State != state.StateFailed {
			ts = failedResult(&ts, addr, fmt.Errorf("not synced: the stream of %s does not carry it", src))
		}
	case p == progressReached:
		if ts.State == state.StateFailed {
			// A failure before the request, which the stream has
			// recovered from: this table is synced.
			ts.State, ts.LastError = state.StateCompleted, ""
		}
	default:
		return false
	}
	a.results[addr] = ts
	delete(a.cdc, addr)
	return true
}

// failedResult is a table's status as the failed answer of a request.
func failedResult(cur *state.TableStatus, addr string, err error) state.TableStatus {
	ts := state.TableStatus{Address: addr}
	if cur != nil {
		ts = *cur
	}
	ts.State, ts.LastError = state.StateFailed, errorText(err)
	return ts
}
