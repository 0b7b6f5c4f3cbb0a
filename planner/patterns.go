package planner

import (
	"sort"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// ExpandPatterns returns src with a table for every live table (obs) that
// one of its tables blocks matches and that no table block declares: the
// first matching block, in the files' order, gives its attributes. Only
// tables (plain and partitioned) match, not views. Without introspection
// (plan -refresh=false), the tables recorded in rs stand for the live
// ones, so that what a pattern planned is not planned away.
//
// A table created at the source later appears in the next plan as a
// create, one dropped as a delete: the scheduled `plan -detailed-exitcode`
// is how new tables are noticed and reviewed.
func ExpandPatterns(src *config.Source, obs *providers.Observed, rs *state.Source) *config.Source {
	if len(src.Patterns) == 0 || obs == nil && rs == nil {
		return src
	}
	sourceSchema := ""
	if src.Postgres != nil {
		sourceSchema = src.Postgres.Schema
	}
	declared := map[[2]string]bool{}
	for _, t := range src.Tables {
		schema := t.Schema
		if schema == "" {
			schema = sourceSchema
		}
		declared[[2]string{schema, t.Table}] = true
	}
	var live []providers.Table
	if obs != nil {
		live = append(live, obs.Tables...)
	} else {
		for _, name := range rs.TableNames() {
			rt := rs.Tables[name]
			live = append(live, providers.Table{Schema: rt.Schema, Name: rt.Table, Kind: providers.KindTable})
		}
	}
	sort.Slice(live, func(i, j int) bool {
		if live[i].Schema != live[j].Schema {
			return live[i].Schema < live[j].Schema
		}
		return live[i].Name < live[j].Name
	})
	cp := *src
	cp.Tables = append([]*config.Table(nil), src.Tables...)
	for _, lt := range live {
		if lt.Kind != providers.KindTable && lt.Kind != providers.KindPartitionedTable {
			continue
		}
		if declared[[2]string{lt.Schema, lt.Name}] {
			continue
		}
		for _, p := range src.Patterns {
			if p.Matches(lt.Schema, lt.Name, sourceSchema) {
				cp.Tables = append(cp.Tables, p.Instance(lt.Schema, lt.Name, sourceSchema))
				break
			}
		}
	}
	return &cp
}

// HasCDC reports whether src has cdc tables, declared or by a pattern
// (which then needs the CDC prerequisites checked).
func HasCDC(src *config.Source) bool {
	if len(CDCTables(src)) > 0 {
		return true
	}
	for _, p := range src.Patterns {
		if p.Template.Sync == config.SyncCDC && p.Template.Enabled {
			return true
		}
	}
	return false
}
