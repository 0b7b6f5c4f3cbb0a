package state

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Claims are how the runners of a fleet (several `sluice run` processes on
// one postgres state backend) keep a unit of work to one runner at a time:
// a table's sync, a source's CDC stream, a source's webhook applier.
//
// A runner holds its claims in one session of the state database (session
// advisory locks), which the server ends when the runner's process dies or
// stops answering for longer than the claim timeout (idle_session_timeout
// on that session): the claims are then free for another runner, with no
// lease protocol of sluice's own. A runner checks a claim before each
// warehouse commit made under it, so that a runner that was stopped (or
// partitioned from the state database) past the timeout does not commit
// after another took its work over.

// ErrClaimLost is returned by Claim.Check once the claim is no longer held.
var ErrClaimLost = errors.New("this runner lost its claim")

// ClaimedError reports that another runner holds a claim.
type ClaimedError struct {
	Key    string
	Holder *RunnerInfo // nil when it could not be read
}

func (e *ClaimedError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("%s is claimed by another runner", e.Key)
	}
	return fmt.Sprintf("%s is claimed by runner %s", e.Key, e.Holder.ID)
}

// Claim is a held claim.
type Claim interface {
	// Key is what the claim is on ("table:<address>", "stream:<source>",
	// "webhook:<source>").
	Key() string
	// Check reports whether the claim is still held: nil, or an error
	// wrapping ErrClaimLost (or the reason the state database could not
	// be asked). It costs one round trip to the state database.
	Check(ctx context.Context) error
	// Release gives the claim back.
	Release(ctx context.Context)
}

// Claimer takes claims for one runner.
type Claimer interface {
	// TryClaim takes the claim on key, or fails at once: a *ClaimedError
	// when another runner holds it.
	TryClaim(ctx context.Context, key string) (Claim, error)
	// Holder returns the runner holding the claim on key, nil when none
	// does.
	Holder(ctx context.Context, key string) (*RunnerInfo, error)
	// Lost is closed when the runner's claim session ended (the server
	// terminated it, or the connection was lost): every claim it held is
	// lost. A new session is opened by Renew.
	Lost() <-chan struct{}
	// Renew opens a new claim session after one was lost.
	Renew(ctx context.Context) error
	// Close ends the session, releasing every claim.
	Close() error
}

// RunnerStatus is a runner of a fleet, as it records itself in the state
// database: `sluice status` shows it with its last heartbeat.
type RunnerStatus struct {
	RunnerInfo
	// LastHeartbeat is when the runner last showed it was alive (every
	// few seconds while it runs).
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// Alive reports whether the runner's claim session is open now.
	Alive bool `json:"alive"`
	// Stopped is when it stopped cleanly; zero while it runs or after it
	// was killed.
	Stopped time.Time `json:"stopped,omitempty"`
}

// RunnerRegistry is implemented by backends that record the runners of a
// fleet (postgres).
type RunnerRegistry interface {
	// Runners returns the runners recorded recently, by ID.
	Runners(ctx context.Context) ([]RunnerStatus, error)
}

// WebhookCounter is implemented by backends that keep a fleet's webhook
// counters (postgres): each runner adds what it counted since its last
// addition, and ReadStatus reports the sums.
type WebhookCounter interface {
	AddWebhookCounts(ctx context.Context, addr string, received, rejected, applied int64, lastEventAt time.Time) error
}

// TableStatusReader is implemented by status stores that read one table's
// record without the others (postgres), which a fleet runner does before
// each sync it is handed.
type TableStatusReader interface {
	ReadTableStatus(ctx context.Context, addr string) (*TableStatus, error)
}

// VersionReader is implemented by backends that tell the latest state
// version's lineage and serial without reading it (postgres).
type VersionReader interface {
	LatestVersion(ctx context.Context) (lineage string, serial int64, err error)
}
