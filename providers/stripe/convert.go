package stripe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/sluice-dev/sluice/internal/records"
)

// The key and the cursor of every object table.
const (
	keyField    = "id"
	cursorField = "created"
)

// schemaFor returns the schema of the table's selected columns (nil: all;
// the key and the cursor are always kept), in the table's column order.
func schemaFor(o *object, columns []string) (*records.Schema, []field, error) {
	fields := o.fields
	if columns != nil {
		want := make(map[string]bool, len(columns)+2)
		for _, c := range columns {
			if o.field(c) == nil {
				return nil, nil, fmt.Errorf("%s has no column %q: `sluice inspect` lists its columns", o.table, c)
			}
			want[c] = true
		}
		want[keyField], want[cursorField] = true, true
		fields = make([]field, 0, len(want))
		for _, f := range o.fields {
			if want[f.name] {
				fields = append(fields, f)
			}
		}
	}
	s := &records.Schema{Columns: make([]records.Column, len(fields)), PrimaryKey: []string{keyField}}
	for i, f := range fields {
		s.Columns[i] = records.Column{
			Name:       f.name,
			Type:       f.kind.parquet(),
			SourceType: f.kind.String(),
			Nullable:   f.name != keyField && f.name != cursorField,
		}
	}
	return s, fields, nil
}

// field returns the named field, or nil.
func (o *object) field(name string) *field {
	for i := range o.fields {
		if o.fields[i].name == name {
			return &o.fields[i]
		}
	}
	return nil
}

// decodeObject splits an API object into its top-level fields and reads its
// id and created, which every row needs (key and cursor).
func decodeObject(raw []byte) (obj map[string]json.RawMessage, id string, created int64, err error) {
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, "", 0, fmt.Errorf("object is not a JSON object: %w", err)
	}
	if obj == nil {
		return nil, "", 0, fmt.Errorf("object is null")
	}
	if err := json.Unmarshal(obj[keyField], &id); err != nil || id == "" {
		return nil, "", 0, fmt.Errorf("object has no id")
	}
	created, ok := jsonInt(obj[cursorField])
	if !ok {
		return nil, "", 0, fmt.Errorf("object %s has no created time", id)
	}
	return obj, id, created, nil
}

// appendRow appends the object's fields as one row. It cannot fail: a value
// of another JSON type than the column's (the API changed) or out of the
// column type's range becomes NULL and is counted in Vec.Nulled, never
// silently changed.
func appendRow(b *records.Batch, fields []field, obj map[string]json.RawMessage, scratch *bytes.Buffer) {
	for i, f := range fields {
		v := &b.Cols[i]
		raw := obj[f.name]
		if isNull(raw) {
			v.AppendNull()
			continue
		}
		if !appendValue(v, f.kind, raw, scratch) {
			v.AppendNull()
			v.Nulled++
		}
	}
	b.N++
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// appendValue appends the non-null JSON value raw to v as kind k, and
// reports false when the value does not fit (nothing is appended then).
func appendValue(v *records.Vec, k kind, raw json.RawMessage, scratch *bytes.Buffer) bool {
	switch k {
	case kString:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		v.AppendString(s)
	case kRef:
		id, ok := refID(raw)
		if !ok {
			return false
		}
		v.AppendString(id)
	case kInt:
		n, ok := jsonInt(raw)
		if !ok {
			return false
		}
		v.AppendInt64(n)
	case kFloat:
		var f float64
		if raw[0] == '"' || json.Unmarshal(raw, &f) != nil {
			return false
		}
		v.AppendFloat64(f)
	case kBool:
		var x bool
		if json.Unmarshal(raw, &x) != nil {
			return false
		}
		v.AppendBool(x)
	case kTime:
		secs, ok := jsonInt(raw)
		if !ok || secs > math.MaxInt64/1_000_000 || secs < math.MinInt64/1_000_000 {
			return false
		}
		v.AppendInt64(secs * 1_000_000)
	case kObject, kArray:
		canon, err := canonicalJSON(scratch, raw)
		if err != nil {
			return false
		}
		v.AppendBytes(canon)
	default:
		return false
	}
	return true
}

// refID reads an expandable field: the id string, or the id of the object
// when it was expanded.
func refID(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var o struct {
		ID *string `json:"id"`
	}
	if raw[0] != '{' || json.Unmarshal(raw, &o) != nil || o.ID == nil {
		return "", false
	}
	return *o.ID, true
}

// jsonInt reads a JSON number that is an integer within int64.
func jsonInt(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, true
	}
	// 1e3 and 1000.0 are integers too, when exactly representable.
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// canonicalJSON rewrites a JSON value compactly with object keys sorted and
// numbers as written, so that the same object has the same text whether it
// came from a list page or a webhook event (which Stripe indents and
// orders independently). The result is valid until scratch is next used.
func canonicalJSON(scratch *bytes.Buffer, raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	scratch.Reset()
	enc := json.NewEncoder(scratch)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(scratch.Bytes(), []byte("\n")), nil
}

// batcher collects rows into batches of at most size rows and hands each
// full batch to emit, reusing it afterwards.
type batcher struct {
	fields  []field
	batch   *records.Batch
	size    int
	emit    func(*records.Batch) error
	scratch bytes.Buffer
}

// defaultBatchRows applies when a ReadRequest does not set BatchRows.
const defaultBatchRows = 1000

func newBatcher(s *records.Schema, fields []field, size int, emit func(*records.Batch) error) *batcher {
	if size <= 0 {
		size = defaultBatchRows
	}
	return &batcher{fields: fields, batch: records.NewBatch(s, size), size: size, emit: emit}
}

// add appends one object's row, emitting the batch when it is full.
func (w *batcher) add(obj map[string]json.RawMessage) error {
	appendRow(w.batch, w.fields, obj, &w.scratch)
	if w.batch.N >= w.size {
		return w.flush()
	}
	return nil
}

// flush emits the rows collected so far, if any.
func (w *batcher) flush() error {
	if w.batch.N == 0 {
		return nil
	}
	err := w.emit(w.batch)
	w.batch.Reset()
	return err
}
