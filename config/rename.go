package config

import (
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// MetadataPrefix starts the names of sluice's own warehouse columns
// (_sluice_synced_at, _sluice_lsn, ...): no source column may be renamed
// to one, nor may one be renamed.
const MetadataPrefix = "_sluice_"

// historyColumns are the metadata columns of a cdc history table whose
// names lack MetadataPrefix.
var historyColumns = []string{"valid_from", "valid_to"}

// WarehouseColumn is the warehouse name of source column name.
func (t *Table) WarehouseColumn(name string) string {
	if w, ok := t.Rename[name]; ok {
		return w
	}
	return name
}

// decodeRename decodes the rename attribute, a map of source column names
// to warehouse column names, and checks what can be known without the
// source: no empty or metadata names, no two columns under one warehouse
// name, and, when columns is set, renames of kept columns only.
func decodeRename(t *Table, a *attrs) {
	v, _, ok := a.get("rename", cty.Map(cty.String))
	if !ok {
		return
	}
	m := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if ev.IsNull() {
			a.errorf("rename", "Invalid rename", "The new name of column %q is null.", k.AsString())
			return
		}
		m[k.AsString()] = ev.AsString()
	}
	history := t.Sync == SyncCDC && t.CDCOutput.WritesHistory()
	metadata := func(name string) bool {
		return strings.HasPrefix(name, MetadataPrefix) || history && (name == historyColumns[0] || name == historyColumns[1])
	}
	// kept are the columns known to reach the warehouse under their own
	// names: the selection, the key and the cursor, unless renamed.
	kept := map[string]bool{}
	for _, c := range append(append(append([]string(nil), t.Columns...), t.PrimaryKey...), t.IncrementalField) {
		if _, renamed := m[c]; c != "" && !renamed {
			kept[c] = true
		}
	}
	target := map[string]string{}
	bad := false
	for _, from := range sortedKeys(m) {
		to := m[from]
		switch {
		case from == "" || to == "":
			a.errorf("rename", "Empty column name", "rename maps %q to %q: column names are not empty.", from, to)
		case metadata(from):
			a.errorf("rename", "Rename of a metadata column", "%q is a sluice metadata column (or would collide with one): it cannot be renamed.", from)
		case metadata(to):
			a.errorf("rename", "Rename to a metadata column", "Column %q cannot be renamed to %q: that name is sluice's own metadata column's.", from, to)
		case target[to] != "":
			a.errorf("rename", "Two columns renamed to one name", "Columns %q and %q are both renamed to %q.", target[to], from, to)
		case kept[to]:
			a.errorf("rename", "Rename to an existing column", "Column %q cannot be renamed to %q: the table already has a column %q in the warehouse. Rename that one too, or choose another name.", from, to, to)
		case t.Columns != nil && !kept[from] && !contains(t.Columns, from) && !contains(t.PrimaryKey, from) && from != t.IncrementalField:
			a.errorf("rename", "Rename of a column not synced", "Column %q is renamed but is not in columns, so it is not synced. Add it to columns, or remove the rename.", from)
		default:
			target[to] = from
			continue
		}
		bad = true
	}
	if !bad && len(m) > 0 {
		t.Rename = m
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
