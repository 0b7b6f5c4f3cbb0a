// Package stripe is the Stripe source type: API objects (charges,
// customers, invoices, ...) read as tables through the Stripe API with
// stripe-go, and webhook endpoints registered and verified for the tables
// that sync by webhook.
//
// What it offers, by capability:
//
//   - providers.Inspector: the supported objects as tables, their columns
//     and sync types, the API key checked with one cheap call, and the
//     registered webhook endpoint of the source (Observed.Webhook).
//   - providers.SnapshotReader and providers.CursorReader: full_refresh
//     lists every object; incremental lists the objects created at or after
//     the committed cursor (unix seconds), skipping the ids already read at
//     exactly that second (records.Position.BoundaryKeys).
//   - providers.WebhookManager, for apply: FindWebhookEndpoint,
//     EnsureWebhookEndpoint, DeleteWebhookEndpoint; and EventTypes, which
//     the source type registers (providers.Type.WebhookEvents) for the
//     planner.
//   - providers.WebhookSource, for the runner's receiver: VerifyWebhook,
//     DecodeWebhookEvent and WebhookRows, built on VerifySignature,
//     ParseEvent, TableForObject and EventBatch, which turns event objects
//     into rows of the same schema, with the same values, as the bulk reads.
//
// A webhook receiver uses the pieces in this order (the runner's does, through
// providers.WebhookSource):
//
//  1. read at most MaxEventBytes of the body (http.MaxBytesReader), raw;
//  2. VerifySignature(body, r.Header.Get("Stripe-Signature"), secret,
//     time.Now(), DefaultTolerance), answering 400 on error (the secret is
//     the one EnsureWebhookEndpoint returned at creation, or signing_secret);
//  3. ParseEvent(body), answering 400 on error;
//  4. de-duplicate by Event.ID (Stripe delivers at least once);
//  5. route with Event.Table, ignoring (with 200) events of tables the
//     source does not sync by webhook and events with no ObjectID;
//  6. journal the event, answer 200, and later merge
//     EventBatch(req, events) by id, req being the table's ReadRequest.
//
// Every object type has a fixed column list (objects.go), so that all
// batches of a table share one schema. Requests that Stripe rate-limits
// (429) or fails (5xx) are retried with exponential backoff, honouring
// Retry-After (transport.go). The API key and signing secrets never appear
// in errors or logs.
package stripe

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	stripe "github.com/stripe/stripe-go/v85"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
)

func init() {
	providers.Register("stripe", providers.Type{
		Open: func(ctx context.Context, src *config.Source) (providers.Source, error) {
			p, err := New(src)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
		WebhookEvents: EventTypes,
	})
}

// DefaultAPIBase is where the Stripe API is when api_base is not set.
const DefaultAPIBase = stripe.APIURL

// APIVersion is the Stripe API version the bulk reads use (stripe-go's)
// and webhook endpoints are created with. An event whose APIVersion
// differs (an endpoint registered by hand) may render objects with other
// fields than the column lists expect; the receiver may warn about it.
const APIVersion = stripe.APIVersion

// responseTimeout bounds the wait for the response to one request (each
// retry has its own): a stalled connection must not hang a sync forever.
// Stripe answers within seconds; list pages of large objects take longest.
const responseTimeout = 80 * time.Second

// Provider is a configured Stripe source. It holds no connection state
// beyond an HTTP client, so it is safe for use by several goroutines.
type Provider struct {
	addr   string // "stripe.billing", for errors
	key    string
	base   string
	webURL string // the source's webhook endpoint URL, "" without a webhook block
	// hookEvents are the event types the webhook tables need, for the
	// permission errors that say what to register by hand.
	hookEvents []string

	client    *stripe.Client
	backend   stripe.Backend
	transport *retryTransport
	http      *http.Client
}

// New returns the provider of a Stripe source. It does not contact the API.
func New(src *config.Source) (*Provider, error) {
	if src == nil || src.Stripe == nil {
		addr := "<nil>"
		if src != nil {
			addr = src.Address()
		}
		return nil, fmt.Errorf("%s is not a Stripe source", addr)
	}
	addr := src.Address()
	if src.Stripe.APIKey == "" {
		return nil, fmt.Errorf("%s: api_key is empty: set it to a secret or restricted key (sk_... or rk_...), e.g. api_key = env(\"STRIPE_API_KEY\")", addr)
	}
	apiBase := src.Stripe.APIBase
	if apiBase == "" {
		apiBase = DefaultAPIBase
	}
	u, err := url.Parse(apiBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%s: api_base is not an http(s) URL without credentials: set it to the API's base URL, such as %s", addr, DefaultAPIBase)
	}
	p := &Provider{
		addr:   addr,
		key:    src.Stripe.APIKey,
		base:   strings.TrimSuffix(apiBase, "/"),
		webURL: src.WebhookEndpoint(),

		hookEvents: webhookEvents(src),
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = responseTimeout
	p.transport = newRetryTransport(base)
	p.http = &http.Client{Transport: p.transport}
	p.backend = stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		HTTPClient: p.http,
		URL:        stripe.String(p.base),
		// Retries happen in the transport, which honours Retry-After and
		// the context; stripe-go's own retries do neither.
		MaxNetworkRetries: stripe.Int64(0),
		// stripe-go logs error responses, and stripe-compatible servers
		// may echo the Authorization header in them: nothing is logged.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	p.client = stripe.NewClient(p.key, stripe.WithBackends(&stripe.Backends{
		API: p.backend, Connect: p.backend, Uploads: p.backend, MeterEvents: p.backend,
	}))
	return p, nil
}

// Close releases idle connections.
func (p *Provider) Close() error {
	p.transport.CloseIdleConnections()
	return nil
}

// String names the provider without its key, so that printing one (%v,
// %+v) never reveals the key.
func (p *Provider) String() string { return "stripe provider " + p.addr + " at " + p.base }

// GoString is String for %#v.
func (p *Provider) GoString() string { return p.String() }

// Address is the source's address, "stripe.NAME".
func (p *Provider) Address() string { return p.addr }

// The capabilities the provider implements.
var (
	_ providers.Source         = (*Provider)(nil)
	_ providers.SnapshotReader = (*Provider)(nil)
	_ providers.CursorReader   = (*Provider)(nil)
)
