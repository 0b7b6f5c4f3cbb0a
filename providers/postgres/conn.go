package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/config"
)

// ConnConfig builds the connection settings of a source: the connection
// string, then the discrete fields over it, with libpq's PG* variables and
// ~/.pgpass filling what neither gives.
//
// Minimal version: TLS files, SSH tunnels and timeouts are added by the
// connection work of issue 3.
func ConnConfig(src *config.Source) (*pgx.ConnConfig, error) {
	pg := src.Postgres
	if pg == nil {
		return nil, fmt.Errorf("%s is not a PostgreSQL source", src.Address())
	}
	cc, err := pgx.ParseConfig(pg.ConnectionString)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid connection settings: %w", src.Address(), err)
	}
	if pg.Host != "" {
		cc.Host = pg.Host
	}
	if pg.Port != 0 {
		cc.Port = uint16(pg.Port)
	}
	if pg.Database != "" {
		cc.Database = pg.Database
	}
	if pg.User != "" {
		cc.User = pg.User
	}
	if pg.Password != "" {
		cc.Password = pg.Password
	}
	return cc, nil
}

// Connect opens an ordinary connection to a source.
func Connect(ctx context.Context, src *config.Source) (*pgx.Conn, error) {
	cc, err := ConnConfig(src)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cc)
}

// ConnectReplication opens a logical replication connection
// (replication=database) to a source, for CREATE_REPLICATION_SLOT and
// START_REPLICATION.
func ConnectReplication(ctx context.Context, src *config.Source) (*pgconn.PgConn, error) {
	cc, err := ConnConfig(src)
	if err != nil {
		return nil, err
	}
	pc := cc.Config.Copy()
	if pc.RuntimeParams == nil {
		pc.RuntimeParams = map[string]string{}
	}
	pc.RuntimeParams["replication"] = "database"
	return pgconn.ConnectConfig(ctx, pc)
}
