// Package stripetest gives tests outside providers/stripe a Stripe API:
// stripe-mock (the stateless stand-in whose responses follow Stripe's
// OpenAPI specification), started once per test process on a loopback
// port, and Server, a small stateful stand-in for what stripe-mock cannot
// play: webhook endpoints that persist between calls, and lists whose
// content a test sets. Server passes every other request on to stripe-mock
// when it has one. Sign signs a webhook delivery as Stripe does.
package stripetest

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Sign returns the Stripe-Signature header of a delivery of payload signed
// with secret at t: t=<unix>,v1=hex(HMAC-SHA256(secret, "<unix>.<payload>")).
func Sign(secret string, t time.Time, payload []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(payload)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

var mock struct {
	once sync.Once
	url  string
	err  error
}

// MockURL returns the base URL of the process's stripe-mock, installing
// (scripts/ensure-stripe-mock.sh) and starting it on first use. It dies
// with the test process.
func MockURL(t testing.TB) string {
	t.Helper()
	mock.once.Do(func() { mock.url, mock.err = startMock() })
	if mock.err != nil {
		t.Fatal(mock.err)
	}
	return mock.url
}

func startMock() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "ensure-stripe-mock.sh")
	out, err := exec.Command("bash", script).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s: %v\n%s", script, err, ee.Stderr)
		}
		return "", fmt.Errorf("%s: %v", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := lines[len(lines)-1]
	// Both listeners on system-chosen ports: HTTPS cannot be turned off,
	// and its default port would collide between test processes.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		// Pdeathsig fires when the thread that forked exits: this one
		// lives as long as stripe-mock.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	addr := make(chan string, 1)
	var mu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if a, ok := strings.CutPrefix(sc.Text(), "Listening for HTTP at address: "); ok {
				addr <- strings.TrimSpace(a)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-addr:
		return "http://" + a, nil
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
	}
	mu.Lock()
	defer mu.Unlock()
	return "", fmt.Errorf("stripe-mock did not start listening:\n%s", log.String())
}

// Endpoint is a webhook endpoint the Server holds.
type Endpoint struct {
	ID     string   `json:"id"`
	Object string   `json:"object"`
	URL    string   `json:"url"`
	Status string   `json:"status"`
	Events []string `json:"enabled_events"`
	Secret string   `json:"secret,omitempty"`
}

// Server is the stateful stand-in.
type Server struct {
	URL string

	t        testing.TB
	key      string
	upstream *httputil.ReverseProxy

	mu sync.Mutex
	// denyWebhooks answers webhook endpoint requests with 403, as Stripe
	// does for restricted keys without the webhook permission.
	denyWebhooks bool
	objects      map[string][]map[string]any
	endpoints    []*Endpoint
	nextID       int
	requests     []string
}

// NewServer starts a stand-in that accepts key. upstream, when not "", is
// where the requests it does not serve go (stripe-mock's URL).
func NewServer(t testing.TB, key, upstream string) *Server {
	s := &Server{t: t, key: key, objects: map[string][]map[string]any{}}
	if upstream != "" {
		u, err := url.Parse(upstream)
		if err != nil {
			t.Fatal(err)
		}
		s.upstream = httputil.NewSingleHostReverseProxy(u)
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Add stores objects of a list endpoint ("/v1/charges"); each needs an
// "id" (string) and a "created" (int64).
func (s *Server) Add(path string, objs ...map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[path] = append(s.objects[path], objs...)
}

// Endpoints returns copies of the registered webhook endpoints.
func (s *Server) Endpoints() []Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Endpoint, len(s.endpoints))
	for i, e := range s.endpoints {
		out[i] = *e
	}
	return out
}

// SetStatus disables ("disabled") or enables an endpoint, as the
// Dashboard does; an empty status deletes it.
func (s *Server) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.endpoints {
		if e.ID == id {
			if status == "" {
				s.endpoints = append(s.endpoints[:i], s.endpoints[i+1:]...)
			} else {
				e.Status = status
			}
			return
		}
	}
}

// DenyWebhooks makes webhook endpoint requests fail as they do for a
// restricted key without the webhook permission.
func (s *Server) DenyWebhooks(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyWebhooks = deny
}

// Requests lists "METHOD /path" of every request, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func stripeError(w http.ResponseWriter, status int, code, msg string) {
	WriteError(w, status, "invalid_request_error", code, msg)
}

// WriteError answers with an error in Stripe's shape.
func WriteError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"type": typ, "code": code, "message": msg}})
}

// formList reads a form-encoded array (events[0]=..., or events[]=...) in
// index order.
func formList(form url.Values, name string) []string {
	type kv struct {
		i int
		v string
	}
	var items []kv
	for k, vs := range form {
		rest, ok := strings.CutPrefix(k, name+"[")
		if !ok {
			continue
		}
		i, _ := strconv.Atoi(strings.TrimSuffix(rest, "]"))
		for _, v := range vs {
			items = append(items, kv{i, v})
		}
	}
	sort.SliceStable(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+path)
	_, isList := s.objects[path]
	s.mu.Unlock()
	own := strings.HasPrefix(path, "/v1/webhook_endpoints") || (r.Method == http.MethodGet && isList)
	if !own && s.upstream != nil {
		s.upstream.ServeHTTP(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		stripeError(w, 400, "", err.Error())
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.key {
		stripeError(w, 401, "", "Invalid API Key provided")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasPrefix(path, "/v1/webhook_endpoints"):
		s.serveWebhooks(w, r)
	case r.Method == http.MethodGet && isList:
		s.serveList(w, r, path)
	case path == "/v1/balance":
		writeJSON(w, 200, map[string]any{"object": "balance"})
	default:
		stripeError(w, 404, "resource_missing", "Unrecognized request URL ("+r.Method+": "+path+")")
	}
}

// serveList pages through objects newest first, as Stripe lists do.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, path string) {
	objs := append([]map[string]any(nil), s.objects[path]...)
	sort.SliceStable(objs, func(a, b int) bool {
		ca, cb := objs[a]["created"].(int64), objs[b]["created"].(int64)
		if ca != cb {
			return ca > cb
		}
		return objs[a]["id"].(string) > objs[b]["id"].(string)
	})
	if v := r.Form.Get("created[gte]"); v != "" {
		gte, _ := strconv.ParseInt(v, 10, 64)
		kept := objs[:0]
		for _, o := range objs {
			if o["created"].(int64) >= gte {
				kept = append(kept, o)
			}
		}
		objs = kept
	}
	if after := r.Form.Get("starting_after"); after != "" {
		for i, o := range objs {
			if o["id"] == after {
				objs = objs[i+1:]
				break
			}
		}
	}
	limit, _ := strconv.Atoi(r.Form.Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	more := len(objs) > limit
	if more {
		objs = objs[:limit]
	}
	writeJSON(w, 200, map[string]any{"object": "list", "url": path, "has_more": more, "data": objs})
}

func (s *Server) endpoint(id string) *Endpoint {
	for _, e := range s.endpoints {
		if e.ID == id {
			return e
		}
	}
	return nil
}

func (s *Server) serveWebhooks(w http.ResponseWriter, r *http.Request) {
	if s.denyWebhooks {
		stripeError(w, 403, "", "The provided key 'rk_test_****6789' does not have the required permissions for this endpoint. "+
			"Having the 'rak_webhook_write' permission would allow this request to continue.")
		return
	}
	id, hasID := strings.CutPrefix(r.URL.Path, "/v1/webhook_endpoints/")
	switch {
	case !hasID && r.Method == http.MethodGet:
		data := make([]Endpoint, 0, len(s.endpoints))
		for _, e := range s.endpoints {
			c := *e
			c.Secret = "" // revealed at creation only
			data = append(data, c)
		}
		writeJSON(w, 200, map[string]any{"object": "list", "url": "/v1/webhook_endpoints", "has_more": false, "data": data})
	case !hasID && r.Method == http.MethodPost:
		s.nextID++
		e := &Endpoint{
			ID:     fmt.Sprintf("we_test%d", s.nextID),
			Object: "webhook_endpoint",
			URL:    r.Form.Get("url"),
			Status: "enabled",
			Events: formList(r.Form, "enabled_events"),
			Secret: fmt.Sprintf("whsec_test%dSecret", s.nextID),
		}
		s.endpoints = append(s.endpoints, e)
		writeJSON(w, 200, e)
	case hasID && s.endpoint(id) == nil:
		stripeError(w, 404, "resource_missing", "No such webhook endpoint: '"+id+"'")
	case r.Method == http.MethodPost:
		e := s.endpoint(id)
		if ev := formList(r.Form, "enabled_events"); len(ev) > 0 {
			e.Events = ev
		}
		switch r.Form.Get("disabled") {
		case "true":
			e.Status = "disabled"
		case "false":
			e.Status = "enabled"
		}
		c := *e
		c.Secret = ""
		writeJSON(w, 200, c)
	case r.Method == http.MethodDelete:
		for i, e := range s.endpoints {
			if e.ID == id {
				s.endpoints = append(s.endpoints[:i], s.endpoints[i+1:]...)
				break
			}
		}
		writeJSON(w, 200, map[string]any{"id": id, "object": "webhook_endpoint", "deleted": true})
	default:
		stripeError(w, 405, "", "method not allowed")
	}
}
