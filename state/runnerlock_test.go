package state

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRunnerLockHeldAgainstProbes: a status reader probing the lock at
// the moment a runner starts does not make the runner fail.
func TestRunnerLockHeldAgainstProbes(t *testing.T) {
	ctx := context.Background()
	b := NewLocal(filepath.Join(t.TempDir(), "state.json"))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				b.RunnerHolder(ctx)
			}
		}
	}()
	for range 50 {
		l, err := b.LockRunner(ctx, NewRunnerInfo("run"))
		if err != nil {
			t.Fatalf("a probe made the runner fail: %v", err)
		}
		l.Unlock()
	}
	close(stop)
	<-done
}

func TestMarkInterrupted(t *testing.T) {
	alive := &RunnerInfo{ID: "alive", Instance: "i2"}
	gone := &RunnerInfo{ID: "gone", Instance: "i1"}
	// A runner killed and started again under the same name (-id) is
	// another runner.
	sameName := &RunnerInfo{ID: "alive", Instance: "i0"}
	// Records written before instances were recorded go by ID.
	oldRecord := &RunnerInfo{ID: "alive"}
	st := &Status{Tables: map[string]*TableStatus{
		"p.a/mine":      {Address: "p.a/mine", State: StateRunning, Owner: alive},
		"p.a/gone":      {Address: "p.a/gone", State: StateRunning, Owner: gone},
		"p.a/same-name": {Address: "p.a/same-name", State: StateRunning, Owner: sameName},
		"p.a/old":       {Address: "p.a/old", State: StateRunning, Owner: oldRecord},
		"p.a/ownerless": {Address: "p.a/ownerless", State: StateRunning},
		"p.a/done":      {Address: "p.a/done", State: StateCompleted},
	}}
	tests := []struct {
		holder *RunnerInfo
		want   []string
	}{
		{alive, []string{"p.a/gone", "p.a/same-name"}},
		{nil, []string{"p.a/gone", "p.a/mine", "p.a/old", "p.a/ownerless", "p.a/same-name"}},
	}
	for _, tt := range tests {
		cp := &Status{Tables: map[string]*TableStatus{}}
		for k, v := range st.Tables {
			c := *v
			cp.Tables[k] = &c
		}
		got := MarkInterrupted(cp, tt.holder)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("holder %v (-want +got):\n%s", tt.holder, diff)
		}
		for _, addr := range got {
			if ts := cp.Tables[addr]; ts.State != StateFailed || !strings.HasPrefix(ts.LastError, "interrupted:") || ts.Owner != nil {
				t.Errorf("%s = %+v", addr, ts)
			}
		}
	}
}

func TestCheckRunnerID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"worker-1", true},
		{"db1.example.com-4242", true},
		{"ops@eu:blue_2", true},
		{"", false},
		{"two words", false},
		{"tab\there", false},
		{"new\nline", false},
		{"quote\"", false},
		{"é", false},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		if err := CheckRunnerID(tt.id); (err == nil) != tt.ok {
			t.Errorf("CheckRunnerID(%q) = %v", tt.id, err)
		}
	}
	if id := DefaultRunnerID(); !strings.HasSuffix(id, "-"+strconv.Itoa(os.Getpid())) {
		t.Errorf("DefaultRunnerID() = %q", id)
	}
}
