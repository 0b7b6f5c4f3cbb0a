package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/providers"
)

// TestTablePatterns: a tables block plans every live table it matches
// that has no table block of its own (the table block wins), leaving out
// its excludes and views; the tables land in the warehouse, a cdc pattern
// puts its tables in the publication and streams them; a table created at
// the source later is a create in the next plan (exit 2 with
// -detailed-exitcode), one dropped a delete; inspect marks what a pattern
// covers.
func TestTablePatterns(t *testing.T) {
	s := newShop(t)
	whURL := pgtest.NewDB(t)
	s.exec(`CREATE TABLE audit_a (id bigint PRIMARY KEY, msg text);
		CREATE TABLE audit_b (id bigint PRIMARY KEY, msg text);
		CREATE TABLE audit_tmp1 (id bigint PRIMARY KEY);
		CREATE VIEW audit_v AS SELECT * FROM audit_a;
		CREATE TABLE ev_clicks (id bigint PRIMARY KEY, at timestamptz);
		INSERT INTO audit_a VALUES (1, 'a'), (2, 'b');
		INSERT INTO audit_b VALUES (1, 'x');
		INSERT INTO ev_clicks VALUES (1, now())`)
	s.write(shopHeader + `
warehouse {
  backend = "postgres"
  url     = "` + whURL + `"
  schema  = "raw"
}
` + shopSource(`
  table "audit_b" {
    sync    = "full_refresh"
    enabled = false
  }
  tables "audit_*" {
    sync    = "full_refresh"
    exclude = ["audit_tmp*"]
  }
  tables "ev_*" {
    sync = "cdc"
  }
`))
	s.runEnv()
	out := s.must(2, "plan", "-detailed-exitcode")
	for _, want := range []string{"postgres.shop/audit_a will be created", "postgres.shop/ev_clicks will be created", "postgres.shop/audit_b will be created"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"audit_tmp1", "audit_v"} {
		if strings.Contains(out, not) {
			t.Errorf("plan plans %s, which the pattern excludes or is a view:\n%s", not, out)
		}
	}
	s.must(0, "apply", "-auto-approve")
	if got := s.publicationTables(); got != "public.ev_clicks" {
		t.Errorf("publication holds %q, want the cdc pattern's table", got)
	}
	s.exec(`INSERT INTO ev_clicks VALUES (2, now())`)
	s.must(0, "run", "-once")
	q := whQuery(t, whURL)
	if got := q(`SELECT string_agg(id || ':' || msg, ',' ORDER BY id) FROM raw.shop_audit_a`); got != "1:a,2:b" {
		t.Errorf("shop_audit_a holds %q", got)
	}
	if got := q(`SELECT count(*)::text FROM raw.shop_ev_clicks WHERE NOT _sluice_deleted`); got != "2" {
		t.Errorf("shop_ev_clicks holds %s rows, want 2 (snapshot and stream)", got)
	}
	if got := q(`SELECT (to_regclass('raw.shop_audit_b') IS NULL)::text`); got != "true" {
		t.Errorf("audit_b, disabled by its own table block, was synced")
	}

	// Nothing changed: an empty plan.
	s.must(0, "plan", "-detailed-exitcode")
	// A table created at the source is a create; one dropped, a delete.
	s.exec(`CREATE TABLE audit_c (id bigint PRIMARY KEY); DROP VIEW audit_v; DROP TABLE audit_a`)
	out = s.must(2, "plan", "-detailed-exitcode")
	for _, want := range []string{"postgres.shop/audit_c will be created", "postgres.shop/audit_a will be"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan after a create and a drop at the source lacks %q:\n%s", want, out)
		}
	}
	// Without refresh, what a pattern planned is not planned away.
	if out := s.must(0, "plan", "-refresh=false", "-detailed-exitcode"); strings.Contains(out, "destroyed") {
		t.Errorf("plan -refresh=false deletes pattern tables:\n%s", out)
	}

	js := s.must(0, "inspect", "-json", "postgres.shop")
	var obs providers.Observed
	if err := json.Unmarshal([]byte(js), &obs); err != nil {
		t.Fatal(err)
	}
	covered := map[string]string{}
	for _, tb := range obs.Tables {
		covered[tb.Name] = tb.Pattern
	}
	want := map[string]string{"audit_c": "audit_*", "ev_clicks": "ev_*", "audit_b": "", "audit_tmp1": "", "orders": ""}
	for name, p := range want {
		if covered[name] != p {
			t.Errorf("inspect: %s covered by %q, want %q", name, covered[name], p)
		}
	}
	if text := s.must(0, "inspect", "postgres.shop"); !strings.Contains(text, `audit_c  (tables "audit_*")`) {
		t.Errorf("inspect does not mark what the pattern covers:\n%s", text)
	}
}
