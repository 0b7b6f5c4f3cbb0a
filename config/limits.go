package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// Bounds on what configuration input may make sluice do. A file, however
// hostile, must give a diagnostic rather than crash sluice or exhaust the
// machine's memory; real configurations stay far below every bound.
const (
	// MaxNesting bounds how deep brackets, braces, parentheses, string
	// templates, heredocs, template directives and unary and conditional
	// operators nest. HCL's parser recurses once per level; real
	// configurations nest a handful of levels.
	MaxNesting = 256
	// maxOperatorChain bounds the operators and traversal steps (a.b, a[i])
	// chained in one expression, summed over the levels it is nested in:
	// each adds a level of recursion when the expression is evaluated.
	maxOperatorChain = 4096
	// MaxValueBytes bounds the string bytes of any value the configuration
	// computes (a local, an attribute, a variable, a function's result),
	// like the MaxFileSize bound on a file.
	MaxValueBytes = MaxFileSize
	// MaxValueElements bounds the elements (of lists, sets, maps, tuples
	// and objects, nested ones included) of any value.
	MaxValueElements = 100_000
	// evalBudgetFactor bounds what one expression may compute in all,
	// counting every function result and template: a few values' worth.
	evalBudgetFactor = 4
)

// checkNesting scans src for nesting deeper than MaxNesting, or operator
// chains longer than maxOperatorChain, before HCL's recursive parser sees
// it. It is a small scanner of its own, not HCL's lexer, so that the check
// takes no memory in proportion to the file. expr is set for a lone
// expression (a -var value) rather than a file.
func checkNesting(src []byte, name string, expr bool) *hcl.Diagnostic {
	s := nestScanner{src: src, line: 1, col: 1}
	if expr {
		s.push('(') // newlines do not end a lone expression
	} else {
		s.push('{') // a file is a body
	}
	return s.run(name)
}

// nestFrame is one open construct: '{', '[', '(' (expressions), '$' (an
// interpolation or directive), '"' (a quoted template) or 'h' (a heredoc).
type nestFrame struct {
	kind   byte
	marker string // of a heredoc
	unary  int    // unary and conditional operators in the current item
	chain  int    // operators and steps in the current item
}

type nestScanner struct {
	src        []byte
	i          int
	line, col  int
	stack      []nestFrame
	unary      int // sum of the frames' unary counts
	chain      int // sum of the frames' chain counts
	directives int // open %{if} and %{for}
	lineStart  bool
}

func (s *nestScanner) top() *nestFrame {
	if len(s.stack) == 0 {
		return nil
	}
	return &s.stack[len(s.stack)-1]
}

func (s *nestScanner) push(kind byte) { s.stack = append(s.stack, nestFrame{kind: kind}) }

func (s *nestScanner) pop() {
	f := s.top()
	s.unary -= f.unary
	s.chain -= f.chain
	s.stack = s.stack[:len(s.stack)-1]
}

// resetItem starts a new item (list element, argument, attribute) in the
// innermost frame: its operators do not chain with the previous item's.
func (s *nestScanner) resetItem() {
	if f := s.top(); f != nil {
		s.unary -= f.unary
		s.chain -= f.chain
		f.unary, f.chain = 0, 0
	}
}

func (s *nestScanner) op(unary bool) {
	f := s.top()
	if f == nil {
		return // a stray closer emptied the stack; the parser reports it
	}
	f.chain++
	s.chain++
	if unary {
		f.unary++
		s.unary++
	}
}

// advance moves past n bytes, keeping line and column.
func (s *nestScanner) advance(n int) {
	for ; n > 0 && s.i < len(s.src); n-- {
		if s.src[s.i] == '\n' {
			s.line++
			s.col = 1
		} else if s.src[s.i]&0xC0 != 0x80 {
			s.col++
		}
		s.i++
	}
}

func (s *nestScanner) at(prefix string) bool {
	return len(s.src)-s.i >= len(prefix) && string(s.src[s.i:s.i+len(prefix)]) == prefix
}

func (s *nestScanner) run(name string) *hcl.Diagnostic {
	const depthBase = 1 // the frame of the file or lone expression
	for s.i < len(s.src) {
		pos := hcl.Pos{Line: s.line, Column: s.col, Byte: s.i}
		if f := s.top(); f != nil && (f.kind == '"' || f.kind == 'h') {
			s.template(f)
		} else {
			s.expression()
		}
		if depth := len(s.stack) - depthBase + s.unary + s.directives; depth > MaxNesting || s.chain > maxOperatorChain {
			what := fmt.Sprintf("nests more than %d levels deep here (brackets, braces, parentheses, templates, heredocs and operators such as ! and ?:)", MaxNesting)
			if depth <= MaxNesting {
				what = fmt.Sprintf("chains more than %d operators or attribute and index steps in one expression here", maxOperatorChain)
			}
			return &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Configuration nested too deeply",
				Detail:   fmt.Sprintf("%s %s; no real configuration needs that. Flatten the expression, or split it into locals.", name, what),
				Subject:  &hcl.Range{Filename: name, Start: pos, End: hcl.Pos{Line: s.line, Column: s.col, Byte: s.i}},
			}
		}
	}
	return nil
}

// expression scans one token of expression syntax.
func (s *nestScanner) expression() {
	c := s.src[s.i]
	switch {
	case c == '#' || s.at("//"):
		for s.i < len(s.src) && s.src[s.i] != '\n' {
			s.advance(1)
		}
	case s.at("/*"):
		s.advance(2)
		for s.i < len(s.src) && !s.at("*/") {
			s.advance(1)
		}
		s.advance(2)
	case c == '"':
		s.advance(1)
		s.push('"')
	case s.at("<<"):
		if marker, n := heredocStart(s.src[s.i:]); n > 0 {
			s.advance(n)
			s.push('h')
			s.top().marker = marker
			s.lineStart = true
			return
		}
		s.op(false)
		s.advance(2)
	case c == '{' || c == '(' || c == '[':
		if c == '[' {
			s.op(false) // an index step chains like an operator
		}
		s.advance(1)
		s.push(c)
	case c == '}' || c == ')' || c == ']':
		open := map[byte]byte{'}': '{', ')': '(', ']': '['}[c]
		if f := s.top(); f != nil && len(s.stack) > 1 && (f.kind == open || c == '}' && f.kind == '$') {
			s.pop()
		}
		s.advance(1)
	case c == '\n':
		if f := s.top(); f != nil && f.kind == '{' {
			s.resetItem() // a new attribute or block
		}
		s.advance(1)
	case c == ',':
		s.resetItem()
		s.advance(1)
	case c == '!' && !s.at("!="), c == '-', c == '?':
		s.op(true)
		s.advance(1)
	case s.at("==") || s.at("!=") || s.at("<=") || s.at(">=") || s.at("&&") || s.at("||"):
		s.op(false)
		s.advance(2)
	case c == '+' || c == '*' || c == '/' || c == '%' || c == '<' || c == '>' || c == '.':
		s.op(false)
		s.advance(1)
	case isIdentStart(c):
		n := 1
		for s.i+n < len(s.src) && (isIdentStart(s.src[s.i+n]) || s.src[s.i+n] >= '0' && s.src[s.i+n] <= '9' || s.src[s.i+n] == '-') {
			n++
		}
		s.advance(n)
	case c >= '0' && c <= '9':
		n := 1
		for s.i+n < len(s.src) && (s.src[s.i+n] >= '0' && s.src[s.i+n] <= '9' || s.src[s.i+n] == '.') {
			n++
		}
		if s.i+n < len(s.src) && (s.src[s.i+n] == 'e' || s.src[s.i+n] == 'E') {
			n++
			if s.i+n < len(s.src) && (s.src[s.i+n] == '+' || s.src[s.i+n] == '-') {
				n++
			}
		}
		s.advance(n)
	default:
		s.advance(1)
	}
}

// template scans template text up to its end or its next interpolation.
func (s *nestScanner) template(f *nestFrame) {
	if f.kind == 'h' && s.lineStart {
		s.lineStart = false
		end := s.i
		for end < len(s.src) && s.src[end] != '\n' {
			end++
		}
		if trimmed := trimSpace(s.src[s.i:end]); trimmed == f.marker {
			s.advance(end - s.i)
			s.pop()
			return
		}
	}
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case f.kind == '"' && c == '\\':
			s.advance(2)
		case f.kind == '"' && (c == '"' || c == '\n'):
			// A quoted template ends at its quote, and HCL ends an
			// unterminated one at the end of the line.
			s.advance(1)
			s.pop()
			return
		case f.kind == 'h' && c == '\n':
			s.advance(1)
			s.lineStart = true
			return
		case s.at("$${") || s.at("%%{"):
			s.advance(3)
		case s.at("${"):
			s.advance(2)
			s.push('$')
			return
		case s.at("%{"):
			s.advance(2)
			s.directive()
			s.push('$')
			return
		default:
			s.advance(1)
		}
	}
}

// directive counts the nesting of %{if} and %{for} blocks, which HCL's
// template parser recurses into.
func (s *nestScanner) directive() {
	j := s.i
	for j < len(s.src) && (s.src[j] == ' ' || s.src[j] == '\t' || s.src[j] == '~') {
		j++
	}
	k := j
	for k < len(s.src) && isIdentStart(s.src[k]) {
		k++
	}
	switch string(s.src[j:k]) {
	case "if", "for":
		s.directives++
	case "endif", "endfor":
		s.directives = max(s.directives-1, 0)
	}
}

// heredocStart recognises "<<EOT\n" and "<<-EOT\n", returning the marker
// and the length of the opener including its newline.
func heredocStart(b []byte) (string, int) {
	n := 2
	if n < len(b) && b[n] == '-' {
		n++
	}
	start := n
	for n < len(b) && (isIdentStart(b[n]) || b[n] >= '0' && b[n] <= '9' || b[n] == '-') {
		n++
	}
	if n == start {
		return "", 0
	}
	marker := string(b[start:n])
	if n < len(b) && b[n] == '\r' {
		n++
	}
	if n >= len(b) || b[n] != '\n' {
		return "", 0
	}
	return marker, n + 1
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func trimSpace(b []byte) string {
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\r') {
		j--
	}
	return string(b[i:j])
}
