// Package s3test runs Versity's S3 gateway (versitygw, posix backend) for
// tests: a real S3 server on a loopback port in front of a temporary
// directory, never an S3 mock.
//
// Tests use one server per test process (package), started on first use,
// and a fresh bucket per test:
//
//	func TestSomething(t *testing.T) {
//		srv, bucket := s3test.NewBucket(t) // removed again when the test ends
//		... endpoint srv.URL, region srv.Region, keys srv.AccessKey / srv.SecretKey,
//		    path-style addressing ...
//	}
//
// The server dies with the test process (Pdeathsig), and a watchdog removes
// its directory then, so nothing is left behind after a panic, a timeout or
// SIGKILL.
//
// The binary is $SLUICE_TEST_VERSITYGW, else versitygw on $PATH, else where
// go install puts it. When it is missing, s3test installs it with
// scripts/ensure-versitygw.sh; when CI is set it fails instead, saying what
// to run (make test runs the script first). It never skips.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The root account of every server s3test starts. Any region is accepted;
// Region is what clients should sign with.
const (
	AccessKey = "sluice-test-access"
	SecretKey = "sluice-test-secret"
	Region    = "us-east-1"
)

// Server is a running versitygw. Its buckets are the subdirectories of
// Dir.
type Server struct {
	// URL is the endpoint, http://127.0.0.1:PORT; clients use path-style
	// addressing.
	URL                          string
	AccessKey, SecretKey, Region string

	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	wd     *os.File // write end of the watchdog's stdin

	stopOnce sync.Once
	stopErr  error
}

// Binary returns the path of the versitygw binary, installing it with
// scripts/ensure-versitygw.sh when it is missing (unless CI is set: then
// it returns an error saying what to run).
func Binary() (string, error) {
	if b := os.Getenv("SLUICE_TEST_VERSITYGW"); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("s3test: SLUICE_TEST_VERSITYGW=%s: %w", b, err)
		}
		return b, nil
	}
	if b, err := exec.LookPath("versitygw"); err == nil {
		return b, nil
	}
	for _, dir := range goBinDirs() {
		b := filepath.Join(dir, "versitygw")
		if st, err := os.Stat(b); err == nil && !st.IsDir() {
			return b, nil
		}
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "ensure-versitygw.sh")
	if os.Getenv("CI") != "" {
		return "", fmt.Errorf("s3test: versitygw (Versity's S3 gateway) is not installed: run `bash %s` (make test does), or set SLUICE_TEST_VERSITYGW to its path", script)
	}
	out, err := exec.Command("bash", script).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("s3test: installing versitygw with %s: %v\n%s", script, err, ee.Stderr)
		}
		return "", fmt.Errorf("s3test: installing versitygw with %s: %v", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// goBinDirs are where go install puts binaries: $GOBIN, else the first
// $GOPATH entry's bin (default ~/go/bin).
func goBinDirs() []string {
	if d := os.Getenv("GOBIN"); d != "" {
		return []string{d}
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		gopath = filepath.Join(home, "go")
	}
	return []string{filepath.Join(filepath.SplitList(gopath)[0], "bin")}
}

// Start starts a versitygw on a free port of 127.0.0.1 over a new
// temporary directory and waits until it accepts connections. The caller
// calls Stop; should the process die first, the server dies with it and
// a watchdog removes the directory.
func Start(ctx context.Context) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "s3test-")
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	s := &Server{AccessKey: AccessKey, SecretKey: SecretKey, Region: Region, dir: dir}
	if err := s.startWatchdog(); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	const attempts = 5
	for i := 1; ; i++ {
		err := s.start(ctx, bin)
		if err == nil {
			return s, nil
		}
		if i == attempts || ctx.Err() != nil {
			return nil, errors.Join(err, s.Stop())
		}
	}
}

// startWatchdog starts a shell that waits until this process is gone (EOF
// on its stdin, whose only write end this process holds) and then removes
// the directory. The server itself dies through Pdeathsig.
func (s *Server) startWatchdog() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("s3test: watchdog pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", `while read -r _; do :; done; sleep 1; rm -rf "$1"`, "s3test-watchdog", s.dir)
	cmd.Stdin = r
	// Its own process group keeps ^C from killing it before it cleaned up;
	// stdout/stderr stay /dev/null so go test does not wait for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("s3test: start watchdog: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	s.wd = w
	return nil
}

// start runs the server on a port that was free a moment ago and waits
// for it to listen.
func (s *Server) start(ctx context.Context, bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(os.TempDir(), fmt.Sprintf("s3test-%d-%d.log", os.Getpid(), port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("s3test: %w", err)
	}
	defer os.Remove(logPath)
	defer logFile.Close()
	cmd := exec.Command(bin, "--quiet", "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region, "--port", addr, "posix", s.dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		// Pdeathsig fires when the thread that forked exits: this one
		// lives as long as the server.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("s3test: start %s: %w", bin, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			s.URL, s.cmd, s.exited = "http://"+addr, cmd, exited
			return nil
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("s3test: versitygw exited before listening on %s:\n%s", addr, out)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("s3test: waiting for versitygw: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("s3test: versitygw did not listen on %s within 30s:\n%s", addr, out)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("s3test: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Dir is the server's directory: bucket b's object k is the file
// Dir()/b/k.
func (s *Server) Dir() string { return s.dir }

// Stop stops the server and removes its directory. Later calls return the
// first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.cmd != nil {
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		s.stopErr = os.RemoveAll(s.dir)
		if s.wd != nil {
			s.wd.Close()
		}
	})
	return s.stopErr
}

var bucketSeq atomic.Int64

// NewBucket creates a bucket with a fresh name on s (a directory, as the
// posix backend keeps buckets) and returns its name; it is removed with
// its objects when the test and its subtests have finished.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := bucketName(t.Name(), bucketSeq.Add(1))
	path := filepath.Join(s.dir, name)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatalf("s3test: creating bucket %s: %v", name, err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(path) })
	return name
}

// bucketName makes a valid bucket name (3-63 of a-z, 0-9, '-', starting
// and ending with a letter or digit) from a test name.
func bucketName(testName string, seq int64) string {
	suffix := "-" + strconv.FormatInt(seq, 10)
	var b strings.Builder
	b.WriteString("t")
	for _, r := range strings.ToLower(testName) {
		if b.Len()+len(suffix) >= 63 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-") + suffix
}

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared returns the test process's server, starting it on first use. It
// lives until the process exits.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.srv, shared.err = Start(ctx)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// NewBucket creates a fresh bucket on the process's shared server (see
// Shared) and returns the server and the bucket's name.
func NewBucket(t testing.TB) (*Server, string) {
	t.Helper()
	s := Shared(t)
	return s, s.NewBucket(t)
}
