package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/runner/notify"
)

// hookToken stands for the secret part of a webhook URL: it must never be
// printed.
const hookToken = "T0Zq7/B0Zq7/hooktokenZq7"

// hooks is a real HTTP endpoint recording the notifications it gets;
// status is what it answers.
type hooks struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []notify.Message
	bodies []string
	status int
}

func newHooks(t *testing.T) *hooks {
	h := &hooks{status: http.StatusOK}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m notify.Message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.got = append(h.got, m)
		h.bodies = append(h.bodies, string(body))
		w.WriteHeader(h.status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hooks) url() string { return h.srv.URL + "/services/" + hookToken }

func (h *hooks) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.got {
		out = append(out, m.Event+" "+m.Address)
	}
	return out
}

// TestNotifyRunOnce: a table whose source table was dropped sends exactly
// one failure across two run -once invocations, and one recovery when it
// syncs again; neither the webhook URL nor the password is printed or
// sent.
func TestNotifyRunOnce(t *testing.T) {
	s := newShop(t)
	h := newHooks(t)
	s.write(shopHeader + `
notify "ops" {
  url = env("SLUICE_TEST_HOOK")
}
` + shopSource(`
  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "customers" {
    sync = "full_refresh"
  }`))
	t.Setenv("SLUICE_TEST_HOOK", h.url())
	s.exec(`INSERT INTO orders (id, status, total) VALUES (1, 'new', 1)`)
	s.must(0, "apply", "-auto-approve")
	t.Setenv("SLUICE_VAR_url", s.url)
	t.Setenv("SLUICE_VAR_pg_password", secretPassword)
	s.must(0, "run", "-once")
	if got := h.events(); len(got) != 0 {
		t.Fatalf("a run without failures sent %v", got)
	}

	// resync makes the table due now, whatever its frequency.
	s.exec(`ALTER TABLE orders RENAME TO orders_gone`)
	s.must(0, "resync", "postgres.shop/orders")
	s.must(1, "run", "-once")
	s.must(0, "resync", "postgres.shop/orders")
	s.must(1, "run", "-once")
	if diff := cmp.Diff([]string{"failure postgres.shop/orders"}, h.events()); diff != "" {
		t.Errorf("after two failing runs (-want +got):\n%s", diff)
	}

	s.exec(`ALTER TABLE orders_gone RENAME TO orders`)
	s.must(0, "resync", "postgres.shop/orders")
	s.must(0, "run", "-once")
	if diff := cmp.Diff([]string{"failure postgres.shop/orders", "recovery postgres.shop/orders"}, h.events()); diff != "" {
		t.Errorf("after the recovery (-want +got):\n%s", diff)
	}
	h.mu.Lock()
	first := h.got[0]
	for _, b := range h.bodies {
		if strings.Contains(b, secretPassword) || strings.Contains(b, "Zq7") {
			t.Errorf("a notification holds a secret: %s", b)
		}
	}
	h.mu.Unlock()
	if !strings.Contains(first.Error, "orders") || first.Notify != "ops" || first.Runner == "" || first.At.IsZero() {
		t.Errorf("failure message = %+v", first)
	}
	if out := s.out.String(); strings.Contains(out, "Zq7") || strings.Contains(out, secretPassword) {
		t.Errorf("sluice printed a secret:\n%s", out)
	}
}

// TestNotifyTest: `sluice notify test` reports each block's outcome, exits
// 1 when one failed, and never prints a URL.
func TestNotifyTestCommand(t *testing.T) {
	ok, bad := newHooks(t), newHooks(t)
	bad.status = http.StatusInternalServerError
	dir := t.TempDir()
	s := &shop{t: t, dir: dir}
	s.write(`
notify "ops" {
  url = env("SLUICE_TEST_HOOK_OK")
  on  = ["failure", "recovery", "wal_lag"]
}
notify "broken" {
  url = env("SLUICE_TEST_HOOK_BAD")
}
`)
	t.Setenv("SLUICE_TEST_HOOK_OK", ok.url())
	t.Setenv("SLUICE_TEST_HOOK_BAD", bad.url())

	code, out, errOut := s.run("notify", "test")
	if code != 1 || !strings.Contains(out, "notify.ops") || !strings.Contains(out, "ok (HTTP 200)") ||
		!strings.Contains(out, "notify.broken") || !strings.Contains(out, "failed: HTTP 500") {
		t.Errorf("notify test: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out = s.must(0, "notify", "test", "ops")
	if strings.Contains(out, "broken") {
		t.Errorf("notify test ops tested broken:\n%s", out)
	}
	if got := ok.events(); len(got) != 2 || got[0] != "test " {
		t.Errorf("ops received %v", got)
	}
	if m := ok.got[0]; m.Notify != "ops" || !strings.Contains(m.Text, "test message") {
		t.Errorf("test message = %+v", m)
	}
	code, _, errOut = s.run("notify", "test", "opz")
	if code != 1 || !strings.Contains(errOut, `no notify block named "opz"`) || !strings.Contains(errOut, `"ops"`) {
		t.Errorf("notify test opz: exit %d\n%s", code, errOut)
	}
	// Unreachable: the error names neither the URL nor its host.
	ok.srv.Close()
	code, out, errOut = s.run("notify", "test", "ops")
	if code != 1 || !strings.Contains(out, "failed:") {
		t.Errorf("notify test on a closed endpoint: exit %d\n%s%s", code, out, errOut)
	}
	for _, u := range []string{ok.srv.URL, bad.srv.URL, strings.TrimPrefix(ok.srv.URL, "http://"), "Zq7"} {
		if strings.Contains(s.out.String(), u) {
			t.Errorf("output shows %q:\n%s", u, s.out.String())
		}
	}
	if code, _, errOut := s.run("notify"); code != 1 || !strings.Contains(errOut, "notify test") {
		t.Errorf("notify without a subcommand: exit %d\n%s", code, errOut)
	}
}

// TestNotifyValidate: validate reports a bad notify block with its line,
// and its snippet masks the URL.
func TestNotifyValidate(t *testing.T) {
	s := &shop{t: t, dir: t.TempDir()}
	s.write(`
notify "ops" {
  url = "http://hooks.example.com/services/Zq7token"
  on  = ["failure", "late"]
}
`)
	code, out, errOut := s.run("validate")
	all := out + errOut
	if code != 1 || !strings.Contains(all, "Notify URL is not HTTPS") || !strings.Contains(all, "main.hcl:3") ||
		!strings.Contains(all, "Unknown notify event") || !strings.Contains(all, "main.hcl:4") {
		t.Errorf("validate: exit %d\n%s", code, all)
	}
	if strings.Contains(all, "Zq7") || strings.Contains(all, "hooks.example.com") {
		t.Errorf("validate shows the URL:\n%s", all)
	}
}
