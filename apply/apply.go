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
	// Observed is what the plan saw, used to record live columns.
	Observed map[string]*providers.Observed
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

// Execute applies the plan's changes in order. It stops at the first
// failure, with state recording every step that succeeded.
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

func (ex *executor) recorded(addr string) *state.Source {
	rs := ex.opt.State.Sources[addr]
	if rs == nil {
		src := ex.opt.Config.Source(addr)
		rs = planner.DesiredSource(src, nil, ex.opt.FingerprintKey)
		rs.Tables = map[string]*state.Table{}
		rs.AppliedAt = ex.opt.Now().UTC()
		ex.opt.State.Sources[addr] = rs
	}
	return rs
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
		return ex.table(c)
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
	src := ex.opt.Config.Source(addr)
	rs := ex.recorded(addr)
	desired := planner.DesiredSource(src, ex.opt.Observed[addr], ex.opt.FingerprintKey)
	if rs.Prefix != desired.Prefix {
		// The tables' renames are their own steps; the prefix is recorded
		// with them.
		rs.Prefix = desired.Prefix
	}
	rs.Settings, rs.Fingerprints = desired.Settings, desired.Fingerprints
	rs.AppliedAt = ex.opt.Now().UTC()
	return nil
}

func (ex *executor) publication(ctx context.Context, c planner.Change) error {
	addr := c.Address
	rs := ex.recorded(addr)
	m, src, err := ex.manager(ctx, addr)
	if err != nil {
		return err
	}
	cdc := src.Postgres.CDC
	rs.Resources.Management = cdc.Management
	managed := cdc.Management == "managed"
	if c.Action == planner.Delete {
		if managed && rs.Resources.Publication != nil {
			if err := m.DropPublication(ctx, rs.Resources.Publication.Name); err != nil {
				return err
			}
		}
		rs.Resources.Publication = nil
		return nil
	}
	want := planner.CDCTables(src)
	if !managed {
		have, exists, err := m.PublicationTables(ctx, cdc.Publication)
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
				cdc.Publication, describeMissing(exists, missing), publicationSQL(cdc.Publication, exists, want, missing))
		}
		rs.Resources.Publication = &state.PublicationState{Name: cdc.Publication, Tables: want}
		return nil
	}
	if c.Action == planner.Replace && rs.Resources.Publication != nil && rs.Resources.Publication.Name != cdc.Publication {
		if err := m.DropPublication(ctx, rs.Resources.Publication.Name); err != nil {
			return err
		}
	}
	if err := m.EnsurePublication(ctx, cdc.Publication, want); err != nil {
		return err
	}
	rs.Resources.Publication = &state.PublicationState{Name: cdc.Publication, Tables: want}
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
	rs := ex.recorded(addr)
	m, src, err := ex.manager(ctx, addr)
	if err != nil {
		return err
	}
	name := src.Postgres.CDC.Slot
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
	lsn, err := m.CreateSlot(ctx, name)
	if err != nil {
		return err
	}
	rs.Resources.Slot = &state.SlotState{Name: name, Plugin: "pgoutput", CreatedLSN: lsn, CreatedAt: ex.opt.Now().UTC()}
	return nil
}

func (ex *executor) table(c planner.Change) error {
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
	src := ex.opt.Config.Source(addr)
	t := src.Table(name)
	rs := ex.recorded(addr)
	old := rs.Tables[name]
	dt := planner.DesiredTable(src, t, ex.opt.Observed[addr])
	if old != nil {
		if ex.opt.Observed[addr] == nil || ex.opt.Observed[addr].Table(dt.Schema, dt.Table) == nil {
			// Not introspected: keep what was recorded of the live table.
			dt.SourceColumns = old.SourceColumns
			if len(t.PrimaryKey) == 0 {
				dt.PrimaryKey = old.PrimaryKey
			}
		}
		dt.ResyncRequestedAt = old.ResyncRequestedAt
		if old.WarehouseTable != dt.WarehouseTable {
			if err := renameWarehouseTables(ex.opt.Config, old, dt); err != nil {
				return err
			}
		}
	}
	if c.Action == planner.Resync {
		dt.ResyncRequestedAt = ex.opt.Now().UTC()
	}
	dt.AppliedAt = ex.opt.Now().UTC()
	rs.Tables[name] = dt
	rs.Prefix = src.Prefix
	return nil
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
