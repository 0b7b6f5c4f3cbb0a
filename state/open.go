package state

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/sluice-dev/sluice/config"
)

// DefaultPath is the local backend's state file when the configuration
// names none.
const DefaultPath = ".sluice/state.json"

// Opener opens a backend from the configuration's state block; configDir
// is the directory of the configuration.
type Opener func(ctx context.Context, cfg config.State, configDir string) (Backend, error)

// The backends other than local, registered by their packages, so that
// package state (and whatever reads state: the runner, apply, the
// planner) does not link their drivers.
var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// backendPackages names the package that registers each backend the
// configuration language accepts, for the error of a program built
// without it.
var backendPackages = map[string]string{
	"postgres": "github.com/sluice-dev/sluice/state/pgstate",
}

// RegisterBackend makes Open open backend name with open. The package of
// a backend calls it from init; a program that opens states described by
// a configuration imports the packages of the backends it supports.
// Registering a name twice, or "local", panics: it is a programming error
// found at start-up.
func RegisterBackend(name string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || name == "local" || registry[name] != nil {
		panic(fmt.Sprintf("state: backend %q registered twice", name))
	}
	registry[name] = open
}

// Open returns the backend the configuration's state block describes. A
// relative local path is relative to configDir (the directory of the
// configuration, not the process's working directory, so that -chdir
// works). Other backends are opened by the function their package
// registered (RegisterBackend): the postgres backend connects and creates
// its tables.
func Open(ctx context.Context, cfg config.State, configDir string) (Backend, error) {
	if cfg.Backend == "" || cfg.Backend == "local" {
		path := cfg.Path
		if path == "" {
			path = DefaultPath
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(configDir, path)
		}
		return NewLocal(path), nil
	}
	registryMu.RLock()
	open := registry[cfg.Backend]
	names := []string{"local"}
	for name := range registry {
		names = append(names, name)
	}
	registryMu.RUnlock()
	if open != nil {
		return open(ctx, cfg, configDir)
	}
	slices.Sort(names)
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	if pkg, ok := backendPackages[cfg.Backend]; ok {
		return nil, fmt.Errorf("state backend %q is not built into this program: it opens %s only (the program must import %s, which registers it)",
			cfg.Backend, strings.Join(quoted, ", "), pkg)
	}
	return nil, fmt.Errorf("unknown state backend %q; use %s", cfg.Backend, orList(quoted))
}

// orList joins names as `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
func orList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
