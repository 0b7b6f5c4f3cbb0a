//go:build !unix

package parquet

import (
	"errors"
	"fmt"
	"os"
)

// tableLock is an exclusive lock on a table directory. Without flock(2) it
// is a file created exclusively, removed on unlock; a process that dies
// holding it leaves it behind, and the table reports itself locked until
// the file _sluice/lock is removed by hand.
type tableLock struct{ path string }

var errLocked = errors.New("locked")

func tryLock(path string) (*tableLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, errLocked
	}
	if err != nil {
		return nil, fmt.Errorf("locking the table: %w", err)
	}
	f.Close()
	return &tableLock{path: path}, nil
}

func (l *tableLock) unlock() {
	if l != nil && l.path != "" {
		os.Remove(l.path)
		l.path = ""
	}
}
