package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Sync requests: how `sluice sync` asks the runner that holds the runner
// lock (a `sluice run` daemon) to sync tables now. The requester records a
// SyncRequest beside the status records; the runner takes it (Runner,
// TakenAt), syncs its tables and records the outcome (DoneAt, Results);
// the requester reads the outcome and deletes the request. Each phase has
// one writer: the requester creates and finally deletes, the runner
// holding the lock writes in between, so no lock is needed beyond the
// runner lock.
//
// A request survives its requester (Ctrl-C, a timeout) and its runner
// (the next runner to start takes requests that are not done, and expires
// those older than SyncRequestExpiry); done requests nobody deleted are
// removed by the runner after SyncRequestKeep.

// SyncRequestExpiry is how long a request waits for a runner to take it:
// an older one is not run but recorded as expired.
const SyncRequestExpiry = 24 * time.Hour

// SyncRequestKeep is how long a done request is kept for its requester.
const SyncRequestKeep = 24 * time.Hour

// SyncRequest is a `sluice sync` handed to the runner holding the lock.
type SyncRequest struct {
	ID          string    `json:"id"`
	Tables      []string  `json:"tables"`
	RequestedAt time.Time `json:"requested_at"`
	// RequestedBy names the requester: user@host and pid.
	RequestedBy string `json:"requested_by"`
	// Runner is the RunnerInfo.ID of the runner that took the request,
	// at TakenAt.
	Runner  string    `json:"runner,omitempty"`
	TakenAt time.Time `json:"taken_at,omitempty"`
	// DoneAt is set when every table has its result; Results holds each
	// table's status after the sync that answered the request, in the
	// order of Tables.
	DoneAt  time.Time     `json:"done_at,omitempty"`
	Results []TableStatus `json:"results,omitempty"`
	// Error says why the request as a whole was not run (it expired).
	Error string `json:"error,omitempty"`
}

// NewSyncRequest is a request for tables, made by this process now.
func NewSyncRequest(tables []string) *SyncRequest {
	return &SyncRequest{
		ID:          newID(),
		Tables:      append([]string(nil), tables...),
		RequestedAt: time.Now().UTC(),
		RequestedBy: fmt.Sprintf("%s pid %d", WhoAmI(), os.Getpid()),
	}
}

// Done reports whether the runner finished with the request.
func (r *SyncRequest) Done() bool { return !r.DoneAt.IsZero() }

// SyncRequests keeps sync requests beside the status records. Both
// backends implement it.
type SyncRequests interface {
	// PutSyncRequest creates or replaces a request.
	PutSyncRequest(ctx context.Context, req *SyncRequest) error
	// SyncRequest reads one request; nil (and no error) when there is
	// none with that ID.
	SyncRequest(ctx context.Context, id string) (*SyncRequest, error)
	// ListSyncRequests returns every request, oldest first. It is what a
	// daemon calls every second: one directory listing (local) or one
	// indexed query (postgres) when there is none.
	ListSyncRequests(ctx context.Context) ([]*SyncRequest, error)
	// DeleteSyncRequest removes a request; removing one that is gone is
	// not an error.
	DeleteSyncRequest(ctx context.Context, id string) error
}

// Requests returns the sync request store of a backend.
func Requests(b Backend) (SyncRequests, error) {
	s, ok := b.(SyncRequests)
	if !ok {
		return nil, fmt.Errorf("the %T state backend keeps no sync requests", b)
	}
	return s, nil
}

// SortRequests orders requests oldest first, as ListSyncRequests
// returns them.
func SortRequests(out []*SyncRequest) {
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].RequestedAt.Equal(out[j].RequestedAt) {
			return out[i].RequestedAt.Before(out[j].RequestedAt)
		}
		return out[i].ID < out[j].ID
	})
}

// CheckRequestID keeps an ID from naming a file outside the request
// directory.
func CheckRequestID(id string) error {
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return fmt.Errorf("invalid sync request id %q", id)
	}
	return nil
}

// SyncRequestDir is the local backend's directory of sync requests, one
// file per request, beside the state file.
func (b *Local) SyncRequestDir() string {
	return strings.TrimSuffix(b.path, ".json") + ".sync-requests"
}

func (b *Local) requestPath(id string) string {
	return filepath.Join(b.SyncRequestDir(), id+".json")
}

// PutSyncRequest writes the request's file crash-safely (a synced
// temporary file renamed over it).
func (b *Local) PutSyncRequest(ctx context.Context, req *SyncRequest) error {
	if err := CheckRequestID(req.ID); err != nil {
		return err
	}
	data, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(b.requestPath(req.ID), append(data, '\n')); err != nil {
		return fmt.Errorf("record sync request: %w", err)
	}
	return nil
}

// SyncRequest reads a request's file.
func (b *Local) SyncRequest(ctx context.Context, id string) (*SyncRequest, error) {
	if err := CheckRequestID(id); err != nil {
		return nil, err
	}
	return readRequestFile(b.requestPath(id))
}

func readRequestFile(path string) (*SyncRequest, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sync request: %w", err)
	}
	var req SyncRequest
	if err := json.Unmarshal(data, &req); err != nil || req.ID == "" {
		return nil, fmt.Errorf("sync request %s is damaged (%v); delete it", path, err)
	}
	return &req, nil
}

// ListSyncRequests lists the request directory; a missing directory is no
// request. A damaged file is skipped (its requester times out).
func (b *Local) ListSyncRequests(ctx context.Context) ([]*SyncRequest, error) {
	entries, err := os.ReadDir(b.SyncRequestDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sync requests: %w", err)
	}
	var out []*SyncRequest
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue // a temporary file being written
		}
		req, err := readRequestFile(filepath.Join(b.SyncRequestDir(), name))
		if err != nil || req == nil {
			continue
		}
		out = append(out, req)
	}
	SortRequests(out)
	return out, nil
}

// DeleteSyncRequest removes the request's file.
func (b *Local) DeleteSyncRequest(ctx context.Context, id string) error {
	if err := CheckRequestID(id); err != nil {
		return err
	}
	if err := os.Remove(b.requestPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete sync request: %w", err)
	}
	return nil
}
