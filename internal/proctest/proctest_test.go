package proctest

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

const helperEnv = "SLUICE_PROCTEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "ok":
		os.Exit(Hold("ready ", func() (string, func() error, error) {
			return fmt.Sprint(os.Getpid()), func() error { return nil }, nil
		}))
	case "release fails":
		os.Exit(Hold("ready ", func() (string, func() error, error) {
			return "x", func() error { return errors.New("cannot release") }, nil
		}))
	}
	os.Exit(m.Run())
}

func TestStartRelease(t *testing.T) {
	p := Start(t, "ready ", helperEnv+"=ok")
	if want := fmt.Sprint(p.Pid()); p.Said != want {
		t.Errorf("Said %q, want the helper's pid %s", p.Said, want)
	}
	if err := p.Release(); err != nil {
		t.Errorf("Release: %v", err)
	}
}

func TestKill(t *testing.T) {
	p := Start(t, "ready ", helperEnv+"=ok")
	p.Kill()
	if err := p.Release(); err == nil {
		t.Error("Release after Kill: no error, want the killed process's exit status")
	}
}

func TestReleaseFails(t *testing.T) {
	p := Start(t, "ready ", helperEnv+"=release fails")
	if err := p.Release(); err == nil {
		t.Error("Release: no error, want the exit status of a helper whose release failed")
	}
}
