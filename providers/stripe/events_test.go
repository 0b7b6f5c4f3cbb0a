package stripe

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/sluice-dev/sluice/providers"
)

const testSecret = "whsec_SluiceTestSigningSecretDoNotLeak"

func sign(secret string, ts int64, payload []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", ts)
	mac.Write(payload)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestVerifySignature(t *testing.T) {
	payload := []byte(`{"id":"evt_1","object":"event"}`)
	now := time.Unix(1_700_000_000, 0)
	ts := now.Unix()
	good := sign(testSecret, ts, payload)
	header := func(ts int64, sigs ...string) string {
		h := fmt.Sprintf("t=%d", ts)
		for _, s := range sigs {
			h += ",v1=" + s
		}
		return h
	}
	tests := []struct {
		name      string
		payload   []byte
		header    string
		secret    string
		tolerance time.Duration
		want      error // nil: valid
	}{
		{name: "valid", header: header(ts, good)},
		{name: "spaces around elements", header: fmt.Sprintf(" t=%d , v1=%s ", ts, good)},
		{name: "one of several signatures matches", header: header(ts, sign("whsec_old", ts, payload), good, strings.Repeat("0", 64))},
		{name: "v0 and unknown schemes are ignored", header: header(ts, good) + ",v0=abc,x=y"},
		{name: "at the edge of the tolerance, past", header: header(ts-300, sign(testSecret, ts-300, payload))},
		{name: "at the edge of the tolerance, future", header: header(ts+300, sign(testSecret, ts+300, payload))},
		{name: "tampered payload", payload: []byte(`{"id":"evt_2","object":"event"}`), header: header(ts, good), want: ErrSignatureMismatch},
		{name: "payload with a byte appended", payload: append(bytes.Clone(payload), ' '), header: header(ts, good), want: ErrSignatureMismatch},
		{name: "wrong secret", header: header(ts, good), secret: "whsec_other", want: ErrSignatureMismatch},
		{name: "timestamp changed", header: header(ts+1, good), want: ErrSignatureMismatch},
		{name: "expired", header: header(ts-301, sign(testSecret, ts-301, payload)), want: ErrTimestampNotCurrent},
		{name: "from the future", header: header(ts+301, sign(testSecret, ts+301, payload)), want: ErrTimestampNotCurrent},
		{name: "own tolerance", header: header(ts-11, sign(testSecret, ts-11, payload)), tolerance: 10 * time.Second, want: ErrTimestampNotCurrent},
		{name: "only v0", header: fmt.Sprintf("t=%d,v0=%s", ts, good), want: ErrNoSignature},
		{name: "no secret", header: header(ts, good), secret: "-", want: ErrNoSigningSecret},
		{name: "empty header", header: "", want: ErrMalformedSignature},
		{name: "garbage", header: "garbage", want: ErrMalformedSignature},
		{name: "no timestamp", header: "v1=" + good, want: ErrMalformedSignature},
		{name: "two timestamps", header: header(ts, good) + ",t=5", want: ErrMalformedSignature},
		{name: "timestamp not a number", header: "t=now,v1=" + good, want: ErrMalformedSignature},
		{name: "negative timestamp", header: "t=-5,v1=" + good, want: ErrMalformedSignature},
		{name: "signed timestamp", header: "t=+5,v1=" + good, want: ErrMalformedSignature},
		{name: "signature not hex", header: header(ts, "zz"+good[2:]), want: ErrMalformedSignature},
		{name: "signature too short", header: header(ts, good[:62]), want: ErrMalformedSignature},
		{name: "empty element", header: header(ts, good) + ",,", want: ErrMalformedSignature},
		{name: "too many signatures", header: header(ts, strings.Split(strings.Repeat(good+",", 17), ",")[:17]...), want: ErrMalformedSignature},
		{name: "too long", header: header(ts, good) + ",x=" + strings.Repeat("a", 5000), want: ErrMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.payload
			if p == nil {
				p = payload
			}
			secret := tt.secret
			switch secret {
			case "":
				secret = testSecret
			case "-":
				secret = ""
			}
			err := VerifySignature(p, tt.header, secret, now, tt.tolerance)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), good)) {
				t.Errorf("error leaks the secret or signature: %v", err)
			}
		})
	}
}

// TestVerifyStripeGoSignature verifies headers as stripe-go's test helper
// builds them (the format Stripe sends).
func TestVerifyStripeGoSignature(t *testing.T) {
	now := time.Now()
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: []byte(`{"id":"evt_x","object":"event","type":"charge.updated"}`), Secret: testSecret, Timestamp: now,
	})
	if err := VerifySignature(sp.Payload, sp.Header, testSecret, now, 0); err != nil {
		t.Errorf("stripe-go's signed payload: %v (header %q)", err, sp.Header)
	}
	if err := webhook.ValidatePayload(sp.Payload, sp.Header, testSecret); err != nil {
		t.Fatalf("stripe-go rejects its own payload: %v", err)
	}
}

// stripeMockEvent fetches an event from stripe-mock, as Stripe renders one.
func stripeMockEvent(t *testing.T) []byte {
	req, err := http.NewRequest(http.MethodGet, stripeMockURL(t)+"/v1/events?limit=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Data []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Data) == 0 {
		t.Fatalf("stripe-mock events: %v", err)
	}
	return page.Data[0]
}

func TestParseEvent(t *testing.T) {
	ev, err := ParseEvent(stripeMockEvent(t))
	if err != nil {
		t.Fatalf("stripe-mock's event: %v", err)
	}
	if !strings.HasPrefix(ev.ID, "evt_") || ev.Type == "" || ev.Object == "" || ev.Created.IsZero() || len(ev.Data) == 0 {
		t.Errorf("stripe-mock's event parsed as %+v", ev)
	}

	obj := `{"id":"ch_1","object":"charge","created":1700000000,"amount":5}`
	event := func(fields string) string {
		return `{"id":"evt_1","object":"event","type":"charge.updated","created":1700000001,"api_version":"2026-03-25.dahlia",` +
			`"livemode":true,"account":"acct_9",` + fields + `}`
	}
	nest := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	want := &Event{ID: "evt_1", Type: "charge.updated", Created: time.Unix(1700000001, 0).UTC(), APIVersion: "2026-03-25.dahlia",
		Livemode: true, Account: "acct_9", Object: "charge", ObjectID: "ch_1", Data: json.RawMessage(obj)}
	tests := []struct {
		name    string
		payload string
		want    *Event
		wantErr string
	}{
		{name: "event", payload: event(`"data":{"object":` + obj + `,"previous_attributes":{"amount":4}}`), want: want},
		{name: "object without id", payload: `{"id":"evt_2","type":"balance.available","created":5,"data":{"object":{"object":"balance"}}}`,
			want: &Event{ID: "evt_2", Type: "balance.available", Created: time.Unix(5, 0).UTC(), Object: "balance", Data: json.RawMessage(`{"object":"balance"}`)}},
		{name: "nested within bounds", payload: event(`"data":{"object":{"object":"x","n":` + nest(MaxEventDepth-3) + `}}`)},
		{name: "empty", payload: "", wantErr: "not a JSON object"},
		{name: "array", payload: `[]`, wantErr: "not a JSON object"},
		{name: "string", payload: `"evt"`, wantErr: "not a JSON object"},
		{name: "null", payload: `null`, wantErr: "not a JSON object"},
		{name: "truncated", payload: event(`"data":{"object":` + obj + `}`)[:50], wantErr: "not a valid event"},
		{name: "trailing data", payload: event(`"data":{"object":`+obj+`}`) + ` {}`, wantErr: "data after"},
		{name: "no id", payload: `{"type":"x","created":1,"data":{"object":{"object":"charge"}}}`, wantErr: "no id"},
		{name: "empty id", payload: `{"id":"","type":"x","created":1,"data":{"object":{"object":"charge"}}}`, wantErr: "no id"},
		{name: "numeric id", payload: `{"id":5,"type":"x","created":1,"data":{"object":{"object":"charge"}}}`, wantErr: "not a valid event"},
		{name: "no type", payload: `{"id":"evt","created":1,"data":{"object":{"object":"charge"}}}`, wantErr: "no type"},
		{name: "not an event", payload: `{"id":"ch_1","object":"charge","type":"x","created":1,"data":{"object":{"object":"charge"}}}`, wantErr: "not an event"},
		{name: "no created", payload: `{"id":"evt","type":"x","data":{"object":{"object":"charge"}}}`, wantErr: "no created"},
		{name: "created as a string", payload: `{"id":"evt","type":"x","created":"1","data":{"object":{"object":"charge"}}}`, wantErr: "no created"},
		{name: "no data", payload: `{"id":"evt","type":"x","created":1}`, wantErr: "no data.object"},
		{name: "data.object not an object", payload: `{"id":"evt","type":"x","created":1,"data":{"object":"ch_1"}}`, wantErr: "no data.object"},
		{name: "data.object null", payload: `{"id":"evt","type":"x","created":1,"data":{"object":null}}`, wantErr: "no data.object"},
		{name: "data.object without type", payload: `{"id":"evt","type":"x","created":1,"data":{"object":{"id":"ch_1"}}}`, wantErr: "no object type"},
		{name: "too deep", payload: event(`"data":{"object":{"object":"x","n":` + nest(MaxEventDepth) + `}}`), wantErr: "nested deeper"},
		{name: "too large", payload: event(`"data":{"object":{"object":"x","n":"` + strings.Repeat("a", MaxEventBytes) + `"}}`), wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvent([]byte(tt.payload))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("event (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// reordered writes a JSON value indented, with object keys in reverse
// order: the same object as Stripe might render it in a webhook payload.
func reordered(t *testing.T, raw []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	var write func(v any, indent string)
	write = func(v any, indent string) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Sort(sort.Reverse(sort.StringSlice(keys)))
			b.WriteString("{\n")
			for i, k := range keys {
				kb, _ := json.Marshal(k)
				fmt.Fprintf(&b, "%s    %s:   ", indent, kb)
				write(x[k], indent+"    ")
				if i < len(keys)-1 {
					b.WriteString(",")
				}
				b.WriteString("\n")
			}
			b.WriteString(indent + "}")
		case []any:
			b.WriteString("[ ")
			for i, e := range x {
				if i > 0 {
					b.WriteString(" , ")
				}
				write(e, indent)
			}
			b.WriteString(" ]")
		default:
			vb, _ := json.Marshal(x)
			b.Write(vb)
		}
	}
	write(v, "")
	return b.Bytes()
}

// TestEventBatchMatchesBulkRead turns every stripe-mock object into a
// webhook event, rendered differently (indentation, key order), and checks
// that the event's row equals the row the bulk read gave.
func TestEventBatchMatchesBulkRead(t *testing.T) {
	p := newProvider(t, stripeMockURL(t), testKey)
	for _, table := range Tables() {
		if !SupportsWebhook(table) {
			continue
		}
		t.Run(table, func(t *testing.T) {
			req := providers.ReadRequest{Table: table}
			bulk := collect(t, p.ReadSnapshot, req)
			var raws []json.RawMessage
			err := p.list(context.Background(), objects[table], nil, func(obj map[string]json.RawMessage, id string, created int64) error {
				b, err := json.Marshal(obj)
				raws = append(raws, b)
				return err
			})
			if err != nil || len(raws) != len(bulk.rows) {
				t.Fatalf("list: %d objects, %v", len(raws), err)
			}
			var events []*Event
			for i, raw := range raws {
				payload := fmt.Sprintf(`{"id":"evt_%d","object":"event","type":"%s","created":1700000000,"data":{"object":%s}}`,
					i, objects[table].events[0], reordered(t, raw))
				ev, err := ParseEvent([]byte(payload))
				if err != nil {
					t.Fatal(err)
				}
				if got, ok := ev.Table(); !ok || got != table {
					t.Fatalf("event about %q routes to %q", ev.Object, got)
				}
				events = append(events, ev)
			}
			b, err := p.EventBatch(req, events)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := p.Schema(context.Background(), req)
			if !cmp.Equal(s, b.Schema) {
				t.Errorf("event batch schema differs from Schema")
			}
			if diff := cmp.Diff(bulk.rows, rowMaps(b)); diff != "" {
				t.Errorf("rows by webhook differ from rows by list (-list +webhook):\n%s", diff)
			}
		})
	}
}

func TestEventBatch(t *testing.T) {
	p := newProvider(t, "http://127.0.0.1:1", testKey)
	ev := func(id string, created int64, obj string) *Event {
		e, err := ParseEvent([]byte(fmt.Sprintf(`{"id":%q,"type":"customer.updated","created":%d,"data":{"object":%s}}`, id, created, obj)))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	cus := func(id, name string) string {
		return fmt.Sprintf(`{"id":%q,"object":"customer","created":1600000000,"name":%q,"metadata":{"b":1,"a":"<&>"}}`, id, name)
	}
	req := providers.ReadRequest{Table: "customers", Columns: []string{"name", "metadata"}}
	b, err := p.EventBatch(req, []*Event{
		ev("evt_3", 300, cus("cus_1", "newest")),
		ev("evt_1", 100, cus("cus_1", "oldest")),
		ev("evt_4", 100, cus("cus_2", "first")),
		ev("evt_5", 100, cus("cus_2", "second of the same second")),
		nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(1600000000, 0).UTC()
	want := []map[string]any{
		{"id": "cus_1", "created": created, "name": "newest", "metadata": `{"a":"<&>","b":1}`},
		{"id": "cus_2", "created": created, "name": "second of the same second", "metadata": `{"a":"<&>","b":1}`},
	}
	if diff := cmp.Diff(want, rowMaps(b)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}

	if _, err := p.EventBatch(providers.ReadRequest{Table: "charges"}, []*Event{ev("evt_9", 1, cus("cus_1", "x"))}); err == nil ||
		!strings.Contains(err.Error(), `event evt_9 (customer.updated) is about a "customer", not a row of charges`) {
		t.Errorf("event of another object: err = %v", err)
	}
	noCreated := ev("evt_8", 1, `{"id":"cus_3","object":"customer"}`)
	if _, err := p.EventBatch(req, []*Event{noCreated}); err == nil || !strings.Contains(err.Error(), "no created time") {
		t.Errorf("object without created: err = %v", err)
	}
	if _, err := p.EventBatch(providers.ReadRequest{Table: "customers", Columns: []string{"nope"}}, nil); err == nil {
		t.Error("unknown column accepted")
	}
	empty, err := p.EventBatch(req, nil)
	if err != nil || empty.N != 0 {
		t.Errorf("no events: %v, %v", empty, err)
	}
}
