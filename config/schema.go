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
	},
}

var stateSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "backend"},
		{Name: "path"},
		{Name: "url"},
	},
}

var warehouseSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "backend"},
		{Name: "path"},
		{Name: "url"},
		{Name: "schema"},
		{Name: "drop_cascade"},
		{Name: "sslmode"},
		{Name: "sslrootcert"},
		{Name: "sslcert"},
		{Name: "sslkey"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "ssh_tunnel"},
	},
}

var runnerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "listen"},
		{Name: "concurrency"},
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

var postgresSourceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "prefix"},
		{Name: "frequency"},
		{Name: "connection_string"},
		{Name: "host"},
		{Name: "port"},
		{Name: "database"},
		{Name: "user"},
		{Name: "password"},
		{Name: "schema"},
		{Name: "sslmode"},
		{Name: "sslrootcert"},
		{Name: "sslcert"},
		{Name: "sslkey"},
		{Name: "connect_timeout"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "ssh_tunnel"},
		{Type: "cdc"},
		{Type: "table", LabelNames: []string{"name"}},
	},
}

var stripeSourceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "prefix"},
		{Name: "frequency"},
		{Name: "api_key"},
		{Name: "api_base"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "webhook"},
		{Type: "table", LabelNames: []string{"name"}},
	},
}

var sshTunnelSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "host", Required: true},
		{Name: "port"},
		{Name: "user", Required: true},
		{Name: "private_key"},
		{Name: "password"},
		{Name: "passphrase"},
		{Name: "known_hosts"},
		{Name: "require_tls"},
		{Name: "insecure_ignore_host_key"},
	},
}

var cdcSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "management"},
		{Name: "publication"},
		{Name: "slot"},
		{Name: "lag_warning"},
		{Name: "lag_critical"},
		{Name: "auto_drop_slot"},
	},
}

var webhookSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "url", Required: true},
		{Name: "signing_secret"},
	},
}

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
	},
}

// secretAttributes are sensitive whatever their value derives from.
var secretAttributes = map[string]bool{
	"connection_string":      true,
	"password":               true,
	"api_key":                true,
	"ssh_tunnel.private_key": true,
	"ssh_tunnel.password":    true,
	"ssh_tunnel.passphrase":  true,
	"webhook.signing_secret": true,
}

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
