package stripe

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeStripe is a small stateful stand-in for the parts of the Stripe API
// that stripe-mock, being stateless, cannot play: list endpoints whose
// content changes between reads (pagination, created filters) and webhook
// endpoints that persist between calls. Request shapes are validated
// against stripe-mock in separate tests.
type fakeStripe struct {
	t   testing.TB
	srv *httptest.Server

	mu sync.Mutex
	// objects holds list endpoints' objects by path ("/v1/charges").
	objects   map[string][]map[string]any
	endpoints []*fakeEndpoint
	nextID    int
	// denyWebhooks answers webhook endpoint requests with 403, as Stripe
	// does for restricted keys without the webhook permission.
	denyWebhooks bool
	requests     []string
}

type fakeEndpoint struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	URL     string   `json:"url"`
	Status  string   `json:"status"`
	Events  []string `json:"enabled_events"`
	Secret  string   `json:"secret,omitempty"`
	Created int64    `json:"created"`
}

func newFakeStripe(t testing.TB) *fakeStripe {
	f := &fakeStripe{t: t, objects: map[string][]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// add stores objects of a list endpoint.
func (f *fakeStripe) add(path string, objs ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[path] = append(f.objects[path], objs...)
}

func (f *fakeStripe) endpoint(id string) *fakeEndpoint {
	for _, e := range f.endpoints {
		if e.ID == id {
			return e
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func stripeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"type": typ, "code": code, "message": msg}})
}

// formList reads a form-encoded array (enabled_events[0]=..., or
// enabled_events[]=...) in index order.
func formList(form map[string][]string, name string) []string {
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

func (f *fakeStripe) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		stripeError(w, 400, "invalid_request_error", "", err.Error())
		return
	}
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		stripeError(w, 401, "invalid_request_error", "", "Invalid API Key provided: sk_test_****6789")
		return
	}
	path := r.URL.Path
	switch {
	case path == "/v1/balance":
		writeJSON(w, 200, map[string]any{"object": "balance"})
	case strings.HasPrefix(path, "/v1/webhook_endpoints"):
		f.serveWebhooks(w, r)
	case r.Method == http.MethodGet && f.objects[path] != nil:
		f.serveList(w, r, path)
	default:
		stripeError(w, 404, "invalid_request_error", "resource_missing", "Unrecognized request URL ("+r.Method+": "+path+")")
	}
}

// serveList pages through objects newest first, as Stripe lists do.
func (f *fakeStripe) serveList(w http.ResponseWriter, r *http.Request, path string) {
	objs := append([]map[string]any(nil), f.objects[path]...)
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

func (f *fakeStripe) serveWebhooks(w http.ResponseWriter, r *http.Request) {
	if f.denyWebhooks {
		stripeError(w, 403, "invalid_request_error", "",
			"The provided key 'rk_test_****6789' does not have the required permissions for this endpoint. Having the 'rak_webhook_write' permission would allow this request to continue.")
		return
	}
	id, hasID := strings.CutPrefix(r.URL.Path, "/v1/webhook_endpoints/")
	switch {
	case !hasID && r.Method == http.MethodGet:
		data := make([]fakeEndpoint, 0, len(f.endpoints))
		for _, e := range f.endpoints {
			c := *e
			c.Secret = "" // revealed at creation only
			data = append(data, c)
		}
		writeJSON(w, 200, map[string]any{"object": "list", "url": "/v1/webhook_endpoints", "has_more": false, "data": data})
	case !hasID && r.Method == http.MethodPost:
		f.nextID++
		e := &fakeEndpoint{
			ID:     fmt.Sprintf("we_fake%d", f.nextID),
			Object: "webhook_endpoint",
			URL:    r.Form.Get("url"),
			Status: "enabled",
			Events: formList(r.Form, "enabled_events"),
			Secret: fmt.Sprintf("whsec_fakeSecret%d", f.nextID),
		}
		f.endpoints = append(f.endpoints, e)
		writeJSON(w, 200, e)
	case hasID && f.endpoint(id) == nil:
		stripeError(w, 404, "invalid_request_error", "resource_missing", "No such webhook endpoint: '"+id+"'")
	case r.Method == http.MethodPost:
		e := f.endpoint(id)
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
		for i, e := range f.endpoints {
			if e.ID == id {
				f.endpoints = append(f.endpoints[:i], f.endpoints[i+1:]...)
				break
			}
		}
		writeJSON(w, 200, map[string]any{"id": id, "object": "webhook_endpoint", "deleted": true})
	default:
		stripeError(w, 405, "invalid_request_error", "", "method not allowed")
	}
}
