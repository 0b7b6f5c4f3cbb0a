package planner

import (
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// sourceValues lists every setting of a source that apply records, secrets
// included, by attribute name (config.SourceSettings).
func sourceValues(src *config.Source) map[string]string { return config.SourceSettings(src) }

// isSensitive reports whether a source attribute must never be shown or
// stored: secret by nature, or derived from a sensitive variable.
func isSensitive(src *config.Source, attr string) bool {
	// The configuration marks secrets it decoded; the second test keeps a
	// source built any other way from leaking one into state.
	return src.Sensitive[attr] || config.IsSecretAttribute(attr)
}

// DesiredSource is the state apply records for a source once it has done
// its work: settings, fingerprints of secrets and tables. Resources are
// left empty: apply fills them as it creates them. key is the state
// backend's fingerprint key; obs may be nil (no refresh).
func DesiredSource(src *config.Source, obs *providers.Observed, key []byte) *state.Source {
	ds := &state.Source{
		Address:      src.Address(),
		Type:         src.Type,
		Name:         src.Name,
		Prefix:       src.Prefix,
		Settings:     map[string]string{},
		Fingerprints: map[string]string{},
		Tables:       map[string]*state.Table{},
	}
	for attr, val := range sourceValues(src) {
		if isSensitive(src, attr) {
			ds.Fingerprints[attr] = state.Fingerprint(key, attr, val)
		} else {
			ds.Settings[attr] = val
		}
	}
	for _, t := range src.Tables {
		ds.Tables[t.Name] = DesiredTable(src, t, obs)
	}
	return ds
}

// DesiredTable is the state apply records for a table.
func DesiredTable(src *config.Source, t *config.Table, obs *providers.Observed) *state.Table {
	schema := resolvedSchema(src, t)
	dt := &state.Table{
		Name:             t.Name,
		Schema:           schema,
		Table:            t.Table,
		WarehouseTable:   t.WarehouseName(src),
		HistoryTable:     t.HistoryName(src),
		Sync:             t.Sync,
		IncrementalField: t.IncrementalField,
		PrimaryKey:       t.PrimaryKey,
		Columns:          t.Columns,
		NewColumns:       t.NewColumns,
		CDCOutput:        t.CDCOutput,
		Query:            t.Query,
		Frequency:        state.NewFrequency(t.Frequency),
		Enabled:          t.Enabled,
		Hash:             t.Hash,
		Rename:           t.Rename,
		BatchSize:        t.BatchSize,
	}
	if !t.HistoricalLoad && t.Sync.LoadsHistory() {
		off := false
		dt.HistoricalLoad = &off
	}
	if t.Query != "" {
		dt.Schema = ""
		if obs != nil {
			if qd := obs.Queries[t.Name]; qd != nil && qd.Error == "" {
				for _, c := range qd.Columns {
					dt.SourceColumns = append(dt.SourceColumns, state.ColumnState{Name: c.Name, Type: c.Type})
				}
			}
		}
		return dt
	}
	if obs != nil {
		if ot := obs.Table(schema, t.Table); ot != nil {
			if len(dt.PrimaryKey) == 0 {
				// Record the live key, so that a key changed at the source
				// shows up as a change (and a resync) in a later plan.
				dt.PrimaryKey = append([]string(nil), ot.PrimaryKey...)
			}
			for _, c := range ot.Columns {
				dt.SourceColumns = append(dt.SourceColumns, state.ColumnState{Name: c.Name, Type: c.Type})
			}
		}
	}
	return dt
}

// resolvedSchema is the schema a table label resolves to.
func resolvedSchema(src *config.Source, t *config.Table) string {
	if t.Schema != "" {
		return t.Schema
	}
	if src.Postgres != nil {
		if src.Postgres.Schema == "" {
			return config.DefaultSchema
		}
		return src.Postgres.Schema
	}
	return ""
}

// qualified is a table's "schema.table" name as publications list them.
func qualified(schema, table string) string { return config.QualifiedName(schema, table) }

// CDCTables lists the "schema.table" names of the enabled cdc tables of a
// source, sorted: what the source's publication must hold.
func CDCTables(src *config.Source) []string {
	var out []string
	for _, t := range src.Tables {
		if t.Enabled && t.Sync == config.SyncCDC {
			out = append(out, qualified(resolvedSchema(src, t), t.Table))
		}
	}
	sort.Strings(out)
	return out
}

// recordedCDCTables lists the cdc tables recorded in state, sorted.
func recordedCDCTables(rs *state.Source) []string {
	var out []string
	for _, t := range rs.Tables {
		if t.Enabled && t.Sync == config.SyncCDC {
			out = append(out, qualified(t.Schema, t.Table))
		}
	}
	sort.Strings(out)
	return out
}

// diffLists returns what b adds to a and what it drops from it.
func diffLists(a, b []string) (added, removed []string) {
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	for _, s := range b {
		if !in(a, s) {
			added = append(added, s)
		}
	}
	for _, s := range a {
		if !in(b, s) {
			removed = append(removed, s)
		}
	}
	return added, removed
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
