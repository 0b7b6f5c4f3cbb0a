package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
)

func TestWarehousePostgres(t *testing.T) {
	cfg, diags := load(t, `
variable "wh" {
  type      = string
  sensitive = true
  default   = "postgres://sluice:secret@wh.example.com/dw"
}
warehouse {
  backend      = "postgres"
  url          = var.wh
  schema       = "Raw Data"
  drop_cascade = true
  sslmode      = "verify-full"
  sslrootcert  = "ca.pem"
  sslcert      = "client.pem"
  sslkey       = "client.key"
  ssh_tunnel {
    host        = "bastion.example.com"
    user        = "tunnel"
    private_key = "-----BEGIN OPENSSH PRIVATE KEY-----"
    require_tls = true
  }
}
`, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	w := cfg.Warehouse
	want := Warehouse{
		Backend: "postgres", Path: "warehouse", URL: "postgres://sluice:secret@wh.example.com/dw", URLSensitive: true,
		Schema: "Raw Data", DropCascade: true,
		SSLMode: "verify-full", SSLRootCert: "ca.pem", SSLCert: "client.pem", SSLKey: "client.key",
		SSHTunnel: &SSHTunnel{Host: "bastion.example.com", Port: 22, User: "tunnel", PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----",
			KnownHosts: "~/.ssh/known_hosts", RequireTLS: true},
		Sensitive: map[string]bool{"url": true, "ssh_tunnel.private_key": true},
	}
	if diff := cmp.Diff(want, w, cmpopts.IgnoreFields(Warehouse{}, "Attrs", "DeclRange")); diff != "" {
		t.Errorf("warehouse (-want +got):\n%s", diff)
	}
	if _, ok := w.Attrs["ssh_tunnel.host"]; !ok {
		t.Errorf("Attrs = %v, want ssh_tunnel.host recorded", w.Attrs)
	}
}

func TestWarehouseDiagnostics(t *testing.T) {
	tests := []struct {
		name, src string
		want      []diag
	}{
		{"postgres needs url", `
warehouse {
  backend = "postgres"
}`, []diag{{"error", "Missing warehouse URL", 2}}},
		{"bad sslmode", `
warehouse {
  backend = "postgres"
  url     = "postgres://h/db"
  sslmode = "sometimes"
}`, []diag{{"error", `Invalid sslmode "sometimes"`, 5}}},
		{"certificate without key", `
warehouse {
  backend = "postgres"
  url     = "postgres://h/db"
  sslcert = "c.pem"
}`, []diag{{"error", "Incomplete client certificate", 5}}},
		{"tunnel without credentials", `
warehouse {
  backend = "postgres"
  url     = "postgres://h/db"
  ssh_tunnel {
    host = "b"
    user = "u"
  }
}`, []diag{{"error", "Missing SSH credentials", 5}}},
		{"two tunnels", `
warehouse {
  backend = "postgres"
  url     = "postgres://h/db"
  ssh_tunnel {
    host     = "b"
    user     = "u"
    password = "p"
  }
  ssh_tunnel {
    host     = "c"
    user     = "u"
    password = "p"
  }
}`, []diag{{"error", "Duplicate ssh_tunnel block", 10}}},
		{"postgres options on parquet", `
warehouse {
  path    = "wh"
  sslmode = "require"
  ssh_tunnel {
    host     = "b"
    user     = "u"
    password = "p"
  }
}`, []diag{{"error", "Option of another backend", 4}, {"error", "Option of another backend", 5}}},
		{"unknown attribute", `
warehouse {
  backend = "postgres"
  url     = "postgres://h/db"
  sslmod  = "require"
}`, []diag{{"error", "Unsupported argument", 5}}},
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

func TestWarehouseDefaults(t *testing.T) {
	cfg, diags := load(t, ``, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	w := cfg.Warehouse
	got := Warehouse{Backend: w.Backend, Path: w.Path, Schema: w.Schema, SSLMode: w.SSLMode, SSHTunnel: w.SSHTunnel}
	want := Warehouse{Backend: "parquet", Path: "warehouse", Schema: "public"}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Warehouse{}, "DeclRange"), cmpopts.EquateEmpty(), cmp.Comparer(func(a, b hcl.Range) bool { return true })); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}
