package stripe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	stripe "github.com/stripe/stripe-go/v85"

	"github.com/sluice-dev/sluice/providers"
)

// EventTypes returns the webhook event types that the tables need, sorted:
// those whose data.object is one of the tables' objects. Tables whose
// changes are not pushed (balance_transactions) or that are unknown add
// none. Event types are listed explicitly, never as wildcards, so that the
// endpoint receives nothing it does not sync.
func EventTypes(tables []string) []string {
	set := map[string]bool{}
	for _, t := range tables {
		if o, ok := objects[t]; ok {
			for _, e := range o.events {
				set[string(e)] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for e := range set {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// SupportsWebhook reports whether changes to the table's objects are pushed
// as webhook events.
func SupportsWebhook(table string) bool {
	o, ok := objects[table]
	return ok && len(o.events) > 0
}

// WebhookPermissionError reports that the API key may not list or create
// webhook endpoints (a restricted key without the webhook permission). The
// endpoint must then be registered by hand, and its signing secret set in
// the configuration.
type WebhookPermissionError struct {
	Source string   // "stripe.billing"
	URL    string   // the endpoint to register
	Events []string // the event types to enable
	Err    error    // the API's refusal
}

func (e *WebhookPermissionError) Error() string {
	why := e.Err.Error()
	var ae *APIError
	if errors.As(e.Err, &ae) && ae.Message != "" {
		why = ae.Message
	}
	typ, name, _ := strings.Cut(e.Source, ".")
	return fmt.Sprintf("%s: the API key may not manage webhook endpoints (Stripe: %s). Either give the key the webhook permission, "+
		"or register the endpoint by hand in the Stripe Dashboard (Developers > Webhooks > Add endpoint) with URL %s and the events %s, "+
		"then set signing_secret in the webhook block of source %q %q to the endpoint's signing secret (whsec_...), "+
		"e.g. signing_secret = env(\"STRIPE_WHSEC\")",
		e.Source, strings.TrimSuffix(why, "."), e.URL, strings.Join(e.Events, ", "), typ, name)
}

func (e *WebhookPermissionError) Unwrap() error { return e.Err }

// endpoint converts stripe-go's webhook endpoint.
func endpoint(we *stripe.WebhookEndpoint) *providers.WebhookEndpoint {
	events := slices.Clone(we.EnabledEvents)
	sort.Strings(events)
	if events == nil {
		events = []string{}
	}
	return &providers.WebhookEndpoint{ID: we.ID, URL: we.URL, Enabled: we.Status == "enabled", Events: events}
}

// findEndpoint lists the account's webhook endpoints and returns the one
// whose URL is exactly url (an enabled one when several are), or nil.
func (p *Provider) findEndpoint(ctx context.Context, url string) (*stripe.WebhookEndpoint, error) {
	params := &stripe.WebhookEndpointListParams{}
	params.Limit = stripe.Int64(pageSize)
	var found *stripe.WebhookEndpoint
	for we, err := range p.client.V1WebhookEndpoints.List(ctx, params).All(ctx) {
		if err != nil {
			return nil, p.wrapErr("list webhook endpoints", err)
		}
		if we.URL == url && (found == nil || found.Status != "enabled") {
			found = we
		}
	}
	return found, nil
}

// FindWebhookEndpoint returns the webhook endpoint registered for url
// (matched exactly), or nil when there is none. A key that may not list
// webhook endpoints gives a *WebhookPermissionError (for which IsPermission
// is true) that says what to register by hand.
func (p *Provider) FindWebhookEndpoint(ctx context.Context, url string) (*providers.WebhookEndpoint, error) {
	we, err := p.findEndpoint(ctx, url)
	if IsPermission(err) {
		return nil, &WebhookPermissionError{Source: p.addr, URL: url, Events: p.hookEvents, Err: err}
	}
	if err != nil || we == nil {
		return nil, err
	}
	return endpoint(we), nil
}

// EnsureWebhookEndpoint makes a webhook endpoint for url exist, enabled,
// with exactly events enabled. It looks for one with the same URL first and
// never registers a second: an existing endpoint is updated when its events
// differ or it was disabled. secret is the endpoint's signing secret, which
// Stripe reveals only when the endpoint is created, so it is set only when
// created is true; the caller must keep it (sluice keeps it out of state
// and plan files: it is a secret). Stripe always returns it at creation; a
// stand-in that does not leaves it empty, and the user must then set
// signing_secret from the Dashboard.
//
// New endpoints are pinned to the API version of the bulk reads
// (APIVersion), so that event objects have the same fields as listed
// objects. A key that may not manage webhook endpoints gives a
// *WebhookPermissionError that says what to register by hand.
func (p *Provider) EnsureWebhookEndpoint(ctx context.Context, url string, events []string) (ep *providers.WebhookEndpoint, secret string, created bool, err error) {
	if url == "" {
		return nil, "", false, fmt.Errorf("%s: no webhook URL: set url in the webhook block", p.addr)
	}
	if len(events) == 0 {
		return nil, "", false, fmt.Errorf("%s: no event types to register for %s: no table of the source syncs by webhook", p.addr, url)
	}
	want := slices.Clone(events)
	sort.Strings(want)
	want = slices.Compact(want)
	permission := func(err error) error {
		if IsPermission(err) {
			return &WebhookPermissionError{Source: p.addr, URL: url, Events: want, Err: err}
		}
		return err
	}

	we, err := p.findEndpoint(ctx, url)
	if err != nil {
		return nil, "", false, permission(err)
	}
	if we != nil {
		have := endpoint(we)
		if have.Enabled && slices.Equal(have.Events, want) {
			return have, "", false, nil
		}
		params := &stripe.WebhookEndpointUpdateParams{
			Disabled:      stripe.Bool(false),
			EnabledEvents: stripe.StringSlice(want),
		}
		updated, err := p.client.V1WebhookEndpoints.Update(ctx, we.ID, params)
		if err != nil {
			return nil, "", false, permission(p.wrapErr("update webhook endpoint "+we.ID, err))
		}
		return endpoint(updated), "", false, nil
	}

	params := &stripe.WebhookEndpointCreateParams{
		URL:           stripe.String(url),
		EnabledEvents: stripe.StringSlice(want),
		APIVersion:    stripe.String(APIVersion),
		Description:   stripe.String("sluice: webhook tables of " + p.addr),
		Metadata:      map[string]string{"sluice_source": p.addr},
	}
	we, err = p.client.V1WebhookEndpoints.Create(ctx, params)
	if err != nil {
		return nil, "", false, permission(p.wrapErr("create webhook endpoint", err))
	}
	return endpoint(we), we.Secret, true, nil
}

// DeleteWebhookEndpoint removes the webhook endpoint. An endpoint that no
// longer exists is not an error, so that destroy can be re-run.
func (p *Provider) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("DeleteWebhookEndpoint: empty endpoint id")
	}
	_, err := p.client.V1WebhookEndpoints.Delete(ctx, id, nil)
	if err = p.wrapErr("delete webhook endpoint "+id, err); err != nil && !IsNotFound(err) {
		return err
	}
	return nil
}
