package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pg"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestCrashBeforeCommit fails every mode's commit after the rows are
// copied and the position written, just before COMMIT, and after Abort:
// the previous version and position are intact, and nothing is left
// behind.
func TestCrashBeforeCommit(t *testing.T) {
	for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Merge, warehouse.Append} {
		t.Run(mode.String(), func(t *testing.T) {
			w := newWH(t, false)
			first := records.Position{Cursor: "first"}
			commit(t, w, "orders", mode, ordersSchema, first, ordersBatch(row{id: 1, name: "a"}))
			before := w.rows(t, `SELECT id, name, amount, _sluice_synced_at FROM wh.orders ORDER BY 1`)

			crash := errors.New("crash")
			beforeCommit = func() error { return crash }
			_, err := tryCommit(w, "orders", mode, ordersSchema, records.Position{Cursor: "second"},
				ordersBatch(row{id: 1, name: "b"}, row{id: 2, name: "c"}))
			beforeCommit = nil
			if !errors.Is(err, crash) {
				t.Fatalf("commit error = %v, want the injected crash", err)
			}
			// Abort after some rows are copied.
			tbl, err := w.Table(ctx, "orders")
			if err != nil {
				t.Fatal(err)
			}
			tx, err := tbl.Begin(ctx, mode, ordersSchema, "incremental")
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Write(ctx, ordersBatch(row{id: 3, name: "d"})); err != nil {
				t.Fatal(err)
			}
			if err := tx.Abort(ctx); err != nil {
				t.Fatal(err)
			}

			if diff := cmp.Diff(before, w.rows(t, `SELECT id, name, amount, _sluice_synced_at FROM wh.orders ORDER BY 1`)); diff != "" {
				t.Errorf("rows after the crash (-want +got):\n%s", diff)
			}
			if pos, ok := position(t, w, "orders"); !ok || pos.Cursor != "first" {
				t.Errorf("position = %+v, %v; want the first", pos, ok)
			}
			got := w.rows(t, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'wh' AND c.relkind = 'r' ORDER BY 1`)
			if diff := cmp.Diff([][]string{{"_sluice_positions"}, {"orders"}}, got); diff != "" {
				t.Errorf("tables (-want +got):\n%s", diff)
			}
			// The table takes commits again.
			commit(t, w, "orders", mode, ordersSchema, records.Position{Cursor: "third"}, ordersBatch(row{id: 4, name: "e"}))
			if pos, _ := position(t, w, "orders"); pos.Cursor != "third" {
				t.Errorf("position = %+v, want the third", pos)
			}
		})
	}
}

func TestReplaceWithViews(t *testing.T) {
	for _, cascade := range []bool{false, true} {
		t.Run(map[bool]string{false: "refused", true: "drop_cascade"}[cascade], func(t *testing.T) {
			w := newWH(t, cascade)
			commit(t, w, "orders", warehouse.Replace, ordersSchema, records.Position{Cursor: "1"}, ordersBatch(row{id: 1, name: "a"}))
			exec(t, w.conn, `CREATE VIEW wh."Big Orders" AS SELECT * FROM wh.orders WHERE amount > 0`)
			exec(t, w.conn, `CREATE SCHEMA reports`)
			exec(t, w.conn, `CREATE MATERIALIZED VIEW reports.names AS SELECT name FROM wh.orders`)
			exec(t, w.conn, `CREATE VIEW reports.on_view AS SELECT * FROM reports.names`)

			_, err := tryCommit(w, "orders", warehouse.Replace, ordersSchema, records.Position{Cursor: "2"}, ordersBatch(row{id: 2, name: "b"}))
			views := w.rows(t, `SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind IN ('v', 'm') AND c.relnamespace::regnamespace::text IN ('wh', 'reports') ORDER BY 1`)
			if !cascade {
				if err == nil || !strings.Contains(err.Error(), `reports.names, wh."Big Orders"`) || !strings.Contains(err.Error(), "drop_cascade") {
					t.Fatalf("err = %v, want the views named and drop_cascade suggested", err)
				}
				if len(views) != 3 {
					t.Errorf("views = %v, want all three kept", views)
				}
				if pos, _ := position(t, w, "orders"); pos.Cursor != "1" {
					t.Errorf("position = %+v, want the first", pos)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(views) != 0 {
				t.Errorf("views = %v, want them dropped", views)
			}
			if diff := cmp.Diff([][]string{{"2", "b"}}, w.rows(t, `SELECT id, name FROM wh.orders`)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheck: a user without CREATE on the schema is told the GRANT to run.
func TestCheck(t *testing.T) {
	w := newWH(t, false)
	ctx := context.Background()
	if err := w.Check(ctx); err != nil {
		t.Fatalf("superuser: %v", err)
	}
	exec(t, w.conn, `DROP ROLE IF EXISTS "Loader"`)
	exec(t, w.conn, `CREATE ROLE "Loader" LOGIN`)
	t.Cleanup(func() {
		exec(t, w.conn, `DROP OWNED BY "Loader"`)
		exec(t, w.conn, `DROP ROLE "Loader"`)
	})
	db := w.rows(t, `SELECT quote_ident(current_database())`)[0][0]
	exec(t, w.conn, `REVOKE ALL ON DATABASE `+db+` FROM PUBLIC`)
	exec(t, w.conn, `GRANT CONNECT ON DATABASE `+db+` TO "Loader"`)
	exec(t, w.conn, `GRANT USAGE ON SCHEMA wh TO "Loader"`)

	u := withUser(t, w.url, "Loader")
	cfg := &config.Warehouse{Backend: "postgres", URL: u, Schema: "wh"}
	grant := `GRANT USAGE, CREATE ON SCHEMA "wh" TO "Loader";`
	// Open needs the privilege too (for the positions table), and says so.
	if _, err := Open(ctx, cfg, t.TempDir()); err == nil || !strings.Contains(err.Error(), grant) {
		t.Errorf("Open = %v, want the GRANT", err)
	}
	other := New(cfg, t.TempDir())
	defer other.Close()
	if err := other.Check(ctx); err == nil || !strings.Contains(err.Error(), grant) {
		t.Errorf("Check = %v, want the GRANT", err)
	}
	missing := New(&config.Warehouse{Backend: "postgres", URL: u, Schema: "New Schema"}, t.TempDir())
	defer missing.Close()
	err := missing.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), `CREATE SCHEMA "New Schema" AUTHORIZATION "Loader";`) {
		t.Errorf("Check = %v, want the CREATE SCHEMA", err)
	}
	exec(t, w.conn, `GRANT CREATE ON SCHEMA wh TO "Loader"`)
	if err := other.Check(ctx); err != nil {
		t.Errorf("Check after the GRANT: %v", err)
	}
}

// TestConnectionOptions: the warehouse block's connection options reach
// the dialer sources use (whose TLS and SSH tunnel handling is tested in
// providers/postgres): sslmode, certificates, the tunnel, the directory
// relative paths are read from.
func TestConnectionOptions(t *testing.T) {
	tunnel := &config.SSHTunnel{Host: "bastion", Port: 2222, User: "u", Password: "p"}
	w := &config.Warehouse{Backend: "postgres", URL: "postgres://wh@db/warehouse", SSLMode: "verify-full",
		SSLRootCert: "ca.pem", SSLCert: "client.pem", SSLKey: "client.key", SSHTunnel: tunnel}
	src := pg.WarehouseSource(w, "/etc/sluice")
	want := &config.Postgres{ConnectionString: w.URL, SSLMode: "verify-full", SSLRootCert: "ca.pem", SSLCert: "client.pem", SSLKey: "client.key",
		SSHTunnel: tunnel, ConnectTimeout: config.DefaultConnectTimeout}
	if diff := cmp.Diff(want, src.Postgres); diff != "" {
		t.Errorf("source settings (-want +got):\n%s", diff)
	}
	if src.Dir != "/etc/sluice" {
		t.Errorf("dir = %q", src.Dir)
	}
	// Without sslmode the URL's applies, else require as for sources.
	for _, tt := range []struct {
		url, mode string
		tls       bool
	}{
		{"postgres://wh@db/warehouse", "", true},
		{"postgres://wh@db/warehouse?sslmode=disable", "", false},
		{"postgres://wh@db/warehouse?sslmode=require", "disable", false},
	} {
		cc, err := New(&config.Warehouse{Backend: "postgres", URL: tt.url, SSLMode: tt.mode}, t.TempDir()).dialer.ConnConfig()
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if got := cc.TLSConfig != nil; got != tt.tls {
			t.Errorf("url %s, sslmode %q: TLS = %v, want %v", tt.url, tt.mode, got, tt.tls)
		}
	}
}
