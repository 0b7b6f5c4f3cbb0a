package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/providers"
)

func TestEstimateRows(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `
		CREATE TABLE plain (id int); INSERT INTO plain SELECT generate_series(1, 1000); ANALYZE plain;
		CREATE TABLE never (id int);
		CREATE TABLE "Parted" (id int, k int) PARTITION BY RANGE (k);
		CREATE TABLE p1 PARTITION OF "Parted" FOR VALUES FROM (0) TO (10);
		CREATE TABLE p2 PARTITION OF "Parted" FOR VALUES FROM (10) TO (20);
		INSERT INTO "Parted" SELECT g, g % 20 FROM generate_series(1, 400) g; ANALYZE "Parted";`); err != nil {
		t.Fatal(err)
	}
	p, err := New(&config.Source{Type: "postgres", Name: "t", Postgres: &config.Postgres{ConnectionString: url, SSLMode: "disable"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tests := []struct {
		table string
		rows  int64
		known bool
	}{
		{"plain", 1000, true},
		{"never", 0, false},
		{"Parted", 400, true},
	}
	for _, tt := range tests {
		rows, known, err := p.EstimateRows(ctx, providers.ReadRequest{Schema: "public", Table: tt.table})
		if err != nil || rows != tt.rows || known != tt.known {
			t.Errorf("EstimateRows(%s) = %d, %v, %v; want %d, %v", tt.table, rows, known, err, tt.rows, tt.known)
		}
	}
}
