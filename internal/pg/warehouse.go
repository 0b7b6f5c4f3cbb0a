package pg

import "github.com/sluice-dev/sluice/config"

// WarehouseSource returns the connection settings of a warehouse block as a
// PostgreSQL source, so that the warehouse connects exactly as sources do
// (libpq's defaults and PG* variables, sslmode defaulting to require, SSH
// tunnels). dir is the configuration's directory.
func WarehouseSource(w *config.Warehouse, dir string) *config.Source {
	return &config.Source{
		Type: "postgres",
		Name: "warehouse",
		Dir:  dir,
		Postgres: &config.Postgres{
			ConnectionString: w.URL,
			SSLMode:          w.SSLMode,
			SSLRootCert:      w.SSLRootCert,
			SSLCert:          w.SSLCert,
			SSLKey:           w.SSLKey,
			SSHTunnel:        w.SSHTunnel,
			ConnectTimeout:   config.DefaultConnectTimeout,
		},
	}
}

// NewWarehouseDialer returns a Dialer for a PostgreSQL warehouse block:
// it connects as sources do, and its errors name the warehouse block and
// its attributes and mask what the block's Sensitive says.
func NewWarehouseDialer(w *config.Warehouse, dir string) *Dialer {
	return NewDialer(WarehouseSource(w, dir), ForWarehouse(w.Sensitive))
}
