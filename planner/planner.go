package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// Input is everything a plan is computed from.
type Input struct {
	Config *config.Config
	State  *state.State
	// Observed holds one introspection of each configured source, by
	// address. A source missing from it was not introspected (plan
	// -refresh=false): live checks and drift are skipped for it.
	Observed map[string]*providers.Observed
	// FingerprintKey is the state backend's key for fingerprints of
	// secrets.
	FingerprintKey []byte
	// Targets narrows the plan to these addresses (a source address
	// includes its tables).
	Targets []string
}

// Make computes the plan.
func Make(in Input) *Plan {
	st := in.State
	if st == nil {
		st = state.New()
	}
	p := &Plan{
		Changes:      []Change{},
		Drift:        []Drift{},
		StateLineage: st.Lineage,
		StateSerial:  st.Serial,
		Refreshed:    len(in.Observed) > 0,
		Targets:      in.Targets,
	}
	pl := &planner{in: in, plan: p}
	sources := append([]*config.Source(nil), in.Config.Sources...)
	sort.Slice(sources, func(i, j int) bool { return sources[i].Address() < sources[j].Address() })
	for _, src := range sources {
		pl.source(src, st.Sources[src.Address()], in.Observed[src.Address()])
	}
	for _, addr := range st.SourceAddrs() {
		if in.Config.Source(addr) == nil {
			pl.deleteSource(st.Sources[addr])
		}
	}
	if len(in.Targets) > 0 {
		p.Changes = filterTargets(p.Changes, in.Targets, func(c Change) string { return c.Address })
		p.Drift = filterTargets(p.Drift, in.Targets, func(d Drift) string { return d.Address })
	}
	p.ConfigHash = ConfigHash(in.Config, in.FingerprintKey)
	p.ObservedHash = ObservedHash(in.Observed)
	return p
}

// filterTargets keeps what a target names: the address itself, a source's
// tables, and a table's source-level changes (its publication and slot),
// which the table depends on.
func filterTargets[T any](items []T, targets []string, addr func(T) string) []T {
	out := items[:0:0]
	for _, it := range items {
		a := addr(it)
		for _, t := range targets {
			src, _, isTable := strings.Cut(t, "/")
			if a == t || strings.HasPrefix(a, t+"/") || (isTable && a == src) {
				out = append(out, it)
				break
			}
		}
	}
	return out
}

type planner struct {
	in   Input
	plan *Plan
	// saltChanged: the source being planned has a new hash_salt, so the
	// hashes of its tables' hash columns change.
	saltChanged bool
}

func (pl *planner) add(c Change) {
	if c.Reasons == nil {
		c.Reasons = []string{}
	}
	pl.plan.Changes = append(pl.plan.Changes, c)
}

func (pl *planner) drift(addr, kind, severity, format string, args ...any) {
	pl.plan.Drift = append(pl.plan.Drift, Drift{Address: addr, Kind: kind, Detail: fmt.Sprintf(format, args...), Severity: severity})
}

func (pl *planner) source(src *config.Source, rs *state.Source, obs *providers.Observed) {
	src = ExpandPatterns(src, obs, rs)
	if obs != nil {
		pl.checkLive(src, rs, obs)
	}
	desired := DesiredSource(src, obs, pl.in.FingerprintKey)
	if rs == nil {
		pl.add(Change{
			Address: src.Address(), Kind: KindSource, Action: Create,
			Reasons:   []string{"new source"},
			After:     sourceView(desired),
			Sensitive: sensitiveKeys(desired),
			Planned:   &Planned{Source: plannedSource(desired)},
		})
	} else {
		pl.sourceUpdate(src, rs, desired)
	}
	lost := false
	if src.Postgres != nil {
		lost = pl.cdcResources(src, rs, obs)
	}
	if src.Stripe != nil {
		pl.webhook(src, rs, obs)
	}
	names := make([]string, 0, len(src.Tables))
	for _, t := range src.Tables {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	pl.saltChanged = rs != nil && rs.Fingerprints["hash_salt"] != desired.Fingerprints["hash_salt"]
	for _, name := range names {
		t := src.Table(name)
		var rt *state.Table
		if rs != nil {
			rt = rs.Tables[name]
		}
		pl.table(src, t, rt, desired.Tables[name], obs, lost)
	}
	if rs != nil {
		for _, name := range rs.TableNames() {
			if src.Table(name) == nil {
				pl.deleteTable(src.Address(), rs.Tables[name], obs)
			}
		}
	}
}

func (pl *planner) sourceUpdate(src *config.Source, rs *state.Source, desired *state.Source) {
	c := Change{Address: src.Address(), Kind: KindSource, Action: Update, Before: recordedSourceView(rs), After: sourceView(desired), Sensitive: sensitiveKeys(desired),
		Planned: &Planned{Source: plannedSource(desired)}}
	if rs.Prefix != desired.Prefix {
		c.Action = Replace
		c.Reasons = append(c.Reasons, fmt.Sprintf("prefix changes from %q to %q: every warehouse table of the source is renamed", rs.Prefix, desired.Prefix))
	}
	for _, k := range unionKeys(rs.Settings, desired.Settings) {
		if k == "prefix" {
			continue
		}
		before, had := rs.Settings[k]
		after, has := desired.Settings[k]
		switch {
		case had && has && before != after:
			c.Reasons = append(c.Reasons, fmt.Sprintf("%s changes from %q to %q", k, before, after))
		case had && !has && desired.Fingerprints[k] == "":
			c.Reasons = append(c.Reasons, fmt.Sprintf("%s is unset (was %q)", k, before))
		case !had && has && rs.Fingerprints[k] == "":
			c.Reasons = append(c.Reasons, fmt.Sprintf("%s is set to %q", k, after))
		}
	}
	for _, k := range unionKeys(rs.Fingerprints, desired.Fingerprints) {
		before, had := rs.Fingerprints[k]
		after, has := desired.Fingerprints[k]
		switch {
		case had && has && before != after:
			c.Reasons = append(c.Reasons, k+" (sensitive value changed)")
		case had && !has:
			c.Reasons = append(c.Reasons, k+" (sensitive value removed)")
		case !had && has:
			c.Reasons = append(c.Reasons, k+" (sensitive value set)")
		}
	}
	if len(c.Reasons) > 0 {
		pl.add(c)
	}
}

// cdcResources plans the publication and slot of a PostgreSQL source, and
// reports whether the slot was lost, so that its cdc tables are resynced.
func (pl *planner) cdcResources(src *config.Source, rs *state.Source, obs *providers.Observed) (lost bool) {
	cdc := src.Postgres.CDC
	addr := src.Address()
	want := CDCTables(src)
	managed := cdc.Management == "managed"
	pubPlanned := &Planned{Publication: &state.PublicationState{Name: cdc.Publication, Tables: want}, Management: cdc.Management}
	slotPlanned := &Planned{Slot: &state.SlotState{Name: cdc.Slot, Plugin: "pgoutput"}}
	var recPub *state.PublicationState
	var recSlot *state.SlotState
	if rs != nil {
		recPub, recSlot = rs.Resources.Publication, rs.Resources.Slot
	}

	// Publication.
	switch {
	case len(want) == 0 && recPub != nil:
		reason := "no cdc tables left: the publication is dropped"
		if !managed {
			reason = "no cdc tables left: sluice forgets the self-managed publication (it never drops what it does not manage)"
		}
		pl.add(Change{Address: addr, Kind: KindPublication, Planned: pubPlanned, Action: Delete, Reasons: []string{reason},
			Before: map[string]any{"name": recPub.Name, "tables": recPub.Tables}})
	case len(want) == 0:
	case recPub == nil:
		reason := fmt.Sprintf("cdc tables need publication %q", cdc.Publication)
		if !managed {
			reason = fmt.Sprintf("self_managed: verify that publication %q holds the cdc tables (sluice never creates or alters it)", cdc.Publication)
		}
		if obs != nil && obs.Publication != nil && managed {
			reason += "; it already exists and will be adopted"
		}
		pl.add(Change{Address: addr, Kind: KindPublication, Planned: pubPlanned, Action: Create, Reasons: []string{reason},
			After: map[string]any{"name": cdc.Publication, "tables": want}})
	case recPub.Name != cdc.Publication:
		pl.add(Change{Address: addr, Kind: KindPublication, Planned: pubPlanned, Action: Replace,
			Reasons: []string{fmt.Sprintf("publication name changes from %q to %q", recPub.Name, cdc.Publication)},
			Before:  map[string]any{"name": recPub.Name, "tables": recPub.Tables},
			After:   map[string]any{"name": cdc.Publication, "tables": want}})
	default:
		current := recPub.Tables
		var reasons []string
		if obs != nil {
			if obs.Publication == nil {
				pl.drift(addr, KindPublication, "", "publication %s is missing at the source", recPub.Name)
				reasons = append(reasons, "recreate: missing at the source")
				current = nil
			} else {
				current = obs.Publication.Tables
				for _, t := range recPub.Tables {
					// A table leaving the configuration that is already gone
					// from the publication (dropped at the source) is no
					// drift: its removal finishes the job.
					if !slices.Contains(current, t) && slices.Contains(want, t) {
						pl.drift(addr, KindPublication, "", "table %s missing from publication %s", t, recPub.Name)
					}
				}
				if managed {
					for _, t := range current {
						if !slices.Contains(recPub.Tables, t) {
							pl.drift(addr, KindPublication, "", "extra table %s in managed publication %s", t, recPub.Name)
						}
					}
				}
			}
		}
		added, removed := diffLists(current, want)
		if !managed {
			removed = nil // other tables in a self-managed publication are the DBA's business
		}
		for _, t := range added {
			reasons = append(reasons, "add table "+t)
		}
		for _, t := range removed {
			reasons = append(reasons, "drop table "+t)
		}
		if len(reasons) > 0 {
			action := Update
			if current == nil && obs != nil && obs.Publication == nil {
				action = Create
			}
			if !managed {
				reasons = append(reasons, "self_managed: the DBA must run the SQL that apply prints; sluice never alters the publication")
			}
			// Before is what the publication holds now, so that the rendered
			// diff shows what apply will really change.
			before := map[string]any{"name": recPub.Name, "tables": current}
			if current == nil {
				before = nil
			}
			pl.add(Change{Address: addr, Kind: KindPublication, Planned: pubPlanned, Action: action, Reasons: reasons,
				Before: before,
				After:  map[string]any{"name": cdc.Publication, "tables": want}})
		}
	}

	// Slot.
	switch {
	case len(want) == 0 && recSlot != nil:
		pl.add(Change{Address: addr, Kind: KindSlot, Planned: slotPlanned, Action: Delete,
			Reasons: []string{"no cdc tables left: the replication slot is dropped so that it retains no WAL"},
			Before:  map[string]any{"name": recSlot.Name}})
	case len(want) == 0:
	case recSlot == nil:
		pl.add(Change{Address: addr, Kind: KindSlot, Planned: slotPlanned, Action: Create,
			Reasons: []string{fmt.Sprintf("cdc tables need replication slot %q (pgoutput)", cdc.Slot)},
			After:   map[string]any{"name": cdc.Slot, "plugin": "pgoutput"}})
	case recSlot.Name != cdc.Slot:
		pl.add(Change{Address: addr, Kind: KindSlot, Planned: slotPlanned, Action: Replace,
			Reasons: []string{fmt.Sprintf("slot name changes from %q to %q: cdc tables are resynced", recSlot.Name, cdc.Slot)},
			Before:  map[string]any{"name": recSlot.Name}, After: map[string]any{"name": cdc.Slot, "plugin": "pgoutput"}})
		lost = true
	case obs != nil && obs.Slot == nil:
		pl.drift(addr, KindSlot, "", "replication slot %s is missing at the source", recSlot.Name)
		pl.add(Change{Address: addr, Kind: KindSlot, Planned: slotPlanned, Action: Create,
			Reasons: []string{"recreate: missing at the source; the changes it held are lost, so cdc tables are resynced"},
			After:   map[string]any{"name": cdc.Slot, "plugin": "pgoutput"}})
		lost = true
	case obs != nil && obs.Slot.WALStatus == "lost":
		pl.drift(addr, KindSlot, "critical", "replication slot %s was invalidated (wal_status = lost): the WAL it needed is gone", recSlot.Name)
		pl.add(Change{Address: addr, Kind: KindSlot, Planned: slotPlanned, Action: Replace,
			Reasons: []string{"recreate the invalidated slot; cdc tables are resynced"},
			Before:  map[string]any{"name": recSlot.Name}, After: map[string]any{"name": cdc.Slot, "plugin": "pgoutput"}})
		lost = true
	case obs != nil:
		lag := obs.Slot.LagBytes
		switch {
		case lag >= cdc.LagCritical:
			pl.drift(addr, KindSlot, "critical", "replication slot %s lags %s behind, over lag_critical (%s)", recSlot.Name, config.FormatSize(lag), config.FormatSize(cdc.LagCritical))
		case lag >= cdc.LagWarning:
			pl.drift(addr, KindSlot, "warning", "replication slot %s lags %s behind, over lag_warning (%s)", recSlot.Name, config.FormatSize(lag), config.FormatSize(cdc.LagWarning))
		}
	}
	return lost
}

func (pl *planner) table(src *config.Source, t *config.Table, rt, dt *state.Table, obs *providers.Observed, slotLost bool) {
	addr := t.Address(src)
	if rt == nil {
		reason := "new table: initial sync"
		switch {
		case !t.Enabled:
			reason = "new table, disabled: recorded, not synced"
		case dt.HistoricalLoad != nil && dt.Sync == config.SyncCDC:
			reason = "new table, historical_load = false: no snapshot; created empty, then the changes streamed from the replication slot's position"
		case dt.HistoricalLoad != nil:
			reason = fmt.Sprintf("new table, historical_load = false: apply records the greatest %s now; the first sync reads only the rows past it", dt.IncrementalField)
		}
		pl.add(Change{Address: addr, Kind: KindTable, Action: Create, Reasons: []string{reason}, After: tableView(dt),
			Planned: &Planned{Table: plannedTable(dt), Prefix: src.Prefix}})
		return
	}
	liveTable := obs != nil && obs.Table(dt.Schema, dt.Table) != nil
	if t.Query != "" {
		liveTable = obs != nil && obs.Queries[t.Name] != nil && obs.Queries[t.Name].Error == ""
	}
	if !liveTable && len(t.PrimaryKey) == 0 {
		// Without introspection (or without the table) the live key is as
		// recorded; a table gone from the source is drift, not a key change.
		dt.PrimaryKey = rt.PrimaryKey
	}
	if obs == nil {
		dt.SourceColumns = rt.SourceColumns
	}
	planned := plannedTable(dt)
	if !liveTable {
		// Not introspected, or gone from the source (which is drift):
		// apply keeps what was recorded of the live table.
		planned.SourceColumns = rt.SourceColumns
	}
	c := Change{Address: addr, Kind: KindTable, Action: NoOp, Before: tableView(rt), After: tableView(dt),
		Planned: &Planned{Table: planned, Prefix: src.Prefix}}
	raise := func(a Action, format string, args ...any) {
		if rank(a) > rank(c.Action) {
			c.Action = a
		}
		c.Reasons = append(c.Reasons, fmt.Sprintf(format, args...))
	}
	if rt.Query != dt.Query {
		raise(Resync, "query changes: the table is reloaded from the new query")
	}
	if rt.Sync != dt.Sync {
		raise(Resync, "sync type changes from %s to %s", rt.Sync, dt.Sync)
	} else if rt.IncrementalField != dt.IncrementalField && t.Sync.NeedsCursor() {
		raise(Resync, "incremental_field changes from %q to %q", rt.IncrementalField, dt.IncrementalField)
	}
	if !slices.Equal(rt.PrimaryKey, dt.PrimaryKey) && len(rt.PrimaryKey)+len(dt.PrimaryKey) > 0 {
		raise(Resync, "primary key changes from (%s) to (%s)", strings.Join(rt.PrimaryKey, ", "), strings.Join(dt.PrimaryKey, ", "))
	}
	if rt.CDCOutput != dt.CDCOutput && rt.Sync == dt.Sync && dt.Sync == config.SyncCDC {
		raise(Resync, "cdc_output changes from %s to %s: the history table is rebuilt", rt.CDCOutput, dt.CDCOutput)
	}
	if !slices.Equal(rt.Hash, dt.Hash) {
		raise(Resync, "hash columns change from (%s) to (%s): the table is reloaded so that every row holds the same form", strings.Join(rt.Hash, ", "), strings.Join(dt.Hash, ", "))
	} else if len(dt.Hash) > 0 && pl.saltChanged {
		raise(Resync, "hash_salt changed: the hash columns are computed again")
	}
	if rt.WarehouseTable != dt.WarehouseTable {
		raise(Replace, "warehouse table renamed from %s to %s", rt.WarehouseTable, dt.WarehouseTable)
	}
	switch {
	case rt.Enabled && !dt.Enabled:
		raise(Update, "disabled: syncing stops; the warehouse table is kept")
		if dt.Sync == config.SyncCDC {
			c.Warnings = append(c.Warnings, "the table leaves the publication: changes made while it is disabled are lost, and enabling it again means a resync")
		}
	case !rt.Enabled && dt.Enabled && dt.Sync == config.SyncCDC:
		raise(Resync, "enabled again: changes made while it was disabled were not captured")
	case !rt.Enabled && dt.Enabled:
		raise(Update, "enabled: syncing resumes")
	}
	if dt.Sync == config.SyncCDC && dt.Enabled && rt.Sync == dt.Sync && slotLost {
		raise(Resync, "the replication slot was lost or replaced: changes since the last sync cannot be streamed")
	}
	added, removed := diffLists(rt.Columns, dt.Columns)
	if len(rt.Columns) == 0 || len(dt.Columns) == 0 {
		added, removed = nil, nil
		if len(rt.Columns) != len(dt.Columns) {
			if len(dt.Columns) == 0 {
				added = []string{"every column"}
			} else {
				removed = []string{"columns not listed"}
			}
		}
	}
	if len(added) > 0 {
		if dt.NewColumns == "full_resync" {
			raise(Resync, "columns added to the selection (%s); new_columns = full_resync", strings.Join(added, ", "))
		} else {
			raise(Update, "columns added to the selection (%s): synced from now on", strings.Join(added, ", "))
		}
	}
	if len(removed) > 0 {
		raise(Update, "columns removed from the selection (%s): no longer synced, existing data kept", strings.Join(removed, ", "))
	}
	if obs != nil {
		pl.sourceColumns(addr, t, rt, dt, raise)
	}
	pl.renames(rt, dt, raise)
	if rt.Frequency != dt.Frequency {
		raise(Update, "frequency changes from %s to %s", rt.Frequency, dt.Frequency)
	}
	if rt.NewColumns != dt.NewColumns {
		raise(Update, "new_columns changes from %s to %s", rt.NewColumns, dt.NewColumns)
	}
	if before, after := rt.HistoricalLoad == nil, dt.HistoricalLoad == nil; before != after {
		note := "what the warehouse holds is kept; a later resync starts without the history (`sluice resync -historical` loads it)"
		if after {
			note = "what the warehouse holds is kept; the history is not loaded now (`sluice resync` loads it)"
		}
		raise(Update, "historical_load changes from %t to %t: %s", before, after, note)
	}
	if c.Action == Resync && dt.HistoricalLoad != nil && dt.Enabled {
		c.Warnings = append(c.Warnings, fmt.Sprintf("historical_load = false: the resync starts the table again without its history (emptied, then what changes after it); `sluice resync -historical %s` after apply loads the history instead", addr))
	}
	if rt.BatchSize != dt.BatchSize {
		raise(Update, "batch_size changes from %s to %s", batchSizeText(rt.BatchSize), batchSizeText(dt.BatchSize))
	}
	if c.Action != NoOp {
		pl.add(c)
	}
}

// sourceColumns compares the live columns with those recorded: dropped and
// retyped columns are drift; new ones follow new_columns.
func (pl *planner) sourceColumns(addr string, t *config.Table, rt, dt *state.Table, raise func(Action, string, ...any)) {
	if len(rt.SourceColumns) == 0 {
		return
	}
	if len(dt.SourceColumns) == 0 {
		pl.drift(addr, KindTable, "", "table %s no longer exists at the source", qualified(rt.Schema, rt.Table))
		return
	}
	selected := func(name string) bool { return len(t.Columns) == 0 || slices.Contains(t.Columns, name) }
	live := map[string]string{}
	for _, c := range dt.SourceColumns {
		live[c.Name] = c.Type
	}
	recorded := map[string]string{}
	for _, c := range rt.SourceColumns {
		recorded[c.Name] = c.Type
		typ, ok := live[c.Name]
		switch {
		case !ok:
			pl.drift(addr, KindTable, "", "column %q was dropped at the source", c.Name)
			if selected(c.Name) {
				raise(Update, "column %q dropped at the source: NULL from now on", c.Name)
			}
		case typ != c.Type:
			pl.drift(addr, KindTable, "", "column %q changed type at the source from %s to %s", c.Name, c.Type, typ)
			if selected(c.Name) {
				raise(Resync, "column %q changed type from %s to %s: a type change is a resync", c.Name, c.Type, typ)
			}
		}
	}
	for _, c := range dt.SourceColumns {
		if _, ok := recorded[c.Name]; ok || !selected(c.Name) {
			continue
		}
		if dt.NewColumns == "full_resync" {
			raise(Resync, "new column %q at the source; new_columns = full_resync", c.Name)
		} else {
			raise(Update, "new column %q at the source: synced from now on (new_columns = sync_forward)", c.Name)
		}
	}
}

func rank(a Action) int {
	switch a {
	case Update:
		return 1
	case Replace:
		return 2
	case Resync:
		return 3
	}
	return 0
}

// deleteTable plans the removal of a recorded table; obs, when not nil,
// tells whether the table is still at the source.
func (pl *planner) deleteTable(srcAddr string, rt *state.Table, obs *providers.Observed) {
	c := Change{Address: srcAddr + "/" + rt.Name, Kind: KindTable, Action: Delete,
		Reasons: []string{"removed from the configuration: syncing stops; warehouse table " + rt.WarehouseTable + " is kept"},
		Before:  tableView(rt)}
	// Introspection reads the schemas the configuration names: a table of
	// another schema is not known to be gone.
	inspected := obs != nil && slices.ContainsFunc(obs.Tables, func(t providers.Table) bool { return t.Schema == rt.Schema })
	if inspected && obs.Table(rt.Schema, rt.Table) == nil {
		c.Reasons = append(c.Reasons, "the table no longer exists at the source")
	} else if rt.Sync == config.SyncCDC && rt.Enabled {
		c.Warnings = append(c.Warnings, "the table leaves the publication")
	}
	pl.add(c)
}

func (pl *planner) deleteSource(rs *state.Source) {
	reason := "removed from the configuration; warehouse data is kept"
	var drops []string
	if rs.Resources.Slot != nil {
		drops = append(drops, "replication slot "+rs.Resources.Slot.Name)
	}
	if rs.Resources.Publication != nil && rs.Resources.Management != "self_managed" {
		drops = append(drops, "publication "+rs.Resources.Publication.Name)
	}
	if rs.Resources.Webhook != nil && rs.Resources.Webhook.Created {
		drops = append(drops, "webhook endpoint "+rs.Resources.Webhook.URL)
	}
	if len(drops) > 0 {
		reason += "; drops " + strings.Join(drops, " and ")
	}
	pl.add(Change{Address: rs.Address, Kind: KindSource, Action: Delete, Reasons: []string{reason}, Before: recordedSourceView(rs)})
	for _, name := range rs.TableNames() {
		pl.deleteTable(rs.Address, rs.Tables[name], nil)
	}
}

// plannedSource is what apply records of a source's own settings.
func plannedSource(desired *state.Source) *state.Source {
	return &state.Source{
		Address: desired.Address, Type: desired.Type, Name: desired.Name, Prefix: desired.Prefix,
		Settings: desired.Settings, Fingerprints: desired.Fingerprints,
	}
}

// plannedTable is a copy of a desired table that later planning steps do
// not change.
func plannedTable(dt *state.Table) *state.Table {
	t := *dt
	return &t
}

// sourceView is a source's settings as shown in a plan: secrets replaced.
func sourceView(s *state.Source) map[string]any {
	m := map[string]any{}
	for k, v := range s.Settings {
		m[k] = v
	}
	for k := range s.Fingerprints {
		m[k] = "(sensitive)"
	}
	return m
}

func recordedSourceView(s *state.Source) map[string]any {
	m := sourceView(s)
	m["prefix"] = s.Prefix
	return m
}

func sensitiveKeys(s *state.Source) []string {
	return unionKeys(s.Fingerprints, nil)
}

func tableView(t *state.Table) map[string]any {
	m := map[string]any{
		"sync":            string(t.Sync),
		"frequency":       t.Frequency.String(),
		"enabled":         t.Enabled,
		"warehouse_table": t.WarehouseTable,
	}
	if t.IncrementalField != "" {
		m["incremental_field"] = t.IncrementalField
	}
	if len(t.PrimaryKey) > 0 {
		m["primary_key"] = t.PrimaryKey
	}
	if len(t.Columns) > 0 {
		m["columns"] = t.Columns
	}
	if t.CDCOutput != "" {
		m["cdc_output"] = string(t.CDCOutput)
	}
	if t.NewColumns != "" {
		m["new_columns"] = string(t.NewColumns)
	}
	if t.Query != "" {
		m["query"] = t.Query
	}
	if t.HistoricalLoad != nil {
		m["historical_load"] = *t.HistoricalLoad
	}
	if len(t.Hash) > 0 {
		m["hash"] = t.Hash
	}
	if len(t.Rename) > 0 {
		m["rename"] = t.Rename
	}
	if t.BatchSize > 0 {
		m["batch_size"] = t.BatchSize
	}
	return m
}

// batchSizeText shows a batch_size in a plan's reasons.
func batchSizeText(n int) string {
	if n == 0 {
		return "no limit"
	}
	return strconv.Itoa(n)
}

func unionKeys(a, b map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ConfigHash identifies the desired configuration: the desired state of
// every source (secrets by fingerprint), so that reformatting the files
// does not make a saved plan stale but any change of meaning does.
func ConfigHash(cfg *config.Config, key []byte) string {
	var sources []*state.Source
	for _, src := range cfg.Sources {
		sources = append(sources, DesiredSource(src, nil, key))
	}
	sort.Slice(sources, func(i, j int) bool { return sources[i].Address < sources[j].Address })
	return hashJSON(sources)
}

// ObservedHash identifies what introspection saw, leaving out what moves
// on its own (row estimates, WAL positions, slot lag), so that a saved plan
// goes stale only when the source's structure changed.
func ObservedHash(obs map[string]*providers.Observed) string {
	type table struct {
		Schema, Name, Kind string
		PrimaryKey         []string
		Columns            []providers.Column
	}
	type view struct {
		Source      string
		Tables      []table
		Publication *providers.Publication
		Slot        string
		Webhook     *providers.WebhookEndpoint
		Checks      []providers.Check
	}
	var views []view
	for _, addr := range sortedKeys(obs) {
		o := obs[addr]
		if o == nil {
			continue
		}
		v := view{Source: addr, Publication: o.Publication, Webhook: o.Webhook}
		for _, c := range o.Checks {
			v.Checks = append(v.Checks, providers.Check{Check: c.Check, OK: c.OK})
		}
		if o.Slot != nil {
			v.Slot = o.Slot.Name
			if o.Slot.WALStatus == "lost" {
				v.Slot += " (lost)"
			}
		}
		for _, t := range o.Tables {
			v.Tables = append(v.Tables, table{t.Schema, t.Name, t.Kind, t.PrimaryKey, t.Columns})
		}
		views = append(views, v)
	}
	return hashJSON(views)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hashJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain data reaches here
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
