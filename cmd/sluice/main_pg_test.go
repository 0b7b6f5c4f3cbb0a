package main

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// TestMain starts one throwaway PostgreSQL for the package's end-to-end
// tests; pgtest.NewDB gives each test its own database.
func TestMain(m *testing.M) { pgtest.Main(m) }
