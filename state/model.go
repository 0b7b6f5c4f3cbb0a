package state

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
)

// FormatVersion is the version of the state document written by this
// build. Readers refuse newer versions rather than lose what they don't know,
// and upgrade older ones in memory (see migrate); the next write stores the
// current version.
//
// Version 2 records the history table of a cdc table (history_table), so
// that no reader derives a warehouse name. Version 3 adds table settings
// (query, historical_load, start, resync_historical, hash, rename,
// batch_size) an older reader would drop.
const FormatVersion = 3

// State is the recorded state.
type State struct {
	FormatVersion int `json:"format_version"`
	// Lineage identifies one history of state: a saved plan applies only to
	// the lineage (and serial) it was made from.
	Lineage string `json:"lineage"`
	// Serial increases with every write.
	Serial  int64              `json:"serial"`
	Sources map[string]*Source `json:"sources"`
}

// New returns an empty state with a fresh lineage.
func New() *State {
	return &State{FormatVersion: FormatVersion, Lineage: newID(), Sources: map[string]*Source{}}
}

// SourceAddrs returns the recorded source addresses, sorted.
func (s *State) SourceAddrs() []string {
	out := make([]string, 0, len(s.Sources))
	for a := range s.Sources {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Source is one applied source.
type Source struct {
	Address string `json:"address"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Prefix  string `json:"prefix"`
	// Settings are the applied non-secret settings by attribute name
	// ("host", "port", "cdc.slot", ...), as strings.
	Settings map[string]string `json:"settings"`
	// Fingerprints are HMAC-SHA256 fingerprints of the sensitive settings,
	// keyed by attribute name; see Fingerprint.
	Fingerprints map[string]string `json:"fingerprints,omitempty"`
	Resources    Resources         `json:"resources"`
	// Tables are keyed by the table label as written in the configuration.
	Tables    map[string]*Table `json:"tables"`
	AppliedAt time.Time         `json:"applied_at"`
}

// TableNames returns the recorded table labels, sorted.
func (s *Source) TableNames() []string {
	out := make([]string, 0, len(s.Tables))
	for n := range s.Tables {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Resources are the objects apply created or verified at the source.
type Resources struct {
	// Management is "managed" or "self_managed" for PostgreSQL sources.
	Management  string            `json:"management,omitempty"`
	Publication *PublicationState `json:"publication,omitempty"`
	Slot        *SlotState        `json:"slot,omitempty"`
	Webhook     *WebhookState     `json:"webhook,omitempty"`
}

// PublicationState is a publication apply created (managed) or verified
// (self_managed).
type PublicationState struct {
	Name string `json:"name"`
	// Tables are "schema.table", sorted.
	Tables []string `json:"tables"`
}

// SlotState is a replication slot apply created.
type SlotState struct {
	Name   string `json:"name"`
	Plugin string `json:"plugin"`
	// CreatedLSN is the slot's consistent point when it was created.
	CreatedLSN string    `json:"created_lsn"`
	CreatedAt  time.Time `json:"created_at"`
}

// WebhookState is a webhook endpoint apply registered.
type WebhookState struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	// Created reports whether sluice registered the endpoint (and so may
	// delete it on destroy), as opposed to adopting an existing one.
	Created bool `json:"created"`
}

// Table is one applied table: its settings as the configuration typed
// them, and the warehouse tables apply chose for it. Readers (the runner,
// status) use these as recorded and never derive them again.
type Table struct {
	Name string `json:"name"`
	// Schema and Table are the resolved source schema and table name.
	Schema string `json:"schema"`
	Table  string `json:"table"`
	// WarehouseTable is the table's warehouse table; for a cdc table with
	// cdc_output = "history" it is the name the history table derives
	// from, not a table that is written.
	WarehouseTable string `json:"warehouse_table"`
	// HistoryTable is the history table of a cdc table whose cdc_output
	// keeps one ("history" or "both"), "" otherwise.
	HistoryTable     string                  `json:"history_table,omitempty"`
	Sync             config.SyncType         `json:"sync"`
	IncrementalField string                  `json:"incremental_field,omitempty"`
	PrimaryKey       []string                `json:"primary_key,omitempty"`
	Columns          []string                `json:"columns,omitempty"`
	NewColumns       config.NewColumnsPolicy `json:"new_columns,omitempty"`
	CDCOutput        config.CDCOutput        `json:"cdc_output,omitempty"`
	// Query is a custom SQL table's SELECT ("" for a source table).
	Query     string    `json:"query,omitempty"`
	Frequency Frequency `json:"frequency"`
	Enabled   bool      `json:"enabled"`
	// Hash are the columns the warehouse holds hashed (config's hash), as
	// applied: the runner hashes these, not what the files say now.
	Hash []string `json:"hash,omitempty"`
	// Rename maps source column names to warehouse column names (the
	// rename attribute); the runner gives the warehouse the new names,
	// and reads the source by the old.
	Rename map[string]string `json:"rename,omitempty"`
	// BatchSize is batch_size (cursor and xmin tables): the runner commits
	// every BatchSize rows of a read; 0 is no limit. A change takes effect
	// at the next read, with no resync.
	BatchSize int `json:"batch_size,omitempty"`
	// SourceColumns are the live columns (name and format_type) when the
	// table was applied, so that plan can tell a dropped or retyped column.
	SourceColumns []ColumnState `json:"source_columns,omitempty"`
	// ResyncRequestedAt is set by `sluice resync` and by applies whose
	// plan says resync. The runner never writes state: a table is due for
	// a full reload while this is later than its status's LastFullSyncAt.
	ResyncRequestedAt time.Time `json:"resync_requested_at,omitzero"`
	AppliedAt         time.Time `json:"applied_at"`

	// HistoricalLoad is false for a table that starts without its
	// history (historical_load = false); nil when it loads it, the
	// default, so that states written before the setting read as before.
	HistoricalLoad *bool `json:"historical_load,omitempty"`
	// Start is where an incremental or append table without historical
	// load starts: the cursor's greatest value, and the keys of the rows
	// holding it, when apply created the table (the zero Position when
	// the table was empty: everything that comes later). nil: the first
	// sync takes the mark itself.
	Start *records.Position `json:"start,omitempty"`
	// ResyncHistorical says that the resync requested at
	// ResyncRequestedAt loads the whole history (`sluice resync
	// -historical`) even though HistoricalLoad is false.
	ResyncHistorical bool `json:"resync_historical,omitempty"`
}

// LoadsHistory reports whether the table's next full sync reads its
// whole history: historical_load is not false, or the resync still due
// (resyncDue) was asked for with `sluice resync -historical`.
func (t *Table) LoadsHistory(resyncDue bool) bool {
	return t.HistoricalLoad == nil || *t.HistoricalLoad || t.ResyncHistorical && resyncDue
}

// ColumnState is a source column as seen at apply time.
type ColumnState struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// LockInfo describes who holds the state lock.
type LockInfo struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"` // "apply", "plan", "destroy", ...
	Who       string    `json:"who"`       // user@host
	Created   time.Time `json:"created"`
	// PID is the holder's process ID, for people looking for it.
	PID int `json:"pid,omitempty"`
	// BackendPID is the PostgreSQL backend holding the advisory lock
	// (postgres backend), which force-unlock terminates.
	BackendPID int `json:"backend_pid,omitempty"`
}

func (l *LockInfo) String() string {
	return fmt.Sprintf("ID %s, held by %s for %s since %s", l.ID, l.Who, l.Operation, l.Created.Format(time.RFC3339))
}

// ErrLocked is returned (wrapped in a *LockedError) when the lock is held.
var ErrLocked = errors.New("state is locked")

// LockedError says who holds the lock.
type LockedError struct {
	Holder *LockInfo
}

func (e *LockedError) Error() string {
	if e.Holder == nil {
		return "state is locked by another sluice process"
	}
	return fmt.Sprintf("state is locked (%s); wait for it to finish (-lock-timeout waits), or if it is stuck, stop it or run `sluice force-unlock %s`", e.Holder, e.Holder.ID)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Backend stores state. Implementations: local (a JSON file beside a lock
// file) and postgres (tables in schema "sluice", advisory-locked).
type Backend interface {
	// Read returns the current state, or a New() state when none was written.
	Read(ctx context.Context) (*State, error)
	// Write stores st as the next version. It increments st.Serial and
	// refuses a state whose lineage differs from the stored one or whose
	// serial is behind it.
	Write(ctx context.Context, st *State) error
	// Lock takes the state lock for an operation, waiting up to timeout
	// (0: try once). The returned function releases it.
	Lock(ctx context.Context, info LockInfo, timeout time.Duration) (unlock func() error, err error)
	// ForceUnlock releases a lock left by a process that died.
	ForceUnlock(ctx context.Context, id string) error
	// FingerprintKey returns the key for Fingerprint, creating it on first
	// use. It is stored beside the state, never in it.
	FingerprintKey(ctx context.Context) ([]byte, error)
	Close() error
}

// Fingerprint is a keyed hash of a secret value: equal values give equal
// fingerprints under one key, and without the key nothing can be learned
// of the value, not even by guessing common passwords.
func Fingerprint(key []byte, attribute, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(attribute))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// NewKey returns a fresh random fingerprint key.
func NewKey() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}

func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// NewLockID returns a fresh lock ID.
func NewLockID() string { return newID() }
