package stripe

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/stripetest"
)

// stripeMockURL returns the base URL of stripe-mock, shared by the tests
// of the process and started on first use (fuzz workers never start it).
func stripeMockURL(t testing.TB) string { return stripetest.MockURL(t) }

// testKey is a test-mode key stripe-mock accepts. It is distinctive so that
// tests can tell whether it leaked into an error.
const testKey = "sk_test_51SluiceTestKeyDoNotLeak0123456789"

// source returns a Stripe source configuration for base.
func source(base, key string) *config.Source {
	return &config.Source{
		Type:   "stripe",
		Name:   "billing",
		Prefix: "stripe",
		Stripe: &config.Stripe{APIKey: key, APIBase: base},
	}
}

// newProvider returns a provider of a source at base, with the key.
func newProvider(t testing.TB, base, key string) *Provider {
	t.Helper()
	p, err := New(source(base, key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// fastRetries makes the provider's retries wait for nothing, recording the
// waits asked for.
func fastRetries(p *Provider) *[]time.Duration {
	var mu sync.Mutex
	waits := &[]time.Duration{}
	p.transport.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		*waits = append(*waits, d)
		return ctx.Err()
	}
	return waits
}
