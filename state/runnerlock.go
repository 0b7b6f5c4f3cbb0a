package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The runner lock: one runner (`sluice run`, `run -once`, `sync`) at a
// time per state, until several runners can share work. Two runners would
// both sync the batch tables and overwrite each other's status records.
// It is held for the runner's whole life and released by the kernel (local
// backend: flock) or the server (postgres backend: a session advisory
// lock) when the process dies however it dies, so a runner that was
// killed never leaves it behind and no force-unlock is needed.
//
// Status readers use it to tell a sync that is running from one whose
// runner is gone: a running status record names its runner (Owner), and
// is running only while that runner holds the lock.
// RunnerInfo names a runner: recorded with the runner lock, and with the
// status of the syncs it runs.
type RunnerInfo struct {
	// ID names the runner (`run -id=NAME`, default <hostname>-<pid>): in
	// logs, status (TableStatus.Runner) and messages. Two runners may
	// carry the same name (one restarted under it): Instance tells them
	// apart.
	ID string `json:"id"`
	// Instance is unique to the process (empty in records written before
	// it was recorded).
	Instance  string    `json:"instance,omitempty"`
	Operation string    `json:"operation"` // "run", "run -once", "sync"
	PID       int       `json:"pid"`
	Host      string    `json:"host"`
	Started   time.Time `json:"started"`
	// BackendPID is the PostgreSQL session holding the advisory lock
	// (postgres backend).
	BackendPID int `json:"backend_pid,omitempty"`
}

// NewRunnerInfo describes this process as a runner for operation, named
// DefaultRunnerID() (set ID to name it otherwise).
func NewRunnerInfo(operation string) RunnerInfo {
	return RunnerInfo{ID: DefaultRunnerID(), Instance: newID(), Operation: operation, PID: os.Getpid(), Host: hostname(),
		Started: time.Now().UTC().Truncate(time.Second)}
}

// DefaultRunnerID is the name of a runner not given one: <hostname>-<pid>.
func DefaultRunnerID() string {
	return fmt.Sprintf("%s-%d", hostname(), os.Getpid())
}

func hostname() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "unknown"
	}
	return host
}

// maxRunnerID bounds a runner's name.
const maxRunnerID = 128

// CheckRunnerID says what is wrong with a runner name given with -id, or
// nil: 1 to 128 letters, digits and . _ - : @ (it shows in logs, status
// and messages, and must read the same everywhere).
func CheckRunnerID(id string) error {
	ok := id != "" && len(id) <= maxRunnerID
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-:@", c)) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("-id must be 1 to %d letters, digits, or . _ - : @ (got %q)", maxRunnerID, id)
	}
	return nil
}

// SameRunner reports whether a and b describe the same runner process:
// the same Instance, or, for a record without one, the same ID.
func SameRunner(a, b *RunnerInfo) bool {
	if a == nil || b == nil {
		return false
	}
	if a.Instance != "" && b.Instance != "" {
		return a.Instance == b.Instance
	}
	return a.ID != "" && a.ID == b.ID
}

func (i *RunnerInfo) String() string {
	if i == nil || i.ID == "" {
		return "another sluice runner (it has not said who it is)"
	}
	return fmt.Sprintf("runner %s (`sluice %s`, pid %d on %s, since %s)", i.ID, i.Operation, i.PID, i.Host, i.Started.Format(time.RFC3339))
}

// ErrRunnerLocked is returned (wrapped in a *RunnerLockedError) when
// another runner holds the runner lock.
var ErrRunnerLocked = errors.New("another sluice runner is running")

// RunnerLockedError names the runner that holds the lock.
type RunnerLockedError struct {
	Lock   string      // the lock: a file, or an advisory lock of a database
	Holder *RunnerInfo // nil when it could not be read
}

func (e *RunnerLockedError) Error() string {
	return fmt.Sprintf("%s is already running on this state: it holds the runner lock (%s). Only one runner may run at a time: "+
		"stop it first or wait for it to end, or give this configuration another state "+
		"(`sluice sync` hands its tables to a running `sluice run` daemon, but not to run -once or another sync). "+
		"A runner that was killed releases the lock by itself", e.Holder, e.Lock)
}

func (e *RunnerLockedError) Unwrap() error { return ErrRunnerLocked }

// RunnerLock is a held runner lock.
type RunnerLock interface {
	// Check reports whether the lock is still held, taking it again after
	// a lost connection (postgres); it fails only when another runner
	// holds it now.
	Check(ctx context.Context) error
	Unlock() error
}

// RunnerLocker is implemented by the backends: the runner lock and who
// holds it.
type RunnerLocker interface {
	// LockRunner takes the runner lock, or fails at once with a
	// *RunnerLockedError.
	LockRunner(ctx context.Context, info RunnerInfo) (RunnerLock, error)
	// RunnerHolder returns the runner holding the lock, nil when none
	// does.
	RunnerHolder(ctx context.Context) (*RunnerInfo, error)
}

// InterruptedError is the last_error of a sync whose runner stopped
// during it.
const InterruptedError = "interrupted: the runner stopped during this sync (it was killed, or its machine stopped); the next run syncs the table again"

// MarkInterrupted turns the running records whose runner no longer holds
// the runner lock (holder: the one that does, nil for none) into failed
// ones, and returns their addresses. The interrupted attempt does not
// count as one: the table is due as if it had not started (a failure
// waits for the next interval, an interruption is not the table's fault).
func MarkInterrupted(st *Status, holder *RunnerInfo) []string {
	var out []string
	for _, addr := range st.TableAddrs() {
		ts := st.Tables[addr]
		if ts.State != StateRunning || RunnerAlive(ts.Owner, holder) {
			continue
		}
		Interrupt(ts)
		out = append(out, addr)
	}
	return out
}

// Interrupt records that a running sync was interrupted.
func Interrupt(ts *TableStatus) {
	ts.State, ts.LastError, ts.Owner = StateFailed, InterruptedError, nil
	ts.LastAttemptAt = ts.LastSyncAt
}

// RunnerAlive reports whether owner (of a running record) still runs,
// given the runner holding the lock. A record without an owner (written
// before owners were recorded) is taken as running while any runner runs.
func RunnerAlive(owner, holder *RunnerInfo) bool {
	if holder == nil {
		return false
	}
	return owner == nil || owner.ID == "" || SameRunner(owner, holder)
}

// RunnerLockPath is the local backend's runner lock file.
func (b *Local) RunnerLockPath() string { return b.path + ".runner.lock" }

// LockRunner takes the flock of the runner lock file and writes info in
// it. Status readers probe the lock with a shared flock for a moment; a
// lock found held only by such a probe is tried again.
func (b *Local) LockRunner(ctx context.Context, info RunnerInfo) (RunnerLock, error) {
	if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
		return nil, fmt.Errorf("create the state directory: %w", err)
	}
	f, err := os.OpenFile(b.RunnerLockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the runner lock file: %w", err)
	}
	for attempt := 0; ; attempt++ {
		err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", b.RunnerLockPath(), err)
		}
		// Held exclusively (a runner), or shared (a status reader's probe)?
		if attempt < 100 && flock(f, syscall.LOCK_SH|syscall.LOCK_NB) == nil {
			_ = flock(f, syscall.LOCK_UN)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		holder := WaitForRunner(func() *RunnerInfo { return readRunnerInfo(f) })
		f.Close()
		return nil, &RunnerLockedError{Lock: "flock on " + b.RunnerLockPath(), Holder: holder}
	}
	if err := writeHolder(f, info); err != nil {
		f.Close()
		return nil, fmt.Errorf("record the runner in %s: %w", b.RunnerLockPath(), err)
	}
	return &localRunnerLock{f: f}, nil
}

// RunnerHolder probes the runner lock file with a shared flock: taken,
// nobody holds the lock; refused, the file names the holder.
func (b *Local) RunnerHolder(ctx context.Context) (*RunnerInfo, error) {
	f, err := os.Open(b.RunnerLockPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open the runner lock file: %w", err)
	}
	defer f.Close()
	err = flock(f, syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		_ = flock(f, syscall.LOCK_UN)
		return nil, nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("probe %s: %w", b.RunnerLockPath(), err)
	}
	if h := WaitForRunner(func() *RunnerInfo { return readRunnerInfo(f) }); h != nil {
		return h, nil
	}
	return &RunnerInfo{}, nil
}

type localRunnerLock struct {
	once sync.Once
	f    *os.File
}

func (l *localRunnerLock) Check(ctx context.Context) error { return nil }

func (l *localRunnerLock) Unlock() error {
	var err error
	l.once.Do(func() {
		// The holder's description goes first, so that nobody reads it
		// as the holder of a lock that is free.
		_ = l.f.Truncate(0)
		err = l.f.Close()
	})
	return err
}

func readRunnerInfo(f *os.File) *RunnerInfo {
	info := readHolder[RunnerInfo](f)
	if info == nil || info.ID == "" {
		return nil
	}
	return info
}

// WaitForRunner gives a runner that has just taken the lock a moment to
// describe itself.
func WaitForRunner(read func() *RunnerInfo) *RunnerInfo {
	for i := 0; ; i++ {
		if h := read(); h != nil || i == 10 {
			return h
		}
		time.Sleep(10 * time.Millisecond)
	}
}
