package providers

// StreamPosition is a place in a source's change stream (for PostgreSQL,
// an LSN). Only the source's provider knows what one means: it decodes
// the text its source reports (Transaction.CommitLSN, CurrentLSN, a
// slot's LSNs) and that warehouses store (records.Position.LSN) into a
// StreamPosition and encodes it back (PositionCodec). The runner only
// compares positions, keeps them and hands them back; it never parses
// one.
//
// The positions of one stream are totally ordered and each has a 64-bit
// ordinal that orders like it (what the _sluice_lsn column holds). The
// zero StreamPosition is before every other: "none yet".
type StreamPosition struct {
	ord uint64
}

// NewStreamPosition is the position of ordinal ord; only providers call
// it, from their PositionCodec.
func NewStreamPosition(ord uint64) StreamPosition {
	return StreamPosition{ord: ord}
}

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p StreamPosition) Compare(q StreamPosition) int {
	switch {
	case p.ord < q.ord:
		return -1
	case p.ord > q.ord:
		return 1
	}
	return 0
}

// Before reports whether p is before q.
func (p StreamPosition) Before(q StreamPosition) bool { return p.ord < q.ord }

// IsZero reports whether p is the zero position (none).
func (p StreamPosition) IsZero() bool { return p.ord == 0 }

// Next is the first position after p: streaming up to it confirms p to
// the source without waiting for a later transaction.
func (p StreamPosition) Next() StreamPosition { return StreamPosition{ord: p.ord + 1} }

// Ordinal is the position's ordinal, the value of the _sluice_lsn column
// (SPEC: int64; PostgreSQL's LSNs are written as their 64 bits).
func (p StreamPosition) Ordinal() int64 { return int64(p.ord) }

// Uint64 returns the ordinal behind p unsigned, for the provider that
// defined it (PositionCodec.EncodePosition).
func (p StreamPosition) Uint64() uint64 { return p.ord }

// Later returns the later of p and q.
func Later(p, q StreamPosition) StreamPosition {
	if p.ord < q.ord {
		return q
	}
	return p
}

// PositionCodec turns a ChangeStream source's positions from the text
// it reports, and that warehouses and state store, into StreamPositions
// and back. EncodePosition(DecodePosition(s)) must give back s for any
// text the provider ever encoded, so that positions committed by earlier
// versions read, compare and are written again unchanged.
type PositionCodec interface {
	// DecodePosition reads a position; "" is the zero position. An error
	// says the text is not a position of this source type.
	DecodePosition(s string) (StreamPosition, error)
	// EncodePosition writes a position as the source reports it (the
	// zero position too: it is a valid start).
	EncodePosition(p StreamPosition) string
}
