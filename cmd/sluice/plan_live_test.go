package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/providers"
)

// shopHeader declares the shop's variables; a test appends its warehouse
// and source blocks.
const shopHeader = `
variable "url" {
  type = string
}
variable "pg_password" {
  type      = string
  sensitive = true
}
`

// shopSource is a source block of the shop with the given table blocks.
func shopSource(tables string) string {
	return `
source "postgres" "shop" {
  connection_string = var.url
  password          = var.pg_password
  prefix            = "shop"
` + tables + `
}
`
}

// runEnv gives `run` (which takes no -var) the shop's variables.
func (s *shop) runEnv() {
	s.t.Setenv("SLUICE_VAR_url", s.url)
	s.t.Setenv("SLUICE_VAR_pg_password", secretPassword)
}

// whQuery returns a query function on a PostgreSQL warehouse database.
func whQuery(t *testing.T, whURL string) func(sql string) string {
	ctx := context.Background()
	wh, err := pgx.Connect(ctx, whURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close(context.Background()) })
	return func(sql string) string {
		t.Helper()
		var v string
		if err := wh.QueryRow(ctx, sql).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
}

// TestTablesInOtherSchemas: table blocks naming another schema than the
// source's, mixed-case and quoted included, plan, apply (the cdc one joins
// the publication by its qualified name) and sync with every batch sync
// type and cdc, into <prefix>_<schema>_<table>.
func TestTablesInOtherSchemas(t *testing.T) {
	s := newShop(t)
	s.exec(`
		CREATE SCHEMA sales;
		CREATE TABLE sales.regions (id int PRIMARY KEY, name text);
		CREATE TABLE sales.orders (id int PRIMARY KEY, total int, updated_at timestamptz NOT NULL);
		CREATE SCHEMA "Sales";
		CREATE TABLE "Sales"."Order Items" ("Id" int PRIMARY KEY, qty int);
		INSERT INTO sales.regions VALUES (1, 'north'), (2, 'south');
		INSERT INTO sales.orders VALUES (1, 10, '2026-01-01'), (2, 20, '2026-01-02');
		INSERT INTO "Sales"."Order Items" VALUES (1, 5);`)
	whURL := pgtest.NewDB(t)
	s.write(shopHeader + `
warehouse {
  backend = "postgres"
  url     = "` + whURL + `"
}
` + shopSource(`
  table "sales.regions" {
    sync = "full_refresh"
  }
  table "sales.orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "\"Sales\".\"Order Items\"" {
    sync = "cdc"
  }
  table "events" {
    sync = "cdc"
  }`))
	out := s.must(2, "plan", "-detailed-exitcode")
	for _, want := range []string{"shop_sales_regions", "shop_sales_orders", "shop_sales_order_items", "shop_events"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	s.must(0, "apply", "-auto-approve")
	if got := s.publicationTables(); got != "Sales.Order Items,public.events" {
		t.Errorf("publication tables = %q", got)
	}
	s.must(0, "plan", "-detailed-exitcode")

	s.runEnv()
	s.must(0, "run", "-once")
	q := whQuery(t, whURL)
	for table, want := range map[string]string{
		"shop_sales_regions":     "1:north,2:south",
		"shop_sales_orders":      "1:10,2:20",
		"shop_sales_order_items": "1:5",
	} {
		if got := q(fmt.Sprintf(`SELECT coalesce(string_agg(concat_ws(':', %s), ',' ORDER BY 1), '') FROM public.%s`,
			map[string]string{"shop_sales_regions": "id, name", "shop_sales_orders": "id, total", "shop_sales_order_items": `"Id", qty`}[table], table)); got != want {
			t.Errorf("%s = %q, want %q", table, got, want)
		}
	}

	// Changes stream into the table of the other schema.
	s.exec(`INSERT INTO "Sales"."Order Items" VALUES (2, 7); UPDATE "Sales"."Order Items" SET qty = 6 WHERE "Id" = 1`)
	s.must(0, "run", "-once")
	if got := q(`SELECT string_agg(concat_ws(':', "Id", qty), ',' ORDER BY 1) FROM public.shop_sales_order_items WHERE NOT _sluice_deleted`); got != "1:6,2:7" {
		t.Errorf("order items after the stream = %q", got)
	}
	// The incremental table reads from its position on its next sync.
	s.exec(`INSERT INTO sales.orders VALUES (3, 30, '2026-01-03')`)
	s.must(0, "resync", "postgres.shop/sales.orders")
	s.must(0, "run", "-once")
	if got := q(`SELECT string_agg(concat_ws(':', id, total), ',' ORDER BY 1) FROM public.shop_sales_orders`); got != "1:10,2:20,3:30" {
		t.Errorf("orders after the second sync = %q", got)
	}
	if strings.Contains(s.out.String(), secretPassword) {
		t.Error("the password was printed")
	}
}

// TestInspectSchemas: inspect lists the source's schema, -all-schemas
// every one, each table with its schema.
func TestInspectSchemas(t *testing.T) {
	s := newShop(t)
	s.exec(`CREATE SCHEMA sales; CREATE TABLE sales.regions (id int PRIMARY KEY, updated_at timestamptz NOT NULL)`)
	s.write(shopHeader + shopSource(`
  table "sales.regions" {
    sync = "full_refresh"
  }`))
	s.runEnv()
	schemas := func(args ...string) map[string]bool {
		t.Helper()
		var obs providers.Observed
		out := s.must(0, append([]string{"inspect", "-json"}, args...)...)
		if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &obs); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		m := map[string]bool{}
		for _, tb := range obs.Tables {
			m[tb.Schema] = true
			if tb.Name == "orders" && tb.RecommendedIncrementalField != "updated_at" {
				t.Errorf("orders: recommended_incremental_field %q", tb.RecommendedIncrementalField)
			}
			if tb.Name == "customers" && tb.RecommendedIncrementalField != "" {
				t.Errorf("customers: recommended_incremental_field %q", tb.RecommendedIncrementalField)
			}
		}
		return m
	}
	if got := schemas("postgres.shop"); len(got) != 1 || !got["public"] {
		t.Errorf("inspect lists schemas %v, want public", got)
	}
	if got := schemas("-all-schemas", "postgres.shop"); len(got) != 2 || !got["public"] || !got["sales"] {
		t.Errorf("inspect -all-schemas lists schemas %v, want public and sales", got)
	}
	out := s.must(0, "inspect", "-all-schemas", "postgres.shop")
	if !strings.Contains(out, "sales   regions") {
		t.Errorf("the text lacks the schema of sales.regions:\n%s", out)
	}
}

// TestPlanRefusesWhatRunWouldFail: a merge sync without a key, a table the
// user may not read and a materialized view never populated are plan
// errors on their table block, naming the fix.
func TestPlanRefusesWhatRunWouldFail(t *testing.T) {
	s := newShop(t)
	role := "shop_reader_" + strings.ToLower(t.Name())
	s.exec(fmt.Sprintf(`
		DROP ROLE IF EXISTS %[1]s;
		CREATE ROLE %[1]s LOGIN;
		CREATE TABLE nopk (id int, ts timestamptz);
		CREATE TABLE "Secret Stuff" (id int PRIMARY KEY, pub text, priv text);
		GRANT SELECT (id, pub) ON "Secret Stuff" TO %[1]s;
		CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n FROM nopk WITH NO DATA;
		CREATE MATERIALIZED VIEW mv_cols AS SELECT 1 AS id, 'x' AS pub, 'y' AS priv;
		GRANT SELECT (id, pub) ON mv_cols TO %[1]s;
		GRANT SELECT ON nopk, totals, customers TO %[1]s;`, role))
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), s.url)
		if err == nil {
			c.Exec(context.Background(), fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role))
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(s.url)
	u.User = url.User(role)
	s.url = u.String()
	s.write(shopHeader + shopSource(`
  table "nopk" {
    sync              = "incremental"
    incremental_field = "ts"
  }
  table "Secret Stuff" {
    sync = "full_refresh"
  }
  table "totals" {
    sync = "full_refresh"
  }
  table "customers" {
    sync = "full_refresh"
  }`))
	out := s.must(1, "plan")
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"A merge needs a primary key", "main.hcl:15,3", "Declare the key in the table block",
		"Permission denied", "main.hcl:19,3", fmt.Sprintf(`GRANT SELECT ON "public"."Secret Stuff" TO "%s";`, role),
		"Materialized view not populated", "main.hcl:22,3", `REFRESH MATERIALIZED VIEW "public"."totals";`,
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(flat, "Permission denied") != 1 {
		t.Errorf("a readable table is refused:\n%s", out)
	}

	// Column privileges do not let a table be read (a read locks it).
	s.write(shopHeader + shopSource(`
  table "Secret Stuff" {
    sync    = "full_refresh"
    columns = ["id", "pub"]
  }`))
	if out := s.must(1, "plan"); !strings.Contains(out, "a read locks the table") {
		t.Errorf("plan of readable columns:\n%s", out)
	}

	// Fixed as the messages say, the plan passes: a declared key, the
	// grant, a refreshed view.
	s.exec(`REFRESH MATERIALIZED VIEW totals`)
	s.exec(fmt.Sprintf(`GRANT SELECT ON "Secret Stuff" TO %s`, role))
	s.write(shopHeader + shopSource(`
  table "nopk" {
    sync              = "incremental"
    incremental_field = "ts"
    primary_key       = ["id"]
  }
  table "Secret Stuff" {
    sync    = "full_refresh"
    columns = ["id", "pub"]
  }
  table "totals" {
    sync = "full_refresh"
  }
  table "customers" {
    sync = "full_refresh"
  }
  table "mv_cols" {
    sync    = "full_refresh"
    columns = ["id", "pub"]
  }`))
	s.must(2, "plan", "-detailed-exitcode")
	// And what plan let through runs.
	s.must(0, "apply", "-auto-approve")
	s.runEnv()
	s.must(0, "run", "-once")
}

// TestDroppedSourceTable: a sync of a table dropped at the source fails
// naming it and what to do, for cdc and batch tables; removing the blocks
// and applying leaves a plan with nothing to do.
func TestDroppedSourceTable(t *testing.T) {
	for _, backend := range []string{"parquet", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			s := newShop(t)
			wh := `warehouse {
  path = "wh"
}`
			if backend == "postgres" {
				wh = `warehouse {
  backend = "postgres"
  url     = "` + pgtest.NewDB(t) + `"
}`
			}
			tables := `
  table "customers" {
    sync = "full_refresh"
  }
  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "events" {
    sync = "cdc"
  }
  table "Audit Log" {
    sync = "cdc"
  }`
			s.write(shopHeader + wh + shopSource(tables))
			s.exec(`INSERT INTO customers VALUES (1, 'a@example.com'); INSERT INTO events VALUES (1, 'x', now())`)
			s.must(0, "apply", "-auto-approve")
			s.runEnv()
			s.must(0, "run", "-once")

			s.exec(`DROP TABLE customers; DROP TABLE events`)
			s.must(0, "resync", "postgres.shop/customers")
			code, out, errOut := s.run("run", "-once")
			if code != 1 {
				t.Errorf("run -once after the drop: exit %d\n%s%s", code, out, errOut)
			}
			for _, tb := range []string{"customers", "events"} {
				want := "table public." + tb + " does not exist at the source"
				if !strings.Contains(out, want) || !strings.Contains(out, "remove its table block and run `sluice apply`") {
					t.Errorf("run -once does not say %q and what to do:\n%s", want, out)
				}
			}
			if !strings.Contains(out, "postgres.shop/Audit Log") || strings.Contains(out, "postgres.shop/Audit Log                  failed") {
				t.Errorf("the table still there must sync:\n%s", out)
			}

			// Its block still there, plan says the table does not exist.
			s.must(1, "plan")
			s.write(shopHeader + wh + shopSource(`
  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
  table "Audit Log" {
    sync = "cdc"
  }`))
			out = s.must(2, "plan", "-detailed-exitcode")
			for _, want := range []string{"postgres.shop/customers will be removed", "postgres.shop/events will be removed"} {
				if !strings.Contains(out, want) {
					t.Errorf("plan lacks %q:\n%s", want, out)
				}
			}
			s.must(0, "apply", "-auto-approve")
			out = s.must(0, "plan", "-detailed-exitcode")
			if strings.Contains(out, "missing from publication") {
				t.Errorf("plan after apply still reports drift:\n%s", out)
			}
			s.must(0, "run", "-once")
		})
	}
}
