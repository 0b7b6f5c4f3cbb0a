package pgstate

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/state"
)

// TestOpen: state.Open opens the postgres backend once this package is
// linked; a bad url is refused without showing the password.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Run("postgres", func(t *testing.T) {
		b, err := state.Open(ctx, config.State{Backend: "postgres", URL: pgtest.NewDB(t)}, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, ok := b.(*Postgres); !ok {
			t.Errorf("got %T", b)
		}
	})

	u, _ := url.Parse(pgtest.NewDB(t))
	u.User = url.UserPassword("nobody", "hunter2-secret")
	bad := []struct {
		name string
		cfg  config.State
		want string
	}{
		{name: "no url", cfg: config.State{Backend: "postgres"}, want: "needs url"},
		{name: "unparsable url", cfg: config.State{Backend: "postgres", URL: "postgres://u:hunter2-secret@host:port/db"}, want: "not a valid PostgreSQL connection string"},
		{name: "refused", cfg: config.State{Backend: "postgres", URL: u.String()}, want: "connect"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := state.Open(ctx, tt.cfg, dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open: %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the password is in the error: %v", err)
			}
		})
	}
}
