package config

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// A few lines of configuration can describe values of any size: forty
// locals that each double a string reach a terabyte. Every value is
// therefore bounded (MaxValueBytes, MaxValueElements) in three places, so
// that memory never grows far past the bound:
//
//   - before an expression is evaluated, a bound of what it can build is
//     estimated from its syntax and the sizes of the values it refers to
//     (templates concatenate, for expressions repeat);
//   - every function checks its arguments for a result it cannot produce
//     within the bound (format padding, join, indent, replace, split ...)
//     and its result, and charges the result to a budget of the whole
//     expression, which catches calls repeated by for expressions;
//   - every value produced (local, attribute, variable) is measured.

// size is what a value holds: string bytes and elements, saturating.
type size struct{ bytes, elems int64 }

func (s size) add(o size) size { return size{satAdd(s.bytes, o.bytes), satAdd(s.elems, o.elems)} }

func (s size) times(n int64) size { return size{satMul(s.bytes, n), satMul(s.elems, n)} }

func (s size) over(factor int64) bool {
	return s.bytes > factor*MaxValueBytes || s.elems > factor*MaxValueElements
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// valueSize measures v, nested values included, stopping once it is past
// factor times the bounds. Unknown and null parts count nothing.
func valueSize(v cty.Value, factor int64) size {
	var s size
	stack := []cty.Value{v}
	for len(stack) > 0 && !s.over(factor) {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		v, _ = v.Unmark()
		if !v.IsKnown() || v.IsNull() {
			continue
		}
		ty := v.Type()
		switch {
		case ty == cty.String:
			s.bytes += int64(len(v.AsString()))
		case ty.IsListType() || ty.IsSetType() || ty.IsTupleType() || ty.IsMapType() || ty.IsObjectType():
			for it := v.ElementIterator(); it.Next(); {
				k, e := it.Element()
				s.elems++
				if ty.IsMapType() || ty.IsObjectType() {
					s.bytes += int64(len(k.AsString()))
				}
				stack = append(stack, e)
			}
		}
	}
	return s
}

// maxElement is the size of the largest element of a collection.
func maxElement(v cty.Value) size {
	var m size
	v, _ = v.Unmark()
	if !v.IsKnown() || v.IsNull() || !v.CanIterateElements() {
		return m
	}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		s := valueSize(e, evalBudgetFactor)
		m = size{max(m.bytes, s.bytes), max(m.elems, s.elems)}
	}
	return m
}

// evalBudget counts what the function calls of one expression have built.
type evalBudget struct {
	used      size
	exhausted bool
}

func (b *evalBudget) reset() { *b = evalBudget{} }

// tooLarge is the error of a function whose result would be too large.
func tooLarge(what string) error {
	return fmt.Errorf("%s would be larger than sluice allows for any value in a configuration (%s of text, %d elements)", what, FormatSize(MaxValueBytes), MaxValueElements)
}

// bounded wraps a function with the checks on its arguments and result.
func bounded(name string, f function.Function, b *evalBudget) function.Function {
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type:        f.ReturnTypeForValues,
		Impl: func(args []cty.Value, retType cty.Type) (cty.Value, error) {
			if b.exhausted {
				// The expression already failed; say nothing more for
				// each element of a for expression.
				return cty.UnknownVal(retType), nil
			}
			var in size
			for _, a := range args {
				in = in.add(valueSize(a, evalBudgetFactor))
			}
			if in.over(evalBudgetFactor) {
				b.exhausted = true
				return cty.NilVal, tooLarge("the arguments of " + name)
			}
			if name == "jsondecode" && len(args) == 1 && args[0].IsKnown() {
				// cty decodes JSON recursively.
				if s, _ := args[0].Unmark(); !s.IsNull() && jsonDepth(s.AsString()) > MaxNesting {
					b.exhausted = true
					return cty.NilVal, fmt.Errorf("the JSON text nests arrays and objects more than %d levels deep", MaxNesting)
				}
			}
			if out, ok := resultBound(name, args); ok && out.over(1) {
				b.exhausted = true
				return cty.NilVal, tooLarge("the result of " + name)
			}
			v, err := f.Call(args)
			if err != nil {
				return cty.NilVal, err
			}
			out := valueSize(v, 1)
			b.used = b.used.add(out)
			if out.over(1) || b.used.over(evalBudgetFactor) {
				b.exhausted = true
				return cty.NilVal, tooLarge("the result of " + name)
			}
			return v, nil
		},
	})
}

// formatNumbers finds the widths and precisions of format verbs.
var formatNumbers = regexp.MustCompile(`%[-+# 0]*(\[\d+\])?(\d*)(?:\.(\d*))?`)

// formatPadding sums the widths and precisions in a format string: what
// the verbs may add beyond their arguments' text.
func formatPadding(f string) int64 {
	var pad int64
	for _, m := range formatNumbers.FindAllStringSubmatch(f, -1) {
		for _, n := range m[2:] {
			var v int64
			for _, c := range n {
				v = satAdd(satMul(v, 10), int64(c-'0'))
			}
			pad = satAdd(pad, v)
		}
	}
	return pad
}

// numberText bounds the text of a formatted number without padding.
const numberText = 400

// resultBound computes, before a call, a bound of the result of the
// functions whose result can be far larger than their arguments. ok is
// false for the others, and when an argument is not known.
func resultBound(name string, args []cty.Value) (size, bool) {
	for _, a := range args {
		if !a.IsWhollyKnown() {
			return size{}, false
		}
	}
	str := func(i int) string {
		v, _ := args[i].Unmark()
		if v.IsNull() || v.Type() != cty.String {
			return ""
		}
		return v.AsString()
	}
	length := func(v cty.Value) int64 {
		v, _ = v.UnmarkDeep()
		if v.IsNull() || !v.CanIterateElements() {
			return 1
		}
		return int64(v.LengthInt())
	}
	switch name {
	case "format", "formatlist":
		rows := int64(1)
		var text int64
		for _, a := range args[1:] {
			if name == "formatlist" {
				rows = max(rows, length(a))
			}
			text = satAdd(text, valueSize(a, evalBudgetFactor).bytes)
		}
		line := satAdd(satAdd(int64(len(str(0))), formatPadding(str(0))), int64(numberText*len(args)))
		return size{bytes: satAdd(text, satMul(rows, line)), elems: rows}, true
	case "join":
		var elems, text int64
		for _, a := range args[1:] {
			s := valueSize(a, evalBudgetFactor)
			elems, text = satAdd(elems, s.elems), satAdd(text, s.bytes)
		}
		return size{bytes: satAdd(text, satMul(int64(len(str(0))), elems))}, true
	case "indent":
		v, _ := args[0].Unmark()
		spaces := int64(0)
		if n, acc := v.AsBigFloat().Int64(); acc == 0 && n > 0 {
			spaces = n
		}
		s := str(1)
		return size{bytes: satAdd(int64(len(s)), satMul(spaces, int64(strings.Count(s, "\n"))))}, true
	case "replace":
		s, old, repl := str(0), str(1), str(2)
		n := int64(strings.Count(s, old))
		return size{bytes: satAdd(int64(len(s)), satMul(n, int64(len(repl))))}, true
	case "regex_replace":
		// At most one match per position, each expanding to the
		// replacement with every $ reference the whole string.
		s, repl := str(0), str(2)
		per := satAdd(int64(len(repl)), satMul(int64(strings.Count(repl, "$")), int64(len(s))))
		return size{bytes: satAdd(int64(len(s)), satMul(int64(len(s)+1), per))}, true
	case "split":
		s, sep := str(1), str(0)
		n := int64(len(s) + 1)
		if sep != "" {
			n = int64(strings.Count(s, sep) + 1)
		}
		return size{bytes: int64(len(s)), elems: n}, true
	case "csvdecode":
		s := str(0)
		return size{bytes: int64(len(s)), elems: int64(strings.Count(s, ",") + 2*strings.Count(s, "\n") + 2)}, true
	case "setproduct":
		n := int64(1)
		for _, a := range args {
			n = satMul(n, length(a))
		}
		return size{elems: satMul(n, int64(len(args)+1))}, true
	}
	return size{}, false
}

// jsonDepth is how deep the arrays and objects of a JSON text nest.
func jsonDepth(s string) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// estimator bounds, from its syntax, what evaluating an expression builds.
type estimator struct {
	ctx   *hcl.EvalContext
	dir   string          // the configuration directory, for file()
	sizes map[string]size // of var.NAME and local.NAME, measured once
	// scope bounds the for-expression symbols in scope by their elements.
	scope map[string]size
}

func (e *estimator) ref(tr hcl.Traversal) size {
	root := tr.RootName()
	if s, ok := e.scope[root]; ok {
		return s
	}
	if e.ctx == nil || len(tr) < 2 || (root != "var" && root != "local") {
		return size{}
	}
	step, ok := tr[1].(hcl.TraverseAttr)
	if !ok {
		return size{}
	}
	key := root + "." + step.Name
	if s, ok := e.sizes[key]; ok {
		return s
	}
	var s size
	if obj, ok := e.ctx.Variables[root]; ok {
		obj, _ = obj.Unmark()
		if obj.IsKnown() && !obj.IsNull() && obj.Type().IsObjectType() && obj.Type().HasAttribute(step.Name) {
			s = valueSize(obj.GetAttr(step.Name), evalBudgetFactor+1)
		}
	}
	if e.sizes == nil {
		e.sizes = map[string]size{}
	}
	e.sizes[key] = s
	return s
}

// usesScope reports whether expr refers to a for-expression symbol.
func (e *estimator) usesScope(expr hclsyntax.Expression) bool {
	for _, tr := range expr.Variables() {
		if _, ok := e.scope[tr.RootName()]; ok {
			return true
		}
	}
	return false
}

// estimate bounds what evaluating expr builds, the result and what is
// built on the way (both branches of a conditional, function arguments).
func (e *estimator) estimate(expr hclsyntax.Expression) size {
	switch x := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return valueSize(x.Val, evalBudgetFactor+1)
	case *hclsyntax.ScopeTraversalExpr:
		if _, inScope := e.scope[x.Traversal.RootName()]; !inScope && len(x.Traversal) > 2 && e.ctx != nil {
			// local.settings.orders is what it names, not all of
			// local.settings: references do not copy.
			if v, diags := x.Traversal.TraverseAbs(e.ctx); !diags.HasErrors() {
				return valueSize(v, evalBudgetFactor+1)
			}
		}
		return e.ref(x.Traversal)
	case *hclsyntax.RelativeTraversalExpr:
		return e.estimate(x.Source)
	case *hclsyntax.IndexExpr:
		key := e.estimate(x.Key)
		coll := e.estimate(x.Collection)
		if !coll.over(evalBudgetFactor) && !e.usesScope(x.Collection) && e.ctx != nil {
			// local.settings[t] is one element of local.settings.
			if v, diags := x.Collection.Value(e.ctx); !diags.HasErrors() {
				return maxElement(v).add(key)
			}
		}
		return coll.add(key)
	case *hclsyntax.SplatExpr:
		return e.estimate(x.Source).times(2)
	case *hclsyntax.ParenthesesExpr:
		return e.estimate(x.Expression)
	case *hclsyntax.TemplateWrapExpr:
		return e.estimate(x.Wrapped)
	case *hclsyntax.TemplateExpr:
		var parts size
		for _, p := range x.Parts {
			parts = parts.add(e.estimate(p))
			if _, literal := p.(*hclsyntax.LiteralValueExpr); !literal {
				parts = parts.add(size{bytes: numberText}) // a number's text
			}
		}
		// The parts, and the string they are joined into.
		return parts.add(size{bytes: parts.bytes, elems: 1})
	case *hclsyntax.TemplateJoinExpr:
		t := e.estimate(x.Tuple)
		return t.add(size{bytes: t.bytes, elems: 1})
	case *hclsyntax.TupleConsExpr:
		s := size{elems: int64(len(x.Exprs))}
		for _, item := range x.Exprs {
			s = s.add(e.estimate(item))
		}
		return s
	case *hclsyntax.ObjectConsExpr:
		s := size{elems: int64(len(x.Items))}
		for _, item := range x.Items {
			s = s.add(e.estimate(item.KeyExpr)).add(e.estimate(item.ValueExpr))
		}
		return s
	case *hclsyntax.ObjectConsKeyExpr:
		return e.estimate(x.Wrapped)
	case *hclsyntax.ConditionalExpr:
		return e.estimate(x.Condition).add(e.estimate(x.TrueResult)).add(e.estimate(x.FalseResult))
	case *hclsyntax.BinaryOpExpr:
		return e.estimate(x.LHS).add(e.estimate(x.RHS)).add(size{elems: 1})
	case *hclsyntax.UnaryOpExpr:
		return e.estimate(x.Val).add(size{elems: 1})
	case *hclsyntax.ForExpr:
		return e.estimateFor(x)
	case *hclsyntax.FunctionCallExpr:
		return e.estimateCall(x)
	}
	return size{}
}

// estimateFor bounds a for expression: its body once per element of its
// collection. A collection that does not depend on an outer for is
// evaluated (it is bounded itself) for its exact length and largest
// element.
func (e *estimator) estimateFor(x *hclsyntax.ForExpr) size {
	coll := e.estimate(x.CollExpr)
	if coll.over(evalBudgetFactor) {
		return coll
	}
	n, elem := coll.elems, coll
	if !e.usesScope(x.CollExpr) && e.ctx != nil {
		if v, diags := x.CollExpr.Value(e.ctx); !diags.HasErrors() {
			v, _ = v.Unmark()
			n, elem = 0, size{}
			if v.IsKnown() && !v.IsNull() && v.CanIterateElements() {
				n, elem = int64(v.LengthInt()), maxElement(v)
			}
		}
	}
	inner := &estimator{ctx: e.ctx, sizes: e.sizes, scope: map[string]size{}}
	for k, v := range e.scope {
		inner.scope[k] = v
	}
	if x.KeyVar != "" {
		inner.scope[x.KeyVar] = elem
	}
	inner.scope[x.ValVar] = elem
	var body size
	for _, b := range []hclsyntax.Expression{x.KeyExpr, x.ValExpr, x.CondExpr} {
		if b != nil {
			body = body.add(inner.estimate(b))
		}
	}
	return coll.add(body.add(size{elems: 1}).times(n))
}

// estimateCall bounds a function call: its arguments, and a result no
// larger than them except for the functions that can grow their input.
func (e *estimator) estimateCall(x *hclsyntax.FunctionCallExpr) size {
	var args size
	each := make([]size, len(x.Args))
	for i, a := range x.Args {
		each[i] = e.estimate(a)
		args = args.add(each[i])
	}
	literal := func(i int) (cty.Value, bool) {
		if i >= len(x.Args) {
			return cty.NilVal, false
		}
		if t, ok := x.Args[i].(*hclsyntax.TemplateExpr); ok && t.IsStringLiteral() {
			v, _ := t.Value(nil)
			return v, true
		}
		if l, ok := x.Args[i].(*hclsyntax.LiteralValueExpr); ok {
			return l.Val, true
		}
		return cty.NilVal, false
	}
	var result size
	switch x.Name {
	case "range":
		result = size{elems: 1024} // cty's own bound on range()
	case "format", "formatlist":
		pad := int64(MaxValueBytes)
		if v, ok := literal(0); ok && v.Type() == cty.String {
			pad = formatPadding(v.AsString())
		}
		rows := int64(1)
		if x.Name == "formatlist" {
			rows = max(args.elems, 1)
		}
		result = size{bytes: satAdd(args.bytes, satMul(rows, satAdd(pad, numberText*int64(len(x.Args))))), elems: rows}
	case "join":
		if len(each) > 0 {
			result = size{bytes: satAdd(args.bytes, satMul(each[0].bytes, args.elems))}
		}
	case "indent":
		spaces := int64(MaxValueBytes)
		if v, ok := literal(0); ok && v.Type() == cty.Number {
			if n, acc := v.AsBigFloat().Int64(); acc == 0 {
				spaces = max(n, 0)
			}
		}
		result = size{bytes: satAdd(args.bytes, satMul(spaces, args.bytes))}
	case "replace", "regex_replace":
		if len(each) == 3 {
			result = size{bytes: satAdd(each[0].bytes, satMul(each[0].bytes+1, each[2].bytes))}
		}
	case "setproduct":
		n := int64(1)
		for _, s := range each {
			n = satMul(n, max(s.elems, 1))
		}
		result = size{bytes: satMul(n, args.bytes), elems: satMul(n, int64(len(each)+1))}
	case "split", "csvdecode", "jsondecode", "regexall", "chunklist":
		result = size{bytes: args.bytes, elems: satAdd(args.bytes, args.elems)}
	case "file":
		result = size{bytes: MaxValueBytes}
		if len(x.Args) == 1 && !e.usesScope(x.Args[0]) && e.ctx != nil {
			if v, diags := x.Args[0].Value(e.ctx); !diags.HasErrors() {
				if v, _ = v.Unmark(); v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
					// A file that cannot be read makes the call fail.
					result.bytes = 0
					if p, err := ResolvePath(e.dir, v.AsString()); err == nil {
						if fi, err := os.Stat(p); err == nil {
							result.bytes = min(fi.Size(), MaxValueBytes)
						}
					}
				}
			}
		}
	default:
		result = args.times(3) // upper, base64encode, urlencode ... grow a little
	}
	// Whatever the estimate, a call that would return more than a value
	// may hold fails (bounded checks every result).
	result = size{min(result.bytes, MaxValueBytes), min(result.elems, MaxValueElements)}
	return args.add(result)
}

// boundedValue evaluates expr within the bounds on values: it refuses an
// expression that could build too much before evaluating it, and a value
// too large after. budget is the budget of the functions in ctx; dir is
// the configuration directory, which file() reads relative to.
func boundedValue(expr hcl.Expression, ctx *hcl.EvalContext, budget *evalBudget, dir string) (cty.Value, hcl.Diagnostics) {
	if sx, ok := expr.(hclsyntax.Expression); ok {
		est := (&estimator{ctx: ctx, dir: dir}).estimate(sx)
		if est.over(evalBudgetFactor) {
			return cty.DynamicVal, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Value too large",
				Detail: fmt.Sprintf("Evaluating this expression could build more than %s of text or %d elements; sluice allows %s and %d in any value of a configuration. "+
					"Configuration values are names, settings and keys: build smaller ones, and keep data out of the configuration.",
					FormatSize(evalBudgetFactor*MaxValueBytes), evalBudgetFactor*MaxValueElements, FormatSize(MaxValueBytes), MaxValueElements),
				Subject: expr.Range().Ptr(),
			}}
		}
	}
	if budget != nil {
		budget.reset()
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return v, dedupe(diags)
	}
	if s := valueSize(v, 1); s.over(1) {
		return cty.DynamicVal, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Value too large",
			Detail: fmt.Sprintf("This value holds more than %s of text or %d elements, the most sluice allows in any value of a configuration. "+
				"Configuration values are names, settings and keys: build smaller ones, and keep data out of the configuration.", FormatSize(MaxValueBytes), MaxValueElements),
			Subject: expr.Range().Ptr(),
		})
	}
	return v, diags
}

// dedupe drops repeats of a diagnostic at the same place, which a for
// expression gives once per element.
func dedupe(diags hcl.Diagnostics) hcl.Diagnostics {
	type key struct {
		summary, detail string
		r               hcl.Range
	}
	seen := map[key]bool{}
	out := diags[:0:0]
	for _, d := range diags {
		k := key{summary: d.Summary, detail: d.Detail}
		if d.Subject != nil {
			k.r = *d.Subject
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}
