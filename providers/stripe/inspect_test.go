package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
)

func TestInspectStripeMock(t *testing.T) {
	p := newProvider(t, stripeMockURL(t), testKey)
	obs, err := p.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range obs.Tables {
		names = append(names, tb.Name)
	}
	want := []string{"balance_transactions", "charges", "customers", "disputes", "invoices", "payment_intents",
		"prices", "products", "refunds", "subscriptions"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}
	if obs.Source != "stripe.billing" || obs.Webhook != nil {
		t.Errorf("source %q, webhook %+v; want stripe.billing and none (no webhook block)", obs.Source, obs.Webhook)
	}
	for _, tb := range obs.Tables {
		if tb.Kind != providers.KindObject || tb.Schema != "" || !cmp.Equal(tb.PrimaryKey, []string{"id"}) ||
			tb.EstimatedRows != nil || tb.Warnings == nil {
			t.Errorf("%s: kind %q schema %q key %v rows %v warnings %v", tb.Name, tb.Kind, tb.Schema, tb.PrimaryKey, tb.EstimatedRows, tb.Warnings)
		}
		wantInc := []providers.IncrementalField{{Name: "created", Type: "timestamp", Indexed: true}}
		if diff := cmp.Diff(wantInc, tb.IncrementalFields); diff != "" {
			t.Errorf("%s incremental fields (-want +got):\n%s", tb.Name, diff)
		}
		if tb.Columns[0].Name != "id" || tb.Columns[1].Name != "created" {
			t.Errorf("%s: columns start %s, %s; want id, created", tb.Name, tb.Columns[0].Name, tb.Columns[1].Name)
		}
	}

	tests := []struct {
		table, column string
		want          providers.Column
	}{
		{"charges", "id", providers.Column{Name: "id", Type: "string", ParquetType: "STRING"}},
		{"charges", "created", providers.Column{Name: "created", Type: "timestamp", ParquetType: "TIMESTAMP(MICROS,UTC)"}},
		{"charges", "amount", providers.Column{Name: "amount", Type: "integer", Nullable: true, ParquetType: "INT64"}},
		{"charges", "captured", providers.Column{Name: "captured", Type: "boolean", Nullable: true, ParquetType: "BOOLEAN"}},
		{"charges", "customer", providers.Column{Name: "customer", Type: "expandable", Nullable: true, ParquetType: "STRING"}},
		{"charges", "metadata", providers.Column{Name: "metadata", Type: "object", Nullable: true, ParquetType: "JSON"}},
		{"subscriptions", "canceled_at", providers.Column{Name: "canceled_at", Type: "timestamp", Nullable: true, ParquetType: "TIMESTAMP(MICROS,UTC)"}},
		{"subscriptions", "items", providers.Column{Name: "items", Type: "object", Nullable: true, ParquetType: "JSON"}},
		{"invoices", "period_end", providers.Column{Name: "period_end", Type: "timestamp", Nullable: true, ParquetType: "TIMESTAMP(MICROS,UTC)"}},
		{"invoices", "discounts", providers.Column{Name: "discounts", Type: "array", Nullable: true, ParquetType: "JSON"}},
		{"balance_transactions", "exchange_rate", providers.Column{Name: "exchange_rate", Type: "number", Nullable: true, ParquetType: "DOUBLE"}},
	}
	for _, tt := range tests {
		tb := obs.Table("", tt.table)
		if tb == nil {
			t.Fatalf("no table %s", tt.table)
		}
		got := tb.Column(tt.column)
		if got == nil {
			t.Errorf("%s has no column %s", tt.table, tt.column)
			continue
		}
		if diff := cmp.Diff(tt.want, *got); diff != "" {
			t.Errorf("%s.%s (-want +got):\n%s", tt.table, tt.column, diff)
		}
	}
	if obs.Table("", "payment_intents").Column("client_secret") != nil || obs.Table("", "invoices").Column("confirmation_secret") != nil {
		t.Error("client secrets are credentials and must not be synced")
	}

	syncs := []struct {
		table       string
		types       []string
		recommended string
		webhook     bool
	}{
		{"charges", []string{"full_refresh", "incremental", "webhook"}, "webhook", true},
		{"subscriptions", []string{"full_refresh", "incremental", "webhook"}, "webhook", true},
		{"balance_transactions", []string{"full_refresh", "incremental"}, "incremental", false},
	}
	for _, s := range syncs {
		tb := obs.Table("", s.table)
		if !cmp.Equal(tb.SyncTypes, s.types) || tb.RecommendedSync != s.recommended || tb.SupportsWebhook != s.webhook {
			t.Errorf("%s: sync types %v recommended %s webhook %v; want %v %s %v", s.table, tb.SyncTypes, tb.RecommendedSync,
				tb.SupportsWebhook, s.types, s.recommended, s.webhook)
		}
	}
	// The JSON shape of SPEC §7.
	b, err := json.Marshal(obs.Table("", "balance_transactions"))
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{`"schema":""`, `"kind":"object"`, `"estimated_rows":null`, `"recommended_incremental_field":"created"`, `"warnings":[]`} {
		if !strings.Contains(string(b), frag) {
			t.Errorf("inspect JSON lacks %s: %s", frag, b)
		}
	}
}

// TestInspectWebhook finds the source's endpoint by its exact URL.
func TestInspectWebhook(t *testing.T) {
	f := stripetest.NewServer(t, testKey, "")
	src := source(f.URL, testKey)
	src.Stripe.Webhook = &config.Webhook{URL: "https://sluice.example.com"}
	p, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	url := src.WebhookEndpoint()
	// Another source's endpoint, and one whose URL only starts the same.
	for _, u := range []string{"https://sluice.example.com/webhooks/stripe.other", url + "/x"} {
		if _, _, _, err := p.EnsureWebhookEndpoint(ctx, u, []string{"charge.updated"}); err != nil {
			t.Fatal(err)
		}
	}
	obs, err := p.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if obs.Webhook != nil {
		t.Fatalf("webhook %+v, want none registered for %s", obs.Webhook, url)
	}
	ep, _, _, err := p.EnsureWebhookEndpoint(ctx, url, EventTypes([]string{"charges"}))
	if err != nil {
		t.Fatal(err)
	}
	if obs, err = p.Inspect(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ep, obs.Webhook); diff != "" {
		t.Errorf("observed webhook (-want +got):\n%s", diff)
	}
	// A key that may not list webhook endpoints: no webhook observed, no
	// failure (the endpoint may be registered by hand).
	f.DenyWebhooks(true)
	if obs, err = p.Inspect(ctx); err != nil || obs.Webhook != nil {
		t.Errorf("without webhook permission: webhook %+v, err %v; want none and no error", obs.Webhook, err)
	}
}

func TestInspectBadKeyAndBase(t *testing.T) {
	ctx := context.Background()
	// stripe-mock rejects live keys, echoing the Authorization header.
	badKey := "sk_live_51SluiceBadKeyMustNotLeak987654321"
	p := newProvider(t, stripeMockURL(t), badKey)
	_, err := p.Inspect(ctx)
	if err == nil {
		t.Fatal("a rejected key inspected fine")
	}
	msg := err.Error()
	t.Logf("rejected key: %s", msg)
	if !strings.Contains(msg, "stripe.billing") || !strings.Contains(msg, "Invalid API Key provided: check api_key") {
		t.Errorf("error %q does not name the source and say to check api_key", msg)
	}
	if strings.Contains(msg, badKey) || strings.Contains(msg, "Bearer") {
		t.Errorf("error leaks the key: %q", msg)
	}

	// A closed port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p = newProvider(t, "http://"+addr, testKey)
	fastRetries(p)
	_, err = p.Inspect(ctx)
	t.Logf("unreachable: %v", err)
	var ne net.Error
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Stripe API at http://"+addr) || !errors.As(err, &ne) {
		t.Errorf("unreachable api_base: err = %v; want it to say so and wrap the net.Error", err)
	}
}

// TestRegistered opens a Stripe source through the provider registry.
func TestRegistered(t *testing.T) {
	src, err := providers.Open(context.Background(), source(stripeMockURL(t), testKey))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, ok := src.(*Provider); !ok {
		t.Fatalf("providers.Open gave a %T", src)
	}
	for _, tc := range []struct {
		src  *config.Source
		want string
	}{
		{&config.Source{Type: "stripe", Name: "x", Stripe: &config.Stripe{}}, "api_key is empty"},
		{&config.Source{Type: "stripe", Name: "x", Stripe: &config.Stripe{APIKey: testKey, APIBase: "ftp://x"}}, "api_base is not an http(s) URL"},
		{&config.Source{Type: "stripe", Name: "x", Stripe: &config.Stripe{APIKey: testKey, APIBase: "https://user:" + testKey + "@x"}}, "without credentials"},
		{&config.Source{Type: "stripe", Name: "x"}, "is not a Stripe source"},
	} {
		s, err := providers.Open(context.Background(), tc.src)
		if err == nil || s != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open: %v, %v; want an error with %q", s, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), testKey) {
			t.Errorf("error leaks the key: %v", err)
		}
	}
}
