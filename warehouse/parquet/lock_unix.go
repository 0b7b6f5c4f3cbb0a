//go:build unix

package parquet

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// tableLock is an exclusive lock on a table directory, held by a writer
// from Begin to Commit or Abort, and briefly by the recovery that removes
// files no commit owns. It is a flock(2) on _sluice/lock, so it is released
// when the process dies, and two processes (or two Tables in one process)
// never write a table at once.
type tableLock struct{ f *os.File }

var errLocked = errors.New("locked")

func tryLock(path string) (*tableLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the table lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("locking the table: %w", err)
	}
	return &tableLock{f: f}, nil
}

func (l *tableLock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the descriptor releases the flock
		l.f = nil
	}
}
