package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// sensitiveMark marks cty values that derive from a sensitive variable. cty
// carries marks through operators, templates and function calls, so any
// value computed from a secret stays marked.
type markType string

const sensitiveMark markType = "sensitive"

// evaluator evaluates attribute expressions against variables and locals,
// accumulating diagnostics instead of stopping at the first.
type evaluator struct {
	ctx       *hcl.EvalContext
	variables map[string]*Variable
	locals    map[string]bool // declared locals, evaluated or not
	diags     hcl.Diagnostics
	// budget bounds what the functions of one expression build; the
	// functions in ctx charge it.
	budget evalBudget
	dir    string // the configuration directory
}

// value evaluates an expression. ok is false when the value is unusable: an
// error was reported, or it depends on something unknown (a variable
// without a value), in which case nothing more is said about it.
func (e *evaluator) value(expr hcl.Expression) (v cty.Value, sensitive, ok bool) {
	if !e.checkReferences(expr) {
		return cty.NilVal, false, false
	}
	v, diags := boundedValue(expr, e.ctx, &e.budget, e.dir)
	e.diags = append(e.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false, false
	}
	v, pvm := v.UnmarkDeepWithPaths()
	sensitive = len(pvm) > 0
	if !v.IsWhollyKnown() {
		return v, sensitive, false
	}
	return v, sensitive, true
}

// checkReferences reports references to undeclared variables and locals
// with a suggestion, which reads better than the generic "object has no
// attribute" that evaluation would give.
func (e *evaluator) checkReferences(expr hcl.Expression) bool {
	ok := true
	for _, tr := range expr.Variables() {
		if len(tr) < 2 {
			continue
		}
		step, isAttr := tr[1].(hcl.TraverseAttr)
		if !isAttr {
			continue
		}
		switch tr.RootName() {
		case "var":
			if _, declared := e.variables[step.Name]; !declared {
				e.diags = append(e.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Reference to undeclared input variable",
					Detail:   undeclaredDetail("An input variable", step.Name, keysOf(e.variables), fmt.Sprintf(" Declare it with a variable %q {} block.", step.Name)),
					Subject:  tr.SourceRange().Ptr(),
				})
				ok = false
			}
		case "local":
			if !e.locals[step.Name] {
				e.diags = append(e.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Reference to undeclared local value",
					Detail:   undeclaredDetail("A local value", step.Name, keysOf(e.locals), " Define it in a locals block."),
					Subject:  tr.SourceRange().Ptr(),
				})
				ok = false
			}
		}
	}
	return ok
}

// undeclaredDetail suggests the closest declared name, or how to declare
// the name when nothing is close.
func undeclaredDetail(what, name string, declared []string, howToDeclare string) string {
	msg := fmt.Sprintf("%s with the name %q has not been declared.", what, name)
	if s := suggest(name, declared); s != "" {
		return msg + s
	}
	return msg + howToDeclare
}

// attrs decodes the attributes of one block into typed fields, recording
// where each was set and whether it is sensitive.
type attrs struct {
	e         *evaluator
	m         hcl.Attributes
	prefix    string // "cdc." for a nested block, so keys are unique per source
	ranges    map[string]hcl.Range
	sensitive map[string]bool
	// unknown records the attributes whose value is not known (validate
	// without secrets): checks that need the value skip them.
	unknown map[string]bool
}

func (a *attrs) has(name string) bool { _, ok := a.m[name]; return ok }

// isUnknown reports whether attribute name was set to a value that is not
// known (wholly or in part), so that no check may rely on its value nor on
// the default it leaves in place.
func (a *attrs) isUnknown(name string) bool { return a.unknown[a.prefix+name] }

// get evaluates attribute name converted to ty. set reports whether the
// attribute was written at all; ok whether a usable, non-null value came out.
func (a *attrs) get(name string, ty cty.Type) (v cty.Value, set, ok bool) {
	attr, exists := a.m[name]
	if !exists {
		return cty.NilVal, false, false
	}
	key := a.prefix + name
	if a.ranges != nil {
		a.ranges[key] = attr.Range
	}
	v, sens, ok := a.e.value(attr.Expr)
	if sens || secretAttributes[key] {
		if a.sensitive != nil {
			a.sensitive[key] = true
		}
	}
	if !ok && v != cty.NilVal && !v.IsWhollyKnown() {
		if a.unknown == nil {
			a.unknown = map[string]bool{}
		}
		a.unknown[key] = true
		// The value is not known but its type may be: a list where a
		// string belongs is wrong whatever the value turns out to be.
		if _, err := convert.Convert(v, ty); err != nil {
			a.typeError(name, attr, err, ty)
		}
		return cty.NilVal, true, false
	}
	if !ok || v.IsNull() {
		return cty.NilVal, true, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		a.typeError(name, attr, err, ty)
		return cty.NilVal, true, false
	}
	if !cv.IsWhollyKnown() {
		return cty.NilVal, true, false
	}
	return cv, true, true
}

func (a *attrs) typeError(name string, attr *hcl.Attribute, err error, ty cty.Type) {
	a.e.diags = append(a.e.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Incorrect attribute value type",
		Detail:   fmt.Sprintf("Inappropriate value for attribute %q: %s.", name, describeConvertError(err, ty)),
		Subject:  attr.Expr.Range().Ptr(),
		Context:  attr.Range.Ptr(),
	})
}

func describeConvertError(err error, ty cty.Type) string {
	msg := err.Error()
	if ty == cty.String || ty == cty.Number || ty == cty.Bool {
		return fmt.Sprintf("%s required", ty.FriendlyName())
	}
	return msg
}

func (a *attrs) str(name string, dst *string) bool {
	v, _, ok := a.get(name, cty.String)
	if ok {
		*dst = v.AsString()
	}
	return ok
}

func (a *attrs) boolean(name string, dst *bool) bool {
	v, _, ok := a.get(name, cty.Bool)
	if ok {
		*dst = v.True()
	}
	return ok
}

// integer decodes a whole number within [lo, hi].
func (a *attrs) integer(name string, lo, hi int, dst *int) bool {
	v, _, ok := a.get(name, cty.Number)
	if !ok {
		return false
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || i < int64(lo) || i > int64(hi) {
		a.errorf(name, "Invalid value", "%s must be a whole number from %d to %d.", name, lo, hi)
		return false
	}
	*dst = int(i)
	return true
}

func (a *attrs) strings(name string, dst *[]string) bool {
	v, _, ok := a.get(name, cty.List(cty.String))
	if !ok {
		return false
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() {
			a.errorf(name, "Invalid value", "%s must not contain null.", name)
			return false
		}
		out = append(out, ev.AsString())
	}
	*dst = out
	return true
}

// oneOf checks a decoded enum value, suggesting the closest valid one.
func (a *attrs) oneOf(name, value string, valid []string) bool {
	for _, v := range valid {
		if value == v {
			return true
		}
	}
	summary := fmt.Sprintf("Invalid %s %q", strings.ReplaceAll(name, "_", " "), value)
	if name == "sync" {
		summary = fmt.Sprintf("Unknown sync type %q", value)
	}
	a.errorf(name, summary,
		"%s must be one of: %s.%s", name, strings.Join(valid, ", "), suggest(value, valid))
	return false
}

// errorf reports an error on the value of attribute name.
func (a *attrs) errorf(name, summary, format string, args ...any) {
	attr := a.m[name]
	a.e.diags = append(a.e.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  attr.Expr.Range().Ptr(),
		Context:  attr.Range.Ptr(),
	})
}

// warnf reports a warning on attribute name.
func (a *attrs) warnf(name, summary, format string, args ...any) {
	attr := a.m[name]
	a.e.diags = append(a.e.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  attr.Range.Ptr(),
	})
}

// suggest returns ` Did you mean "x"?` for the closest candidate, or "".
func suggest(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func errorAt(r hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  r.Ptr(),
	}
}
