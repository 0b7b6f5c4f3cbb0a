package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// EnvVarPrefix prefixes environment variables that set input variables:
// SLUICE_VAR_pg_password sets var.pg_password.
const EnvVarPrefix = "SLUICE_VAR_"

var variableNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func (l *loader) decodeVariables(blocks hcl.Blocks) {
	for _, b := range blocks {
		name := b.Labels[0]
		if !variableNamePattern.MatchString(name) {
			l.e.diags = append(l.e.diags, errorAt(b.LabelRanges[0], "Invalid variable name",
				"A variable name must start with a letter or underscore and hold only letters, digits, underscores and dashes."))
			continue
		}
		if prev, dup := l.cfg.Variables[name]; dup {
			l.e.diags = append(l.e.diags, errorAt(b.DefRange, "Duplicate variable",
				"A variable named %q was already declared at %s.", name, prev.DeclRange))
			continue
		}
		v := &Variable{Name: name, Type: cty.DynamicPseudoType, DeclRange: b.DefRange}
		l.cfg.Variables[name] = v
		m := l.content(b, variableSchema)
		if attr, ok := m["type"]; ok {
			ty, diags := typeexpr.TypeConstraint(attr.Expr)
			l.e.diags = append(l.e.diags, diags...)
			if !diags.HasErrors() {
				v.Type = ty
			}
		}
		// Defaults and descriptions are literals: they cannot refer to other
		// variables, which would make evaluation order matter.
		noRefs := &attrs{e: &evaluator{ctx: nil, variables: l.cfg.Variables}, m: m}
		noRefs.str("description", &v.Description)
		noRefs.boolean("sensitive", &v.Sensitive)
		if attr, ok := m["default"]; ok {
			dv, diags := boundedValue(attr.Expr, nil, nil, "")
			l.e.diags = append(l.e.diags, diags...)
			if !diags.HasErrors() {
				cv, err := convert.Convert(dv, v.Type)
				if err != nil {
					l.e.diags = append(l.e.diags, errorAt(attr.Expr.Range(), "Invalid default value for variable",
						"The default does not match the variable's type: %s.", err))
				} else {
					v.Default = cv
				}
			}
		}
		l.e.diags = append(l.e.diags, noRefs.e.diags...)
	}
}

// assignVariables gives every variable its value. Precedence, lowest first,
// as in Terraform: the default, SLUICE_VAR_<name>, -var-file files in
// order, -var flags in order.
func (l *loader) assignVariables() {
	vals := map[string]cty.Value{}
	// A variable given an invalid value is not also reported as missing.
	invalid := func(name string) { vals[name] = cty.UnknownVal(l.cfg.Variables[name].Type) }
	for name, v := range l.cfg.Variables {
		if v.Default != cty.NilVal {
			vals[name] = v.Default
		}
		if raw, ok := l.opts.LookupEnv(EnvVarPrefix + name); ok {
			if val, diags := parseRawValue(v, raw, "environment variable "+EnvVarPrefix+name); diags.HasErrors() {
				l.e.diags = append(l.e.diags, diags...)
				invalid(name)
			} else {
				vals[name] = val
			}
		}
	}
	for _, path := range l.opts.VarFiles {
		l.readVarFile(path, vals)
	}
	for _, kv := range l.opts.Vars {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			l.e.diags = append(l.e.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid -var option",
				Detail: fmt.Sprintf("The given -var option %q is not correctly specified. Write -var=NAME=VALUE.", kv)})
			continue
		}
		v, declared := l.cfg.Variables[name]
		if !declared {
			l.e.diags = append(l.e.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
				Detail: fmt.Sprintf("The -var option sets %q, but no variable of that name is declared.%s Declare it with a variable %q {} block.", name, suggest(name, keysOf(l.cfg.Variables)), name)})
			continue
		}
		if val, diags := parseRawValue(v, raw, "-var option "+name); diags.HasErrors() {
			l.e.diags = append(l.e.diags, diags...)
			invalid(name)
		} else {
			vals[name] = val
		}
	}
	for _, name := range keysOf(l.cfg.Variables) {
		v := l.cfg.Variables[name]
		val, ok := vals[name]
		if !ok && (l.opts.AllowMissingVariables || l.opts.Validate) {
			val = cty.UnknownVal(v.Type)
		} else if !ok {
			l.e.diags = append(l.e.diags, errorAt(v.DeclRange, "No value for required variable",
				"The variable %q has no default and no value was given. Set it with -var=%s=VALUE, a -var-file, or the environment variable %s%s.", name, name, EnvVarPrefix, name))
			// Unknown lets the rest of the configuration be checked without
			// an error for every use of the missing variable.
			val = cty.UnknownVal(v.Type)
		}
		if v.Sensitive {
			val = val.Mark(sensitiveMark)
		}
		v.Value = val
	}
}

// parseRawValue interprets a string from the command line or environment:
// taken as-is for primitive types, parsed as an HCL expression for lists,
// maps and objects (as Terraform does).
func parseRawValue(v *Variable, raw, origin string) (cty.Value, hcl.Diagnostics) {
	var val cty.Value
	if v.Type.IsPrimitiveType() || v.Type == cty.DynamicPseudoType {
		val = cty.StringVal(raw)
	} else {
		if d := checkNesting([]byte(raw), origin, true); d != nil {
			return cty.NilVal, hcl.Diagnostics{d}
		}
		expr, diags := hclsyntax.ParseExpression([]byte(raw), origin, hcl.InitialPos)
		if diags.HasErrors() {
			return cty.NilVal, diags
		}
		var vd hcl.Diagnostics
		val, vd = boundedValue(expr, nil, nil, "")
		if vd.HasErrors() {
			return cty.NilVal, vd
		}
	}
	cv, err := convert.Convert(val, v.Type)
	if err != nil {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail: fmt.Sprintf("The %s does not fit variable %q (%s): %s.", origin, v.Name, typeexpr.TypeString(v.Type), err)}}
	}
	return cv, nil
}

// readVarFile reads a -var-file: attributes only, literal values.
func (l *loader) readVarFile(path string, vals map[string]cty.Value) {
	src, err := os.ReadFile(path)
	if err != nil {
		l.e.diags = append(l.e.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read variables file",
			Detail: fmt.Sprintf("%s: %s.", path, describeFSError(err))})
		return
	}
	f, diags := ParseSource(src, path)
	l.e.diags = append(l.e.diags, diags...)
	if f == nil || diags.HasErrors() {
		return
	}
	l.cfg.Files[path] = f
	attrsMap, diags := f.Body.JustAttributes()
	l.e.diags = append(l.e.diags, diags...)
	fe := &evaluator{variables: l.cfg.Variables, dir: l.cfg.Dir}
	fe.ctx = &hcl.EvalContext{Functions: functions(l.cfg.Dir, l.opts.LookupEnv, l.opts.Validate, &fe.budget)}
	for _, name := range keysOf(attrsMap) {
		attr := attrsMap[name]
		v, declared := l.cfg.Variables[name]
		if !declared {
			l.e.diags = append(l.e.diags, errorAt(attr.NameRange, "Value for undeclared variable",
				"%s sets %q, but no variable of that name is declared.%s", path, name, suggest(name, keysOf(l.cfg.Variables))))
			continue
		}
		val, _, ok := fe.value(attr.Expr)
		if !ok {
			vals[name] = cty.UnknownVal(v.Type)
			continue
		}
		cv, err := convert.Convert(val, v.Type)
		if err != nil {
			vals[name] = cty.UnknownVal(v.Type)
			l.e.diags = append(l.e.diags, errorAt(attr.Expr.Range(), "Invalid value for variable",
				"The value does not fit variable %q (%s): %s.", name, typeexpr.TypeString(v.Type), err))
			continue
		}
		vals[name] = cv
	}
	l.e.diags = append(l.e.diags, fe.diags...)
}

func (l *loader) varObject() cty.Value {
	m := map[string]cty.Value{}
	for name, v := range l.cfg.Variables {
		m[name] = v.Value
	}
	return cty.ObjectVal(m)
}

// decodeLocals evaluates every local in dependency order, reporting cycles.
func (l *loader) decodeLocals(blocks hcl.Blocks) {
	all := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		m, diags := b.Body.JustAttributes()
		l.e.diags = append(l.e.diags, diags...)
		for _, name := range keysOf(m) {
			attr := m[name]
			if prev, dup := all[name]; dup {
				l.e.diags = append(l.e.diags, errorAt(attr.NameRange, "Duplicate local value",
					"A local value named %q was already defined at %s.", name, prev.Range))
				continue
			}
			all[name] = attr
			l.e.locals[name] = true
		}
	}
	deps := map[string][]string{}
	for name, attr := range all {
		for _, tr := range attr.Expr.Variables() {
			if tr.RootName() != "local" || len(tr) < 2 {
				continue
			}
			if step, ok := tr[1].(hcl.TraverseAttr); ok && all[step.Name] != nil {
				deps[name] = append(deps[name], step.Name)
			}
		}
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	values := map[string]cty.Value{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		switch state[name] {
		case done:
			return
		case visiting:
			i := len(stack) - 1
			for stack[i] != name {
				i--
			}
			cycle := append(append([]string{}, stack[i:]...), name)
			for j := range cycle {
				cycle[j] = "local." + cycle[j]
			}
			l.e.diags = append(l.e.diags, errorAt(all[name].NameRange, "Cycle in local values",
				"These local values refer to each other in a loop: %s. Break the loop.", strings.Join(cycle, " -> ")))
			for _, n := range stack[i:] {
				values[n] = cty.DynamicVal
				state[n] = done
			}
			return
		}
		state[name] = visiting
		stack = append(stack, name)
		for _, d := range deps[name] {
			visit(d)
		}
		stack = stack[:len(stack)-1]
		if state[name] == done { // marked as part of a cycle
			return
		}
		state[name] = done
		l.e.ctx.Variables["local"] = cty.ObjectVal(values)
		v := cty.DynamicVal
		if l.e.checkReferences(all[name].Expr) {
			var diags hcl.Diagnostics
			v, diags = boundedValue(all[name].Expr, l.e.ctx, &l.e.budget, l.cfg.Dir)
			l.e.diags = append(l.e.diags, diags...)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
		}
		values[name] = v
	}
	for _, name := range keysOf(all) {
		visit(name)
	}
	l.e.ctx.Variables["local"] = cty.ObjectVal(values)
	for name, v := range values {
		l.cfg.Locals[name] = v
	}
}
