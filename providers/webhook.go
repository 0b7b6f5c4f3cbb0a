package providers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
)

// WebhookSource is a push source: it tells an authentic webhook delivery
// from a forged one, decodes its event, and turns events into rows. The
// runner's receiver journals what it decodes and merges the rows later;
// it knows neither the signature header nor the event format, which are
// the source type's.
//
// A receiver uses it in this order: read the raw body (bounded);
// VerifyWebhook, answering 400 on error; DecodeWebhookEvent, answering 400
// on error; de-duplicate by WebhookEvent.ID (deliveries come at least
// once); route by WebhookEvent.Table; journal the body. Later, decode the
// journaled bodies again and merge WebhookRows by primary key.
type WebhookSource interface {
	// VerifyWebhook checks a delivery's signature, from its headers,
	// against each of secrets (several while a secret is rolled); body
	// must be the raw request body. A signature that matches with a stale
	// timestamp is refused as such. With no secrets it returns
	// ErrNoSigningSecret. Errors hold neither the secrets nor the
	// signatures.
	VerifyWebhook(body []byte, header http.Header, secrets []string, now time.Time) error
	// DecodeWebhookEvent decodes a delivery's body strictly. It never
	// panics, whatever the input.
	DecodeWebhookEvent(body []byte) (*WebhookEvent, error)
	// WebhookRows turns the objects of events into rows of the table req
	// names, in the schema Schema(req) gives and with the values the bulk
	// reads give. Events about one object collapse into one row, that of
	// the latest event. Every event must belong to the table
	// (WebhookEvent.Table).
	WebhookRows(req ReadRequest, events []*WebhookEvent) (*records.Batch, error)
}

// WebhookEvent is a decoded webhook event, as far as the receiver needs
// it; Data holds the rest for WebhookRows.
type WebhookEvent struct {
	// ID is the event's id: the same event may be delivered more than
	// once, so receivers de-duplicate by it.
	ID string
	// Type is the event type ("charge.refunded"), for logs.
	Type string
	// Table is the table the event's object belongs to, "" when the
	// source type has no table of its kind.
	Table string
	// ObjectID is the id of the object the event is about, "" for
	// objects without one (which no table can merge).
	ObjectID string
	// Time is when the change happened at the source: it orders the
	// versions of an object, which may be delivered out of order.
	Time time.Time
	// Data is the provider's own decoded event, opaque to the receiver.
	Data any
}

// WebhookManager registers a push source's webhook endpoint (apply and
// destroy).
type WebhookManager interface {
	// FindWebhookEndpoint returns the endpoint registered for url
	// (matched exactly), or nil when there is none. An API key that may
	// not list endpoints gives an error for which errors.Is(err,
	// ErrWebhookPermission) holds.
	FindWebhookEndpoint(ctx context.Context, url string) (*WebhookEndpoint, error)
	// EnsureWebhookEndpoint makes an endpoint for url exist, enabled,
	// with exactly events enabled, never registering a second one. secret
	// is the endpoint's signing secret, set only when created is true
	// (push sources reveal it only at creation); the caller keeps it out
	// of state and plans. An API key that may not manage endpoints gives
	// an error for which errors.Is(err, ErrWebhookPermission) holds,
	// saying what to register by hand.
	EnsureWebhookEndpoint(ctx context.Context, url string, events []string) (ep *WebhookEndpoint, secret string, created bool, err error)
	// DeleteWebhookEndpoint removes the endpoint; one that no longer
	// exists is not an error.
	DeleteWebhookEndpoint(ctx context.Context, id string) error
}

// Errors of webhook sources.
var (
	// ErrNoSigningSecret reports that there is no secret to verify
	// deliveries with.
	ErrNoSigningSecret = errors.New("no signing secret to verify webhook deliveries with: set signing_secret in the webhook block, or let apply register the endpoint")
	// ErrWebhookPermission reports that the API key may not list or
	// manage webhook endpoints: the endpoint must be registered by hand
	// and its signing secret set in the configuration.
	ErrWebhookPermission = errors.New("the API key may not manage webhook endpoints")
)
