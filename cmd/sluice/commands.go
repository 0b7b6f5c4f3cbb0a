package main

import "fmt"

func init() {
	commands = []*command{
		{name: "validate", synopsis: "Check the configuration without connecting to anything", usage: "[-json] [-var=K=V]... [-var-file=F]...", run: runValidate},
		{name: "fmt", synopsis: "Rewrite *.hcl files in the canonical format", usage: "[-check] [-diff] [PATH...]", run: runFmt},
		{name: "inspect", synopsis: "List a source's live tables and what each can sync", usage: "SOURCE [-json]", run: notBuilt("inspect", "the PostgreSQL provider")},
		{name: "check", synopsis: "Check a PostgreSQL source's CDC prerequisites", usage: "SOURCE [-json]", run: notBuilt("check", "the PostgreSQL provider")},
		{name: "init", synopsis: "Write a starting configuration from a live database", usage: "-source=postgres.NAME -url=URL [-out=FILE]", run: notBuilt("init", "the PostgreSQL provider")},
		{name: "plan", synopsis: "Show what apply would change, and any drift", usage: "[-out=FILE] [-json] [-format=text|markdown] [-detailed-exitcode] [-refresh=false] [-target=ADDR]... [-var=K=V]... [-var-file=F]... [-lock=false] [-lock-timeout=DUR]", run: notBuilt("plan", "state, planner and apply")},
		{name: "apply", synopsis: "Create or change publications, slots, webhooks and state", usage: "[-auto-approve] [-json] [-target=ADDR]... [-var...] [PLANFILE]", run: notBuilt("apply", "state, planner and apply")},
		{name: "show", synopsis: "Show the recorded state or a saved plan", usage: "[-json] [PLANFILE]", run: notBuilt("show", "state, planner and apply")},
		{name: "status", synopsis: "Show per-table sync status and per-source health", usage: "[-json] [ADDR]", run: notBuilt("status", "the runner")},
		{name: "run", synopsis: "Run the sync daemon", usage: "[-once] [-listen=ADDR] [-concurrency=N]", run: notBuilt("run", "the runner")},
		{name: "resync", synopsis: "Mark a table for a full resync at its next run", usage: "ADDR", run: notBuilt("resync", "the runner")},
		{name: "destroy", synopsis: "Plan and apply removal of everything recorded", usage: "[-auto-approve]", run: notBuilt("destroy", "state, planner and apply")},
		{name: "state", synopsis: "State housekeeping: state list, state rm ADDR", usage: "list | rm ADDR", run: notBuilt("state", "state, planner and apply")},
		{name: "force-unlock", synopsis: "Release a stuck state lock", usage: "LOCK_ID", run: notBuilt("force-unlock", "state, planner and apply")},
		{name: "version", synopsis: "Print the version", usage: "", run: runVersion},
		{name: "help", synopsis: "Show this help, or a command's", usage: "[COMMAND]", run: runHelp},
	}
}

// notBuilt stands in for a command whose capability has not been built yet:
// it says so plainly and fails, so that no script mistakes it for success.
func notBuilt(name, capability string) func(*env, []string) int {
	return func(e *env, args []string) int {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			writeCommandHelp(e.stdout, findCommand(name), nil)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "Error: `sluice %s` is not available in this version of sluice: it arrives with %s. Nothing was done.\n", name, capability)
		return exitError
	}
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
