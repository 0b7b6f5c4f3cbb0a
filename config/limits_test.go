package config

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// hostileSources are configurations that crashed sluice (stack overflow in
// the recursive parser) or exhausted memory (values doubled by a few
// lines). Each must give one diagnostic naming its line.
func hostileSources() []struct {
	name, src, summary string
	line               int
} {
	deep := func(open, close string, n int) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	doubling := "locals {\n  a0 = \"xxxxxxxxxxxxxxxx\"\n"
	for i := 1; i <= 40; i++ {
		doubling += "  a" + strconv.Itoa(i) + " = \"${local.a" + strconv.Itoa(i-1) + "}${local.a" + strconv.Itoa(i-1) + "}\"\n"
	}
	doubling += "}\n"
	const nested = "Configuration nested too deeply"
	return []struct {
		name, src, summary string
		line               int
	}{
		{"100,000 brackets", "locals {\n  a = " + deep("[", "]", 100_000) + "\n}\n", nested, 2},
		{"parentheses", "locals {\n  a = " + deep("(", ")", 10_000) + "1\n}\n", nested, 2},
		{"objects", "locals {\n  a = " + deep("{a=", "}", 10_000) + "\n}\n", nested, 2},
		{"blocks", "source \"postgres\" \"p\" {\n" + strings.Repeat("x {\n", 10_000) + strings.Repeat("}\n", 10_000) + "}\n", nested, 257},
		{"nested templates", "locals {\n  a = " + deep("\"${", "}\"", 10_000) + "\n}\n", nested, 2},
		{"template directives", "locals {\n  a = <<EOT\n" + deep("%{if true}", "%{endif}", 10_000) + "\nEOT\n}\n", nested, 3},
		{"heredocs in interpolations", "locals {\n  a = " + strings.Repeat("<<EOT\n${", 1000) + strings.Repeat("}\nEOT\n", 1000) + "}\n", nested, 130},
		{"unary operators", "locals {\n  a = " + strings.Repeat("!", 100_000) + "true\n}\n", nested, 2},
		{"conditionals", "locals {\n  a = " + strings.Repeat("true ? 1 : ", 10_000) + "2\n}\n", nested, 2},
		{"binary operators", "locals {\n  a = " + strings.Repeat("1 + ", 1_000_000) + "1\n}\n", nested, 2},
		{"index steps", "locals {\n  a = [1]\n  b = local.a" + strings.Repeat("[0]", 100_000) + "\n}\n", nested, 3},
		{"doubling locals", doubling, "Value too large", 22},
		{"format padding", "locals {\n  a = format(\"%999999999s\", \"x\")\n}\n", "Error in function call", 2},
		{"template repeated by for", "locals {\n  big = format(\"%8000000s\", \"\")\n  l = [for i in range(1000) : \"${local.big}x\"]\n}\n", "Value too large", 3},
		{"nested for", "locals {\n  r = range(1000)\n  l = [for i in local.r : [for j in local.r : [for k in local.r : k]]]\n}\n", "Value too large", 3},
		{"function repeated by for", "locals {\n  r = range(1000)\n  l = [for i in local.r : format(\"%1000000s\", i)]\n}\n", "Value too large", 3},
		{"function repeated by for, unknown count", "variable \"n\" {\n  default = 1000\n}\nlocals {\n  l = [for i in range(var.n) : format(\"%s%1000000s\", var.n, i)]\n}\n", "Value too large", 5},
		{"join", "locals {\n  l = join(format(\"%8000000s\", \"\"), range(1000))\n}\n", "Error in function call", 2},
		{"flatten", "locals {\n  l = range(1000)\n  m = [for i in local.l : local.l]\n  n = flatten([for i in local.l : local.m])\n}\n", "Value too large", 3},
		{"setproduct", "locals {\n  r = range(1000)\n  p = setproduct(local.r, local.r, local.r)\n}\n", "Error in function call", 3},
		{"deep JSON", "locals {\n  j = jsondecode(\"" + deep("[", "]", 100_000) + "\")\n}\n", "Error in function call", 2},
		{"replace", "locals {\n  a = format(\"%100000s\", \"\")\n  b = replace(local.a, \" \", local.a)\n}\n", "Error in function call", 3},
		{"indent", "locals {\n  a = join(\"\\n\", range(1000))\n  b = indent(100000000, local.a)\n}\n", "Error in function call", 3},
		{"split", "locals {\n  a = format(\"%1000000s\", \"\")\n  b = split(\"\", local.a)\n}\n", "Error in function call", 3},
		{"device file", "locals {\n  z = file(\"/dev/zero\")\n}\n", "Invalid function argument", 2},
		{"large default", "variable \"v\" {\n  default = [" + strings.Repeat("1,", MaxValueElements+1) + "]\n}\n", "Value too large", 2},
		{"for in a default", "variable \"v\" {\n  default = [for i in [" + strings.Repeat("1,", 1000) + "] : [for j in [" + strings.Repeat("1,", 1000) + "] : j]]\n}\n", "Value too large", 2},
	}
}

// TestHostileConfigurations loads each hostile configuration in-process:
// it must come back with its diagnostic, not crash, and allocate far less
// than the gigabytes it used to (TotalAlloc counts every allocation, so
// the bound does not depend on timing or the garbage collector).
func TestHostileConfigurations(t *testing.T) {
	for _, tt := range hostileSources() {
		t.Run(tt.name, func(t *testing.T) {
			for _, validate := range []bool{false, true} {
				dir := writeConfig(t, map[string]string{"main.hcl": tt.src})
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				_, diags := Load(dir, Options{LookupEnv: noEnv, Validate: validate})
				runtime.ReadMemStats(&after)
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<30 {
					t.Errorf("validate=%v: allocated %s", validate, FormatSize(int64(alloc)))
				}
				var found bool
				for _, d := range diags {
					if d.Summary == tt.summary && d.Subject != nil && d.Subject.Filename == "main.hcl" && d.Subject.Start.Line == tt.line {
						found = true
					}
				}
				if !found {
					if len(diags) > 5 {
						diags = diags[:5]
					}
					t.Errorf("validate=%v: want %q on line %d, got %v", validate, tt.summary, tt.line, diags)
				}
			}
		})
	}
}

// TestFormatHostile: fmt parses before it formats, and gives the same
// diagnostic instead of overflowing the stack.
func TestFormatHostile(t *testing.T) {
	src := []byte("locals {\n  a = " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "\n}\n")
	out, diags := Format(src, "main.hcl")
	if !diags.HasErrors() || diags[len(diags)-1].Summary != "Configuration nested too deeply" || string(out) != string(src) {
		t.Errorf("diagnostics %v", diags)
	}
}

// TestLimitsLeaveRealConfigurationsAlone: what real configurations do
// stays well within every bound.
func TestLimitsLeaveRealConfigurationsAlone(t *testing.T) {
	var tables strings.Builder
	for i := range 2000 {
		tables.WriteString("  table \"t" + strings.Repeat("x", i%7) + strconv.Itoa(i%100) + "_" + strings.Repeat("y", i/100) + "\" { sync = local.sync }\n")
	}
	src := `variable "envs" {
  default = ["dev", "staging", "prod"]
}
locals {
  sync   = "full_refresh"
  names  = [for i in range(1000) : format("table_%04d", i)]
  lookup = { for n in local.names : n => upper(n) }
  joined = join(",", local.names)
  cond   = (1 + 2 * 3 - 4 / 2 > 0 && !false) ? "a" : "b"
  tmpl   = <<-EOT
    %{ for e in var.envs ~}
    ${e}: ${local.cond} ${jsonencode([[["x"]]])}
    %{ endfor ~}
  EOT
  per_env = [for e in var.envs : [for n in local.names : "${e}_${n}"]]
}
source "postgres" "p" {
  host = "db"
` + tables.String() + `}
`
	_, diags := load(t, src, Options{})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags[:min(len(diags), 5)])
	}
}

// TestLimitsLookupInFor: looking up, for each of many names, its entry in
// a large map builds a value of the entries' size, not of the map's times
// the names.
func TestLimitsLookupInFor(t *testing.T) {
	src := `locals {
  names    = [for i in range(1000) : format("t%04d", i)]
  settings = { for n in local.names : n => { sync = "full_refresh", note = format("%200s", n) } }
  picked   = [for n in local.names : local.settings[n]]
  notes    = [for n in local.names : local.settings[n].note]
  again    = [for n in local.names : "${local.settings.t0001.note}-${n}"]
}
`
	_, diags := load(t, src, Options{})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
}

// TestHostileVariableValue: a -var value is parsed as an expression too.
func TestHostileVariableValue(t *testing.T) {
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	_, diags := load(t, "variable \"l\" {\n  type = list(any)\n}\n", Options{Vars: []string{"l=" + deep}})
	if len(diags) != 1 || diags[0].Summary != "Configuration nested too deeply" {
		t.Errorf("diagnostics: %v", diags)
	}
}
