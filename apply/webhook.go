package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/webhooksecret"
	"github.com/sluice-dev/sluice/planner"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// webhookManager opens the provider of a configured push source, once per
// apply, for its webhook endpoint.
func (ex *executor) webhookManager(ctx context.Context, addr string) (providers.WebhookManager, *config.Source, error) {
	src := ex.opt.Config.Source(addr)
	if src == nil {
		return nil, nil, fmt.Errorf("%s is no longer in the configuration, so sluice cannot reach its API to remove the webhook endpoint; "+
			"put the source block back and run `sluice destroy -target=%s` (or delete the endpoint in the Stripe Dashboard), then `sluice state rm %s`", addr, addr, addr)
	}
	if src.Stripe == nil {
		return nil, src, fmt.Errorf("%s has no webhooks to manage", addr)
	}
	if ex.webhooks == nil {
		ex.webhooks = map[string]providers.Source{}
	}
	p, ok := ex.webhooks[addr]
	if !ok {
		var err error
		if p, err = ex.opt.Open(ctx, src); err != nil {
			return nil, src, err
		}
		ex.webhooks[addr] = p
	}
	wm, ok := p.(providers.WebhookManager)
	if !ok {
		return nil, src, fmt.Errorf("%s has no webhooks to manage", addr)
	}
	return wm, src, nil
}

// webhook registers, updates or removes the webhook endpoint of a Stripe
// source. The endpoint's signing secret, which Stripe reveals only when it
// creates the endpoint, is kept in a secrets file beside the state
// (webhooksecret), never in state; signing_secret in the configuration
// serves when sluice cannot keep or learn the secret.
func (ex *executor) webhook(ctx context.Context, c planner.Change) error {
	addr := c.Address
	rs := ex.recorded(addr, nil)
	if c.Action == planner.Delete {
		return ex.deleteWebhook(ctx, addr, rs)
	}
	if c.Planned == nil || c.Planned.Webhook == nil {
		return errUnplanned(c)
	}
	p, src, err := ex.webhookManager(ctx, addr)
	if err != nil {
		return err
	}
	url, events := c.Planned.Webhook.URL, c.Planned.Webhook.Events
	configured := src.Stripe.Webhook.SigningSecret
	old := rs.Resources.Webhook

	stored, err := webhooksecret.Read(ex.opt.Backend, addr)
	if err != nil {
		return err
	}
	if configured == "" && stored == "" {
		// An endpoint that exists already cannot be verified without its
		// secret, which Stripe will not reveal again: say so before
		// registering anything.
		// A key that may not list endpoints gets an error saying what
		// to register by hand (providers.ErrWebhookPermission).
		ep, err := p.FindWebhookEndpoint(ctx, url)
		if err != nil {
			return err
		}
		if ep != nil {
			return fmt.Errorf("webhook endpoint %s (%s) is already registered, but sluice does not have its signing secret (Stripe reveals it only at creation): "+
				"set signing_secret in the webhook block of %s to the endpoint's secret (Dashboard > Developers > Webhooks > the endpoint > Signing secret), "+
				"e.g. signing_secret = env(\"STRIPE_WHSEC\"), or delete the endpoint so that apply registers a new one, then apply again", ep.ID, url, addr)
		}
		if _, ok := webhooksecret.Dir(ex.opt.Backend); !ok {
			return fmt.Errorf("%s: %w; register the endpoint %s by hand with the events %v and set signing_secret to its secret, then apply again",
				addr, webhooksecret.ErrNoStore, url, events)
		}
	}

	ep, secret, created, err := p.EnsureWebhookEndpoint(ctx, url, events)
	if errors.Is(err, providers.ErrWebhookPermission) && configured != "" {
		// Registered by hand, as the permission error tells users to do:
		// sluice records what it needs and verifies with signing_secret.
		rs.Resources.Webhook = &state.WebhookState{URL: url, Events: events}
		return nil
	}
	if err != nil {
		return err
	}
	if created && secret != "" {
		if err := webhooksecret.Write(ex.opt.Backend, addr, secret); err != nil {
			// Without its secret the endpoint is useless, and a second
			// apply would find it and refuse: remove it.
			if derr := p.DeleteWebhookEndpoint(ctx, ep.ID); derr != nil {
				return fmt.Errorf("%w; removing the endpoint %s just registered also failed (%v): delete it in the Stripe Dashboard, then apply again", err, ep.ID, derr)
			}
			return err
		}
	}
	rs.Resources.Webhook = &state.WebhookState{
		ID:     ep.ID,
		URL:    ep.URL,
		Events: slices.Clone(ep.Events),
		// An endpoint sluice registered earlier stays its own to delete.
		Created: created || (old != nil && old.Created && old.ID == ep.ID),
	}
	if c.Action == planner.Replace && old != nil && old.URL != url && old.Created && old.ID != "" && old.ID != ep.ID {
		if err := p.DeleteWebhookEndpoint(ctx, old.ID); err != nil {
			return fmt.Errorf("the endpoint %s is registered, but removing the old one %s (%s) failed: %w", url, old.ID, old.URL, err)
		}
	}
	return nil
}

// deleteWebhook removes the endpoint if sluice registered it, and forgets
// it (and its stored secret) either way.
func (ex *executor) deleteWebhook(ctx context.Context, addr string, rs *state.Source) error {
	old := rs.Resources.Webhook
	if old != nil && old.Created && old.ID != "" {
		p, _, err := ex.webhookManager(ctx, addr)
		if err != nil {
			return err
		}
		if err := p.DeleteWebhookEndpoint(ctx, old.ID); err != nil {
			return err
		}
	}
	rs.Resources.Webhook = nil
	return webhooksecret.Remove(ex.opt.Backend, addr)
}
