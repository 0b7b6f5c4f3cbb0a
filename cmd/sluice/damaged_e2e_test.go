package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// TestResyncRepairsDamagedParquetTable: a data file of a synced table is
// deleted (a user cleaning up, a lost disk block); `sluice resync` then
// `run -once` reloads the table, which is whole again: readable by a
// glob, with the source's rows.
func TestResyncRepairsDamagedParquetTable(t *testing.T) {
	cases := []struct {
		name   string
		block  string
		tables []string // warehouse tables to damage and check
		// runFails: a run before the resync fails, saying to resync (a
		// full_refresh reloads the table anyway: nothing to fail).
		runFails bool
		// manifest: the manifest is overwritten with garbage instead.
		manifest bool
	}{
		{"full_refresh", `sync = "full_refresh"`, []string{"shop_orders"}, false, false},
		{"incremental", "sync = \"incremental\"\n    incremental_field = \"updated_at\"", []string{"shop_orders"}, false, false},
		{"incremental with an unreadable manifest", "sync = \"incremental\"\n    incremental_field = \"updated_at\"", []string{"shop_orders"}, false, true},
		{"cdc", "sync = \"cdc\"\n    cdc_output = \"both\"", []string{"shop_orders", "shop_orders_cdc"}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newShop(t)
			s.write(shopHeader + shopSource(`
  table "orders" {
    `+tc.block+`
  }`))
			s.exec(`INSERT INTO orders (id, status, total) SELECT g, 'new', g FROM generate_series(1, 300) g`)
			s.must(0, "apply", "-auto-approve")
			t.Setenv("SLUICE_VAR_url", s.url)
			t.Setenv("SLUICE_VAR_pg_password", secretPassword)
			s.must(0, "run", "-once")

			root := filepath.Join(s.dir, "warehouse")
			for _, name := range tc.tables {
				files, _ := filepath.Glob(filepath.Join(root, name, "*.parquet"))
				if len(files) == 0 {
					t.Fatalf("table %s has no data file after the first run", name)
				}
				if tc.manifest {
					if err := os.WriteFile(filepath.Join(root, name, "_sluice", "manifest.json"), []byte("{\"version\": "), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.Remove(files[0]); err != nil {
					t.Fatal(err)
				}
			}
			s.exec(`INSERT INTO orders (id, status, total, updated_at) VALUES (301, 'late', 1, now() + interval '1 hour')`)
			if tc.runFails {
				code, out, errOut := s.run("run", "-once")
				if code != 1 || !strings.Contains(out+errOut, "damaged") || !strings.Contains(out+errOut, "resync") {
					t.Errorf("run -once on the damaged table: exit %d, want 1 saying it is damaged and to resync\n%s%s", code, out, errOut)
				}
			}

			s.must(0, "resync", "postgres.shop/orders")
			s.must(0, "run", "-once")

			want, _ := strconv.Atoi(s.query(`SELECT count(*)::text FROM orders`))
			w, err := parquet.Open(root)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range tc.tables {
				tb, err := w.OpenTable(name)
				if err != nil {
					t.Fatal(err)
				}
				if err := tb.Damaged(); err != nil {
					t.Errorf("table %s after the resync: %v", name, err)
				}
				// The rows of the source once each: for the history table,
				// its current versions.
				current := 0
				validTo := -1
				err = tb.Scan(t.Context(), func(b *records.Batch) error {
					if validTo < 0 {
						validTo = b.Schema.Index("valid_to")
					}
					for r := range b.N {
						if validTo < 0 || b.Cols[validTo].IsNull(r) {
							current++
						}
					}
					return nil
				})
				if err != nil {
					t.Errorf("reading table %s: %v", name, err)
				}
				if current != want {
					t.Errorf("table %s holds %d current rows, the source %d", name, current, want)
				}
				// A glob reads exactly the manifest's files.
				files, _ := filepath.Glob(filepath.Join(root, name, "*.parquet"))
				if len(files) != len(tb.Manifest().Files) {
					t.Errorf("table %s: the glob matches %d files, the manifest lists %d", name, len(files), len(tb.Manifest().Files))
				}
			}
		})
	}
}
