package config

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// DiagnosticWriter prints diagnostics for people: a first line with
// "file:line,col-col: summary" that editors and CI annotators recognise, the
// offending source line with the range underlined, then the detail.
type DiagnosticWriter struct {
	W     io.Writer
	Files map[string]*hcl.File
	Color bool
}

const (
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

// WriteDiagnostics prints every diagnostic, errors and warnings alike.
func (dw *DiagnosticWriter) WriteDiagnostics(diags hcl.Diagnostics) error {
	for _, d := range diags {
		if err := dw.WriteDiagnostic(d); err != nil {
			return err
		}
	}
	return nil
}

// WriteDiagnostic prints one diagnostic.
func (dw *DiagnosticWriter) WriteDiagnostic(d *hcl.Diagnostic) error {
	var b strings.Builder
	label, color := "Error", ansiRed
	if d.Severity == hcl.DiagWarning {
		label, color = "Warning", ansiYellow
	}
	if dw.Color {
		label = color + ansiBold + label + ansiReset
	}
	b.WriteString(label + ": ")
	if d.Subject != nil && d.Subject.Filename != "" {
		b.WriteString(formatRange(*d.Subject) + ": ")
	}
	if dw.Color {
		b.WriteString(ansiBold + d.Summary + ansiReset + "\n")
	} else {
		b.WriteString(d.Summary + "\n")
	}
	if d.Subject != nil {
		if snip := snippet(dw.Files, *d.Subject, d.Context); snip != "" {
			b.WriteString("\n" + snip)
		}
	}
	if d.Detail != "" {
		b.WriteString("\n")
		for _, line := range strings.Split(d.Detail, "\n") {
			b.WriteString(strings.TrimRight("  "+line, " ") + "\n")
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(dw.W, b.String())
	return err
}

// formatRange renders a range as "file:line,col-col" (or
// "file:line,col-line,col" when it spans lines), hcl's own format.
func formatRange(r hcl.Range) string {
	if r.Start.Line == r.End.Line {
		if r.End.Column <= r.Start.Column+1 {
			return fmt.Sprintf("%s:%d,%d", r.Filename, r.Start.Line, r.Start.Column)
		}
		return fmt.Sprintf("%s:%d,%d-%d", r.Filename, r.Start.Line, r.Start.Column, r.End.Column)
	}
	return fmt.Sprintf("%s:%d,%d-%d,%d", r.Filename, r.Start.Line, r.Start.Column, r.End.Line, r.End.Column)
}

// snippet returns the source lines of the range (at most three, from the
// context when it is larger) with the subject underlined on its first line.
func snippet(files map[string]*hcl.File, subject hcl.Range, context *hcl.Range) string {
	f := files[subject.Filename]
	if f == nil || f.Bytes == nil {
		return ""
	}
	show := subject
	if context != nil && context.Start.Line <= subject.Start.Line {
		show = hcl.RangeOver(*context, subject)
	}
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(f.Bytes))
	sc.Buffer(make([]byte, 0, 64*1024), MaxFileSize)
	last := min(show.End.Line, show.Start.Line+2)
	for line := 1; sc.Scan() && line <= last; line++ {
		if line < show.Start.Line {
			continue
		}
		text := strings.ReplaceAll(sc.Text(), "\t", " ")
		fmt.Fprintf(&b, "  %4d: %s\n", line, text)
		if line == subject.Start.Line {
			start := max(subject.Start.Column, 1)
			end := len(text) + 1
			if subject.End.Line == line {
				end = min(max(subject.End.Column, start+1), len(text)+1)
			}
			if end > start {
				fmt.Fprintf(&b, "        %s%s\n", strings.Repeat(" ", start-1), strings.Repeat("^", end-start))
			}
		}
	}
	return b.String()
}

// JSONPos is a position in a file, as in Terraform's JSON diagnostics.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONRange is a range in a file.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONSnippet is the source line of a diagnostic, as Terraform gives it.
type JSONSnippet struct {
	Context              *string `json:"context"`
	Code                 string  `json:"code"`
	StartLine            int     `json:"start_line"`
	HighlightStartOffset int     `json:"highlight_start_offset"`
	HighlightEndOffset   int     `json:"highlight_end_offset"`
}

// JSONDiagnostic is the diagnostic shape of SPEC §3, shared by validate,
// plan and apply.
type JSONDiagnostic struct {
	Severity string       `json:"severity"`
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *JSONRange   `json:"range,omitempty"`
	Snippet  *JSONSnippet `json:"snippet,omitempty"`
}

// NewJSONDiagnostics converts diagnostics to their JSON shape; never nil,
// so that an empty list encodes as [].
func NewJSONDiagnostics(diags hcl.Diagnostics, files map[string]*hcl.File) []JSONDiagnostic {
	out := make([]JSONDiagnostic, 0, len(diags))
	for _, d := range diags {
		jd := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if d.Subject != nil && d.Subject.Filename != "" {
			r := *d.Subject
			jd.Range = &JSONRange{
				Filename: r.Filename,
				Start:    JSONPos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
				End:      JSONPos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte},
			}
			jd.Snippet = jsonSnippet(files, r)
		}
		out = append(out, jd)
	}
	return out
}

func jsonSnippet(files map[string]*hcl.File, r hcl.Range) *JSONSnippet {
	f := files[r.Filename]
	if f == nil {
		return nil
	}
	lines := bytes.Split(f.Bytes, []byte("\n"))
	if r.Start.Line < 1 || r.Start.Line > len(lines) {
		return nil
	}
	code := string(lines[r.Start.Line-1])
	start := min(max(r.Start.Column-1, 0), len(code))
	end := len(code)
	if r.End.Line == r.Start.Line {
		end = min(max(r.End.Column-1, start), len(code))
	}
	return &JSONSnippet{Code: code, StartLine: r.Start.Line, HighlightStartOffset: start, HighlightEndOffset: end}
}

// Counts returns the number of errors and warnings.
func Counts(diags hcl.Diagnostics) (errors, warnings int) {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errors++
		} else {
			warnings++
		}
	}
	return
}
