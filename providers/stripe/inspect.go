package stripe

import (
	"context"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
)

// Inspect lists the supported objects as tables, checks the API key with
// one cheap call, and finds the source's webhook endpoint (by its exact
// URL) when the source has a webhook block. It makes two or three API
// calls, whatever the account holds.
//
// A restricted key that may read objects but not the balance passes the
// check (Stripe authenticated it). A key that may not list webhook
// endpoints leaves Observed.Webhook nil rather than failing: the endpoint
// is then registered by hand (signing_secret), which apply reports.
func (p *Provider) Inspect(ctx context.Context) (*providers.Observed, error) {
	if err := p.CheckKey(ctx); err != nil {
		return nil, err
	}
	obs := &providers.Observed{Source: p.addr, Tables: make([]providers.Table, 0, len(objects))}
	for _, name := range Tables() {
		obs.Tables = append(obs.Tables, tableInfo(objects[name]))
	}
	if p.webURL != "" {
		ep, err := p.FindWebhookEndpoint(ctx, p.webURL)
		if err != nil && !IsPermission(err) {
			return nil, err
		}
		obs.Webhook = ep
	}
	return obs, nil
}

// CheckKey makes one cheap authenticated call (GET /v1/balance), so that
// a wrong key is reported as such before anything else is tried.
func (p *Provider) CheckKey(ctx context.Context) error {
	_, err := p.client.V1Balance.Retrieve(ctx, nil)
	if err = p.wrapErr("check the API key", err); err != nil && !IsPermission(err) {
		return err
	}
	return nil
}

// tableInfo describes an object type as inspect shows it.
func tableInfo(o *object) providers.Table {
	t := providers.Table{
		Schema:     "",
		Name:       o.table,
		Kind:       providers.KindObject,
		PrimaryKey: []string{keyField},
		Columns:    make([]providers.Column, len(o.fields)),
		IncrementalFields: []providers.IncrementalField{
			// Stripe lists filter on created cheaply: it is "indexed".
			{Name: cursorField, Type: kTime.String(), Nullable: false, Indexed: true},
		},
		SyncTypes:                   []string{string(config.SyncFullRefresh), string(config.SyncIncremental)},
		RecommendedSync:             string(config.SyncIncremental),
		RecommendedIncrementalField: cursorField,
		Warnings:                    []string{},
		SupportsWebhook:             len(o.events) > 0,
	}
	for i, f := range o.fields {
		t.Columns[i] = providers.Column{
			Name:        f.name,
			Type:        f.kind.String(),
			Nullable:    f.name != keyField && f.name != cursorField,
			ParquetType: f.kind.parquet().Name,
		}
	}
	if t.SupportsWebhook {
		// Objects change after they are created (a charge is refunded, a
		// subscription canceled); only webhook events carry those changes.
		t.SyncTypes = append(t.SyncTypes, string(config.SyncWebhook))
		t.RecommendedSync = string(config.SyncWebhook)
		t.RecommendedIncrementalField = ""
	}
	return t
}
