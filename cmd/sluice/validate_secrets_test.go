package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cleanEnv removes every secret examples/full reads from the environment
// and points HOME at an empty directory, so that the bastion key is
// missing: what a pull request from a fork runs with.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SLUICE_VAR_") || strings.HasPrefix(name, "STRIPE_") {
			t.Setenv(name, "") // restored after the test
			os.Unsetenv(name)
		}
	}
	t.Setenv("STRIPE_API_KEY", "")
	os.Unsetenv("STRIPE_API_KEY")
	t.Setenv("HOME", t.TempDir())
}

func TestValidateWithoutSecrets(t *testing.T) {
	cleanEnv(t)
	code, out, errOut := sluice(t, "", "-chdir=../../examples/full", "validate")
	if code != 0 || !strings.Contains(out, "Success!") || errOut != "" {
		t.Errorf("validate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = sluice(t, "", "-chdir=../../examples/full", "validate", "-json")
	if code != 0 || !strings.Contains(out, `"valid": true`) {
		t.Errorf("validate -json: exit %d, stdout %q", code, out)
	}
	// plan needs the real values, and says which one is missing.
	dir := t.TempDir()
	for _, name := range []string{"settings.hcl", "sources.hcl", "variables.hcl"} {
		b, err := os.ReadFile(filepath.Join("../../examples/full", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	code, _, errOut = sluice(t, "", "-chdir="+dir, "-no-color", "plan")
	if code != 1 || !strings.Contains(errOut, "No value for required variable") || !strings.Contains(errOut, "STRIPE_API_KEY is not set") {
		t.Errorf("plan: exit %d, stderr %q", code, errOut)
	}
}

func TestValidateStaticErrorWithUnsetVariable(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(`variable "pw" {
  sensitive = true
}
variable "kind" {}

source "postgres" "p" {
  password = var.pw
  table "a" { sync = var.kind }
  table "b" { sync = "ful_refresh" }
}
`), 0o644)
	code, out, errOut := sluice(t, "", "-chdir="+dir, "-no-color", "validate")
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	if !strings.Contains(errOut, `Error: main.hcl:9,22-35: Unknown sync type "ful_refresh"`) || strings.Contains(errOut, "No value") || strings.Contains(errOut, "main.hcl:8") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

// TestValidateSnippetsMaskSecrets: diagnostics on lines that hold literal
// secrets show them masked, in text and in -json.
func TestValidateSnippetsMaskSecrets(t *testing.T) {
	const pw = "Xy9-PASSWORD-q\\\"Z"
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(`source "postgres" "p" {
  connection_string = ["postgres://u:`+pw+`@h/db"]
  ssh_tunnel {
    host     = "b"
    user     = "u"
    password = [<<-EOT
      `+pw+`
      EOT
    ]
  }
  table "t" { sync = "full_refresh" }
}
locals {
  dsn = "host=h password=`+pw+` dbname=x" + 1
  url = "postgres://u:`+pw+`@h/db" * 2
}
`), 0o644)
	code, out, errOut := sluice(t, "", "-chdir="+dir, "-no-color", "validate")
	if code != 1 || !strings.Contains(errOut, "Incorrect attribute value type") || !strings.Contains(errOut, "Invalid operand") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	code, js, _ := sluice(t, "", "-chdir="+dir, "validate", "-json")
	if code != 1 || !strings.Contains(js, `"code"`) {
		t.Fatalf("validate -json: exit %d\n%s", code, js)
	}
	for name, s := range map[string]string{"text": errOut, "json": js} {
		if strings.Contains(s, "PASSWORD") {
			t.Errorf("%s output shows the password:\n%s", name, s)
		}
	}
	if !strings.Contains(errOut, `host=h password=**** dbname=x`) || !strings.Contains(errOut, `"postgres://u:****@h/db" * 2`) {
		t.Errorf("masked snippets are not readable:\n%s", errOut)
	}
}

// TestFmtWithoutSecrets: fmt reads no variable, environment or file.
func TestFmtWithoutSecrets(t *testing.T) {
	cleanEnv(t)
	if code, out, errOut := sluice(t, "", "-chdir=../../examples/full", "fmt", "-check"); code != 0 || out != "" || errOut != "" {
		t.Errorf("fmt -check: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
