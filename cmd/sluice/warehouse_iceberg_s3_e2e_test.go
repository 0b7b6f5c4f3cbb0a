package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/s3test"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/iceberg"
)

// TestRunIntoIcebergOnS3: a full_refresh and a cdc table (consolidated
// and history) into an iceberg warehouse on S3 (Versity's gateway), with
// the keys in the s3 block: plan checks the bucket, run -once writes the
// tables, a second run merges the changes, and the secret key is printed
// nowhere.
func TestRunIntoIcebergOnS3(t *testing.T) {
	srv, bucket := s3test.NewBucket(t)
	s := newShop(t)
	s.write(shopHeader + fmt.Sprintf(`
warehouse {
  backend = "iceberg"
  path    = "s3://%s/lake"
  catalog {
    url = "sqlite:catalog.db"
  }
  s3 {
    endpoint          = %q
    region            = %q
    path_style        = true
    access_key_id     = %q
    secret_access_key = %q
  }
}
`, bucket, srv.URL, srv.Region, srv.AccessKey, srv.SecretKey) + shopSource(`
  table "Audit Log" {
    sync = "full_refresh"
  }
  table "customers" {
    sync       = "cdc"
    cdc_output = "both"
  }`))
	s.exec(`INSERT INTO "Audit Log" VALUES (1, 'hello')`)
	s.exec(`INSERT INTO customers VALUES (1, 'a@example.com'), (2, 'b@example.com')`)
	var printed strings.Builder
	printed.WriteString(s.must(0, "validate"))
	printed.WriteString(s.must(2, "plan", "-detailed-exitcode"))
	printed.WriteString(s.must(0, "apply", "-auto-approve"))
	s.runEnv()
	printed.WriteString(s.must(0, "run", "-once"))
	s.exec(`UPDATE customers SET email = 'a2@example.com' WHERE id = 1; DELETE FROM customers WHERE id = 2`)
	printed.WriteString(s.must(0, "run", "-once"))
	printed.WriteString(s.must(0, "status", "-json"))

	w, err := iceberg.Open(context.Background(), iceberg.Options{
		Location: "s3://" + bucket + "/lake", CatalogURL: "sqlite://" + s.dir + "/catalog.db",
		S3: iceberg.S3Options{Endpoint: srv.URL, Region: srv.Region, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	read := func(name string, cols ...string) string {
		t.Helper()
		tb, err := w.Table(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		err = tb.(warehouse.Scanner).Scan(context.Background(), func(b *records.Batch) error {
			for r := 0; r < b.N; r++ {
				var vals []string
				for _, c := range cols {
					v := &b.Cols[b.Schema.Index(c)]
					switch {
					case v.IsNull(r):
						vals = append(vals, "NULL")
					case v.I64 != nil:
						vals = append(vals, fmt.Sprint(v.I64[r]))
					case v.I32 != nil:
						vals = append(vals, fmt.Sprint(v.I32[r]))
					case v.Bool != nil:
						vals = append(vals, fmt.Sprint(v.Bool[r]))
					default:
						vals = append(vals, string(v.Bytes(r)))
					}
				}
				out = append(out, strings.Join(vals, ":"))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	if got := read("shop_audit_log", "id", "msg"); got != "1:hello" {
		t.Errorf("audit log = %s", got)
	}
	if got := read("shop_customers", "id", "email", "_sluice_deleted"); got != "1:a2@example.com:false,2:b@example.com:true" {
		t.Errorf("customers = %s", got)
	}
	if got := read("shop_customers_cdc", "id", "valid_to"); strings.Count(got, ",")+1 != 4 || strings.Count(got, "NULL") != 1 {
		t.Errorf("history = %s, want 4 versions of which 1 open", got)
	}
	if strings.Contains(printed.String(), srv.SecretKey) {
		t.Errorf("the secret access key was printed:\n%s", printed.String())
	}
}
