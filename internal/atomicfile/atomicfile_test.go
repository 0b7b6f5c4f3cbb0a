package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var errInjected = errors.New("injected failure")

// steps are the points of a write, in order, at which the hook is called.
var steps = []string{"create", "write", "sync", "rename", "syncdir"}

// setHook installs h for the test.
func setHook(t *testing.T, h func(step, name string) error) {
	t.Helper()
	hook = h
	t.Cleanup(func() { hook = nil })
}

// prepare makes dir/name with the old content and mode 0600.
func prepare(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name())
	}
	return ns
}

func content(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A failure at any step leaves the old content before the rename and the
// new one after it, and never a temporary file.
func TestWriteFailsAtEachStep(t *testing.T) {
	for i, step := range steps {
		t.Run(step, func(t *testing.T) {
			dir, path := prepare(t)
			setHook(t, func(s, _ string) error {
				if s == step {
					return errInjected
				}
				return nil
			})
			err := WriteFile(path, []byte("new\n"), 0o640)
			if !errors.Is(err, errInjected) {
				t.Fatalf("WriteFile: %v, want the injected failure", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			want, wantMode := "old\n", fs.FileMode(0o600)
			if i > slices.Index(steps, "rename") {
				want, wantMode = "new\n", 0o640
			}
			if got := content(t, path); got != want {
				t.Errorf("content %q, want %q", got, want)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != wantMode {
				t.Errorf("mode %v (%v), want %v", fi.Mode().Perm(), err, wantMode)
			}
			if diff := cmp.Diff([]string{"state.json"}, names(t, dir)); diff != "" {
				t.Errorf("files left (-want +got):\n%s", diff)
			}
		})
	}
}

// A writer that fails leaves the target as it was and its error is
// returned.
func TestWriteFillFails(t *testing.T) {
	dir, path := prepare(t)
	err := Write(path, 0o600, func(w io.Writer) error {
		if _, err := io.WriteString(w, "half"); err != nil {
			return err
		}
		return errInjected
	})
	if !errors.Is(err, errInjected) {
		t.Fatalf("Write: %v, want the writer's error", err)
	}
	if got := content(t, path); got != "old\n" {
		t.Errorf("content %q, want the old one", got)
	}
	if diff := cmp.Diff([]string{"state.json"}, names(t, dir)); diff != "" {
		t.Errorf("files left (-want +got):\n%s", diff)
	}
}

// The steps run in order, the file is synced before the rename and the
// directory after it; NoSync skips both fsyncs.
func TestStepsAndDirectorySync(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want []string
	}{
		{"durable", nil, []string{"create", "write", "sync", "rename", "syncdir"}},
		{"no sync", []Option{NoSync(true)}, []string{"create", "write", "rename"}},
		{"no sync off", []Option{NoSync(false)}, []string{"create", "write", "sync", "rename", "syncdir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := prepare(t)
			var got []string
			setHook(t, func(step, name string) error {
				got = append(got, step)
				want := dir
				if step != "syncdir" {
					want = filepath.Dir(name)
					if !TempName(filepath.Base(name), "state.json") {
						t.Errorf("%s: temporary file %s is not one TempName recognises", step, name)
					}
				}
				if want != dir {
					t.Errorf("%s on %s, want one in %s", step, name, dir)
				}
				return nil
			})
			if err := WriteFile(path, []byte("new\n"), 0o600, tc.opts...); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if c := content(t, path); c != "new\n" {
				t.Errorf("content %q", c)
			}
		})
	}
}

// The new file has exactly the mode asked for, whatever the umask and the
// old file's mode.
func TestMode(t *testing.T) {
	for _, perm := range []fs.FileMode{0o600, 0o640, 0o644, 0o666, 0o755} {
		_, path := prepare(t)
		if err := WriteFile(path, []byte("new\n"), perm); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), perm)
		}
	}
}

// A caller that cleans up its own prefix finds the temporary file there.
func TestTempPrefix(t *testing.T) {
	dir, path := prepare(t)
	var tmp string
	setHook(t, func(step, name string) error {
		if step == "rename" {
			tmp = filepath.Base(name)
		}
		return nil
	})
	if err := WriteFile(path, []byte("new\n"), 0o600, TempPrefix("manifest.json.tmp-")); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tmp, "manifest.json.tmp-") {
		t.Errorf("temporary file %s, want one named manifest.json.tmp-*", tmp)
	}
	if diff := cmp.Diff([]string{"state.json"}, names(t, dir)); diff != "" {
		t.Errorf("files left (-want +got):\n%s", diff)
	}
}

func TestCreateFile(t *testing.T) {
	dir, path := prepare(t)
	var synced bool
	setHook(t, func(step, name string) error {
		synced = synced || step == "syncdir" && name == dir
		return nil
	})
	err := CreateFile(path, []byte("new\n"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateFile over an existing file: %v, want fs.ErrExist", err)
	}
	if c := content(t, path); c != "old\n" {
		t.Errorf("existing file changed to %q", c)
	}
	if !synced {
		t.Error("the directory was not synced when the file existed")
	}
	fresh := filepath.Join(dir, "key")
	synced = false
	if err := CreateFile(fresh, []byte("k\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if c := content(t, fresh); c != "k\n" {
		t.Errorf("created %q", c)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if !synced {
		t.Error("the directory was not synced")
	}
	if diff := cmp.Diff([]string{"key", "state.json"}, names(t, dir)); diff != "" {
		t.Errorf("files left (-want +got):\n%s", diff)
	}
}

const crashEnv = "ATOMICFILE_CRASH_AT"

// TestCrashChild is the child process of TestCrashAtEachStep: it replaces
// the file named by its environment and exits abruptly at the step named,
// skipping every cleanup, as a killed process would.
func TestCrashChild(t *testing.T) {
	step, path, ok := strings.Cut(os.Getenv(crashEnv), ":")
	if !ok {
		return // only TestCrashAtEachStep's child process has work here
	}
	hook = func(s, _ string) error {
		if s == step {
			os.Exit(7)
		}
		return nil
	}
	if err := WriteFile(path, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Exit(0)
}

// A process killed at any step leaves the old content or the new one,
// whole, and at most a temporary file that TempName recognises.
func TestCrashAtEachStep(t *testing.T) {
	for _, step := range append(steps, "none") {
		t.Run(step, func(t *testing.T) {
			dir, path := prepare(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnv+"="+step+":"+path)
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			wantCode := 7
			if step == "none" {
				wantCode = 0
			}
			if code != wantCode {
				t.Fatalf("child exited %d, want %d:\n%s", code, wantCode, out)
			}
			got := content(t, path)
			switch step {
			case "syncdir", "none":
				if got != "new\n" {
					t.Errorf("content %q after the rename, want the new one", got)
				}
			default:
				if got != "old\n" {
					t.Errorf("content %q before the rename, want the old one", got)
				}
			}
			for _, n := range names(t, dir) {
				if n != "state.json" && !TempName(n, "state.json") {
					t.Errorf("left %s, which TempName does not recognise", n)
				}
			}
		})
	}
}
