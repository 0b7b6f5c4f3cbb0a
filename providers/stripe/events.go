package stripe

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// DefaultTolerance is how far from now a webhook signature's timestamp may
// be, either way: older deliveries may be replays, and Stripe's clock is
// not ahead of ours by more than that.
const DefaultTolerance = 5 * time.Minute

// Bounds of what a webhook delivery may be. Stripe's events are far
// smaller and shallower; the receiver should also read at most
// MaxEventBytes of a request body (http.MaxBytesReader).
const (
	MaxEventBytes = 4 << 20
	MaxEventDepth = 64
	// maxSignatureHeader bounds the Stripe-Signature header; Stripe sends
	// a timestamp and one or two signatures (two while a secret is rolled).
	maxSignatureHeader = 4096
	maxSignatures      = 16
)

// Errors of VerifySignature; the receiver answers all of them with 400,
// and none of them holds the secret or the signatures.
var (
	ErrNoSigningSecret     = providers.ErrNoSigningSecret
	ErrMalformedSignature  = errors.New("malformed Stripe-Signature header")
	ErrNoSignature         = errors.New("Stripe-Signature header has no v1 signature")
	ErrSignatureMismatch   = errors.New("no v1 signature of the Stripe-Signature header matches the payload (is signing_secret the endpoint's?)")
	ErrTimestampNotCurrent = errors.New("the Stripe-Signature timestamp is outside the tolerance (a replayed or delayed delivery, or a wrong clock)")
)

// VerifySignature checks a webhook delivery's Stripe-Signature header
// ("t=TIMESTAMP,v1=HEX[,v1=HEX...]") against the payload: one of the v1
// signatures must be the HMAC-SHA256, keyed with secret, of
// "TIMESTAMP.PAYLOAD" (compared in constant time), and the timestamp must
// be within tolerance of now, either way (DefaultTolerance when tolerance
// is not positive). The payload must be the raw request body, unparsed.
//
// Other schemes (v0) are ignored. The signature is checked before the
// timestamp, so that ErrTimestampNotCurrent means an authentic but stale
// delivery.
func VerifySignature(payload []byte, sigHeader string, secret string, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return ErrNoSigningSecret
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts, sigs, err := parseSignatureHeader(sigHeader)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(payload)
	want := mac.Sum(nil)
	ok := false
	for _, s := range sigs {
		// Every signature is compared, so that the time taken does not
		// tell which one matched.
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return ErrSignatureMismatch
	}
	secs, _ := strconv.ParseInt(ts, 10, 64) // checked by the parser
	signed := time.Unix(secs, 0)
	if d := now.Sub(signed); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, now %s, tolerance %s", ErrTimestampNotCurrent,
			signed.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), tolerance)
	}
	return nil
}

// parseSignatureHeader returns the header's timestamp (as written: it is
// part of the signed text) and its v1 signatures that are well-formed.
func parseSignatureHeader(h string) (ts string, sigs [][]byte, err error) {
	if len(h) > maxSignatureHeader {
		return "", nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformedSignature, maxSignatureHeader)
	}
	if strings.TrimSpace(h) == "" {
		return "", nil, fmt.Errorf("%w: empty", ErrMalformedSignature)
	}
	seenV1 := false
	for part := range strings.SplitSeq(h, ",") {
		k, v, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			return "", nil, fmt.Errorf("%w: an element is not key=value", ErrMalformedSignature)
		}
		switch k {
		case "t":
			if ts != "" {
				return "", nil, fmt.Errorf("%w: more than one timestamp", ErrMalformedSignature)
			}
			if _, err := strconv.ParseUint(v, 10, 63); err != nil || v == "" || v[0] == '+' {
				return "", nil, fmt.Errorf("%w: the timestamp is not unix seconds", ErrMalformedSignature)
			}
			ts = v
		case "v1":
			seenV1 = true
			if len(sigs) >= maxSignatures {
				return "", nil, fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxSignatures)
			}
			if s, err := hex.DecodeString(v); err == nil && len(s) == sha256.Size {
				sigs = append(sigs, s)
			}
		}
	}
	if ts == "" {
		return "", nil, fmt.Errorf("%w: no timestamp (t=)", ErrMalformedSignature)
	}
	if len(sigs) == 0 {
		if seenV1 {
			return "", nil, fmt.Errorf("%w: no v1 signature is 64 hexadecimal digits", ErrMalformedSignature)
		}
		return "", nil, ErrNoSignature
	}
	return ts, sigs, nil
}

// Event is a Stripe webhook event, as far as sluice needs it.
type Event struct {
	// ID is the event's id ("evt_..."): the same event may be delivered
	// more than once, so receivers de-duplicate by it.
	ID string
	// Type is the event type ("charge.refunded").
	Type    string
	Created time.Time
	// APIVersion is the API version Data is rendered in (the endpoint's);
	// "" when the event does not say.
	APIVersion string
	Livemode   bool
	// Account is the connected account the event is about (Connect
	// endpoints); "" for the account's own events.
	Account string
	// Object is data.object.object ("charge"); TableForObject maps it to
	// a table. ObjectID is data.object.id, "" for objects without one.
	Object, ObjectID string
	// Data is data.object: the object after the change, as JSON.
	Data json.RawMessage
}

// Table is the table the event's object belongs to, if sluice syncs it.
func (e *Event) Table() (string, bool) { return TableForObject(e.Object) }

// ParseEvent decodes a webhook payload strictly: it must be one JSON object,
// at most MaxEventBytes long and MaxEventDepth deep, with a string id and
// type, an integer created, and a data.object that is an object with a
// string "object" field. It never panics, whatever the input.
func ParseEvent(payload []byte) (*Event, error) {
	if len(payload) > MaxEventBytes {
		return nil, fmt.Errorf("webhook event is larger than %d bytes", MaxEventBytes)
	}
	if err := checkDepth(payload, MaxEventDepth); err != nil {
		return nil, err
	}
	var w struct {
		ID         *string         `json:"id"`
		Object     *string         `json:"object"`
		Type       *string         `json:"type"`
		Created    json.RawMessage `json:"created"`
		APIVersion *string         `json:"api_version"`
		Livemode   bool            `json:"livemode"`
		Account    string          `json:"account"`
		Data       *struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("webhook event is not a JSON object")
	}
	dec = json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("webhook event is not a valid event object: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("webhook event has data after its JSON object")
	}
	switch {
	case w.ID == nil || *w.ID == "" || len(*w.ID) > 255:
		return nil, errors.New("webhook event has no id")
	case w.Object != nil && *w.Object != "event":
		return nil, fmt.Errorf("webhook payload is a %q, not an event", truncate(*w.Object))
	case w.Type == nil || *w.Type == "" || len(*w.Type) > 255:
		return nil, errors.New("webhook event has no type")
	case w.Data == nil || len(w.Data.Object) == 0 || w.Data.Object[0] != '{':
		return nil, errors.New("webhook event has no data.object")
	}
	created, ok := jsonInt(w.Created)
	if !ok {
		return nil, errors.New("webhook event has no created time")
	}
	var head struct {
		Object *string `json:"object"`
		ID     *string `json:"id"`
	}
	if err := json.Unmarshal(w.Data.Object, &head); err != nil || head.Object == nil || *head.Object == "" {
		return nil, errors.New("webhook event's data.object has no object type")
	}
	ev := &Event{
		ID:      *w.ID,
		Type:    *w.Type,
		Created: time.Unix(created, 0).UTC(),
		Account: w.Account,
		Object:  *head.Object,
		Data:    w.Data.Object,
	}
	ev.Livemode = w.Livemode
	if w.APIVersion != nil {
		ev.APIVersion = *w.APIVersion
	}
	if head.ID != nil {
		ev.ObjectID = *head.ID
	}
	return ev, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// checkDepth rejects JSON nested deeper than limit, before it is decoded.
func checkDepth(b []byte, limit int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > limit {
				return fmt.Errorf("webhook event is nested deeper than %d levels", limit)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// EventBatch turns the objects of webhook events into rows of the table
// req names, in the schema Schema(req) gives and with the values the bulk
// reads give, so that a row is the same by either path. Every event must be
// about the table's object type (route them with Event.Table first).
//
// Several events about one object collapse into one row: the object of the
// newest event (by Created; of equal ones, the later in events), since
// Stripe does not deliver events in order. Across batches, ordering is the
// caller's: an older event that arrives after a newer one was committed
// would overwrite it.
func (p *Provider) EventBatch(req providers.ReadRequest, events []*Event) (*records.Batch, error) {
	o, err := p.table(req)
	if err != nil {
		return nil, err
	}
	s, fields, err := schemaFor(o, req.Columns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.addr, err)
	}
	type row struct {
		obj     map[string]json.RawMessage
		created time.Time
	}
	latest := make(map[string]int, len(events))
	rows := make([]row, 0, len(events))
	for _, ev := range events {
		if ev == nil {
			continue
		}
		if ev.Object != o.object {
			return nil, fmt.Errorf("%s: event %s (%s) is about a %q, not a row of %s", p.addr, ev.ID, ev.Type, truncate(ev.Object), o.table)
		}
		obj, id, _, err := decodeObject(ev.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: event %s (%s): %w", p.addr, ev.ID, ev.Type, err)
		}
		if i, ok := latest[id]; ok {
			if !ev.Created.Before(rows[i].created) {
				rows[i] = row{obj, ev.Created}
			}
			continue
		}
		latest[id] = len(rows)
		rows = append(rows, row{obj, ev.Created})
	}
	b := records.NewBatch(s, len(rows))
	var scratch bytes.Buffer
	for _, r := range rows {
		appendRow(b, fields, r.obj, &scratch)
	}
	return b, nil
}
