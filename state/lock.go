package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"
)

// ErrNoLock marks a ForceUnlock whose ID is not the current lock's (or
// when nothing is locked).
var ErrNoLock = errors.New("no such state lock")

// NewLockInfo describes a lock this process is about to take for an
// operation ("apply", "state rm", ...): a fresh ID, user@host, now.
func NewLockInfo(operation string) LockInfo {
	return LockInfo{ID: NewLockID(), Operation: operation, Who: WhoAmI(), Created: time.Now().UTC().Truncate(time.Second)}
}

// Complete fills what the caller left out, so that a holder can always be
// named.
func (l LockInfo) Complete() LockInfo {
	if l.ID == "" {
		l.ID = NewLockID()
	}
	if l.Who == "" {
		l.Who = WhoAmI()
	}
	if l.Operation == "" {
		l.Operation = "unknown operation"
	}
	if l.Created.IsZero() {
		l.Created = time.Now().UTC().Truncate(time.Second)
	}
	l.PID = os.Getpid()
	return l
}

// WhoAmI is user@host, as Terraform shows lock holders.
func WhoAmI() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return name + "@" + host
}

// Backoff bounds between lock attempts: short at first, so that a lock
// released a moment later is taken quickly, and never so long that a
// waiter idles long after the holder is done.
const (
	lockRetryFirst = 20 * time.Millisecond
	lockRetryMax   = 500 * time.Millisecond
)

// RetryLock calls try until it succeeds, fails with something other than
// a *LockedError, or timeout has passed (timeout <= 0: once).
func RetryLock(ctx context.Context, timeout time.Duration, try func() error) error {
	deadline := time.Now().Add(timeout)
	delay := lockRetryFirst
	for {
		err := try()
		var locked *LockedError
		if err == nil || !errors.As(err, &locked) || timeout <= 0 {
			return err
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return fmt.Errorf("gave up waiting for the state lock after %s: %w", timeout, err)
		}
		timer := time.NewTimer(min(delay, remaining))
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("stopped waiting for the state lock (%w): %w", ctx.Err(), err)
		case <-timer.C:
		}
		delay = min(2*delay, lockRetryMax)
	}
}

// WaitForHolder reads the holder's LockInfo, giving a holder that has just
// taken the lock a moment to record it: the lock and its description
// cannot be written in one step.
func WaitForHolder(read func() *LockInfo) *LockInfo {
	for i := 0; ; i++ {
		if h := read(); h != nil || i == 5 {
			return h
		}
		time.Sleep(10 * time.Millisecond)
	}
}
