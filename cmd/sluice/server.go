package main

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
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
	// MaxConns bounds the open connections: beyond it, the connection
	// that has waited longest for (or in) a request's headers is closed,
	// so that slow clients cannot use up the file descriptors while a
	// fast one waits. Connections whose request is being handled are
	// never closed this way (webhook deliveries have their own limits).
	MaxConns int
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
	MaxConns:          512,
}

// newServer returns the daemon's HTTP server on addr: /healthz and
// /metrics, and the webhook receiver under /webhooks/.
func newServer(addr string, r *runner.Runner, l serverLimits) *http.Server {
	mux := r.Metrics().Handler()
	mux.Handle("/webhooks/", r.LimitedWebhookHandler(l.Webhook))
	srv := &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
	if l.MaxConns > 0 {
		cl := &connLimiter{max: l.MaxConns, conns: map[net.Conn]*connInfo{}}
		srv.ConnContext = cl.connContext
		srv.ConnState = cl.connState
		srv.Handler = cl.handler(mux)
	}
	return srv
}

// connLimiter keeps the number of open connections under max by closing,
// when a new one arrives beyond it, the one that has waited longest
// outside a handler.
type connLimiter struct {
	max   int
	mu    sync.Mutex
	conns map[net.Conn]*connInfo
}

// connInfo is the limiter's view of one connection.
type connInfo struct {
	conn net.Conn
	// since is when the connection last became new, active or idle.
	since     time.Time
	inHandler atomic.Int32
}

type connInfoKey struct{}

func (cl *connLimiter) connContext(ctx context.Context, c net.Conn) context.Context {
	ci := &connInfo{conn: c, since: time.Now()}
	cl.mu.Lock()
	cl.conns[c] = ci
	cl.mu.Unlock()
	return context.WithValue(ctx, connInfoKey{}, ci)
}

func (cl *connLimiter) connState(c net.Conn, st http.ConnState) {
	var victim net.Conn
	cl.mu.Lock()
	switch st {
	case http.StateNew:
		if len(cl.conns) > cl.max {
			victim = cl.oldestWaiting()
		}
	case http.StateActive, http.StateIdle:
		if ci := cl.conns[c]; ci != nil {
			ci.since = time.Now()
		}
	case http.StateHijacked, http.StateClosed:
		delete(cl.conns, c)
	}
	cl.mu.Unlock()
	if victim != nil {
		victim.Close()
	}
}

// oldestWaiting is the connection not in a handler that has waited the
// longest, the new one included.
func (cl *connLimiter) oldestWaiting() net.Conn {
	var oldest *connInfo
	for _, ci := range cl.conns {
		if ci.inHandler.Load() == 0 && (oldest == nil || ci.since.Before(oldest.since)) {
			oldest = ci
		}
	}
	if oldest == nil {
		return nil
	}
	// Closed once: its StateClosed removes it, but not before the next
	// new connection may look.
	delete(cl.conns, oldest.conn)
	return oldest.conn
}

// handler marks the connections whose request is being handled.
func (cl *connLimiter) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if ci, ok := req.Context().Value(connInfoKey{}).(*connInfo); ok {
			ci.inHandler.Add(1)
			defer ci.inHandler.Add(-1)
		}
		next.ServeHTTP(w, req)
	})
}
