package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestNotifyBlocks(t *testing.T) {
	cfg, diags := load(t, `
notify "ops" {
  url         = env("SLACK_WEBHOOK_URL")
  on          = ["wal_lag", "stale", "failure", "recovery", "failure"]
  stale_after = "3h"
}
notify "local" {
  url = "http://127.0.0.1:9999/hook"
}
`, Options{LookupEnv: envOf(map[string]string{"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/xyz"})})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := []*Notify{
		{Name: "ops", URL: "https://hooks.slack.com/services/T0/B0/xyz", On: []string{"failure", "recovery", "stale", "wal_lag"}, StaleAfter: 3 * time.Hour},
		{Name: "local", URL: "http://127.0.0.1:9999/hook", On: []string{"failure", "recovery"}},
	}
	if diff := cmp.Diff(want, cfg.Notify, cmpopts.IgnoreFields(Notify{}, "Attrs", "DeclRange")); diff != "" {
		t.Errorf("notify (-want +got):\n%s", diff)
	}
}

func TestNotifyDiagnostics(t *testing.T) {
	tests := []struct {
		name, src string
		want      []diag
	}{
		{"missing url", `
notify "ops" {
  on = ["failure"]
}`, []diag{{"error", "Missing notify URL", 2}}},
		{"unknown event", `
notify "ops" {
  url = "https://hooks.example.com/x"
  on  = ["failure", "fialure", "late"]
}`, []diag{{"error", "Unknown notify event", 4}, {"error", "Unknown notify event", 4}}},
		{"http to another host", `
notify "ops" {
  url = "http://hooks.example.com/x"
}`, []diag{{"error", "Notify URL is not HTTPS", 3}}},
		{"http to localhost is allowed", `
notify "ops" {
  url = "http://localhost:8080/x"
}
notify "v6" {
  url = "http://[::1]:8080/x"
}`, nil},
		{"not a URL", `
notify "ops" {
  url = "hooks.example.com/x"
}`, []diag{{"error", "Invalid notify URL", 3}}},
		{"stale needs stale_after", `
notify "ops" {
  url = "https://hooks.example.com/x"
  on  = ["stale"]
}`, []diag{{"error", "Missing stale_after", 4}}},
		{"bad stale_after", `
notify "ops" {
  url         = "https://hooks.example.com/x"
  on          = ["stale"]
  stale_after = "soon"
}`, []diag{{"error", "Invalid stale_after", 5}}},
		{"stale_after without stale", `
notify "ops" {
  url         = "https://hooks.example.com/x"
  stale_after = "1h"
}`, []diag{{"warning", "stale_after ignored", 4}}},
		{"duplicate name", `
notify "ops" {
  url = "https://hooks.example.com/x"
}
notify "ops" {
  url = "https://hooks.example.com/y"
}`, []diag{{"error", "Duplicate notify block", 5}}},
		{"empty on", `
notify "ops" {
  url = "https://hooks.example.com/x"
  on  = []
}`, []diag{{"warning", "Notify block sends nothing", 4}}},
		{"unknown attribute", `
notify "ops" {
  url     = "https://hooks.example.com/x"
  channel = "#ops"
}`, []diag{{"error", "Unsupported argument", 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := load(t, tt.src, Options{})
			if diff := cmp.Diff(tt.want, summarize(diags)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			for _, d := range diags {
				if strings.Contains(d.Detail, "hooks.example.com") {
					t.Errorf("diagnostic %q quotes the URL: %s", d.Summary, d.Detail)
				}
			}
		})
	}
}

// TestNotifyUnknownEventNamesTheValidSet: the detail lists every event and
// suggests the closest.
func TestNotifyUnknownEventNamesTheValidSet(t *testing.T) {
	_, diags := load(t, `
notify "ops" {
  url = "https://hooks.example.com/x"
  on  = ["fialure"]
}`, Options{})
	if len(diags) != 1 {
		t.Fatalf("diagnostics = %v", diags)
	}
	for _, want := range []string{"failure, recovery, stale, wal_lag", `Did you mean "failure"?`} {
		if !strings.Contains(diags[0].Detail, want) {
			t.Errorf("detail %q lacks %q", diags[0].Detail, want)
		}
	}
	if r := diags[0].Subject; r == nil || r.Filename != "main.hcl" || r.Start.Line != 4 {
		t.Errorf("subject = %v, want main.hcl:4", r)
	}
}

// TestNotifyWithoutSecrets: validate without the environment leaves the
// URL unknown and reports nothing about it.
func TestNotifyWithoutSecrets(t *testing.T) {
	_, diags := load(t, `
notify "ops" {
  url         = env("SLACK_WEBHOOK_URL")
  on          = ["failure", "stale"]
  stale_after = "2h"
}`, Options{Validate: true})
	if len(diags) > 0 {
		t.Errorf("diagnostics = %v", summarize(diags))
	}
	_, diags = load(t, `
notify "ops" {
  on = ["failure"]
}`, Options{Validate: true})
	if diff := cmp.Diff([]diag{{"error", "Missing notify URL", 2}}, summarize(diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

// TestNotifyURLMasked: a notify URL written as a literal is a credential
// whole; snippets of its line never show it, as text or JSON.
func TestNotifyURLMasked(t *testing.T) {
	cfg, diags := load(t, `
notify "ops" {
  url = "http://hooks.example.com/services/Zq7token"
  on  = ["failure"]
}
notify ops2 {
  url = join("", ["https://hooks.example.com/", "Zq7other"])
}
`, Options{})
	if len(diags) != 1 {
		t.Fatalf("diagnostics = %v", summarize(diags))
	}
	var text bytes.Buffer
	if err := (&DiagnosticWriter{W: &text, Files: cfg.Files}).WriteDiagnostics(diags); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(NewJSONDiagnostics(diags, cfg.Files))
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), string(js)} {
		if strings.Contains(out, "Zq7") || strings.Contains(out, "hooks.example.com") {
			t.Errorf("output shows the URL:\n%s", out)
		}
	}
	if !strings.Contains(text.String(), `url = "****"`) {
		t.Errorf("text output lacks the masked URL:\n%s", text.String())
	}
	spans := secretSpans(cfg.Files["main.hcl"].Bytes)
	src := string(cfg.Files["main.hcl"].Bytes)
	var masked []string
	for _, s := range spans {
		masked = append(masked, src[s.start:s.end])
	}
	want := []string{"http://hooks.example.com/services/Zq7token", "https://hooks.example.com/", "Zq7other"}
	if diff := cmp.Diff(want, masked); diff != "" {
		t.Errorf("masked spans (-want +got):\n%s", diff)
	}
}
