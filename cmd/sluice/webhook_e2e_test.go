package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"github.com/sluice-dev/sluice/providers/stripe"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

const stripeKey = "sk_test_e2eWebhookKeyDoNotLeak0123456789"

const stripeHookConfig = `
variable "stripe_key" {
  type      = string
  sensitive = true
}
source "stripe" "billing" {
  prefix    = "stripe"
  api_key   = var.stripe_key
  api_base  = %q
  frequency = "24h"

  table "charges" { sync = "webhook" }

  webhook {
    url = %q
    %s
  }
}
`

// TestWebhookEndToEnd: apply registers the endpoint once (stripe-mock
// behind a stateful stand-in for the endpoints), run bulk-loads and
// receives signed events, status and the Parquet table show them, plan
// reports a disabled endpoint, destroy removes it.
func TestWebhookEndToEnd(t *testing.T) {
	api := stripetest.NewServer(t, stripeKey, stripetest.MockURL(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	base := "http://" + listen
	endpoint := base + "/webhooks/stripe.billing"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), fmt.Appendf(nil, stripeHookConfig, api.URL, base, ""), 0o644); err != nil {
		t.Fatal(err)
	}
	var printed strings.Builder
	sl := func(want int, args ...string) string {
		t.Helper()
		full := append([]string{"-chdir=" + dir, "-no-color", args[0]}, args[1:]...)
		switch args[0] {
		case "plan", "apply", "destroy", "run":
			full = append(full, "-var=stripe_key="+stripeKey)
		}
		code, out, errOut := sluice(t, "", full...)
		printed.WriteString(out + errOut)
		if code != want {
			t.Fatalf("sluice %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out + errOut
	}
	creates := func() int {
		n := 0
		for _, r := range api.Requests() {
			if r == "POST /v1/webhook_endpoints" {
				n++
			}
		}
		return n
	}

	out := sl(0, "apply", "-auto-approve")
	if !strings.Contains(out, "webhook tables (charges) need endpoint "+endpoint) {
		t.Errorf("apply does not show the webhook change:\n%s", out)
	}
	eps := api.Endpoints()
	events := stripe.EventTypes([]string{"charges"})
	if len(eps) != 1 || eps[0].URL != endpoint || !cmp.Equal(eps[0].Events, events) {
		t.Fatalf("endpoints after apply: %+v", eps)
	}
	secret := eps[0].Secret
	secretFile := filepath.Join(dir, ".sluice", "secrets", "stripe.billing.whsec")
	if fi, err := os.Stat(secretFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v", fi, err)
	}
	if data, _ := os.ReadFile(secretFile); strings.TrimSpace(string(data)) != secret {
		t.Errorf("the secret file does not hold the endpoint's secret")
	}
	stateJSON, err := os.ReadFile(filepath.Join(dir, ".sluice", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(stateJSON, []byte(`"id": "`+eps[0].ID+`"`)) || !bytes.Contains(stateJSON, []byte(`"created": true`)) {
		t.Errorf("state does not record the endpoint:\n%s", stateJSON)
	}

	// A second plan is empty; a second apply registers nothing.
	sl(0, "plan", "-detailed-exitcode")
	if out := sl(0, "apply", "-auto-approve"); !strings.Contains(out, "Nothing to apply") {
		t.Errorf("second apply:\n%s", out)
	}
	if n := creates(); n != 1 || len(api.Endpoints()) != 1 {
		t.Fatalf("endpoint registered %d times, %d endpoints", n, len(api.Endpoints()))
	}

	// The daemon: bulk load (stripe-mock's charge), then events.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runContext = func() (context.Context, context.CancelFunc) { return ctx, cancel }
	defer func() { runContext = commandContext }()
	done := make(chan int, 1)
	var runOut, runErr string
	go func() {
		var code int
		code, runOut, runErr = sluice(t, "", "-chdir="+dir, "run", "-listen="+listen, "-var=stripe_key="+stripeKey)
		done <- code
	}()
	type statusDoc struct {
		Tables  []struct{ Address, State string } `json:"tables"`
		Sources []struct {
			Address        string `json:"address"`
			WebhookURL     string `json:"webhook_url"`
			EventsReceived int64  `json:"events_received"`
			EventsRejected int64  `json:"events_rejected"`
			EventsApplied  int64  `json:"events_applied"`
		} `json:"sources"`
	}
	status := func() statusDoc {
		var doc statusDoc
		if err := json.Unmarshal([]byte(sl(0, "status", "-json")), &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	waitFor := func(what string, ok func(statusDoc) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok(status()) {
			select {
			case code := <-done:
				t.Fatalf("sluice run exited %d while waiting for %s:\n%s%s", code, what, runOut, runErr)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, status())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the bulk load", func(d statusDoc) bool { return len(d.Tables) == 1 && d.Tables[0].State == "completed" })
	bulk := chargeIDs(t, dir)
	if len(bulk) == 0 {
		t.Fatal("the bulk load wrote no charges")
	}

	deliver := func(body []byte, sig string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	now := time.Now()
	for i, id := range []string{"ch_e2e_1", "ch_e2e_2"} {
		ev := fmt.Appendf(nil, `{"id":"evt_e2e_%d","object":"event","type":"charge.succeeded","created":%d,"livemode":false,`+
			`"data":{"object":{"id":%q,"object":"charge","created":%d,"amount":%d,"currency":"usd","paid":true}}}`, i, now.Unix(), id, now.Unix(), 1000+i)
		if code := deliver(ev, stripetest.Sign(secret, now, ev)); code != 200 {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}
	if code := deliver([]byte(`{"id":"evt_forged"}`), stripetest.Sign("whsec_forged", now, []byte(`{"id":"evt_forged"}`))); code != 400 {
		t.Errorf("forged delivery: %d", code)
	}
	waitFor("the events", func(d statusDoc) bool {
		return len(d.Sources) == 1 && d.Sources[0].EventsApplied == 2 && d.Sources[0].EventsRejected == 1
	})
	got := status().Sources[0]
	if got.WebhookURL != endpoint || got.EventsReceived != 2 {
		t.Errorf("source status: %+v", got)
	}
	if out := sl(0, "status"); !strings.Contains(out, "webhook "+endpoint+": 2 received, 1 rejected, 2 applied") {
		t.Errorf("status does not show the webhook:\n%s", out)
	}
	want := append(bulk, "ch_e2e_1", "ch_e2e_2")
	if diff := cmp.Diff(want, chargeIDs(t, dir)); diff != "" {
		t.Errorf("charges (-want +got):\n%s", diff)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("sluice run exited %d:\n%s%s", code, runOut, runErr)
	}
	printed.WriteString(runOut + runErr)

	// Disabled in the Dashboard: drift, and apply enables it again.
	api.SetStatus(eps[0].ID, "disabled")
	if out := sl(2, "plan", "-detailed-exitcode"); !strings.Contains(out, "is disabled at stripe") {
		t.Errorf("plan does not report the disabled endpoint:\n%s", out)
	}
	sl(0, "apply", "-auto-approve")
	if eps := api.Endpoints(); len(eps) != 1 || eps[0].Status != "enabled" || creates() != 1 {
		t.Errorf("after re-enabling: %+v", eps)
	}

	// destroy deletes the endpoint sluice registered, and its secret.
	sl(0, "destroy", "-auto-approve")
	if eps := api.Endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after destroy: %+v", eps)
	}
	if _, err := os.Stat(secretFile); !os.IsNotExist(err) {
		t.Errorf("secret file after destroy: %v", err)
	}
	for _, s := range []string{secret, stripeKey} {
		if strings.Contains(printed.String(), s) {
			t.Errorf("sluice printed a secret")
		}
	}
}

// chargeIDs lists the ids in the warehouse's charges table, in order.
func chargeIDs(t *testing.T, dir string) []string {
	t.Helper()
	w, err := parquet.Open(filepath.Join(dir, "warehouse"))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := w.OpenTable("stripe_charges")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	err = tb.Scan(t.Context(), func(b *records.Batch) error {
		c := b.Schema.Index("id")
		for i := 0; i < b.N; i++ {
			ids = append(ids, string(b.Cols[c].Bytes(i)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	return ids
}

// TestWebhookWithoutPermission: a key that may not manage webhook
// endpoints makes apply say what to register by hand; with signing_secret
// set, apply records the hand-registered endpoint and plan stays empty.
func TestWebhookWithoutPermission(t *testing.T) {
	api := stripetest.NewServer(t, stripeKey, stripetest.MockURL(t))
	api.DenyWebhooks(true)
	dir := t.TempDir()
	write := func(secretLine string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), fmt.Appendf(nil, stripeHookConfig, api.URL, "https://sluice.example.com", secretLine), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sl := func(want int, args ...string) string {
		t.Helper()
		full := append([]string{"-chdir=" + dir, "-no-color", args[0]}, args[1:]...)
		full = append(full, "-var=stripe_key="+stripeKey)
		code, out, errOut := sluice(t, "", full...)
		if code != want {
			t.Fatalf("sluice %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
		}
		if strings.Contains(out+errOut, stripeKey) || strings.Contains(out+errOut, "whsec_byHand") {
			t.Errorf("sluice %s printed a secret", args[0])
		}
		return out + errOut
	}
	write("")
	out := sl(1, "apply", "-auto-approve")
	for _, want := range []string{
		"https://sluice.example.com/webhooks/stripe.billing",
		strings.Join(stripe.EventTypes([]string{"charges"}), ", "),
		"set signing_secret in the webhook block",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply without the permission does not say %q:\n%s", want, out)
		}
	}
	write(`signing_secret = "whsec_byHand"`)
	sl(0, "apply", "-auto-approve")
	sl(0, "plan", "-detailed-exitcode")
	if _, err := os.Stat(filepath.Join(dir, ".sluice", "secrets")); !os.IsNotExist(err) {
		t.Errorf("a secret was stored although signing_secret is set: %v", err)
	}
	sl(0, "destroy", "-auto-approve") // deletes nothing it did not register
}
