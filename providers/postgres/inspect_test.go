package postgres

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/providers"
)

// inspConnect opens a connection for a test, closed when it ends.
func inspConnect(t testing.TB, connURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), connURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func inspExec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

// inspSource is a PostgreSQL source as config.Load would give it for
// source "postgres" "test" with the given URL and schema.
func inspSource(connURL, schema string, tables ...*config.Table) *config.Source {
	return &config.Source{
		Type: "postgres", Name: "test", Prefix: "postgres",
		Postgres: &config.Postgres{
			ConnectionString: connURL,
			Schema:           schema,
			ConnectTimeout:   config.DefaultConnectTimeout,
			CDC: config.CDC{
				Management:   "managed",
				Publication:  "sluice_pub_test",
				Slot:         "sluice_test",
				LagWarning:   config.DefaultLagWarning,
				LagCritical:  config.DefaultLagCritical,
				AutoDropSlot: true,
			},
		},
		Tables: tables,
	}
}

// cdcDecl declares a cdc table as config.Load would.
func cdcDecl(name string) *config.Table {
	s, t, err := config.ParseTableName(name)
	if err != nil {
		panic(err)
	}
	return &config.Table{Name: name, Schema: s, Table: t, Sync: config.SyncCDC, Enabled: true, CDCOutput: "consolidated"}
}

// asUser returns connURL with another user name.
func asUser(t testing.TB, connURL, user string) string {
	t.Helper()
	u, err := url.Parse(connURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(user)
	return u.String()
}

// queryCounter counts the statements a connection sends, batched or not.
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}
func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (q *queryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (q *queryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	q.n.Add(1)
}
func (q *queryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// countingProvider returns a provider whose connection counts its queries.
func countingProvider(t testing.TB, src *config.Source) (*Provider, *queryCounter) {
	t.Helper()
	cc, err := pgx.ParseConfig(src.Postgres.ConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	qc := &queryCounter{}
	cc.Tracer = qc
	conn, err := pgx.ConnectConfig(context.Background(), cc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	p.conn = conn
	t.Cleanup(func() { p.Close() })
	return p, qc
}

func rows(n int64) *int64 { return &n }

// inspectFixture is a schema with most of what inspect must handle.
const inspectFixture = `
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE DOMAIN amount AS numeric(12,2);
CREATE DOMAIN seq AS numeric(20,0);

CREATE TABLE orders (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	status status NOT NULL,
	total amount,
	tags text[],
	meta jsonb,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamp,
	code varchar(20)
);
CREATE INDEX ON orders (updated_at);
CREATE INDEX ON orders (created_at) WHERE status = 'new'; -- partial: does not count
CREATE INDEX ON orders (lower(code));                   -- expression: does not count
INSERT INTO orders (status, total) SELECT 'new', g FROM generate_series(1, 10) g;

CREATE TABLE measurements (
	city_id int NOT NULL,
	logdate date NOT NULL,
	peak real,
	batch seq,
	PRIMARY KEY (logdate, city_id)
) PARTITION BY RANGE (logdate);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX ON measurements (batch);
INSERT INTO measurements VALUES (1, '2025-03-01', 1, 1), (2, '2025-03-01', 2, 1), (1, '2025-04-01', 3, 2),
	(1, '2026-03-01', 4, 3), (2, '2026-03-01', 5, 3);

CREATE SCHEMA sales;
CREATE TABLE sales.customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO sales.customers VALUES (1, 'a'), (2, 'b');

CREATE TABLE "Order.Items" ("Order Id" bigint, "SKU" varchar(20) NOT NULL, qty smallint);
ALTER TABLE "Order.Items" REPLICA IDENTITY NOTHING;
INSERT INTO "Order.Items" VALUES (1, 'x', 1), (1, 'y', 2), (2, 'x', 1);

CREATE VIEW paid_orders AS SELECT id, total FROM orders WHERE status = 'paid';
CREATE MATERIALIZED VIEW order_totals AS SELECT status, sum(total) AS total FROM orders GROUP BY status;

CREATE TABLE "LONGNAME" (id int PRIMARY KEY, "Weird ""Name""" text);

ANALYZE;

CREATE TABLE never_analyzed (id serial PRIMARY KEY);
CREATE PUBLICATION sluice_pub_test FOR TABLE orders, sales.customers, "Order.Items" WITH (publish_via_partition_root = true, publish = 'insert, update');
`

// longName is 63 bytes, PostgreSQL's limit, in two-byte characters.
const longName = "table_" + "éééééééééééééééééééééééééééé" + "x"

func TestInspect(t *testing.T) {
	if len(longName) != 63 {
		t.Fatalf("longName is %d bytes", len(longName))
	}
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	inspExec(t, conn, strings.Replace(inspectFixture, "LONGNAME", longName, 1))
	// A slot cannot be created in a transaction that wrote.
	inspExec(t, conn, "SELECT pg_create_logical_replication_slot('sluice_test', 'pgoutput')")

	p, err := New(inspSource(dbURL, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	obs, err := p.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	want := &providers.Observed{
		Source: "postgres.test",
		Tables: []providers.Table{
			{
				Schema: "public", Name: "Order.Items", Kind: "table", EstimatedRows: rows(3),
				PrimaryKey: []string{},
				Columns: []providers.Column{
					{Name: "Order Id", Type: "bigint", Nullable: true, ParquetType: "INT64"},
					{Name: "SKU", Type: "character varying(20)", ParquetType: "STRING"},
					{Name: "qty", Type: "smallint", Nullable: true, ParquetType: "INT16"},
				},
				IncrementalFields: []providers.IncrementalField{
					{Name: "Order Id", Type: "bigint", Nullable: true},
					{Name: "qty", Type: "smallint", Nullable: true},
				},
				SyncTypes:       []string{"full_refresh", "append"},
				RecommendedSync: "full_refresh",
				Warnings: []string{
					`REPLICA IDENTITY NOTHING: once it is in a publication, UPDATE and DELETE on it fail; ALTER TABLE "public"."Order.Items" REPLICA IDENTITY DEFAULT;`,
				},
				ReplicaIdentity: "nothing",
			},
			{
				Schema: "public", Name: "measurements", Kind: "partitioned table", EstimatedRows: rows(5),
				PrimaryKey: []string{"logdate", "city_id"},
				Columns: []providers.Column{
					{Name: "city_id", Type: "integer", ParquetType: "INT32"},
					{Name: "logdate", Type: "date", ParquetType: "DATE"},
					{Name: "peak", Type: "real", Nullable: true, ParquetType: "FLOAT"},
					{Name: "batch", Type: "seq", Nullable: true, ParquetType: "DECIMAL(20,0)"},
				},
				IncrementalFields: []providers.IncrementalField{
					{Name: "city_id", Type: "integer"},
					{Name: "logdate", Type: "date", Indexed: true},
					{Name: "batch", Type: "seq", Nullable: true, Indexed: true},
				},
				SyncTypes:       []string{"full_refresh", "incremental", "append", "cdc"},
				RecommendedSync: "full_refresh",
				Warnings:        []string{},
				ReplicaIdentity: "default",
			},
			{
				Schema: "public", Name: "never_analyzed", Kind: "table",
				PrimaryKey: []string{"id"},
				Columns:    []providers.Column{{Name: "id", Type: "integer", ParquetType: "INT32"}},
				IncrementalFields: []providers.IncrementalField{
					{Name: "id", Type: "integer", Indexed: true},
				},
				SyncTypes:       []string{"full_refresh", "incremental", "append", "cdc", "xmin"},
				RecommendedSync: "full_refresh",
				Warnings:        []string{`never analyzed, so its size is unknown: run ANALYZE "public"."never_analyzed";`},
				ReplicaIdentity: "default",
			},
			{
				Schema: "public", Name: "order_totals", Kind: "materialized view", EstimatedRows: rows(1),
				PrimaryKey: []string{},
				Columns: []providers.Column{
					{Name: "status", Type: "status", Nullable: true, ParquetType: "STRING"},
					{Name: "total", Type: "numeric", Nullable: true, ParquetType: "STRING"},
				},
				IncrementalFields: []providers.IncrementalField{},
				SyncTypes:         []string{"full_refresh"},
				RecommendedSync:   "full_refresh",
				Warnings:          []string{},
			},
			{
				Schema: "public", Name: "orders", Kind: "table", EstimatedRows: rows(10),
				PrimaryKey: []string{"id"},
				Columns: []providers.Column{
					{Name: "id", Type: "bigint", ParquetType: "INT64"},
					{Name: "status", Type: "status", ParquetType: "STRING"},
					{Name: "total", Type: "amount", Nullable: true, ParquetType: "DECIMAL(12,2)"},
					{Name: "tags", Type: "text[]", Nullable: true, ParquetType: "LIST<STRING>"},
					{Name: "meta", Type: "jsonb", Nullable: true, ParquetType: "JSON"},
					{Name: "created_at", Type: "timestamp with time zone", ParquetType: "TIMESTAMP(MICROS,UTC)"},
					{Name: "updated_at", Type: "timestamp without time zone", Nullable: true, ParquetType: "TIMESTAMP(MICROS)"},
					{Name: "code", Type: "character varying(20)", Nullable: true, ParquetType: "STRING"},
				},
				IncrementalFields: []providers.IncrementalField{
					{Name: "id", Type: "bigint", Indexed: true},
					{Name: "created_at", Type: "timestamp with time zone"},
					{Name: "updated_at", Type: "timestamp without time zone", Nullable: true, Indexed: true},
				},
				SyncTypes:                   []string{"full_refresh", "incremental", "append", "cdc", "xmin"},
				RecommendedSync:             "full_refresh",
				RecommendedIncrementalField: "updated_at",
				Warnings:                    []string{},
				ReplicaIdentity:             "default",
			},
			{
				Schema: "public", Name: "paid_orders", Kind: "view",
				PrimaryKey: []string{},
				Columns: []providers.Column{
					{Name: "id", Type: "bigint", Nullable: true, ParquetType: "INT64"},
					{Name: "total", Type: "amount", Nullable: true, ParquetType: "DECIMAL(12,2)"},
				},
				IncrementalFields: []providers.IncrementalField{{Name: "id", Type: "bigint", Nullable: true}},
				SyncTypes:         []string{"full_refresh", "append"},
				RecommendedSync:   "full_refresh",
				Warnings:          []string{},
			},
			{
				Schema: "public", Name: longName, Kind: "table", EstimatedRows: rows(0),
				PrimaryKey: []string{"id"},
				Columns: []providers.Column{
					{Name: "id", Type: "integer", ParquetType: "INT32"},
					{Name: `Weird "Name"`, Type: "text", Nullable: true, ParquetType: "STRING"},
				},
				IncrementalFields: []providers.IncrementalField{{Name: "id", Type: "integer", Indexed: true}},
				SyncTypes:         []string{"full_refresh", "incremental", "append", "cdc", "xmin"},
				RecommendedSync:   "full_refresh",
				Warnings:          []string{},
				ReplicaIdentity:   "default",
			},
			{
				Schema: "sales", Name: "customers", Kind: "table", EstimatedRows: rows(2),
				PrimaryKey: []string{"id"},
				Columns: []providers.Column{
					{Name: "id", Type: "integer", ParquetType: "INT32"},
					{Name: "name", Type: "text", ParquetType: "STRING"},
				},
				IncrementalFields: []providers.IncrementalField{{Name: "id", Type: "integer", Indexed: true}},
				SyncTypes:         []string{"full_refresh", "incremental", "append", "cdc", "xmin"},
				RecommendedSync:   "full_refresh",
				Warnings:          []string{},
				ReplicaIdentity:   "default",
			},
		},
		Publication: &providers.Publication{
			Name:                    "sluice_pub_test",
			Tables:                  []string{`public."Order.Items"`, "public.orders", "sales.customers"},
			PublishViaPartitionRoot: true,
			PublishInsert:           true,
			PublishUpdate:           true,
			Owner:                   "postgres",
		},
		Slot: &providers.Slot{Name: "sluice_test", Plugin: "pgoutput", Active: false, WALStatus: "reserved"},
	}
	ignore := cmpopts.IgnoreFields(providers.Observed{}, "ServerVersion", "WALPosition")
	ignoreSlot := cmpopts.IgnoreFields(providers.Slot{}, "Database", "ConfirmedFlushLSN", "RestartLSN", "LagBytes")
	if diff := cmp.Diff(want, obs, ignore, ignoreSlot); diff != "" {
		t.Errorf("Inspect (-want +got):\n%s", diff)
	}
	if obs.ServerVersion < 130000 || obs.WALPosition == "" {
		t.Errorf("server version %d, WAL position %q", obs.ServerVersion, obs.WALPosition)
	}
	if s := obs.Slot; s != nil && (s.Database == "" || s.ConfirmedFlushLSN == "" || s.RestartLSN == "" || s.LagBytes < 0) {
		t.Errorf("slot %+v", s)
	}
	if obs.Checks != nil {
		t.Errorf("checks without cdc tables: %v", obs.Checks)
	}

	// With a schema, only its tables; a missing publication and slot are nil.
	src := inspSource(dbURL, "sales")
	src.Postgres.CDC.Publication, src.Postgres.CDC.Slot = "nope", "nope"
	p2, _ := New(src)
	defer p2.Close()
	obs, err = p2.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Tables) != 1 || obs.Tables[0].Name != "customers" || obs.Publication != nil || obs.Slot != nil {
		t.Errorf("schema sales: %+v", obs)
	}

	// Table blocks naming other schemas add theirs (and only theirs);
	// InspectAllSchemas reads every one.
	inspExec(t, conn, `CREATE SCHEMA other; CREATE TABLE other.t (id int); CREATE SCHEMA "Mixed Case"; CREATE TABLE "Mixed Case"."Order Items" (id int)`)
	src = inspSource(dbURL, "sales", cdcDecl("public.orders"), cdcDecl(`"Mixed Case"."Order Items"`))
	p3, _ := New(src)
	defer p3.Close()
	schemasOf := func(obs *providers.Observed) map[string]bool {
		m := map[string]bool{}
		for _, tb := range obs.Tables {
			m[tb.Schema] = true
		}
		return m
	}
	if obs, err = p3.Inspect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{"sales": true, "public": true, "Mixed Case": true}, schemasOf(obs)); diff != "" {
		t.Errorf("schemas inspected (-want +got):\n%s", diff)
	}
	if obs.Table("Mixed Case", "Order Items") == nil || obs.Table("public", "orders") == nil {
		t.Errorf("tables of other schemas missing: %+v", obs.Tables)
	}
	if obs, err = p3.InspectAllSchemas(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{"sales": true, "public": true, "Mixed Case": true, "other": true}, schemasOf(obs)); diff != "" {
		t.Errorf("every schema (-want +got):\n%s", diff)
	}
}

// TestInspectReadability checks what the planner needs to refuse a table
// before a run fails on it: privileges (table, column, schema), and
// materialized views never populated.
func TestInspectReadability(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	role := "reader_" + strings.ToLower(t.Name())
	inspExec(t, conn, fmt.Sprintf(`
		DROP ROLE IF EXISTS %[1]s;
		CREATE ROLE %[1]s LOGIN;
		CREATE TABLE open_t (id int PRIMARY KEY);
		CREATE TABLE "Secret T" (id int PRIMARY KEY);
		CREATE TABLE some_cols (id int PRIMARY KEY, pub text, priv text);
		GRANT SELECT (id, pub) ON some_cols TO %[1]s;
		CREATE MATERIALIZED VIEW empty_mv AS SELECT 1 AS x WITH NO DATA;
		CREATE MATERIALIZED VIEW full_mv AS SELECT 1 AS x;
		GRANT SELECT ON open_t, empty_mv, full_mv TO %[1]s;
		CREATE SCHEMA hidden;
		CREATE TABLE hidden.t (id int);
		GRANT SELECT ON hidden.t TO %[1]s;
		ANALYZE;`, role))
	t.Cleanup(func() {
		c := inspConnect(t, dbURL)
		inspExec(t, c, fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role))
	})
	p, _ := New(inspSource(asUser(t, dbURL, role), ""))
	defer p.Close()
	obs, err := p.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type access struct {
		Grant       string
		Readable    []string
		Unpopulated bool
	}
	got := map[string]access{}
	for _, tb := range obs.Tables {
		got[tb.Schema+"."+tb.Name] = access{tb.SelectGrant, tb.ReadableColumns, tb.Unpopulated}
	}
	want := map[string]access{
		"public.open_t":    {},
		"public.Secret T":  {Grant: fmt.Sprintf(`GRANT SELECT ON "public"."Secret T" TO "%s";`, role), Readable: []string{}},
		"public.some_cols": {Grant: fmt.Sprintf(`GRANT SELECT ON "public"."some_cols" TO "%s";`, role), Readable: []string{"id", "pub"}},
		"public.empty_mv":  {Unpopulated: true},
		"public.full_mv":   {},
		"hidden.t":         {Grant: fmt.Sprintf(`GRANT USAGE ON SCHEMA "hidden" TO "%s";`, role), Readable: []string{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("access (-want +got):\n%s", diff)
	}
	if w := obs.Table("public", "empty_mv").Warnings; len(w) != 1 || !strings.Contains(w[0], `REFRESH MATERIALIZED VIEW "public"."empty_mv";`) {
		t.Errorf("empty_mv warnings: %q", w)
	}
	if w := obs.Table("public", "some_cols").Warnings; len(w) != 1 || !strings.Contains(w[0], `only some of its columns ("id", "pub"), and a read locks the table`) {
		t.Errorf("some_cols warnings: %q", w)
	}
}

// TestInspectKeylessSyncTypes: incremental and xmin merge by key, so a
// relation without one offers them only when its table block declares a
// primary_key.
func TestInspectKeylessSyncTypes(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	inspExec(t, conn, `
		CREATE TABLE nopk (id int, ts timestamptz);
		CREATE TABLE declared (id int, ts timestamptz);
		CREATE TABLE keyed (id int PRIMARY KEY, ts timestamptz);
		CREATE VIEW v AS SELECT * FROM keyed;
		CREATE VIEW v_declared AS SELECT * FROM keyed;
		CREATE MATERIALIZED VIEW mv AS SELECT * FROM keyed;`)
	decl := func(name string) *config.Table {
		return &config.Table{Name: name, Table: name, Sync: config.SyncIncremental, IncrementalField: "ts", PrimaryKey: []string{"id"}, Enabled: true}
	}
	p, _ := New(inspSource(dbURL, "public", decl("declared"), decl("v_declared")))
	defer p.Close()
	obs, err := p.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, tb := range obs.Tables {
		got[tb.Name] = tb.SyncTypes
	}
	want := map[string][]string{
		"nopk":       {"full_refresh", "append"},
		"declared":   {"full_refresh", "incremental", "append", "xmin"},
		"keyed":      {"full_refresh", "incremental", "append", "cdc", "xmin"},
		"v":          {"full_refresh", "append"},
		"v_declared": {"full_refresh", "incremental", "append"},
		"mv":         {"full_refresh", "append"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sync types (-want +got):\n%s", diff)
	}
}

// TestInspectAsUnprivilegedUser checks the warnings about what the user
// may not read.
func TestInspectAsUnprivilegedUser(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	role := "reader_" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_")
	inspExec(t, conn, fmt.Sprintf(`
		DROP ROLE IF EXISTS %[1]s;
		CREATE ROLE %[1]s LOGIN;
		CREATE TABLE open_t (id int PRIMARY KEY);
		CREATE TABLE secret_t (id int PRIMARY KEY);
		CREATE TABLE policed_t (id int PRIMARY KEY, owner text);
		ALTER TABLE policed_t ENABLE ROW LEVEL SECURITY;
		GRANT SELECT ON open_t, policed_t TO %[1]s;
		CREATE SCHEMA hidden;
		CREATE TABLE hidden.t (id int);
		GRANT SELECT ON hidden.t TO %[1]s;
		ANALYZE;`, role))
	t.Cleanup(func() {
		c := inspConnect(t, dbURL)
		inspExec(t, c, fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role))
	})
	conn.Close(context.Background())

	p, _ := New(inspSource(asUser(t, dbURL, role), ""))
	defer p.Close()
	obs, err := p.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, tb := range obs.Tables {
		got[tb.Schema+"."+tb.Name] = tb.Warnings
	}
	want := map[string][]string{
		"hidden.t":      {fmt.Sprintf(`the user cannot use schema "hidden": GRANT USAGE ON SCHEMA "hidden" TO "%s";`, role)},
		"public.open_t": {},
		"public.policed_t": {
			"row-level security applies to the user: sluice reads only the rows its policies let it see",
		},
		"public.secret_t": {fmt.Sprintf(`the user cannot read it: GRANT SELECT ON "public"."secret_t" TO "%s";`, role)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestInspectQueryCount checks DESIGN invariant 3: the same number of
// queries for 1 table as for 200, CDC checks included.
func TestInspectQueryCount(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	inspExec(t, conn, `CREATE TABLE t0 (id int PRIMARY KEY, v text, at timestamptz); CREATE INDEX ON t0 (at)`)
	src := inspSource(dbURL, "public", cdcDecl("t0"))

	count := func() int64 {
		p, qc := countingProvider(t, src)
		obs, err := p.Inspect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.Checks) == 0 {
			t.Fatal("no checks with a cdc table")
		}
		return qc.n.Load()
	}
	one := count()
	inspExec(t, conn, `DO $$ BEGIN
		FOR i IN 1..199 LOOP
			EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, v text, at timestamptz); CREATE INDEX ON %I (at)', 't' || i, 't' || i);
		END LOOP; END $$`)
	for i := 1; i < 200; i += 20 {
		src.Tables = append(src.Tables, cdcDecl(fmt.Sprintf("t%d", i)))
	}
	// Tables of other schemas are read by the same queries.
	for i := range 5 {
		inspExec(t, conn, fmt.Sprintf(`CREATE SCHEMA s%d; CREATE TABLE s%d.t (id int PRIMARY KEY)`, i, i))
		src.Tables = append(src.Tables, cdcDecl(fmt.Sprintf("s%d.t", i)))
	}
	many := count()
	if one != many || one > 12 {
		t.Errorf("Inspect sent %d queries for 1 table and %d for 200; want the same, and few", one, many)
	}
}

// TestRecommend covers every rule of recommend.
func TestRecommend(t *testing.T) {
	ts := &codec.PGType{OID: 1184}
	i8 := &codec.PGType{OID: 20}
	txt := &codec.PGType{OID: 25}
	dt := &codec.PGType{OID: 1082}
	col := func(n int16, name string, typ *codec.PGType, nullable bool) *column {
		return &column{attnum: n, name: name, typ: typ, nullable: nullable}
	}
	big := rows(5_000_000)
	tests := []struct {
		name       string
		rel        relation
		wantSync   config.SyncType
		wantCursor string
	}{
		{"view", relation{relkind: 'v', table: providers.Table{Name: "v", EstimatedRows: big}}, config.SyncFullRefresh, ""},
		{"matview", relation{relkind: 'm', table: providers.Table{Name: "m", EstimatedRows: big, PrimaryKey: []string{"id"}}}, config.SyncFullRefresh, ""},
		{"small", relation{relkind: 'r', table: providers.Table{Name: "t", EstimatedRows: rows(99_999), PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "updated_at", ts, false)}}, config.SyncFullRefresh, "updated_at"},
		{"unknown size", relation{relkind: 'r', table: providers.Table{Name: "t", PrimaryKey: []string{"id"}}}, config.SyncFullRefresh, ""},
		{"updated_at", relation{relkind: 'r', table: providers.Table{Name: "orders", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false), col(2, "created_at", ts, false), col(3, "updated_at", ts, true)}},
			config.SyncIncremental, "updated_at"},
		{"indexed update column first", relation{relkind: 'p', table: providers.Table{Name: "orders", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns:      []*column{col(1, "ModifiedAt", ts, false), col(2, "last_changed", ts, true)},
			leadingIndex: map[int16]bool{2: true}},
			config.SyncIncremental, "last_changed"},
		{"NOT NULL update column first", relation{relkind: 'r', table: providers.Table{Name: "orders", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "changed_on", dt, true), col(2, "last_update", ts, false)}},
			config.SyncIncremental, "last_update"},
		{"timestamp before date", relation{relkind: 'r', table: providers.Table{Name: "orders", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "modified_on", dt, false), col(2, "updated_at", ts, false)}},
			config.SyncIncremental, "updated_at"},
		{"date update column", relation{relkind: 'r', table: providers.Table{Name: "films", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false), col(2, "modified_on", dt, false)}},
			config.SyncIncremental, "modified_on"},
		{"epoch update column", relation{relkind: 'r', table: providers.Table{Name: "films", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false), col(2, "updated_at", i8, false)}},
			config.SyncIncremental, "updated_at"},
		{"a count is no time", relation{relkind: 'r', table: providers.Table{Name: "films", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false), col(2, "update_count", i8, false)}},
			config.SyncCDC, ""},
		{"no key: no incremental, the cursor is for append", relation{relkind: 'r', table: providers.Table{Name: "orders", EstimatedRows: big},
			columns: []*column{col(1, "updated_at", ts, false)}},
			config.SyncFullRefresh, "updated_at"},
		{"view with a cursor: append", relation{relkind: 'v', table: providers.Table{Name: "v"},
			columns: []*column{col(1, "updated_at", ts, false)}},
			config.SyncFullRefresh, "updated_at"},
		{"update column must be a timestamp", relation{relkind: 'r', table: providers.Table{Name: "t", EstimatedRows: big},
			columns: []*column{col(1, "updated_by", txt, false)}}, config.SyncFullRefresh, ""},
		{"log with created_at", relation{relkind: 'r', table: providers.Table{Name: "audit_log", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false), col(2, "created_at", ts, false)}},
			config.SyncAppend, "created_at"},
		{"events with serial key", relation{relkind: 'r', table: providers.Table{Name: "PageEvents", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false), col(2, "payload", txt, true)}},
			config.SyncAppend, "id"},
		{"log that is updated", relation{relkind: 'r', table: providers.Table{Name: "history", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false), col(2, "created_at", ts, false), col(3, "updated_at", ts, false)}},
			config.SyncIncremental, "updated_at"},
		{"blog is no log", relation{relkind: 'r', table: providers.Table{Name: "blog_posts", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false), col(2, "created_at", ts, false)}},
			config.SyncCDC, ""},
		{"log without cursor", relation{relkind: 'r', table: providers.Table{Name: "event_log", EstimatedRows: big},
			columns: []*column{col(1, "payload", txt, true)}},
			config.SyncFullRefresh, ""},
		{"key, no cursor", relation{relkind: 'r', table: providers.Table{Name: "accounts", EstimatedRows: big, PrimaryKey: []string{"id"}},
			columns: []*column{col(1, "id", i8, false)}}, config.SyncCDC, ""},
		{"nothing to go on", relation{relkind: 'r', table: providers.Table{Name: "blobs", EstimatedRows: big},
			columns: []*column{col(1, "data", txt, true)}}, config.SyncFullRefresh, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rel.leadingIndex == nil {
				tt.rel.leadingIndex = map[int16]bool{}
			}
			tt.rel.describe("u", false)
			sync, cursor := config.SyncType(tt.rel.table.RecommendedSync), tt.rel.table.RecommendedIncrementalField
			if sync != tt.wantSync || cursor != tt.wantCursor {
				t.Errorf("recommended %s, %q; want %s, %q", sync, cursor, tt.wantSync, tt.wantCursor)
			}
		})
	}
}
