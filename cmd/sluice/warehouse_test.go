package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/warehouse/iceberg"
)

func TestIcebergOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		cfg       config.Config
		want      iceberg.Options
		wantScrub []string
	}{
		{"local directory, default catalog beside the state",
			config.Config{Dir: dir, State: config.State{Backend: "local", Path: ".sluice/state.json"},
				Warehouse: config.Warehouse{Backend: "iceberg", Path: "lake", Namespace: "sluice"}},
			iceberg.Options{Location: filepath.Join(dir, "lake"), Namespace: "sluice",
				CatalogURL: "sqlite://" + filepath.Join(dir, ".sluice", "iceberg-catalog.db")},
			nil},
		{"s3 with keys, a postgres catalog with a password, retention",
			config.Config{Dir: dir, State: config.State{Backend: "local", Path: ".sluice/state.json"},
				Warehouse: config.Warehouse{Backend: "iceberg", Path: "s3://lake/sluice", Namespace: "raw", Retention: time.Hour,
					Catalog: &config.Catalog{Type: "sql", URL: "postgres://cat:p%40ss@db/catalog"},
					S3:      &config.S3{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", PathStyle: true, AccessKeyID: "AKIA", SecretAccessKey: "SECRET"}}},
			iceberg.Options{Location: "s3://lake/sluice", Namespace: "raw", CatalogURL: "postgres://cat:p%40ss@db/catalog",
				S3:          iceberg.S3Options{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", PathStyle: true, AccessKeyID: "AKIA", SecretAccessKey: "SECRET"},
				Maintenance: iceberg.MaintenancePolicy{Retention: time.Hour}},
			[]string{"AKIA", "SECRET", "p@ss", "p%40ss"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, scrub, err := icebergOptions(&tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			for _, secret := range tt.wantScrub {
				err := scrub.wrap(errors.New("cannot reach " + secret + " at all"))
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the scrubbed error shows %q: %v", secret, err)
				}
			}
		})
	}
}

func TestSecretScrubberKeepsTheChain(t *testing.T) {
	base := errors.New("denied for key AKIA")
	err := secretScrubber{"AKIA"}.wrap(base)
	if err.Error() != "denied for key ****" || !errors.Is(err, base) {
		t.Errorf("wrap = %q (Is base: %v)", err, errors.Is(err, base))
	}
	if (secretScrubber{"AKIA"}).wrap(nil) != nil {
		t.Error("wrap(nil) is not nil")
	}
	other := errors.New("no secret here")
	if (secretScrubber{"AKIA", ""}).wrap(other) != other {
		t.Error("an error without secrets is not returned as is")
	}
}
