// Command sluice manages data-warehouse sources as code: see `sluice help`.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

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
	// SLUICE_MEMPROFILE=FILE writes a heap profile at the heap's peak
	// (checked every 100 ms) and when sluice ends (FILE.end).
	if path := os.Getenv("SLUICE_MEMPROFILE"); path != "" {
		go func() {
			var peak uint64
			var ms runtime.MemStats
			for range time.Tick(100 * time.Millisecond) {
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak+peak/10 {
					peak = ms.HeapAlloc
					if f, err := os.Create(path); err == nil {
						_ = pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
					}
				}
			}
		}()
		code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		path += ".end"
		if f, err := os.Create(path); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
