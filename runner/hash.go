package runner

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"slices"
	"sync"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

// hasher replaces a table's hash columns (the list recorded at apply,
// state.Table.Hash) by hex(HMAC-SHA256(hash_salt, text form)) of their
// values, NULL staying NULL: the one transform every batch of the table
// goes through before the warehouse (snapshots, cursor reads, the cdc
// snapshot, streamed changes and so the keys changes are looked up by).
// A hash column is a STRING column (SourceType text) in the warehouse
// whatever its source type. Equal values hash equally in every table of
// the source, so joins on hashed columns still work.
type hasher struct {
	cols map[string]bool
	salt []byte
	// textForm gives the source's text form of a column's values.
	textForm func(records.Column) (providers.TextEncoder, error)
	err      error

	mu sync.Mutex
	// seen maps the source schemas met (a stream's rows and old keys
	// have their own) to their hashed schema and encoders, so that a
	// schema's hashed form is one pointer, as the source's is.
	seen map[*records.Schema]hashedSchema
}

// hashedSchema is a source schema's hashed form, with the encoders of
// its hash columns (nil for the others; encs nil: nothing to hash).
type hashedSchema struct {
	to   *records.Schema
	encs []providers.TextEncoder
}

// errNoSalt is the error of a table with hash columns whose source has no
// hash_salt. It never holds the salt.
var errNoSalt = errors.New("the table has hash columns but its source has no hash_salt")

// newHasher returns the hasher of a table with hash columns cols, nil
// when there are none. salt is the source's hash_salt.
func newHasher(cols []string, salt, sourceType string) *hasher {
	if len(cols) == 0 {
		return nil
	}
	h := &hasher{cols: map[string]bool{}, salt: []byte(salt),
		textForm: func(c records.Column) (providers.TextEncoder, error) { return providers.TextForm(sourceType, c) }}
	for _, c := range cols {
		h.cols[c] = true
	}
	if salt == "" {
		h.err = errNoSalt
	}
	return h
}

// jobHasher is newHasher for a job's table.
func jobHasher(j job) *hasher {
	salt := ""
	if j.src.Postgres != nil {
		salt = j.src.Postgres.HashSalt
	}
	return newHasher(j.table.Hash, salt, j.src.Type)
}

// hashedString is the warehouse type of a hash column.
var hashedString = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalString, Name: "STRING"}

// schema returns s with its hash columns as STRING (s itself for a nil
// hasher or a schema without them).
func (h *hasher) schema(s *records.Schema) (*records.Schema, error) {
	if h == nil || s == nil {
		return s, nil
	}
	to, _, err := h.prepare(s)
	return to, err
}

func (h *hasher) prepare(s *records.Schema) (*records.Schema, []providers.TextEncoder, error) {
	if h.err != nil {
		return nil, nil, h.err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if hs, ok := h.seen[s]; ok {
		return hs.to, hs.encs, nil
	}
	to := &records.Schema{Columns: slices.Clone(s.Columns), PrimaryKey: s.PrimaryKey}
	encs := make([]providers.TextEncoder, len(s.Columns))
	hashed := false
	for i, c := range s.Columns {
		if !h.cols[c.Name] {
			continue
		}
		enc, err := h.textForm(c)
		if err != nil {
			return nil, nil, err
		}
		encs[i], hashed = enc, true
		to.Columns[i] = records.Column{Name: c.Name, Type: hashedString, SourceType: "text", Nullable: c.Nullable}
	}
	if !hashed {
		to, encs = s, nil
	}
	if h.seen == nil || len(h.seen) >= 16 {
		// Schemas change rarely; a stream that met many starts afresh.
		h.seen = map[*records.Schema]hashedSchema{}
	}
	h.seen[s] = hashedSchema{to, encs}
	h.seen[to] = hashedSchema{to, nil} // hashed already
	return to, encs, nil
}

// batch returns b with its hash columns hashed: a new batch sharing b's
// other columns (b itself for a nil hasher).
func (h *hasher) batch(b *records.Batch) (*records.Batch, error) {
	if h == nil || b == nil {
		return b, nil
	}
	to, encs, err := h.prepare(b.Schema)
	if err != nil {
		return nil, err
	}
	if encs == nil {
		return b, nil
	}
	out := &records.Batch{Schema: to, N: b.N, Cols: slices.Clone(b.Cols)}
	mac := hmac.New(sha256.New, h.salt)
	var text []byte
	for i, enc := range encs {
		if enc != nil {
			out.Cols[i], text = hashVec(&b.Cols[i], b.N, enc, mac, text)
		}
	}
	return out, nil
}

// hashVec is the STRING vector of the hashes of src's n values; buf is
// scratch space, returned for the next call.
func hashVec(src *records.Vec, n int, enc providers.TextEncoder, mac hash.Hash, buf []byte) (records.Vec, []byte) {
	v := records.Vec{Offsets: make([]int32, 1, n+1), Data: make([]byte, 0, n*2*sha256.Size)}
	var sum [sha256.Size]byte
	var digits [2 * sha256.Size]byte
	for i := range n {
		if src.Unchanged != nil && i < len(src.Unchanged) && src.Unchanged[i] {
			// Not carried by the change: the stored hash is kept.
			v.AppendNull()
			v.Unchanged = append(v.Unchanged, true)
			continue
		}
		if src.Unchanged != nil {
			v.Unchanged = append(v.Unchanged, false)
		}
		if i >= src.Len() {
			v.AppendNull()
			continue
		}
		if src.IsNull(i) {
			if _, exact := src.ExactAt(i); !exact {
				v.AppendNull()
				continue
			}
		}
		buf = enc(buf[:0], src, i)
		mac.Reset()
		mac.Write(buf)
		hex.Encode(digits[:], mac.Sum(sum[:0]))
		v.AppendBytes(digits[:])
	}
	return v, buf
}
