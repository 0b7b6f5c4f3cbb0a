package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/iceberg"
	"github.com/sluice-dev/sluice/warehouse/parquet"
	"github.com/sluice-dev/sluice/warehouse/postgres"
)

// warehouseOpenTimeout bounds connecting to a postgres warehouse and
// creating its schema and positions table, or opening an iceberg
// warehouse's catalog and namespace.
const warehouseOpenTimeout = 2 * time.Minute

// openWarehouse opens the configured destination for the runner; the
// caller closes it.
func openWarehouse(ctx context.Context, cfg *config.Config) (warehouse.Warehouse, error) {
	switch cfg.Warehouse.Backend {
	case "", "parquet":
		root, err := config.ResolvePath(cfg.Dir, cfg.Warehouse.Path)
		if err != nil {
			return nil, err
		}
		w, err := parquet.Open(root)
		if err != nil {
			return nil, err
		}
		return w, nil
	case "postgres":
		ctx, cancel := context.WithTimeout(ctx, warehouseOpenTimeout)
		defer cancel()
		w, err := postgres.Open(ctx, &cfg.Warehouse, cfg.Dir)
		if err != nil {
			return nil, err
		}
		return w, nil
	case "iceberg":
		ctx, cancel := context.WithTimeout(ctx, warehouseOpenTimeout)
		defer cancel()
		return openIceberg(ctx, cfg)
	}
	return nil, fmt.Errorf("warehouse backend %q is not available in this version of sluice; use backend = \"parquet\", \"postgres\" or \"iceberg\"", cfg.Warehouse.Backend)
}

// icebergOptions are the iceberg backend's options of a configuration,
// with the secrets its errors must not show.
func icebergOptions(cfg *config.Config) (iceberg.Options, secretScrubber, error) {
	w := &cfg.Warehouse
	loc, err := cfg.IcebergLocation()
	if err != nil {
		return iceberg.Options{}, nil, err
	}
	catURL, _, err := cfg.IcebergCatalogURL()
	if err != nil {
		return iceberg.Options{}, nil, err
	}
	o := iceberg.Options{
		Location:    loc,
		Namespace:   w.Namespace,
		CatalogURL:  catURL,
		Maintenance: iceberg.MaintenancePolicy{Retention: w.Retention},
	}
	var scrub secretScrubber
	if s := w.S3; s != nil {
		o.S3 = iceberg.S3Options{Endpoint: s.Endpoint, Region: s.Region, PathStyle: s.PathStyle,
			AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey}
		scrub = append(scrub, s.AccessKeyID, s.SecretAccessKey)
	}
	// A catalog URL may hold a password: the errors name the catalog
	// without it.
	if u, err := url.Parse(catURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			scrub = append(scrub, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	return o, scrub, nil
}

// openIceberg opens the iceberg warehouse of a configuration.
func openIceberg(ctx context.Context, cfg *config.Config) (*iceberg.Warehouse, error) {
	o, scrub, err := icebergOptions(cfg)
	if err != nil {
		return nil, err
	}
	w, err := iceberg.Open(ctx, o)
	if err != nil {
		return nil, scrub.wrap(err)
	}
	return w, nil
}

// secretScrubber lists secret values an error message must not show.
type secretScrubber []string

// wrap returns err with every secret of s in its message masked; nil
// stays nil, and errors.Is and As still see the original.
func (s secretScrubber) wrap(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	masked := msg
	for _, secret := range s {
		if secret != "" {
			masked = strings.ReplaceAll(masked, secret, "****")
		}
	}
	if masked == msg {
		return err
	}
	return &scrubbedError{msg: masked, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// orphanRemover is a warehouse that can remove the files failed or killed
// commits left (the Iceberg warehouse).
type orphanRemover interface {
	RemoveOrphans(ctx context.Context) error
}

// sweepOrphans removes, in the background of a runner's start, the files
// earlier failed or killed commits left (they are never visible, only
// storage); the returned func cancels the sweep and waits for it, before
// the warehouse is closed. Failures are warnings: the next start or the
// table's maintenance tries again.
func sweepOrphans(ctx context.Context, wh warehouse.Warehouse, logger hclog.Logger) func() {
	r, ok := wh.(orphanRemover)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.RemoveOrphans(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("removing the files of failed commits from the warehouse", "error", err)
		}
	}()
	return func() { cancel(); <-done }
}
