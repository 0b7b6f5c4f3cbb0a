package layers

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
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
	"github.com/jackc/", // pgx, pgconn, pgtype, pglogrepl (the postgres state backend is state/pgstate)
}

// Imports none of callers' own files may have.
var forbiddenImports = []string{
	"github.com/jackc/", // pgx, pgconn, pgtype, pglogrepl
	"github.com/stripe/",
	module + "/providers/",
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
// no concrete provider, no Stripe client and no PostgreSQL driver, even
// indirectly (through package state, say).
func TestCallersKnowNoConcreteProvider(t *testing.T) {
	for _, p := range list(t, callers...) {
		for _, d := range p.Deps {
			if hasPrefix(d, forbiddenDeps) {
				t.Errorf("%s depends on %s: use the capability interfaces of package providers (and providers.Register for what a source type offers without a source); "+
					"a backend with a driver registers itself (state.RegisterBackend) from a package only commands import", p.ImportPath, d)
			}
		}
	}
}

// TestWarehousesImportNoProvider: no package under warehouse/, tests
// included, imports a provider, even indirectly: what the PostgreSQL
// source and warehouse share is internal/pg, and round trips from a
// source to a warehouse are tested in internal/roundtrip.
func TestWarehousesImportNoProvider(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "-json=ImportPath,Imports", module+"/warehouse/...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		if strings.HasPrefix(p.ImportPath, module+"/providers") {
			continue // reached only through the import reported below
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/providers") {
				t.Errorf("%s imports %s, so a package under warehouse/ depends on a provider: share code through internal/pg, test round trips in internal/roundtrip", p.ImportPath, imp)
			}
		}
	}
	if n == 0 {
		t.Fatal("go list found no package under warehouse/")
	}
}

// TestCallersImportNoDriver: no file of runner, apply or planner imports
// a driver (pgx, pgconn, pgtype, pglogrepl) or stripe-go: positions are
// opaque values the provider decodes (providers.StreamPosition), errors
// say themselves whether to retry.
func TestCallersImportNoDriver(t *testing.T) {
	for _, p := range list(t, callers...) {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, spec := range f.Imports {
				path, _ := strconv.Unquote(spec.Path.Value)
				if hasPrefix(path, forbiddenImports) {
					t.Errorf("%s/%s imports %s: reach sources through the interfaces of package providers", rel, name, path)
				}
			}
		}
	}
}
