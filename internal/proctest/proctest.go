// Package proctest starts the running test binary again as a helper
// process, for tests that need a second process (a lock holder that can
// exit or crash). The helper's TestMain tells itself apart by the
// environment the test gives it.
package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// readyTimeout bounds the wait for the helper's first line; a helper that
// hangs fails the test instead of stalling it.
const readyTimeout = 20 * time.Second

// Proc is a helper process started by Start.
type Proc struct {
	// Said is the helper's first line of stdout after the prefix given to
	// Start, trimmed of white space.
	Said string

	cmd   *exec.Cmd
	stdin io.WriteCloser

	once    sync.Once
	waitErr error
}

// Start runs this test binary again, running no tests, with env added to
// the environment, and waits until the process writes a first line to
// stdout that starts with prefix. The process is killed when the test
// ends if it still runs; a first line without prefix, or none within 20s,
// fails the test with the process's stderr.
func Start(t testing.TB, prefix string, env ...string) *Proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{cmd: cmd, stdin: stdin}
	t.Cleanup(p.Kill)
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		said, ok := strings.CutPrefix(strings.TrimSpace(s), prefix)
		if !ok {
			p.Kill()
			t.Fatalf("helper process did not say %q: %q, stderr %q", prefix, s, stderr.String())
		}
		p.Said = said
	case <-time.After(readyTimeout):
		p.Kill()
		t.Fatalf("helper process did not say %q within %v; stderr %q", prefix, readyTimeout, stderr.String())
	}
	return p
}

// Pid is the helper's process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Release closes the helper's stdin, which tells it to finish, and waits
// for it to exit.
func (p *Proc) Release() error {
	p.stdin.Close()
	if err := p.wait(); err != nil {
		return fmt.Errorf("helper process: %w", err)
	}
	return nil
}

// Kill ends the helper with SIGKILL, as a crash would: it runs no code.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	p.wait()
}

func (p *Proc) wait() error {
	p.once.Do(func() { p.waitErr = p.cmd.Wait() })
	return p.waitErr
}

// Hold is the helper side of Start: it runs acquire (taking a lock, say),
// writes prefix and what acquire said as its first line of stdout, and
// holds what it acquired until stdin closes (Release), then lets it go.
// It returns the helper's exit status, for os.Exit: 1, with the error on
// stderr, when acquire or release fails.
func Hold(prefix string, acquire func() (said string, release func() error, err error)) int {
	said, release, err := acquire()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s%s\n", prefix, said)
	io.Copy(io.Discard, os.Stdin)
	if err := release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
