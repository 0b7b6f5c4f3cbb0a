package postgres

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
)

// Check verifies the CDC prerequisites of the source (`sluice check`): the
// server, its replication settings, the user's privileges, the cdc tables
// and the publication. A failed check has a Fix saying what to run or set;
// checks with Warning set do not block CDC. It sends a fixed set of
// queries in one round trip, whatever the number of tables.
func (p *Provider) Check(ctx context.Context) ([]providers.Check, error) {
	var checks []providers.Check
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		var err error
		checks, err = runChecks(ctx, conn, p.src)
		return err
	})
	// The role's name (in a GRANT) may derive from a sensitive value.
	for i := range checks {
		checks[i].Message = p.dialer.Redact(checks[i].Message)
		checks[i].Fix = p.dialer.Redact(checks[i].Fix)
	}
	return checks, p.classified(err)
}

// ChecksValid reports whether every check that is not a warning passed
// (providers.ChecksValid).
func ChecksValid(checks []providers.Check) bool { return providers.ChecksValid(checks) }

// Check names, stable for scripts reading `check -json`.
const (
	CheckServerVersion     = "server_version"
	CheckWALLevel          = "wal_level"
	CheckReplicationSlots  = "replication_slots"
	CheckWALSenders        = "wal_senders"
	CheckReplication       = "replication_privilege"
	CheckTablesExist       = "cdc_tables_exist"
	CheckTableAccess       = "cdc_tables_readable"
	CheckPrimaryKeys       = "cdc_primary_keys"
	CheckCreatePublication = "publication_privilege"
	CheckTableOwnership    = "table_ownership"
	CheckPublication       = "publication"
	CheckSlotWALKeepSize   = "max_slot_wal_keep_size"
	CheckWALSenderTimeout  = "wal_sender_timeout"
	CheckReplicaIdentity   = "replica_identity"
)

// minServerVersion is the oldest PostgreSQL sluice replicates from: 13
// brought wal_status and max_slot_wal_keep_size, which lag protection
// relies on.
const minServerVersion = 130000

// minWALSenderTimeout is the smallest wal_sender_timeout that does not
// risk the server dropping the stream while sluice is busy: sluice answers
// keepalives between batches, and committing a batch to the warehouse can
// take tens of seconds. 0 disables the timeout, which is fine.
const minWALSenderTimeout = 30 * time.Second

var checkSettings = []string{
	"server_version", "server_version_num", "wal_level", "max_replication_slots", "max_wal_senders",
	"max_slot_wal_keep_size", "wal_sender_timeout",
}

const checkSettingsSQL = `SELECT name::text, setting, coalesce(unit, '') FROM pg_catalog.pg_settings WHERE name = ANY($1)`

// Membership in rds_replication (or rds_superuser) is how Amazon RDS and
// Aurora grant replication; the REPLICATION attribute cannot be set there.
const checkRoleSQL = `SELECT current_user::text, current_database()::text, r.rolsuper, r.rolreplication,
	EXISTS (SELECT 1 FROM pg_catalog.pg_roles g
	        WHERE g.rolname IN ('rds_replication', 'rds_superuser') AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER')),
	pg_catalog.has_database_privilege(current_database(), 'CREATE')
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`

const checkSlotsSQL = `SELECT
	(SELECT count(*) FROM pg_catalog.pg_replication_slots),
	EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1),
	coalesce((SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), false),
	(SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walsender')`

const checkPublicationSQL = `SELECT pg_catalog.pg_get_userbyid(p.pubowner)::text, pg_catalog.pg_has_role(p.pubowner, 'USAGE'),
	p.puballtables, p.pubviaroot, p.pubinsert, p.pubupdate, p.pubdelete
FROM pg_catalog.pg_publication p WHERE p.pubname = $1`

// checkTablesSQL looks up the cdc tables, given as parallel arrays of
// schema ("" for any non-system schema) and name, one row per match (none
// when missing, several when an unqualified name is ambiguous). A table is
// published when the publication names it, one of its partition
// ancestors, or (PostgreSQL 15) its schema, or is FOR ALL TABLES.
func checkTablesSQL(major int) string {
	inSchema := ""
	if major >= 15 {
		inSchema = `
			OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace pn
			           WHERE pn.pnpubid = p.oid AND pn.pnnspid = c.relnamespace)`
	}
	return `SELECT w.ord, n.nspname::text, c.relname::text, c.relkind::text,
	pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE'),
	pg_catalog.has_table_privilege(c.oid, 'SELECT'),
	EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con WHERE con.conrelid = c.oid AND con.contype = 'p'),
	c.relreplident::text,
	pg_catalog.pg_has_role(c.relowner, 'USAGE'),
	pg_catalog.pg_get_userbyid(c.relowner)::text,
	EXISTS (SELECT 1 FROM pg_catalog.pg_publication p
	        WHERE p.pubname = $3 AND (p.puballtables
	           OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr
	                      WHERE pr.prpubid = p.oid
	                        AND (pr.prrelid = c.oid
	                             OR pr.prrelid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors(c.oid) a)))` + inSchema + `))
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(schema, name, ord)
JOIN pg_catalog.pg_class c ON c.relname = w.name AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	AND (n.nspname = w.schema
	     OR (w.schema = '' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'))
ORDER BY w.ord, n.nspname`
}

// setting is one pg_settings row.
type setting struct{ value, unit string }

// cdcTable is one cdc table of the configuration and what the catalog says
// of it.
type cdcTable struct {
	cfg     *config.Table
	schema  string // as looked up, "" for any schema
	matches []tableFacts
}

type tableFacts struct {
	schema, name, relkind, replident, owner    string
	usage, canSelect, hasKey, owned, published bool
}

func (f *tableFacts) ident() string { return pgx.Identifier{f.schema, f.name}.Sanitize() }

// checkFacts is everything runChecks reads.
type checkFacts struct {
	settings map[string]setting

	user, database                     string
	super, replication, rdsReplication bool
	createOnDB                         bool

	slotsUsed, walSenders  int
	ownSlot, ownSlotActive bool

	pubExists, pubOwned             bool
	pubOwner                        string
	pubAll, pubViaRoot              bool
	pubInsert, pubUpdate, pubDelete bool

	tables []*cdcTable
}

// runChecks reads the facts in one batch and judges them.
func runChecks(ctx context.Context, conn *pgx.Conn, src *config.Source) ([]providers.Check, error) {
	pg := src.Postgres
	f := &checkFacts{settings: map[string]setting{}}
	var schemas, names []string
	for _, t := range src.Tables {
		if t.Sync != config.SyncCDC || !t.Enabled {
			continue
		}
		ct := &cdcTable{cfg: t, schema: t.Schema}
		if ct.schema == "" {
			ct.schema = pg.Schema
		}
		f.tables = append(f.tables, ct)
		schemas, names = append(schemas, ct.schema), append(names, t.Table)
	}

	b := &pgx.Batch{}
	b.Queue(checkSettingsSQL, checkSettings).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name string
			var s setting
			if err := rows.Scan(&name, &s.value, &s.unit); err != nil {
				return fmt.Errorf("reading the server settings: %w", err)
			}
			f.settings[name] = s
		}
		return rows.Err()
	})
	b.Queue(checkRoleSQL).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&f.user, &f.database, &f.super, &f.replication, &f.rdsReplication, &f.createOnDB); err != nil {
				return fmt.Errorf("reading the user's privileges: %w", err)
			}
		}
		return rows.Err()
	})
	b.Queue(checkSlotsSQL, pg.CDC.Slot).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&f.slotsUsed, &f.ownSlot, &f.ownSlotActive, &f.walSenders); err != nil {
			return fmt.Errorf("reading the replication slots: %w", err)
		}
		return nil
	})
	b.Queue(checkPublicationSQL, pg.CDC.Publication).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			f.pubExists = true
			if err := rows.Scan(&f.pubOwner, &f.pubOwned, &f.pubAll, &f.pubViaRoot, &f.pubInsert, &f.pubUpdate, &f.pubDelete); err != nil {
				return fmt.Errorf("reading publication %q: %w", pg.CDC.Publication, err)
			}
		}
		return rows.Err()
	})
	b.Queue(checkTablesSQL(serverMajor(conn)), schemas, names, pg.CDC.Publication).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var ord int
			var m tableFacts
			if err := rows.Scan(&ord, &m.schema, &m.name, &m.relkind, &m.usage, &m.canSelect, &m.hasKey,
				&m.replident, &m.owned, &m.owner, &m.published); err != nil {
				return fmt.Errorf("reading the cdc tables: %w", err)
			}
			if ord >= 1 && ord <= len(f.tables) {
				f.tables[ord-1].matches = append(f.tables[ord-1].matches, m)
			}
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("check %s: reading the server's settings and catalog: %w", src.Address(), err)
	}
	return f.judge(src), nil
}

// judge turns the facts into checks, in the order a person fixes them:
// server, settings, privileges, tables, publication, warnings.
func (f *checkFacts) judge(src *config.Source) []providers.Check {
	cdc := src.Postgres.CDC
	role := pgx.Identifier{f.user}.Sanitize()
	var out []providers.Check
	add := func(c providers.Check) { out = append(out, c) }

	version, _ := strconv.Atoi(f.settings["server_version_num"].value)
	add(providers.Check{
		Check: CheckServerVersion, OK: version >= minServerVersion,
		Message: "PostgreSQL " + f.settings["server_version"].value,
		Fix:     "sluice needs PostgreSQL 13 or later for CDC; upgrade the server, or sync its tables with full_refresh, incremental or xmin",
	})

	walLevel := f.settings["wal_level"].value
	add(providers.Check{
		Check: CheckWALLevel, OK: walLevel == "logical",
		Message: "wal_level is " + walLevel,
		Fix: "set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical;) and restart PostgreSQL; " +
			"on Amazon RDS and Aurora set rds.logical_replication = 1 in the DB parameter group and reboot; " +
			"on Google Cloud SQL set the flag cloudsql.logical_decoding = on (the instance restarts)",
	})

	maxSlots, _ := strconv.Atoi(f.settings["max_replication_slots"].value)
	freeSlots := maxSlots - f.slotsUsed
	slotMsg := fmt.Sprintf("%d of %d replication slots free", max(freeSlots, 0), maxSlots)
	if f.ownSlot {
		// The source's own slot is already counted among the used ones.
		freeSlots++
		slotMsg = fmt.Sprintf("slot %s exists (%d of %d slots in use)", cdc.Slot, f.slotsUsed, maxSlots)
	}
	add(providers.Check{
		Check: CheckReplicationSlots, OK: freeSlots >= 1, Message: slotMsg,
		Fix: "raise max_replication_slots in postgresql.conf and restart PostgreSQL, or drop a slot nothing uses " +
			"(SELECT slot_name, active FROM pg_replication_slots; then SELECT pg_drop_replication_slot('name');)",
	})

	maxSenders, _ := strconv.Atoi(f.settings["max_wal_senders"].value)
	freeSenders := maxSenders - f.walSenders
	if f.ownSlotActive {
		// The sender streaming the source's own slot is sluice's.
		freeSenders++
	}
	add(providers.Check{
		Check: CheckWALSenders, OK: freeSenders >= 1,
		Message: fmt.Sprintf("%d of %d WAL senders free", max(maxSenders-f.walSenders, 0), maxSenders),
		Fix:     "raise max_wal_senders in postgresql.conf and restart PostgreSQL",
	})

	var how string
	switch {
	case f.super:
		how = "is a superuser"
	case f.replication:
		how = "has the REPLICATION attribute"
	case f.rdsReplication:
		how = "is a member of rds_replication"
	}
	c := providers.Check{Check: CheckReplication, OK: how != ""}
	if c.OK {
		c.Message = fmt.Sprintf("user %s %s", f.user, how)
	} else {
		c.Message = fmt.Sprintf("user %s may not replicate", f.user)
		c.Fix = fmt.Sprintf("as a superuser: ALTER ROLE %s WITH REPLICATION; on Amazon RDS and Aurora: GRANT rds_replication TO %s;", role, role)
	}
	add(c)

	out = append(out, f.tableChecks(role)...)
	if cdc.Management == "self_managed" {
		add(f.publicationCheck(cdc.Publication))
	} else {
		out = append(out, f.managedChecks(cdc.Publication, role)...)
	}
	out = append(out, f.warnings(cdc.LagCritical)...)
	return out
}

// found returns the cdc tables found exactly once and that are tables, the
// others being reported by tableChecks.
func (f *checkFacts) found() []*tableFacts {
	var out []*tableFacts
	for _, t := range f.tables {
		if len(t.matches) == 1 && (t.matches[0].relkind == "r" || t.matches[0].relkind == "p") {
			out = append(out, &t.matches[0])
		}
	}
	return out
}

func (f *checkFacts) tableChecks(role string) []providers.Check {
	if len(f.tables) == 0 {
		return []providers.Check{{Check: CheckTablesExist, OK: true, Message: "no enabled table has sync = \"cdc\""}}
	}
	var missing, ambiguous, notTables []string
	for _, t := range f.tables {
		switch {
		case len(t.matches) == 0:
			missing = append(missing, t.cfg.Name)
		case len(t.matches) > 1:
			var in []string
			for _, m := range t.matches {
				in = append(in, pgx.Identifier{m.schema}.Sanitize())
			}
			ambiguous = append(ambiguous, fmt.Sprintf("%s (in schemas %s)", t.cfg.Name, strings.Join(in, ", ")))
		case t.matches[0].relkind != "r" && t.matches[0].relkind != "p":
			notTables = append(notTables, t.matches[0].ident())
		}
	}
	exist := providers.Check{Check: CheckTablesExist, OK: len(missing)+len(ambiguous)+len(notTables) == 0}
	if exist.OK {
		exist.Message = fmt.Sprintf("all %d cdc tables exist", len(f.tables))
	} else {
		var msg, fix []string
		if len(missing) > 0 {
			msg = append(msg, "not found: "+strings.Join(missing, ", "))
			fix = append(fix, "create the missing tables or correct their names (`sluice inspect` lists the live ones)")
		}
		if len(ambiguous) > 0 {
			msg = append(msg, "ambiguous: "+strings.Join(ambiguous, "; "))
			fix = append(fix, "qualify the ambiguous names with their schema, as in table \"sales.orders\"")
		}
		if len(notTables) > 0 {
			msg = append(msg, "not tables: "+strings.Join(notTables, ", "))
			fix = append(fix, "views and foreign tables have no WAL of their own: sync them with full_refresh")
		}
		exist.Message, exist.Fix = strings.Join(msg, "; "), strings.Join(fix, "; ")
	}
	out := []providers.Check{exist}

	found := f.found()
	access := providers.Check{Check: CheckTableAccess, OK: true}
	var unreadable, grants []string
	schemaGranted := map[string]bool{}
	for _, m := range found {
		if m.usage && m.canSelect {
			continue
		}
		unreadable = append(unreadable, m.ident())
		if !m.usage && !schemaGranted[m.schema] {
			schemaGranted[m.schema] = true
			grants = append(grants, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", pgx.Identifier{m.schema}.Sanitize(), role))
		}
		if !m.canSelect {
			grants = append(grants, fmt.Sprintf("GRANT SELECT ON %s TO %s;", m.ident(), role))
		}
	}
	if len(unreadable) == 0 {
		access.Message = fmt.Sprintf("the user can read all %d cdc tables found", len(found))
	} else {
		access.OK = false
		access.Message = "the user cannot read " + strings.Join(unreadable, ", ")
		access.Fix = strings.Join(grants, "\n")
	}
	out = append(out, access)

	keys := providers.Check{Check: CheckPrimaryKeys, OK: true}
	var keyless []string
	for _, m := range found {
		if !m.hasKey {
			keyless = append(keyless, m.ident())
		}
	}
	if len(keyless) == 0 {
		keys.Message = "every cdc table has a primary key"
	} else {
		keys.OK = false
		keys.Message = "no primary key: " + strings.Join(keyless, ", ")
		keys.Fix = "cdc merges changes by primary key: add one (ALTER TABLE ... ADD PRIMARY KEY (...);), or sync these tables with full_refresh, incremental or append"
	}
	return append(out, keys)
}

// managedChecks: sluice creates the publication, which takes CREATE on the
// database, and adds the tables to it, which takes owning them.
func (f *checkFacts) managedChecks(pub, role string) []providers.Check {
	pubIdent := pgx.Identifier{pub}.Sanitize()
	create := providers.Check{Check: CheckCreatePublication}
	switch {
	case f.pubExists && (f.pubOwned || f.super):
		create.OK, create.Message = true, fmt.Sprintf("publication %s exists and the user owns it", pub)
	case f.pubExists:
		create.Message = fmt.Sprintf("publication %s exists but belongs to %s, so sluice cannot change it", pub, f.pubOwner)
		create.Fix = fmt.Sprintf("ALTER PUBLICATION %s OWNER TO %s; or set management = \"self_managed\" in the cdc block", pubIdent, role)
	case f.super || f.createOnDB:
		create.OK, create.Message = true, "the user may create the publication"
	default:
		create.Message = fmt.Sprintf("the user may not create publications in database %s", f.database)
		create.Fix = fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s; or create the publication yourself and set management = \"self_managed\" in the cdc block",
			pgx.Identifier{f.database}.Sanitize(), role)
	}

	owner := providers.Check{Check: CheckTableOwnership, OK: true}
	var notOwned, fixes []string
	for _, m := range f.found() {
		if m.owned || f.super {
			continue
		}
		notOwned = append(notOwned, fmt.Sprintf("%s (owner %s)", m.ident(), m.owner))
		fixes = append(fixes, fmt.Sprintf("ALTER TABLE %s OWNER TO %s;", m.ident(), role))
	}
	if len(notOwned) == 0 {
		owner.Message = "the user owns every cdc table, as adding a table to a publication requires"
	} else {
		owner.OK = false
		owner.Message = "adding a table to a publication requires owning it; the user does not own " + strings.Join(notOwned, ", ")
		owner.Fix = strings.Join(fixes, "\n") + "\nor have the owner create the publication and set management = \"self_managed\" in the cdc block"
	}
	return []providers.Check{create, owner}
}

// publicationCheck: a self-managed publication must exist, hold every cdc
// table, publish inserts, updates and deletes, and publish partitioned
// tables under their own name.
func (f *checkFacts) publicationCheck(pub string) providers.Check {
	c := providers.Check{Check: CheckPublication}
	pubIdent := pgx.Identifier{pub}.Sanitize()
	var idents []string
	partitioned := false
	var missing []string
	for _, m := range f.found() {
		idents = append(idents, m.ident())
		partitioned = partitioned || m.relkind == "p"
		if !m.published {
			missing = append(missing, m.ident())
		}
	}
	if !f.pubExists {
		c.Message = fmt.Sprintf("publication %s does not exist", pub)
		if len(idents) == 0 {
			c.Fix = fmt.Sprintf("CREATE PUBLICATION %s WITH (publish_via_partition_root = true);", pubIdent)
		} else {
			c.Fix = fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true);", pubIdent, strings.Join(idents, ", "))
		}
		return c
	}
	var problems, fixes []string
	if len(missing) > 0 {
		problems = append(problems, "it lacks "+strings.Join(missing, ", "))
		fixes = append(fixes, fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s;", pubIdent, strings.Join(missing, ", ")))
	}
	var unpublished []string
	for op, on := range map[string]bool{"insert": f.pubInsert, "update": f.pubUpdate, "delete": f.pubDelete} {
		if !on {
			unpublished = append(unpublished, op)
		}
	}
	if len(unpublished) > 0 {
		sort.Strings(unpublished)
		problems = append(problems, "it does not publish "+strings.Join(unpublished, ", "))
		fixes = append(fixes, fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate');", pubIdent))
	}
	if partitioned && !f.pubViaRoot {
		problems = append(problems, "it publishes partitioned tables' changes under their partitions' names")
		fixes = append(fixes, fmt.Sprintf("ALTER PUBLICATION %s SET (publish_via_partition_root = true);", pubIdent))
	}
	if len(problems) == 0 {
		c.OK = true
		c.Message = fmt.Sprintf("publication %s holds every cdc table", pub)
		return c
	}
	c.Message = fmt.Sprintf("publication %s: %s", pub, strings.Join(problems, "; "))
	c.Fix = strings.Join(fixes, "\n")
	return c
}

// warnings are checks that do not block CDC.
func (f *checkFacts) warnings(lagCritical int64) []providers.Check {
	var out []providers.Check
	if s, ok := f.settings["max_slot_wal_keep_size"]; ok {
		c := providers.Check{Check: CheckSlotWALKeepSize, Warning: true, OK: true}
		keep, err := settingBytes(s)
		switch {
		case err != nil:
			c.Message = fmt.Sprintf("max_slot_wal_keep_size is %s%s", s.value, s.unit)
		case keep < 0:
			c.Message = "max_slot_wal_keep_size is unlimited: a stalled slot keeps WAL until sluice reacts at lag_critical (" + config.FormatSize(lagCritical) + ")"
		case keep < lagCritical:
			c.OK = false
			c.Message = fmt.Sprintf("max_slot_wal_keep_size (%s) is below lag_critical (%s): PostgreSQL would invalidate the slot before sluice reacts, forcing a full resync",
				config.FormatSize(keep), config.FormatSize(lagCritical))
			c.Fix = fmt.Sprintf("raise it: ALTER SYSTEM SET max_slot_wal_keep_size = '%dMB'; SELECT pg_reload_conf(); or lower lag_critical in the cdc block below %s",
				(lagCritical+(1<<20)-1)>>20, config.FormatSize(keep))
		default:
			c.Message = fmt.Sprintf("max_slot_wal_keep_size (%s) is above lag_critical (%s)", config.FormatSize(keep), config.FormatSize(lagCritical))
		}
		out = append(out, c)
	}
	if s, ok := f.settings["wal_sender_timeout"]; ok {
		c := providers.Check{Check: CheckWALSenderTimeout, Warning: true, OK: true}
		d, err := settingDuration(s)
		switch {
		case err != nil:
			c.Message = fmt.Sprintf("wal_sender_timeout is %s%s", s.value, s.unit)
		case d == 0:
			c.Message = "wal_sender_timeout is disabled"
		case d < minWALSenderTimeout:
			c.OK = false
			c.Message = fmt.Sprintf("wal_sender_timeout is %s: the server may drop the stream while sluice commits a large batch", d)
			c.Fix = "ALTER SYSTEM SET wal_sender_timeout = '60s'; SELECT pg_reload_conf();"
		default:
			c.Message = fmt.Sprintf("wal_sender_timeout is %s", d)
		}
		out = append(out, c)
	}
	ri := providers.Check{Check: CheckReplicaIdentity, Warning: true, OK: true, Message: "no cdc table has REPLICA IDENTITY NOTHING"}
	var nothing, fixes []string
	for _, m := range f.found() {
		if m.replident == "n" {
			nothing = append(nothing, m.ident())
			fixes = append(fixes, fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY DEFAULT;", m.ident()))
		}
	}
	if len(nothing) > 0 {
		ri.OK = false
		ri.Message = "REPLICA IDENTITY NOTHING on " + strings.Join(nothing, ", ") + ": once published, UPDATE and DELETE on them fail"
		ri.Fix = strings.Join(fixes, "\n")
	}
	return append(out, ri)
}

// settingBytes converts a memory setting of pg_settings to bytes; -1 stays
// -1 (unlimited).
func settingBytes(s setting) (int64, error) {
	n, err := strconv.ParseInt(s.value, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return -1, nil
	}
	mult := map[string]int64{"": 1, "B": 1, "kB": 1 << 10, "8kB": 8 << 10, "16kB": 16 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	m, ok := mult[s.unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", s.unit)
	}
	return n * m, nil
}

// settingDuration converts a time setting of pg_settings.
func settingDuration(s setting) (time.Duration, error) {
	n, err := strconv.ParseInt(s.value, 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	m, ok := mult[s.unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", s.unit)
	}
	return time.Duration(n) * m, nil
}
