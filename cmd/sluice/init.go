package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/sluice-dev/sluice/providers/postgres"
)

func init() { implement("init", runInit) }

// initSourceName is config's rule for source names.
var initSourceName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func runInit(e *env, args []string) int {
	c := findCommand("init")
	fset := newFlags(e, c)
	source := fset.String("source", "", "the `ADDRESS` of the source to declare, postgres.NAME")
	connURL := fset.String("url", "", "the `URL` (or libpq connection string) of the database to inspect")
	out := fset.String("out", "", "the `FILE` to write; default NAME.hcl in the configuration directory")
	schema := fset.String("schema", "public", "the `SCHEMA` whose tables to declare (default public; \"\" for every schema)")
	pos, code := parseArgs(e, c, fset, args)
	if code != proceed {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "Error: init takes no arguments (got %q); use -source=postgres.NAME -url=URL.\n", pos[0])
		return exitError
	}
	typ, name, _ := strings.Cut(*source, ".")
	switch {
	case *source == "":
		fmt.Fprintln(e.stderr, "Error: init needs -source=postgres.NAME, the address of the source to declare.")
		return exitError
	case typ != "postgres":
		fmt.Fprintf(e.stderr, "Error: init writes PostgreSQL sources (-source=postgres.NAME); %q is not one.\n", *source)
		return exitError
	case !initSourceName.MatchString(name):
		fmt.Fprintf(e.stderr, "Error: %q is not a valid source name: start with a letter or underscore, then letters, digits, underscores and dashes.\n", name)
		return exitError
	case *connURL == "":
		fmt.Fprintln(e.stderr, "Error: init needs -url=URL, the database to inspect, such as -url=postgres://user@host/db.")
		return exitError
	}
	path := *out
	if path == "" {
		path = name + ".hcl"
	}
	path = e.path(path)
	// Checked before connecting, so that nothing is inspected for nothing;
	// O_EXCL below closes the gap.
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintf(e.stderr, "Error: %s already exists; init does not overwrite files. Remove it or choose another -out.\n", path)
		return exitError
	}

	ctx, cancel := commandContext()
	defer cancel()
	res, err := postgres.Init(ctx, postgres.InitOptions{Name: name, URL: *connURL, Schema: *schema, Conn: []postgres.Option{postgres.WithConfigDir(e.dir)}})
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		fmt.Fprintf(e.stderr, "Error: %s already exists; init does not overwrite files. Remove it or choose another -out.\n", path)
		return exitError
	}
	if err == nil {
		_, err = f.Write(res.HCL)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: writing %s: %s\n", path, err)
		return exitError
	}

	fmt.Fprintf(e.stdout, "Wrote %s: source postgres.%s with %d table(s), all disabled.\n", path, name, res.Tables)
	if len(res.Skipped) > 0 {
		fmt.Fprintf(e.stdout, "Left out (their warehouse table names collide with another's): %s.\n", strings.Join(res.Skipped, ", "))
	}
	if res.SecretVariable != "" {
		what := "the password"
		if strings.HasSuffix(res.SecretVariable, "_url") {
			what = "the connection string"
		}
		fmt.Fprintf(e.stdout, "The file reads %s from the sensitive variable %s: export SLUICE_VAR_%s before running sluice (it is not written to the file).\n",
			what, res.SecretVariable, res.SecretVariable)
	}
	fmt.Fprintln(e.stdout, "Next: set enabled = true on the tables to sync, then run `sluice validate` and `sluice plan`.")
	return exitOK
}
