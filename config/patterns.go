package config

import (
	"fmt"
	"path"
	"slices"

	"github.com/hashicorp/hcl/v2"
)

// TablePattern is a `tables "GLOB"` block of a source: its attributes are
// the defaults of every live table whose schema.table matches the glob
// (path.Match: *, ?, [...]) and none of exclude, and that has no table
// block of its own (a table block always wins). A glob without a schema
// part ("audit_*", or "*" alone) matches the source's schema.
type TablePattern struct {
	// Pattern is the label as written.
	Pattern string
	// Schema and Table are its parts; Schema "" is the source's schema.
	Schema, Table string
	// Exclude are globs of the same form, as written.
	Exclude []string
	// Template holds the attributes, as a table block's (its Name, Schema
	// and Table are empty).
	Template  *Table
	DeclRange hcl.Range
}

// patternSchema is a table block's schema and exclude.
var patternSchema = &hcl.BodySchema{Attributes: append(slices.Clone(tableSchema.Attributes), hcl.AttributeSchema{Name: "exclude"})}

func (l *loader) decodePattern(s *Source, b *hcl.Block) *TablePattern {
	p := &TablePattern{Pattern: b.Labels[0], DeclRange: b.DefRange}
	var err error
	if p.Schema, p.Table, err = parsePattern(p.Pattern); err != nil {
		l.e.diags = append(l.e.diags, errorAt(b.LabelRanges[0], "Invalid table pattern", "%s.", err))
		return nil
	}
	t := newTable(s, "", b.DefRange)
	t.Pattern = p.Pattern
	a := &attrs{e: &l.e, m: l.content(b, patternSchema), ranges: t.Attrs, unknown: l.unknownOf(t)}
	if a.strings("exclude", &p.Exclude) {
		for _, x := range p.Exclude {
			if _, _, err := parsePattern(x); err != nil {
				a.errorf("exclude", "Invalid exclude pattern", "%s.", err)
			}
		}
	}
	l.decodeTableAttrs(s, t, a)
	p.Template = t
	return p
}

// parsePattern splits a glob like a table name ("schema.table", either
// part quoted) and checks both parts are valid globs.
func parsePattern(s string) (schema, table string, err error) {
	schema, table, err = ParseTableName(s)
	if err != nil {
		return "", "", fmt.Errorf("%s", err)
	}
	for _, part := range []string{schema, table} {
		if _, err := path.Match(part, ""); err != nil {
			return "", "", fmt.Errorf("%q is not a valid glob (use *, ? and [...])", s)
		}
	}
	return schema, table, nil
}

// matchPart reports whether a glob part matches name; an empty glob
// (no schema part) matches def.
func matchPart(glob, name, def string) bool {
	if glob == "" {
		return name == def
	}
	ok, _ := path.Match(glob, name)
	return ok
}

// Matches reports whether the live table schema.table matches the pattern
// and none of its excludes, sourceSchema being the source's schema.
func (p *TablePattern) Matches(schema, table, sourceSchema string) bool {
	if !matchPart(p.Schema, schema, sourceSchema) || !matchPart(p.Table, table, "") {
		return false
	}
	for _, x := range p.Exclude {
		xs, xt, err := parsePattern(x)
		if err == nil && matchPart(xs, schema, sourceSchema) && matchPart(xt, table, "") {
			return false
		}
	}
	return true
}

// Instance is the table the pattern plans for the live table
// schema.table: its template, named as a table block for it would be.
func (p *TablePattern) Instance(schema, table, sourceSchema string) *Table {
	t := *p.Template
	t.Attrs = map[string]hcl.Range{}
	for k, v := range p.Template.Attrs {
		t.Attrs[k] = v
	}
	t.PrimaryKey, t.Columns = slices.Clone(p.Template.PrimaryKey), slices.Clone(p.Template.Columns)
	t.Table = table
	if schema == sourceSchema {
		t.Schema, t.Name = "", QualifiedName("", table)
	} else {
		t.Schema, t.Name = schema, QualifiedName(schema, table)
	}
	return &t
}
