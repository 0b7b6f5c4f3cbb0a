package config

import (
	"bytes"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Diagnostic snippets print configuration source, and source may hold
// secrets written as literals: a password in a connection string, an API
// key pasted into the file. Snippets mask them: the password of every URL
// and of every libpq "password=..." pair (in strings, heredocs and
// comments alike), and every literal in the value of a secret attribute.

// secretMask replaces a masked secret in a snippet. Its length does not
// depend on the secret's.
const secretMask = "****"

// maskedAttributeNames are the attribute names whose literal values a
// snippet never shows: the secret attributes of a source (without their
// block prefix), and names that hold secrets in other tools' configurations
// a user may paste from.
var maskedAttributeNames = func() map[string]bool {
	m := map[string]bool{"hash_salt": true, "secret_access_key": true, "sslpassword": true, "token": true, "secret": true}
	for name := range secretAttributes {
		m[name[strings.LastIndexByte(name, '.')+1:]] = true
	}
	return m
}()

// passwordPair matches the start of a libpq keyword=value password (and
// sslpassword), as in "host=db password=s3cret" or a URL's
// ?password=s3cret.
var passwordPair = regexp.MustCompile(`(?i)\b(?:ssl)?password\s*=\s*`)

// secretAssignment matches `NAME = "literal"` for a secret attribute name,
// for comments, where a commented-out secret is still a secret.
var secretAssignment = func() *regexp.Regexp {
	names := make([]string, 0, len(maskedAttributeNames))
	for n := range maskedAttributeNames {
		names = append(names, regexp.QuoteMeta(n))
	}
	sort.Strings(names)
	return regexp.MustCompile(`\b(?:` + strings.Join(names, "|") + `)\s*[=:]\s*"`)
}()

// span is a byte range [start, end) of a file.
type span struct{ start, end int }

// secretSpans returns the byte ranges of src that snippets must not show,
// sorted and merged. It works on tokens, so that files that do not parse
// are masked as well as files that do.
func secretSpans(src []byte) []span {
	tokens, _ := hclsyntax.LexConfig(src, "", hcl.InitialPos)
	var spans []span
	add := func(start, end int) {
		if end > start {
			spans = append(spans, span{start, end})
		}
	}
	for i, tok := range tokens {
		switch tok.Type {
		case hclsyntax.TokenQuotedLit, hclsyntax.TokenStringLit, hclsyntax.TokenComment, hclsyntax.TokenInvalid:
			base := tok.Range.Start.Byte
			for _, s := range textSecrets(tok.Bytes, tok.Type == hclsyntax.TokenComment) {
				add(base+s.start, base+s.end)
			}
		case hclsyntax.TokenIdent:
			if maskedAttributeNames[string(tok.Bytes)] && i+1 < len(tokens) &&
				(tokens[i+1].Type == hclsyntax.TokenEqual || tokens[i+1].Type == hclsyntax.TokenColon) {
				for _, lit := range valueLiterals(tokens[i+2:]) {
					add(lit.Range.Start.Byte, lit.Range.End.Byte)
				}
			}
		}
	}
	spans = append(spans, notifySecretSpans(tokens)...)
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	merged := spans[:0]
	for _, s := range spans {
		if n := len(merged); n > 0 && s.start <= merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// valueLiterals returns the literal tokens of the expression that starts
// the token list: up to the end of its line, or further while brackets,
// interpolations or a heredoc are open.
func valueLiterals(tokens hclsyntax.Tokens) []hclsyntax.Token {
	var lits []hclsyntax.Token
	depth := 0
	for _, tok := range tokens {
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen, hclsyntax.TokenOHeredoc,
			hclsyntax.TokenOQuote, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			depth++
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenCHeredoc,
			hclsyntax.TokenCQuote, hclsyntax.TokenTemplateSeqEnd:
			depth--
			if depth < 0 {
				return lits
			}
		case hclsyntax.TokenQuotedLit, hclsyntax.TokenStringLit, hclsyntax.TokenNumberLit, hclsyntax.TokenInvalid:
			lits = append(lits, tok)
		case hclsyntax.TokenNewline, hclsyntax.TokenComment, hclsyntax.TokenQuotedNewline, hclsyntax.TokenEOF:
			if depth <= 0 || tok.Type == hclsyntax.TokenEOF {
				return lits
			}
		case hclsyntax.TokenComma:
			if depth == 0 {
				return lits
			}
		}
	}
	return lits
}

// textSecrets finds secrets in the text of one string literal, heredoc
// line or comment: URL passwords, password=... pairs, and in comments
// secret attributes given a quoted value.
func textSecrets(text []byte, comment bool) []span {
	var out []span
	// URL userinfo: scheme://user:PASSWORD@host. The password runs to the
	// last "@" before the next URL, so a password holding "@" or "/" is
	// masked whole (over-masking a path is harmless).
	for from := 0; ; {
		i := bytes.Index(text[from:], []byte("://"))
		if i < 0 {
			break
		}
		rest := from + i + 3
		end := len(text)
		if j := bytes.Index(text[rest:], []byte("://")); j >= 0 {
			end = rest + j
		}
		if at := bytes.LastIndexByte(text[rest:end], '@'); at >= 0 {
			if c := bytes.IndexByte(text[rest:rest+at], ':'); c >= 0 {
				out = append(out, span{rest + c + 1, rest + at})
			}
		}
		from = end
		if from >= len(text) {
			break
		}
	}
	for _, m := range passwordPair.FindAllIndex(text, -1) {
		out = append(out, span{m[1], m[1] + valueLength(text[m[1]:])})
	}
	if comment {
		for _, m := range secretAssignment.FindAllIndex(text, -1) {
			out = append(out, span{m[1], m[1] + quotedLength(text[m[1]:], '"')})
		}
	}
	return out
}

// valueLength is the length of a keyword=value value at the start of s:
// quoted with ' (libpq) or " (HCL), or up to the next space. Backslash
// escapes never end it, so `pa\"ss` is one value.
func valueLength(s []byte) int {
	if len(s) > 0 && (s[0] == '\'' || s[0] == '"') {
		return 1 + quotedLength(s[1:], s[0])
	}
	n := 0
	for n < len(s) {
		switch c := s[n]; {
		case c == '\\' && n+1 < len(s):
			n += 2
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '&':
			return n
		}
		n++
	}
	return n
}

// quotedLength is the length of a quoted value's content up to its
// closing quote (not included), skipping backslash escapes.
func quotedLength(s []byte, quote byte) int {
	for n := 0; n < len(s); n++ {
		switch s[n] {
		case '\\':
			n++
		case quote, '\n':
			return n
		}
	}
	return len(s)
}

// maskedLine is one source line as a snippet shows it.
type maskedLine struct {
	text  string
	spans []span // masked ranges of the original line, relative to its start
}

// maskLine masks the secrets of the line that starts at byte lineStart of
// its file.
func maskLine(line string, lineStart int, secrets []span) maskedLine {
	ml := maskedLine{text: line}
	lineEnd := lineStart + len(line)
	i := sort.Search(len(secrets), func(i int) bool { return secrets[i].end > lineStart })
	var b strings.Builder
	last := 0
	for ; i < len(secrets) && secrets[i].start < lineEnd; i++ {
		s, e := max(secrets[i].start, lineStart)-lineStart, min(secrets[i].end, lineEnd)-lineStart
		for s < e && (line[s] == ' ' || line[s] == '\t') {
			s++ // keep a heredoc line's indentation
		}
		for e > s && (line[e-1] == '\n' || line[e-1] == '\r') {
			e--
		}
		if s >= e || s < last {
			continue
		}
		b.WriteString(line[last:s])
		b.WriteString(secretMask)
		last = e
		ml.spans = append(ml.spans, span{s, e})
	}
	if ml.spans == nil {
		return ml
	}
	b.WriteString(line[last:])
	ml.text = b.String()
	return ml
}

// offset maps a byte offset of the original line to the masked one: an
// offset inside a masked secret moves to the start of its mask.
func (ml maskedLine) offset(off int) int {
	shift := 0
	for _, s := range ml.spans {
		switch {
		case off <= s.start:
			return off + shift
		case off < s.end:
			return s.start + shift
		}
		shift += len(secretMask) - (s.end - s.start)
	}
	return off + shift
}

// secretCache computes each file's secret spans once per rendering.
type secretCache map[*hcl.File][]span

func (c secretCache) of(f *hcl.File) []span {
	s, ok := c[f]
	if !ok {
		s = secretSpans(f.Bytes)
		c[f] = s
	}
	return s
}
