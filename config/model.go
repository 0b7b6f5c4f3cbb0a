// Package config turns a directory of sluice HCL files into a typed model.
//
// It knows nothing of databases: everything here can be checked without a
// network. Checks that need the live source belong to the planner, which
// reports them with the ranges recorded here.
package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Config is the whole configuration of one directory.
type Config struct {
	// Dir is the directory the files were read from; relative paths in the
	// configuration (state path, warehouse path, file()) are relative to it.
	Dir string
	// Files holds every parsed file by the name used in diagnostics, so that
	// diagnostics can be printed with a snippet of the offending line.
	Files map[string]*hcl.File

	State     State
	Warehouse Warehouse
	Runner    Runner
	Variables map[string]*Variable
	// Locals holds the evaluated value of every local, marked sensitive where
	// it derives from a sensitive value.
	Locals  map[string]cty.Value
	Sources []*Source
	// Notify holds the notify blocks, in the order of the files (notify.go).
	Notify []*Notify
}

// Source returns the source with the given address ("postgres.prod"), or nil.
func (c *Config) Source(addr string) *Source {
	for _, s := range c.Sources {
		if s.Address() == addr {
			return s
		}
	}
	return nil
}

// State configures where sluice records what it has applied.
type State struct {
	Backend string // "local" or "postgres"
	Path    string // local: JSON file, relative to Config.Dir unless absolute
	URL     string // postgres: connection URL
	// URLSensitive reports whether URL derives from a sensitive value.
	URLSensitive bool
	DeclRange    hcl.Range
}

// Warehouse configures the destination of every sync.
type Warehouse struct {
	Backend string // "parquet", "postgres" or "iceberg"
	// Path is the parquet backend's root directory, or the iceberg
	// backend's location: a directory, "s3://bucket/prefix" or
	// "gs://bucket/prefix". A directory is relative to Config.Dir unless
	// absolute (ResolvePath; IcebergLocation for iceberg).
	Path         string
	URL          string // postgres: connection URL
	URLSensitive bool
	Schema       string // postgres: destination schema
	DropCascade  bool   // postgres: full_refresh may drop views that depend on a table
	// Connection options of the postgres backend, as for PostgreSQL
	// sources: SSLMode is empty when not set (url's sslmode applies, else
	// "require").
	SSLMode     string
	SSLRootCert string
	SSLCert     string
	SSLKey      string
	SSHTunnel   *SSHTunnel
	// Namespace is the iceberg backend's Iceberg namespace
	// (DefaultNamespace unless set).
	Namespace string
	// Retention is how long the iceberg backend keeps expired snapshots
	// readable; zero leaves the backend's default.
	Retention time.Duration
	// Catalog is the iceberg backend's catalog block, nil when absent
	// (IcebergCatalogURL gives the default).
	Catalog *Catalog
	// S3 is the iceberg backend's s3 block, nil when absent (the AWS
	// SDK's usual chain of credentials applies).
	S3 *S3
	// Attrs records where each attribute was set ("ssh_tunnel.host" for
	// the nested block); Sensitive names those whose value is secret.
	Attrs     map[string]hcl.Range
	Sensitive map[string]bool
	DeclRange hcl.Range
}

// Catalog is the iceberg warehouse's catalog block.
type Catalog struct {
	// Type is the catalog's kind: "sql" (the JDBC-layout SQL catalog).
	Type string
	// URL is the catalog's database as written: "sqlite:///abs/path.db",
	// "sqlite:relative.db" (relative to Config.Dir) or "postgres://...";
	// sensitive when Warehouse.Sensitive["catalog.url"] says so.
	URL string
}

// S3 is the iceberg warehouse's s3 block: how to reach an S3-compatible
// object store. The keys are sensitive: never stored, never printed.
type S3 struct {
	Endpoint        string
	Region          string
	PathStyle       bool
	AccessKeyID     string
	SecretAccessKey string
}

// Runner configures the `sluice run` daemon.
type Runner struct {
	Listen      string
	Concurrency int
	// Fleet is the runner block's fleet: nil when unset. Use IsFleet.
	Fleet     *bool
	DeclRange hcl.Range
}

// Variable is a declared input variable and the value it was given.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	Default     cty.Value // cty.NilVal when the variable is required
	Sensitive   bool
	// Value is the final value (from -var, -var-file, SLUICE_VAR_<name> or the
	// default), converted to Type, marked sensitive when Sensitive is set.
	Value     cty.Value
	DeclRange hcl.Range
}

// Source is one `source "TYPE" "NAME"` block.
type Source struct {
	Type      string // "postgres" or "stripe"
	Name      string
	Prefix    string
	Frequency Schedule

	Postgres *Postgres // set when Type is "postgres"
	Stripe   *Stripe   // set when Type is "stripe"

	Tables []*Table
	// Patterns are the tables blocks: every live table that matches one
	// and has no table block of its own is planned as if declared (the
	// planner expands them against introspection).
	Patterns []*TablePattern

	// Dir is the configuration directory, which relative paths of the
	// source (certificates, known_hosts) are relative to.
	Dir string

	// Attrs records where each attribute of the block (and its nested blocks,
	// as "cdc.slot", "ssh_tunnel.host", "webhook.url") was set, for
	// diagnostics from the planner.
	Attrs map[string]hcl.Range
	// Sensitive names the attributes whose value must never be printed or
	// stored: those that are secret by nature (password, api_key, ...) and
	// those whose value derives from a sensitive variable.
	Sensitive map[string]bool
	DeclRange hcl.Range
}

// Address is the source's address, "TYPE.NAME".
func (s *Source) Address() string { return s.Type + "." + s.Name }

// Table returns the table block with the given name as written, or nil.
func (s *Source) Table(name string) *Table {
	for _, t := range s.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Range returns where attribute name was set, or the block's declaration
// range when it was not set (a default applies).
func (s *Source) Range(name string) hcl.Range {
	if r, ok := s.Attrs[name]; ok {
		return r
	}
	return s.DeclRange
}

// Postgres holds the settings of a PostgreSQL source.
type Postgres struct {
	ConnectionString string
	Host             string
	Port             int // 0: from the connection string, PGPORT or 5432
	Database         string
	User             string
	Password         string
	// Schema is where unqualified table names are looked up; "" means every
	// schema (inspect lists them all).
	Schema string
	// SSLMode is the explicit sslmode; when empty, the connection string's
	// sslmode applies, and "require" when it has none.
	SSLMode        string
	SSLRootCert    string
	SSLCert        string
	SSLKey         string
	ConnectTimeout time.Duration
	SSHTunnel      *SSHTunnel
	CDC            CDC
	// HashSalt is the key of the HMAC-SHA256 that a table's hash columns
	// hold: a secret, never stored or printed.
	HashSalt string
}

// SSHTunnel is the optional bastion a PostgreSQL source is reached through.
type SSHTunnel struct {
	Host                  string
	Port                  int
	User                  string
	PrivateKey            string // the key's PEM text, usually from file()
	Password              string
	Passphrase            string
	KnownHosts            string // path, "~" expanded
	RequireTLS            bool
	InsecureIgnoreHostKey bool
}

// CDC holds the logical-replication settings of a PostgreSQL source.
type CDC struct {
	Management   string // "managed" or "self_managed"
	Publication  string
	Slot         string
	LagWarning   int64 // bytes
	LagCritical  int64 // bytes
	AutoDropSlot bool
}

// Stripe holds the settings of a Stripe source.
type Stripe struct {
	APIKey  string
	APIBase string
	Webhook *Webhook
}

// Webhook is the webhook block of a push source.
type Webhook struct {
	// URL is the public base URL of the runner; the endpoint registered is
	// URL + "/webhooks/" + source address.
	URL           string
	SigningSecret string
}

// Table is one `table "NAME"` block.
type Table struct {
	// Name is the label as written: "orders", "sales.orders" or
	// `"Sales"."Order Items"`.
	Name string
	// Schema is the schema part of a qualified name, "" when unqualified (the
	// source's schema applies). Table is the bare table name. Both are exact:
	// sluice never folds case, write names as inspect shows them.
	Schema, Table string

	Sync             SyncType
	IncrementalField string
	PrimaryKey       []string // nil: the live primary key
	Frequency        Schedule
	Columns          []string // nil: every column
	NewColumns       NewColumnsPolicy
	CDCOutput        CDCOutput // cdc tables only
	Enabled          bool
	// Query, when set, makes this a custom SQL table: the rows of this
	// SELECT, landing in <prefix>_<label>.
	Query string
	// Pattern is the tables block that planned this table ("" for a
	// table block of its own).
	Pattern string
	// HistoricalLoad is false when the table starts without its history
	// (historical_load = false; cdc, incremental and append tables): no
	// snapshot, only what changes after apply.
	HistoricalLoad bool
	// Hash names the columns the warehouse holds as hex HMAC-SHA256 of
	// their text form, keyed by the source's hash_salt.
	Hash []string
	// Rename maps source column names to their warehouse names (the
	// rename attribute); nil when none is renamed. Sources are always
	// read by the source names.
	Rename map[string]string
	// BatchSize is batch_size: a cursor or xmin read commits every
	// BatchSize rows, so that a long load resumes where it stopped; 0 is
	// no limit (one commit per sync).
	BatchSize int

	Attrs     map[string]hcl.Range
	DeclRange hcl.Range
}

// Range returns where attribute name was set, or the block's declaration
// range when a default applies.
func (t *Table) Range(name string) hcl.Range {
	if r, ok := t.Attrs[name]; ok {
		return r
	}
	return t.DeclRange
}

// Address is the table's address, "TYPE.NAME/TABLE".
func (t *Table) Address(s *Source) string { return s.Address() + "/" + t.Name }

// SyncType is how a table is kept in sync.
type SyncType string

// The sync types of SPEC §2.
const (
	SyncFullRefresh SyncType = "full_refresh"
	SyncIncremental SyncType = "incremental"
	SyncAppend      SyncType = "append"
	SyncCDC         SyncType = "cdc"
	SyncXmin        SyncType = "xmin"
	SyncWebhook     SyncType = "webhook"
)

// SyncTypes lists every sync type in the order the documentation gives them.
var SyncTypes = []SyncType{SyncFullRefresh, SyncIncremental, SyncAppend, SyncCDC, SyncXmin, SyncWebhook}

// LoadsHistory reports whether historical_load may be turned off for the
// sync type: the types that follow changes after a first load.
func (s SyncType) LoadsHistory() bool { return s == SyncCDC || s == SyncIncremental || s == SyncAppend }

// NeedsCursor reports whether the sync type reads rows past a cursor column.
func (s SyncType) NeedsCursor() bool { return s == SyncIncremental || s == SyncAppend }

// NewColumnsPolicy says what a column added at the source does to a table.
type NewColumnsPolicy string

// The new_columns policies of SPEC §2.
const (
	// NewColumnsSyncForward syncs a new column from now on.
	NewColumnsSyncForward NewColumnsPolicy = "sync_forward"
	// NewColumnsFullResync reloads the table so that the column is filled.
	NewColumnsFullResync NewColumnsPolicy = "full_resync"
)

// CDCOutput chooses the warehouse tables a cdc table writes.
type CDCOutput string

// The cdc_output values of SPEC §2.
const (
	CDCConsolidated CDCOutput = "consolidated" // the table as it is now
	CDCHistory      CDCOutput = "history"      // every change, in <table>_cdc
	CDCBoth         CDCOutput = "both"
)

// WritesHistory reports whether a cdc table with this output keeps a
// history table.
func (o CDCOutput) WritesHistory() bool { return o == CDCHistory || o == CDCBoth }

// IsFleet reports whether several runners may share this configuration's
// work: with the postgres state backend, unless runner { fleet = false }
// says only one runner will run.
func (c *Config) IsFleet() bool {
	return c.State.Backend == "postgres" && (c.Runner.Fleet == nil || *c.Runner.Fleet)
}
