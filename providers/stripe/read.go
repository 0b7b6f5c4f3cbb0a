package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	stripe "github.com/stripe/stripe-go/v85"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// pageSize is the largest page the list endpoints serve.
const pageSize = 100

// table finds the object type a request reads and checks what the request
// asks of it.
func (p *Provider) table(req providers.ReadRequest) (*object, error) {
	if req.Schema != "" {
		return nil, fmt.Errorf("%s: Stripe objects have no schema: write the table as %q, not %q", p.addr, req.Table, req.Schema+"."+req.Table)
	}
	o, ok := objects[req.Table]
	if !ok {
		return nil, fmt.Errorf("%s: %q is not a Stripe object sluice can sync; the supported objects are %v", p.addr, req.Table, Tables())
	}
	if len(req.PrimaryKey) > 0 && (len(req.PrimaryKey) != 1 || req.PrimaryKey[0] != keyField) {
		return nil, fmt.Errorf("%s: the primary key of %s is [\"id\"]: remove primary_key or set it to [\"id\"]", p.addr, o.table)
	}
	if req.Cursor != "" && req.Cursor != cursorField {
		return nil, fmt.Errorf("%s: %s can only be read incrementally by created: set incremental_field = \"created\"", p.addr, o.table)
	}
	return o, nil
}

// Schema returns the columns a read of the table produces: the selected
// columns of the object's fixed list. It does not contact the API.
func (p *Provider) Schema(ctx context.Context, req providers.ReadRequest) (*records.Schema, error) {
	o, err := p.table(req)
	if err != nil {
		return nil, err
	}
	s, _, err := schemaFor(o, req.Columns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.addr, err)
	}
	return s, nil
}

// ReadSnapshot lists every object of the table (full_refresh, and the bulk
// load of webhook tables). The position returned is the newest created
// second seen, with the ids created in it, so that an incremental read can
// continue from it.
func (p *Provider) ReadSnapshot(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (records.Position, error) {
	req.From = records.Position{}
	return p.read(ctx, req, emit)
}

// ReadIncremental lists the objects created at or after the committed
// cursor (unix seconds), skipping the ones read before at exactly that
// second (From.BoundaryKeys, the ids), so that objects created later in the
// same second are not lost and none is read twice. The zero position reads
// every object.
func (p *Provider) ReadIncremental(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (records.Position, error) {
	return p.read(ctx, req, emit)
}

// ReadXmin is not for Stripe: xmin is a PostgreSQL transaction id.
func (p *Provider) ReadXmin(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (records.Position, error) {
	return req.From, fmt.Errorf("%s: xmin syncs are not for stripe sources: use incremental (by created), full_refresh or webhook", p.addr)
}

func (p *Provider) read(ctx context.Context, req providers.ReadRequest, emit func(*records.Batch) error) (records.Position, error) {
	o, err := p.table(req)
	if err != nil {
		return req.From, err
	}
	s, fields, err := schemaFor(o, req.Columns)
	if err != nil {
		return req.From, fmt.Errorf("%s: %w", p.addr, err)
	}
	var from *int64
	if req.From.Cursor != "" {
		c, err := strconv.ParseInt(req.From.Cursor, 10, 64)
		if err != nil {
			return req.From, fmt.Errorf("%s: %s: the committed cursor %q is not a unix time: resync the table (`sluice resync`)", p.addr, o.table, req.From.Cursor)
		}
		from = &c
	}
	skip := make(map[string]bool, len(req.From.BoundaryKeys))
	for _, k := range req.From.BoundaryKeys {
		skip[k] = true
	}
	w := newBatcher(s, fields, req.BatchRows, emit)
	var cur cursorTracker
	err = p.list(ctx, o, from, func(obj map[string]json.RawMessage, id string, created int64) error {
		if from != nil && created < *from {
			return nil // not asked for; a stand-in API may ignore created[gte]
		}
		cur.see(id, created)
		if from != nil && created == *from && skip[id] {
			return nil
		}
		return w.add(obj)
	})
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return req.From, err
	}
	return cur.position(req.From), nil
}

// listParams are the parameters of a list request. stripe-go's parameter
// encoding expects the Expand and Metadata fields every generated
// parameter struct has.
type listParams struct {
	stripe.ListParams `form:"*"`
	Expand            []*string         `form:"expand"`
	Metadata          map[string]string `form:"metadata"`
}

// rawPage is one page of a list endpoint, its objects kept as JSON: the
// columns come from what the API returns, not from stripe-go's structs.
type rawPage struct {
	Data    []json.RawMessage `json:"data"`
	HasMore bool              `json:"has_more"`
}

// SetLastResponse implements stripe.LastResponseSetter.
func (*rawPage) SetLastResponse(*stripe.APIResponse) {}

// list pages through the object's list endpoint (newest first), created at
// or after *gte when gte is set, and calls fn with each object.
func (p *Provider) list(ctx context.Context, o *object, gte *int64, fn func(obj map[string]json.RawMessage, id string, created int64) error) error {
	op := "list " + o.table
	var after string
	for {
		params := &listParams{ListParams: stripe.ListParams{Context: ctx, Limit: stripe.Int64(pageSize)}}
		for _, kv := range o.listFilters {
			params.Filters.AddFilter(kv[0], "", kv[1])
		}
		if gte != nil {
			params.Filters.AddFilter(cursorField, "gte", strconv.FormatInt(*gte, 10))
		}
		if after != "" {
			params.StartingAfter = stripe.String(after)
		}
		var page rawPage
		if err := p.backend.Call(http.MethodGet, o.path, p.key, params, &page); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %s: %w", p.addr, op, ctx.Err())
			}
			return p.wrapErr(op, err)
		}
		var last string
		for _, raw := range page.Data {
			obj, id, created, err := decodeObject(raw)
			if err != nil {
				return fmt.Errorf("%s: %s: the API returned an unusable object: %w", p.addr, op, err)
			}
			if err := fn(obj, id, created); err != nil {
				return err
			}
			last = id
		}
		if !page.HasMore || last == "" {
			return nil
		}
		if last == after {
			return fmt.Errorf("%s: %s: %w", p.addr, op, errNoProgress)
		}
		after = last
	}
}

// errNoProgress stops a list whose pages do not advance (a misbehaving
// api_base), instead of looping forever.
var errNoProgress = errors.New("the API returned the same page again: pagination does not advance (check api_base)")

// cursorTracker follows the newest created second seen in a read and the
// ids created in it.
type cursorTracker struct {
	seen  bool
	max   int64
	atMax map[string]bool
}

func (c *cursorTracker) see(id string, created int64) {
	switch {
	case !c.seen || created > c.max:
		c.seen, c.max = true, created
		c.atMax = map[string]bool{id: true}
	case created == c.max:
		c.atMax[id] = true
	}
}

// position is where the next incremental read starts: at the newest second
// seen, skipping the ids read in it. With nothing new, it is from.
func (c *cursorTracker) position(from records.Position) records.Position {
	if !c.seen {
		return from
	}
	cursor := strconv.FormatInt(c.max, 10)
	ids := c.atMax
	if cursor == from.Cursor {
		// Keep the ids committed before: a boundary object the list no
		// longer returned (deleted) is harmless to keep.
		for _, k := range from.BoundaryKeys {
			ids[k] = true
		}
	}
	keys := make([]string, 0, len(ids))
	for k := range ids {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return records.Position{Cursor: cursor, BoundaryKeys: keys}
}
