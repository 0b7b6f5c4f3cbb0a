package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
)

// TestCheckMasksSensitiveNames: connected as a role whose name derives
// from a sensitive value, `sluice check` names it (ALTER ROLE ...
// REPLICATION): no form of the value may show. (Connection errors are
// masked by internal/pg, tested there.)
func TestCheckMasksSensitiveNames(t *testing.T) {
	const leaky = `Le"ak\9ü'x`
	url := pgtest.NewDB(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := "u-" + leaky + t.Name()
	if _, err := admin.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN NOREPLICATION"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP ROLE "+pgx.Identifier{role}.Sanitize()) })
	cc := admin.Config()
	src := &config.Source{Type: "postgres", Name: "src", Postgres: &config.Postgres{Host: cc.Host, Port: int(cc.Port), User: role, Database: cc.Database, SSLMode: "disable"}}
	src.Sensitive = map[string]bool{"user": true}
	p, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	checks, err := p.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(checks)
	if !strings.Contains(string(out), "may not replicate") {
		t.Errorf("no replication check failed: %s", out)
	}
	if strings.Contains(string(out), "Le") {
		t.Errorf("checks show the sensitive value: %s", out)
	}
}
