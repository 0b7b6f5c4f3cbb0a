package parquet

import (
	"bytes"
	"slices"
)

// keySet maps encoded keys to the sequence number of their last occurrence
// among one bucket's incoming rows. It is an open-addressing table over one
// byte arena: about 40 bytes per key plus the key itself, where a Go
// map[string]int64 takes about twice that.
type keySet struct {
	slots []int32 // 1 + index into ents; 0 is empty
	ents  []keyEnt
	arena []byte
}

type keyEnt struct {
	h      uint64
	off, n int
	seq    int64
}

func (s *keySet) len() int { return len(s.ents) }

func (s *keySet) key(e *keyEnt) []byte { return s.arena[e.off : e.off+e.n] }

// find returns the slot of key: holding it, or the empty slot where it
// would go.
func (s *keySet) find(key []byte, h uint64) int {
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		j := s.slots[i]
		if j == 0 {
			return int(i)
		}
		if e := &s.ents[j-1]; e.h == h && bytes.Equal(s.key(e), key) {
			return int(i)
		}
	}
}

// put records that key (hash h) occurs at seq; a later put of the same key
// wins.
func (s *keySet) put(key []byte, h uint64, seq int64) {
	if 2*(len(s.ents)+1) > len(s.slots) {
		s.grow()
	}
	i := s.find(key, h)
	if j := s.slots[i]; j != 0 {
		s.ents[j-1].seq = seq
		return
	}
	s.ents = append(s.ents, keyEnt{h: h, off: len(s.arena), n: len(key), seq: seq})
	s.arena = append(s.arena, key...)
	s.slots[i] = int32(len(s.ents))
}

// get returns the sequence number of key's last occurrence.
func (s *keySet) get(key []byte, h uint64) (int64, bool) {
	if len(s.slots) == 0 {
		return 0, false
	}
	j := s.slots[s.find(key, h)]
	if j == 0 {
		return 0, false
	}
	return s.ents[j-1].seq, true
}

func (s *keySet) grow() {
	n := max(1024, 2*len(s.slots))
	s.slots = make([]int32, n)
	mask := uint64(n - 1)
	for k := range s.ents {
		i := s.ents[k].h & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = int32(k + 1)
	}
}

// sorted returns the keys in byte order, for checking which files' key
// ranges hold any of them.
func (s *keySet) sorted() [][]byte {
	out := make([][]byte, len(s.ents))
	for i := range s.ents {
		out[i] = s.key(&s.ents[i])
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

// anyWithin reports whether a sorted key list holds a key in [lo, hi].
func anyWithin(sorted [][]byte, lo, hi []byte) bool {
	if lo == nil || hi == nil {
		return len(sorted) > 0 // no recorded range: assume it may
	}
	i, _ := slices.BinarySearchFunc(sorted, lo, bytes.Compare)
	return i < len(sorted) && bytes.Compare(sorted[i], hi) <= 0
}
