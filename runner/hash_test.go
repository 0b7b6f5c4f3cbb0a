package runner

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
)

// hmacHex is the expected hash, computed independently of the hasher.
func hmacHex(salt, text string) string {
	m := hmac.New(sha256.New, []byte(salt))
	m.Write([]byte(text))
	return hex.EncodeToString(m.Sum(nil))
}

// stringColumn reads a STRING column as values, nil for NULL.
func stringColumn(b *records.Batch, name string) []any {
	i := b.Schema.Index(name)
	var out []any
	for r := range b.N {
		if b.Cols[i].IsNull(r) {
			out = append(out, nil)
		} else {
			out = append(out, string(b.Cols[i].Bytes(r)))
		}
	}
	return out
}

// TestHasherBatch: hash columns become STRING columns of
// hex(HMAC-SHA256(salt, PostgreSQL text form)); NULL stays NULL; other
// columns are shared as they are; unchanged TOAST values stay unchanged.
func TestHasherBatch(t *testing.T) {
	const salt = "pepper"
	s := &records.Schema{PrimaryKey: []string{"id"}, Columns: []records.Column{
		{Name: "id", Type: records.ParquetType{Physical: records.PhysicalInt64, Name: "INT64"}, SourceType: "bigint"},
		{Name: "email", Type: hashedString, SourceType: "text", Nullable: true},
		{Name: "at", Type: records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}, SourceType: "timestamp with time zone", Nullable: true},
		{Name: "note", Type: hashedString, SourceType: "text", Nullable: true},
	}}
	b := records.NewBatch(s, 3)
	b.Cols[0].AppendInt64(1)
	b.Cols[0].AppendInt64(-2)
	b.Cols[0].AppendInt64(3)
	b.Cols[1].AppendString("alice@example.com")
	b.Cols[1].AppendNull()
	b.Cols[1].AppendString("")
	b.Cols[2].AppendInt64(1_700_000_000_000_000)
	b.Cols[2].AppendInt64(1_700_000_000_123_400)
	b.Cols[2].AppendNull()
	b.Cols[3].AppendString("kept")
	b.Cols[3].AppendNull()
	b.Cols[3].AppendString("as is")
	b.N = 3

	h := newHasher([]string{"id", "email", "at", "missing"}, salt, "postgres")
	out, err := h.batch(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"id", "email", "at"} {
		c := out.Schema.Columns[out.Schema.Index(name)]
		if c.Type != hashedString || c.SourceType != "text" {
			t.Errorf("%s: type %s (%s), want STRING (text)", name, c.Type.Name, c.SourceType)
		}
	}
	want := map[string][]any{
		"id":    {hmacHex(salt, "1"), hmacHex(salt, "-2"), hmacHex(salt, "3")},
		"email": {hmacHex(salt, "alice@example.com"), nil, hmacHex(salt, "")},
		"at":    {hmacHex(salt, "2023-11-14 22:13:20+00"), hmacHex(salt, "2023-11-14 22:13:20.1234+00"), nil},
		"note":  {"kept", nil, "as is"},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, stringColumn(out, name)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if !cmp.Equal(s, b.Schema) || b.Cols[0].I64[1] != -2 {
		t.Error("the source batch changed")
	}
	// The same source schema hashes to the same schema, and a hashed
	// schema is not hashed again.
	again, _ := h.batch(b)
	if again.Schema != out.Schema {
		t.Error("a second batch of the schema got another schema")
	}
	if s2, _ := h.schema(out.Schema); s2 != out.Schema {
		t.Error("a hashed schema was hashed again")
	}

	// Unchanged (TOAST) values stay unchanged, for the merge to keep the
	// stored hash.
	u := records.NewBatch(s, 2)
	u.Cols[0].AppendInt64(7)
	u.Cols[0].AppendInt64(8)
	u.Cols[1].AppendNull()
	u.Cols[1].AppendString("x")
	u.Cols[1].Unchanged = []bool{true, false}
	for _, k := range []int{2, 3} {
		u.Cols[k].AppendNull()
		u.Cols[k].AppendNull()
	}
	u.N = 2
	hu, err := h.batch(u)
	if err != nil {
		t.Fatal(err)
	}
	email := hu.Cols[1]
	if diff := cmp.Diff([]bool{true, false}, email.Unchanged); diff != "" {
		t.Errorf("Unchanged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{nil, hmacHex(salt, "x")}, stringColumn(hu, "email")); diff != "" {
		t.Errorf("email (-want +got):\n%s", diff)
	}
}

// knownVector is HMAC-SHA256 keyed "salt" of the text "42", in hex.
const knownVector = "98c2d78e000f17f1958ac5ae7ca5293f16a4dcdf996afc0253bcd8accac9c6a2"

// TestHasherKnownVector pins the rule to a value computed elsewhere:
// printf '%s' 42 | openssl dgst -sha256 -hmac salt.
func TestHasherKnownVector(t *testing.T) {
	s := &records.Schema{Columns: []records.Column{{Name: "n", Type: records.ParquetType{Physical: records.PhysicalInt32, Name: "INT32"}, SourceType: "integer"}}}
	b := records.NewBatch(s, 1)
	b.Cols[0].AppendInt32(42)
	b.N = 1
	out, err := newHasher([]string{"n"}, "salt", "postgres").batch(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out.Cols[0].Bytes(0)); got != hmacHex("salt", "42") || got != knownVector {
		t.Errorf("got %s, want %s", got, knownVector)
	}
}

// TestHasherNeedsSalt: a table with hash columns and no salt fails, and
// the error holds no value.
func TestHasherNeedsSalt(t *testing.T) {
	h := newHasher([]string{"email"}, "", "postgres")
	s := &records.Schema{Columns: []records.Column{{Name: "email", Type: hashedString, SourceType: "text"}}}
	if _, err := h.schema(s); !errors.Is(err, errNoSalt) {
		t.Errorf("err = %v", err)
	}
	if newHasher(nil, "x", "postgres") != nil {
		t.Error("a table without hash columns has a hasher")
	}
	var nilHasher *hasher
	b := records.NewBatch(s, 0)
	if got, err := nilHasher.batch(b); got != b || err != nil {
		t.Error("a nil hasher changed the batch")
	}
}

// BenchmarkHasher hashes a batch of 10,000 e-mail addresses.
func BenchmarkHasher(b *testing.B) {
	s := &records.Schema{Columns: []records.Column{{Name: "email", Type: hashedString, SourceType: "text"}}}
	batch := records.NewBatch(s, 10_000)
	for i := range 10_000 {
		batch.Cols[0].AppendString("user" + string(rune('a'+i%26)) + "@example.com")
	}
	batch.N = 10_000
	h := newHasher([]string{"email"}, "salt", "postgres")
	b.ResetTimer()
	for range b.N {
		if _, err := h.batch(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*10_000/b.Elapsed().Seconds(), "values/s")
}
