package stripe

import (
	"context"
	"fmt"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// TestSecretsNeverInErrors runs every API call of the provider against a
// server that fails each request in a different way and echoes the
// Authorization header in its messages (as stripe-mock does), and checks
// that neither the errors nor what stripe-go might log hold the key.
func TestSecretsNeverInErrors(t *testing.T) {
	statuses := []int{400, 401, 402, 403, 404, 409, 429, 500, 503}
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := statuses[n%len(statuses)]
		n++
		auth := r.Header.Get("Authorization")
		if n%4 == 0 {
			// Not JSON: stripe-go quotes a sample of the body.
			w.WriteHeader(status)
			fmt.Fprintf(w, "<html>bad gateway for %s</html>", auth)
			return
		}
		stripetest.WriteError(w, status, "invalid_request_error", "", "Authorization was '"+auth+"'; key "+testKey)
	}))
	defer srv.Close()

	// Whatever stripe-go would log goes to stderr: capture it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	logged := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		logged <- string(b)
	}()

	p := newProvider(t, srv.URL, testKey)
	fastRetries(p)
	ctx := context.Background()
	discard := func(*records.Batch) error { return nil }
	var errs []error
	for range statuses {
		errs = append(errs, p.CheckKey(ctx))
		_, err := p.ReadSnapshot(ctx, providers.ReadRequest{Table: "charges"}, discard)
		errs = append(errs, err)
		_, _, _, err = p.EnsureWebhookEndpoint(ctx, hookURL, []string{"charge.updated"})
		errs = append(errs, err)
		errs = append(errs, p.DeleteWebhookEndpoint(ctx, "we_1"))
	}
	_, err = p.Inspect(ctx)
	errs = append(errs, err)

	os.Stderr = stderr
	w.Close()
	out := <-logged

	for _, err := range errs {
		if err == nil {
			continue
		}
		t.Log(err)
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(s, testKey) || strings.Contains(s, "sk_test_") {
				t.Errorf("error leaks the key: %s", s)
			}
		}
	}
	if strings.Contains(out, testKey) {
		t.Errorf("stderr got the key: %s", out)
	}
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p)} {
		if strings.Contains(s, testKey) {
			t.Errorf("printing the provider shows the key: %s", s)
		}
	}
}
