package runner

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsRunnerLabel: a named runner's series all carry
// runner="<id>", so that a fleet's runners scraped apart add up.
func TestMetricsRunnerLabel(t *testing.T) {
	m := NewRunnerMetrics("runner-7")
	m.rows.WithLabelValues("postgres.shop/orders").Add(3)
	m.slotLag.WithLabelValues("postgres.shop").Set(10)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sluice int
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if !strings.Contains(line, `runner="runner-7"`) {
			t.Errorf("a series without the runner label: %s", line)
		}
		if strings.HasPrefix(line, "sluice_") {
			sluice++
		}
	}
	if sluice < 2 {
		t.Errorf("the sluice series are missing:\n%s", body)
	}
}
