package runner

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// TestIntakeWithoutRunner: webhook intake works from its dependencies
// alone: before the tables are known it asks the sender to retry, and it
// knows no source that has no webhook tables.
func TestIntakeWithoutRunner(t *testing.T) {
	loaded := false
	h := newIntake(intakeDeps{
		dir:      t.TempDir(),
		tables:   func(string) ([]job, bool) { return nil, loaded },
		registry: prometheus.NewRegistry(), log: hclog.NewNullLogger(), now: time.Now,
	})
	defer h.close()
	srv := httptest.NewServer(h.handler(WebhookLimits{}))
	defer srv.Close()
	for _, tc := range []struct {
		loaded bool
		want   int
	}{{false, http.StatusServiceUnavailable}, {true, http.StatusNotFound}} {
		loaded = tc.loaded
		resp, err := http.Post(srv.URL+"/webhooks/stripe.billing", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("loaded %v: status %d, want %d", tc.loaded, resp.StatusCode, tc.want)
		}
	}
}
