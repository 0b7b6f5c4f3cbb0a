package planner

import (
	"fmt"
	"slices"
	"sort"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// checkRename checks a table's rename against the live table: every
// renamed column exists, and no new name is the name of another column
// that reaches the warehouse under its own.
func checkRename(t *config.Table, ot *providers.Table, backend string, errorf func(hcl.Range, string, string, ...any)) {
	if len(t.Rename) == 0 {
		return
	}
	selected := func(name string) bool {
		return len(t.Columns) == 0 || slices.Contains(t.Columns, name) || slices.Contains(t.PrimaryKey, name) ||
			name == t.IncrementalField || len(t.PrimaryKey) == 0 && slices.Contains(ot.PrimaryKey, name)
	}
	for _, from := range sortedNames(t.Rename) {
		to := t.Rename[from]
		if ot.Column(from) == nil {
			errorf(t.Range("rename"), "Column does not exist",
				"rename names column %q, which %s does not have.%s", from, qualified(ot.Schema, ot.Name), suggestColumn(ot, from))
			continue
		}
		if backend == "postgres" && len(to) > maxPostgresIdentifier {
			errorf(t.Range("rename"), "Column name too long",
				"Column %q cannot be renamed to %q: PostgreSQL names are at most %d bytes, and the warehouse is PostgreSQL.", from, to, maxPostgresIdentifier)
		}
		if _, renamed := t.Rename[to]; !renamed && to != from && ot.Column(to) != nil && selected(to) {
			errorf(t.Range("rename"), "Rename to an existing column",
				"Column %q cannot be renamed to %q: %s has a column %q, which the warehouse table holds under that name. Rename that one too, or choose another name.",
				from, to, qualified(ot.Schema, ot.Name), to)
		}
	}
}

// maxPostgresIdentifier is the longest name a PostgreSQL warehouse
// column can have.
const maxPostgresIdentifier = 63

// columnRename is one warehouse column whose name a plan changes.
type columnRename struct{ source, from, to string }

// renameChanges lists the warehouse columns whose names change from rt's
// rename to dt's, by source column.
func renameChanges(rt, dt *state.Table) []columnRename {
	var out []columnRename
	seen := map[string]bool{}
	for _, m := range []map[string]string{rt.Rename, dt.Rename} {
		for _, c := range sortedNames(m) {
			if seen[c] {
				continue
			}
			seen[c] = true
			from, to := warehouseName(rt, c), warehouseName(dt, c)
			if from != to {
				out = append(out, columnRename{c, from, to})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].source < out[j].source })
	return out
}

func warehouseName(t *state.Table, c string) string {
	if n, ok := t.Rename[c]; ok {
		return n
	}
	return c
}

// orderable reports whether renames can be made one after the other
// without a column taking a name another still has (they do not exchange
// names).
func orderable(renames []columnRename) bool {
	inUse := map[string]bool{}
	for _, r := range renames {
		inUse[r.from] = true
	}
	pending := slices.Clone(renames)
	for len(pending) > 0 {
		n := len(pending)
		pending = slices.DeleteFunc(pending, func(r columnRename) bool {
			if inUse[r.to] {
				return false
			}
			delete(inUse, r.from)
			inUse[r.to] = true
			return true
		})
		if len(pending) == n {
			return false
		}
	}
	return true
}

// renames plans the warehouse columns a changed rename renames: in place
// where the warehouse can (PostgreSQL: ALTER TABLE ... RENAME COLUMN;
// Iceberg: a schema update by field id), done by the runner before the
// table's next sync; a reload where it cannot (Parquet), or where the
// renames exchange names.
func (pl *planner) renames(rt, dt *state.Table, raise func(Action, string, ...any)) {
	renames := renameChanges(rt, dt)
	if len(renames) == 0 {
		return
	}
	backend := pl.in.Config.Warehouse.Backend
	inPlace := (backend == "postgres" || backend == "iceberg") && orderable(renames)
	for _, r := range renames {
		what := fmt.Sprintf("warehouse column %q renamed to %q", r.from, r.to)
		if r.from != r.source {
			what += fmt.Sprintf(" (source column %q)", r.source)
		}
		switch {
		case inPlace:
			raise(Update, "%s: renamed in place at the next sync, rows kept", what)
		case backend == "postgres" || backend == "iceberg":
			raise(Resync, "%s: the renames exchange column names, so the table is reloaded", what)
		default:
			raise(Resync, "%s: the Parquet warehouse cannot rename a column in place, so the table is reloaded", what)
		}
	}
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
