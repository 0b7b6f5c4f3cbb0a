// Package apply executes a plan step by step: each step acts on a source
// (publication, slot, webhook) and then records what it did in state, so
// that a failure part-way leaves state true and a re-run finishes the job.
// Every step checks before it acts (the resource managers are idempotent).
package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/planner"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// Options are what Execute works with besides the plan.
type Options struct {
	Config *config.Config
	// State is the state the plan was made from; Execute updates it in
	// place and writes it after every step.
	State   *state.State
	Backend state.Backend
	// FingerprintKey is the backend's key for fingerprints of secrets.
	FingerprintKey []byte
	// Resources opens the resource manager of a configured source.
	Resources func(ctx context.Context, src *config.Source) (providers.ResourceManager, error)
	// Open opens a configured source, for its webhook endpoint
	// (providers.WebhookManager); providers.Open when nil.
	Open func(ctx context.Context, src *config.Source) (providers.Source, error)
	// Progress is told about each step as it starts and ends.
	Progress func(Event)
	Now      func() time.Time
}

// Event reports one step.
type Event struct {
	Change planner.Change
	Done   bool
	Err    error
}

// Result is what an apply did.
type Result struct {
	Applied []planner.Change
	Failed  *planner.Change
}

// Execute applies the plan's changes in order: what each records is the
// change's Planned, as the planner computed it, never the configuration
// read again (the configuration serves for connecting: secrets). It stops
// at the first failure, with state recording every step that succeeded.
func Execute(ctx context.Context, p *planner.Plan, opt Options) (*Result, error) {
	if p.HasErrors() {
		return nil, errors.New("the plan has errors; fix them and plan again")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Progress == nil {
		opt.Progress = func(Event) {}
	}
	if opt.Open == nil {
		opt.Open = providers.Open
	}
	ex := &executor{opt: opt, managers: map[string]providers.ResourceManager{}}
	defer ex.close()
	res := &Result{}
	for _, c := range p.Changes {
		opt.Progress(Event{Change: c})
		if err := ex.step(ctx, c); err != nil {
			failed := c
			res.Failed = &failed
			opt.Progress(Event{Change: c, Done: true, Err: err})
			return res, fmt.Errorf("%s (%s %s): %w", c.Address, c.Action, c.Kind, err)
		}
		if err := opt.Backend.Write(ctx, opt.State); err != nil {
			failed := c
			res.Failed = &failed
			return res, fmt.Errorf("%s: the change was made but recording it in state failed: %w; run apply again to record it", c.Address, err)
		}
		res.Applied = append(res.Applied, c)
		opt.Progress(Event{Change: c, Done: true})
	}
	return res, nil
}

type executor struct {
	opt      Options
	managers map[string]providers.ResourceManager
	webhooks map[string]providers.Source // webhook steps (webhook.go)
}

func (ex *executor) close() {
	for _, m := range ex.managers {
		_ = m.Close()
	}
	for _, p := range ex.webhooks {
		_ = p.Close()
	}
}

func (ex *executor) manager(ctx context.Context, addr string) (providers.ResourceManager, *config.Source, error) {
	src := ex.opt.Config.Source(addr)
	if src == nil {
		return nil, nil, fmt.Errorf("%s is no longer in the configuration, so sluice cannot connect to it; "+
			"put the source block back and run `sluice destroy -target=%s` (or drop its slot and publication by hand), then `sluice state rm %s`", addr, addr, addr)
	}
	if m, ok := ex.managers[addr]; ok {
		return m, src, nil
	}
	if ex.opt.Resources == nil {
		return nil, src, fmt.Errorf("no resource manager for %s sources", src.Type)
	}
	m, err := ex.opt.Resources(ctx, src)
	if err != nil {
		return nil, src, err
	}
	ex.managers[addr] = m
	return m, src, nil
}

func (ex *executor) sourceAddr(c planner.Change) string {
	addr, _, _ := strings.Cut(c.Address, "/")
	return addr
}

// recorded returns the recorded source, recording it first when the plan
// creates it (planned: its settings), or, for a change planned without one
// (a targeted plan whose source change was left out), as configured.
func (ex *executor) recorded(addr string, planned *state.Source) *state.Source {
	rs := ex.opt.State.Sources[addr]
	if rs == nil {
		if planned == nil {
			planned = planner.DesiredSource(ex.opt.Config.Source(addr), nil, ex.opt.FingerprintKey)
		}
		rs = &state.Source{
			Address: planned.Address, Type: planned.Type, Name: planned.Name, Prefix: planned.Prefix,
			Settings: planned.Settings, Fingerprints: planned.Fingerprints,
			Tables:    map[string]*state.Table{},
			AppliedAt: ex.opt.Now().UTC(),
		}
		ex.opt.State.Sources[addr] = rs
	}
	return rs
}

// errUnplanned is a change that does not say what to apply: one made by
// hand, or read from an older saved plan.
func errUnplanned(c planner.Change) error {
	return fmt.Errorf("the plan does not say what to record for this %s change; make a new plan with `sluice plan`", c.Kind)
}

func (ex *executor) step(ctx context.Context, c planner.Change) error {
	switch c.Kind {
	case planner.KindSource:
		return ex.source(ctx, c)
	case planner.KindPublication:
		return ex.publication(ctx, c)
	case planner.KindSlot:
		return ex.slot(ctx, c)
	case planner.KindTable:
		return ex.table(ctx, c)
	case planner.KindWebhook:
		return ex.webhook(ctx, c)
	}
	return fmt.Errorf("apply does not know changes of kind %q", c.Kind)
}

func (ex *executor) source(ctx context.Context, c planner.Change) error {
	addr := c.Address
	if c.Action == planner.Delete {
		rs := ex.opt.State.Sources[addr]
		if rs == nil {
			return nil
		}
		if rs.Resources.Webhook != nil {
			if err := ex.deleteWebhook(ctx, addr, rs); err != nil {
				return err
			}
		}
		if rs.Resources.Slot != nil || (rs.Resources.Publication != nil && rs.Resources.Management != "self_managed") {
			m, _, err := ex.manager(ctx, addr)
			if err != nil {
				return err
			}
			if rs.Resources.Slot != nil {
				if err := m.DropSlot(ctx, rs.Resources.Slot.Name); err != nil {
					return err
				}
				rs.Resources.Slot = nil
				if err := ex.opt.Backend.Write(ctx, ex.opt.State); err != nil {
					return err
				}
			}
			if rs.Resources.Publication != nil && rs.Resources.Management != "self_managed" {
				if err := m.DropPublication(ctx, rs.Resources.Publication.Name); err != nil {
					return err
				}
			}
		}
		delete(ex.opt.State.Sources, addr)
		return nil
	}
	if c.Planned == nil || c.Planned.Source == nil {
		return errUnplanned(c)
	}
	planned := c.Planned.Source
	rs := ex.recorded(addr, planned)
	// The tables' renames are their own steps.
	rs.Prefix = planned.Prefix
	rs.Settings, rs.Fingerprints = planned.Settings, planned.Fingerprints
	rs.AppliedAt = ex.opt.Now().UTC()
	return nil
}

func (ex *executor) publication(ctx context.Context, c planner.Change) error {
	addr := c.Address
	if c.Planned == nil || (c.Planned.Publication == nil && c.Action != planner.Delete) {
		return errUnplanned(c)
	}
	rs := ex.recorded(addr, nil)
	m, _, err := ex.manager(ctx, addr)
	if err != nil {
		return err
	}
	rs.Resources.Management = c.Planned.Management
	managed := c.Planned.Management == "managed"
	if c.Action == planner.Delete {
		if managed && rs.Resources.Publication != nil {
			if err := m.DropPublication(ctx, rs.Resources.Publication.Name); err != nil {
				return err
			}
		}
		rs.Resources.Publication = nil
		return nil
	}
	name, want := c.Planned.Publication.Name, c.Planned.Publication.Tables
	if !managed {
		have, exists, err := m.PublicationTables(ctx, name)
		if err != nil {
			return err
		}
		var missing []string
		for _, t := range want {
			if !slices.Contains(have, t) {
				missing = append(missing, t)
			}
		}
		if !exists || len(missing) > 0 {
			return fmt.Errorf("self-managed publication %s %s; sluice never changes it. Ask a DBA to run:\n\n  %s\n\nthen apply again",
				name, describeMissing(exists, missing), publicationSQL(name, exists, want, missing))
		}
		rs.Resources.Publication = &state.PublicationState{Name: name, Tables: want}
		return nil
	}
	if c.Action == planner.Replace && rs.Resources.Publication != nil && rs.Resources.Publication.Name != name {
		if err := m.DropPublication(ctx, rs.Resources.Publication.Name); err != nil {
			return err
		}
	}
	if err := m.EnsurePublication(ctx, name, want); err != nil {
		return err
	}
	rs.Resources.Publication = &state.PublicationState{Name: name, Tables: want}
	return nil
}

func describeMissing(exists bool, missing []string) string {
	if !exists {
		return "does not exist"
	}
	return "lacks " + strings.Join(missing, ", ")
}

// publicationSQL is what the DBA of a self-managed source must run.
func publicationSQL(name string, exists bool, want, missing []string) string {
	ident := func(q string) string {
		schema, table, err := config.ParseTableName(q)
		if err != nil {
			return q
		}
		return quoteIdent(schema) + "." + quoteIdent(table)
	}
	list := func(ts []string) string {
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = ident(t)
		}
		return strings.Join(out, ", ")
	}
	if !exists {
		return fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true);", quoteIdent(name), list(want))
	}
	return fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s;", quoteIdent(name), list(missing))
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (ex *executor) slot(ctx context.Context, c planner.Change) error {
	addr := c.Address
	if c.Action != planner.Delete && (c.Planned == nil || c.Planned.Slot == nil) {
		return errUnplanned(c)
	}
	rs := ex.recorded(addr, nil)
	m, _, err := ex.manager(ctx, addr)
	if err != nil {
		return err
	}
	old := rs.Resources.Slot
	switch c.Action {
	case planner.Delete:
		if old != nil {
			if err := m.DropSlot(ctx, old.Name); err != nil {
				return err
			}
		}
		rs.Resources.Slot = nil
		return nil
	case planner.Replace:
		if old != nil {
			if err := m.DropSlot(ctx, old.Name); err != nil {
				return err
			}
			rs.Resources.Slot = nil
			if err := ex.opt.Backend.Write(ctx, ex.opt.State); err != nil {
				return err
			}
		}
	}
	planned := c.Planned.Slot
	lsn, err := m.CreateSlot(ctx, planned.Name)
	if err != nil {
		return err
	}
	rs.Resources.Slot = &state.SlotState{Name: planned.Name, Plugin: planned.Plugin, CreatedLSN: lsn, CreatedAt: ex.opt.Now().UTC()}
	return nil
}

func (ex *executor) table(ctx context.Context, c planner.Change) error {
	addr := ex.sourceAddr(c)
	_, name, _ := strings.Cut(c.Address, "/")
	if c.Action == planner.Delete {
		if rs := ex.opt.State.Sources[addr]; rs != nil {
			if old := rs.Tables[name]; old != nil {
				ex.forgetPublished(addr, rs, config.QualifiedName(old.Schema, old.Table))
			}
			delete(rs.Tables, name)
		}
		return nil
	}
	if c.Planned == nil || c.Planned.Table == nil {
		return errUnplanned(c)
	}
	rs := ex.recorded(addr, nil)
	old := rs.Tables[name]
	planned := *c.Planned.Table
	dt := &planned
	if old != nil {
		dt.ResyncRequestedAt, dt.ResyncHistorical = old.ResyncRequestedAt, old.ResyncHistorical
		if c.Action != planner.Resync && old.IncrementalField == dt.IncrementalField {
			dt.Start = old.Start
		}
		if old.WarehouseTable != dt.WarehouseTable {
			if err := renameWarehouseTables(ex.opt.Config, old, dt); err != nil {
				return err
			}
		}
	}
	if c.Action == planner.Resync {
		dt.ResyncRequestedAt, dt.ResyncHistorical = ex.opt.Now().UTC(), false
	}
	if old == nil && dt.HistoricalLoad != nil && dt.Sync.NeedsCursor() && dt.Enabled {
		start, err := ex.cursorStart(ctx, addr, dt)
		if err != nil {
			return err
		}
		dt.Start = &start
	}
	dt.AppliedAt = ex.opt.Now().UTC()
	rs.Tables[name] = dt
	rs.Prefix = c.Planned.Prefix
	return nil
}

// cursorStart is where a new incremental or append table without
// historical load starts: the cursor's greatest value at the source now
// (providers.CursorMarker).
func (ex *executor) cursorStart(ctx context.Context, addr string, dt *state.Table) (records.Position, error) {
	src := ex.opt.Config.Source(addr)
	if src == nil {
		return records.Position{}, fmt.Errorf("%s is not in the configuration", addr)
	}
	p, err := ex.opt.Open(ctx, src)
	if err != nil {
		return records.Position{}, err
	}
	defer p.Close()
	m, ok := p.(providers.CursorMarker)
	if !ok {
		return records.Position{}, fmt.Errorf("%s sources cannot start a table without its history (historical_load = false)", src.Type)
	}
	pos, err := m.CursorMark(ctx, providers.ReadRequest{
		Schema: dt.Schema, Table: dt.Table, Columns: dt.Columns, PrimaryKey: dt.PrimaryKey, Cursor: dt.IncrementalField,
	})
	if err != nil {
		return records.Position{}, fmt.Errorf("finding the greatest %s, where the table starts (historical_load = false): %w", dt.IncrementalField, err)
	}
	return pos, nil
}

// forgetPublished removes a table whose block was removed from the
// publication's recorded tables. The publication step has already
// recorded what it holds when it changed; a table it had no need to drop
// (dropped at the source, which removes it from every publication) would
// otherwise stay recorded, and be reported missing by every plan.
func (ex *executor) forgetPublished(addr string, rs *state.Source, table string) {
	pub := rs.Resources.Publication
	if pub == nil {
		return
	}
	if src := ex.opt.Config.Source(addr); src != nil && src.Postgres != nil && slices.Contains(planner.CDCTables(src), table) {
		return
	}
	pub.Tables = slices.DeleteFunc(slices.Clone(pub.Tables), func(t string) bool { return t == table })
}

// renameWarehouseTables renames a table's Parquet warehouse tables (its
// own and its history table), from the names recorded in state to the new
// ones, when a prefix change renames them. A table that was never synced
// has nothing to rename.
func renameWarehouseTables(cfg *config.Config, old, dt *state.Table) error {
	if cfg.Warehouse.Backend != "parquet" {
		return nil
	}
	root, err := config.ResolvePath(cfg.Dir, cfg.Warehouse.Path)
	if err != nil {
		return err
	}
	renames := [][2]string{{old.WarehouseTable, dt.WarehouseTable}}
	if old.HistoryTable != "" && dt.HistoryTable != "" {
		renames = append(renames, [2]string{old.HistoryTable, dt.HistoryTable})
	}
	for _, r := range renames {
		from, to := r[0], r[1]
		src, dst := filepath.Join(root, from), filepath.Join(root, to)
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if _, err := os.Stat(dst); err == nil {
			return fmt.Errorf("cannot rename warehouse table %s to %s: %s already exists", from, to, dst)
		}
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("renaming warehouse table %s to %s: %w", from, to, err)
		}
	}
	return nil
}
