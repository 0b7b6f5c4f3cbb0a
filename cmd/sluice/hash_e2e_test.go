package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// hashSalt is the salt of the hash tests: leakyPw inside it, so that
// checkNoLeak finds any form of it.
const hashSalt = leakyPw + "-salt"

const hashSchema = `
CREATE TABLE p_full (email text PRIMARY KEY, name text, age int, score numeric(12,2), seen timestamptz);
CREATE TABLE p_inc (email text PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON p_inc (updated_at);
CREATE TABLE p_cdc (email text PRIMARY KEY, name text, bio text);
ALTER TABLE p_cdc ALTER bio SET STORAGE EXTERNAL; -- out of line, so unchanged in updates of other columns
CREATE TABLE visits (id bigint PRIMARY KEY, email text);
`

const hashTables = `
  hash_salt = var.hash_salt
  table "p_full" {
    sync = "full_refresh"
    hash = ["email", "name", "age", "score", "seen"]
  }
  table "p_inc" {
    sync              = "incremental"
    incremental_field = "updated_at"
    hash              = ["email", "name"]
  }
  table "p_cdc" {
    sync       = "cdc"
    cdc_output = "both"
    hash       = ["email", "name", "bio"]
  }
  table "visits" {
    sync = "cdc"
    hash = ["email"]
  }`

const hashVariable = `
variable "hash_salt" {
  type      = string
  sensitive = true
}
`

// hmacText is hex(HMAC-SHA256(hashSalt, text)), computed here apart from
// sluice's hasher.
func hmacText(text string) string {
	m := hmac.New(sha256.New, []byte(hashSalt))
	m.Write([]byte(text))
	return hex.EncodeToString(m.Sum(nil))
}

// TestHashColumns: hash columns reach every warehouse as
// hex(HMAC-SHA256(hash_salt, PostgreSQL's text form)) by every path
// (full_refresh, incremental, the cdc snapshot and streamed inserts,
// updates, key changes and deletes, history included), NULL stays NULL,
// a hashed primary key merges, equal values hash equally across tables;
// plan shows a changed hash list as a resync and refuses a column the
// table lacks; the salt is in no output and no file.
func TestHashColumns(t *testing.T) {
	for _, backend := range []string{"parquet", "postgres", "iceberg"} {
		t.Run(backend, func(t *testing.T) { testHashColumns(t, backend) })
	}
}

func testHashColumns(t *testing.T, backend string) {
	s := newShop(t)
	s.exec(hashSchema)
	s.exec(`SET TimeZone = 'UTC'`) // the text form hashed is UTC's
	var wh string
	var rows func(table string, cols ...string) []string
	switch backend {
	case "parquet":
		wh = `warehouse {
  path = "wh"
}`
		rows = func(table string, cols ...string) []string {
			t.Helper()
			w, err := parquet.Open(filepath.Join(s.dir, "wh"))
			if err != nil {
				t.Fatal(err)
			}
			tb, err := w.OpenTable(table)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			err = tb.Scan(context.Background(), func(b *records.Batch) error {
				for r := range b.N {
					var parts []string
					for _, c := range cols {
						i := b.Schema.Index(c)
						if i < 0 {
							t.Fatalf("%s has no column %q", table, c)
						}
						if hashedCol(c) && b.Schema.Columns[i].Type.Logical != records.LogicalString {
							t.Errorf("%s.%s is %s, want STRING", table, c, b.Schema.Columns[i].Type.Name)
						}
						parts = append(parts, recordstest.Render(&b.Cols[i], b.Schema.Columns[i].Type, r))
					}
					out = append(out, strings.Join(parts, "|"))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(out)
			return out
		}
	case "postgres":
		whURL := pgtest.NewDB(t)
		wh = `warehouse {
  backend = "postgres"
  url     = "` + whURL + `"
  schema  = "raw"
}`
		q := whQuery(t, whURL)
		rows = func(table string, cols ...string) []string {
			t.Helper()
			var exprs []string
			for _, c := range cols {
				exprs = append(exprs, "coalesce("+c+"::text, 'NULL')")
				if hashedCol(c) {
					if typ := q(`SELECT data_type FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = '` + table + `' AND column_name = '` + c + `'`); typ != "text" {
						t.Errorf("raw.%s.%s is %s, want text", table, c, typ)
					}
				}
			}
			got := q(`SELECT coalesce(string_agg(r, ',' ORDER BY r), '') FROM (SELECT ` + strings.Join(exprs, ` || '|' || `) + ` AS r FROM raw.` + table + `) x`)
			if got == "" {
				return nil
			}
			return strings.Split(got, ",")
		}
	case "iceberg":
		wh = icebergBlock
		lake := newIcebergLake(t, s)
		rows = func(table string, cols ...string) []string {
			t.Helper()
			var out []string
			for _, r := range lake.rows(table, cols...) {
				parts := strings.Split(r, ":")
				for i, p := range parts {
					if p == "(null)" {
						parts[i] = "NULL"
					}
				}
				out = append(out, strings.Join(parts, "|"))
			}
			sort.Strings(out)
			return out
		}
	}
	// expect hashes the source's rows as the warehouse should hold them:
	// each value's text form as PostgreSQL prints it (::text; no boolean
	// here), through an HMAC computed in this test.
	expect := func(query string) []string {
		t.Helper()
		var out []string
		for _, row := range pgtest.QueryText(t, s.conn, query) {
			for i, v := range row {
				if v != "NULL" {
					row[i] = hmacText(v)
				}
			}
			out = append(out, strings.Join(row, "|"))
		}
		sort.Strings(out)
		return out
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s:\n got  %q\n want %q", what, got, want)
		}
	}
	t.Setenv("SLUICE_VAR_hash_salt", hashSalt)
	s.write(shopHeader + hashVariable + wh + shopSource(hashTables))
	s.exec(`INSERT INTO p_full VALUES ('alice@example.com', 'Alice', 30, 12.5, '2026-01-02 03:04:05.5+00'), ('bob@example.com', NULL, NULL, NULL, NULL);
		INSERT INTO p_inc (email, name, updated_at) VALUES ('alice@example.com', 'Alice', now() - interval '1 minute'), ('bob@example.com', NULL, now() - interval '1 minute');
		INSERT INTO p_cdc VALUES ('alice@example.com', 'Alice', repeat('x', 5000)), ('bob@example.com', NULL, NULL);
		INSERT INTO visits VALUES (1, 'alice@example.com'), (2, NULL)`)
	out := s.must(0, "plan")
	if !strings.Contains(out, `"email"`) || !strings.Contains(out, "hash") {
		t.Errorf("plan does not show the hash columns:\n%s", out)
	}
	s.must(0, "apply", "-auto-approve")
	s.runEnv()
	s.must(0, "run", "-once")

	check("full_refresh", rows("shop_p_full", "email", "name", "age", "score", "seen"),
		expect(`SELECT email, name, age::text, score::text, seen::text FROM p_full`))
	if got := hmacText("2026-01-02 03:04:05.5+00"); !strings.Contains(strings.Join(rows("shop_p_full", "seen"), ","), got) {
		t.Errorf("the timestamptz is not hashed in its UTC text form")
	}
	check("incremental", rows("shop_p_inc", "email", "name"), expect(`SELECT email, name FROM p_inc`))
	check("cdc snapshot", rows("shop_p_cdc", "email", "name", "bio"), expect(`SELECT email, name, bio FROM p_cdc`))
	// Joins across tables of the source: equal values, equal hashes.
	check("visits", rows("shop_visits", "id", "email"), []string{"1|" + hmacText("alice@example.com"), "2|NULL"})

	// An update of a row keyed by a hashed column merges into the same
	// key; a key change and a delete hit the hashed keys.
	s.exec(`UPDATE p_inc SET name = 'Alicia', updated_at = now() WHERE email = 'alice@example.com';
		UPDATE p_cdc SET name = 'Alicia' WHERE email = 'alice@example.com'`)
	s.must(0, "sync", "postgres.shop/p_inc")
	s.must(0, "run", "-once")
	check("incremental merge", rows("shop_p_inc", "email", "name"), expect(`SELECT email, name FROM p_inc`))
	live := func() []string {
		var out []string
		for _, r := range rows("shop_p_cdc", "email", "name", "bio", "_sluice_deleted") {
			if k, ok := strings.CutSuffix(r, "|false"); ok {
				out = append(out, k)
			}
		}
		return out
	}
	// bio, unchanged TOAST, is filled from the warehouse by its hashed key.
	check("cdc update", live(), expect(`SELECT email, name, bio FROM p_cdc`))

	s.exec(`UPDATE p_cdc SET email = 'carol@example.com' WHERE email = 'bob@example.com';
		DELETE FROM p_cdc WHERE email = 'alice@example.com';
		INSERT INTO visits VALUES (3, 'carol@example.com')`)
	s.must(0, "run", "-once")
	check("cdc key change and delete", live(), expect(`SELECT email, name, bio FROM p_cdc`))
	var deleted []string
	for _, r := range rows("shop_p_cdc", "email", "_sluice_deleted") {
		if k, ok := strings.CutSuffix(r, "|true"); ok {
			deleted = append(deleted, k)
		}
	}
	check("cdc tombstones", deleted, []string{hmacText("alice@example.com"), hmacText("bob@example.com")})
	check("cdc rows by key", rows("shop_p_cdc", "email"), expect(`VALUES ('alice@example.com'), ('bob@example.com'), ('carol@example.com')`))
	// The history: the snapshot's two versions, the update, the key
	// change (a delete of the old key and an insert of the new one, or an
	// update) and the delete, all of hashed keys.
	hist := rows("shop_p_cdc_cdc", "email", "_sluice_cdc_op")
	keys := map[string]bool{hmacText("alice@example.com"): true, hmacText("bob@example.com"): true, hmacText("carol@example.com"): true}
	for _, r := range hist {
		if k, _, _ := strings.Cut(r, "|"); !keys[k] {
			t.Errorf("history row %q has a key that is not a hashed one", r)
		}
	}
	if len(hist) < 5 {
		t.Errorf("history holds %d versions, want at least 5: %q", len(hist), hist)
	}
	check("visits after an insert", rows("shop_visits", "id", "email"),
		[]string{"1|" + hmacText("alice@example.com"), "2|NULL", "3|" + hmacText("carol@example.com")})

	// A changed list is a resync of the table; a column the table lacks
	// is an error of plan.
	s.write(shopHeader + hashVariable + wh + shopSource(strings.Replace(hashTables, `hash              = ["email", "name"]`, `hash              = ["email"]`, 1)))
	out = s.must(0, "plan")
	if !strings.Contains(out, "hash columns change from (email, name) to (email)") || !strings.Contains(out, "resync") {
		t.Errorf("plan of a changed hash list:\n%s", out)
	}
	// Applied, the resync reloads the table: name as it is, email hashed.
	s.must(0, "apply", "-auto-approve")
	s.must(0, "run", "-once")
	var want []string
	for _, r := range pgtest.QueryText(t, s.conn, `SELECT email, coalesce(name, 'NULL') FROM p_inc`) {
		want = append(want, hmacText(r[0])+"|"+r[1])
	}
	sort.Strings(want)
	check("incremental after the resync", rows("shop_p_inc", "email", "name"), want)

	s.write(shopHeader + hashVariable + wh + shopSource(strings.Replace(hashTables, `hash = ["email"]`, `hash = ["mail"]`, 1)))
	if code, out, errOut := s.run("plan"); code != 1 || !strings.Contains(out+errOut, `hash names column "mail"`) {
		t.Errorf("plan with a hash column the table lacks: exit %d\n%s%s", code, out, errOut)
	}

	// The salt is secret: in no output, in no file sluice wrote.
	checkNoLeak(t, "sluice's output", s.out.String())
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checkNoLeak(t, path, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hashedCol reports whether a column of the hash tests is hashed
// everywhere it is read.
func hashedCol(c string) bool {
	switch c {
	case "email", "age", "score", "seen", "bio":
		return true
	}
	return false
}
