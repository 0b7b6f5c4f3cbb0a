package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	t0  = time.Unix(1_700_000_000, 0)
	ctx = context.Background()
)

func open(t *testing.T, dir string, now time.Time) *Journal {
	t.Helper()
	j, err := Open(dir, "stripe.billing", now)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func appendAll(t *testing.T, j *Journal, evs ...[2]string) {
	t.Helper()
	for _, ev := range evs {
		if _, err := j.Append(ctx, ev[0], ev[1], []byte(`{"id": "`+ev[0]+`"}`), t0); err != nil {
			t.Fatal(err)
		}
	}
}

func hasPending(t *testing.T, j Store, table string) bool {
	t.Helper()
	ok, err := j.HasPending(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func ids(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

// TestAppendPendingReopen: records are read back by table past a
// committed sequence number, in order, also after a reopen; a redelivered
// id is not journaled twice.
func TestAppendPendingReopen(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, t0)
	appendAll(t, j, [2]string{"evt_1", "charges"}, [2]string{"evt_2", "customers"}, [2]string{"evt_3", "charges"})
	dup, err := j.Append(ctx, "evt_1", "charges", []byte(`{}`), t0)
	if err != nil || !dup {
		t.Fatalf("redelivery: dup %v, %v", dup, err)
	}
	recs, err := j.Pending(ctx, "charges", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"evt_1", "evt_3"}, ids(recs)); diff != "" {
		t.Errorf("pending charges (-want +got):\n%s", diff)
	}
	if string(recs[0].Event) != `{"id":"evt_1"}` || recs[1].Seq != 3 {
		t.Errorf("records: %+v", recs)
	}
	// Another process cannot take the journal while it is open.
	if _, err := Open(dir, "stripe.billing", t0); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	j.Close()

	j = open(t, dir, t0)
	defer j.Close()
	j.Committed("charges", 1)
	if !hasPending(t, j, "charges") || hasPending(t, j, "other") {
		t.Error("HasPending after reopen")
	}
	recs, err = j.Pending(ctx, "charges", 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"evt_3"}, ids(recs)); diff != "" {
		t.Errorf("pending charges past 1 (-want +got):\n%s", diff)
	}
	if dup, _ := j.Append(ctx, "evt_2", "customers", []byte(`{}`), t0); !dup {
		t.Error("an id journaled before the reopen is not recognised")
	}
	j.Committed("charges", 3)
	if hasPending(t, j, "charges") {
		t.Error("charges pending after committing its last record")
	}
}

// TestTornRecordCutOff: a last line a crash cut short was never
// acknowledged; it is dropped at open and the next record follows the
// complete ones.
func TestTornRecordCutOff(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, t0)
	appendAll(t, j, [2]string{"evt_1", "charges"})
	j.Close()
	f, err := os.OpenFile(filepath.Join(dir, journalFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":2,"id":"evt_2","tab`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	j = open(t, dir, t0)
	defer j.Close()
	appendAll(t, j, [2]string{"evt_2", "charges"})
	recs, err := j.Pending(ctx, "charges", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].ID != "evt_2" || recs[1].Seq != 2 {
		t.Errorf("records after the torn one: %+v", recs)
	}
}

// TestCompact: committed records (and those of tables no longer live) are
// dropped; their ids are still recognised, also after a reopen, until
// SeenRetention has passed; sequence numbers go on from the last one.
func TestCompact(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, t0)
	appendAll(t, j, [2]string{"evt_1", "charges"}, [2]string{"evt_2", "gone"}, [2]string{"evt_3", "charges"})
	j.Committed("charges", 3)
	if err := j.Compact(ctx, map[string]bool{"charges": true}, t0); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil || len(data) != 0 {
		t.Errorf("journal after compaction: %q, %v", data, err)
	}
	j.Close()

	j = open(t, dir, t0.Add(time.Hour))
	if dup, _ := j.Append(ctx, "evt_1", "charges", []byte(`{}`), t0); !dup {
		t.Error("a compacted id is not recognised after a reopen")
	}
	appendAll(t, j, [2]string{"evt_4", "charges"})
	recs, _ := j.Pending(ctx, "charges", 0)
	if len(recs) != 1 || recs[0].Seq != 4 {
		t.Errorf("sequence after compaction: %+v", recs)
	}
	j.Close()

	j = open(t, dir, t0.Add(SeenRetention+time.Hour))
	defer j.Close()
	if dup, _ := j.Append(ctx, "evt_1", "charges", []byte(`{}`), t0); dup {
		t.Error("an id past SeenRetention is still remembered")
	}
}
