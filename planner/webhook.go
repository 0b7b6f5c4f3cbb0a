package planner

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
)

// WebhookTables lists the enabled tables of a source that sync by webhook,
// sorted: what its webhook endpoint must deliver events for.
func WebhookTables(src *config.Source) []string {
	var out []string
	for _, t := range src.Tables {
		if t.Enabled && t.Sync == config.SyncWebhook {
			out = append(out, t.Table)
		}
	}
	sort.Strings(out)
	return out
}

// WebhookEvents lists the event types a source's webhook endpoint must
// have enabled, sorted; none when no table syncs by webhook. The source
// type's provider says which (providers.Type.WebhookEvents, a pure
// function: the planner does no I/O).
func WebhookEvents(src *config.Source) []string {
	return providers.WebhookEvents(src.Type, WebhookTables(src))
}

// webhook plans the webhook endpoint of a push source: registered while a
// table syncs by webhook, updated when the event types it needs change or
// it was disabled at the source, deleted when no such table is left.
func (pl *planner) webhook(src *config.Source, rs *state.Source, obs *providers.Observed) {
	addr := src.Address()
	url := src.WebhookEndpoint()
	want := WebhookEvents(src)
	var rec *state.WebhookState
	if rs != nil {
		rec = rs.Resources.Webhook
	}
	planned := &Planned{Webhook: &state.WebhookState{URL: url, Events: want}}
	view := func(url string, events []string) map[string]any {
		return map[string]any{"url": url, "events": events}
	}
	if len(want) == 0 {
		if rec == nil {
			return
		}
		reason := "no webhook tables left: the endpoint sluice registered is deleted"
		if !rec.Created {
			reason = "no webhook tables left: sluice forgets the endpoint (it did not register it, so it does not delete it)"
		}
		pl.add(Change{Address: addr, Kind: KindWebhook, Planned: planned, Action: Delete, Reasons: []string{reason}, Before: view(rec.URL, rec.Events)})
		return
	}
	tables := strings.Join(WebhookTables(src), ", ")
	// The live endpoint, when introspection could see it. A key that may not
	// list endpoints (signing_secret set for a hand-registered endpoint)
	// sees none; that is not drift, unless sluice registered the endpoint
	// itself and so had the permission.
	var live *providers.WebhookEndpoint
	visible := obs != nil
	if obs != nil {
		live = obs.Webhook
		if live == nil && src.Stripe.Webhook.SigningSecret != "" && (rec == nil || !rec.Created) {
			visible = false
		}
	}
	switch {
	case rec == nil:
		reason := fmt.Sprintf("webhook tables (%s) need endpoint %s", tables, url)
		if live != nil {
			reason = fmt.Sprintf("webhook tables (%s) need endpoint %s; it is already registered (%s) and will be adopted", tables, url, live.ID)
			if !live.Enabled {
				reason += " and enabled"
			}
			if !slices.Equal(live.Events, want) {
				reason += ", its event types set"
			}
		}
		c := Change{Address: addr, Kind: KindWebhook, Planned: planned, Action: Create, Reasons: []string{reason}, After: view(url, want)}
		if live != nil && src.Stripe.Webhook.SigningSecret == "" {
			c.Warnings = append(c.Warnings, "Stripe reveals an endpoint's signing secret only when it is created: unless this state's secrets directory holds it, "+
				"apply stops and asks for signing_secret (Dashboard > Developers > Webhooks > the endpoint > Signing secret)")
		}
		pl.add(c)
	case rec.URL != url:
		pl.add(Change{Address: addr, Kind: KindWebhook, Planned: planned, Action: Replace,
			Reasons: []string{fmt.Sprintf("endpoint URL changes from %s to %s", rec.URL, url)},
			Before:  view(rec.URL, rec.Events), After: view(url, want)})
	default:
		var reasons []string
		action := Update
		current := rec.Events
		if visible && live == nil {
			pl.drift(addr, KindWebhook, "", "webhook endpoint %s (%s) is missing at %s", idOr(rec.ID), rec.URL, src.Type)
			pl.add(Change{Address: addr, Kind: KindWebhook, Planned: planned, Action: Create,
				Reasons: []string{"recreate: missing at the source; events sent meanwhile were not delivered, the periodic bulk refresh catches up"},
				After:   view(url, want)})
			return
		}
		if visible {
			if !live.Enabled {
				pl.drift(addr, KindWebhook, "", "webhook endpoint %s (%s) is disabled at %s", live.ID, live.URL, src.Type)
				reasons = append(reasons, "enable the endpoint again")
			}
			if !slices.Equal(live.Events, rec.Events) {
				pl.drift(addr, KindWebhook, "", "webhook endpoint %s has event types %s, recorded %s", live.ID, strings.Join(live.Events, ", "), strings.Join(rec.Events, ", "))
			}
			current = live.Events
		}
		added, removed := diffLists(current, want)
		if len(added) > 0 {
			reasons = append(reasons, "enable events "+strings.Join(added, ", "))
		}
		if len(removed) > 0 {
			reasons = append(reasons, "disable events "+strings.Join(removed, ", "))
		}
		if len(reasons) > 0 {
			pl.add(Change{Address: addr, Kind: KindWebhook, Planned: planned, Action: action, Reasons: reasons,
				Before: view(rec.URL, current), After: view(url, want)})
		}
	}
}

func idOr(id string) string {
	if id == "" {
		return "(registered by hand)"
	}
	return id
}
