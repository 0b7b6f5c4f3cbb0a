package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Table sync states (SPEC §6).
const (
	StatePending   = "pending"
	StateRunning   = "running"
	StateCompleted = "completed"
	StateFailed    = "failed"
	StateDisabled  = "disabled"
)

// TableStatus is the runner's record of one table: what `sluice status`
// shows. It is kept beside the state (not in it: the runner writes it
// constantly, while state is written only by apply), so that with the
// postgres backend status works from any machine.
type TableStatus struct {
	Address        string `json:"address"`
	WarehouseTable string `json:"warehouse_table"`
	Sync           string `json:"sync"`
	State          string `json:"state"`
	// RowsSynced is the number of rows in the warehouse table after the
	// last commit.
	RowsSynced int64 `json:"rows_synced"`
	// LastRunRows is how many rows the last successful sync read.
	LastRunRows   int64     `json:"last_run_rows"`
	LastSyncAt    time.Time `json:"last_sync_at"`
	LastAttemptAt time.Time `json:"last_attempt_at"`
	NextSyncAt    time.Time `json:"next_sync_at"`
	LastError     string    `json:"last_error"`
	// Warnings counts the values the last sync wrote as NULL because the
	// warehouse's column types cannot hold them (numeric NaN, infinite
	// timestamps in the Parquet warehouse).
	Warnings int64 `json:"warnings"`
	// LastFullSyncAt is when the last full (re)load committed; a resync
	// requested after it is still due.
	LastFullSyncAt time.Time `json:"last_full_sync_at"`
	// MetadataLocation and SnapshotID name the table's version after its
	// last commit in a warehouse whose versions readers can open without
	// sluice (Iceberg: the metadata file and the snapshot); empty
	// otherwise.
	MetadataLocation string `json:"metadata_location,omitempty"`
	SnapshotID       int64  `json:"snapshot_id,omitempty"`
	// Runner is the RunnerInfo.ID of the runner that last synced the
	// table (empty in records of runners without one).
	Runner string `json:"runner,omitempty"`
	// Owner is the runner of a running sync: while it no longer holds the
	// runner lock, the sync is not running but interrupted
	// (MarkInterrupted).
	Owner *RunnerInfo `json:"owner,omitempty"`
}

// SourceStatus is the runner's record of one source's health.
type SourceStatus struct {
	Address      string    `json:"address"`
	State        string    `json:"state"` // healthy, warning, failed
	SlotLagBytes int64     `json:"slot_lag_bytes"`
	Message      string    `json:"message,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Webhook counters, for push sources.
	WebhookURL     string    `json:"webhook_url,omitempty"`
	LastEventAt    time.Time `json:"last_event_at,omitempty"`
	EventsReceived int64     `json:"events_received,omitempty"`
	EventsRejected int64     `json:"events_rejected,omitempty"`
	EventsApplied  int64     `json:"events_applied,omitempty"`
}

// Status is every status record.
type Status struct {
	Tables  map[string]*TableStatus  `json:"tables"`
	Sources map[string]*SourceStatus `json:"sources"`
}

// TableAddrs returns the table addresses, sorted.
func (s *Status) TableAddrs() []string { return sortedKeys(s.Tables) }

// SourceAddrs returns the source addresses, sorted.
func (s *Status) SourceAddrs() []string { return sortedKeys(s.Sources) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// StatusStore keeps status records. Both backends implement it.
type StatusStore interface {
	ReadStatus(ctx context.Context) (*Status, error)
	PutTableStatus(ctx context.Context, ts *TableStatus) error
	PutSourceStatus(ctx context.Context, ss *SourceStatus) error
}

// Statuses returns the status store kept beside a backend's state.
func Statuses(b Backend) (StatusStore, error) {
	s, ok := b.(StatusStore)
	if !ok {
		return nil, fmt.Errorf("the %T state backend keeps no status", b)
	}
	return s, nil
}

// NewStatus is a status with no records, for a backend to fill.
func NewStatus() *Status {
	return &Status{Tables: map[string]*TableStatus{}, Sources: map[string]*SourceStatus{}}
}

// StatusPath is the local status file beside the state file.
func (b *Local) StatusPath() string { return strings.TrimSuffix(b.path, ".json") + ".status.json" }

var localStatusMu sync.Mutex

// ReadStatus reads the status file; none yet is an empty status.
func (b *Local) ReadStatus(ctx context.Context) (*Status, error) {
	data, err := os.ReadFile(b.StatusPath())
	if errors.Is(err, os.ErrNotExist) {
		return NewStatus(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read status file: %w", err)
	}
	st := NewStatus()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("status file %s is damaged (%v); delete it: the runner rebuilds it", b.StatusPath(), err)
	}
	if st.Tables == nil {
		st.Tables = map[string]*TableStatus{}
	}
	if st.Sources == nil {
		st.Sources = map[string]*SourceStatus{}
	}
	return st, nil
}

// update applies fn to the status file under an exclusive flock, so that
// the runner's workers and other processes never lose each other's
// records.
func (b *Local) update(fn func(*Status)) error {
	localStatusMu.Lock()
	defer localStatusMu.Unlock()
	if err := os.MkdirAll(dirOf(b.StatusPath()), 0o700); err != nil {
		return err
	}
	lf, err := os.OpenFile(b.StatusPath()+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	st, err := b.ReadStatus(context.Background())
	if err != nil {
		st = NewStatus() // a damaged file is rebuilt
	}
	fn(st)
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(b.StatusPath(), append(data, '\n'))
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

// PutTableStatus records one table's status.
func (b *Local) PutTableStatus(ctx context.Context, ts *TableStatus) error {
	return b.update(func(s *Status) { s.Tables[ts.Address] = ts })
}

// PutSourceStatus records one source's status.
func (b *Local) PutSourceStatus(ctx context.Context, ss *SourceStatus) error {
	return b.update(func(s *Status) { s.Sources[ss.Address] = ss })
}
