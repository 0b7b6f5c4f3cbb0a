package stripe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/config"
)

// stripe-mock, the package's stateless Stripe API stand-in: one process for
// the whole package, started on first use (fuzz workers, which do not use
// it, never start it) and stopped by TestMain.
var mock struct {
	once sync.Once
	url  string
	err  error
	proc *os.Process
	done chan struct{}
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopStripeMock()
	os.Exit(code)
}

// stripeMockURL returns the base URL of the package's stripe-mock.
func stripeMockURL(t testing.TB) string {
	t.Helper()
	mock.once.Do(func() { mock.url, mock.err = startStripeMock() })
	if mock.err != nil {
		t.Fatal(mock.err)
	}
	return mock.url
}

// stripeMockBin installs stripe-mock when it is missing (or another version)
// and returns its path.
func stripeMockBin() (string, error) {
	out, err := exec.Command("bash", "../../scripts/ensure-stripe-mock.sh").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("scripts/ensure-stripe-mock.sh: %v\n%s", err, ee.Stderr)
		}
		return "", fmt.Errorf("scripts/ensure-stripe-mock.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

func startStripeMock() (string, error) {
	bin, err := stripeMockBin()
	if err != nil {
		return "", err
	}
	// Both listeners on system-chosen loopback ports: HTTPS cannot be
	// turned off with -http-addr, and its default port would collide
	// between packages tested in parallel.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = cmd.Stdout
	// If the test binary dies, stripe-mock goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	mock.done = make(chan struct{})
	go func() {
		// Pdeathsig fires when the forking thread exits: keep it alive.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(mock.done)
			return
		}
		mock.proc = cmd.Process
		started <- nil
		_ = cmd.Wait()
		close(mock.done)
	}()
	if err := <-started; err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	addr := make(chan string, 1)
	var log strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			log.WriteString(line + "\n")
			logMu.Unlock()
			if a, ok := strings.CutPrefix(line, "Listening for HTTP at address: "); ok {
				addr <- strings.TrimSpace(a)
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case a := <-addr:
		return "http://" + a, nil
	case <-mock.done:
	case <-time.After(30 * time.Second):
		stopStripeMock()
	}
	logMu.Lock()
	defer logMu.Unlock()
	return "", fmt.Errorf("stripe-mock did not start listening:\n%s", log.String())
}

func stopStripeMock() {
	if mock.proc == nil {
		return
	}
	_ = mock.proc.Signal(syscall.SIGTERM)
	select {
	case <-mock.done:
	case <-time.After(5 * time.Second):
		_ = mock.proc.Kill()
		<-mock.done
	}
	mock.proc = nil
}

// testKey is a test-mode key stripe-mock accepts. It is distinctive so that
// tests can tell whether it leaked into an error.
const testKey = "sk_test_51SluiceTestKeyDoNotLeak0123456789"

// source returns a Stripe source configuration for base.
func source(base, key string) *config.Source {
	return &config.Source{
		Type:   "stripe",
		Name:   "billing",
		Prefix: "stripe",
		Stripe: &config.Stripe{APIKey: key, APIBase: base},
	}
}

// newProvider returns a provider of a source at base, with the key.
func newProvider(t testing.TB, base, key string) *Provider {
	t.Helper()
	p, err := New(source(base, key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// fastRetries makes the provider's retries wait for nothing, recording the
// waits asked for.
func fastRetries(p *Provider) *[]time.Duration {
	var mu sync.Mutex
	waits := &[]time.Duration{}
	p.transport.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		*waits = append(*waits, d)
		return ctx.Err()
	}
	return waits
}
