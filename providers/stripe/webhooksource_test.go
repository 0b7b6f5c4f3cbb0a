package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"github.com/sluice-dev/sluice/providers"
)

// TestWebhookSource drives the provider through providers.WebhookSource
// only, as the runner's receiver does: the signature header and the event
// format stay the provider's.
func TestWebhookSource(t *testing.T) {
	var ws providers.WebhookSource = newProvider(t, "http://127.0.0.1:1", testKey)
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_1","object":"event","type":"customer.updated","created":1700000000,` +
		`"data":{"object":{"id":"cus_1","object":"customer","created":1600000000,"name":"Ada"}}}`)
	header := func(secret string, at time.Time) http.Header {
		h := http.Header{}
		h.Set(SignatureHeader, fmt.Sprintf("t=%d,v1=%s", at.Unix(), sign(secret, at.Unix(), body)))
		return h
	}
	tests := []struct {
		name    string
		header  http.Header
		secrets []string
		want    error // nil: accepted
	}{
		{name: "signed with the only secret", header: header(testSecret, now), secrets: []string{testSecret}},
		{name: "signed with the second secret", header: header(testSecret, now), secrets: []string{"whsec_other", testSecret}},
		{name: "signed with neither", header: header("whsec_third", now), secrets: []string{"whsec_other", testSecret}, want: ErrSignatureMismatch},
		{name: "stale, whichever secret matched", header: header(testSecret, now.Add(-time.Hour)), secrets: []string{testSecret, "whsec_other"}, want: ErrTimestampNotCurrent},
		{name: "no header", header: http.Header{}, secrets: []string{testSecret}, want: ErrMalformedSignature},
		{name: "no secrets", header: header(testSecret, now), want: providers.ErrNoSigningSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ws.VerifyWebhook(body, tt.header, tt.secrets, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyWebhook = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), testSecret) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}

	ev, err := ws.DecodeWebhookEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	got := *ev
	got.Data = nil
	want := providers.WebhookEvent{ID: "evt_1", Type: "customer.updated", Table: "customers", ObjectID: "cus_1", Time: now.UTC()}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decoded event (-want +got):\n%s", d)
	}
	unknown, err := ws.DecodeWebhookEvent([]byte(`{"id":"evt_2","type":"x.updated","created":1,"data":{"object":{"id":"x_1","object":"no_such_object"}}}`))
	if err != nil || unknown.Table != "" {
		t.Errorf("event of an object sluice does not sync: %+v, %v; want no table", unknown, err)
	}
	if _, err := ws.DecodeWebhookEvent([]byte(`[]`)); err == nil {
		t.Error("a JSON array decoded as an event")
	}

	b, err := ws.WebhookRows(providers.ReadRequest{Table: "customers", Columns: []string{"name"}}, []*providers.WebhookEvent{ev})
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []map[string]any{{"id": "cus_1", "created": time.Unix(1600000000, 0).UTC(), "name": "Ada"}}
	if d := cmp.Diff(wantRows, rowMaps(b)); d != "" {
		t.Errorf("rows (-want +got):\n%s", d)
	}
	foreign := &providers.WebhookEvent{ID: "evt_3", Table: "customers", Data: "not a Stripe event"}
	if _, err := ws.WebhookRows(providers.ReadRequest{Table: "customers"}, []*providers.WebhookEvent{foreign}); err == nil {
		t.Error("an event another provider decoded was accepted")
	}
}

// TestFindWebhookEndpointWithoutPermission: a key that may not list
// endpoints gets an error saying what to register by hand, which callers
// recognise without knowing the provider.
func TestFindWebhookEndpointWithoutPermission(t *testing.T) {
	f := stripetest.NewServer(t, testKey, "")
	f.DenyWebhooks(true)
	src := source(f.URL, testKey)
	src.Tables = []*config.Table{
		{Table: "charges", Enabled: true, Sync: config.SyncWebhook},
		{Table: "customers", Enabled: true, Sync: config.SyncFullRefresh},
		{Table: "invoices", Enabled: false, Sync: config.SyncWebhook},
	}
	var wm providers.WebhookManager
	p, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	wm = p
	_, err = wm.FindWebhookEndpoint(context.Background(), hookURL)
	var pe *WebhookPermissionError
	if !errors.Is(err, providers.ErrWebhookPermission) || !errors.As(err, &pe) || !IsPermission(err) {
		t.Fatalf("err = %v, want a WebhookPermissionError", err)
	}
	if want := EventTypes([]string{"charges"}); pe.URL != hookURL || !cmp.Equal(pe.Events, want) {
		t.Errorf("permission error names %s %v, want %s %v", pe.URL, pe.Events, hookURL, want)
	}
	_, _, _, err = wm.EnsureWebhookEndpoint(context.Background(), hookURL, EventTypes([]string{"charges"}))
	if !errors.Is(err, providers.ErrWebhookPermission) {
		t.Errorf("Ensure: err = %v, want ErrWebhookPermission", err)
	}
}
