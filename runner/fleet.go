package runner

// A fleet: several runners (processes, on any machines) share one
// configuration's work through the postgres state backend. The job engine
// (package runner/fleet: River) decides which runner syncs which batch
// table and when (FleetDue, FleetSync); this file is what a runner does
// with a table once the engine hands it over, and how the runners keep
// each unit of work to one of them at a time: claims (state.Claimer).
//
//   - A batch table's sync runs under the claim "table:<address>": River's
//     unique jobs already keep one job per table, the claim also covers a
//     job River rescued from a runner it took for dead while that runner
//     still ran, and a run -once or sync started by hand.
//   - A source's CDC stream runs under "stream:<source>", taken by
//     whichever runner asks first; when its runner dies, its claim session
//     ends with it and another runner's next attempt (every second) takes
//     the stream over, terminating a walsender the old owner left on the
//     slot (PostgreSQL allows one per slot: the fence).
//   - Every warehouse commit made under a claim checks it right before
//     its commit point (withClaim: a warehouse commit guard), so that a
//     runner that was stopped or partitioned past the claim timeout does
//     not commit after another took its work over.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

type claimCtxKey struct{}

// withClaim returns ctx carrying the claim its commits are made under,
// checked by the warehouse right before its commit point (a commit
// guard), so that the window in which a runner stopped after the check
// could still commit is that of the commit point itself.
func withClaim(ctx context.Context, c state.Claim) context.Context {
	if c == nil {
		return ctx
	}
	ctx = context.WithValue(ctx, claimCtxKey{}, c)
	return warehouse.WithCommitGuard(ctx, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := c.Check(cctx); err != nil {
			return fmt.Errorf("not committing: %w (another runner may have taken this work over)", err)
		}
		return nil
	})
}

// claimOf returns the claim ctx carries, nil outside a fleet.
func claimOf(ctx context.Context) state.Claim {
	c, _ := ctx.Value(claimCtxKey{}).(state.Claim)
	return c
}

// fleet reports whether this runner shares its work with others.
func (r *Runner) fleet() bool { return r.opt.Claims != nil }

// Fleet claim keys.
func tableClaim(addr string) string  { return "table:" + addr }
func streamClaim(addr string) string { return "stream:" + addr }

// job returns the applied table at addr.
func (r *Runner) job(addr string) (job, bool) {
	jobs, _ := r.jobs()
	for _, j := range jobs {
		if j.addr == addr {
			return j, true
		}
	}
	return job{}, false
}

// refreshStatus replaces the runner's record of a table with the one in
// the status store: in a fleet, other runners sync it too.
func (r *Runner) refreshStatus(ctx context.Context, addrs ...string) error {
	if rd, ok := r.opt.Backend.(state.TableStatusReader); ok && len(addrs) == 1 {
		ts, err := rd.ReadTableStatus(ctx, addrs[0])
		if err != nil {
			return err
		}
		if ts != nil {
			r.mu.Lock()
			r.status[addrs[0]] = ts
			r.mu.Unlock()
		}
		return nil
	}
	st, err := r.opt.Status.ReadStatus(ctx)
	if err != nil {
		return fmt.Errorf("reading status: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, addr := range addrs {
		if ts := st.Tables[addr]; ts != nil {
			cp := *ts
			r.status[addr] = &cp
		}
	}
	return nil
}

// FleetDue returns the batch tables due now, for the job engine to hand
// out: every applied, enabled table that is not cdc whose schedule (from
// the shared status records) says so, or whose resync was requested. It
// first marks the running records of runners that are gone as
// interrupted.
func (r *Runner) FleetDue(ctx context.Context) ([]string, error) {
	if err := r.Load(ctx); err != nil {
		return nil, err
	}
	st, err := r.opt.Status.ReadStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading status: %w", err)
	}
	r.interruptDead(ctx, st)
	jobs, _ := r.jobs()
	now := r.opt.Now()
	var due []string
	for _, j := range jobs {
		if !j.table.Enabled || j.table.Sync == config.SyncCDC {
			continue
		}
		ts := st.Tables[j.addr]
		if ts != nil && ts.State == state.StateRunning {
			continue
		}
		ok, _, err := NextSync(j.table, ts, now)
		if err != nil {
			// FleetSync records it, naming the table.
			ok = ts == nil || ts.State != state.StateFailed
		}
		if ok {
			due = append(due, j.addr)
		}
	}
	return due, nil
}

// interruptDead marks the running records whose runner's claim session is
// gone (killed, lost machine) as interrupted, so that their tables are
// due again.
func (r *Runner) interruptDead(ctx context.Context, st *state.Status) {
	reg, ok := r.opt.Backend.(state.RunnerRegistry)
	if !ok {
		return
	}
	var running []*state.TableStatus
	for _, addr := range st.TableAddrs() {
		if ts := st.Tables[addr]; ts.State == state.StateRunning {
			running = append(running, ts)
		}
	}
	if len(running) == 0 {
		return
	}
	runners, err := reg.Runners(ctx)
	if err != nil {
		r.opt.Logger.Warn("cannot read the runners", "error", err)
		return
	}
	alive := map[string]bool{}
	for _, rs := range runners {
		if rs.Alive {
			alive[rs.Instance] = true
		}
	}
	for _, ts := range running {
		if ts.Owner != nil && alive[ts.Owner.Instance] {
			continue
		}
		if h, err := r.opt.Claims.Holder(ctx, tableClaim(ts.Address)); err != nil || h != nil {
			continue
		}
		r.opt.Logger.Warn("a sync was interrupted when its runner stopped; it runs again", "table", ts.Address, "runner", ts.Runner)
		state.Interrupt(ts)
		if err := r.opt.Status.PutTableStatus(ctx, ts); err != nil {
			r.opt.Logger.Warn("cannot record status", "table", ts.Address, "error", err)
		}
		r.mu.Lock()
		if mine := r.status[ts.Address]; mine != nil {
			*mine = *ts
		}
		r.mu.Unlock()
	}
}

// ErrTableBusy is wrapped by FleetSync's error when another runner syncs
// the table: the job engine tries again later.
var ErrTableBusy = errors.New("another runner syncs this table")

// FleetSync runs one sync of the table at addr for the job engine, under
// its claim, when it is still due (another runner may have synced it
// since it was handed out) or retry says this is the engine's retry of a
// failed attempt. It makes one attempt: the engine retries a failure
// Transient reports, with RetryDelay between attempts. A table no longer
// applied, disabled or streamed (cdc) is nothing to do.
func (r *Runner) FleetSync(ctx context.Context, addr string, retry bool) error {
	if err := r.loadRecent(ctx, addr); err != nil {
		return err
	}
	j, ok := r.job(addr)
	if !ok || !j.table.Enabled || j.table.Sync == config.SyncCDC {
		return nil
	}
	claim, err := r.opt.Claims.TryClaim(ctx, tableClaim(addr))
	if err != nil {
		var claimed *state.ClaimedError
		if errors.As(err, &claimed) {
			return fmt.Errorf("%w: %w", ErrTableBusy, err)
		}
		return err
	}
	defer claim.Release(context.WithoutCancel(ctx))
	if err := r.refreshStatus(ctx, addr); err != nil {
		return err
	}
	if ok, _, derr := r.due(j, r.opt.Now()); !ok && !(retry && derr == nil) {
		if derr != nil {
			r.recorder.failed(ctx, j, r.opt.Now(), derr)
			return nil
		}
		return nil
	}
	r.setRunning(j.addr, true)
	defer r.setRunning(j.addr, false)
	return r.runJobAttempts(withClaim(ctx, claim), j, 1)
}

// fleetLoadEvery bounds how often a fleet runner reads the applied state
// for the syncs it is handed (a state a second old is what a sync that
// started a second ago runs with anyway).
const fleetLoadEvery = time.Second

// loadRecent reads the applied state unless it was read within
// fleetLoadEvery and holds addr.
func (r *Runner) loadRecent(ctx context.Context, addr string) error {
	r.mu.Lock()
	fresh := time.Since(r.loadedAt) < fleetLoadEvery
	r.mu.Unlock()
	if fresh {
		if _, ok := r.job(addr); ok {
			return nil
		}
	}
	return r.Load(ctx)
}

// RetryAttempts is how many attempts a sync gets before it waits for its
// next scheduled time; RetryDelay is the wait before attempt+1.
func (r *Runner) RetryAttempts() int { return r.opt.Retry.Attempts }

// RetryDelay is the wait after a failed attempt (1-based) before the next.
func (r *Runner) RetryDelay(attempt int) time.Duration { return r.opt.Retry.backoff(attempt) }

// streamOwner is a fleet runner's part in the CDC streams: it claims the
// streams of sources no runner streams, keeps checking the claims it
// holds, and says which sources it streams.
type streamOwner struct {
	r        *Runner
	owned    map[string]state.Claim
	nextTry  time.Time
	nextLook time.Time
}

func newStreamOwner(r *Runner) *streamOwner {
	return &streamOwner{r: r, owned: map[string]state.Claim{}}
}

// claimCheckEvery is how often a runner makes sure it still holds the
// claims of the streams it runs (besides before each commit).
const claimCheckEvery = 2 * time.Second

// groups returns the groups of the sources this runner streams, and their
// claims: those it holds still, and those it could claim now.
func (o *streamOwner) groups(ctx context.Context, all map[string][]job, now time.Time) (map[string][]job, map[string]state.Claim) {
	r := o.r
	for addr, c := range o.owned {
		if _, ok := all[addr]; !ok {
			c.Release(ctx)
			delete(o.owned, addr)
		}
	}
	if !now.Before(o.nextLook) {
		o.nextLook = now.Add(claimCheckEvery)
		for addr, c := range o.owned {
			if err := c.Check(ctx); err != nil && ctx.Err() == nil {
				r.opt.Logger.Error("lost the claim of a cdc stream: stopping it; another runner takes it over", "source", addr, "error", err)
				c.Release(ctx)
				delete(o.owned, addr)
			}
		}
	}
	// A runner that streams more sources waits longer before claiming
	// another, so that the streams spread over the runners.
	if !now.Before(o.nextTry) && ctx.Err() == nil {
		o.nextTry = now.Add(time.Duration(1+len(o.owned)) * time.Second)
		for _, addr := range sortedKeys(all) {
			if _, ok := o.owned[addr]; ok {
				continue
			}
			c, err := r.opt.Claims.TryClaim(ctx, streamClaim(addr))
			if err != nil {
				var claimed *state.ClaimedError
				if !errors.As(err, &claimed) && ctx.Err() == nil {
					r.opt.Logger.Warn("cannot claim a cdc stream", "source", addr, "error", err)
				}
				continue
			}
			r.opt.Logger.Info("claimed the cdc stream", "source", addr)
			o.owned[addr] = c
			break // one at a time: the next waits for the next try
		}
	}
	mine := map[string][]job{}
	for addr := range o.owned {
		mine[addr] = all[addr]
	}
	return mine, o.owned
}

// release gives back every stream claim (at shutdown, once the streams
// stopped), so that another runner takes them over at once.
func (o *streamOwner) release(ctx context.Context) {
	for addr, c := range o.owned {
		c.Release(ctx)
		delete(o.owned, addr)
	}
}

// renewClaims opens a new claim session when the runner's was lost (the
// state database restarted, or ended it while this process was stopped):
// the claims of the old one are lost, and their work stops at its next
// check or commit.
func (r *Runner) renewClaims(ctx context.Context) {
	select {
	case <-r.opt.Claims.Lost():
	default:
		return
	}
	if time.Since(r.claimsRenewed) < 5*time.Second {
		return
	}
	r.claimsRenewed = time.Now()
	if err := r.opt.Claims.Renew(ctx); err != nil {
		if ctx.Err() == nil {
			r.opt.Logger.Error("the runner's claim session ended, and a new one cannot be opened yet", "error", err)
		}
		return
	}
	r.opt.Logger.Warn("the runner's claim session had ended (the state database restarted, or this runner stopped answering past the claim timeout): its claims were lost, and a new session was opened")
}

// claimOnce takes the claims of the tables and streams a run -once or
// sync of a fleet runner is about to run. What another runner syncs or
// streams now is left to it (not failed, not run: ran says so), and
// logged. release gives the claims back.
func (r *Runner) claimOnce(ctx context.Context, due, cdc []job, ran map[string]bool) (keptDue, keptCDC []job, claims map[string]state.Claim, release func()) {
	claims = map[string]state.Claim{}
	r.mu.Lock()
	r.elsewhere = map[string]string{}
	r.mu.Unlock()
	release = func() {
		for _, c := range claims {
			c.Release(context.WithoutCancel(ctx))
		}
	}
	take := func(key string) (bool, string) {
		if _, ok := claims[key]; ok {
			return true, ""
		}
		c, err := r.opt.Claims.TryClaim(ctx, key)
		if err != nil {
			var claimed *state.ClaimedError
			if errors.As(err, &claimed) && claimed.Holder != nil {
				return false, "runner " + claimed.Holder.ID
			}
			return false, err.Error()
		}
		claims[key] = c
		return true, ""
	}
	for _, j := range due {
		if ok, who := take(tableClaim(j.addr)); ok {
			keptDue = append(keptDue, j)
		} else {
			r.opt.Logger.Info("not synced here: another runner syncs it now", "table", j.addr, "by", who)
			ran[j.addr] = false
			r.elsewhere[j.addr] = "synced now by " + who
		}
	}
	for _, j := range cdc {
		if ok, who := take(streamClaim(j.src.Address())); ok {
			keptCDC = append(keptCDC, j)
		} else {
			r.opt.Logger.Info("not streamed here: another runner streams its source", "table", j.addr, "by", who)
			ran[j.addr] = false
			r.elsewhere[j.addr] = "streamed by " + who
		}
	}
	return keptDue, keptCDC, claims, release
}

// fleetCounter is the backend's shared webhook counters, for a fleet
// runner.
func fleetCounter(opt Options) state.WebhookCounter {
	c, ok := opt.Backend.(state.WebhookCounter)
	if !ok || opt.Claims == nil {
		return nil
	}
	return c
}
