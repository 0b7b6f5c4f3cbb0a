package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// syncConfig has a table of every batch kind, a cdc table and a disabled
// one; frequency 1h, so that a second run -once finds nothing due.
var syncConfig = shopHeader + shopSource(`  frequency         = "1h"

  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "customers" {
    sync = "full_refresh"
  }
  table "events" {
    sync = "cdc"
  }
  table "Audit Log" {
    sync    = "full_refresh"
    enabled = false
  }
`)

// newSyncShop is the shop with syncConfig; the commands that take no
// -var read the variables from the environment.
func newSyncShop(t *testing.T) *shop {
	s := newShop(t)
	s.write(syncConfig)
	s.runEnv()
	return s
}

// statusOf reads `status -json` for one table.
func (s *shop) statusOf(addr string) tableStatusJSON {
	s.t.Helper()
	out := s.must(0, "status", "-json")
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		s.t.Fatalf("status -json: %v\n%s", err, out)
	}
	for _, t := range st.Tables {
		if t.Address == addr {
			return t
		}
	}
	s.t.Fatalf("status has no %s:\n%s", addr, out)
	return tableStatusJSON{}
}

// line returns the summary line of a table, "" when there is none.
func line(out, addr string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, addr+" ") {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	return ""
}

// TestSyncNow: a table synced recently (not due) is synced again by
// `sync ADDR` and picks up new rows; run -once says "not due" for it;
// `sync` alone syncs every enabled table (cdc included); a failing table
// exits 1; unknown, disabled and unapplied addresses are refused, naming
// them, before anything runs.
func TestSyncNow(t *testing.T) {
	s := newSyncShop(t)
	s.exec(`INSERT INTO orders (id, status, updated_at) VALUES (1, 'new', now() - interval '1 hour'), (2, 'new', now() - interval '1 hour');
		INSERT INTO customers VALUES (1, 'a@example.com');
		INSERT INTO events VALUES (1, 'signup', now())`)
	s.must(0, "apply", "-auto-approve")
	out := s.must(0, "run", "-once")
	if got := line(out, "postgres.shop/orders"); got != "postgres.shop/orders completed 2 rows (2 read)" {
		t.Errorf("first run -once: orders line %q\n%s", got, out)
	}

	// Not due: run -once leaves it and says so, with the next sync time.
	s.exec(`INSERT INTO orders (id, status, updated_at) VALUES (3, 'late', now())`)
	out = s.must(0, "run", "-once")
	next := s.statusOf("postgres.shop/orders").NextSyncAt
	if got, want := line(out, "postgres.shop/orders"), "postgres.shop/orders not due next sync "+next.Format("2006-01-02 15:04:05Z"); got != want {
		t.Errorf("run -once of a table not due: %q, want %q\n%s", got, want, out)
	}
	if got := line(out, "postgres.shop/Audit Log"); got != "postgres.shop/Audit Log disabled" {
		t.Errorf("disabled table line %q", got)
	}
	if st := s.statusOf("postgres.shop/orders"); st.RowsSynced != 2 {
		t.Fatalf("run -once synced a table that was not due: %+v", st)
	}

	// sync ADDR syncs it now, and only it; -id names the runner in
	// status.
	out = s.must(0, "sync", "-id=manual-sync", "postgres.shop/orders")
	if got := line(out, "postgres.shop/orders"); !strings.HasPrefix(got, "postgres.shop/orders completed 3 rows") {
		t.Errorf("sync: orders line %q\n%s", got, out)
	}
	if st := s.statusOf("postgres.shop/orders"); st.Runner != "manual-sync" {
		t.Errorf("status after sync -id=manual-sync: %+v", st)
	}
	if line(out, "postgres.shop/customers") != "" || !strings.Contains(out, "All 1 sync(s) completed") {
		t.Errorf("sync of one table printed others:\n%s", out)
	}

	// sync with no address: every enabled table, cdc drained.
	s.exec(`INSERT INTO customers VALUES (2, 'b@example.com'); INSERT INTO events VALUES (2, 'login', now())`)
	out = s.must(0, "sync")
	for addr, want := range map[string]string{
		"postgres.shop/orders":    "postgres.shop/orders completed 3 rows",
		"postgres.shop/customers": "postgres.shop/customers completed 2 rows (2 read)",
		"postgres.shop/events":    "postgres.shop/events completed 2 rows",
		"postgres.shop/Audit Log": "",
	} {
		if got := line(out, addr); !strings.HasPrefix(got, want) || (want == "") != (got == "") {
			t.Errorf("sync: %s line %q, want %q\n%s", addr, got, want, out)
		}
	}
	// A source address: its enabled tables.
	out = s.must(0, "sync", "postgres.shop")
	if !strings.Contains(out, "All 3 sync(s) completed") {
		t.Errorf("sync of a source:\n%s", out)
	}

	// Addresses that cannot be synced are refused before anything runs.
	s.write(strings.Replace(syncConfig, `  table "customers" {`, `  table "later" {
    sync = "full_refresh"
  }
  table "customers" {`, 1))
	s.exec(`CREATE TABLE later (id bigint PRIMARY KEY)`)
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"postgres.shop/ordrs"}, []string{"postgres.shop/ordrs is not a table or source of this configuration.", `Did you mean "postgres.shop/orders"?`}},
		{[]string{"postgres.shp"}, []string{"postgres.shp is not a table or source", `Did you mean "postgres.shop"?`}},
		{[]string{"postgres.shop/Audit Log"}, []string{"postgres.shop/Audit Log is disabled (enabled = false)"}},
		{[]string{"postgres.shop/later"}, []string{"postgres.shop/later is in the configuration but not applied yet", "sluice apply"}},
		{[]string{"postgres.shop/orders", "stripe.nope"}, []string{"stripe.nope is not a table or source"}},
	} {
		before := s.statusOf("postgres.shop/orders").LastSyncAt
		code, out, errOut := s.run(append([]string{"sync"}, tt.args...)...)
		if code != 1 {
			t.Errorf("sync %v: exit %d\n%s%s", tt.args, code, out, errOut)
		}
		for _, w := range tt.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("sync %v: stderr lacks %q:\n%s", tt.args, w, errOut)
			}
		}
		if after := s.statusOf("postgres.shop/orders").LastSyncAt; !after.Equal(*before) {
			t.Errorf("sync %v synced orders although it was refused", tt.args)
		}
	}

	// A table that fails: exit 1, named.
	s.exec(`DROP TABLE customers`)
	code, out, errOut := s.run("sync", "postgres.shop/customers", "postgres.shop/orders")
	if code != 1 || !strings.Contains(out, "1 sync(s) failed: postgres.shop/customers") || !strings.HasPrefix(line(out, "postgres.shop/orders"), "postgres.shop/orders completed") {
		t.Errorf("sync with a failing table: exit %d\n%s%s", code, out, errOut)
	}
}

// TestStatusNextSyncFollowsApply: after apply changes a table's
// frequency, status computes the next sync from the new one, before any
// runner ran again.
func TestStatusNextSyncFollowsApply(t *testing.T) {
	s := newSyncShop(t)
	cfg := syncConfig
	s.must(0, "apply", "-auto-approve")
	s.must(0, "sync", "postgres.shop/customers")
	st := s.statusOf("postgres.shop/customers")
	if got := st.NextSyncAt.Sub(*st.LastSyncAt); got < 59*time.Minute || got > time.Hour {
		t.Fatalf("next sync %s after the last, want 1h", got)
	}
	s.write(strings.Replace(cfg, `  table "customers" {
    sync = "full_refresh"`, `  table "customers" {
    sync      = "full_refresh"
    frequency = "24h"`, 1))
	s.must(0, "apply", "-auto-approve")
	st = s.statusOf("postgres.shop/customers")
	if got := st.NextSyncAt.Sub(*st.LastSyncAt); got < 23*time.Hour+59*time.Minute || got > 24*time.Hour {
		t.Errorf("after apply set frequency 24h, next sync is %s after the last", got)
	}
	out := s.must(0, "status")
	if !regexp.MustCompile(`postgres\.shop/customers .* completed .*` + regexp.QuoteMeta(st.NextSyncAt.Format("2006-01-02 15:04:05Z"))).MatchString(out) {
		t.Errorf("status text does not show the new next sync %s:\n%s", st.NextSyncAt, out)
	}
}

// TestSyncHelp: sync is in the command list and has its usage.
func TestSyncHelp(t *testing.T) {
	_, out, _ := sluice(t, "", "help")
	if !strings.Contains(out, "\n  sync ") {
		t.Errorf("help does not list sync:\n%s", out)
	}
	code, out, _ := sluice(t, "", "sync", "-h")
	if code != 0 || !strings.HasPrefix(out, "Usage: sluice sync [-var=K=V]... [-var-file=F]... [ADDR...]") || !strings.Contains(out, "-concurrency") {
		t.Errorf("sync -h: exit %d\n%s", code, out)
	}
}
