package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/sluice-dev/sluice/planner"
	"github.com/sluice-dev/sluice/state"
)

func init() { implement("show", runShow) }

func runShow(e *env, args []string) int {
	c := findCommand("show")
	fs := newFlags(e, c)
	jsonOut := fs.Bool("json", false, "print as JSON")
	var vf varFlags
	vf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 1 {
		fmt.Fprintln(e.stderr, "Error: show takes at most one argument, a saved plan file.")
		return exitError
	}
	if len(pos) == 1 {
		fh, err := os.Open(e.path(pos[0]))
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: cannot read the saved plan: %s\n", err)
			return exitError
		}
		defer fh.Close()
		saved, err := planner.ReadSaved(fh)
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: %s: %s\n", pos[0], err)
			return exitError
		}
		if *jsonOut {
			_ = planner.WriteJSON(e.stdout, saved.Plan, nil)
		} else {
			fmt.Fprintf(e.stdout, "Saved plan from %s (state serial %d):\n\n", saved.CreatedAt.Format("2006-01-02 15:04:05 MST"), saved.Plan.StateSerial)
			_ = planner.WriteText(e.stdout, saved.Plan, planner.TextOptions{Color: e.color})
		}
		return exitOK
	}
	ctx, stop := commandContext()
	defer stop()
	b, st, code := e.readState(ctx, &vf)
	if code != proceed {
		return code
	}
	defer b.Close()
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return exitOK
	}
	writeState(e, st)
	return exitOK
}

func writeState(e *env, st *state.State) {
	if len(st.Sources) == 0 {
		fmt.Fprintln(e.stdout, "The state is empty: nothing has been applied yet. Run `sluice plan`, then `sluice apply`.")
		return
	}
	w := e.stdout
	fmt.Fprintf(w, "# state lineage %s, serial %d\n", st.Lineage, st.Serial)
	for _, addr := range st.SourceAddrs() {
		s := st.Sources[addr]
		typ, name, _ := strings.Cut(addr, ".")
		fmt.Fprintf(w, "\nsource %q %q {\n", typ, name)
		attrs := map[string]string{"prefix": fmt.Sprintf("%q", s.Prefix)}
		for k, v := range s.Settings {
			attrs[k] = fmt.Sprintf("%q", v)
		}
		for k := range s.Fingerprints {
			attrs[k] = "(sensitive)"
		}
		width := 0
		for k := range attrs {
			width = max(width, len(k))
		}
		for _, k := range sortedMapKeys(attrs) {
			fmt.Fprintf(w, "  %-*s = %s\n", width, k, attrs[k])
		}
		if p := s.Resources.Publication; p != nil {
			fmt.Fprintf(w, "  # publication %s (%s): %s\n", p.Name, s.Resources.Management, strings.Join(p.Tables, ", "))
		}
		if sl := s.Resources.Slot; sl != nil {
			fmt.Fprintf(w, "  # replication slot %s (%s), created at LSN %s\n", sl.Name, sl.Plugin, sl.CreatedLSN)
		}
		if wh := s.Resources.Webhook; wh != nil {
			fmt.Fprintf(w, "  # webhook %s (%s)\n", wh.URL, wh.ID)
		}
		for _, tn := range s.TableNames() {
			t := s.Tables[tn]
			extra := ""
			if t.IncrementalField != "" {
				extra = " on " + t.IncrementalField
			}
			if !t.Enabled {
				extra += ", disabled"
			}
			if !t.ResyncRequestedAt.IsZero() {
				extra += ", resync requested"
			}
			fmt.Fprintf(w, "  table %q -> %s: %s%s every %s\n", tn, t.WarehouseTable, t.Sync, extra, t.Frequency)
		}
		fmt.Fprintln(w, "}")
	}
}

func sortedMapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
