// Command sluice manages data-warehouse sources as code: see `sluice help`.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	// The state backends a configuration may name besides local register
	// themselves with package state.
	_ "github.com/sluice-dev/sluice/state/pgstate"
)

func main() {
	// SLUICE_CPUPROFILE=FILE writes a CPU profile, for performance reports.
	if path := os.Getenv("SLUICE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
		fmt.Fprintf(os.Stderr, "Warning: cannot write the CPU profile to %s\n", path)
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
