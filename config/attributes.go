package config

import (
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// SourceAttribute is one attribute of a source block or of a block nested
// in it. sourceAttributes lists them all, once: the block schemas, the
// secret attributes and the settings apply records (SourceSettings) derive
// from it, so that an attribute added there is decoded, masked and planned
// alike (a test checks that every one is decoded).
type SourceAttribute struct {
	// Name is the attribute as state, plans and diagnostics name it: "host",
	// or "cdc.slot" for one of a nested block.
	Name string
	// Types are the source types whose blocks have it.
	Types []string
	// Required is true when its block must set it.
	Required bool
	// Secret attributes are never shown or stored, whatever their value
	// derives from.
	Secret bool
	// value renders the decoded value as state records it, "" when unset
	// (or when its block is absent).
	value func(*Source) string
}

// Block is the nested block the attribute belongs to ("cdc"), "" for the
// source block itself.
func (a SourceAttribute) Block() string {
	block, _, nested := strings.Cut(a.Name, ".")
	if !nested {
		return ""
	}
	return block
}

// Attr is the attribute's name within its block ("slot" for "cdc.slot").
func (a SourceAttribute) Attr() string { return a.Name[strings.LastIndexByte(a.Name, '.')+1:] }

var (
	both       = []string{"postgres", "stripe"}
	pgOnly     = []string{"postgres"}
	stripeOnly = []string{"stripe"}
)

func pgValue(f func(*Postgres) string) func(*Source) string {
	return func(s *Source) string {
		if s.Postgres == nil {
			return ""
		}
		return f(s.Postgres)
	}
}

func tunnelValue(f func(*SSHTunnel) string) func(*Source) string {
	return pgValue(func(pg *Postgres) string {
		if pg.SSHTunnel == nil {
			return ""
		}
		return f(pg.SSHTunnel)
	})
}

func stripeValue(f func(*Stripe) string) func(*Source) string {
	return func(s *Source) string {
		if s.Stripe == nil {
			return ""
		}
		return f(s.Stripe)
	}
}

func webhookValue(f func(*Webhook) string) func(*Source) string {
	return stripeValue(func(st *Stripe) string {
		if st.Webhook == nil {
			return ""
		}
		return f(st.Webhook)
	})
}

// sourceAttributes are the attributes of source blocks, in the order the
// documentation gives them.
var sourceAttributes = []SourceAttribute{
	{Name: "prefix", Types: both, value: func(s *Source) string { return s.Prefix }},
	{Name: "frequency", Types: both, value: func(s *Source) string { return s.Frequency.String() }},

	{Name: "connection_string", Types: pgOnly, Secret: true, value: pgValue(func(pg *Postgres) string { return pg.ConnectionString })},
	{Name: "host", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.Host })},
	{Name: "port", Types: pgOnly, value: pgValue(func(pg *Postgres) string {
		if pg.Port == 0 {
			return ""
		}
		return strconv.Itoa(pg.Port)
	})},
	{Name: "database", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.Database })},
	{Name: "user", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.User })},
	{Name: "password", Types: pgOnly, Secret: true, value: pgValue(func(pg *Postgres) string { return pg.Password })},
	{Name: "schema", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.Schema })},
	{Name: "sslmode", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.SSLMode })},
	{Name: "sslrootcert", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.SSLRootCert })},
	{Name: "sslcert", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.SSLCert })},
	{Name: "sslkey", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.SSLKey })},
	{Name: "connect_timeout", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.ConnectTimeout.String() })},
	{Name: "hash_salt", Types: pgOnly, Secret: true, value: pgValue(func(pg *Postgres) string { return pg.HashSalt })},

	{Name: "ssh_tunnel.host", Types: pgOnly, Required: true, value: tunnelValue(func(t *SSHTunnel) string { return t.Host })},
	{Name: "ssh_tunnel.port", Types: pgOnly, value: tunnelValue(func(t *SSHTunnel) string { return strconv.Itoa(t.Port) })},
	{Name: "ssh_tunnel.user", Types: pgOnly, Required: true, value: tunnelValue(func(t *SSHTunnel) string { return t.User })},
	{Name: "ssh_tunnel.private_key", Types: pgOnly, Secret: true, value: tunnelValue(func(t *SSHTunnel) string { return t.PrivateKey })},
	{Name: "ssh_tunnel.password", Types: pgOnly, Secret: true, value: tunnelValue(func(t *SSHTunnel) string { return t.Password })},
	{Name: "ssh_tunnel.passphrase", Types: pgOnly, Secret: true, value: tunnelValue(func(t *SSHTunnel) string { return t.Passphrase })},
	{Name: "ssh_tunnel.known_hosts", Types: pgOnly, value: tunnelValue(func(t *SSHTunnel) string { return t.KnownHosts })},
	{Name: "ssh_tunnel.require_tls", Types: pgOnly, value: tunnelValue(func(t *SSHTunnel) string { return strconv.FormatBool(t.RequireTLS) })},
	{Name: "ssh_tunnel.insecure_ignore_host_key", Types: pgOnly, value: tunnelValue(func(t *SSHTunnel) string { return strconv.FormatBool(t.InsecureIgnoreHostKey) })},

	{Name: "cdc.management", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.CDC.Management })},
	{Name: "cdc.publication", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.CDC.Publication })},
	{Name: "cdc.slot", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return pg.CDC.Slot })},
	{Name: "cdc.lag_warning", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return FormatSize(pg.CDC.LagWarning) })},
	{Name: "cdc.lag_critical", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return FormatSize(pg.CDC.LagCritical) })},
	{Name: "cdc.auto_drop_slot", Types: pgOnly, value: pgValue(func(pg *Postgres) string { return strconv.FormatBool(pg.CDC.AutoDropSlot) })},

	{Name: "api_key", Types: stripeOnly, Secret: true, value: stripeValue(func(st *Stripe) string { return st.APIKey })},
	{Name: "api_base", Types: stripeOnly, value: stripeValue(func(st *Stripe) string { return st.APIBase })},

	{Name: "webhook.url", Types: stripeOnly, Required: true, value: webhookValue(func(w *Webhook) string { return w.URL })},
	{Name: "webhook.signing_secret", Types: stripeOnly, Secret: true, value: webhookValue(func(w *Webhook) string { return w.SigningSecret })},
}

// SourceAttributes returns the attributes of source blocks.
func SourceAttributes() []SourceAttribute { return append([]SourceAttribute(nil), sourceAttributes...) }

// SourceSettings returns every setting of a source that apply records,
// secrets included, by attribute name. Unset (empty) values are left out,
// so that an unset attribute and an empty one compare equal.
func SourceSettings(src *Source) map[string]string {
	v := map[string]string{}
	for _, a := range sourceAttributes {
		if val := a.value(src); val != "" {
			v[a.Name] = val
		}
	}
	return v
}

// attributeSchema is the schema of the attributes of a source type's block
// ("" the source block itself, "cdc", ...), with the nested blocks given.
// A nested block shared by several source types takes the attributes of
// any of them.
func attributeSchema(typ, block string, blocks ...hcl.BlockHeaderSchema) *hcl.BodySchema {
	s := &hcl.BodySchema{Blocks: blocks}
	for _, a := range sourceAttributes {
		if a.Block() == block && (typ == "" || containsString(a.Types, typ)) {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a.Attr(), Required: a.Required})
		}
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WarehouseAttribute is one attribute of the warehouse block or of a
// block nested in it. warehouseAttributes lists them all, once: the block
// schemas, the secret attributes and the check that an attribute belongs
// to the configured backend derive from it.
type WarehouseAttribute struct {
	// Name is the attribute as diagnostics and Warehouse.Attrs name it:
	// "path", or "s3.endpoint" for one of a nested block.
	Name string
	// Backends are the warehouse backends that read it.
	Backends []string
	// Secret attributes are never shown or stored, whatever their value
	// derives from.
	Secret bool
}

// Block is the nested block the attribute belongs to ("s3"), "" for the
// warehouse block itself.
func (a WarehouseAttribute) Block() string {
	block, _, nested := strings.Cut(a.Name, ".")
	if !nested {
		return ""
	}
	return block
}

// Attr is the attribute's name within its block ("endpoint" for
// "s3.endpoint").
func (a WarehouseAttribute) Attr() string { return a.Name[strings.LastIndexByte(a.Name, '.')+1:] }

var (
	warehouseBackends = []string{"parquet", "postgres", "iceberg"}
	postgresWarehouse = []string{"postgres"}
	icebergWarehouse  = []string{"iceberg"}
)

// warehouseAttributes are the attributes of the warehouse block, in the
// order the documentation gives them. The ssh_tunnel block's attributes
// are a source's (sourceAttributes); the block belongs to the postgres
// backend (warehouseBlocks).
var warehouseAttributes = []WarehouseAttribute{
	{Name: "backend", Backends: warehouseBackends},
	{Name: "path", Backends: warehouseBackends},

	{Name: "url", Backends: postgresWarehouse},
	{Name: "schema", Backends: postgresWarehouse},
	{Name: "drop_cascade", Backends: postgresWarehouse},
	{Name: "sslmode", Backends: postgresWarehouse},
	{Name: "sslrootcert", Backends: postgresWarehouse},
	{Name: "sslcert", Backends: postgresWarehouse},
	{Name: "sslkey", Backends: postgresWarehouse},

	{Name: "namespace", Backends: icebergWarehouse},
	{Name: "retention", Backends: icebergWarehouse},
	{Name: "catalog.type", Backends: icebergWarehouse},
	{Name: "catalog.url", Backends: icebergWarehouse},
	{Name: "s3.endpoint", Backends: icebergWarehouse},
	{Name: "s3.region", Backends: icebergWarehouse},
	{Name: "s3.path_style", Backends: icebergWarehouse},
	{Name: "s3.access_key_id", Backends: icebergWarehouse, Secret: true},
	{Name: "s3.secret_access_key", Backends: icebergWarehouse, Secret: true},
}

// warehouseBlocks are the blocks nested in the warehouse block, with the
// backends that read them.
var warehouseBlocks = []struct {
	Type     string
	Backends []string
}{
	{"ssh_tunnel", postgresWarehouse},
	{"catalog", icebergWarehouse},
	{"s3", icebergWarehouse},
}

// WarehouseAttributes returns the attributes of the warehouse block.
func WarehouseAttributes() []WarehouseAttribute {
	return append([]WarehouseAttribute(nil), warehouseAttributes...)
}

// warehouseAttributeSchema is the schema of the warehouse block ("") or
// of one of its nested blocks (other than ssh_tunnel).
func warehouseAttributeSchema(block string) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	if block == "" {
		for _, b := range warehouseBlocks {
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: b.Type})
		}
	}
	for _, a := range warehouseAttributes {
		if a.Block() == block {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a.Attr()})
		}
	}
	return s
}
