package main

import (
	"bufio"
	"fmt"
	"strings"
)

func init() { implement("force-unlock", runForceUnlock) }

// forceUnlockPromptable reports whether a person can answer the
// confirmation; tests replace it to answer one.
var forceUnlockPromptable = func(e *env) bool { return e.stdinIsTerminal() }

func runForceUnlock(e *env, args []string) int {
	c := findCommand("force-unlock")
	fs := newFlags(e, c)
	force := fs.Bool("force", false, "do not ask for confirmation (required when stdin is not a terminal)")
	var vf varFlags
	vf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "Error: force-unlock needs exactly one argument, the lock ID, which the locked error names (\"state is locked (ID ...)\").")
		return exitError
	}
	id := pos[0]
	ctx, stop := commandContext()
	defer stop()
	b, code := e.openState(ctx, &vf)
	if code != proceed {
		return code
	}
	defer b.Close()
	if !*force {
		if !forceUnlockPromptable(e) {
			fmt.Fprintln(e.stderr, "Error: force-unlock asks for confirmation, and stdin is not a terminal; pass -force to unlock without asking.")
			return exitError
		}
		fmt.Fprintf(e.stdout, `Do you really want to force-unlock the state?
  sluice will remove lock %s. If the process holding it is still working,
  another sluice can then change the state at the same time (with the
  postgres state backend, the holder's database session is terminated).
  A sluice process that exited has released its lock already.
  Only 'yes' will be accepted to confirm.

  Enter a value: `, id)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		fmt.Fprintln(e.stdout)
		if strings.TrimSpace(answer) != "yes" {
			fmt.Fprintln(e.stderr, "Error: force-unlock cancelled; the lock is unchanged.")
			return exitError
		}
	}
	if err := b.ForceUnlock(ctx, id); err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	fmt.Fprintf(e.stdout, "The state lock %s was removed; the state is unlocked.\n", id)
	return exitOK
}
