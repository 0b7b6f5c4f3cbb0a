package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/state"
)

func init() { implement("status", runStatus) }

// statusJSON is `status -json` (SPEC §6).
type statusJSON struct {
	Tables  []tableStatusJSON  `json:"tables"`
	Sources []sourceStatusJSON `json:"sources"`
	// Runners are the runners of a fleet (postgres state backend) seen in
	// the last day, with their last heartbeat.
	Runners []runnerStatusJSON `json:"runners,omitempty"`
}

// runnerStatusJSON is one runner of a fleet.
type runnerStatusJSON struct {
	ID            string    `json:"id"`
	Instance      string    `json:"instance"`
	Host          string    `json:"host"`
	PID           int       `json:"pid"`
	Operation     string    `json:"operation"`
	Started       time.Time `json:"started"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// State is "running" (its claim session is open), "stopped" (it
	// stopped cleanly at StoppedAt) or "gone" (killed, or cut off from
	// the state database: its claims were freed).
	State     string     `json:"state"`
	StoppedAt *time.Time `json:"stopped_at,omitempty"`
}

type tableStatusJSON struct {
	Address        string     `json:"address"`
	WarehouseTable string     `json:"warehouse_table"`
	Sync           string     `json:"sync"`
	State          string     `json:"state"`
	RowsSynced     int64      `json:"rows_synced"`
	LastSyncAt     *time.Time `json:"last_sync_at"`
	NextSyncAt     *time.Time `json:"next_sync_at"`
	LastError      string     `json:"last_error"`
	Warnings       int64      `json:"warnings"`
	ResyncPending  bool       `json:"resync_pending,omitempty"`
	// MetadataLocation and SnapshotID name the table's current version
	// in an Iceberg warehouse (the metadata file a reader opens, and its
	// current snapshot); left out for the other warehouses.
	MetadataLocation string `json:"metadata_location,omitempty"`
	SnapshotID       int64  `json:"snapshot_id,omitempty"`
	// Runner is the runner (`run -id`) that last synced the table; ""
	// when none recorded it.
	Runner string `json:"runner"`
}

type sourceStatusJSON struct {
	Address        string     `json:"address"`
	State          string     `json:"state"`
	SlotLagBytes   int64      `json:"slot_lag_bytes"`
	Message        string     `json:"message,omitempty"`
	WebhookURL     string     `json:"webhook_url,omitempty"`
	LastEventAt    *time.Time `json:"last_event_at,omitempty"`
	EventsReceived int64      `json:"events_received,omitempty"`
	EventsRejected int64      `json:"events_rejected,omitempty"`
	EventsApplied  int64      `json:"events_applied,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// runStatus shows what the runner recorded for every applied table and
// source. It reads state and status only, so with the postgres backend it
// works from any machine, without source credentials.
func runStatus(e *env, args []string) int {
	c := findCommand("status")
	fs := newFlags(e, c)
	jsonOut := fs.Bool("json", false, "print as JSON (SPEC §6)")
	var vf varFlags
	vf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 1 {
		fmt.Fprintln(e.stderr, "Error: status takes at most one address.")
		return exitError
	}
	ctx, stop := commandContext()
	defer stop()
	b, st, code := e.readState(ctx, &vf)
	if code != proceed {
		return code
	}
	defer b.Close()
	store, err := state.Statuses(b)
	if err == nil {
		var status *state.Status
		if status, err = store.ReadStatus(ctx); err == nil {
			var runners []state.RunnerStatus
			if runners, err = readRunners(ctx, b); err == nil {
				if err = markInterrupted(ctx, b, status, runners); err == nil {
					out := buildStatus(st, status, pos, time.Now())
					out.Runners = runnersJSON(runners)
					return e.printStatus(out, *jsonOut, pos)
				}
			}
		}
	}
	fmt.Fprintf(e.stderr, "Error: %s\n", err)
	return exitError
}

// markInterrupted shows the syncs whose runner is gone (killed, or its
// machine stopped) as failed rather than running: a running record is
// running only while its runner holds the runner lock. The next runner
// records the same.
// In a fleet, a running record is running while its runner's claim
// session is open (runners).
func markInterrupted(ctx context.Context, b state.Backend, status *state.Status, runners []state.RunnerStatus) error {
	locker, ok := b.(state.RunnerLocker)
	if !ok {
		return nil
	}
	holder, err := locker.RunnerHolder(ctx)
	if err != nil {
		return err
	}
	alive := map[string]bool{}
	for _, r := range runners {
		if r.Alive {
			alive[r.Instance] = true
		}
	}
	for _, ts := range status.Tables {
		if ts.State != state.StateRunning || state.RunnerAlive(ts.Owner, holder) || ts.Owner != nil && alive[ts.Owner.Instance] {
			continue
		}
		state.Interrupt(ts)
	}
	return nil
}

// readRunners returns the runners of a fleet the backend recorded (none
// for the local backend).
func readRunners(ctx context.Context, b state.Backend) ([]state.RunnerStatus, error) {
	reg, ok := b.(state.RunnerRegistry)
	if !ok {
		return nil, nil
	}
	return reg.Runners(ctx)
}

func runnersJSON(runners []state.RunnerStatus) []runnerStatusJSON {
	var out []runnerStatusJSON
	for _, r := range runners {
		rj := runnerStatusJSON{ID: r.ID, Instance: r.Instance, Host: r.Host, PID: r.PID, Operation: r.Operation,
			Started: r.Started.UTC(), LastHeartbeat: r.LastHeartbeat.UTC(), State: "running", StoppedAt: timePtr(r.Stopped)}
		switch {
		case !r.Stopped.IsZero():
			rj.State = "stopped"
		case !r.Alive:
			rj.State = "gone"
		}
		out = append(out, rj)
	}
	return out
}

// buildStatus joins the applied state and the status records. The next
// sync time is computed from the table's applied frequency, so that it
// follows a frequency changed by apply before the runner noticed.
func buildStatus(st *state.State, status *state.Status, filter []string, now time.Time) statusJSON {
	out := statusJSON{Tables: []tableStatusJSON{}, Sources: []sourceStatusJSON{}}
	match := func(addr string) bool {
		if len(filter) == 0 {
			return true
		}
		return addr == filter[0] || strings.HasPrefix(addr, filter[0]+"/")
	}
	for _, saddr := range st.SourceAddrs() {
		src := st.Sources[saddr]
		for _, name := range src.TableNames() {
			t := src.Tables[name]
			addr := saddr + "/" + name
			if !match(addr) {
				continue
			}
			tj := tableStatusJSON{Address: addr, WarehouseTable: t.WarehouseTable, Sync: string(t.Sync), State: state.StatePending}
			if ts := status.Tables[addr]; ts != nil {
				tj.State, tj.RowsSynced, tj.LastError, tj.Warnings = ts.State, ts.RowsSynced, ts.LastError, ts.Warnings
				tj.Runner = ts.Runner
				tj.MetadataLocation, tj.SnapshotID = ts.MetadataLocation, ts.SnapshotID
				tj.LastSyncAt, tj.NextSyncAt = timePtr(ts.LastSyncAt), timePtr(ts.NextSyncAt)
				tj.ResyncPending = !t.ResyncRequestedAt.IsZero() && t.ResyncRequestedAt.After(ts.LastFullSyncAt)
				if t.Enabled && config.SyncType(t.Sync) != config.SyncCDC && ts.State != state.StateRunning {
					_, next, err := runner.NextSync(t, ts, now.UTC())
					tj.NextSyncAt = timePtr(next)
					if err != nil {
						tj.State, tj.LastError = state.StateFailed, addr+": "+err.Error()
					}
				}
			} else {
				tj.ResyncPending = !t.ResyncRequestedAt.IsZero()
			}
			if !t.Enabled {
				tj.State = state.StateDisabled
			}
			out.Tables = append(out.Tables, tj)
		}
		if len(filter) > 0 && filter[0] != saddr && !strings.HasPrefix(filter[0], saddr+"/") {
			continue
		}
		sj := sourceStatusJSON{Address: saddr, State: "unknown"}
		if ss := status.Sources[saddr]; ss != nil {
			sj.State, sj.SlotLagBytes, sj.Message = ss.State, ss.SlotLagBytes, ss.Message
			sj.WebhookURL, sj.LastEventAt = ss.WebhookURL, timePtr(ss.LastEventAt)
			sj.EventsReceived, sj.EventsRejected, sj.EventsApplied = ss.EventsReceived, ss.EventsRejected, ss.EventsApplied
		} else {
			sj.Message = "no runner has reported on this source yet"
		}
		out.Sources = append(out.Sources, sj)
	}
	return out
}

func (e *env) printStatus(s statusJSON, jsonOut bool, filter []string) int {
	if len(filter) > 0 && len(s.Tables) == 0 && len(s.Sources) == 0 {
		fmt.Fprintf(e.stderr, "Error: %s is not recorded in state; run `sluice state list` for the recorded addresses.\n", filter[0])
		return exitError
	}
	if jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
		return exitOK
	}
	if len(s.Tables) == 0 && len(s.Sources) == 0 {
		fmt.Fprintln(e.stdout, "Nothing is applied yet: run `sluice plan` and `sluice apply`, then `sluice run`.")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tWAREHOUSE TABLE\tSYNC\tSTATE\tROWS\tLAST SYNC\tNEXT SYNC")
	for _, t := range s.Tables {
		state := t.State
		if t.ResyncPending {
			state += " (resync pending)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", t.Address, t.WarehouseTable, t.Sync, state, t.RowsSynced, showTime(t.LastSyncAt), showTime(t.NextSyncAt))
	}
	tw.Flush()
	for _, t := range s.Tables {
		if t.LastError != "" {
			fmt.Fprintf(e.stdout, "\n%s: %s\n", t.Address, t.LastError)
		}
		if t.Warnings > 0 {
			fmt.Fprintf(e.stdout, "\n%s: its last sync wrote %d values as NULL that the warehouse column's type cannot hold (in Parquet: numeric NaN, infinite dates and timestamps, multi-dimensional arrays); a PostgreSQL warehouse keeps them\n", t.Address, t.Warnings)
		}
	}
	fmt.Fprintln(e.stdout)
	if len(s.Runners) > 0 {
		tw = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tLAST SYNCED BY")
		for _, t := range s.Tables {
			if t.Runner != "" {
				fmt.Fprintf(tw, "%s\t%s\n", t.Address, t.Runner)
			}
		}
		tw.Flush()
		fmt.Fprintln(e.stdout)
		tw = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RUNNER\tSTATE\tHOST\tPID\tSTARTED\tLAST HEARTBEAT")
		for _, r := range s.Runners {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.State, r.Host, r.PID, showTime(&r.Started), showTime(&r.LastHeartbeat))
		}
		tw.Flush()
		fmt.Fprintln(e.stdout)
	}
	tw = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSTATE\tSLOT LAG\tNOTE")
	for _, src := range s.Sources {
		note := src.Message
		if src.WebhookURL != "" {
			note = strings.TrimSpace(fmt.Sprintf("%s webhook %s: %d received, %d rejected, %d applied", note, src.WebhookURL, src.EventsReceived, src.EventsRejected, src.EventsApplied))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", src.Address, src.State, src.SlotLagBytes, note)
	}
	tw.Flush()
	return exitOK
}

func showTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("2006-01-02 15:04:05Z")
}
