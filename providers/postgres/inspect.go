package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/providers"
)

// Inspect introspects the source: its tables, partitioned tables, views and
// materialized views (of the configured schema and of every schema a table
// block names, or of every non-system schema when the schema is ""), what
// each can sync, the publication and the replication slot, and, when the
// configuration has enabled cdc tables, the CDC prerequisites. It sends a
// fixed set of catalog queries in one round trip, whatever the number of
// tables and schemas (DESIGN invariant 3).
func (p *Provider) Inspect(ctx context.Context) (*providers.Observed, error) {
	return p.inspectSchemas(ctx, inspectedSchemas(p.src))
}

// InspectAllSchemas is Inspect over every non-system schema
// (`sluice inspect -all-schemas`).
func (p *Provider) InspectAllSchemas(ctx context.Context) (*providers.Observed, error) {
	return p.inspectSchemas(ctx, nil)
}

func (p *Provider) inspectSchemas(ctx context.Context, schemas []string) (*providers.Observed, error) {
	var obs *providers.Observed
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		var err error
		if obs, err = inspect(ctx, conn, p.src, schemas); err != nil {
			return err
		}
		if hasCDCTables(p.src) {
			if obs.Checks, err = runChecks(ctx, conn, p.src); err != nil {
				return err
			}
		}
		return nil
	})
	return obs, err
}

// inspectedSchemas lists the schemas Inspect reads: the source's and those
// its table blocks name ("sales.regions"), sorted; nil (every schema) when
// the source names none.
func inspectedSchemas(src *config.Source) []string {
	if src.Postgres == nil || src.Postgres.Schema == "" {
		return nil
	}
	schemas := []string{src.Postgres.Schema}
	for _, t := range src.Tables {
		if t.Schema != "" && !slices.Contains(schemas, t.Schema) {
			schemas = append(schemas, t.Schema)
		}
	}
	for _, p := range src.Patterns {
		if strings.ContainsAny(p.Schema, "*?[") {
			// A glob over schemas: every schema, in the same one query.
			return nil
		}
		if p.Schema != "" && !slices.Contains(schemas, p.Schema) {
			schemas = append(schemas, p.Schema)
		}
	}
	sort.Strings(schemas)
	return schemas
}

func hasCDCTables(src *config.Source) bool {
	for _, t := range src.Tables {
		if t.Sync == config.SyncCDC && t.Enabled {
			return true
		}
	}
	for _, p := range src.Patterns {
		if p.Template.Sync == config.SyncCDC && p.Template.Enabled {
			return true
		}
	}
	return false
}

// relation is a table or view as read from the catalog.
type relation struct {
	oid     uint32
	relkind byte
	table   providers.Table
	columns []*column

	rls, canSelect, schemaUsage bool
	// populated is false for a materialized view created WITH NO DATA and
	// never refreshed: reading it fails.
	populated bool
	replident byte
	// leadingIndex holds the attnums that lead a usable index.
	leadingIndex map[int16]bool
	// mergeable reports a key to merge on, live or declared.
	mergeable bool
}

type column struct {
	attnum   int16
	name     string
	format   string
	nullable bool
	typ      *codec.PGType
	// canSelect reports a SELECT privilege on the column (or the table).
	canSelect bool
}

// Relation kinds (pg_class.relkind) inspect lists.
const (
	relkindTable       = 'r'
	relkindPartitioned = 'p'
	relkindView        = 'v'
	relkindMatView     = 'm'
)

var relkindNames = map[byte]string{
	relkindTable:       providers.KindTable,
	relkindPartitioned: providers.KindPartitionedTable,
	relkindView:        providers.KindView,
	relkindMatView:     providers.KindMaterializedView,
}

// relsCTE selects the relations inspect lists, with $1 the schemas (NULL
// for every non-system schema). Partitions are left out: they are read through
// their parent. Schemas starting with pg_ are reserved to the system
// (pg_catalog, pg_toast, other sessions' pg_temp_N).
const relsCTE = `rels AS (
	SELECT c.oid, c.relname, c.relkind, c.relnamespace, c.reltuples, c.relreplident, c.relispopulated, n.nspname
	FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p', 'v', 'm')
	  AND NOT c.relispartition
	  AND CASE WHEN $1::text[] IS NULL THEN n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
	           ELSE n.nspname = ANY ($1::text[]) END
)`

// Estimated rows: never analyzed is reltuples -1 from PostgreSQL 14
// (PostgreSQL 13 says 0, so such tables show 0 rows there); a
// partitioned table holds no rows itself, so its estimate is the sum over
// its leaf partitions, unknown only when none of them was analyzed.
const relationsSQL = `WITH ` + relsCTE + `
SELECT r.oid, r.nspname, r.relname, r.relkind::text,
	CASE
		WHEN r.relkind = 'v' THEN NULL
		WHEN r.relkind = 'p' THEN (
			SELECT CASE WHEN count(*) = 0 THEN 0::float8
			            WHEN bool_and(l.reltuples < 0) THEN NULL
			            ELSE sum(greatest(l.reltuples, 0))::float8 END
			FROM pg_catalog.pg_partition_tree(r.oid) pt
			JOIN pg_catalog.pg_class l ON l.oid = pt.relid
			WHERE pt.isleaf)
		WHEN r.reltuples < 0 THEN NULL
		ELSE r.reltuples::float8
	END,
	pg_catalog.row_security_active(r.oid),
	pg_catalog.has_table_privilege(r.oid, 'SELECT'),
	pg_catalog.has_schema_privilege(r.relnamespace, 'USAGE'),
	r.relispopulated,
	r.relreplident::text,
	ARRAY(
		SELECT a.attname::text
		FROM pg_catalog.pg_constraint con
		CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
		WHERE con.conrelid = r.oid AND con.contype = 'p'
		ORDER BY k.ord)
FROM rels r`

const columnsSQL = `WITH ` + relsCTE + `
SELECT a.attrelid, a.attnum, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
	NOT a.attnotnull, a.atttypid, a.atttypmod, a.attndims,
	pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT')
FROM rels r
JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
WHERE a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

// An index helps a cursor read when it leads on the cursor column; partial
// indexes do not serve every read, and invalid ones (a failed CREATE INDEX
// CONCURRENTLY, a partitioned index missing on some partition) none. An
// expression index has 0 in indkey.
const indexesSQL = `WITH ` + relsCTE + `
SELECT DISTINCT i.indrelid, i.indkey[0]
FROM rels r
JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
WHERE i.indisvalid AND i.indpred IS NULL AND i.indkey[0] <> 0`

var typesSQL = codec.TypeClosureSQL(relsCTE + `,
seed(oid) AS (
	SELECT DISTINCT a.atttypid
	FROM rels r
	JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
	WHERE a.attnum > 0 AND NOT a.attisdropped
)`)

// serverSQL reads the version, the user, and the WAL position, which a
// standby does not have.
const serverSQL = `SELECT current_setting('server_version_num')::int, current_user::text,
	CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn()::text END`

// publicationSQL reads a publication and the tables it names: those added
// with FOR TABLE and, from PostgreSQL 15, those of the schemas added with
// FOR TABLES IN SCHEMA, as [schema, table] pairs.
func publicationSQL(major int) string {
	inSchema := ""
	if major >= 15 {
		inSchema = `
		UNION
		SELECT c.oid
		FROM pg_catalog.pg_publication_namespace pn
		JOIN pg_catalog.pg_class c ON c.relnamespace = pn.pnnspid AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		WHERE pn.pnpubid = p.oid`
	}
	return `SELECT p.pubname::text, p.puballtables, p.pubviaroot, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate,
	pg_catalog.pg_get_userbyid(p.pubowner)::text,
	(SELECT coalesce(json_agg(json_build_array(n.nspname, c.relname)), '[]')
	 FROM pg_catalog.pg_class c
	 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.oid IN (
		SELECT pr.prrelid FROM pg_catalog.pg_publication_rel pr WHERE pr.prpubid = p.oid` + inSchema + `))
FROM pg_catalog.pg_publication p
WHERE p.pubname = $1`
}

// slotSQL reads a replication slot. Physical slots have no plugin,
// database or confirmed position.
const slotSQL = `SELECT s.slot_name::text, coalesce(s.plugin::text, ''), coalesce(s.database::text, ''), s.active,
	coalesce(s.wal_status, ''), coalesce(s.confirmed_flush_lsn::text, ''), coalesce(s.restart_lsn::text, ''),
	CASE WHEN pg_catalog.pg_is_in_recovery() OR s.confirmed_flush_lsn IS NULL THEN 0
	     ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::int8 END
FROM pg_catalog.pg_replication_slots s
WHERE s.slot_name = $1`

// serverMajor reads the major version the server announced at startup, so
// that the queries can be chosen before the first one is sent.
func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// inspect reads the catalog in one batch of queries.
func inspect(ctx context.Context, conn *pgx.Conn, src *config.Source, schemas []string) (*providers.Observed, error) {
	obs := &providers.Observed{Source: src.Address(), Tables: []providers.Table{}}
	var user string
	byOID := map[uint32]*relation{}
	var rels []*relation
	types := codec.TypeCatalog{}

	b := &pgx.Batch{}
	b.Queue(serverSQL).QueryRow(func(row pgx.Row) error {
		var lsn *string
		if err := row.Scan(&obs.ServerVersion, &user, &lsn); err != nil {
			return fmt.Errorf("reading the server version: %w", err)
		}
		if lsn != nil {
			obs.WALPosition = *lsn
		}
		return nil
	})
	b.Queue(relationsSQL, schemas).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			r := &relation{leadingIndex: map[int16]bool{}}
			var kind, replident string
			var est *float64
			if err := rows.Scan(&r.oid, &r.table.Schema, &r.table.Name, &kind, &est,
				&r.rls, &r.canSelect, &r.schemaUsage, &r.populated, &replident, &r.table.PrimaryKey); err != nil {
				return fmt.Errorf("reading the tables: %w", err)
			}
			r.relkind, r.replident = kind[0], replident[0]
			r.table.Kind = relkindNames[r.relkind]
			if est != nil {
				n := int64(math.Round(*est))
				r.table.EstimatedRows = &n
			}
			rels = append(rels, r)
			byOID[r.oid] = r
		}
		return rows.Err()
	})
	b.Queue(columnsSQL, schemas).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var relid, typid uint32
			var typmod int32
			var dims int
			c := &column{}
			if err := rows.Scan(&relid, &c.attnum, &c.name, &c.format, &c.nullable,
				&typid, &typmod, &dims, &c.canSelect); err != nil {
				return fmt.Errorf("reading the columns: %w", err)
			}
			// The type is resolved once the types query has been read.
			c.typ = &codec.PGType{OID: typid, Typmod: typmod, Dims: dims}
			if r := byOID[relid]; r != nil {
				r.columns = append(r.columns, c)
			}
		}
		return rows.Err()
	})
	b.Queue(indexesSQL, schemas).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var relid uint32
			var attnum int16
			if err := rows.Scan(&relid, &attnum); err != nil {
				return fmt.Errorf("reading the indexes: %w", err)
			}
			if r := byOID[relid]; r != nil {
				r.leadingIndex[attnum] = true
			}
		}
		return rows.Err()
	})
	b.Queue(typesSQL, schemas).Query(func(rows pgx.Rows) error {
		if err := types.Scan(rows); err != nil {
			return fmt.Errorf("reading the column types: %w", err)
		}
		return nil
	})
	b.Queue(publicationSQL(serverMajor(conn)), src.Postgres.CDC.Publication).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			p := &providers.Publication{Tables: []string{}}
			var tables [][2]string
			if err := rows.Scan(&p.Name, &p.AllTables, &p.PublishViaPartitionRoot, &p.PublishInsert,
				&p.PublishUpdate, &p.PublishDelete, &p.PublishTruncate, &p.Owner, &tables); err != nil {
				return fmt.Errorf("reading publication %q: %w", src.Postgres.CDC.Publication, err)
			}
			// As recorded in state, so that the planner compares like with
			// like.
			for _, t := range tables {
				p.Tables = append(p.Tables, config.QualifiedName(t[0], t[1]))
			}
			sort.Strings(p.Tables)
			obs.Publication = p
		}
		return rows.Err()
	})
	b.Queue(slotSQL, src.Postgres.CDC.Slot).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			s := &providers.Slot{}
			if err := rows.Scan(&s.Name, &s.Plugin, &s.Database, &s.Active, &s.WALStatus,
				&s.ConfirmedFlushLSN, &s.RestartLSN, &s.LagBytes); err != nil {
				return fmt.Errorf("reading replication slot %q: %w", src.Postgres.CDC.Slot, err)
			}
			obs.Slot = s
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("inspect %s: reading the catalog: %w", src.Address(), err)
	}

	declared := declaredKeys(src)
	for _, r := range rels {
		for _, c := range r.columns {
			c.typ = types.Resolve(c.typ.OID, c.typ.Typmod, c.typ.Dims)
		}
		r.describe(user, declared[[2]string{r.table.Schema, r.table.Name}])
	}
	sort.Slice(rels, func(i, j int) bool {
		a, b := rels[i].table, rels[j].table
		if a.Schema != b.Schema {
			return a.Schema < b.Schema
		}
		return a.Name < b.Name
	})
	for _, r := range rels {
		obs.Tables = append(obs.Tables, r.table)
	}
	return obs, nil
}

// declaredKeys lists the relations whose table block declares a
// primary_key, by [schema, name]: incremental and xmin syncs can merge on
// it even where the relation has no key of its own.
func declaredKeys(src *config.Source) map[[2]string]bool {
	out := map[[2]string]bool{}
	schema := defaultSchema
	if src.Postgres != nil && src.Postgres.Schema != "" {
		schema = src.Postgres.Schema
	}
	for _, t := range src.Tables {
		if len(t.PrimaryKey) == 0 {
			continue
		}
		s := t.Schema
		if s == "" {
			s = schema
		}
		out[[2]string{s, t.Table}] = true
	}
	return out
}

// describe fills what derives from the catalog rows: columns, cursor
// candidates, sync types, the recommendation and the warnings.
// declaredKey reports that the configuration declares a primary_key for
// the relation.
func (r *relation) describe(user string, declaredKey bool) {
	t := &r.table
	if t.PrimaryKey == nil {
		t.PrimaryKey = []string{}
	}
	t.Columns = make([]providers.Column, 0, len(r.columns))
	t.IncrementalFields = []providers.IncrementalField{}
	for _, c := range r.columns {
		t.Columns = append(t.Columns, providers.Column{
			Name: c.name, Type: c.format, Nullable: c.nullable, ParquetType: codec.MapType(c.typ).Name,
		})
		if cursorKindOf(c.typ) != cursorNone {
			t.IncrementalFields = append(t.IncrementalFields, providers.IncrementalField{
				Name: c.name, Type: c.format, Nullable: c.nullable, Indexed: r.leadingIndex[c.attnum],
			})
		}
	}
	switch r.relkind {
	case relkindTable, relkindPartitioned:
		t.ReplicaIdentity = map[byte]string{'d': "default", 'n': "nothing", 'f': "full", 'i': "index"}[r.replident]
	}

	// Incremental and xmin syncs merge the rows they read by key: without
	// one (views and materialized views never have one) only a declared
	// primary_key makes them possible.
	r.mergeable = len(t.PrimaryKey) > 0 || declaredKey
	t.SyncTypes = []string{string(config.SyncFullRefresh)}
	if len(t.IncrementalFields) > 0 {
		if r.mergeable {
			t.SyncTypes = append(t.SyncTypes, string(config.SyncIncremental))
		}
		t.SyncTypes = append(t.SyncTypes, string(config.SyncAppend))
	}
	cdcCapable := (r.relkind == relkindTable || r.relkind == relkindPartitioned) && len(t.PrimaryKey) > 0
	if cdcCapable {
		t.SyncTypes = append(t.SyncTypes, string(config.SyncCDC))
	}
	if r.relkind == relkindTable && r.mergeable {
		t.SyncTypes = append(t.SyncTypes, string(config.SyncXmin))
	}
	t.RecommendedSync = string(r.recommend())
	t.RecommendedIncrementalField = r.recommendCursor(config.SyncType(t.RecommendedSync))
	r.access(user)
	t.Warnings = r.warnings(user)
}

// access fills what the planner needs to refuse a table the user may not
// read: the statements that would let it, and the columns it may read
// meanwhile (column privileges).
func (r *relation) access(user string) {
	t := &r.table
	r.table.Unpopulated = r.relkind == relkindMatView && !r.populated
	if r.canSelect && r.schemaUsage {
		return
	}
	role := pgx.Identifier{user}.Sanitize()
	var grants []string
	if !r.schemaUsage {
		s := pgx.Identifier{t.Schema}.Sanitize()
		grants = append(grants, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", s, role))
	}
	if !r.canSelect {
		grants = append(grants, fmt.Sprintf("GRANT SELECT ON %s TO %s;", pgx.Identifier{t.Schema, t.Name}.Sanitize(), role))
	}
	t.SelectGrant = strings.Join(grants, " ")
	t.ReadableColumns = []string{}
	if r.schemaUsage {
		for _, c := range r.columns {
			if c.canSelect {
				t.ReadableColumns = append(t.ReadableColumns, c.name)
			}
		}
	}
}

// cursorKind is what a column is worth as an incremental field.
type cursorKind int

const (
	cursorNone cursorKind = iota
	cursorTime            // timestamp, timestamptz
	cursorDate
	cursorInteger // smallint, integer, bigint, numeric without fractional digits
)

// cursorKindOf tells whether a column type can serve as a cursor: values
// that grow with time, compared cheaply and exactly. Domains count as their
// base type.
func cursorKindOf(t *codec.PGType) cursorKind {
	b := codec.BaseType(t)
	if b == nil {
		return cursorNone
	}
	switch b.OID {
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		return cursorTime
	case pgtype.DateOID:
		return cursorDate
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		return cursorInteger
	case pgtype.NumericOID:
		// numeric(p,0), and numeric(p,-n), which holds multiples of 10^n.
		if _, s, ok := codec.NumericTypmod(b.Typmod); ok && s <= 0 {
			return cursorInteger
		}
	}
	return cursorNone
}

// smallTableRows is the size below which a full refresh is recommended:
// reloading a hundred thousand rows takes seconds and catches deletes,
// which cursor syncs miss.
const smallTableRows = 100_000

// recommend picks a table's sync type. The first rule that applies wins:
//
//  1. Views and materialized views: full_refresh. They have no key to merge
//     on and no WAL of their own.
//  2. Small tables (fewer than 100,000 estimated rows, or never analyzed,
//     which also comes with a warning): full_refresh, which also catches
//     deletes.
//  3. A key (live or declared) and a cursor column named like updated_at
//     (see updateCursor): incremental on it.
//  4. A table named like an immutable log (a word of its name is log,
//     event, history, audit or journal, or their plurals) with no
//     updated_at-like column and either a timestamp column named like
//     created_at ("created", "inserted", "occurred", "logged", "recorded")
//     or an integer single-column primary key: append on it.
//  5. A primary key: cdc, which catches every change including deletes.
//  6. Otherwise full_refresh.
func (r *relation) recommend() config.SyncType {
	t := &r.table
	if r.relkind == relkindView || r.relkind == relkindMatView {
		return config.SyncFullRefresh
	}
	if t.EstimatedRows == nil || *t.EstimatedRows < smallTableRows {
		return config.SyncFullRefresh
	}
	if r.mergeable && r.updateCursor() != "" {
		return config.SyncIncremental
	}
	if nameHasWord(t.Name, logWords) && r.updateCursor() == "" && r.appendCursor() != "" {
		return config.SyncAppend
	}
	if len(t.PrimaryKey) > 0 {
		return config.SyncCDC
	}
	return config.SyncFullRefresh
}

// recommendCursor is the incremental field to use with sync (the
// recommended one), or, when that needs none, with an incremental or append
// sync the relation can do: a column named like updated_at, else for a log
// an append cursor; "" when no column fits.
func (r *relation) recommendCursor(sync config.SyncType) string {
	if sync == config.SyncAppend {
		return r.appendCursor()
	}
	if !slices.Contains(r.table.SyncTypes, string(config.SyncIncremental)) &&
		!slices.Contains(r.table.SyncTypes, string(config.SyncAppend)) {
		return ""
	}
	if c := r.updateCursor(); c != "" {
		return c
	}
	if nameHasWord(r.table.Name, logWords) {
		return r.appendCursor()
	}
	return ""
}

// updateCursor is the best column that tells when a row last changed: a
// timestamp, date or integer column named like updated_at ("update",
// "modified", "changed": updated_at, last_update, ModifiedAt,
// row_changed). Timestamps come before dates and integers, whose values
// tell less.
func (r *relation) updateCursor() string {
	return r.bestCursor(func(c *column) int {
		if !nameHasAny(c.name, updatedWords) {
			return 0
		}
		switch cursorKindOf(c.typ) {
		case cursorTime:
			return 3
		case cursorDate:
			return 2
		case cursorInteger:
			// An integer is a time only when its name says so
			// (updated_at as epoch seconds), not update_count.
			if nameHasWord(c.name, timeWords) {
				return 1
			}
		}
		return 0
	})
}

// appendCursor is the cursor of an append-only log: a timestamp named like
// created_at, else an integer single-column primary key.
func (r *relation) appendCursor() string {
	t := &r.table
	c := r.bestCursor(func(c *column) int {
		if cursorKindOf(c.typ) == cursorTime && nameHasAny(c.name, createdWords) {
			return 1
		}
		return 0
	})
	if c == "" && len(t.PrimaryKey) == 1 {
		c = r.bestCursor(func(c *column) int {
			if c.name == t.PrimaryKey[0] && cursorKindOf(c.typ) == cursorInteger {
				return 1
			}
			return 0
		})
	}
	return c
}

var (
	updatedWords = []string{"update", "modif", "changed"}
	timeWords    = []string{"at", "on", "ts", "time", "timestamp", "epoch", "stamp"}
	createdWords = []string{"created", "inserted", "occurred", "logged", "recorded"}
	logWords     = []string{"log", "logs", "event", "events", "history", "histories", "audit", "audits", "journal", "journals"}
)

// bestCursor returns the best column that rank accepts (ranks above 0),
// or "". Among fitting columns an indexed one comes first, then a NOT NULL
// one, then the higher rank, then the first in column order.
func (r *relation) bestCursor(rank func(*column) int) string {
	var best *column
	bestScore := 0
	for _, c := range r.columns {
		k := rank(c)
		if k <= 0 {
			continue
		}
		s := k
		if !c.nullable {
			s += 10
		}
		if r.leadingIndex[c.attnum] {
			s += 20
		}
		if best == nil || s > bestScore {
			best, bestScore = c, s
		}
	}
	if best == nil {
		return ""
	}
	return best.name
}

// nameHasAny reports whether a name contains one of the words, in any case:
// updated_at, UpdatedAt and last_modified all look like update times.
func nameHasAny(name string, words []string) bool {
	lower := strings.ToLower(name)
	for _, w := range words {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// nameHasWord reports whether one of the words of a name (split at
// non-letters and at lower-to-upper case changes: audit_log, AuditLog) is
// one of words. Whole words, so that "blog_posts" is not a log.
func nameHasWord(name string, words []string) bool {
	var parts []string
	var cur []rune
	prevLower := false
	for _, c := range name {
		switch {
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			parts, cur = append(parts, string(cur)), nil
			prevLower = false
			continue
		case unicode.IsUpper(c) && prevLower:
			parts, cur = append(parts, string(cur)), nil
		}
		cur = append(cur, c)
		prevLower = unicode.IsLower(c)
	}
	parts = append(parts, string(cur))
	for _, p := range parts {
		p = strings.ToLower(p)
		for _, w := range words {
			if p == w {
				return true
			}
		}
	}
	return false
}

// warnings lists what the user should know before syncing the table.
// (Unchanged TOAST values need no warning: the runner keeps the stored
// value of a column a change did not carry, in every cdc output.)
func (r *relation) warnings(user string) []string {
	t := &r.table
	name := pgx.Identifier{t.Schema, t.Name}.Sanitize()
	role := pgx.Identifier{user}.Sanitize()
	w := []string{}
	if t.EstimatedRows == nil && r.relkind != relkindView && !t.Unpopulated {
		w = append(w, fmt.Sprintf("never analyzed, so its size is unknown: run ANALYZE %s;", name))
	}
	if t.Unpopulated {
		w = append(w, fmt.Sprintf("never populated (created WITH NO DATA), so it cannot be read: REFRESH MATERIALIZED VIEW %s;", name))
	}
	if !r.schemaUsage {
		w = append(w, fmt.Sprintf("the user cannot use schema %s: GRANT USAGE ON SCHEMA %s TO %s;",
			pgx.Identifier{t.Schema}.Sanitize(), pgx.Identifier{t.Schema}.Sanitize(), role))
	}
	if !r.canSelect {
		readable := 0
		for _, c := range r.columns {
			if c.canSelect {
				readable++
			}
		}
		switch {
		case readable > 0 && r.schemaUsage && r.relkind == relkindMatView:
			w = append(w, fmt.Sprintf("the user can read only some of its columns (%s), so a table block must list them in columns; to read all: GRANT SELECT ON %s TO %s;",
				strings.Join(quoteIdents(t.ReadableColumns), ", "), name, role))
		case readable > 0 && r.schemaUsage:
			// A read locks the table, which column privileges do not allow.
			w = append(w, fmt.Sprintf("the user can read only some of its columns (%s), and a read locks the table, which takes SELECT on all of it: GRANT SELECT ON %s TO %s;",
				strings.Join(quoteIdents(t.ReadableColumns), ", "), name, role))
		default:
			w = append(w, fmt.Sprintf("the user cannot read it: GRANT SELECT ON %s TO %s;", name, role))
		}
	}
	if r.rls {
		w = append(w, "row-level security applies to the user: sluice reads only the rows its policies let it see")
	}
	if t.ReplicaIdentity == "nothing" {
		w = append(w, fmt.Sprintf("REPLICA IDENTITY NOTHING: once it is in a publication, UPDATE and DELETE on it fail; ALTER TABLE %s REPLICA IDENTITY DEFAULT;", name))
	}
	return w
}

func quoteIdents(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}
