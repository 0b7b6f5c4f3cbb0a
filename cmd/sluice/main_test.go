package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// sluice runs the CLI in-process and returns its exit code and output.
func sluice(t testing.TB, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	code, out, _ := sluice(t, "", "help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, name := range []string{"validate", "fmt", "inspect", "check", "init", "plan", "apply", "show", "status", "run", "resync", "destroy", "state", "force-unlock", "version"} {
		if !strings.Contains(out, "\n  "+name+" ") {
			t.Errorf("help does not list %q", name)
		}
	}
	if code, _, _ := sluice(t, ""); code != 1 {
		t.Errorf("sluice without a command exits %d, want 1", code)
	}
}

func TestCommandHelp(t *testing.T) {
	for _, args := range [][]string{{"help", "validate"}, {"validate", "-h"}, {"fmt", "--help"}, {"help", "plan"}} {
		code, out, _ := sluice(t, "", args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: sluice ") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}} {
		code, out, _ := sluice(t, "", args...)
		if code != 0 || !strings.HasPrefix(out, "sluice v") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
}

func TestUnknownCommandSuggests(t *testing.T) {
	code, _, errOut := sluice(t, "", "valdate")
	if code != 1 || !strings.Contains(errOut, `Did you mean "validate"?`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestEveryCommandImplemented checks that every command of the list has
// its implementation installed, and that a command run without its
// arguments either works or fails with an error message, never silently.
func TestEveryCommandImplemented(t *testing.T) {
	for _, c := range commands {
		if c.run == nil {
			t.Errorf("%s: no implementation installed", c.name)
			continue
		}
		code, out, errOut := sluice(t, "", c.name)
		if code != 0 && !strings.Contains(errOut, "Error:") {
			t.Errorf("%s: exit %d without an error message (stdout %q)", c.name, code, out)
		}
	}
}

func TestValidate(t *testing.T) {
	code, out, errOut := sluice(t, "", "-chdir=../../examples/quickstart", "validate")
	if code != 0 || !strings.Contains(out, "Success!") || errOut != "" {
		t.Errorf("quickstart: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	code, out, errOut = sluice(t, "", "-chdir=testdata/broken", "-no-color", "validate", "-var=pg_password=s3cret")
	if code != 1 {
		t.Errorf("broken: exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("broken: stdout %q, want nothing", out)
	}
	golden(t, "validate-broken.txt", errOut)

	code, out, _ = sluice(t, "", "-chdir=testdata/broken", "validate", "-json", "-var=pg_password=s3cret")
	if code != 1 {
		t.Errorf("broken -json: exit %d, want 1", code)
	}
	var v validateJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("validate -json is not JSON: %v\n%s", err, out)
	}
	if v.Valid || v.ErrorCount != 3 || v.WarningCount != 0 || len(v.Diagnostics) != 3 {
		t.Errorf("validate -json: valid=%v errors=%d warnings=%d diagnostics=%d", v.Valid, v.ErrorCount, v.WarningCount, len(v.Diagnostics))
	}
	golden(t, "validate-broken.json", out)
	if strings.Contains(out+errOut, "s3cret") {
		t.Error("a sensitive value was printed")
	}
}

func TestValidateJSONWhenValid(t *testing.T) {
	code, out, _ := sluice(t, "", "-chdir=../../examples/quickstart", "validate", "-json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := `{
  "format_version": "1.0",
  "valid": true,
  "error_count": 0,
  "warning_count": 0,
  "diagnostics": []
}
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestChdirMissing(t *testing.T) {
	code, _, errOut := sluice(t, "", "-chdir=/nonexistent/dir", "validate")
	if code != 1 || !strings.Contains(errOut, "not a directory") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

const unformatted = "source \"postgres\" \"p\" {\n  host = \"db\"\n  sslmode = \"disable\"\n    table \"t\" {\n  sync=\"full_refresh\"\n  }\n}\n"
const formatted = "source \"postgres\" \"p\" {\n  host    = \"db\"\n  sslmode = \"disable\"\n  table \"t\" {\n    sync = \"full_refresh\"\n  }\n}\n"

func TestFmt(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring
		wantFile string
	}{
		{name: "check", args: []string{"fmt", "-check"}, wantCode: 3, wantOut: "main.hcl", wantFile: unformatted},
		{name: "check diff", args: []string{"fmt", "-check", "-diff"}, wantCode: 3, wantOut: "+  host    = \"db\"", wantFile: unformatted},
		{name: "rewrite", args: []string{"fmt"}, wantCode: 0, wantOut: "main.hcl", wantFile: formatted},
		{name: "rewrite a named file", args: []string{"fmt", "main.hcl"}, wantCode: 0, wantOut: "main.hcl", wantFile: formatted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "main.hcl")
			os.WriteFile(path, []byte(unformatted), 0o640)
			code, out, errOut := sluice(t, "", append([]string{"-chdir=" + dir}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			got, _ := os.ReadFile(path)
			if diff := cmp.Diff(tt.wantFile, string(got)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode changed to %v", fi.Mode().Perm())
			}
			if es, _ := os.ReadDir(dir); len(es) != 1 {
				t.Errorf("fmt left files beside main.hcl: %v", es)
			}
		})
	}
	t.Run("formatted", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(formatted), 0o644)
		if code, out, _ := sluice(t, "", "-chdir="+dir, "fmt", "-check"); code != 0 || out != "" {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})
	t.Run("syntax error", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "main.hcl"), []byte("source {\n  a = \n"), 0o644)
		code, _, errOut := sluice(t, "", "-chdir="+dir, "-no-color", "fmt")
		if code != 1 || !strings.Contains(errOut, "main.hcl:2") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "main.hcl")); string(got) != "source {\n  a = \n" {
			t.Error("a file with a syntax error was rewritten")
		}
	})
	t.Run("stdin", func(t *testing.T) {
		code, out, _ := sluice(t, unformatted, "fmt", "-")
		if code != 0 || out != formatted {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		if code, _, _ := sluice(t, "", "fmt", "/nonexistent.hcl"); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	})
}
