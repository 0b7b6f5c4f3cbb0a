package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// watchdogScript waits for the process that started it to go away, then
// stops the cluster's server and removes its directory ($1).
//
// Its stdin is the read end of a pipe whose only write end this process
// holds (close-on-exec, so no other child inherits it). Nothing is written;
// read returns EOF when this process exits in any way (return, panic,
// SIGKILL) or when Stop closes the pipe after cleaning up itself, in which
// case the directory is gone and there is nothing left to do.
//
// The postmaster's pid comes from postmaster.pid at that moment, so a
// Restart needs no bookkeeping; the command line check keeps a stale pid
// that now belongs to another process from being signalled. SIGQUIT is an
// immediate shutdown: the postmaster SIGQUITs its children and exits.
const watchdogScript = `
while read -r _; do :; done
dir=$1
pidfile="$dir/data/postmaster.pid"
if [ -f "$pidfile" ]; then
	pid=$(head -n 1 "$pidfile" 2>/dev/null)
	case "$pid" in ''|*[!0-9]*) pid= ;; esac
	if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then
		case "$(tr '\000' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in
		*"$dir/data"*) ;;
		*) pid= ;;
		esac
	fi
	if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
	fi
fi
rm -rf "$dir"
`

// watchdog is the cleanup process of one cluster; see watchdogScript.
type watchdog struct {
	pipe *os.File      // write end of the watchdog's stdin
	done chan struct{} // closed when the watchdog has exited
}

// startWatchdog starts the watchdog of the cluster directory dir.
func startWatchdog(dir string) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pgtest: watchdog pipe: %w", err)
	}
	defer r.Close() // the watchdog has its own copy as stdin
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "pgtest-watchdog", dir)
	cmd.Stdin = r
	// Stdout and stderr stay /dev/null: were they go test's pipe, go test
	// would wait for the watchdog to exit. Its own process group keeps ^C
	// in a terminal from killing it before it has cleaned up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("pgtest: start watchdog: %w", err)
	}
	wd := &watchdog{pipe: w, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(wd.done)
	}()
	return wd, nil
}

// close ends the watchdog: it reads EOF, finds the directory removed (or
// removes what is left) and exits.
func (wd *watchdog) close() error {
	if wd == nil { // a Cluster not made by Start
		return nil
	}
	if err := wd.pipe.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("pgtest: close watchdog pipe: %w", err)
	}
	select {
	case <-wd.done:
		return nil
	case <-time.After(20 * time.Second):
		return errors.New("pgtest: watchdog did not exit within 20s")
	}
}
