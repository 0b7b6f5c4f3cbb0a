package state

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

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
