package main

import (
	"net/http"
	"time"

	"github.com/sluice-dev/sluice/runner"
)

// serverLimits bound what one client of the daemon's HTTP server (health,
// metrics, webhooks) may hold: a connection that sends its request slowly
// or not at all is closed, so that it cannot keep a connection (and a
// file descriptor) forever. Tests shorten them.
type serverLimits struct {
	// ReadHeaderTimeout bounds the request line and headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the whole request, body included; webhook
	// bodies have the tighter Webhook.BodyTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds the handler and its response.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections that send no request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers' size.
	MaxHeaderBytes int
	// Webhook bounds webhook deliveries: their bodies' time and how many
	// are received at once, per source and in all.
	Webhook runner.WebhookLimits
}

// defaultServerLimits are generous for Stripe (which sends small bodies at
// once and waits up to 30s for an answer) and Prometheus scrapes.
var defaultServerLimits = serverLimits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       2 * time.Minute,
	MaxHeaderBytes:    64 << 10,
}

// newServer returns the daemon's HTTP server on addr: /healthz and
// /metrics, and the webhook receiver under /webhooks/.
func newServer(addr string, r *runner.Runner, l serverLimits) *http.Server {
	mux := r.Metrics().Handler()
	mux.Handle("/webhooks/", r.LimitedWebhookHandler(l.Webhook))
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}
