package stripe

import (
	"context"
	"fmt"
	"github.com/sluice-dev/sluice/internal/stripetest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// rowMaps decodes a batch into one map per row, column name to value: nil
// for NULL, time.Time for timestamps, string for STRING and JSON.
func rowMaps(b *records.Batch) []map[string]any {
	out := make([]map[string]any, b.N)
	for i := range b.N {
		row := map[string]any{}
		for c, col := range b.Schema.Columns {
			v := &b.Cols[c]
			switch {
			case v.IsNull(i):
				row[col.Name] = nil
			case col.Type.Physical == records.PhysicalBoolean:
				row[col.Name] = v.Bool[i]
			case col.Type.Logical == records.LogicalTimestamp:
				row[col.Name] = time.UnixMicro(v.I64[i]).UTC()
			case col.Type.Physical == records.PhysicalInt64:
				row[col.Name] = v.I64[i]
			case col.Type.Physical == records.PhysicalDouble:
				row[col.Name] = v.F64[i]
			default:
				row[col.Name] = string(v.Bytes(i))
			}
		}
		out[i] = row
	}
	return out
}

// readResult is what a read emitted.
type readResult struct {
	rows    []map[string]any
	batches []int // rows per batch
	nulled  int
	schema  *records.Schema
	pos     records.Position
}

type readFunc func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error)

func collect(t *testing.T, read readFunc, req providers.ReadRequest) readResult {
	t.Helper()
	var res readResult
	pos, err := read(context.Background(), req, func(b *records.Batch) error {
		if res.schema != nil && res.schema != b.Schema {
			t.Errorf("batches of one read have different schemas")
		}
		res.schema = b.Schema
		res.rows = append(res.rows, rowMaps(b)...)
		res.batches = append(res.batches, b.N)
		for i := range b.Cols {
			res.nulled += b.Cols[i].Nulled
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", req.Table, err)
	}
	res.pos = pos
	return res
}

func columnNames(s *records.Schema) []string {
	out := make([]string, len(s.Columns))
	for i, c := range s.Columns {
		out[i] = c.Name
	}
	return out
}

func TestSchema(t *testing.T) {
	p := newProvider(t, "http://127.0.0.1:1", testKey) // Schema makes no call
	tests := []struct {
		name    string
		req     providers.ReadRequest
		want    []string
		wantErr string
	}{
		{name: "selected columns keep the key and cursor, in table order",
			req:  providers.ReadRequest{Table: "charges", Columns: []string{"status", "amount"}},
			want: []string{"id", "created", "amount", "status"}},
		{name: "every column", req: providers.ReadRequest{Table: "balance_transactions"},
			want: []string{"id", "created", "amount", "available_on", "balance_type", "currency", "description", "exchange_rate",
				"fee", "fee_details", "net", "reporting_category", "source", "status", "type"}},
		{name: "key and cursor given", req: providers.ReadRequest{Table: "refunds", Columns: []string{"id"}, PrimaryKey: []string{"id"}, Cursor: "created"},
			want: []string{"id", "created"}},
		{name: "unknown table", req: providers.ReadRequest{Table: "charge"}, wantErr: `"charge" is not a Stripe object sluice can sync`},
		{name: "schema", req: providers.ReadRequest{Schema: "public", Table: "charges"}, wantErr: "Stripe objects have no schema"},
		{name: "unknown column", req: providers.ReadRequest{Table: "charges", Columns: []string{"amount", "Amount"}}, wantErr: `charges has no column "Amount"`},
		{name: "cursor", req: providers.ReadRequest{Table: "charges", Cursor: "updated"}, wantErr: `incremental_field = "created"`},
		{name: "key", req: providers.ReadRequest{Table: "charges", PrimaryKey: []string{"customer"}}, wantErr: `primary key of charges is ["id"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := p.Schema(context.Background(), tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, columnNames(s)); diff != "" {
				t.Errorf("columns (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"id"}, s.PrimaryKey); diff != "" {
				t.Errorf("key (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadEveryObjectFromStripeMock reads every supported object from
// stripe-mock, which validates the list requests (limit, filters) against
// Stripe's OpenAPI specification and answers with its fixtures.
func TestReadEveryObjectFromStripeMock(t *testing.T) {
	p := newProvider(t, stripeMockURL(t), testKey)
	for _, table := range Tables() {
		t.Run(table, func(t *testing.T) {
			req := providers.ReadRequest{Table: table, PrimaryKey: []string{"id"}, BatchRows: 10}
			s, err := p.Schema(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			res := collect(t, p.ReadSnapshot, req)
			if len(res.rows) == 0 {
				t.Fatal("no rows")
			}
			if diff := cmp.Diff(columnNames(s), columnNames(res.schema)); diff != "" {
				t.Errorf("batch schema differs from Schema (-Schema +batch):\n%s", diff)
			}
			if res.nulled != 0 {
				t.Errorf("%d values did not fit their column: the column list disagrees with the API", res.nulled)
			}
			row := res.rows[0]
			id, _ := row["id"].(string)
			if id == "" {
				t.Fatalf("row has no id: %v", row)
			}
			created := row["created"].(time.Time)
			wantPos := records.Position{Cursor: fmt.Sprint(created.Unix()), BoundaryKeys: []string{id}}
			if diff := cmp.Diff(wantPos, res.pos); diff != "" {
				t.Errorf("position (-want +got):\n%s", diff)
			}
			// Incremental reads send created[gte], which stripe-mock
			// validates; it ignores the filter, which the reader tolerates.
			req.From = res.pos
			inc := collect(t, p.ReadIncremental, req)
			if len(inc.rows) != 0 {
				t.Errorf("incremental read from the position read %d rows again", len(inc.rows))
			}
			if diff := cmp.Diff(res.pos, inc.pos); diff != "" {
				t.Errorf("position after reading nothing new (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChargeColumnsFromStripeMock(t *testing.T) {
	p := newProvider(t, stripeMockURL(t), testKey)
	req := providers.ReadRequest{Table: "charges", Columns: []string{"amount", "captured", "currency", "customer", "metadata",
		"fraud_details", "balance_transaction", "outcome", "transfer_group", "refunded"}}
	res := collect(t, p.ReadSnapshot, req)
	if len(res.rows) != 1 {
		t.Fatalf("%d rows, want stripe-mock's one charge", len(res.rows))
	}
	got := res.rows[0]
	want := map[string]any{
		"id":                  got["id"], // fixture ids change between stripe-mock versions
		"created":             time.Unix(1234567890, 0).UTC(),
		"amount":              int64(100),
		"captured":            false,
		"refunded":            false,
		"currency":            "usd",
		"customer":            nil,
		"metadata":            "{}",
		"fraud_details":       "{}",
		"balance_transaction": got["balance_transaction"],
		"outcome": `{"advice_code":null,"network_advice_code":null,"network_decline_code":null,"network_status":null,` +
			`"reason":null,"seller_message":null,"type":"type"}`,
		"transfer_group": nil,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("charge row (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got["id"].(string), "ch_") || !strings.HasPrefix(got["balance_transaction"].(string), "txn_") {
		t.Errorf("id %v / balance_transaction %v are not charge and transaction ids", got["id"], got["balance_transaction"])
	}
}

func charge(i int, created int64) map[string]any {
	return map[string]any{
		"id": fmt.Sprintf("ch_%04d", i), "object": "charge", "created": created, "amount": int64(i),
		"metadata": map[string]any{"n": i}, "captured": i%2 == 0,
	}
}

// TestReadPagesAndCursor reads a few hundred charges, three per second,
// through pages of 100 and batches of 40, then reads incrementally: charges
// created later in the committed second are read, the ones read before are
// not.
func TestReadPagesAndCursor(t *testing.T) {
	f := stripetest.NewServer(t, testKey, "")
	const base = int64(1_700_000_000)
	for i := range 250 {
		f.Add("/v1/charges", charge(i, base+int64(i/3)))
	}
	p := newProvider(t, f.URL, testKey)
	req := providers.ReadRequest{Table: "charges", Cursor: "created", BatchRows: 40}

	full := collect(t, p.ReadIncremental, req)
	if len(full.rows) != 250 {
		t.Fatalf("read %d rows, want 250", len(full.rows))
	}
	for i, n := range full.batches {
		if n > 40 || (n < 40 && i != len(full.batches)-1) {
			t.Errorf("batch sizes %v: all but the last must be 40", full.batches)
			break
		}
	}
	seen := map[string]bool{}
	for _, r := range full.rows {
		seen[r["id"].(string)] = true
	}
	if len(seen) != 250 {
		t.Errorf("%d distinct ids, want 250", len(seen))
	}
	last := base + 249/3 // charges 249 alone in its second
	want := records.Position{Cursor: fmt.Sprint(last), BoundaryKeys: []string{"ch_0249"}}
	if diff := cmp.Diff(want, full.pos); diff != "" {
		t.Fatalf("position (-want +got):\n%s", diff)
	}

	// Nothing new: nothing read, same position.
	req.From = full.pos
	again := collect(t, p.ReadIncremental, req)
	if len(again.rows) != 0 || !cmp.Equal(full.pos, again.pos) {
		t.Fatalf("rereading read %d rows, position %+v", len(again.rows), again.pos)
	}

	// Two charges in the committed second, one later.
	f.Add("/v1/charges", charge(250, last), charge(251, last), charge(252, last+5))
	inc := collect(t, p.ReadIncremental, req)
	var ids []string
	for _, r := range inc.rows {
		ids = append(ids, r["id"].(string))
	}
	if diff := cmp.Diff([]string{"ch_0252", "ch_0251", "ch_0250"}, ids); diff != "" {
		t.Errorf("incremental ids (-want +got):\n%s", diff)
	}
	want = records.Position{Cursor: fmt.Sprint(last + 5), BoundaryKeys: []string{"ch_0252"}}
	if diff := cmp.Diff(want, inc.pos); diff != "" {
		t.Errorf("position (-want +got):\n%s", diff)
	}

	// Another charge in a committed second whose boundary has several ids.
	req.From = records.Position{Cursor: fmt.Sprint(last), BoundaryKeys: []string{"ch_0249", "ch_0250"}}
	f.Add("/v1/charges", charge(253, last))
	inc = collect(t, p.ReadIncremental, req)
	ids = ids[:0]
	for _, r := range inc.rows {
		ids = append(ids, r["id"].(string))
	}
	if diff := cmp.Diff([]string{"ch_0252", "ch_0253", "ch_0251"}, ids); diff != "" {
		t.Errorf("incremental ids (-want +got):\n%s", diff)
	}
}

// TestBoundaryKeysAccumulate reads only objects of the committed second:
// the new position keeps the ids read before in that second.
func TestBoundaryKeysAccumulate(t *testing.T) {
	f := stripetest.NewServer(t, testKey, "")
	f.Add("/v1/charges", charge(1, 100), charge(2, 100))
	p := newProvider(t, f.URL, testKey)
	req := providers.ReadRequest{Table: "charges", Cursor: "created", From: records.Position{Cursor: "100", BoundaryKeys: []string{"ch_0001"}}}
	res := collect(t, p.ReadIncremental, req)
	if len(res.rows) != 1 || res.rows[0]["id"] != "ch_0002" {
		t.Fatalf("rows %v, want ch_0002 only", res.rows)
	}
	want := records.Position{Cursor: "100", BoundaryKeys: []string{"ch_0001", "ch_0002"}}
	if diff := cmp.Diff(want, res.pos); diff != "" {
		t.Errorf("position (-want +got):\n%s", diff)
	}
}

func TestReadErrors(t *testing.T) {
	f := stripetest.NewServer(t, testKey, "")
	f.Add("/v1/charges", charge(1, 100))
	p := newProvider(t, f.URL, testKey)
	ctx := context.Background()
	discard := func(*records.Batch) error { return nil }

	_, err := p.ReadIncremental(ctx, providers.ReadRequest{Table: "charges", From: records.Position{Cursor: "2024-01-01"}}, discard)
	if err == nil || !strings.Contains(err.Error(), "sluice resync") {
		t.Errorf("bad cursor: err = %v", err)
	}
	_, err = p.ReadXmin(ctx, providers.ReadRequest{Table: "charges"}, discard)
	if err == nil || !strings.Contains(err.Error(), "not for stripe") {
		t.Errorf("xmin: err = %v", err)
	}
	// emit's error stops the read and is returned as is.
	stop := fmt.Errorf("warehouse full")
	_, err = p.ReadSnapshot(ctx, providers.ReadRequest{Table: "charges"}, func(*records.Batch) error { return stop })
	if err != stop {
		t.Errorf("emit error: err = %v, want %v", err, stop)
	}
	// An object without an id cannot be keyed.
	f.Add("/v1/refunds", map[string]any{"object": "refund", "created": int64(5)})
	_, err = p.ReadSnapshot(ctx, providers.ReadRequest{Table: "refunds"}, discard)
	if err == nil || !strings.Contains(err.Error(), "object has no id") {
		t.Errorf("object without id: err = %v", err)
	}
	// A cancelled context stops the read.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = p.ReadSnapshot(cctx, providers.ReadRequest{Table: "charges"}, discard)
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled: err = %v", err)
	}
}
