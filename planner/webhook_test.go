package planner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/providers/stripe"
	"github.com/sluice-dev/sluice/state"
)

const stripeConfig = `
source "stripe" "billing" {
  api_key = "sk_test_x"
  table "charges"   { sync = "webhook" }
  table "customers" {
    %s
  }
  table "balance_transactions" {
    sync              = "incremental"
    incremental_field = "created"
  }
  webhook {
    url = "%s"
    %s
  }
}
`

const incremental = "sync = \"incremental\"\n    incremental_field = \"created\""

const hookURL = "https://sluice.example.com/webhooks/stripe.billing"

// stripeObserved is the Stripe account the cases plan against; hook is its
// webhook endpoint, nil when none is registered (or none is visible).
func stripeObserved(hook *providers.WebhookEndpoint) *providers.Observed {
	obs := &providers.Observed{Source: "stripe.billing", Webhook: hook}
	for _, name := range []string{"balance_transactions", "charges", "customers"} {
		t := providers.Table{Name: name, Kind: providers.KindObject, PrimaryKey: []string{"id"},
			Columns:           []providers.Column{col("id", "string", false), col("created", "timestamp", false)},
			IncrementalFields: []providers.IncrementalField{{Name: "created", Type: "timestamp", Indexed: true}},
			SyncTypes:         []string{"full_refresh", "incremental"}}
		if name != "balance_transactions" {
			t.SupportsWebhook = true
			t.SyncTypes = append(t.SyncTypes, "webhook")
		}
		obs.Tables = append(obs.Tables, t)
	}
	return obs
}

func TestWebhookPlan(t *testing.T) {
	charges := stripe.EventTypes([]string{"charges"})
	both := stripe.EventTypes([]string{"charges", "customers"})
	enabled := func(events []string) *providers.WebhookEndpoint {
		return &providers.WebhookEndpoint{ID: "we_1", URL: hookURL, Enabled: true, Events: events}
	}
	disabled := &providers.WebhookEndpoint{ID: "we_1", URL: hookURL, Enabled: false, Events: charges}
	registered := &state.WebhookState{ID: "we_1", URL: hookURL, Events: charges, Created: true}
	byHand := &state.WebhookState{URL: hookURL, Events: charges}

	type tc struct {
		customers string // sync of customers
		url       string // webhook block url
		secret    string // signing_secret line
		rec       *state.WebhookState
		live      *providers.WebhookEndpoint
		noRefresh bool
		want      []string
	}
	cases := map[string]tc{
		"new": {want: []string{
			"create webhook stripe.billing: webhook tables (charges) need endpoint " + hookURL,
		}},
		"adopts an existing endpoint": {live: &providers.WebhookEndpoint{ID: "we_9", URL: hookURL, Events: both}, want: []string{
			"create webhook stripe.billing: webhook tables (charges) need endpoint " + hookURL + "; it is already registered (we_9) and will be adopted and enabled, its event types set",
		}},
		"applied":             {rec: registered, live: enabled(charges)},
		"applied, no refresh": {rec: registered, noRefresh: true},
		"deleted at stripe": {rec: registered, want: []string{
			"create webhook stripe.billing: recreate: missing at the source; events sent meanwhile were not delivered, the periodic bulk refresh catches up",
			"drift stripe.billing: webhook endpoint we_1 (" + hookURL + ") is missing at stripe",
		}},
		"deleted at stripe, signing_secret set": {rec: registered, secret: `signing_secret = "whsec_x"`, want: []string{
			// sluice registered it, so the key may list endpoints: drift.
			"create webhook stripe.billing: recreate: missing at the source; events sent meanwhile were not delivered, the periodic bulk refresh catches up",
			"drift stripe.billing: webhook endpoint we_1 (" + hookURL + ") is missing at stripe",
		}},
		"registered by hand, key may not list": {rec: byHand, secret: `signing_secret = "whsec_x"`},
		"disabled at stripe": {rec: registered, live: disabled, want: []string{
			"update webhook stripe.billing: enable the endpoint again",
			"drift stripe.billing: webhook endpoint we_1 (" + hookURL + ") is disabled at stripe",
		}},
		"events changed at stripe": {rec: registered, live: enabled(both), want: []string{
			"update webhook stripe.billing: disable events " + strings.Join(without(both, charges), ", "),
			"drift stripe.billing: webhook endpoint we_1 has event types " + strings.Join(both, ", ") + ", recorded " + strings.Join(charges, ", "),
		}},
		"another table by webhook": {customers: `sync = "webhook"`, rec: registered, live: enabled(charges), want: []string{
			"update webhook stripe.billing: enable events " + strings.Join(without(both, charges), ", "),
			"resync table stripe.billing/customers: sync type changes from incremental to webhook",
		}},
		"url changed": {url: "https://other.example.com", rec: registered, live: enabled(charges), want: []string{
			`update source stripe.billing: webhook.url changes from "https://sluice.example.com" to "https://other.example.com"`,
			"replace webhook stripe.billing: endpoint URL changes from " + hookURL + " to https://other.example.com/webhooks/stripe.billing",
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if c.customers == "" {
				c.customers = incremental
			}
			if c.url == "" {
				c.url = "https://sluice.example.com"
			}
			cfg := loadConfig(t, fmt.Sprintf(stripeConfig, c.customers, c.url, c.secret))
			applied := loadConfig(t, fmt.Sprintf(stripeConfig, incremental, "https://sluice.example.com", c.secret))
			var st *state.State
			if c.rec != nil {
				st = recordedStripe(t, applied, c.rec)
			}
			in := Input{Config: cfg, State: st, FingerprintKey: testKey}
			if !c.noRefresh {
				in.Observed = map[string]*providers.Observed{"stripe.billing": stripeObserved(c.live)}
			}
			got := webhookBrief(Make(in))
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestWebhookDeletedWithTheLastWebhookTable(t *testing.T) {
	applied := loadConfig(t, fmt.Sprintf(stripeConfig, `sync = "webhook"`, "https://sluice.example.com", ""))
	for name, c := range map[string]struct {
		created bool
		want    string
	}{
		"registered by sluice": {true, "delete webhook stripe.billing: no webhook tables left: the endpoint sluice registered is deleted"},
		"adopted":              {false, "delete webhook stripe.billing: no webhook tables left: sluice forgets the endpoint (it did not register it, so it does not delete it)"},
	} {
		t.Run(name, func(t *testing.T) {
			st := recordedStripe(t, applied, &state.WebhookState{ID: "we_1", URL: hookURL, Events: []string{"x"}, Created: c.created})
			cfg := loadConfig(t, `source "stripe" "billing" {
  api_key = "sk_test_x"
  table "charges" { sync = "full_refresh" }
  webhook {
    url = "https://sluice.example.com"
  }
}`)
			got := webhookBrief(Make(Input{Config: cfg, State: st, FingerprintKey: testKey}))
			if len(got) == 0 || got[0] != c.want {
				t.Errorf("got %q, want first %q", got, c.want)
			}
		})
	}
	// A removed source deletes the endpoint with the source.
	st := recordedStripe(t, applied, &state.WebhookState{ID: "we_1", URL: hookURL, Created: true})
	got := brief(Make(Input{Config: &config.Config{}, State: st, FingerprintKey: testKey}))
	if len(got) == 0 || !strings.Contains(got[0], "drops webhook endpoint "+hookURL) {
		t.Errorf("removing the source: %q", got)
	}
}

// TestWebhookPlanAfterApplyIsEmpty: with the endpoint recorded as apply
// records it, a second plan shows nothing.
func TestWebhookPlanAfterApplyIsEmpty(t *testing.T) {
	cfg := loadConfig(t, fmt.Sprintf(stripeConfig, `sync = "webhook"`, "https://sluice.example.com", ""))
	events := WebhookEvents(cfg.Sources[0])
	st := recordedStripe(t, cfg, &state.WebhookState{ID: "we_1", URL: hookURL, Events: events, Created: true})
	p := Make(Input{Config: cfg, State: st, FingerprintKey: testKey,
		Observed: map[string]*providers.Observed{"stripe.billing": stripeObserved(&providers.WebhookEndpoint{ID: "we_1", URL: hookURL, Enabled: true, Events: events})}})
	if !p.Empty() || p.HasErrors() {
		t.Errorf("plan after apply: %q", brief(p))
	}
}

func recordedStripe(t *testing.T, cfg *config.Config, hook *state.WebhookState) *state.State {
	t.Helper()
	st := state.New()
	src := cfg.Sources[0]
	ds := DesiredSource(src, stripeObserved(nil), testKey)
	ds.Resources.Webhook = hook
	st.Sources[src.Address()] = ds
	return st
}

// webhookBrief is brief without the table and source creations every case
// shares.
func webhookBrief(p *Plan) []string {
	var out []string
	for _, line := range brief(p) {
		if strings.HasPrefix(line, "create table ") || strings.HasPrefix(line, "create source ") {
			continue
		}
		out = append(out, line)
	}
	return out
}

func without(list, drop []string) []string {
	var out []string
	for _, s := range list {
		keep := true
		for _, d := range drop {
			keep = keep && s != d
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}
