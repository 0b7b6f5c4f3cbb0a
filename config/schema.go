package config

import "github.com/hashicorp/hcl/v2"

// One schema per block type, as in Terraform's configs package; hclsyntax
// turns anything not listed into an "Unsupported argument/block" error with
// a suggestion.

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "state"},
		{Type: "warehouse"},
		{Type: "runner"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "source", LabelNames: []string{"type", "name"}},
		{Type: "notify", LabelNames: []string{"name"}},
	},
}

var stateSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "backend"},
		{Name: "path"},
		{Name: "url"},
	},
}

// The warehouse schemas derive from warehouseAttributes (attributes.go).
var (
	warehouseSchema = warehouseAttributeSchema("")
	catalogSchema   = warehouseAttributeSchema("catalog")
	s3Schema        = warehouseAttributeSchema("s3")
)

var runnerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "listen"},
		{Name: "concurrency"},
		{Name: "fleet"},
	},
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
		{Name: "sensitive"},
	},
}

// The source schemas derive from sourceAttributes (attributes.go), the one
// list of source attributes.
var postgresSourceSchema = attributeSchema("postgres", "",
	hcl.BlockHeaderSchema{Type: "ssh_tunnel"},
	hcl.BlockHeaderSchema{Type: "cdc"},
	hcl.BlockHeaderSchema{Type: "table", LabelNames: []string{"name"}},
	hcl.BlockHeaderSchema{Type: "tables", LabelNames: []string{"pattern"}},
)

var stripeSourceSchema = attributeSchema("stripe", "",
	hcl.BlockHeaderSchema{Type: "webhook"},
	hcl.BlockHeaderSchema{Type: "table", LabelNames: []string{"name"}},
)

// sshTunnelSchema serves the warehouse's ssh_tunnel block too.
var sshTunnelSchema = attributeSchema("", "ssh_tunnel")

var cdcSchema = attributeSchema("", "cdc")

var webhookSchema = attributeSchema("", "webhook")

var tableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "sync", Required: true},
		{Name: "incremental_field"},
		{Name: "primary_key"},
		{Name: "frequency"},
		{Name: "columns"},
		{Name: "new_columns"},
		{Name: "cdc_output"},
		{Name: "enabled"},
		{Name: "query"},
		{Name: "historical_load"},
		{Name: "hash"},
		{Name: "rename"},
		{Name: "batch_size"},
	},
}

// secretAttributes are sensitive whatever their value derives from.
var secretAttributes = func() map[string]bool {
	m := map[string]bool{}
	for _, a := range sourceAttributes {
		if a.Secret {
			m[a.Name] = true
		}
	}
	for _, a := range warehouseAttributes {
		if a.Secret {
			m[a.Name] = true
		}
	}
	return m
}()

// IsSecretAttribute reports whether a source attribute ("password",
// "ssh_tunnel.private_key", ...) is secret by nature: never shown, never
// stored, whatever its value derives from.
func IsSecretAttribute(name string) bool { return secretAttributes[name] }

// sourceTypes are the source types sluice knows, with whether they can
// receive webhooks.
var sourceTypes = map[string]struct{ webhooks bool }{
	"postgres": {webhooks: false},
	"stripe":   {webhooks: true},
}
