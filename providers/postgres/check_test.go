package postgres

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/providers"
)

// runCheck runs the checks of src and returns them by name.
func runCheck(t *testing.T, src *config.Source) map[string]providers.Check {
	t.Helper()
	p, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	checks, err := p.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]providers.Check{}
	for _, c := range checks {
		if _, dup := out[c.Check]; dup {
			t.Errorf("check %s reported twice", c.Check)
		}
		out[c.Check] = c
	}
	return out
}

// expectChecks compares the named checks, and requires every other check
// to pass.
func expectChecks(t *testing.T, got map[string]providers.Check, want ...providers.Check) {
	t.Helper()
	named := map[string]bool{}
	for _, w := range want {
		named[w.Check] = true
		if diff := cmp.Diff(w, got[w.Check]); diff != "" {
			t.Errorf("check %s (-want +got):\n%s", w.Check, diff)
		}
	}
	for name, c := range got {
		if !named[name] && !c.OK {
			t.Errorf("check %s failed: %s (fix: %s)", name, c.Message, c.Fix)
		}
	}
}

func dbName(t *testing.T, connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func TestCheckPasses(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	inspExec(t, conn, `CREATE TABLE a (id int PRIMARY KEY, body text);
		CREATE TABLE "Mixed ""Case""" (id int PRIMARY KEY) PARTITION BY HASH (id);`)
	src := inspSource(dbURL, "public", cdcDecl("a"), cdcDecl(`"Mixed ""Case"""`))
	checks := runCheck(t, src)
	expectChecks(t, checks,
		providers.Check{Check: CheckTablesExist, OK: true, Message: "all 2 cdc tables exist"},
		providers.Check{Check: CheckReplication, OK: true, Message: "user postgres is a superuser"},
		providers.Check{Check: CheckCreatePublication, OK: true, Message: "the user may create the publication"},
		providers.Check{Check: CheckSlotWALKeepSize, OK: true, Warning: true,
			Message: "max_slot_wal_keep_size is unlimited: a stalled slot keeps WAL until sluice reacts at lag_critical (10GiB)"},
	)
	want := []string{CheckServerVersion, CheckWALLevel, CheckReplicationSlots, CheckWALSenders, CheckReplication,
		CheckTablesExist, CheckTableAccess, CheckPrimaryKeys, CheckCreatePublication, CheckTableOwnership,
		CheckSlotWALKeepSize, CheckWALSenderTimeout, CheckReplicaIdentity}
	if len(checks) != len(want) {
		t.Errorf("got %d checks, want %v", len(checks), want)
	}
	for _, name := range want {
		if _, ok := checks[name]; !ok {
			t.Errorf("no %s check", name)
		}
	}

	// The source's own slot counts as available even when it takes the
	// last free one; a source without cdc tables still gets its server
	// checked.
	inspExec(t, conn, "SELECT pg_create_logical_replication_slot('sluice_test', 'pgoutput')")
	src.Tables = nil
	checks = runCheck(t, src)
	expectChecks(t, checks,
		providers.Check{Check: CheckTablesExist, OK: true, Message: `no enabled table has sync = "cdc"`},
	)
	if c := checks[CheckReplicationSlots]; !c.OK || !strings.HasPrefix(c.Message, "slot sluice_test exists") {
		t.Errorf("own slot: %+v", c)
	}
}

// TestCheckServerSettings runs the checks against a cluster configured to
// fail every setting check.
func TestCheckServerSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{
		"wal_level":              "replica",
		"max_replication_slots":  "1",
		"max_wal_senders":        "0",
		"max_slot_wal_keep_size": "1MB",
		"wal_sender_timeout":     "5s",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	dbURL := c.URL("postgres")
	conn := inspConnect(t, dbURL)
	inspExec(t, conn, `SELECT pg_create_physical_replication_slot('other', true)`)
	src := inspSource(dbURL, "public")
	src.Postgres.CDC.LagCritical = 1 << 30

	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckWALLevel, Message: "wal_level is replica",
			Fix: "set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical;) and restart PostgreSQL; " +
				"on Amazon RDS and Aurora set rds.logical_replication = 1 in the DB parameter group and reboot; " +
				"on Google Cloud SQL set the flag cloudsql.logical_decoding = on (the instance restarts)"},
		providers.Check{Check: CheckReplicationSlots, Message: "0 of 1 replication slots free",
			Fix: "raise max_replication_slots in postgresql.conf and restart PostgreSQL, or drop a slot nothing uses " +
				"(SELECT slot_name, active FROM pg_replication_slots; then SELECT pg_drop_replication_slot('name');)"},
		providers.Check{Check: CheckWALSenders, Message: "0 of 0 WAL senders free",
			Fix: "raise max_wal_senders in postgresql.conf and restart PostgreSQL"},
		providers.Check{Check: CheckSlotWALKeepSize, Warning: true,
			Message: "max_slot_wal_keep_size (1MiB) is below lag_critical (1GiB): PostgreSQL would invalidate the slot before sluice reacts, forcing a full resync",
			Fix:     "raise it: ALTER SYSTEM SET max_slot_wal_keep_size = '1024MB'; SELECT pg_reload_conf(); or lower lag_critical in the cdc block below 1MiB"},
		providers.Check{Check: CheckWALSenderTimeout, Warning: true,
			Message: "wal_sender_timeout is 5s: the server may drop the stream while sluice commits a large batch",
			Fix:     "ALTER SYSTEM SET wal_sender_timeout = '60s'; SELECT pg_reload_conf();"},
	)

	// The slot in the way is the source's own: it is free for the source.
	inspExec(t, conn, `SELECT pg_drop_replication_slot('other'); SELECT pg_create_physical_replication_slot('sluice_test', true)`)
	if got := runCheck(t, src)[CheckReplicationSlots]; !got.OK {
		t.Errorf("own slot: %+v", got)
	}
}

// TestCheckPrivileges runs the checks as a user that lacks every privilege
// CDC in managed mode needs, then grants them one by one.
func TestCheckPrivileges(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	db := dbName(t, dbURL)
	role := "cdc_user"
	inspExec(t, conn, `
		DROP ROLE IF EXISTS cdc_user;
		CREATE ROLE cdc_user LOGIN;
		DROP ROLE IF EXISTS rds_replication;
		CREATE ROLE rds_replication;
		CREATE SCHEMA "Sales";
		CREATE TABLE "Sales".orders (id int PRIMARY KEY);
		CREATE TABLE b (id int PRIMARY KEY);`)
	t.Cleanup(func() {
		c := inspConnect(t, dbURL)
		inspExec(t, c, `DROP OWNED BY cdc_user; DROP ROLE cdc_user; DROP ROLE rds_replication`)
	})
	src := inspSource(asUser(t, dbURL, role), "public", cdcDecl("Sales.orders"), cdcDecl("b"))

	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckReplication, Message: "user cdc_user may not replicate",
			Fix: `as a superuser: ALTER ROLE "cdc_user" WITH REPLICATION; on Amazon RDS and Aurora: GRANT rds_replication TO "cdc_user";`},
		providers.Check{Check: CheckTableAccess, Message: `the user cannot read "Sales"."orders", "public"."b"`,
			Fix: `GRANT USAGE ON SCHEMA "Sales" TO "cdc_user";` + "\n" +
				`GRANT SELECT ON "Sales"."orders" TO "cdc_user";` + "\n" +
				`GRANT SELECT ON "public"."b" TO "cdc_user";`},
		providers.Check{Check: CheckCreatePublication, Message: "the user may not create publications in database " + db,
			Fix: `GRANT CREATE ON DATABASE "` + db + `" TO "cdc_user"; or create the publication yourself and set management = "self_managed" in the cdc block`},
		providers.Check{Check: CheckTableOwnership,
			Message: `adding a table to a publication requires owning it; the user does not own "Sales"."orders" (owner postgres), "public"."b" (owner postgres)`,
			Fix: `ALTER TABLE "Sales"."orders" OWNER TO "cdc_user";` + "\n" + `ALTER TABLE "public"."b" OWNER TO "cdc_user";` +
				"\nor have the owner create the publication and set management = \"self_managed\" in the cdc block"},
	)

	inspExec(t, conn, `GRANT rds_replication TO cdc_user;
		GRANT USAGE ON SCHEMA "Sales" TO cdc_user;
		GRANT SELECT ON "Sales".orders, b TO cdc_user;
		GRANT CREATE ON DATABASE "`+db+`" TO cdc_user;
		ALTER TABLE "Sales".orders OWNER TO cdc_user;
		ALTER TABLE b OWNER TO cdc_user;`)
	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckReplication, OK: true, Message: "user cdc_user is a member of rds_replication"},
	)

	// A publication someone else owns cannot be managed by sluice.
	inspExec(t, conn, `CREATE PUBLICATION sluice_pub_test`)
	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckReplication, OK: true, Message: "user cdc_user is a member of rds_replication"},
		providers.Check{Check: CheckCreatePublication, Message: "publication sluice_pub_test exists but belongs to postgres, so sluice cannot change it",
			Fix: `ALTER PUBLICATION "sluice_pub_test" OWNER TO "cdc_user"; or set management = "self_managed" in the cdc block`},
	)
}

// TestCheckTables covers cdc tables that are missing, ambiguous, views,
// without a key, or with REPLICA IDENTITY NOTHING.
func TestCheckTables(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	inspExec(t, conn, `
		CREATE TABLE keyless (id int);
		CREATE TABLE "nothing" (id int PRIMARY KEY);
		ALTER TABLE "nothing" REPLICA IDENTITY NOTHING;
		CREATE VIEW v AS SELECT 1 AS x;
		CREATE SCHEMA s1; CREATE SCHEMA s2;
		CREATE TABLE s1.dup (id int PRIMARY KEY); CREATE TABLE s2.dup (id int PRIMARY KEY);
		CREATE TABLE disabled_keyless (id int);`)
	disabled := cdcDecl("disabled_keyless")
	disabled.Enabled = false

	src := inspSource(dbURL, "public", cdcDecl("keyless"), cdcDecl("nothing"), cdcDecl("v"), cdcDecl("missing"), cdcDecl("s1.dup"), disabled)
	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckTablesExist, Message: `not found: missing; not tables: "public"."v"`,
			Fix: "create the missing tables or correct their names (`sluice inspect` lists the live ones); views and foreign tables have no WAL of their own: sync them with full_refresh"},
		providers.Check{Check: CheckPrimaryKeys, Message: `no primary key: "public"."keyless"`,
			Fix: "cdc merges changes by primary key: add one (ALTER TABLE ... ADD PRIMARY KEY (...);), or sync these tables with full_refresh, incremental or append"},
		providers.Check{Check: CheckReplicaIdentity, Warning: true,
			Message: `REPLICA IDENTITY NOTHING on "public"."nothing": once published, UPDATE and DELETE on them fail`,
			Fix:     `ALTER TABLE "public"."nothing" REPLICA IDENTITY DEFAULT;`},
	)

	// With schema = "" an unqualified name is looked up in every schema.
	src = inspSource(dbURL, "", cdcDecl("dup"), cdcDecl("nothing"))
	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckTablesExist, Message: `ambiguous: dup (in schemas "s1", "s2")`,
			Fix: `qualify the ambiguous names with their schema, as in table "sales.orders"`},
		providers.Check{Check: CheckReplicaIdentity, Warning: true,
			Message: `REPLICA IDENTITY NOTHING on "public"."nothing": once published, UPDATE and DELETE on them fail`,
			Fix:     `ALTER TABLE "public"."nothing" REPLICA IDENTITY DEFAULT;`},
	)
}

// TestCheckSelfManagedPublication covers a publication that is missing,
// lacks tables, or publishes partitions under their own names.
func TestCheckSelfManagedPublication(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	conn := inspConnect(t, dbURL)
	inspExec(t, conn, `
		CREATE TABLE a (id int PRIMARY KEY);
		CREATE TABLE "B.b" (id int PRIMARY KEY);
		CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY HASH (id);
		CREATE TABLE parted_0 PARTITION OF parted FOR VALUES WITH (MODULUS 1, REMAINDER 0);
		CREATE SCHEMA whole; CREATE TABLE whole.w (id int PRIMARY KEY);`)
	src := inspSource(dbURL, "public", cdcDecl("a"), cdcDecl(`"B.b"`), cdcDecl("parted"), cdcDecl("whole.w"))
	src.Postgres.CDC.Management = "self_managed"
	src.Postgres.CDC.Publication = "My Pub"

	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckPublication, Message: "publication My Pub does not exist",
			Fix: `CREATE PUBLICATION "My Pub" FOR TABLE "public"."a", "public"."B.b", "public"."parted", "whole"."w" WITH (publish_via_partition_root = true);`},
	)

	inspExec(t, conn, `CREATE PUBLICATION "My Pub" FOR TABLE a, parted, TABLES IN SCHEMA whole WITH (publish = 'insert, update')`)
	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckPublication,
			Message: `publication My Pub: it lacks "public"."B.b"; it does not publish delete; it publishes partitioned tables' changes under their partitions' names`,
			Fix: `ALTER PUBLICATION "My Pub" ADD TABLE "public"."B.b";` + "\n" +
				`ALTER PUBLICATION "My Pub" SET (publish = 'insert, update, delete, truncate');` + "\n" +
				`ALTER PUBLICATION "My Pub" SET (publish_via_partition_root = true);`},
	)

	inspExec(t, conn, `ALTER PUBLICATION "My Pub" ADD TABLE "B.b";
		ALTER PUBLICATION "My Pub" SET (publish = 'insert, update, delete', publish_via_partition_root = true)`)
	expectChecks(t, runCheck(t, src),
		providers.Check{Check: CheckPublication, OK: true, Message: "publication My Pub holds every cdc table"},
	)
}
