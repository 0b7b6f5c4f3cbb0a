package stripe

import (
	"context"
	"errors"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/providers"
)

const hookURL = "https://sluice.example.com/webhooks/stripe.billing"

func TestEnsureWebhookEndpointIsIdempotent(t *testing.T) {
	f := stripetest.NewServer(t, testKey, "")
	p := newProvider(t, f.URL, testKey)
	ctx := context.Background()
	events := EventTypes([]string{"charges", "customers"})

	ep, secret, created, err := p.EnsureWebhookEndpoint(ctx, hookURL, events)
	if err != nil {
		t.Fatal(err)
	}
	want := &providers.WebhookEndpoint{ID: "we_test1", URL: hookURL, Enabled: true, Events: events}
	if diff := cmp.Diff(want, ep); diff != "" || !created || secret != "whsec_test1Secret" {
		t.Fatalf("first Ensure: created %v, secret %q, endpoint (-want +got):\n%s", created, secret, diff)
	}

	// Again: found, not registered twice, no secret.
	ep, secret, created, err = p.EnsureWebhookEndpoint(ctx, hookURL, events)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, ep); diff != "" || created || secret != "" || len(f.Endpoints()) != 1 {
		t.Fatalf("second Ensure: created %v, secret %q, %d endpoints, endpoint (-want +got):\n%s", created, secret, len(f.Endpoints()), diff)
	}
	found, err := p.FindWebhookEndpoint(ctx, hookURL)
	if err != nil || !cmp.Equal(want, found) {
		t.Fatalf("Find: %+v, %v", found, err)
	}

	// Disabled in the Dashboard: reported, then re-enabled.
	f.SetStatus(f.Endpoints()[0].ID, "disabled")
	found, err = p.FindWebhookEndpoint(ctx, hookURL)
	if err != nil || found == nil || found.Enabled {
		t.Fatalf("Find of a disabled endpoint: %+v, %v", found, err)
	}
	ep, _, created, err = p.EnsureWebhookEndpoint(ctx, hookURL, events)
	if err != nil || created || !ep.Enabled || f.Endpoints()[0].Status != "enabled" || len(f.Endpoints()) != 1 {
		t.Fatalf("Ensure of a disabled endpoint: %+v, created %v, err %v, status %s", ep, created, err, f.Endpoints()[0].Status)
	}

	// Events changed: updated in place.
	more := EventTypes([]string{"charges", "customers", "refunds"})
	ep, _, created, err = p.EnsureWebhookEndpoint(ctx, hookURL, append([]string{"refund.created"}, more...)) // unsorted, duplicated
	if err != nil || created || !cmp.Equal(ep.Events, more) || !cmp.Equal(f.Endpoints()[0].Events, more) || len(f.Endpoints()) != 1 {
		t.Fatalf("Ensure with more events: %+v, created %v, err %v", ep, created, err)
	}

	// Deleted: found missing; deleting again is fine; Ensure registers anew.
	if err := p.DeleteWebhookEndpoint(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if found, err = p.FindWebhookEndpoint(ctx, hookURL); err != nil || found != nil {
		t.Fatalf("Find after delete: %+v, %v", found, err)
	}
	if err := p.DeleteWebhookEndpoint(ctx, ep.ID); err != nil {
		t.Errorf("deleting a deleted endpoint: %v", err)
	}
	ep, secret, created, err = p.EnsureWebhookEndpoint(ctx, hookURL, events)
	if err != nil || !created || secret != "whsec_test2Secret" || ep.ID != "we_test2" {
		t.Fatalf("Ensure after delete: %+v, created %v, secret %q, err %v", ep, created, secret, err)
	}
}

func TestEnsureWebhookEndpointWithoutPermission(t *testing.T) {
	f := stripetest.NewServer(t, testKey, "")
	f.DenyWebhooks(true)
	p := newProvider(t, f.URL, testKey)
	ctx := context.Background()
	events := EventTypes([]string{"charges"})
	_, _, _, err := p.EnsureWebhookEndpoint(ctx, hookURL, events)
	var pe *WebhookPermissionError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a WebhookPermissionError", err)
	}
	if pe.URL != hookURL || !cmp.Equal(pe.Events, events) || !IsPermission(err) {
		t.Errorf("permission error names %s %v", pe.URL, pe.Events)
	}
	msg := err.Error()
	t.Log(msg)
	for _, frag := range []string{"stripe.billing", hookURL, "charge.succeeded", "Dashboard", "signing_secret", `source "stripe" "billing"`} {
		if !strings.Contains(msg, frag) {
			t.Errorf("error lacks %q: %s", frag, msg)
		}
	}
	if strings.Contains(msg, testKey) {
		t.Errorf("error leaks the key: %s", msg)
	}
	if _, err := p.FindWebhookEndpoint(ctx, hookURL); !IsPermission(err) {
		t.Errorf("Find without permission: err = %v, want a permission error", err)
	}
}

// TestWebhookRequestsAgainstStripeMock sends the create, update, list and
// delete requests to stripe-mock, which validates their parameters
// (including every event type sluice registers) against Stripe's OpenAPI
// specification.
func TestWebhookRequestsAgainstStripeMock(t *testing.T) {
	p := newProvider(t, stripeMockURL(t), testKey)
	ctx := context.Background()
	all := EventTypes(Tables())

	// stripe-mock lists one fixture endpoint; any other URL is created.
	ep, _, created, err := p.EnsureWebhookEndpoint(ctx, hookURL, all)
	if err != nil {
		t.Fatal(err)
	}
	if !created || ep.URL != hookURL || !cmp.Equal(ep.Events, all) {
		t.Errorf("create: %+v, created %v", ep, created)
	}

	// The fixture's URL is found; its events differ, so it is updated.
	const fixtureURL = "https://example.com/my/webhook/endpoint"
	found, err := p.FindWebhookEndpoint(ctx, fixtureURL)
	if err != nil || found == nil || !found.Enabled {
		t.Fatalf("Find fixture: %+v, %v", found, err)
	}
	ep, _, created, err = p.EnsureWebhookEndpoint(ctx, fixtureURL, EventTypes([]string{"refunds"}))
	if err != nil || created || ep.ID != found.ID {
		t.Fatalf("update: %+v, created %v, err %v", ep, created, err)
	}
	if err := p.DeleteWebhookEndpoint(ctx, found.ID); err != nil {
		t.Fatal(err)
	}
}

func TestEventTypes(t *testing.T) {
	tests := []struct {
		tables []string
		want   []string
	}{
		{nil, []string{}},
		{[]string{"balance_transactions", "nonsense"}, []string{}},
		{[]string{"refunds", "disputes"}, []string{
			"charge.dispute.closed", "charge.dispute.created", "charge.dispute.funds_reinstated",
			"charge.dispute.funds_withdrawn", "charge.dispute.updated", "charge.refund.updated",
			"refund.created", "refund.failed", "refund.updated"}},
		{[]string{"customers", "customers"}, []string{"customer.created", "customer.deleted", "customer.updated"}},
		{[]string{"subscriptions"}, []string{
			"customer.subscription.created", "customer.subscription.deleted", "customer.subscription.paused",
			"customer.subscription.pending_update_applied", "customer.subscription.pending_update_expired",
			"customer.subscription.resumed", "customer.subscription.trial_will_end", "customer.subscription.updated"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, EventTypes(tt.tables)); diff != "" {
			t.Errorf("EventTypes(%v) (-want +got):\n%s", tt.tables, diff)
		}
	}
	for _, table := range Tables() {
		if got := SupportsWebhook(table); got != (table != "balance_transactions") {
			t.Errorf("SupportsWebhook(%s) = %v", table, got)
		}
		for _, e := range EventTypes([]string{table}) {
			if strings.Contains(e, "*") || e == "invoice.upcoming" {
				t.Errorf("%s: event type %s (wildcards and events about objects without an id are not registered)", table, e)
			}
		}
	}
}
