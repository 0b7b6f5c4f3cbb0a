package pgstate

import (
	"context"
	"errors"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/state"
)

// The postgres backend is opened by state.Open in the programs that
// import this package.
func init() {
	state.RegisterBackend("postgres", func(ctx context.Context, cfg config.State, _ string) (state.Backend, error) {
		if cfg.URL == "" {
			return nil, errors.New(`state backend postgres needs url, such as url = env("SLUICE_STATE_URL")`)
		}
		b, err := OpenPostgres(ctx, cfg.URL)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}
