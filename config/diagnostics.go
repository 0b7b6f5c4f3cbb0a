package config

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// DiagnosticWriter prints diagnostics for people: a first line with
// "file:line,col-col: summary" that editors and CI annotators recognise, the
// offending source line with the range underlined, then the detail.
type DiagnosticWriter struct {
	W     io.Writer
	Files map[string]*hcl.File
	Color bool
	// secrets caches where the secrets of each file are, for masking.
	secrets secretCache
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
		if dw.secrets == nil {
			dw.secrets = secretCache{}
		}
		if snip := snippet(dw.Files, dw.secrets, *d.Subject, d.Context); snip != "" {
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
// context when it is larger) with the subject underlined on its first line,
// and every secret in them masked.
func snippet(files map[string]*hcl.File, secrets secretCache, subject hcl.Range, context *hcl.Range) string {
	f := files[subject.Filename]
	if f == nil || f.Bytes == nil {
		return ""
	}
	show := subject
	if context != nil && context.Start.Line <= subject.Start.Line {
		show = hcl.RangeOver(*context, subject)
	}
	var b strings.Builder
	last := min(show.End.Line, show.Start.Line+2)
	for line, start := range lines(f.Bytes) {
		if line > last {
			break
		}
		if line < show.Start.Line {
			continue
		}
		text := strings.TrimSuffix(string(f.Bytes[start:lineEnd(f.Bytes, start)]), "\r")
		ml := maskLine(text, start, secrets.of(f))
		out := strings.ReplaceAll(ml.text, "\t", " ")
		from, to := 0, 0
		if line == subject.Start.Line {
			from, to = highlight(ml, start, subject)
		}
		out, from, to = window(out, from, to)
		fmt.Fprintf(&b, "  %4d: %s\n", line, out)
		if line == subject.Start.Line {
			// Carets count characters, not bytes, so that they stand under
			// the text whatever its script.
			from, to = utf8.RuneCountInString(out[:from]), utf8.RuneCountInString(out[:to])
			if to > from {
				fmt.Fprintf(&b, "        %s%s\n", strings.Repeat(" ", from), strings.Repeat("^", to-from))
			}
		}
	}
	return b.String()
}

// maxSnippetLine bounds the bytes of a line a snippet prints: a generated
// or hostile file may hold a line of megabytes.
const maxSnippetLine = 240

// window cuts a long line to maxSnippetLine bytes around the highlighted
// part [from, to), marking the cuts with "…", and returns the highlight's
// offsets in the cut line.
func window(text string, from, to int) (string, int, int) {
	if len(text) <= maxSnippetLine {
		return text, from, to
	}
	start := max(0, from-maxSnippetLine/3)
	end := min(len(text), start+maxSnippetLine)
	for start > 0 && !utf8.RuneStart(text[start]) {
		start++
	}
	for end < len(text) && !utf8.RuneStart(text[end]) {
		end--
	}
	prefix, suffix := "", ""
	if start > 0 {
		prefix = "…"
	}
	if end < len(text) {
		suffix = "…"
	}
	from = min(max(from-start, 0), end-start) + len(prefix)
	to = min(max(to-start, 0), end-start) + len(prefix)
	return prefix + text[start:end] + suffix, from, to
}

// lines yields the number and starting byte offset of every line of src.
func lines(src []byte) func(yield func(int, int) bool) {
	return func(yield func(int, int) bool) {
		for line, start := 1, 0; start <= len(src); line++ {
			if !yield(line, start) {
				return
			}
			i := bytes.IndexByte(src[start:], '\n')
			if i < 0 {
				return
			}
			start += i + 1
		}
	}
}

func lineEnd(src []byte, start int) int {
	if i := bytes.IndexByte(src[start:], '\n'); i >= 0 {
		return start + i
	}
	return len(src)
}

// highlight returns the byte offsets, in the masked line, of the part of
// subject on the line that starts at byte lineStart: from its start (or
// the line's start) to its end (or the line's end), at least one byte
// when the line has one. Ranges whose byte offsets do not fall on the line
// (made up by hand) fall back to their columns.
func highlight(ml maskedLine, lineStart int, subject hcl.Range) (from, to int) {
	n := len(ml.text)
	origLen := n
	for _, s := range ml.spans {
		origLen += (s.end - s.start) - len(secretMask)
	}
	off := func(p hcl.Pos) int {
		if p.Byte >= lineStart && p.Byte <= lineStart+origLen {
			return p.Byte - lineStart
		}
		return min(max(p.Column-1, 0), origLen)
	}
	start := off(subject.Start)
	end := origLen
	if subject.End.Line == subject.Start.Line {
		end = min(max(off(subject.End), start+1), origLen)
	}
	from, to = ml.offset(start), ml.offset(end)
	if from >= to && to < n {
		to = from + 1 // a masked subject still gets its caret
	}
	for from < n && !utf8.RuneStart(ml.text[from]) {
		from++
	}
	for to < n && !utf8.RuneStart(ml.text[to]) {
		to++
	}
	return from, min(max(to, from), n)
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
	secrets := secretCache{}
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
			jd.Snippet = jsonSnippet(files, secrets, r)
		}
		out = append(out, jd)
	}
	return out
}

func jsonSnippet(files map[string]*hcl.File, secrets secretCache, r hcl.Range) *JSONSnippet {
	f := files[r.Filename]
	if f == nil {
		return nil
	}
	for line, start := range lines(f.Bytes) {
		if line < r.Start.Line {
			continue
		}
		if line > r.Start.Line {
			break
		}
		ml := maskLine(string(f.Bytes[start:lineEnd(f.Bytes, start)]), start, secrets.of(f))
		from, to := highlight(ml, start, r)
		if r.End.Line != r.Start.Line {
			to = len(ml.text)
		}
		return &JSONSnippet{Code: ml.text, StartLine: r.Start.Line, HighlightStartOffset: from, HighlightEndOffset: to}
	}
	return nil
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
