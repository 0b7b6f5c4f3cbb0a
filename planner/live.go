package planner

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// Cost warnings: a table this large refreshed this often is expensive.
const (
	largeTableRows   = 10_000_000
	largeTableMinGap = time.Hour
)

// checkLive reports what the configuration asks of the live source that it
// cannot give, each error with the range of the offending line. sluice
// never invents tables: a table must exist to be planned.
func (pl *planner) checkLive(src *config.Source, rs *state.Source, obs *providers.Observed) {
	d := &pl.plan.Diagnostics
	errorf := func(r hcl.Range, summary, format string, args ...any) {
		*d = append(*d, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: r.Ptr()})
	}
	warnf := func(r hcl.Range, summary, format string, args ...any) {
		*d = append(*d, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: r.Ptr()})
	}
	hasCDC := false
	for _, t := range src.Tables {
		if t.Query != "" {
			pl.checkQuery(src, t, obs, errorf)
			continue
		}
		schema := resolvedSchema(src, t)
		ot := obs.Table(schema, t.Table)
		if ot == nil {
			gone := ""
			if rs != nil && rs.Tables[t.Name] != nil {
				gone = "It was applied before: if it was dropped or renamed at the source, restore it, or remove this table block and run `sluice apply`. "
			}
			errorf(t.DeclRange, "Table does not exist",
				"%s has no table %s.%s %s%s`sluice inspect %s` lists the tables it has.",
				src.Address(), describeName(schema, t.Table), suggestTable(obs, schema, t.Table), caseHint(obs, schema, t.Table), gone, src.Address())
			continue
		}
		for _, list := range []struct {
			attr  string
			names []string
		}{{"primary_key", t.PrimaryKey}, {"columns", t.Columns}, {"hash", t.Hash}} {
			for _, n := range list.names {
				if ot.Column(n) == nil {
					errorf(t.Range(list.attr), "Column does not exist",
						"%s names column %q, which %s does not have.%s", list.attr, n, qualified(schema, t.Table), suggestColumn(ot, n))
				}
			}
		}
		if t.Enabled {
			pl.checkReadable(src, t, ot, errorf)
		}
		checkRename(t, ot, pl.in.Config.Warehouse.Backend, errorf)
		if t.Sync == "" {
			continue
		}
		if t.Enabled && t.Sync == config.SyncCDC {
			hasCDC = true
		}
		switch {
		case (t.Sync == config.SyncIncremental || t.Sync == config.SyncXmin && ot.Kind == providers.KindTable) && len(t.PrimaryKey) == 0 && len(ot.PrimaryKey) == 0:
			what := "has no primary key"
			if ot.Kind == providers.KindView || ot.Kind == providers.KindMaterializedView {
				what = "is a " + ot.Kind + ", which has no primary key"
			}
			errorf(t.DeclRange, "A merge needs a primary key",
				"%s %s, and %s syncs merge the rows they read by key: every sync after the first would fail. Declare the key in the table block (primary_key = [\"...\"], columns that identify a row), or use sync = \"append\" (keeps every version read) or \"full_refresh\".",
				qualified(schema, t.Table), what, t.Sync)
		case t.Sync == config.SyncCDC && len(ot.PrimaryKey) == 0 && ot.Kind != providers.KindView && ot.Kind != providers.KindMaterializedView:
			errorf(t.Range("sync"), "CDC needs a primary key",
				"%s has no primary key, so changes cannot be merged by key. Add one (ALTER TABLE %s ADD PRIMARY KEY (...)), or sync it with full_refresh or incremental.", qualified(schema, t.Table), qualified(schema, t.Table))
		case t.Sync == config.SyncWebhook && !ot.SupportsWebhook:
			errorf(t.Range("sync"), "Webhooks not supported for this table",
				"%s does not send webhook events for %s. Use incremental or full_refresh.", src.Type, t.Name)
		case len(ot.SyncTypes) > 0 && !slices.Contains(ot.SyncTypes, string(t.Sync)):
			errorf(t.Range("sync"), "Sync type not available for this table",
				"%s (%s) cannot sync with %s; it supports: %s.", qualified(schema, t.Table), ot.Kind, t.Sync, strings.Join(ot.SyncTypes, ", "))
		}
		if t.Sync.NeedsCursor() && t.IncrementalField != "" {
			pl.checkCursor(src, t, ot, errorf, warnf)
		}
		if ot.EstimatedRows != nil && *ot.EstimatedRows > largeTableRows && !t.Frequency.Daily &&
			t.Frequency.Interval < largeTableMinGap && t.Sync != config.SyncCDC && t.Sync != config.SyncWebhook && t.Enabled {
			warnf(t.Range("frequency"), "Large table synced often",
				"%s has about %d rows and syncs every %s with %s; each sync reads the table. Consider a longer frequency, or sync = \"cdc\".",
				qualified(schema, t.Table), *ot.EstimatedRows, t.Frequency, t.Sync)
		}
	}
	if hasCDC {
		var failed []string
		for _, c := range obs.Checks {
			if !c.OK && !c.Warning {
				msg := c.Check + ": " + c.Message
				if c.Fix != "" {
					msg += " (fix: " + c.Fix + ")"
				}
				failed = append(failed, msg)
			}
		}
		if len(failed) > 0 {
			errorf(src.DeclRange, "CDC prerequisites not met",
				"%s has cdc tables, but these checks fail:\n  - %s\nRun `sluice check %s` for details.", src.Address(), strings.Join(failed, "\n  - "), src.Address())
		}
	}
}

// checkReadable refuses a table the run could not read: one the user may
// not SELECT (unless column privileges cover every column the block reads)
// and a materialized view never populated.
func (pl *planner) checkReadable(src *config.Source, t *config.Table, ot *providers.Table, errorf func(hcl.Range, string, string, ...any)) {
	name := qualified(ot.Schema, ot.Name)
	if ot.SelectGrant != "" {
		// A read locks a table (LOCK ... IN ACCESS SHARE MODE, so that it
		// is not altered mid-read), which takes SELECT on the whole table;
		// materialized views are not locked, so column privileges can do.
		columnsDo := ot.Kind == providers.KindMaterializedView
		var missing []string
		for _, c := range readColumns(t, ot) {
			if !columnsDo || !slices.Contains(ot.ReadableColumns, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			detail := "the user may not read it"
			switch {
			case len(ot.ReadableColumns) > 0 && columnsDo:
				detail = fmt.Sprintf("the user may read only its columns %s, not %s", quoteList(ot.ReadableColumns), quoteList(missing))
			case len(ot.ReadableColumns) > 0:
				detail = fmt.Sprintf("the user may read only its columns %s, and a read locks the table (ACCESS SHARE), which takes SELECT on the whole table", quoteList(ot.ReadableColumns))
			}
			errorf(t.DeclRange, "Permission denied",
				"%s: %s, so every sync would fail (permission denied). Have its owner or an administrator run %s then plan again.",
				name, detail, ot.SelectGrant)
		}
	}
	if ot.Unpopulated {
		errorf(t.DeclRange, "Materialized view not populated",
			"%s was created WITH NO DATA and never refreshed, so it cannot be read. Run REFRESH MATERIALIZED VIEW %s; then plan again.",
			name, pgIdent(ot.Schema, ot.Name))
	}
}

// readColumns are the columns a sync of the table reads: those listed
// (or every one), the key and the cursor.
func readColumns(t *config.Table, ot *providers.Table) []string {
	if len(t.Columns) == 0 {
		out := make([]string, len(ot.Columns))
		for i, c := range ot.Columns {
			out[i] = c.Name
		}
		return out
	}
	out := append([]string(nil), t.Columns...)
	key := t.PrimaryKey
	if len(key) == 0 {
		key = ot.PrimaryKey
	}
	for _, c := range append(append([]string(nil), key...), t.IncrementalField) {
		if c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// pgIdent is a table's quoted, schema-qualified SQL name.
func pgIdent(schema, table string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(schema) + "." + q(table)
}

func (pl *planner) checkCursor(src *config.Source, t *config.Table, ot *providers.Table,
	errorf, warnf func(hcl.Range, string, string, ...any)) {
	r := t.Range("incremental_field")
	col := ot.Column(t.IncrementalField)
	if col == nil {
		errorf(r, "Column does not exist",
			"incremental_field names %q, which %s does not have.%s", t.IncrementalField, qualified(ot.Schema, ot.Name), suggestColumn(ot, t.IncrementalField))
		return
	}
	var field *providers.IncrementalField
	for i := range ot.IncrementalFields {
		if ot.IncrementalFields[i].Name == col.Name {
			field = &ot.IncrementalFields[i]
		}
	}
	if field == nil {
		var names []string
		for _, f := range ot.IncrementalFields {
			names = append(names, f.Name)
		}
		hint := "It has no column of a cursor type; use full_refresh, or cdc."
		if len(names) > 0 {
			hint = "Candidates: " + strings.Join(names, ", ") + "."
		}
		errorf(r, "Not a cursor column",
			"%q is %s; an incremental_field must be a timestamp, timestamptz, date, smallint, integer, bigint or numeric with scale 0. %s", col.Name, col.Type, hint)
		return
	}
	if !field.Indexed && src.Postgres != nil {
		warnf(r, "Cursor column without an index",
			"No index leads on %q, so every sync scans %s. Consider CREATE INDEX CONCURRENTLY ON %s (%s).", field.Name, qualified(ot.Schema, ot.Name), qualified(ot.Schema, ot.Name), field.Name)
	}
	if field.Nullable {
		warnf(r, "Nullable cursor column",
			"%q allows NULL. Rows whose cursor is NULL are never read by %s syncs; make the column NOT NULL, or expect them only after a resync.", field.Name, t.Sync)
	}
}

func describeName(schema, table string) string {
	if schema == "" {
		return fmt.Sprintf("%q", table)
	}
	return fmt.Sprintf("%q in schema %q", table, schema)
}

func suggestTable(obs *providers.Observed, schema, name string) string {
	best, bestDist := "", 4
	for _, t := range obs.Tables {
		if d := levenshtein.Distance(strings.ToLower(name), strings.ToLower(t.Name), nil); d < bestDist && (t.Schema == schema || bestDist > 1) {
			best, bestDist = qualified(t.Schema, t.Name), d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// caseHint explains the common mistake of writing a mixed-case name in a
// different case: sluice never folds case.
func caseHint(obs *providers.Observed, schema, name string) string {
	for _, t := range obs.Tables {
		if t.Schema == schema && t.Name != name && strings.EqualFold(t.Name, name) {
			return fmt.Sprintf("Names are case-sensitive: the table is %q. ", t.Name)
		}
	}
	return ""
}

func suggestColumn(t *providers.Table, name string) string {
	best, bestDist := "", 3
	for _, c := range t.Columns {
		if d := levenshtein.Distance(name, c.Name, nil); d < bestDist {
			best, bestDist = c.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// checkQuery reports a custom SQL table whose query the source could not
// describe (a syntax error, a missing table or column, a missing
// privilege, a key or cursor the result lacks), on the query attribute.
func (pl *planner) checkQuery(src *config.Source, t *config.Table, obs *providers.Observed, errorf func(hcl.Range, string, string, ...any)) {
	qd := obs.Queries[t.Name]
	switch {
	case qd == nil:
		errorf(t.Range("query"), "Query not checked", "%s did not describe the query of %s: check the source and plan again.", src.Address(), t.Name)
	case qd.Error != "":
		errorf(t.Range("query"), "Invalid query", "%s: %s", src.Address(), qd.Error)
	}
}
