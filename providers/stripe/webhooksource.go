package stripe

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// SignatureHeader is the header a webhook delivery's signature is in.
const SignatureHeader = "Stripe-Signature"

// The webhook capabilities the provider implements.
var (
	_ providers.WebhookSource  = (*Provider)(nil)
	_ providers.WebhookManager = (*Provider)(nil)
)

// VerifyWebhook accepts a delivery whose Stripe-Signature header is signed
// with any of secrets (VerifySignature). A signature that matches with a
// stale timestamp is refused as such, whichever secret it matched.
func (p *Provider) VerifyWebhook(body []byte, header http.Header, secrets []string, now time.Time) error {
	if len(secrets) == 0 {
		return ErrNoSigningSecret
	}
	var first error
	for _, s := range secrets {
		err := VerifySignature(body, header.Get(SignatureHeader), s, now, DefaultTolerance)
		if err == nil || errors.Is(err, ErrTimestampNotCurrent) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// DecodeWebhookEvent parses a delivery (ParseEvent) and routes it to the
// table of its object.
func (p *Provider) DecodeWebhookEvent(body []byte) (*providers.WebhookEvent, error) {
	ev, err := ParseEvent(body)
	if err != nil {
		return nil, err
	}
	table, _ := ev.Table()
	return &providers.WebhookEvent{ID: ev.ID, Type: ev.Type, Table: table, ObjectID: ev.ObjectID, Time: ev.Created, Data: ev}, nil
}

// WebhookRows is EventBatch for events DecodeWebhookEvent decoded.
func (p *Provider) WebhookRows(req providers.ReadRequest, events []*providers.WebhookEvent) (*records.Batch, error) {
	evs := make([]*Event, 0, len(events))
	for _, we := range events {
		if we == nil {
			continue
		}
		ev, ok := we.Data.(*Event)
		if !ok || ev == nil {
			return nil, fmt.Errorf("%s: webhook event %s was not decoded by the Stripe provider", p.addr, we.ID)
		}
		evs = append(evs, ev)
	}
	return p.EventBatch(req, evs)
}

// Is makes a WebhookPermissionError a providers.ErrWebhookPermission.
func (e *WebhookPermissionError) Is(target error) bool {
	return target == providers.ErrWebhookPermission
}

// webhookEvents lists the event types the source's webhook tables need
// (EventTypes), for the errors that say what to register by hand.
func webhookEvents(src *config.Source) []string {
	var tables []string
	for _, t := range src.Tables {
		if t.Enabled && t.Sync == config.SyncWebhook {
			tables = append(tables, t.Table)
		}
	}
	return EventTypes(tables)
}
