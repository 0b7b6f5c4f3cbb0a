package planner

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
)

// JSONPlan is `plan -json`: exactly SPEC §3's document.
type JSONPlan struct {
	FormatVersion string                  `json:"format_version"`
	Changes       []Change                `json:"changes"`
	Drift         []Drift                 `json:"drift"`
	Diagnostics   []config.JSONDiagnostic `json:"diagnostics"`
	Summary       Summary                 `json:"summary"`
}

// WriteJSON writes the plan as SPEC §3's JSON document.
func WriteJSON(w io.Writer, p *Plan, files map[string]*hcl.File) error {
	doc := JSONPlan{
		FormatVersion: "1",
		Changes:       p.Changes,
		Drift:         p.Drift,
		Diagnostics:   config.NewJSONDiagnostics(p.Diagnostics, files),
		Summary:       p.Summary(),
	}
	if doc.Changes == nil {
		doc.Changes = []Change{}
	}
	if doc.Drift == nil {
		doc.Drift = []Drift{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// TextOptions tune the text rendering.
type TextOptions struct {
	Color bool
}

const (
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	red    = "\x1b[31m"
	cyan   = "\x1b[36m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

func actionColor(a Action) string {
	switch a {
	case Create:
		return green
	case Update:
		return yellow
	case Delete:
		return red
	case Replace:
		return red
	case Resync:
		return cyan
	}
	return ""
}

func describeAction(c Change) string {
	what := c.Address
	switch c.Kind {
	case KindPublication, KindSlot, KindWebhook:
		name := ""
		if v, ok := c.After["name"]; ok {
			name = fmt.Sprint(v)
		} else if v, ok := c.Before["name"]; ok {
			name = fmt.Sprint(v)
		}
		what = strings.TrimSpace(fmt.Sprintf("%s %s %s", c.Address, c.Kind, name))
	}
	switch c.Action {
	case Create:
		return what + " will be created"
	case Update:
		return what + " will be updated in place"
	case Delete:
		return what + " will be removed"
	case Replace:
		return what + " will be replaced"
	case Resync:
		return what + " will be resynced (its data is reloaded)"
	}
	return what
}

// WriteText renders the plan for people, in Terraform's style.
func WriteText(w io.Writer, p *Plan, opt TextOptions) error {
	var b strings.Builder
	paint := func(color, s string) string {
		if opt.Color && color != "" {
			return color + s + reset
		}
		return s
	}
	if len(p.Drift) > 0 {
		b.WriteString(paint(bold, "Drift: the live sources differ from what sluice recorded") + "\n\n")
		for _, d := range p.Drift {
			mark := "~"
			if d.Severity == "critical" {
				mark = paint(red, "!")
			} else if d.Severity == "warning" {
				mark = paint(yellow, "!")
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", mark, d.Address, d.Detail)
		}
		b.WriteString("\n")
	}
	if len(p.Changes) == 0 {
		if len(p.Drift) == 0 {
			b.WriteString(paint(green+bold, "No changes.") + " The sources match the configuration and the recorded state.\n")
		} else {
			b.WriteString("No changes to apply for the drift above; it needs attention at the source.\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("sluice will perform the following actions:\n\n")
	for _, c := range p.Changes {
		sym := paint(actionColor(c.Action), fmt.Sprintf("%3s", c.Action.Symbol()))
		fmt.Fprintf(&b, "  # %s\n", paint(bold, describeAction(c)))
		for _, r := range c.Reasons {
			fmt.Fprintf(&b, "  #   %s\n", r)
		}
		for _, wn := range c.Warnings {
			fmt.Fprintf(&b, "  #   %s %s\n", paint(yellow, "warning:"), wn)
		}
		fmt.Fprintf(&b, "%s %s {\n", sym, blockHeader(c))
		writeAttrs(&b, c, paint)
		b.WriteString("    }\n\n")
	}
	s := p.Summary()
	fmt.Fprintf(&b, "%s %d to create, %d to update, %d to delete, %d to replace, %d to resync.",
		paint(bold, "Plan:"), s.Create, s.Update, s.Delete, s.Replace, s.Resync)
	if s.Drift > 0 {
		fmt.Fprintf(&b, " %d drifted.", s.Drift)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func blockHeader(c Change) string {
	switch c.Kind {
	case KindSource:
		typ, name, _ := strings.Cut(c.Address, ".")
		return fmt.Sprintf("source %q %q", typ, name)
	case KindTable:
		_, table, _ := strings.Cut(c.Address, "/")
		return fmt.Sprintf("table %q", table)
	}
	return c.Kind
}

func writeAttrs(b *strings.Builder, c Change, paint func(string, string) string) {
	keys := map[string]bool{}
	for k := range c.Before {
		keys[k] = true
	}
	for k := range c.After {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	width := 0
	for k := range keys {
		names = append(names, k)
		width = max(width, len(k))
	}
	sort.Strings(names)
	hidden := 0
	for _, k := range names {
		before, had := c.Before[k]
		after, has := c.After[k]
		pad := strings.Repeat(" ", width-len(k))
		switch {
		case c.Action == Create || (!had && has && c.Before == nil):
			fmt.Fprintf(b, "      %s %s%s = %s\n", paint(green, "+"), k, pad, show(after))
		case c.Action == Delete || (had && !has && c.After == nil):
			fmt.Fprintf(b, "      %s %s%s = %s\n", paint(red, "-"), k, pad, show(before))
		case had && has && show(before) == show(after):
			if before == "(sensitive)" && sensitiveChanged(c, k) {
				fmt.Fprintf(b, "      %s %s%s = (sensitive value changed)\n", paint(yellow, "~"), k, pad)
			} else {
				hidden++
			}
		case had && has:
			fmt.Fprintf(b, "      %s %s%s = %s -> %s\n", paint(yellow, "~"), k, pad, show(before), show(after))
		case has:
			fmt.Fprintf(b, "      %s %s%s = %s\n", paint(green, "+"), k, pad, show(after))
		default:
			fmt.Fprintf(b, "      %s %s%s = %s\n", paint(red, "-"), k, pad, show(before))
		}
	}
	if hidden > 0 {
		fmt.Fprintf(b, "        # (%d unchanged attributes hidden)\n", hidden)
	}
}

// sensitiveChanged reports whether a reason says a hidden value changed:
// the values themselves are never in the plan.
func sensitiveChanged(c Change, attr string) bool {
	for _, r := range c.Reasons {
		if r == attr+" (sensitive value changed)" {
			return true
		}
	}
	return false
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		if x == "(sensitive)" {
			return x
		}
		return fmt.Sprintf("%q", x)
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case []any:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = show(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return show(m)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		q := make([]string, len(keys))
		for i, k := range keys {
			q[i] = fmt.Sprintf("%s = %s", k, show(x[k]))
		}
		return "{ " + strings.Join(q, ", ") + " }"
	}
	return fmt.Sprint(v)
}

// WriteMarkdown renders the plan for a pull-request comment: the summary
// first, resyncs and deletes called out at the top, details collapsible.
func WriteMarkdown(w io.Writer, p *Plan) error {
	var b strings.Builder
	s := p.Summary()
	b.WriteString("### sluice plan\n\n")
	if p.Empty() {
		b.WriteString("**No changes.** The sources match the configuration and the recorded state.\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "**%d to create, %d to update, %d to delete, %d to replace, %d to resync; %d drifted.**\n\n",
		s.Create, s.Update, s.Delete, s.Replace, s.Resync, s.Drift)
	var callouts []string
	for _, c := range p.Changes {
		switch c.Action {
		case Resync:
			callouts = append(callouts, fmt.Sprintf("- :warning: **resync** `%s`: %s", c.Address, strings.Join(c.Reasons, "; ")))
		case Delete, Replace:
			callouts = append(callouts, fmt.Sprintf("- :warning: **%s** `%s`: %s", c.Action, c.Address, strings.Join(c.Reasons, "; ")))
		}
	}
	if len(callouts) > 0 {
		b.WriteString("> [!WARNING]\n> Review these: they reload or remove data.\n\n")
		b.WriteString(strings.Join(callouts, "\n") + "\n\n")
	}
	if len(p.Drift) > 0 {
		b.WriteString("#### Drift\n\n| address | kind | detail |\n|---|---|---|\n")
		for _, d := range p.Drift {
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", d.Address, d.Kind, mdCell(d.Detail))
		}
		b.WriteString("\n")
	}
	if len(p.Changes) > 0 {
		b.WriteString("#### Changes\n\n| | address | kind | action | reasons |\n|---|---|---|---|---|\n")
		for _, c := range p.Changes {
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s |\n", strings.TrimSpace(c.Action.Symbol()), c.Address, c.Kind, c.Action, mdCell(strings.Join(c.Reasons, "; ")))
		}
		b.WriteString("\n<details><summary>Details</summary>\n\n```diff\n")
		var text strings.Builder
		_ = WriteText(&text, &Plan{Changes: p.Changes}, TextOptions{})
		b.WriteString(text.String())
		b.WriteString("```\n\n</details>\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", "<br>").Replace(s)
}
