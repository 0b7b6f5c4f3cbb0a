package state

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/config"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tests := []struct {
		name     string
		cfg      config.State
		wantPath string
	}{
		{name: "default", cfg: config.State{}, wantPath: filepath.Join(dir, ".sluice", "state.json")},
		{name: "relative", cfg: config.State{Backend: "local", Path: "st/s.json"}, wantPath: filepath.Join(dir, "st", "s.json")},
		{name: "absolute", cfg: config.State{Backend: "local", Path: "/var/lib/sluice/s.json"}, wantPath: "/var/lib/sluice/s.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Open(ctx, tt.cfg, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if l, ok := b.(*Local); !ok || l.Path() != tt.wantPath {
				t.Errorf("got %#v, want local at %s", b, tt.wantPath)
			}
		})
	}
}

// TestOpenUnregistered: package state knows no backend but local by
// itself; a configuration naming one the program was built without is
// told which package registers it.
func TestOpenUnregistered(t *testing.T) {
	ctx := context.Background()
	bad := []struct {
		name string
		cfg  config.State
		want []string
	}{
		{name: "unknown backend", cfg: config.State{Backend: "s3"}, want: []string{`unknown state backend "s3"; use "local"`}},
		{name: "not built in", cfg: config.State{Backend: "postgres", URL: "postgres://localhost/db"},
			want: []string{`state backend "postgres" is not built into this program`, "state/pgstate"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(ctx, tt.cfg, t.TempDir())
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open: %v, want %q", err, want)
				}
			}
		})
	}
}

// TestRegisterBackend: a registered backend is opened by Open with the
// state block and the configuration's directory.
func TestRegisterBackend(t *testing.T) {
	var got config.State
	var gotDir string
	RegisterBackend("test-backend", func(ctx context.Context, cfg config.State, configDir string) (Backend, error) {
		got, gotDir = cfg, configDir
		return NewLocal(filepath.Join(configDir, "x.json")), nil
	})
	t.Cleanup(func() {
		registryMu.Lock()
		delete(registry, "test-backend")
		registryMu.Unlock()
	})
	cfg := config.State{Backend: "test-backend", URL: "u"}
	b, err := Open(context.Background(), cfg, "/cfg")
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := b.(*Local); !ok || l.Path() != "/cfg/x.json" || got != cfg || gotDir != "/cfg" {
		t.Errorf("Open = %#v with %+v in %q", b, got, gotDir)
	}
	_, err = Open(context.Background(), config.State{Backend: "s3"}, "/cfg")
	if err == nil || !strings.Contains(err.Error(), `use "local" or "test-backend"`) {
		t.Errorf("Open of an unknown backend: %v, want the registered ones listed", err)
	}
}
