package state

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// TestSyncRequests, for both backends: a request written by one process
// is listed and read by another, oldest first; the runner's update and
// the requester's delete are seen; status readers do not see requests;
// a request that is gone reads as nil.
func TestSyncRequests(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	url := pgtest.NewDB(t)
	for name, open := range map[string]func() Backend{
		"local":    func() Backend { return NewLocal(path) },
		"postgres": func() Backend { return openPG(t, url) },
	} {
		t.Run(name, func(t *testing.T) {
			requester, runner := open(), open()
			rq, err := Requests(requester)
			if err != nil {
				t.Fatal(err)
			}
			rn, _ := Requests(runner)
			if got, err := rn.ListSyncRequests(ctx); err != nil || len(got) != 0 {
				t.Fatalf("before any request: %v, %v", got, err)
			}
			first := NewSyncRequest([]string{"postgres.shop/orders", "postgres.shop/Audit Log"})
			second := NewSyncRequest([]string{"stripe.s/customers"})
			second.RequestedAt = first.RequestedAt.Add(time.Second)
			first.RequestedAt = first.RequestedAt.Truncate(time.Microsecond)
			second.RequestedAt = second.RequestedAt.Truncate(time.Microsecond)
			for _, r := range []*SyncRequest{second, first} {
				if err := rq.PutSyncRequest(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			got, err := rn.ListSyncRequests(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]*SyncRequest{first, second}, got); diff != "" {
				t.Fatalf("listed (-want +got):\n%s", diff)
			}

			// The runner takes the first and answers it.
			taken := *got[0]
			taken.Runner, taken.TakenAt = "runner-1", time.Now().UTC().Truncate(time.Microsecond)
			taken.DoneAt = taken.TakenAt.Add(time.Second)
			taken.Results = []TableStatus{{Address: "postgres.shop/orders", State: StateCompleted, RowsSynced: 3}, {Address: "postgres.shop/Audit Log", State: StateFailed, LastError: "no such table"}}
			if err := rn.PutSyncRequest(ctx, &taken); err != nil {
				t.Fatal(err)
			}
			back, err := rq.SyncRequest(ctx, first.ID)
			if err != nil || back == nil || !back.Done() {
				t.Fatalf("requester reads %+v, %v", back, err)
			}
			if diff := cmp.Diff(&taken, back); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}

			// Requests are not table or source status.
			if st, err := requester.(StatusStore).ReadStatus(ctx); err != nil || len(st.Tables)+len(st.Sources) != 0 {
				t.Errorf("status with requests: %+v, %v", st, err)
			}

			for _, r := range []*SyncRequest{first, second} {
				if err := rq.DeleteSyncRequest(ctx, r.ID); err != nil {
					t.Fatal(err)
				}
			}
			if err := rq.DeleteSyncRequest(ctx, first.ID); err != nil {
				t.Errorf("deleting a request that is gone: %v", err)
			}
			if r, err := rn.SyncRequest(ctx, first.ID); err != nil || r != nil {
				t.Errorf("deleted request reads %+v, %v", r, err)
			}
			if got, err := rn.ListSyncRequests(ctx); err != nil || len(got) != 0 {
				t.Errorf("after delete: %v, %v", got, err)
			}
		})
	}
}

// TestLocalSyncRequestFiles: requests are files of mode 0600 beside the
// state file; a file being written (temporary) or damaged is skipped by
// the listing; an ID cannot name a file elsewhere.
func TestLocalSyncRequestFiles(t *testing.T) {
	ctx := context.Background()
	b := NewLocal(filepath.Join(t.TempDir(), "state.json"))
	r := NewSyncRequest([]string{"postgres.shop/orders"})
	if err := b.PutSyncRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(b.SyncRequestDir(), r.ID+".json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("request file: %v, %v", fi, err)
	}
	for name, data := range map[string]string{".x.json.tmp-1": "{", "broken.json": "{", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(b.SyncRequestDir(), name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.ListSyncRequests(ctx)
	if err != nil || len(got) != 1 || got[0].ID != r.ID {
		t.Errorf("listed %v, %v", got, err)
	}
	for _, id := range []string{"../state", "", ".hidden"} {
		if err := b.PutSyncRequest(ctx, &SyncRequest{ID: id}); err == nil {
			t.Errorf("request id %q accepted", id)
		}
	}
}
