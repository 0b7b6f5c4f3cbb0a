package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	stripe "github.com/stripe/stripe-go/v85"
)

// APIError is an error response of the Stripe API. Its message never holds
// the API key: Stripe masks keys in its messages, and stripe-compatible
// servers that echo the Authorization header are redacted too.
type APIError struct {
	// Source is the source's address, "stripe.billing"; Op is what was
	// being done, "list charges".
	Source, Op string
	// Status is the HTTP status; Type and Code are Stripe's error type
	// ("invalid_request_error") and code ("resource_missing").
	Status     int
	Type, Code string
	Message    string
	RequestID  string
	// APIBase is the API's base URL, named in the hint of a rejected key.
	APIBase string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: ", e.Source, e.Op)
	switch e.Status {
	case http.StatusUnauthorized:
		// Stripe's own text repeats part of the key; ours names the fix.
		fmt.Fprintf(&b, "Invalid API Key provided: check api_key (%s rejected it)", e.APIBase)
		return b.String()
	case http.StatusForbidden:
		b.WriteString("the API key lacks a permission this needs: ")
	case http.StatusTooManyRequests:
		b.WriteString("rate limited by Stripe, still after retries: ")
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	b.WriteString(msg)
	var detail []string
	detail = append(detail, fmt.Sprintf("HTTP %d", e.Status))
	if e.Type != "" {
		detail = append(detail, e.Type)
	}
	if e.Code != "" {
		detail = append(detail, e.Code)
	}
	if e.RequestID != "" {
		detail = append(detail, "request "+e.RequestID)
	}
	fmt.Fprintf(&b, " (%s)", strings.Join(detail, ", "))
	if e.Status == http.StatusForbidden {
		b.WriteString("; grant the restricted key that permission, or use a secret key")
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later: the API
// was rate limiting or failing (after the transport's own retries), or a
// lock on the object timed out.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusConflict || e.Status >= 500
}

// IsPermission reports whether err is the API refusing a request the key
// may not make (a restricted key without the permission).
func IsPermission(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusForbidden
}

// IsNotFound reports whether err is the API saying the object does not
// exist.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// redactedError carries an error whose text had secrets removed, keeping
// the original in the chain for errors.Is/As (network errors, context).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// secretPattern matches Stripe API keys (sk_, rk_, pk_; live or test, whole
// or masked) and webhook signing secrets.
var secretPattern = regexp.MustCompile(`\b(?:[srp]k_(?:test|live)_|whsec_)[0-9A-Za-z*]+`)

// redact removes the key (and anything shaped like a Stripe secret) from s.
func (p *Provider) redact(s string) string {
	if p.key != "" {
		s = strings.ReplaceAll(s, p.key, "[redacted]")
	}
	return secretPattern.ReplaceAllString(s, "[redacted]")
}

// wrapErr turns an error of a call to the API into one that names the
// source and the operation and says what to do, without secrets.
func (p *Provider) wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *stripe.Error
	if errors.As(err, &se) {
		return &APIError{
			Source:    p.addr,
			Op:        op,
			Status:    se.HTTPStatusCode,
			Type:      string(se.Type),
			Code:      string(se.Code),
			Message:   p.redact(se.Msg),
			RequestID: se.RequestID,
			APIBase:   p.base,
		}
	}
	msg := p.redact(err.Error())
	var ue *url.Error
	if errors.As(err, &ue) && !errors.Is(err, context.Canceled) {
		msg = fmt.Sprintf("%s: %s: cannot reach the Stripe API at %s: %s (check api_base and the network)", p.addr, op, p.base, msg)
	} else {
		msg = fmt.Sprintf("%s: %s: %s", p.addr, op, msg)
	}
	return &redactedError{msg: msg, err: err}
}
