package runner_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/stripetest"
	"github.com/sluice-dev/sluice/runner"
)

// slowClient is one connection that sends a delivery's headers and then
// its body one byte at a time, as the attack on the receiver did.
type slowClient struct {
	started time.Time
	ended   time.Time // when the server answered or closed
	status  string    // the status line, "" when closed without one
}

// trickle opens a connection to srv and sends a body of size bytes, one
// every interval, until the server answers or closes (or 10s pass).
func trickle(t *testing.T, srv *httptest.Server, path string, size int, interval time.Duration) *slowClient {
	c := &slowClient{started: time.Now()}
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Error(err)
		c.ended = time.Now()
		return c
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	body := []byte(strings.Repeat("x", size))
	sig := stripetest.Sign(hookSecret, time.Now(), body)
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\nStripe-Signature: %s\r\nContent-Length: %d\r\n\r\n", path, sig, size); err != nil {
		t.Error(err)
		return c
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		line, _ := bufio.NewReader(conn).ReadString('\n')
		c.status = strings.TrimSpace(line)
		c.ended = time.Now()
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < size; i++ {
		select {
		case <-done:
			return c
		case <-tick.C:
		}
		if _, err := conn.Write(body[i : i+1]); err != nil {
			break
		}
	}
	<-done
	return c
}

// TestWebhookSlowClients attacks the receiver over real TCP with clients
// that trickle their body a byte at a time: each is cut off within the
// body timeout, the ones beyond the limit are answered 503 with
// Retry-After at once, and a signed delivery sent during the attack is
// received (it takes the place of the oldest slow reader), as are
// /metrics and /healthz.
func TestWebhookSlowClients(t *testing.T) {
	e := newHookEnv(t, "")
	r := e.runner()
	if err := r.Load(e.ctx); err != nil {
		t.Fatal(err)
	}
	lim := runner.WebhookLimits{BodyTimeout: time.Second, MaxInFlight: 4, MaxInFlightPerSource: 3, EvictAfter: 200 * time.Millisecond}
	mux := r.Metrics().Handler()
	mux.Handle("/webhooks/", r.LimitedWebhookHandler(lim))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	const attackers = 12
	var wg sync.WaitGroup
	clients := make([]*slowClient, attackers)
	for i := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i] = trickle(t, srv, hookPath, 1000, 100*time.Millisecond)
		}()
		time.Sleep(5 * time.Millisecond)
	}
	// The slots are held by slow readers older than EvictAfter.
	time.Sleep(300 * time.Millisecond)
	ev := chargeEvent("evt_attack", "charge.refunded", "ch_1", time.Now().Unix(), 10)
	if status, body := post(t, srv, delivery{body: ev}); status != http.StatusOK {
		t.Errorf("a signed delivery during the attack: %d %s", status, body)
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s during the attack: %d", path, resp.StatusCode)
		}
	}
	wg.Wait()

	var busy, timedOut int
	for i, c := range clients {
		if c.ended.IsZero() {
			t.Errorf("slow client %d was never cut off", i)
			continue
		}
		if d := c.ended.Sub(c.started); d > lim.BodyTimeout+time.Second {
			t.Errorf("slow client %d held its connection for %s (%s)", i, d.Round(time.Millisecond), c.status)
		}
		switch c.status {
		case "HTTP/1.1 503 Service Unavailable":
			busy++
		case "HTTP/1.1 408 Request Timeout":
			timedOut++
		default:
			t.Errorf("slow client %d: %q, want 408 or 503", i, c.status)
		}
	}
	// At least as many as fit the source's limit time out (more when a
	// slow start let one evict another); the rest are refused at once.
	if timedOut < lim.MaxInFlightPerSource || busy == 0 {
		t.Errorf("%d cut off after the body timeout and %d refused, want at least %d and 1", timedOut, busy, lim.MaxInFlightPerSource)
	}
}
