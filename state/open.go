package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sluice-dev/sluice/config"
)

// DefaultPath is the local backend's state file when the configuration
// names none.
const DefaultPath = ".sluice/state.json"

// Open returns the backend the configuration's state block describes. A
// relative local path is relative to configDir (the directory of the
// configuration, not the process's working directory, so that -chdir
// works). The postgres backend connects and creates its tables.
func Open(ctx context.Context, cfg config.State, configDir string) (Backend, error) {
	switch cfg.Backend {
	case "", "local":
		path := cfg.Path
		if path == "" {
			path = DefaultPath
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(configDir, path)
		}
		return NewLocal(path), nil
	case "postgres":
		if cfg.URL == "" {
			return nil, errors.New(`state backend postgres needs url, such as url = env("SLUICE_STATE_URL")`)
		}
		b, err := OpenPostgres(ctx, cfg.URL)
		if err != nil {
			return nil, err
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unknown state backend %q; use \"local\" or \"postgres\"", cfg.Backend)
	}
}
