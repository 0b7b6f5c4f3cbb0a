package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLocalRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := NewLocal(filepath.Join(dir, ".sluice", "state.json"))

	st, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Serial != 0 || st.Lineage == "" || len(st.Sources) != 0 || st.FormatVersion != FormatVersion {
		t.Errorf("missing file: got %+v, want a New() state", st)
	}
	if _, err := os.Stat(filepath.Join(dir, ".sluice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read created something: %v", err)
	}
	again, _ := b.Read(ctx)
	if again.Lineage == st.Lineage {
		t.Error("two reads of a missing file gave the same lineage; each should be a fresh New()")
	}

	want := testState(t)
	if err := b.Write(ctx, want); err != nil {
		t.Fatal(err)
	}
	if want.Serial != 1 {
		t.Errorf("serial after the first write = %d, want 1", want.Serial)
	}
	got, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}

	data, _ := os.ReadFile(b.Path())
	canonical, _ := Encode(got)
	if !bytes.Equal(data, canonical) {
		t.Errorf("the file is not the canonical encoding:\n%s", data)
	}
	if !bytes.HasPrefix(data, []byte(fmt.Sprintf("{\n  \"format_version\": %d,\n  \"lineage\": ", FormatVersion))) {
		t.Errorf("the file is not indented JSON in field order:\n%.80s", data)
	}
	if fi, _ := os.Stat(b.Path()); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Dir(b.Path())); fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, want 0700", fi.Mode().Perm())
	}

	// A second write keeps the first as the backup, and leaves no
	// temporary files behind.
	got.Sources["postgres.prod"].Settings["port"] = "5433"
	if err := b.Write(ctx, got); err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(b.BackupPath())
	if err != nil || !bytes.Equal(backup, data) {
		t.Errorf("backup is not the previous version (err %v)", err)
	}
	if fi, _ := os.Stat(b.BackupPath()); fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(b.Path()))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"state.json", "state.json.backup"}, names); diff != "" {
		t.Errorf("files beside the state (-want +got):\n%s", diff)
	}
	latest, _ := b.Read(ctx)
	if latest.Serial != 2 || latest.Sources["postgres.prod"].Settings["port"] != "5433" {
		t.Errorf("second write: serial %d, port %q", latest.Serial, latest.Sources["postgres.prod"].Settings["port"])
	}
}

func TestLocalWriteConflicts(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		mutate  func(st *State)
		wantErr error
	}{
		{name: "same serial", mutate: func(*State) {}},
		{name: "serial ahead (restored from elsewhere)", mutate: func(st *State) { st.Serial += 5 }},
		{name: "serial behind", mutate: func(st *State) { st.Serial-- }, wantErr: ErrStateChanged},
		{name: "other lineage", mutate: func(st *State) { st.Lineage = NewLockID() }, wantErr: ErrStateChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewLocal(filepath.Join(t.TempDir(), "state.json"))
			st := testState(t)
			for range 2 {
				if err := b.Write(ctx, st); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := os.ReadFile(b.Path())
			st, _ = b.Read(ctx)
			tt.mutate(st)
			serial := st.Serial
			err := b.Write(ctx, st)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Write: %v, want %v", err, tt.wantErr)
			}
			after, _ := os.ReadFile(b.Path())
			if err != nil {
				if !bytes.Equal(before, after) || st.Serial != serial {
					t.Error("a refused write changed the file or the serial")
				}
				return
			}
			if st.Serial != serial+1 {
				t.Errorf("serial %d after writing %d", st.Serial, serial)
			}
		})
	}

	t.Run("two writers of one version", func(t *testing.T) {
		b := NewLocal(filepath.Join(t.TempDir(), "state.json"))
		if err := b.Write(ctx, testState(t)); err != nil {
			t.Fatal(err)
		}
		first, _ := b.Read(ctx)
		second, _ := b.Read(ctx)
		if err := b.Write(ctx, first); err != nil {
			t.Fatal(err)
		}
		err := b.Write(ctx, second)
		if !errors.Is(err, ErrStateChanged) || !strings.Contains(err.Error(), "state changed since it was read") {
			t.Errorf("second writer: %v", err)
		}
	})
	t.Run("racing writers of one version", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		base := testState(t)
		if err := NewLocal(path).Write(ctx, base); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 8)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				st := *base
				errs[i] = NewLocal(path).Write(ctx, &st)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrStateChanged):
				t.Errorf("losing writer: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d writers won, want 1", won)
		}
	})
	t.Run("no lineage", func(t *testing.T) {
		b := NewLocal(filepath.Join(t.TempDir(), "state.json"))
		if err := b.Write(ctx, &State{}); err == nil {
			t.Error("wrote a state without lineage")
		}
	})
}

func TestLocalReadErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		content string
		wantErr error
		want    []string // substrings of the message
	}{
		{name: "syntax", content: "{\n  \"format_version\": 1,\n  \"lineage\": \"x\",,\n}\n", wantErr: ErrCorrupt,
			want: []string{"state.json:3:18", "invalid character ','", "restore it"}},
		{name: "truncated", content: "{\n  \"format_version\": 1,\n  \"lin", wantErr: ErrCorrupt, want: []string{"state.json", "unexpected end"}},
		{name: "empty", content: "", wantErr: ErrCorrupt, want: []string{"state.json is empty"}},
		{name: "not state", content: `{"version": 4, "terraform_version": "1.9.0"}`, wantErr: ErrCorrupt, want: []string{"no format_version", "not a sluice state"}},
		{name: "no lineage", content: `{"format_version": 1, "serial": 3}`, wantErr: ErrCorrupt, want: []string{"no lineage"}},
		{name: "wrong type", content: "{\"format_version\": 1, \"lineage\": \"x\",\n \"serial\": \"three\"}", wantErr: ErrCorrupt, want: []string{"state.json:2:", "serial"}},
		{name: "null source", content: `{"format_version": 1, "lineage": "x", "sources": {"postgres.p": null}}`, wantErr: ErrCorrupt, want: []string{`source "postgres.p" is null`}},
		{name: "newer", content: `{"format_version": 4, "lineage": "x", "serial": 1, "sources": {"a": 1}}`, wantErr: ErrNewerFormat, want: []string{"newer sluice", "format version 4", "upgrade sluice"}},
		{name: "zero version", content: `{"format_version": 0, "lineage": "x"}`, wantErr: ErrCorrupt, want: []string{"format version 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewLocal(filepath.Join(t.TempDir(), "state.json"))
			os.WriteFile(b.Path(), []byte(tt.content), 0o600)
			_, err := b.Read(ctx)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Read: %v, want %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// Writing over a file that cannot be read would lose it.
			if err := b.Write(ctx, New()); !errors.Is(err, tt.wantErr) {
				t.Errorf("Write over it: %v, want %v", err, tt.wantErr)
			}
			if got, _ := os.ReadFile(b.Path()); string(got) != tt.content {
				t.Error("the file was changed")
			}
		})
	}

	t.Run("backup suggested", func(t *testing.T) {
		b := NewLocal(filepath.Join(t.TempDir(), "state.json"))
		st := New()
		b.Write(ctx, st)
		b.Write(ctx, st)
		os.WriteFile(b.Path(), []byte("garbage"), 0o600)
		_, err := b.Read(ctx)
		if err == nil || !strings.Contains(err.Error(), "restore the previous version from "+b.BackupPath()) {
			t.Errorf("Read: %v", err)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		b := NewLocal(t.TempDir()) // a directory
		if _, err := b.Read(ctx); err == nil {
			t.Error("read a directory as state")
		}
	})
}

func TestLocalLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	a, b := NewLocal(path), NewLocal(path)

	info := LockInfo{ID: "lock-a", Operation: "apply", Who: "alice@laptop", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	unlockA, err := a.Lock(ctx, info, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Two opens of the lock file in one process conflict: flock belongs to
	// the open file description, not the process. Both through another
	// backend and through the same one.
	for name, other := range map[string]*Local{"other backend": b, "same backend": a} {
		_, err := other.Lock(ctx, NewLockInfo("plan"), 0)
		var locked *LockedError
		if !errors.As(err, &locked) || !errors.Is(err, ErrLocked) {
			t.Fatalf("%s: Lock while held: %v", name, err)
		}
		want := info
		want.PID = os.Getpid()
		if diff := cmp.Diff(&want, locked.Holder); diff != "" {
			t.Errorf("%s: holder (-want +got):\n%s", name, diff)
		}
		for _, s := range []string{"lock-a", "alice@laptop", "apply", "sluice force-unlock lock-a"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not mention %q", name, err, s)
			}
		}
	}
	if fi, err := os.Stat(a.LockPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v", err)
	}
	if err := unlockA(); err != nil {
		t.Fatal(err)
	}
	if err := unlockA(); err != nil {
		t.Errorf("second unlock: %v", err)
	}
	if _, err := os.Stat(a.LockPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left after unlock: %v", err)
	}
	if _, err := b.Lock(ctx, NewLockInfo("plan"), 0); err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	// Close releases what the backend holds.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	unlockA, err = a.Lock(ctx, NewLockInfo("plan"), 0)
	if err != nil {
		t.Fatalf("Lock after Close of the holder: %v", err)
	}
	unlockA()
}

func TestLocalLockTimeout(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	a, b := NewLocal(path), NewLocal(path)
	unlockA, err := a.Lock(ctx, NewLockInfo("apply"), 0)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	_, err = b.Lock(ctx, NewLockInfo("plan"), 150*time.Millisecond)
	var locked *LockedError
	if !errors.As(err, &locked) || !strings.Contains(err.Error(), "gave up waiting for the state lock after 150ms") {
		t.Fatalf("Lock with a short timeout: %v", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %s for a 150ms timeout", waited)
	}

	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = b.Lock(cctx, NewLockInfo("plan"), time.Minute)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &locked) {
		t.Errorf("Lock with a cancelled context: %v", err)
	}

	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		released <- time.Now()
		unlockA()
	}()
	unlockB, err := b.Lock(ctx, NewLockInfo("plan"), 10*time.Second)
	if err != nil {
		t.Fatalf("Lock with a timeout, released meanwhile: %v", err)
	}
	defer unlockB()
	if at := <-released; time.Since(at) > 2*time.Second {
		t.Errorf("took the lock %s after its release", time.Since(at))
	}
}

func TestLocalLockOtherProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	b := NewLocal(path)

	h := startHolder(t, "local", path)
	_, err := b.Lock(ctx, NewLockInfo("plan"), 0)
	var locked *LockedError
	if !errors.As(err, &locked) || locked.Holder == nil {
		t.Fatalf("Lock while another process holds it: %v", err)
	}
	if locked.Holder.ID != h.Said || locked.Holder.Who != "holder@test" || locked.Holder.PID != h.Pid() {
		t.Errorf("holder %+v, want ID %s, pid %d", locked.Holder, h.Said, h.Pid())
	}

	// A holder killed outright leaves its lock file, but not its flock: the
	// next Lock takes over at once, without force-unlock.
	h.Kill()
	if _, err := os.Stat(b.LockPath()); err != nil {
		t.Fatalf("the killed holder's lock file: %v", err)
	}
	info := NewLockInfo("plan")
	unlock, err := b.Lock(ctx, info, 0)
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	data, _ := os.ReadFile(b.LockPath())
	var recorded LockInfo
	if json.Unmarshal(data, &recorded); recorded.ID != info.ID {
		t.Errorf("lock file after take-over names %q, want %q", recorded.ID, info.ID)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}

	// A holder that exits normally releases: a waiter gets the lock.
	h = startHolder(t, "local", path)
	released := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		released <- h.Release()
	}()
	unlock, err = b.Lock(ctx, NewLockInfo("plan"), 10*time.Second)
	if err != nil {
		t.Fatalf("Lock waiting for a holder that exits: %v", err)
	}
	unlock()
	if err := <-released; err != nil {
		t.Error(err)
	}
}

func TestLocalForceUnlock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	stuck, next, admin := NewLocal(path), NewLocal(path), NewLocal(path)

	if err := admin.ForceUnlock(ctx, "nope"); !errors.Is(err, ErrNoLock) || !strings.Contains(err.Error(), "not locked") {
		t.Errorf("ForceUnlock with no lock: %v", err)
	}
	st, _ := stuck.Read(ctx)
	info := NewLockInfo("apply")
	unlockStuck, err := stuck.Lock(ctx, info, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.ForceUnlock(ctx, "wrong-id"); !errors.Is(err, ErrNoLock) || !strings.Contains(err.Error(), info.ID) {
		t.Errorf("ForceUnlock with the wrong ID: %v", err)
	}
	if _, err := next.Lock(ctx, NewLockInfo("plan"), 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("a wrong ID released the lock: %v", err)
	}
	if err := admin.ForceUnlock(ctx, info.ID); err != nil {
		t.Fatalf("ForceUnlock: %v", err)
	}
	unlockNext, err := next.Lock(ctx, NewLockInfo("plan"), 0)
	if err != nil {
		t.Fatalf("Lock after force-unlock: %v", err)
	}
	// The stuck process wakes up: it must not write, and its unlock must
	// not remove the new holder's lock.
	if err := stuck.Write(ctx, st); err == nil || !strings.Contains(err.Error(), "force-unlock") {
		t.Errorf("Write by a force-unlocked holder: %v", err)
	}
	if _, err := os.Stat(stuck.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Error("the force-unlocked holder wrote the state")
	}
	if err := unlockStuck(); err != nil {
		t.Errorf("unlock by the force-unlocked holder: %v", err)
	}
	if _, err := admin.Lock(ctx, NewLockInfo("plan"), 0); !errors.Is(err, ErrLocked) {
		t.Errorf("the old holder's unlock released the new lock: %v", err)
	}
	unlockNext()
}

func TestLocalFingerprintKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "state.json")

	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := NewLocal(path).FingerprintKey(ctx)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i, k := range keys {
		if len(k) != 32 || !bytes.Equal(k, keys[0]) {
			t.Fatalf("key %d is %x, key 0 %x: concurrent first uses must agree", i, k, keys[0])
		}
	}
	b := NewLocal(path)
	if fi, err := os.Stat(b.KeyPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("files beside the state: %d, want only the key", len(entries))
	}
	st := New()
	st.Sources["postgres.p"] = &Source{Address: "postgres.p", Fingerprints: map[string]string{"password": Fingerprint(keys[0], "password", "pw")}}
	if err := b.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(b.Path())
	keyText, _ := os.ReadFile(b.KeyPath())
	if bytes.Contains(data, bytes.TrimSpace(keyText)) {
		t.Error("the key is in the state file")
	}

	os.WriteFile(b.KeyPath(), []byte("0123456789abcdef-damaged\n"), 0o600)
	_, err := b.FingerprintKey(ctx)
	if err == nil || !strings.Contains(err.Error(), "damaged") || strings.Contains(err.Error(), "0123456789abcdef") {
		t.Errorf("damaged key: %v", err)
	}
}
