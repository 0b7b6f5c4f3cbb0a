package main

import (
	"fmt"
	"strings"
	"time"
)

func init() { implement("resync", runResync) }

// runResync marks tables for a full reload at their next run. It changes
// nothing at the source and nothing in the warehouse until the runner
// reloads the table (atomically, so queries see the old rows until then).
//
// A table with historical_load = false starts again without its history
// (a new greatest cursor value, or the stream's current position for a
// cdc table), as its configuration says; -historical loads the whole
// history instead. The default follows the configuration because loading
// the history is what the user turned off, often for its size: it takes
// an explicit flag, never a default (and resync asks nothing, so that it
// runs in scripts).
func runResync(e *env, args []string) int {
	c := findCommand("resync")
	fs := newFlags(e, c)
	var vf varFlags
	vf.register(fs)
	historical := fs.Bool("historical", false, "load the whole history of tables with historical_load = false (default: start them again without it)")
	var lf stateLockFlags
	lf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintln(e.stderr, "Error: resync needs an address: a table (postgres.prod/orders) or a source (every table of it).")
		return exitError
	}
	ctx, stop := commandContext()
	defer stop()
	b, code := e.openState(ctx, &vf)
	if code != proceed {
		return code
	}
	defer b.Close()
	unlock, code := e.lockState(ctx, b, &lf, "resync")
	if code != proceed {
		return code
	}
	defer unlock()
	st, err := b.Read(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	now := time.Now().UTC()
	var marked []string
	var withoutHistory = map[string]bool{}
	for _, addr := range pos {
		srcAddr, table, isTable := strings.Cut(addr, "/")
		src := st.Sources[srcAddr]
		if src == nil || (isTable && src.Tables[table] == nil) {
			fmt.Fprintf(e.stderr, "Error: %s is not recorded in state.%s Run `sluice state list` for the recorded addresses; a table must be applied before it can be resynced.\n",
				addr, closest(addr, stateAddrs(st)))
			return exitError
		}
		for _, name := range src.TableNames() {
			if !isTable || name == table {
				t := src.Tables[name]
				t.ResyncRequestedAt, t.ResyncHistorical = now, *historical && !t.LoadsHistory(false)
				marked = append(marked, srcAddr+"/"+name)
				withoutHistory[srcAddr+"/"+name] = !t.LoadsHistory(true)
			}
		}
	}
	if err := b.Write(ctx, st); err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	for _, addr := range marked {
		if withoutHistory[addr] {
			fmt.Fprintf(e.stdout, "%s will start again without its history at its next run (historical_load = false; -historical loads it).\n", addr)
			continue
		}
		fmt.Fprintf(e.stdout, "%s will be reloaded in full at its next run.\n", addr)
	}
	fmt.Fprintln(e.stdout, "`sluice run` picks this up without a restart; `sluice sync ADDR` (or `sluice run -once`) does it now.")
	return exitOK
}
