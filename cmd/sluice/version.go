package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "v0.1.0-dev"

func init() { implement("version", runVersion) }

func runVersion(e *env, args []string) int {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && version == "v0.1.0-dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	fmt.Fprintf(e.stdout, "sluice %s (%s %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
