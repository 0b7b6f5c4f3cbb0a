package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

const secretPassword = "s3cret-pw-7f1e9a"

const shopSchema = `
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, status text, total numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON orders (updated_at);
CREATE TABLE events (id bigint PRIMARY KEY, kind text, created_at timestamptz);
CREATE TABLE "Audit Log" (id bigint PRIMARY KEY, msg text);
`

const shopConfig = `
variable "url" {
  type = string
}
variable "pg_password" {
  type      = string
  sensitive = true
}
source "postgres" "shop" {
  connection_string = var.url
  password          = var.pg_password
  prefix            = "shop"

  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "events" {
    sync = "cdc"
  }
  table "Audit Log" {
    sync = "cdc"
  }
}
`

// shop is a source database with the shop schema and a configuration
// directory pointing at it.
type shop struct {
	t    testing.TB
	url  string
	dir  string
	conn *pgx.Conn
	out  strings.Builder // everything sluice printed, for the secret check
}

func newShop(t testing.TB) *shop {
	url := pgtest.NewDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, shopSchema); err != nil {
		t.Fatal(err)
	}
	s := &shop{t: t, url: url, dir: t.TempDir(), conn: conn}
	s.write(shopConfig)
	return s
}

func (s *shop) write(cfg string) {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, "main.hcl"), []byte(cfg), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// run runs sluice in the shop's directory with its variables.
func (s *shop) run(args ...string) (int, string, string) {
	s.t.Helper()
	full := append([]string{"-chdir=" + s.dir, "-no-color", args[0]}, args[1:]...)
	if args[0] == "plan" || args[0] == "apply" || args[0] == "destroy" {
		full = append(full, "-var=url="+s.url, "-var=pg_password="+secretPassword)
	}
	code, out, errOut := sluice(s.t, "", full...)
	s.out.WriteString(out + errOut)
	return code, out, errOut
}

func (s *shop) must(want int, args ...string) string {
	s.t.Helper()
	code, out, errOut := s.run(args...)
	if code != want {
		s.t.Fatalf("sluice %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out + errOut
}

func (s *shop) query(sql string, args ...any) string {
	s.t.Helper()
	var v string
	if err := s.conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func (s *shop) exec(sql string) {
	s.t.Helper()
	if _, err := s.conn.Exec(context.Background(), sql); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
}

func (s *shop) publicationTables() string {
	return s.query(`SELECT coalesce(string_agg(schemaname || '.' || tablename, ',' ORDER BY tablename), '') FROM pg_publication_tables WHERE pubname = 'sluice_pub_shop'`)
}

// TestPlanApplyDriftRepair is the end-to-end path: create, an empty
// second plan, a change, drift detected with exit code 2, repaired by
// apply, a stale saved plan refused, destroy; and the password nowhere.
func TestPlanApplyDriftRepair(t *testing.T) {
	s := newShop(t)

	out := s.must(2, "plan", "-detailed-exitcode")
	for _, want := range []string{`# postgres.shop will be created`, `password`, `(sensitive)`, "6 to create"} {
		if !strings.Contains(out, want) {
			t.Errorf("first plan lacks %q:\n%s", want, out)
		}
	}
	s.must(0, "apply", "-auto-approve")
	if got := s.publicationTables(); got != "public.Audit Log,public.events" {
		t.Errorf("publication tables = %q", got)
	}
	if got := s.query(`SELECT plugin FROM pg_replication_slots WHERE slot_name = 'sluice_shop'`); got != "pgoutput" {
		t.Errorf("slot plugin = %q", got)
	}
	out = s.must(0, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "No changes.") {
		t.Errorf("plan after apply is not empty:\n%s", out)
	}

	// A change of the files.
	s.write(strings.Replace(shopConfig, `  table "events" {
    sync = "cdc"
  }`, `  table "events" {
    sync              = "append"
    incremental_field = "id"
  }
  table "customers" {
    sync = "full_refresh"
  }`, 1))
	out = s.must(2, "plan", "-detailed-exitcode")
	for _, want := range []string{"will be resynced", "sync type changes from cdc to append", "drop table public.events", "postgres.shop/customers will be created"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan of the change lacks %q:\n%s", want, out)
		}
	}
	s.must(0, "apply", "-auto-approve")
	if got := s.publicationTables(); got != "public.Audit Log" {
		t.Errorf("publication tables after the change = %q", got)
	}
	s.must(0, "plan", "-detailed-exitcode")

	// Drift: a table leaves the publication, the slot is dropped.
	s.exec(`ALTER PUBLICATION sluice_pub_shop DROP TABLE "Audit Log"`)
	s.exec(`SELECT pg_drop_replication_slot('sluice_shop')`)
	out = s.must(2, "plan", "-detailed-exitcode")
	for _, want := range []string{"table public.Audit Log missing from publication sluice_pub_shop", "replication slot sluice_shop is missing at the source"} {
		if !strings.Contains(out, want) {
			t.Errorf("drift plan lacks %q:\n%s", want, out)
		}
	}
	_, jsonOut, _ := s.run("plan", "-json")
	if !strings.Contains(jsonOut, `"drift": [`) || !strings.Contains(jsonOut, `"kind": "slot"`) {
		t.Errorf("plan -json lacks the drift:\n%s", jsonOut)
	}
	s.must(0, "apply", "-auto-approve")
	if got := s.publicationTables(); got != "public.Audit Log" {
		t.Errorf("publication tables after repair = %q", got)
	}
	s.must(0, "plan", "-detailed-exitcode")

	// A saved plan goes stale when the state moves on.
	s.write(shopConfig)
	s.must(2, "plan", "-out=first.plan", "-detailed-exitcode")
	s.must(0, "show", "first.plan")
	s.must(0, "apply", "-auto-approve")
	_, _, errOut := s.run("apply", "first.plan")
	if !strings.Contains(errOut, "saved plan is stale") {
		t.Errorf("applying a stale plan: %q", errOut)
	}
	// A fresh saved plan applies without a prompt.
	s.exec(`ALTER PUBLICATION sluice_pub_shop DROP TABLE events`)
	s.must(2, "plan", "-out=second.plan", "-detailed-exitcode")
	s.must(0, "apply", "second.plan")
	s.must(0, "plan", "-detailed-exitcode")
	s.must(0, "show")

	// The password is nowhere: not in state, plan files or any output.
	s.must(0, "destroy", "-auto-approve")
	if n := s.query(`SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = 'sluice_shop'`); n != "0" {
		t.Errorf("destroy left the slot")
	}
	if n := s.query(`SELECT count(*)::text FROM pg_publication WHERE pubname = 'sluice_pub_shop'`); n != "0" {
		t.Errorf("destroy left the publication")
	}
	filepath.Walk(s.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), secretPassword) && filepath.Base(path) != "main.hcl" {
			t.Errorf("the password is in %s", path)
		}
		return nil
	})
	if strings.Contains(s.out.String(), secretPassword) {
		t.Error("the password was printed")
	}
}

func TestApplyRefusesToPromptWithoutTerminal(t *testing.T) {
	s := newShop(t)
	code, _, errOut := s.run("apply")
	if code != 1 || !strings.Contains(errOut, "standard input is not a terminal") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if n := s.query(`SELECT count(*)::text FROM pg_replication_slots`); n != "0" {
		t.Error("apply without approval created a slot")
	}
}

func TestPlanErrorsPointAtTheLine(t *testing.T) {
	s := newShop(t)
	s.write(strings.Replace(shopConfig, `table "orders" {`, `table "ordrs" {`, 1))
	code, _, errOut := s.run("plan")
	if code != 1 || !strings.Contains(errOut, "main.hcl:14,3-16: Table does not exist") || !strings.Contains(errOut, `Did you mean "public.orders"?`) {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestSelfManagedPublication: plan names the SQL a DBA must run for a
// self-managed publication; sluice never creates, alters or drops it.
func TestSelfManagedPublication(t *testing.T) {
	s := newShop(t)
	s.write(strings.Replace(shopConfig, `  prefix            = "shop"`, `  prefix            = "shop"
  cdc {
    management  = "self_managed"
    publication = "dba_pub"
  }`, 1))
	code, _, errOut := s.run("apply", "-auto-approve")
	if code != 1 || !strings.Contains(errOut, `CREATE PUBLICATION "dba_pub"`) {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if n := s.query(`SELECT count(*)::text FROM pg_publication`); n != "0" {
		t.Fatal("sluice created a self-managed publication")
	}
	s.exec(`CREATE PUBLICATION dba_pub FOR TABLE "Audit Log", events, orders`)
	s.must(0, "apply", "-auto-approve")
	s.must(0, "plan", "-detailed-exitcode")
	if got := s.query(`SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'dba_pub'`); got != "Audit Log,events,orders" {
		t.Errorf("publication tables = %q", got)
	}
	s.must(0, "destroy", "-auto-approve")
	if n := s.query(`SELECT count(*)::text FROM pg_publication`); n != "1" {
		t.Error("destroy dropped the self-managed publication")
	}
	if n := s.query(`SELECT count(*)::text FROM pg_replication_slots`); n != "0" {
		t.Error("destroy left the slot")
	}
}

// TestApplyResumesAfterFailure: a step fails part-way (a foreign slot holds
// the slot's name); what was done before is recorded, and once the cause
// is gone apply finishes the job and the next plan is empty.
func TestApplyResumesAfterFailure(t *testing.T) {
	s := newShop(t)
	s.exec(`SELECT pg_create_logical_replication_slot('sluice_shop', 'test_decoding')`)
	code, _, errOut := s.run("apply", "-auto-approve")
	if code != 1 || !strings.Contains(errOut, `replication slot sluice_shop already exists with plugin "test_decoding"`) {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	out := s.must(2, "plan", "-detailed-exitcode")
	if strings.Contains(out, "publication sluice_pub_shop will be created") || !strings.Contains(out, "slot sluice_shop will be created") {
		t.Errorf("after the failure, plan does not start where apply stopped:\n%s", out)
	}
	s.exec(`SELECT pg_drop_replication_slot('sluice_shop')`)
	s.must(0, "apply", "-auto-approve")
	s.must(0, "plan", "-detailed-exitcode")
}

// TestConcurrentAppliesPostgresState: two applies at once against the
// postgres state backend; one waits for the lock (or fails naming the
// holder), and the state ends up right.
func TestConcurrentAppliesPostgresState(t *testing.T) {
	s := newShop(t)
	stateURL := pgtest.NewDB(t)
	s.write(strings.Replace(shopConfig, "source \"postgres\" \"shop\" {", "state {\n  backend = \"postgres\"\n  url     = \""+stateURL+"\"\n}\nrunner {\n  fleet = false\n}\n\nsource \"postgres\" \"shop\" {", 1))

	type result struct {
		code    int
		errText string
	}
	results := make(chan result, 2)
	for _, timeout := range []string{"-lock-timeout=30s", "-lock-timeout=0s"} {
		go func(timeout string) {
			var out, errOut strings.Builder
			code := run([]string{"-chdir=" + s.dir, "-no-color", "apply", "-auto-approve", timeout,
				"-var=url=" + s.url, "-var=pg_password=" + secretPassword}, strings.NewReader(""), &out, &errOut)
			results <- result{code, errOut.String()}
		}(timeout)
	}
	ok := 0
	for range 2 {
		r := <-results
		switch {
		case r.code == 0:
			ok++
		case strings.Contains(r.errText, "state is locked") && strings.Contains(r.errText, "held by"):
			// The impatient one lost the race and named the holder.
		default:
			t.Errorf("apply: exit %d, stderr:\n%s", r.code, r.errText)
		}
	}
	if ok == 0 {
		t.Fatal("neither apply succeeded")
	}
	s.must(0, "plan", "-detailed-exitcode")
	if n := s.query(`SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = 'sluice_shop'`); n != "1" {
		t.Errorf("%s slots", n)
	}
	// A scheduled drift check does not take the lock.
	s.must(0, "plan", "-lock=false", "-detailed-exitcode")
}
