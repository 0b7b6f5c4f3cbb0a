package layers

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sluice-dev/sluice"

// The packages that must not know a concrete provider or a driver.
var callers = []string{"runner", "apply", "planner"}

// Dependencies none of callers may have, even indirectly.
var forbiddenDeps = []string{
	module + "/providers/", // any concrete provider: providers/postgres, providers/stripe
	"github.com/stripe/stripe-go",
}

// Imports none of callers' own files may have.
var forbiddenImports = []string{
	"github.com/jackc/", // pgx, pgconn, pgtype, pglogrepl
	"github.com/stripe/",
	module + "/providers/",
}

// allowed are the exceptions that remain, by file: the runner's CDC path
// still parses and compares LSNs with pglogrepl until positions are opaque
// values the provider defines. Each must still be needed (the test says
// when one can go).
var allowed = map[string][]string{
	"runner/cdc.go":         {"github.com/jackc/pglogrepl"},
	"runner/cdcsink.go":     {"github.com/jackc/pglogrepl"},
	"runner/cdcrequests.go": {"github.com/jackc/pglogrepl"},
}

type listed struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Deps       []string
}

// list runs go list -json on the packages (not their tests).
func list(t *testing.T, pkgs ...string) []listed {
	t.Helper()
	args := []string{"list", "-json=ImportPath,Dir,GoFiles,Deps"}
	for _, p := range pkgs {
		args = append(args, module+"/"+p)
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var res []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		res = append(res, p)
	}
	return res
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// TestCallersKnowNoConcreteProvider: runner, apply and planner depend on
// no concrete provider and no Stripe client, even indirectly.
func TestCallersKnowNoConcreteProvider(t *testing.T) {
	for _, p := range list(t, callers...) {
		for _, d := range p.Deps {
			if hasPrefix(d, forbiddenDeps) {
				t.Errorf("%s depends on %s: use the capability interfaces of package providers (and providers.Register for what a source type offers without a source)", p.ImportPath, d)
			}
		}
	}
}

// TestCallersImportNoDriver: the files of runner, apply and planner import
// no driver (pgx, pgconn, pglogrepl), except the listed CDC files, which
// still handle LSNs.
func TestCallersImportNoDriver(t *testing.T) {
	used := map[string]bool{}
	for _, p := range list(t, callers...) {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		for _, name := range p.GoFiles {
			file := rel + "/" + name
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, spec := range f.Imports {
				path, _ := strconv.Unquote(spec.Path.Value)
				if !hasPrefix(path, forbiddenImports) {
					continue
				}
				ok := false
				for _, a := range allowed[file] {
					if path == a {
						ok, used[file+" "+a] = true, true
					}
				}
				if !ok {
					t.Errorf("%s imports %s: reach sources through the interfaces of package providers", file, path)
				}
			}
		}
	}
	var stale []string
	for file, paths := range allowed {
		for _, a := range paths {
			if !used[file+" "+a] {
				stale = append(stale, file+" "+a)
			}
		}
	}
	sort.Strings(stale)
	for _, s := range stale {
		t.Errorf("the exception %s is no longer needed: remove it from allowed", s)
	}
}
