package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Defaults that SPEC §2 promises.
const (
	DefaultFrequency      = 6 * time.Hour
	DefaultLagWarning     = 1 << 30
	DefaultLagCritical    = 10 << 30
	DefaultConnectTimeout = 10 * time.Second
	DefaultSSLMode        = "require"
	DefaultSchema         = "public"
)

var sourceNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

func (l *loader) decodeSource(b *hcl.Block) *Source {
	typ, name := b.Labels[0], b.Labels[1]
	if _, known := sourceTypes[typ]; !known {
		l.e.diags = append(l.e.diags, errorAt(b.LabelRanges[0], "Unknown source type",
			"There is no source type %q.%s Source types: postgres, stripe.", typ, suggest(typ, keysOf(sourceTypes))))
		return nil
	}
	if !sourceNamePattern.MatchString(name) {
		l.e.diags = append(l.e.diags, errorAt(b.LabelRanges[1], "Invalid source name",
			"A source name must start with a letter or underscore and hold only letters, digits, underscores and dashes; %q does not.", name))
		return nil
	}
	s := &Source{
		Type:      typ,
		Name:      name,
		Prefix:    typ,
		Frequency: Schedule{Interval: DefaultFrequency},
		Attrs:     map[string]hcl.Range{},
		Sensitive: map[string]bool{},
		DeclRange: b.DefRange,
		Dir:       l.cfg.Dir,
	}
	schema := postgresSourceSchema
	if typ == "stripe" {
		schema = stripeSourceSchema
	}
	content, diags := b.Body.Content(schema)
	l.e.diags = append(l.e.diags, diags...)
	a := l.sourceAttrs(s, content.Attributes, "")

	if a.str("prefix", &s.Prefix) && !prefixPattern.MatchString(s.Prefix) {
		a.errorf("prefix", "Invalid prefix",
			"The prefix %q must start with a lowercase letter and hold only lowercase letters, digits and underscores, because it starts every warehouse table name.", s.Prefix)
	}
	var freq string
	if a.str("frequency", &freq) {
		if sch, err := ParseSchedule(freq); err != nil {
			a.errorf("frequency", "Invalid frequency", "%s.", err)
		} else {
			s.Frequency = sch
		}
	}

	blocks := map[string]hcl.Blocks{}
	for _, blk := range content.Blocks {
		blocks[blk.Type] = append(blocks[blk.Type], blk)
	}
	switch typ {
	case "postgres":
		s.Postgres = l.decodePostgres(s, a, blocks)
	case "stripe":
		s.Stripe = l.decodeStripe(s, a, blocks)
	}
	for _, tb := range blocks["table"] {
		if t := l.decodeTable(s, tb); t != nil {
			s.Tables = append(s.Tables, t)
		}
	}
	for _, pb := range blocks["tables"] {
		if p := l.decodePattern(s, pb); p != nil {
			s.Patterns = append(s.Patterns, p)
		}
	}
	return s
}

func (l *loader) sourceAttrs(s *Source, m hcl.Attributes, prefix string) *attrs {
	return &attrs{e: &l.e, m: m, prefix: prefix, ranges: s.Attrs, sensitive: s.Sensitive, unknown: l.unknownOf(s)}
}

func (l *loader) decodePostgres(s *Source, a *attrs, blocks map[string]hcl.Blocks) *Postgres {
	pg := &Postgres{Schema: DefaultSchema, ConnectTimeout: DefaultConnectTimeout}
	if a.str("connection_string", &pg.ConnectionString) {
		if !looksLikeConnString(pg.ConnectionString) {
			// The value is a secret: describe it, never echo it.
			a.errorf("connection_string", "Invalid connection string",
				"connection_string must be a postgres:// or postgresql:// URL or libpq keyword=value pairs.")
		}
	}
	a.str("host", &pg.Host)
	a.integer("port", 1, 65535, &pg.Port)
	a.str("database", &pg.Database)
	a.str("user", &pg.User)
	a.str("password", &pg.Password)
	a.str("schema", &pg.Schema)
	if a.str("sslmode", &pg.SSLMode) {
		a.oneOf("sslmode", pg.SSLMode, sslModes)
	} else if !a.has("connection_string") {
		pg.SSLMode = DefaultSSLMode
	}
	a.str("sslrootcert", &pg.SSLRootCert)
	a.str("sslcert", &pg.SSLCert)
	a.str("sslkey", &pg.SSLKey)
	if (pg.SSLCert == "") != (pg.SSLKey == "") && a.has("sslcert") != a.has("sslkey") {
		name := "sslcert"
		if !a.has("sslcert") {
			name = "sslkey"
		}
		a.errorf(name, "Incomplete client certificate", "sslcert and sslkey go together: set both, or neither.")
	}
	var timeout string
	if a.str("connect_timeout", &timeout) {
		if d, err := ParseDuration(timeout); err != nil || d <= 0 {
			a.errorf("connect_timeout", "Invalid connect_timeout", "connect_timeout must be a positive duration, such as 10s.")
		} else {
			pg.ConnectTimeout = d
		}
	}
	if a.str("hash_salt", &pg.HashSalt) && pg.HashSalt == "" && !a.isUnknown("hash_salt") {
		// The salt is a secret: describe it, never echo it.
		a.errorf("hash_salt", "Empty hash_salt", "hash_salt keys the HMAC of hash columns; an empty key lets anyone recompute the hashes of guessable values.")
	}
	if t := single(&l.e, blocks["ssh_tunnel"]); t != nil {
		pg.SSHTunnel = l.decodeSSHTunnel(s, t)
	}
	pg.CDC = l.decodeCDC(s, single(&l.e, blocks["cdc"]))
	return pg
}

func looksLikeConnString(s string) bool {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		_, err := url.Parse(s)
		return err == nil
	}
	return strings.Contains(s, "=")
}

func (l *loader) decodeSSHTunnel(s *Source, b *hcl.Block) *SSHTunnel {
	t := &SSHTunnel{Port: 22, KnownHosts: "~/.ssh/known_hosts"}
	a := l.sourceAttrs(s, l.content(b, sshTunnelSchema), "ssh_tunnel.")
	a.str("host", &t.Host)
	a.integer("port", 1, 65535, &t.Port)
	a.str("user", &t.User)
	a.str("private_key", &t.PrivateKey)
	a.str("password", &t.Password)
	a.str("passphrase", &t.Passphrase)
	a.str("known_hosts", &t.KnownHosts)
	a.boolean("require_tls", &t.RequireTLS)
	if a.boolean("insecure_ignore_host_key", &t.InsecureIgnoreHostKey) && t.InsecureIgnoreHostKey {
		a.warnf("insecure_ignore_host_key", "SSH host key not checked",
			"With insecure_ignore_host_key = true anyone between sluice and the bastion can pose as it and read the database traffic. Add the bastion's key to known_hosts instead.")
	}
	if !a.has("private_key") && !a.has("password") {
		l.e.diags = append(l.e.diags, errorAt(b.DefRange, "Missing SSH credentials",
			`ssh_tunnel needs private_key (such as file("~/.ssh/id_ed25519")) or password.`))
	}
	if a.has("passphrase") && !a.has("private_key") {
		a.errorf("passphrase", "Passphrase without a key", "passphrase unlocks private_key, which is not set.")
	}
	return t
}

func (l *loader) decodeCDC(s *Source, b *hcl.Block) CDC {
	c := CDC{
		Management:   "managed",
		Publication:  defaultResourceName("sluice_pub_", s.Name),
		Slot:         defaultResourceName("sluice_", s.Name),
		LagWarning:   DefaultLagWarning,
		LagCritical:  DefaultLagCritical,
		AutoDropSlot: true,
	}
	if b == nil {
		return c
	}
	a := l.sourceAttrs(s, l.content(b, cdcSchema), "cdc.")
	if a.str("management", &c.Management) {
		a.oneOf("management", c.Management, []string{"managed", "self_managed"})
	}
	if a.str("publication", &c.Publication) && (c.Publication == "" || len(c.Publication) > maxIdentifierBytes) {
		a.errorf("publication", "Invalid publication name", "A publication name must be 1 to %d bytes long.", maxIdentifierBytes)
	}
	if a.str("slot", &c.Slot) && !slotPattern.MatchString(c.Slot) {
		a.errorf("slot", "Invalid slot name",
			"PostgreSQL replication slot names hold only lowercase letters, digits and underscores, at most %d of them; %q does not fit.", maxIdentifierBytes, c.Slot)
	}
	warnOK := l.size(a, "lag_warning", &c.LagWarning)
	critOK := l.size(a, "lag_critical", &c.LagCritical)
	if (warnOK || critOK) && c.LagWarning >= c.LagCritical && !a.isUnknown("lag_warning") && !a.isUnknown("lag_critical") {
		name := "lag_warning"
		if !a.has(name) {
			name = "lag_critical"
		}
		a.errorf(name, "Lag thresholds out of order",
			"lag_warning (%s) must be smaller than lag_critical (%s), or the warning would never come first.", FormatSize(c.LagWarning), FormatSize(c.LagCritical))
	}
	if a.boolean("auto_drop_slot", &c.AutoDropSlot) && c.AutoDropSlot && c.Management == "self_managed" {
		a.warnf("auto_drop_slot", "auto_drop_slot ignored", "A self_managed source is only marked failed at critical lag; sluice never drops what it does not manage.")
	}
	return c
}

func (l *loader) size(a *attrs, name string, dst *int64) bool {
	var s string
	if !a.str(name, &s) {
		return false
	}
	n, err := ParseSize(s)
	if err != nil {
		a.errorf(name, "Invalid size", "%s.", err)
		return false
	}
	*dst = n
	return true
}

func (l *loader) decodeStripe(s *Source, a *attrs, blocks map[string]hcl.Blocks) *Stripe {
	st := &Stripe{}
	if !a.has("api_key") {
		l.e.diags = append(l.e.diags, errorAt(s.DeclRange, "Missing api_key",
			`A stripe source needs api_key, such as api_key = env("STRIPE_API_KEY").`))
	}
	a.str("api_key", &st.APIKey)
	if a.str("api_base", &st.APIBase) {
		if u, err := url.Parse(st.APIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			a.errorf("api_base", "Invalid api_base", "api_base must be an http:// or https:// URL, such as http://127.0.0.1:12111.")
		}
	}
	if b := single(&l.e, blocks["webhook"]); b != nil {
		wa := l.sourceAttrs(s, l.content(b, webhookSchema), "webhook.")
		w := &Webhook{}
		if wa.str("url", &w.URL) {
			u, err := url.Parse(w.URL)
			switch {
			case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
				wa.errorf("url", "Invalid webhook URL", "url must be the runner's public base URL, such as https://sluice.example.com.")
			case u.RawQuery != "" || u.Fragment != "":
				wa.errorf("url", "Invalid webhook URL", "url is a base URL; the endpoint <url>/webhooks/%s is derived from it, so it takes no query or fragment.", s.Address())
			case u.Scheme == "http" && !isLoopback(u.Hostname()):
				wa.warnf("url", "Webhook URL is not HTTPS", "Stripe delivers live-mode events only to https:// endpoints.")
			}
			w.URL = strings.TrimSuffix(w.URL, "/")
		}
		wa.str("signing_secret", &w.SigningSecret)
		st.Webhook = w
	}
	return st
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// WebhookEndpoint is the URL a source's webhook receiver answers on.
func (s *Source) WebhookEndpoint() string {
	if s.Stripe == nil || s.Stripe.Webhook == nil {
		return ""
	}
	return s.Stripe.Webhook.URL + "/webhooks/" + s.Address()
}

// The bounds of batch_size: below MinBatchSize the commits cost more than
// the rows; MaxBatchSize is far beyond any load worth resuming.
const (
	MinBatchSize = 1000
	MaxBatchSize = 100_000_000
)

var cdcOutputs = []string{string(CDCConsolidated), string(CDCHistory), string(CDCBoth)}

// newTable is a table of s declared at r, with the defaults of a table
// block (and of a tables block's template).
func newTable(s *Source, name string, r hcl.Range) *Table {
	return &Table{
		Name:           name,
		Frequency:      s.Frequency,
		NewColumns:     NewColumnsSyncForward,
		Enabled:        true,
		HistoricalLoad: true,
		Attrs:          map[string]hcl.Range{},
		DeclRange:      r,
	}
}

func (l *loader) decodeTable(s *Source, b *hcl.Block) *Table {
	t := newTable(s, b.Labels[0], b.DefRange)
	var err error
	if t.Schema, t.Table, err = ParseTableName(t.Name); err != nil {
		l.e.diags = append(l.e.diags, errorAt(b.LabelRanges[0], "Invalid table name", "%s.", err))
		return nil
	}
	a := &attrs{e: &l.e, m: l.content(b, tableSchema), ranges: t.Attrs, unknown: l.unknownOf(t)}
	l.decodeTableAttrs(s, t, a)
	return t
}

// decodeTableAttrs decodes the attributes of a table block, or of a
// tables block (a pattern's defaults), into t.
func (l *loader) decodeTableAttrs(s *Source, t *Table, a *attrs) {
	var sync string
	if a.str("sync", &sync) {
		valid := make([]string, len(SyncTypes))
		for i, st := range SyncTypes {
			valid[i] = string(st)
		}
		if a.oneOf("sync", sync, valid) {
			t.Sync = SyncType(sync)
		}
	}
	a.str("incremental_field", &t.IncrementalField)
	a.strings("primary_key", &t.PrimaryKey)
	a.strings("columns", &t.Columns)
	var freq string
	if a.str("frequency", &freq) {
		if sch, err := ParseSchedule(freq); err != nil {
			a.errorf("frequency", "Invalid frequency", "%s.", err)
		} else {
			t.Frequency = sch
		}
	}
	var newColumns, cdcOutput string
	if a.str("new_columns", &newColumns) && a.oneOf("new_columns", newColumns, []string{string(NewColumnsSyncForward), string(NewColumnsFullResync)}) {
		t.NewColumns = NewColumnsPolicy(newColumns)
	}
	if a.str("cdc_output", &cdcOutput) && a.oneOf("cdc_output", cdcOutput, cdcOutputs) {
		t.CDCOutput = CDCOutput(cdcOutput)
	}
	a.boolean("enabled", &t.Enabled)
	a.boolean("historical_load", &t.HistoricalLoad)
	if a.str("query", &t.Query) {
		l.checkQueryTable(s, t, a)
	}
	a.strings("hash", &t.Hash)
	a.integer("batch_size", MinBatchSize, MaxBatchSize, &t.BatchSize)
	l.checkTable(s, t, a)
	decodeRename(t, a)
}

// checkTable checks what can be known of one table without the source.
func (l *loader) checkTable(s *Source, t *Table, a *attrs) {
	for _, list := range []string{"primary_key", "columns", "hash"} {
		vals := map[string][]string{"primary_key": t.PrimaryKey, "columns": t.Columns, "hash": t.Hash}[list]
		seen := map[string]bool{}
		for _, v := range vals {
			if v == "" {
				a.errorf(list, "Empty column name", "%s holds an empty string.", list)
			} else if seen[v] {
				a.errorf(list, "Duplicate column", "%s names %q twice.", list, v)
			}
			seen[v] = true
		}
	}
	if a.has("primary_key") && t.PrimaryKey != nil && len(t.PrimaryKey) == 0 {
		a.errorf("primary_key", "Empty primary key", "primary_key must name at least one column; remove it to use the table's own primary key.")
	}
	l.checkHash(s, t, a)
	if t.Sync == "" {
		return
	}
	if t.Sync == SyncIncremental && s.Type == "stripe" && t.IncrementalField == "" && !a.isUnknown("incremental_field") {
		// Stripe lists objects by creation time; that is the only cursor.
		t.IncrementalField = "created"
	}
	if t.Sync.NeedsCursor() && t.IncrementalField == "" && !a.has("incremental_field") {
		a.errorf("sync", "Missing incremental_field",
			"sync = %q reads the rows whose cursor is past the last value synced, so it needs incremental_field, such as incremental_field = \"updated_at\". `sluice inspect %s` lists the candidate columns.", t.Sync, s.Address())
	}
	if !t.Sync.NeedsCursor() && a.has("incremental_field") {
		a.warnf("incremental_field", "incremental_field ignored", "incremental_field applies to incremental and append tables; sync = %q does not use it.", t.Sync)
	}
	if a.has("cdc_output") && t.Sync != SyncCDC {
		a.errorf("cdc_output", "cdc_output on a table that is not cdc",
			"cdc_output chooses the tables a cdc sync writes; this table has sync = %q. Remove cdc_output or set sync = \"cdc\".", t.Sync)
	}
	if a.has("historical_load") && !t.Sync.LoadsHistory() {
		a.errorf("historical_load", "historical_load on a table that does not load history",
			"historical_load chooses whether a cdc, incremental or append table starts with the rows already at the source; a %s table reads the whole table every time. Remove historical_load.", t.Sync)
	} else if !t.HistoricalLoad && s.Type != "postgres" {
		a.errorf("historical_load", "historical_load not available",
			"historical_load = false is available for PostgreSQL sources; a %s table loads its history on its first sync. Remove historical_load.", s.Type)
	}
	if a.has("batch_size") && t.Sync != SyncIncremental && t.Sync != SyncAppend && t.Sync != SyncXmin {
		a.errorf("batch_size", "batch_size on a "+string(t.Sync)+" table",
			"batch_size makes a cursor read commit every N rows and resume from the last commit; it applies to incremental, append and xmin tables. A %s table has no position to resume from: remove batch_size or change the sync type.", t.Sync)
	}
	if a.has("batch_size") && s.Type != "postgres" {
		a.errorf("batch_size", "batch_size on a "+s.Type+" table", "batch_size applies to the cursor reads of PostgreSQL sources; %s sources read in pages of their API. Remove batch_size.", s.Type)
	}
	if t.Sync == SyncCDC && t.CDCOutput == "" && !a.isUnknown("cdc_output") {
		t.CDCOutput = CDCConsolidated
	}
	switch {
	case t.Sync == SyncWebhook && !sourceTypes[s.Type].webhooks:
		a.errorf("sync", "Webhooks not supported",
			"%s sources do not push events, so a table cannot sync by webhook. Use cdc for near-real-time PostgreSQL changes.", s.Type)
	case t.Sync == SyncWebhook && s.Stripe != nil && s.Stripe.Webhook == nil:
		a.errorf("sync", "Missing webhook block",
			"sync = \"webhook\" needs a webhook block in source %q that gives the runner's public URL:\n\n  webhook {\n    url = \"https://sluice.example.com\"\n  }", s.Address())
	case (t.Sync == SyncCDC || t.Sync == SyncXmin) && s.Type != "postgres":
		a.errorf("sync", "Sync type not available", "sync = %q reads PostgreSQL internals; %s sources support full_refresh, incremental and webhook.", t.Sync, s.Type)
	case t.Sync == SyncAppend && s.Type == "stripe":
		a.errorf("sync", "Sync type not available", "stripe sources support full_refresh, incremental and webhook.")
	}
}

// checkHash checks a table's hash columns: they need the source's
// hash_salt, and with columns set they must be among the columns read
// (those listed, the key and the cursor).
func (l *loader) checkHash(s *Source, t *Table, a *attrs) {
	if !a.has("hash") || a.isUnknown("hash") {
		return
	}
	if s.Postgres == nil {
		a.errorf("hash", "hash not available", "hash columns are read from PostgreSQL sources; %s sources do not support them.", s.Type)
		return
	}
	if _, set := s.Attrs["hash_salt"]; !set && len(t.Hash) > 0 {
		a.errorf("hash", "Missing hash_salt",
			"hash stores HMAC-SHA256(hash_salt, value) of %s, so source %q needs hash_salt, such as hash_salt = var.hash_salt (a sensitive variable).", strings.Join(quoted(t.Hash), ", "), s.Address())
	}
	if len(t.Columns) == 0 || a.isUnknown("columns") || a.isUnknown("primary_key") || a.isUnknown("incremental_field") {
		return
	}
	for _, h := range t.Hash {
		if h != "" && !containsString(t.Columns, h) && !containsString(t.PrimaryKey, h) && h != t.IncrementalField {
			a.errorf("hash", "Hash column not synced",
				"hash names column %q, which is not among the table's columns %s: add it to columns, or remove it from hash.", h, strings.Join(quoted(t.Columns), ", "))
		}
	}
}

func quoted(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// checkSources checks what spans sources: duplicate addresses, prefixes and
// warehouse table names, and tables declared twice.
func (l *loader) checkSources() {
	seenAddr := map[string]*Source{}
	seenPrefix := map[string]*Source{}
	seenWarehouse := map[string]string{}
	for _, s := range l.cfg.Sources {
		if prev, dup := seenAddr[s.Address()]; dup {
			l.e.diags = append(l.e.diags, errorAt(s.DeclRange, "Duplicate source",
				"A source %q was already declared at %s.", s.Address(), prev.DeclRange))
			continue
		}
		seenAddr[s.Address()] = s
		// With a prefix or schema that is not known (validate without
		// secrets), where the tables land is not known either: comparing
		// the defaults would report collisions that may not exist.
		prefixUnknown, schemaUnknown := l.unknownOf(s)["prefix"], l.unknownOf(s)["schema"]
		if prev, dup := seenPrefix[s.Prefix]; dup && !prefixUnknown {
			detail := fmt.Sprintf("Sources %s (%s) and %s both use the prefix %q, so their tables would land in the same warehouse tables. Give each source its own prefix.", prev.Address(), prev.DeclRange, s.Address(), s.Prefix)
			if _, set := s.Attrs["prefix"]; !set {
				detail += fmt.Sprintf(" (The prefix defaults to the source type, %q.)", s.Type)
			}
			l.e.diags = append(l.e.diags, errorAt(s.Range("prefix"), "Duplicate prefix", "%s", detail))
			continue
		}
		if !prefixUnknown {
			seenPrefix[s.Prefix] = s
		}
		seenTable := map[string]*Table{}
		for _, t := range s.Tables {
			schema := t.Schema
			if schema == "" && s.Postgres != nil {
				schema = s.Postgres.Schema
				if schemaUnknown {
					// Unqualified tables are still compared among
					// themselves, never with qualified ones.
					schema = "\x00unknown"
				}
			}
			key := schema + "\x00" + t.Table
			if prev, dup := seenTable[key]; dup {
				l.e.diags = append(l.e.diags, errorAt(t.DeclRange, "Duplicate table",
					"Table %q of %s is already declared at %s.", t.Name, s.Address(), prev.DeclRange))
				continue
			}
			seenTable[key] = t
			if prefixUnknown || schemaUnknown || l.unknownOf(t)["sync"] || l.unknownOf(t)["cdc_output"] {
				continue // which warehouse tables it writes is not known
			}
			for _, wh := range t.LandingNames(s) {
				how := "names are lowercased and characters outside [a-z0-9_] become _"
				if l.cfg.Warehouse.Backend == "postgres" {
					wh = PostgresTableName(wh)
					how += "; in a PostgreSQL warehouse names longer than 63 bytes are cut and end with a hash"
				}
				if prev, dup := seenWarehouse[wh]; dup {
					if prev != t.Address(s) {
						l.e.diags = append(l.e.diags, errorAt(t.DeclRange, "Warehouse table name collision",
							"%s and %s both land in warehouse table %q (%s). Change a prefix, or sync only one of them.", prev, t.Address(s), wh, how))
					}
					break
				}
				seenWarehouse[wh] = t.Address(s)
			}
		}
	}
}

// checkQueryTable checks a custom SQL table (a table block with query):
// its label is its warehouse name, and it is read by a query, so neither
// cdc nor xmin (which read a table's WAL or system columns) apply.
func (l *loader) checkQueryTable(s *Source, t *Table, a *attrs) {
	if strings.TrimSpace(t.Query) == "" && !a.isUnknown("query") {
		a.errorf("query", "Empty query", "query must be a SELECT, such as query = \"SELECT id, total FROM orders WHERE status = 'paid'\".")
	}
	if s.Type != "postgres" {
		a.errorf("query", "Custom SQL not available", "query reads SQL from a PostgreSQL source; %s sources have no SQL.", s.Type)
	}
	if t.Schema != "" {
		l.e.diags = append(l.e.diags, errorAt(t.DeclRange, "Invalid custom SQL table name",
			"The label of a table with query is its warehouse name (<prefix>_<label>), not a source table: write it without a schema, such as table %q.", t.Table))
	}
	if a.has("historical_load") && !t.HistoricalLoad {
		a.errorf("historical_load", "historical_load not available for a query",
			"A table with query has no history of its own to skip: its cursor reads the query's rows past the last value synced. Remove historical_load.")
	}
	switch t.Sync {
	case SyncCDC, SyncXmin, SyncWebhook:
		a.errorf("sync", "Sync type not available for a query",
			"sync = %q reads a table's changes; a table with query is read by running the query: use full_refresh, or incremental or append with an incremental_field of the query's result.", t.Sync)
	case SyncIncremental:
		if len(t.PrimaryKey) == 0 && !a.isUnknown("primary_key") {
			a.errorf("sync", "Missing primary_key",
				"An incremental table merges changed rows by key, and a query has no primary key of its own: set primary_key to columns of the query's result, such as primary_key = [\"id\"].")
		}
	}
}
