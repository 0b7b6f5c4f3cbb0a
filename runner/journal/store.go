package journal

import (
	"context"
	"time"
)

// Store is the journal of one webhook source as webhook intake uses it:
// the file journal of a runner (Journal), or the journal a fleet of
// runners shares in the state database (PG).
//
// Append is durable when it returns without an error: the delivery may be
// acknowledged. Sequence numbers grow in the order records become
// readable, so that a reader that has applied everything up to done and
// asks for the records past it never misses one committed later; they
// may have gaps.
type Store interface {
	// Append journals the event id of table, whose body is JSON; dup
	// reports an id already journaled (within SeenRetention after its
	// record was compacted away), which is not journaled again.
	Append(ctx context.Context, id, table string, body []byte, now time.Time) (dup bool, err error)
	// Committed tells the journal that table committed the records up to
	// seq; later records get higher numbers.
	Committed(table string, seq uint64)
	// HasPending reports whether the journal holds records of table past
	// what it committed (or not known to be committed).
	HasPending(ctx context.Context, table string) (bool, error)
	// Pending returns the records of table past done, in order, up to the
	// bounds of one commit (10,000 events, 64 MiB).
	Pending(ctx context.Context, table string, done uint64) ([]Record, error)
	// Compact drops the records every table committed, and those of tables
	// not in live, keeping their ids for SeenRetention.
	Compact(ctx context.Context, live map[string]bool, now time.Time) error
	// Close releases what the journal holds of its own.
	Close()
}

var _ Store = (*Journal)(nil)
