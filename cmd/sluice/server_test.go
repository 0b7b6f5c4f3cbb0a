package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/runner"
)

// TestServerCutsSlowClients holds connections to the daemon's server the
// ways a slowloris attack does (headers a byte at a time, a body a byte at
// a time to an unknown webhook source, nothing at all after a request),
// over real TCP: each is closed within its bound while /healthz and
// /metrics answer.
func TestServerCutsSlowClients(t *testing.T) {
	lim := serverLimits{
		ReadHeaderTimeout: 300 * time.Millisecond,
		ReadTimeout:       600 * time.Millisecond,
		WriteTimeout:      time.Second,
		IdleTimeout:       300 * time.Millisecond,
		MaxHeaderBytes:    4 << 10,
	}
	r := runner.New(runner.Options{Config: &config.Config{}})
	defer r.Close()
	srv := newServer("127.0.0.1:0", r, lim)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()

	tests := []struct {
		name  string
		bound time.Duration
		// first is sent at once, then rest a byte every 50ms.
		first, rest string
	}{
		{"headers a byte at a time", lim.ReadHeaderTimeout, "", "POST /webhooks/stripe.x HTTP/1.1\r\nHost: h\r\nX-Pad: " + strings.Repeat("y", 200)},
		{"body a byte at a time", lim.ReadTimeout, "POST /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 500\r\n\r\n", strings.Repeat("x", 500)},
		{"idle after a request", lim.IdleTimeout + lim.ReadHeaderTimeout, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", ""},
		{"headers too large", lim.ReadHeaderTimeout, "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Pad: " + strings.Repeat("y", 8<<10) + "\r\n\r\n", ""},
	}
	var wg sync.WaitGroup
	for _, tt := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			start := time.Now()
			_ = conn.SetDeadline(start.Add(10 * time.Second))
			closed := make(chan time.Duration, 1)
			go func() {
				// Read until the server closes the connection.
				io.Copy(io.Discard, bufio.NewReader(conn))
				closed <- time.Since(start)
			}()
			if _, err := io.WriteString(conn, tt.first); err != nil {
				t.Errorf("%s: %v", tt.name, err)
				return
			}
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; i < len(tt.rest); i++ {
				select {
				case d := <-closed:
					closed <- d
					i = len(tt.rest)
					continue
				case <-tick.C:
				}
				if _, err := io.WriteString(conn, tt.rest[i:i+1]); err != nil {
					break
				}
			}
			d := <-closed
			if d > tt.bound+time.Second {
				t.Errorf("%s: the connection stayed open %s (bound %s)", tt.name, d.Round(time.Millisecond), tt.bound)
			}
		}()
	}
	// Meanwhile the server answers.
	for range 3 {
		for _, path := range []string{"/healthz", "/metrics"} {
			resp, err := http.Get(fmt.Sprintf("http://%s%s", addr, path))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d", path, resp.StatusCode)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
}

// TestServerCapsConnections opens more idle connections than MaxConns
// over real TCP: the oldest are closed as new ones arrive, long before
// their header timeout, and a request made meanwhile is answered.
func TestServerCapsConnections(t *testing.T) {
	lim := defaultServerLimits
	lim.ReadHeaderTimeout = 5 * time.Second
	lim.MaxConns = 8
	r := runner.New(runner.Options{Config: &config.Config{}})
	defer r.Close()
	srv := newServer("127.0.0.1:0", r, lim)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()

	const idle = 20
	closed := make(chan struct{}, idle)
	for range idle {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			// Returns when the server closes the connection.
			io.Copy(io.Discard, conn)
			closed <- struct{}{}
		}()
		time.Sleep(5 * time.Millisecond)
	}
	client := &http.Client{Timeout: 3 * time.Second}
	for range 3 {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("/healthz while %d connections wait: %v", idle, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz: %d", resp.StatusCode)
		}
	}
	// Beyond the cap, every waiting connection was closed at once.
	deadline := time.After(2 * time.Second)
	for n := 0; n < idle-lim.MaxConns+1; n++ {
		select {
		case <-closed:
		case <-deadline:
			t.Fatalf("only %d of %d idle connections were closed within 2s (cap %d)", n, idle, lim.MaxConns)
		}
	}
}
