package state

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/atomicfile"
)

// Local is the local backend: a JSON file, with a lock file, a fingerprint
// key and a backup of the previous version beside it. See the package
// documentation for the files and the locking protocol.
type Local struct {
	path string

	mu   sync.Mutex
	held map[*localLock]struct{}
}

// NewLocal returns the local backend for the state file at path. Nothing
// is created until something is written or locked.
func NewLocal(path string) *Local {
	return &Local{path: path, held: map[*localLock]struct{}{}}
}

// Path is the state file.
func (b *Local) Path() string { return b.path }

// LockPath is the lock file beside the state file.
func (b *Local) LockPath() string { return b.path + ".lock" }

// KeyPath is the fingerprint key file beside the state file.
func (b *Local) KeyPath() string { return b.path + ".key" }

// BackupPath holds the version before the last write.
func (b *Local) BackupPath() string { return b.path + ".backup" }

func (b *Local) name() string { return "state file " + b.path }

// Read returns the state in the file, or a New() state when there is no
// file yet (which is not written: reading never changes anything).
func (b *Local) Read(ctx context.Context) (*State, error) {
	data, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	st, err := Decode(data, b.name())
	if err != nil {
		return nil, b.explain(err)
	}
	return st, nil
}

// explain adds what to do about a corrupt file.
func (b *Local) explain(err error) error {
	if !errors.Is(err, ErrCorrupt) {
		return err
	}
	hint := "repair it, or restore it from a backup or version control"
	if _, statErr := os.Stat(b.BackupPath()); statErr == nil {
		hint = fmt.Sprintf("repair it, or restore the previous version from %s", b.BackupPath())
	}
	return fmt.Errorf("%w; %s (sluice does not start over, as that would forget the slots, publications and webhooks it created)", err, hint)
}

// Write stores st as the next version: serial st.Serial+1, written to a
// temporary file that is synced and renamed over the state file. The
// version it replaces is kept in BackupPath.
func (b *Local) Write(ctx context.Context, st *State) error {
	if st == nil || st.Lineage == "" {
		return errors.New("write state: the state has no lineage; start from state.New() or Read")
	}
	if err := b.checkLocks(); err != nil {
		return err
	}
	// The check of the stored version and the rename of the next one are
	// one step for writers of this directory, even for writers that do not
	// hold the state lock: a short flock on the directory itself, which
	// needs no other file.
	dir := filepath.Dir(b.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the state directory: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer d.Close()
	if err := flock(d, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("write state: lock %s: %w", dir, err)
	}
	old, err := os.ReadFile(b.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = nil
	case err != nil:
		return fmt.Errorf("write state: read the current version: %w", err)
	default:
		stored, err := Decode(old, b.name())
		if err != nil {
			return b.explain(err)
		}
		if err := CheckSuccessor(stored.Lineage, stored.Serial, st); err != nil {
			return fmt.Errorf("write %s: %w", b.path, err)
		}
	}
	next := *st
	next.FormatVersion = FormatVersion
	next.Serial = st.Serial + 1
	if next.Sources == nil {
		next.Sources = map[string]*Source{}
	}
	data, err := Encode(&next)
	if err != nil {
		return err
	}
	if old != nil {
		if err := writeFileAtomic(b.BackupPath(), old); err != nil {
			return fmt.Errorf("write state backup (the state was not changed): %w", err)
		}
	}
	if err := writeFileAtomic(b.path, data); err != nil {
		return fmt.Errorf("write state (the previous version is unchanged): %w", err)
	}
	st.FormatVersion, st.Serial, st.Sources = next.FormatVersion, next.Serial, next.Sources
	return nil
}

// CheckSuccessor refuses to write st over a stored version it does not
// descend from.
func CheckSuccessor(lineage string, serial int64, st *State) error {
	if lineage != st.Lineage {
		return fmt.Errorf("%w: the stored state has lineage %s, this one %s; it belongs to another history (was the state replaced?)", ErrStateChanged, lineage, st.Lineage)
	}
	if serial > st.Serial {
		return fmt.Errorf("%w: the stored serial is %d, this state was read at %d; another sluice wrote in between (use the state lock), run the command again", ErrStateChanged, serial, st.Serial)
	}
	return nil
}

// Lock takes the lock file's flock. The lock file holds the holder's
// LockInfo for others to read; the flock is what excludes, and the kernel
// releases it when the holder exits however it exits.
func (b *Local) Lock(ctx context.Context, info LockInfo, timeout time.Duration) (func() error, error) {
	info = info.Complete()
	var l *localLock
	err := RetryLock(ctx, timeout, func() error {
		var err error
		l, err = b.tryLock(info)
		return err
	})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.held[l] = struct{}{}
	b.mu.Unlock()
	return func() error {
		b.mu.Lock()
		delete(b.held, l)
		b.mu.Unlock()
		return l.unlock()
	}, nil
}

// maxLockFileRaces bounds the retries when the lock file is replaced
// between open and flock; each retry means another process made progress.
const maxLockFileRaces = 100

func (b *Local) tryLock(info LockInfo) (*localLock, error) {
	if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
		return nil, fmt.Errorf("create the state directory: %w", err)
	}
	for range maxLockFileRaces {
		f, err := os.OpenFile(b.LockPath(), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open the state lock file: %w", err)
		}
		if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				holder := WaitForHolder(func() *LockInfo { return readLockInfo(f) })
				f.Close()
				return nil, &LockedError{Holder: holder}
			}
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", b.LockPath(), err)
		}
		// The previous holder removes the file when it unlocks; if that
		// happened between our open and flock, we hold a lock on a file
		// that nobody else will open, and must start again.
		if same, _ := samePath(f, b.LockPath()); !same {
			f.Close()
			continue
		}
		if err := writeHolder(f, info); err != nil {
			os.Remove(b.LockPath())
			f.Close()
			return nil, fmt.Errorf("record the lock holder in %s: %w", b.LockPath(), err)
		}
		return &localLock{f: f, path: b.LockPath(), info: info}, nil
	}
	return nil, fmt.Errorf("lock %s: the lock file kept being replaced while locking; is another program removing it?", b.LockPath())
}

// checkLocks refuses a write by a process whose lock was broken by
// force-unlock: another process may hold the lock now.
func (b *Local) checkLocks() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for l := range b.held {
		if same, _ := samePath(l.f, l.path); !same {
			return fmt.Errorf("write state: this process's state lock %s was removed (by force-unlock?) and another process may hold it now; nothing was written", l.info.ID)
		}
	}
	return nil
}

type localLock struct {
	f    *os.File
	path string
	info LockInfo

	once sync.Once
	err  error
}

func (l *localLock) unlock() error {
	l.once.Do(func() {
		// Remove the file before releasing the flock, and only while it is
		// still ours: after a force-unlock the file at path may be another
		// holder's.
		if same, _ := samePath(l.f, l.path); same {
			if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				l.err = fmt.Errorf("unlock state: %w", err)
			}
		}
		if err := l.f.Close(); err != nil && l.err == nil {
			l.err = fmt.Errorf("unlock state: %w", err)
		}
	})
	return l.err
}

// ForceUnlock removes the lock file when it holds lock id. A holder that
// is still running keeps its flock on the removed file, but no longer
// excludes anyone, and its next Write fails; see the package
// documentation.
func (b *Local) ForceUnlock(ctx context.Context, id string) error {
	f, err := os.Open(b.LockPath())
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: the state is not locked (there is no %s)", ErrNoLock, b.LockPath())
	}
	if err != nil {
		return fmt.Errorf("force-unlock: %w", err)
	}
	defer f.Close()
	info := readLockInfo(f)
	if info == nil {
		return fmt.Errorf("%w: %s does not name a holder; if no sluice is running, remove it", ErrNoLock, b.LockPath())
	}
	if info.ID != id {
		return fmt.Errorf("%w: the state lock is %s, not %q", ErrNoLock, info, id)
	}
	if same, _ := samePath(f, b.LockPath()); !same {
		return fmt.Errorf("%w: lock %s was released meanwhile", ErrNoLock, id)
	}
	if err := os.Remove(b.LockPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("force-unlock: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(b.LockPath()))
}

// FingerprintKey reads the key file beside the state, creating it with a
// new random key on first use.
func (b *Local) FingerprintKey(ctx context.Context) ([]byte, error) {
	path := b.KeyPath()
	key, err := readKeyFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the state directory: %w", err)
	}
	// Created only if absent: if another process created the key
	// meanwhile, both use theirs, rather than each using a different key.
	err = atomicfile.CreateFile(path, []byte(hex.EncodeToString(NewKey())+"\n"), 0o600)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create fingerprint key: %w", err)
	}
	return readKeyFile(path)
}

func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read fingerprint key: %w", err)
	}
	key, err := hex.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil || len(key) != 32 {
		// The content is not printed: it is a secret, even when damaged.
		return nil, fmt.Errorf("fingerprint key %s is damaged (want 64 hex digits); restore it from a backup, or remove it to start a new key (every sensitive setting will then show as changed in the next plan)", path)
	}
	return key, nil
}

// Close releases the locks this backend still holds.
func (b *Local) Close() error {
	b.mu.Lock()
	locks := make([]*localLock, 0, len(b.held))
	for l := range b.held {
		locks = append(locks, l)
	}
	clear(b.held)
	b.mu.Unlock()
	var errs []error
	for _, l := range locks {
		errs = append(errs, l.unlock())
	}
	return errors.Join(errs...)
}

func readLockInfo(f *os.File) *LockInfo {
	info := readHolder[LockInfo](f)
	if info == nil || info.ID == "" {
		return nil
	}
	return info
}

// readHolder reads the description a lock's holder wrote into its lock
// file: nil while there is none (the file is empty or half written).
func readHolder[T any](f *os.File) *T {
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return nil
	}
	var info T
	if json.Unmarshal(data, &info) != nil {
		return nil
	}
	return &info
}

// writeHolder replaces the content of a held lock file with the holder's
// description, in place: the file is the one locked, so it cannot be
// replaced by a rename. A reader that finds it half written (readHolder)
// waits for the whole.
func writeHolder(f *os.File, info any) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt(append(data, '\n'), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	return err
}

// flock retries on EINTR, which a signal arriving during the call causes.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// samePath reports whether path still names the file open as f.
func samePath(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

// writeFileAtomic replaces path with data, mode 0600, so that a crash
// leaves either the old or the new content, never a mix.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create the state directory: %w", err)
	}
	return atomicfile.WriteFile(path, data, 0o600)
}
