package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestWarehouseIceberg(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Warehouse
	}{
		{"defaults", `
warehouse {
  backend = "iceberg"
}`, Warehouse{Backend: "iceberg", Path: "warehouse", Schema: "public", Namespace: "sluice", Sensitive: map[string]bool{}}},
		{"everything", `
variable "secret" {
  type      = string
  sensitive = true
  default   = "s3cr3t"
}
warehouse {
  backend   = "iceberg"
  path      = "s3://lake/sluice"
  namespace = "raw_data"
  retention = "7d"
  catalog {
    type = "sql"
    url  = "sqlite:catalog/lake.db"
  }
  s3 {
    endpoint          = "http://127.0.0.1:7070"
    region            = "eu-west-1"
    path_style        = true
    access_key_id     = "AKIA"
    secret_access_key = var.secret
  }
}`, Warehouse{Backend: "iceberg", Path: "s3://lake/sluice", Schema: "public", Namespace: "raw_data", Retention: 7 * 24 * time.Hour,
			Catalog:   &Catalog{Type: "sql", URL: "sqlite:catalog/lake.db"},
			S3:        &S3{Endpoint: "http://127.0.0.1:7070", Region: "eu-west-1", PathStyle: true, AccessKeyID: "AKIA", SecretAccessKey: "s3cr3t"},
			Sensitive: map[string]bool{"s3.access_key_id": true, "s3.secret_access_key": true}}},
		{"gcs and a postgres catalog with a sensitive url", `
variable "cat" {
  type      = string
  sensitive = true
  default   = "postgres://u:pw@db/cat"
}
warehouse {
  backend = "iceberg"
  path    = "gs://lake/x"
  catalog {
    url = var.cat
  }
}`, Warehouse{Backend: "iceberg", Path: "gs://lake/x", Schema: "public", Namespace: "sluice",
			Catalog: &Catalog{Type: "sql", URL: "postgres://u:pw@db/cat"}, Sensitive: map[string]bool{"catalog.url": true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := load(t, tt.src, Options{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if diff := cmp.Diff(tt.want, cfg.Warehouse, cmpopts.IgnoreFields(Warehouse{}, "Attrs", "DeclRange")); diff != "" {
				t.Errorf("warehouse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWarehouseIcebergDiagnostics(t *testing.T) {
	tests := []struct {
		name, src string
		want      []diag
	}{
		{"unknown catalog type", `
warehouse {
  backend = "iceberg"
  catalog {
    type = "rest"
    url  = "sqlite:c.db"
  }
}`, []diag{{"error", "Unknown catalog type", 5}}},
		{"bad catalog url", `
warehouse {
  backend = "iceberg"
  catalog {
    url = "mysql://h/db"
  }
}`, []diag{{"error", "Invalid catalog URL", 5}}},
		{"relative sqlite:// url", `
warehouse {
  backend = "iceberg"
  catalog {
    url = "sqlite://rel.db"
  }
}`, []diag{{"error", "Invalid catalog URL", 5}}},
		{"catalog without url", `
warehouse {
  backend = "iceberg"
  catalog {
    type = "sql"
  }
}`, []diag{{"error", "Missing catalog URL", 4}}},
		{"s3 block on a local path", `
warehouse {
  backend = "iceberg"
  path    = "lake"
  s3 {
    region = "us-east-1"
  }
}`, []diag{{"error", "S3 options without an S3 location", 5}}},
		{"s3 block on a gcs path", `
warehouse {
  backend = "iceberg"
  path    = "gs://lake/x"
  s3 {
    region = "us-east-1"
  }
}`, []diag{{"error", "S3 options without an S3 location", 5}}},
		{"half the s3 credentials", `
warehouse {
  backend = "iceberg"
  path    = "s3://lake/x"
  s3 {
    access_key_id = "AKIA"
  }
}`, []diag{{"error", "Incomplete S3 credentials", 6}}},
		{"bad s3 endpoint", `
warehouse {
  backend = "iceberg"
  path    = "s3://lake/x"
  s3 {
    endpoint = "127.0.0.1:7070"
  }
}`, []diag{{"error", "Invalid S3 endpoint", 6}}},
		{"unsupported scheme", `
warehouse {
  backend = "iceberg"
  path    = "hdfs://nn/lake"
}`, []diag{{"error", "Unsupported warehouse location", 4}}},
		{"bad namespace", `
warehouse {
  backend   = "iceberg"
  namespace = "Raw.Data"
}`, []diag{{"error", "Invalid namespace", 4}}},
		{"bad retention", `
warehouse {
  backend   = "iceberg"
  retention = "forever"
}`, []diag{{"error", "Invalid retention", 4}}},
		{"postgres options on iceberg", `
warehouse {
  backend = "iceberg"
  url     = "postgres://h/db"
  schema  = "raw"
  sslmode = "require"
  ssh_tunnel {
    host     = "b"
    user     = "u"
    password = "p"
  }
}`, []diag{{"error", "Option of another backend", 4}, {"error", "Option of another backend", 5}, {"error", "Option of another backend", 6}, {"error", "Option of another backend", 7}}},
		{"iceberg options on parquet", `
warehouse {
  path      = "wh"
  namespace = "sluice"
  retention = "1h"
  catalog {
    url = "sqlite:c.db"
  }
  s3 {
    region = "us-east-1"
  }
}`, []diag{{"error", "Option of another backend", 4}, {"error", "Option of another backend", 5}, {"error", "Option of another backend", 6}, {"error", "Option of another backend", 9}}},
		{"iceberg options on postgres", `
warehouse {
  backend   = "postgres"
  url       = "postgres://h/db"
  namespace = "sluice"
  catalog {
    url = "sqlite:c.db"
  }
}`, []diag{{"error", "Option of another backend", 5}, {"error", "Option of another backend", 6}}},
		{"two catalogs", `
warehouse {
  backend = "iceberg"
  catalog {
    url = "sqlite:a.db"
  }
  catalog {
    url = "sqlite:b.db"
  }
}`, []diag{{"error", "Duplicate catalog block", 7}}},
		{"unknown s3 attribute", `
warehouse {
  backend = "iceberg"
  path    = "s3://lake/x"
  s3 {
    path_styles = true
  }
}`, []diag{{"error", "Unsupported argument", 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := load(t, tt.src, Options{})
			if diff := cmp.Diff(tt.want, summarize(diags)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s\n%s", diff, diags)
			}
		})
	}
}

// TestWarehouseIcebergWithoutSecrets: validate without variable values
// accepts an iceberg block whose credentials, catalog URL and path are
// not known, and still reports what is wrong whatever they turn out to be.
func TestWarehouseIcebergWithoutSecrets(t *testing.T) {
	const vars = `variable "key" {
  type      = string
  sensitive = true
}
variable "path" {}
`
	tests := []struct {
		name, src string
		want      []diag
	}{
		{"unknown values", vars + `warehouse {
  backend = "iceberg"
  path    = var.path
  catalog {
    url = env("SLUICE_CATALOG_URL")
  }
  s3 {
    access_key_id     = env("AWS_ACCESS_KEY_ID")
    secret_access_key = var.key
  }
}`, nil},
		{"static error beside unknown values", vars + `warehouse {
  backend = "iceberg"
  path    = var.path
  catalog {
    type = "hive"
    url  = env("SLUICE_CATALOG_URL")
  }
}`, []diag{{"error", "Unknown catalog type", 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := load(t, tt.src, Options{Validate: true})
			if diff := cmp.Diff(tt.want, summarize(diags)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s\n%s", diff, diags)
			}
		})
	}
}

func TestIcebergCatalogURL(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name          string
		cfg           Config
		want          string
		wantSensitive bool
	}{
		{"default beside a local state", Config{Dir: dir, State: State{Backend: "local", Path: ".sluice/state.json"}},
			"sqlite://" + filepath.ToSlash(filepath.Join(dir, ".sluice", DefaultIcebergCatalogFile)), false},
		{"default beside an absolute local state", Config{Dir: dir, State: State{Backend: "local", Path: "/var/lib/sluice/state.json"}},
			"sqlite:///var/lib/sluice/" + DefaultIcebergCatalogFile, false},
		{"default in the postgres state's database", Config{Dir: dir, State: State{Backend: "postgres", URL: "postgres://u:pw@db/state"}},
			"postgres://u:pw@db/state", true},
		{"relative sqlite", Config{Dir: dir, Warehouse: Warehouse{Catalog: &Catalog{Type: "sql", URL: "sqlite:cat/lake.db"}}},
			"sqlite://" + filepath.ToSlash(filepath.Join(dir, "cat", "lake.db")), false},
		{"absolute sqlite", Config{Dir: dir, Warehouse: Warehouse{Catalog: &Catalog{Type: "sql", URL: "sqlite:///srv/lake.db"}}},
			"sqlite:///srv/lake.db", false},
		{"postgres", Config{Dir: dir, Warehouse: Warehouse{Catalog: &Catalog{Type: "sql", URL: "postgres://db/cat"}}},
			"postgres://db/cat", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, sensitive, err := tt.cfg.IcebergCatalogURL()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || sensitive != tt.wantSensitive {
				t.Errorf("IcebergCatalogURL() = %q, %v; want %q, %v", got, sensitive, tt.want, tt.wantSensitive)
			}
		})
	}
}

func TestIcebergLocation(t *testing.T) {
	dir := t.TempDir()
	for path, want := range map[string]string{
		"warehouse":        filepath.Join(dir, "warehouse"),
		"/srv/lake":        "/srv/lake",
		"file:///srv/lake": "/srv/lake",
		"s3://lake/sluice": "s3://lake/sluice",
		"gs://lake/sluice": "gs://lake/sluice",
	} {
		cfg := Config{Dir: dir, Warehouse: Warehouse{Backend: "iceberg", Path: path}}
		got, err := cfg.IcebergLocation()
		if err != nil || got != want {
			t.Errorf("IcebergLocation(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
}

// TestWarehouseSecretsMasked: a snippet of the warehouse block never
// shows the S3 keys or a catalog URL's password.
func TestWarehouseSecretsMasked(t *testing.T) {
	src := []byte(`warehouse {
  backend = "iceberg"
  path    = "s3://lake/x"
  catalog {
    url = "postgres://cat:hunter2@db/cat"
  }
  s3 {
    access_key_id     = "AKIAEXAMPLEKEY"
    secret_access_key = "wJalrXUtnFEMIsecret"
  }
}`)
	masked := append([]byte(nil), src...)
	for _, sp := range secretSpans(src) {
		for i := sp.start; i < sp.end; i++ {
			masked[i] = '*'
		}
	}
	for _, s := range []string{"hunter2", "AKIAEXAMPLEKEY", "wJalrXUtnFEMIsecret"} {
		if strings.Contains(string(masked), s) {
			t.Errorf("masked source shows %q:\n%s", s, masked)
		}
	}
}

// TestValidateIcebergExample is `sluice validate` of examples/iceberg
// without its secrets, and a load with them: the keys and the catalog
// URL are sensitive.
func TestValidateIcebergExample(t *testing.T) {
	if _, diags := Load("../examples/iceberg", Options{LookupEnv: noEnv, Validate: true}); len(diags) > 0 {
		t.Fatalf("validate without secrets: %v", diags)
	}
	cfg, diags := Load("../examples/iceberg", Options{LookupEnv: noEnv, Vars: []string{
		"pg_url=postgres://u@db/shop", "catalog_url=postgres://cat:pw@db/catalog",
		"s3_access_key_id=AKIA", "s3_secret_access_key=SECRET",
	}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	w := cfg.Warehouse
	for _, name := range []string{"catalog.url", "s3.access_key_id", "s3.secret_access_key"} {
		if !w.Sensitive[name] {
			t.Errorf("%s is not sensitive: %v", name, w.Sensitive)
		}
	}
	if w.S3 == nil || w.S3.SecretAccessKey != "SECRET" || w.Catalog == nil || w.Catalog.URL != "postgres://cat:pw@db/catalog" {
		t.Errorf("warehouse = %+v, s3 %+v, catalog %+v", w, w.S3, w.Catalog)
	}
}
