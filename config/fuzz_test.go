package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// FuzzLoad feeds arbitrary bytes through parsing and decoding: whatever the
// input, Load returns diagnostics and never panics, and every error that
// points into the file points at a real line of it.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"../examples/quickstart", "../examples/full", "testdata"} {
		matches, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
		for _, m := range matches {
			if b, err := os.ReadFile(m); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("locals {\n  a = local.b\n  b = local.a\n}\n"))
	f.Add([]byte("source \"postgres\" \"x\" {\n  table \"a.b\" { sync = \"cdc\" cdc_output = \"both\" }\n}\n"))
	f.Add([]byte("variable \"v\" {\n  type = map(list(number))\n  default = {a = [1]}\n}\n"))
	f.Add([]byte("\x00\xff"))
	// Inputs that crashed sluice or exhausted its memory (issue 12 §8),
	// so that the fuzzer starts from them and mutates them.
	// The fuzzer minimizes large inputs slowly: the large ones are given
	// just past their bound instead.
	for _, h := range hostileSources() {
		if len(h.src) < 16<<10 {
			f.Add([]byte(h.src))
		}
	}
	for _, deep := range []string{"[", "(", "{a=", "!", "-", "true ? 1 : ", "\"${"} {
		f.Add([]byte("locals {\n  a = " + strings.Repeat(deep, MaxNesting+1) + "1\n}\n"))
	}
	f.Add([]byte("locals {\n  a = " + strings.Repeat("1+", maxOperatorChain+1) + "1\n}\n"))
	f.Add([]byte("locals {\n  a = jsondecode(\"" + strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1) + "\")\n}\n"))
	f.Add([]byte("locals {\n  a = " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + "\n}\n"))
	f.Add([]byte("locals {\n  a = \"${" + strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200) + "}\"\n  b = <<EOT\n%{ for x in [1] }${x}%{ endfor }\nEOT\n}\n"))
	f.Add([]byte("source \"postgres\" \"p\" {\n  connection_string = \"postgres://u:pw@h/db\"\n  password = <<EOT\nsecret\nEOT\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg := &Config{Dir: t.TempDir(), Files: map[string]*hcl.File{}, Variables: map[string]*Variable{}, Locals: map[string]cty.Value{}}
		file, diags := ParseSource(src, "main.hcl")
		var files []*hcl.File
		if file != nil {
			files = append(files, file)
		}
		diags = append(diags, decode(cfg, []string{"main.hcl"}, files, diags.HasErrors(), Options{LookupEnv: noEnv, Vars: []string{"v=1"}})...)
		lines := 1
		for _, c := range src {
			if c == '\n' {
				lines++
			}
		}
		for _, d := range diags {
			if d.Summary == "" {
				t.Errorf("diagnostic without a summary: %#v", d)
			}
			if d.Subject != nil && d.Subject.Filename == "main.hcl" && d.Subject.Start.Line > lines {
				t.Errorf("diagnostic %q points at line %d of a %d-line file", d.Summary, d.Subject.Start.Line, lines)
			}
		}
		// Rendering must not panic either, whatever the ranges.
		dw := &DiagnosticWriter{W: discard{}, Files: cfg.Files}
		_ = dw.WriteDiagnostics(diags)
		_ = NewJSONDiagnostics(diags, cfg.Files)
		_, _ = Format(src, "main.hcl")
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
