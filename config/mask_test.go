package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// maskedSource holds secrets in every form a snippet must mask; each
// secret contains "Zq7", which must never be printed. Lines 1-2 are
// comments, the rest configuration.
const maskedSource = `# connection_string = "postgres://u:Zq7secret1@h/db"
# api_key = "sk_Zq7secret2"
source "postgres" "p" {
  connection_string = "postgres://u:Zq7secret3@h/db"
  password = "Zq7sec\"ret4"
  ssh_tunnel {
    private_key = <<-EOT
      -----BEGIN OPENSSH PRIVATE KEY-----
      Zq7secret5
      EOT
    passphrase = join("", [
      "Zq7secret6",
    ])
  }
}
locals {
  url   = "postgresql://app:Zq7se@cret7@db:5432/x?sslmode=require"
  dsn   = "host=h password=Zq7secret8 dbname=x"
  dsn2  = "host=h password='Zq7 secret9' dbname=x"
  other = { api_key = "Zq7secret10", signing_secret: "Zq7secret11" }
  hash_salt = "Zq7secret12"
  query = "postgres://h/db?sslmode=disable&password=Zq7secret13"
}
`

// TestSnippetsMaskSecrets renders a diagnostic on every line (and on
// three-line contexts), as text and JSON, and finds no secret in either.
func TestSnippetsMaskSecrets(t *testing.T) {
	f, diags := hclsyntax.ParseConfig([]byte(maskedSource), "main.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	files := map[string]*hcl.File{"main.hcl": f}
	var all hcl.Diagnostics
	for line, start := range lines(f.Bytes) {
		end := lineEnd(f.Bytes, start)
		r := hcl.Range{Filename: "main.hcl",
			Start: hcl.Pos{Line: line, Column: 1, Byte: start},
			End:   hcl.Pos{Line: line, Column: end - start + 1, Byte: end}}
		all = append(all, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "whole line", Subject: r.Ptr()})
		mid := r
		mid.Start.Column, mid.Start.Byte = min(12, end-start+1), start+min(11, end-start)
		ctx := hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: line, Column: 1, Byte: start}, End: hcl.Pos{Line: line + 2, Column: 1}}
		all = append(all, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "from column 12", Subject: mid.Ptr(), Context: &ctx})
	}
	var text bytes.Buffer
	if err := (&DiagnosticWriter{W: &text, Files: files}).WriteDiagnostics(all); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(NewJSONDiagnostics(all, files))
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "json": string(js)} {
		if strings.Contains(out, "Zq7") {
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "Zq7") {
					t.Errorf("%s output shows a secret: %s", name, l)
				}
			}
		}
	}
	// What is not secret stays readable.
	for _, keep := range []string{`connection_string = "****"`, `password = "****"`, "postgresql://app:****@db:5432", "host=h password=**** dbname=x", "password=****", "sslmode=disable&password=****", "      ****\n", `api_key = "****", signing_secret: "****"`} {
		if !strings.Contains(text.String(), keep) {
			t.Errorf("text output lacks %q", keep)
		}
	}
	if t.Failed() {
		t.Log(text.String())
	}
}

// TestSnippetCaretAfterMask: the caret stands under the subject when a
// masked secret before it on the line is shorter or longer than its mask.
func TestSnippetCaretAfterMask(t *testing.T) {
	src := "a = \"postgres://u:averyveryverylongpassword@h/db\" + bad\n"
	f, _ := hclsyntax.ParseConfig([]byte(src), "main.hcl", hcl.InitialPos)
	i := strings.Index(src, "bad")
	r := hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: 1, Column: i + 1, Byte: i}, End: hcl.Pos{Line: 1, Column: i + 4, Byte: i + 3}}
	got := snippet(map[string]*hcl.File{"main.hcl": f}, secretCache{}, r, nil)
	masked := "a = \"postgres://u:****@h/db\" + bad"
	want := "     1: " + masked + "\n" + strings.Repeat(" ", 8+strings.Index(masked, "bad")) + "^^^\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	js := jsonSnippet(map[string]*hcl.File{"main.hcl": f}, secretCache{}, r)
	if hl := js.Code[js.HighlightStartOffset:js.HighlightEndOffset]; hl != "bad" {
		t.Errorf("JSON highlight %q, want \"bad\"", hl)
	}
}

// TestSnippetLongLine: a line of megabytes is cut around the subject.
func TestSnippetLongLine(t *testing.T) {
	src := "a = \"" + strings.Repeat("x", 1<<20) + "\" + bad + \"" + strings.Repeat("y", 1<<20) + "\"\n"
	f, _ := hclsyntax.ParseConfig([]byte(src), "main.hcl", hcl.InitialPos)
	i := strings.Index(src, "bad")
	r := hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: 1, Column: i + 1, Byte: i}, End: hcl.Pos{Line: 1, Column: i + 4, Byte: i + 3}}
	got := snippet(map[string]*hcl.File{"main.hcl": f}, secretCache{}, r, nil)
	lines := strings.Split(got, "\n")
	if len(got) > 2*maxSnippetLine+40 || len(lines) < 2 {
		t.Fatalf("snippet of %d bytes", len(got))
	}
	caret := strings.IndexByte(lines[1], '^')
	if caret < 0 || string([]rune(lines[0])[caret:caret+3]) != "bad" {
		t.Errorf("caret not under the subject:\n%s", got)
	}
}
