package main

import "fmt"

// commands lists every command of SPEC §1, in the order help shows them.
// Each command's file installs its implementation with implement() from an
// init function (TestEveryCommandImplemented checks that none is missing).
var commands = []*command{
	{name: "validate", synopsis: "Check the configuration without connecting to anything", usage: "[-json] [-var=K=V]... [-var-file=F]..."},
	{name: "fmt", synopsis: "Rewrite *.hcl files in the canonical format", usage: "[-check] [-diff] [PATH...]"},
	{name: "inspect", synopsis: "List a source's live tables and what each can sync", usage: "SOURCE [-json] [-all-schemas]"},
	{name: "check", synopsis: "Check a PostgreSQL source's CDC prerequisites", usage: "SOURCE [-json]"},
	{name: "init", synopsis: "Write a starting configuration from a live database", usage: "-source=postgres.NAME -url=URL [-out=FILE]"},
	{name: "plan", synopsis: "Show what apply would change, and any drift", usage: "[-out=FILE] [-json] [-format=text|markdown] [-detailed-exitcode] [-refresh=false] [-target=ADDR]... [-var=K=V]... [-var-file=F]... [-lock=false] [-lock-timeout=DUR]"},
	{name: "apply", synopsis: "Create or change publications, slots, webhooks and state", usage: "[-auto-approve] [-json] [-target=ADDR]... [-var...] [PLANFILE]"},
	{name: "show", synopsis: "Show the recorded state or a saved plan", usage: "[-json] [PLANFILE]"},
	{name: "status", synopsis: "Show per-table sync status and per-source health", usage: "[-json] [ADDR]"},
	{name: "run", synopsis: "Run the sync daemon", usage: "[-once] [-id=NAME] [-listen=ADDR] [-concurrency=N]"},
	{name: "sync", synopsis: "Sync tables now, whatever their schedule (default: every enabled table)", usage: "[-var=K=V]... [-var-file=F]... [ADDR...]"},
	{name: "notify", synopsis: "Send a test message to each notify block, or those named", usage: "test [NAME...] [-var=K=V]... [-var-file=F]..."},
	{name: "resync", synopsis: "Mark a table for a full resync at its next run", usage: "[-historical] ADDR"},
	{name: "destroy", synopsis: "Plan and apply removal of everything recorded", usage: "[-auto-approve]"},
	{name: "state", synopsis: "State housekeeping: state list, state rm ADDR", usage: "list | rm ADDR"},
	{name: "force-unlock", synopsis: "Release a stuck state lock", usage: "LOCK_ID"},
	{name: "version", synopsis: "Print the version", usage: ""},
	{name: "help", synopsis: "Show this help, or a command's", usage: "[COMMAND]"},
}

func init() {
	// help refers to commands, so it cannot be in the list's initializer.
	implement("help", runHelp)
}

// implement installs a command's implementation.
func implement(name string, run func(*env, []string) int) {
	c := findCommand(name)
	if c == nil {
		panic("implement: no command " + name)
	}
	c.run = run
}

func runHelp(e *env, args []string) int {
	if len(args) == 0 {
		writeHelp(e.stdout)
		return exitOK
	}
	c := findCommand(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "Error: unknown command %q. Run `sluice help` for the list.\n", args[0])
		return exitError
	}
	if c.name == "help" || c.name == "version" {
		writeCommandHelp(e.stdout, c, nil)
		return exitOK
	}
	// Every other command prints its own flags for -h.
	return c.run(e, []string{"-h"})
}
