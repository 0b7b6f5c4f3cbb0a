package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/state"
)

func init() { implement("state", runState) }

// The subcommands of `sluice state`, for their help and flag errors.
var (
	stateListCmd = &command{name: "state list", synopsis: "List the recorded sources and tables, one address per line", usage: "[-var=K=V]... [-var-file=F]..."}
	stateRmCmd   = &command{name: "state rm", synopsis: "Forget recorded sources or tables; nothing is changed at the source", usage: "[-dry-run] [-lock=false] [-lock-timeout=DUR] ADDR..."}
)

func runState(e *env, args []string) int {
	c := findCommand("state")
	if len(args) == 0 {
		fmt.Fprintf(e.stderr, "Error: state needs a subcommand: `sluice state list` or `sluice state rm ADDR`.\n\n")
		writeCommandHelp(e.stderr, c, nil)
		return exitError
	}
	switch args[0] {
	case "list":
		return runStateList(e, args[1:])
	case "rm":
		return runStateRm(e, args[1:])
	case "-h", "-help", "--help":
		writeCommandHelp(e.stdout, c, nil)
		fmt.Fprintf(e.stdout, "\nSubcommands:\n  %-13s %s\n  %-13s %s\n", "list", stateListCmd.synopsis, "rm ADDR...", stateRmCmd.synopsis)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "Error: unknown subcommand `state %s`.%s Use `sluice state list` or `sluice state rm ADDR`.\n", args[0], closest(args[0], []string{"list", "rm"}))
	return exitError
}

func runStateList(e *env, args []string) int {
	fs := newFlags(e, stateListCmd)
	var vf varFlags
	vf.register(fs)
	pos, code := parseArgs(e, stateListCmd, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "Error: state list takes no arguments.\n")
		return exitError
	}
	ctx, stop := commandContext()
	defer stop()
	b, st, code := e.readState(ctx, &vf)
	if code != proceed {
		return code
	}
	defer b.Close()
	for _, addr := range stateAddrs(st) {
		fmt.Fprintln(e.stdout, addr)
	}
	return exitOK
}

// stateAddrs lists every recorded address: each source followed by its
// tables, sources and tables sorted.
func stateAddrs(st *state.State) []string {
	var out []string
	for _, addr := range st.SourceAddrs() {
		out = append(out, addr)
		for _, t := range st.Sources[addr].TableNames() {
			out = append(out, addr+"/"+t)
		}
	}
	return out
}

func runStateRm(e *env, args []string) int {
	fs := newFlags(e, stateRmCmd)
	dryRun := fs.Bool("dry-run", false, "show what would be removed, and change nothing")
	var lf stateLockFlags
	lf.register(fs)
	var vf varFlags
	vf.register(fs)
	addrs, code := parseArgs(e, stateRmCmd, fs, args)
	if code != proceed {
		return code
	}
	if len(addrs) == 0 {
		fmt.Fprintf(e.stderr, "Error: state rm needs the address of a source (postgres.prod) or a table (postgres.prod/orders); `sluice state list` shows them.\n")
		return exitError
	}
	ctx, stop := commandContext()
	defer stop()
	b, code := e.openState(ctx, &vf)
	if code != proceed {
		return code
	}
	defer b.Close()
	if !*dryRun {
		unlock, code := e.lockState(ctx, b, &lf, "state rm")
		if code != proceed {
			return code
		}
		defer unlock()
	}
	st, err := b.Read(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}

	// Every address is checked before anything is removed: a typo in the
	// third address must not leave the first two removed.
	recorded := stateAddrs(st)
	var unknown []string
	for _, a := range addrs {
		if !isRecorded(st, a) {
			unknown = append(unknown, a)
		}
	}
	if len(unknown) > 0 {
		for _, a := range unknown {
			fmt.Fprintf(e.stderr, "Error: %q is not in the state.%s\n", a, closest(a, recorded))
		}
		if len(recorded) == 0 {
			fmt.Fprintln(e.stderr, "Nothing is recorded in the state. Nothing was removed.")
		} else {
			fmt.Fprintf(e.stderr, "Recorded addresses: %s. Nothing was removed.\n", listSome(recorded, 20))
		}
		return exitError
	}

	var removed []string
	var warnings []string
	for _, a := range addrs {
		srcAddr, table, isTable := strings.Cut(a, "/")
		src := st.Sources[srcAddr]
		if src == nil {
			continue // removed with its source, named earlier
		}
		if isTable {
			if _, ok := src.Tables[table]; ok {
				delete(src.Tables, table)
				removed = append(removed, a)
			}
			continue
		}
		removed = append(removed, srcAddr)
		for _, t := range src.TableNames() {
			removed = append(removed, srcAddr+"/"+t)
		}
		delete(st.Sources, srcAddr)
		if w := leftBehind(src); w != "" {
			warnings = append(warnings, w)
		}
	}
	verb := "Removed"
	if *dryRun {
		verb = "Would remove"
	} else if err := b.Write(ctx, st); err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\nNothing was removed.\n", err)
		return exitError
	}
	for _, a := range removed {
		fmt.Fprintf(e.stdout, "%s %s\n", verb, a)
	}
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "Warning: %s\n", w)
	}
	if !*dryRun {
		fmt.Fprintf(e.stdout, "Successfully removed %d address(es) from the state.\n", len(removed))
	}
	return exitOK
}

func isRecorded(st *state.State, addr string) bool {
	srcAddr, table, isTable := strings.Cut(addr, "/")
	src := st.Sources[srcAddr]
	if src == nil {
		return false
	}
	if !isTable {
		return true
	}
	_, ok := src.Tables[table]
	return ok
}

// leftBehind says what a forgotten source keeps at the source: nobody will
// drop it now, and a replication slot nobody reads retains WAL until the
// disk fills.
func leftBehind(src *state.Source) string {
	r := src.Resources
	if r.Management == "self_managed" {
		return ""
	}
	var parts []string
	if r.Slot != nil {
		parts = append(parts, fmt.Sprintf("replication slot %q", r.Slot.Name))
	}
	if r.Publication != nil {
		parts = append(parts, fmt.Sprintf("publication %q", r.Publication.Name))
	}
	if r.Webhook != nil && r.Webhook.Created {
		parts = append(parts, fmt.Sprintf("webhook endpoint %s", r.Webhook.ID))
	}
	if len(parts) == 0 {
		return ""
	}
	msg := fmt.Sprintf("%s's %s still exist(s) at the source and sluice no longer manages them.", src.Address, strings.Join(parts, " and "))
	if r.Slot != nil {
		msg += fmt.Sprintf(" An unread slot retains WAL until the disk fills: drop it with SELECT pg_drop_replication_slot('%s') unless another tool uses it.", strings.ReplaceAll(r.Slot.Name, "'", "''"))
	}
	return msg
}

// listSome joins up to n items and says how many more there are.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more (see `sluice state list`)", strings.Join(items[:n], ", "), len(items)-n)
}

// commandContext is cancelled by Ctrl-C or SIGTERM, so that a command
// waiting for a lock or a database stops cleanly and releases what it
// holds.
func commandContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// openState loads the configuration, for its state block, and opens the
// state backend. It returns proceed, or the exit code after printing why
// not.
func (e *env) openState(ctx context.Context, vf *varFlags) (state.Backend, int) {
	cfg, diags := e.loadStateConfig(vf)
	if errs, _ := config.Counts(diags); errs > 0 {
		fmt.Fprintln(e.stderr, "Error: the configuration is invalid, and sluice needs it to find the state (its state block); fix the errors above.")
		return nil, exitError
	}
	dir := cfg.Dir
	if dir == "" {
		dir = e.dir
	}
	b, err := state.Open(ctx, cfg.State, dir)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return nil, exitError
	}
	return b, proceed
}

// readState opens the state backend and reads the state, for the commands
// that only look at it. The caller closes the backend.
func (e *env) readState(ctx context.Context, vf *varFlags) (state.Backend, *state.State, int) {
	b, code := e.openState(ctx, vf)
	if code != proceed {
		return nil, nil, code
	}
	st, err := b.Read(ctx)
	if err != nil {
		b.Close()
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return nil, nil, exitError
	}
	return b, st, proceed
}

// stateLockFlags are -lock and -lock-timeout of the commands that change
// state.
type stateLockFlags struct {
	lock    bool
	timeout time.Duration
}

func (l *stateLockFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&l.lock, "lock", true, "lock the state while working (-lock=false is for when you are sure nobody else runs sluice)")
	fs.DurationVar(&l.timeout, "lock-timeout", 0, "wait up to `DURATION` for the state lock (default: fail at once)")
}

// lockState takes the state lock for operation, unless -lock=false. The
// returned function releases it and reports a failure to release.
func (e *env) lockState(ctx context.Context, b state.Backend, l *stateLockFlags, operation string) (func(), int) {
	if !l.lock {
		return func() {}, proceed
	}
	if l.timeout > 0 {
		fmt.Fprintf(e.stderr, "Acquiring the state lock (waiting up to %s)...\n", l.timeout)
	}
	unlock, err := b.Lock(ctx, state.NewLockInfo(operation), l.timeout)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		if errors.Is(err, state.ErrLocked) && l.timeout == 0 {
			fmt.Fprintln(e.stderr, "Use -lock-timeout=DURATION to wait for it.")
		}
		return nil, exitError
	}
	return func() {
		if err := unlock(); err != nil {
			fmt.Fprintf(e.stderr, "Error releasing the state lock: %s\n", err)
		}
	}, proceed
}
