package main

import (
	"os"
	"testing"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// TestMain starts one throwaway PostgreSQL for the package's end-to-end
// tests; pgtest.NewDB gives each test its own database.
// With cliEnv set, the test binary is sluice itself (startSluice), so that
// tests can kill a real runner process.
func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	pgtest.Main(m)
}

const cliEnv = "SLUICE_TEST_AS_CLI"
