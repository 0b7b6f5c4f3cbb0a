package records

import (
	"bytes"
	"math"
	"testing"
)

func TestAppendKeyOrderAndInjectivity(t *testing.T) {
	i64 := ParquetType{Physical: PhysicalInt64}
	text := ParquetType{Physical: PhysicalByteArray, Logical: LogicalString}
	dbl := ParquetType{Physical: PhysicalDouble}
	dec := ParquetType{Physical: PhysicalFixedLenByteArray, Logical: LogicalDecimal, Precision: 38, Length: 2}

	type row struct {
		n    *int64
		s    string
		f    float64
		d    []byte
		null bool // s is NULL
	}
	p := func(n int64) *int64 { return &n }
	cases := []struct {
		name string
		// rows in ascending key order, each strictly greater than the last
		rows []row
	}{
		{"integers across zero", []row{{n: p(math.MinInt64)}, {n: p(-2)}, {n: p(-1)}, {n: p(0)}, {n: p(1)}, {n: p(math.MaxInt64)}}},
		{"null first", []row{{n: nil}, {n: p(math.MinInt64)}}},
		{"text by bytes, prefixes first, NUL bytes kept", []row{{n: p(1), null: true}, {n: p(1), s: ""}, {n: p(1), s: "\x00"}, {n: p(1), s: "\x00\x00"}, {n: p(1), s: "\x00a"}, {n: p(1), s: "a"}, {n: p(1), s: "a\x00"}, {n: p(1), s: "ab"}, {n: p(1), s: "b"}}},
		{"doubles", []row{{n: p(1), f: math.Inf(-1)}, {n: p(1), f: -2.5}, {n: p(1), f: 0}, {n: p(1), f: 1e-300}, {n: p(1), f: 3}, {n: p(1), f: math.Inf(1)}}},
		{"fixed-width decimals by value", []row{{n: p(1), d: []byte{0x80, 0x00}}, {n: p(1), d: []byte{0xff, 0xff}}, {n: p(1), d: []byte{0x00, 0x00}}, {n: p(1), d: []byte{0x00, 0x01}}, {n: p(1), d: []byte{0x7f, 0xff}}}},
	}
	s := &Schema{Columns: []Column{{Name: "n", Type: i64}, {Name: "s", Type: text}, {Name: "f", Type: dbl}, {Name: "d", Type: dec}}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := NewBatch(s, len(c.rows))
			for _, r := range c.rows {
				if r.n == nil {
					b.Cols[0].AppendNull()
				} else {
					b.Cols[0].AppendInt64(*r.n)
				}
				if r.null {
					b.Cols[1].AppendNull()
				} else {
					b.Cols[1].AppendString(r.s)
				}
				b.Cols[2].AppendFloat64(r.f)
				if r.d == nil {
					r.d = []byte{0, 0}
				}
				b.Cols[3].AppendBytes(r.d)
				b.N++
			}
			var prev []byte
			for i := range b.N {
				k := b.AppendKey(nil, i, []int{0, 1, 2, 3})
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					t.Errorf("row %d: key %x is not greater than the previous %x", i, k, prev)
				}
				prev = k
			}
		})
	}
}

// Composite keys never collide by shifting bytes between columns.
func TestAppendKeyCompositeBoundaries(t *testing.T) {
	text := ParquetType{Physical: PhysicalByteArray, Logical: LogicalString}
	s := &Schema{Columns: []Column{{Name: "a", Type: text}, {Name: "b", Type: text}}}
	pairs := [][2]string{{"a", "bc"}, {"ab", "c"}, {"abc", ""}, {"", "abc"}, {"a\x00", "b"}, {"a", "\x00b"}}
	b := NewBatch(s, len(pairs))
	for _, p := range pairs {
		b.Cols[0].AppendString(p[0])
		b.Cols[1].AppendString(p[1])
		b.N++
	}
	seen := map[string]int{}
	for i := range b.N {
		k := string(b.AppendKey(nil, i, []int{0, 1}))
		if j, ok := seen[k]; ok {
			t.Errorf("rows %v and %v have the same key %x", pairs[j], pairs[i], k)
		}
		seen[k] = i
	}
	if KeyHash([]byte("x")) == KeyHash([]byte("y")) {
		t.Error("KeyHash does not depend on the key")
	}
	// The hash is persistent: the bucket of a row must not change between
	// releases.
	if got, want := KeyHash([]byte("sluice")), uint64(0xbc994db9d32abd3c); got != want {
		t.Errorf("KeyHash changed: %x, want %x", got, want)
	}
}

// TestAppendKeyExact checks that values the Parquet type cannot hold,
// written as NULL with their exact text forms, are keys of their own:
// neither NULL nor each other.
func TestAppendKeyExact(t *testing.T) {
	ts := ParquetType{Physical: PhysicalInt64, Logical: LogicalTimestamp}
	s := &Schema{Columns: []Column{{Name: "t", Type: ts}}}
	b := NewBatch(s, 4)
	b.Cols[0].AppendNull()
	b.Cols[0].AppendNull()
	b.Cols[0].SetExact([]byte("-infinity"), 1)
	b.Cols[0].AppendNull()
	b.Cols[0].SetExact([]byte("infinity"), 1)
	b.Cols[0].AppendInt64(0)
	b.Cols[0].Nulled = 2
	b.N = 4
	seen := map[string]int{}
	for i := range b.N {
		k := string(b.AppendKey(nil, i, []int{0}))
		if j, dup := seen[k]; dup {
			t.Errorf("rows %d and %d have the same key %q", j, i, k)
		}
		seen[k] = i
	}
	if text, ok := b.Cols[0].ExactAt(2); !ok || string(text) != "infinity" {
		t.Errorf("ExactAt(2) = %q, %v", text, ok)
	}
	if _, ok := b.Cols[0].ExactAt(3); ok {
		t.Error("ExactAt(3) found a text")
	}
	if got := b.Cols[0].LostNulled(); got != 0 {
		t.Errorf("LostNulled = %d, want 0", got)
	}
	b.Reset()
	if b.Cols[0].HasExact() {
		t.Error("Reset kept the exact texts")
	}
}
