package stripe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
)

// FuzzParseEvent feeds arbitrary payloads to ParseEvent, and the events it
// accepts to EventBatch: neither may panic, and an accepted event has what
// the receiver relies on.
//
//	go test -fuzz=FuzzParseEvent -fuzztime=60s ./providers/stripe
func FuzzParseEvent(f *testing.F) {
	seeds := []string{
		`{"id":"evt_1","object":"event","type":"charge.updated","created":1700000000,"api_version":"2026-03-25.dahlia",` +
			`"data":{"object":{"id":"ch_1","object":"charge","created":1700000000,"amount":100,"captured":true,` +
			`"metadata":{"k":"v"},"customer":{"id":"cus_1"},"refunds":null,"outcome":{"type":"authorized"}}}}`,
		`{"id":"evt_2","type":"customer.subscription.deleted","created":1,"data":{"object":{"id":"sub_1","object":"subscription",` +
			`"created":-5,"canceled_at":99999999999999,"items":{"data":[]},"application_fee_percent":1.5e300}}}`,
		`{"id":"evt_3","type":"balance.available","created":1,"data":{"object":{"object":"balance"}}}`,
		`{"id":"evt_4","type":"invoice.paid","created":1e3,"data":{"object":{"id":"in_1","object":"invoice","created":"x","total":1.5}}}`,
		`{"id":"evt_5","type":"x","created":1,"data":{"object":{"object":"price","id":"p","created":1,"unit_amount":-9223372036854775808}}}`,
		`[]`, `{}`, `null`, `{"id":"evt","data":{"object":[]}}`, `{"a":` + strings.Repeat("[", 100),
		`{"id":"e","type":"t","created":1,"data":{"object":{"object":"charge","id":"\u0000\ud800"}}} `,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	p, err := New(&config.Source{Type: "stripe", Name: "fuzz", Stripe: &config.Stripe{APIKey: "sk_test_fuzz", APIBase: "http://127.0.0.1:1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := ParseEvent(payload)
		if err != nil {
			if ev != nil {
				t.Fatal("an event with an error")
			}
			return
		}
		if ev.ID == "" || ev.Type == "" || ev.Object == "" {
			t.Fatalf("accepted event without id, type or object: %+v", ev)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(ev.Data, &obj); err != nil || obj == nil {
			t.Fatalf("accepted event whose data.object is not an object: %v", err)
		}
		if !json.Valid(payload) {
			t.Fatal("accepted invalid JSON")
		}
		table, ok := ev.Table()
		if !ok {
			return
		}
		b, err := p.EventBatch(providers.ReadRequest{Table: table}, []*Event{ev})
		if err != nil {
			return
		}
		if b.N != 1 {
			t.Fatalf("one event gave %d rows", b.N)
		}
		for i := range b.Cols {
			if b.Cols[i].Len() != 1 {
				t.Fatalf("column %s has %d values", b.Schema.Columns[i].Name, b.Cols[i].Len())
			}
		}
	})
}

// FuzzVerifySignature checks that no header verifies unless it carries the
// right signature for its timestamp, and that header parsing never panics.
//
//	go test -fuzz=FuzzVerifySignature -fuzztime=60s ./providers/stripe
func FuzzVerifySignature(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	payload := []byte(`{"id":"evt_1"}`)
	good := sign(testSecret, now.Unix(), payload)
	for _, h := range []string{
		fmt.Sprintf("t=%d,v1=%s", now.Unix(), good),
		fmt.Sprintf("t=%d,v1=%s,v1=%s,v0=x", now.Unix(), strings.Repeat("ab", 32), good),
		"t=,v1=", "t=1", ",,,", "t=1700000000,v1=" + good[:63] + "g", "=,=", "t=99999999999999999999,v1=00",
	} {
		f.Add(payload, h)
	}
	f.Fuzz(func(t *testing.T, payload []byte, header string) {
		err := VerifySignature(payload, header, testSecret, now, 0)
		if err == nil {
			ts, _, perr := parseSignatureHeader(header)
			if perr != nil {
				t.Fatalf("verified a header that does not parse: %v", perr)
			}
			mac := hmac.New(sha256.New, []byte(testSecret))
			mac.Write([]byte(ts + "."))
			mac.Write(payload)
			if !strings.Contains(strings.ToLower(header), hex.EncodeToString(mac.Sum(nil))) {
				t.Fatalf("verified header %q without the payload's signature", header)
			}
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Fatal("error holds the secret")
		}
		// A header signed for this payload always verifies.
		h := fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(testSecret, now.Unix(), payload))
		if err := VerifySignature(payload, h, testSecret, now, 0); err != nil {
			t.Fatalf("a correctly signed payload fails: %v", err)
		}
	})
}
