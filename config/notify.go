package config

import (
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Notify is one `notify "NAME"` block: where the runner POSTs a JSON
// message when a table fails, recovers or goes stale, or a source's slot
// lags (package runner/notify).
type Notify struct {
	Name string
	// URL is the endpoint, always sensitive: a Slack incoming webhook's
	// URL is its credential. It is never printed nor logged.
	URL string
	// On lists the events sent, in the order of NotifyEvents (default
	// failure and recovery).
	On []string
	// StaleAfter is how old a table's last successful sync may get
	// before a "stale" message; set (required) when On holds "stale".
	StaleAfter time.Duration
	Attrs      map[string]hcl.Range
	DeclRange  hcl.Range
}

// Wants reports whether the block asks for event.
func (n *Notify) Wants(event string) bool { return containsString(n.On, event) }

// NotifyEvents are the events a notify block's on may list.
var NotifyEvents = []string{"failure", "recovery", "stale", "wal_lag"}

// defaultNotifyEvents are sent when on is not set.
var defaultNotifyEvents = []string{"failure", "recovery"}

var notifySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "url"},
		{Name: "on"},
		{Name: "stale_after"},
	},
}

// decodeNotify decodes the notify blocks. stale_after has no default: what
// is stale depends on the schedules (a 5m table is stale long before a
// daily one), so "stale" needs it said.
func (l *loader) decodeNotify(blocks hcl.Blocks) {
	seen := map[string]*Notify{}
	for _, b := range blocks {
		n := &Notify{Name: b.Labels[0], On: defaultNotifyEvents, Attrs: map[string]hcl.Range{}, DeclRange: b.DefRange}
		if first := seen[n.Name]; first != nil {
			l.e.diags = append(l.e.diags, errorAt(b.LabelRanges[0], "Duplicate notify block",
				"A notify block named %q is already declared at %s; each notify block needs a name of its own.", n.Name, first.DeclRange))
			continue
		}
		if !variableNamePattern.MatchString(n.Name) {
			l.e.diags = append(l.e.diags, errorAt(b.LabelRanges[0], "Invalid notify name",
				"A notify block's name starts with a letter or underscore and holds letters, digits, underscores and dashes; `sluice notify test NAME` names it."))
		}
		seen[n.Name] = n
		// url is sensitive whatever it derives from: the sensitive map
		// is not kept, url always is.
		a := &attrs{e: &l.e, m: l.content(b, notifySchema), ranges: n.Attrs, sensitive: map[string]bool{}, unknown: l.unknownOf(n)}
		if !a.has("url") {
			l.e.diags = append(l.e.diags, errorAt(b.DefRange, "Missing notify URL",
				`A notify block needs url, the HTTPS endpoint that takes the JSON messages, such as url = env("SLACK_WEBHOOK_URL").`))
		} else if a.str("url", &n.URL) {
			// The details never quote the URL: it is a credential.
			u, err := url.Parse(n.URL)
			switch {
			case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
				a.errorf("url", "Invalid notify URL", "url must be an https:// URL, such as a Slack incoming webhook's.")
			case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
				a.errorf("url", "Notify URL is not HTTPS",
					"The messages would travel unencrypted, and a webhook URL is a credential: use https://. http:// is allowed only for a loopback host (localhost, 127.0.0.1, ::1), for tests.")
			}
		}
		if a.strings("on", &n.On) {
			var on []string
			bad := false
			for _, ev := range n.On {
				if !containsString(NotifyEvents, ev) {
					bad = true
					a.errorf("on", "Unknown notify event", "%q is not an event; on lists some of: %s.%s", ev, strings.Join(NotifyEvents, ", "), suggest(ev, NotifyEvents))
					continue
				}
				if !containsString(on, ev) {
					on = append(on, ev)
				}
			}
			// In the documented order, so that messages and tests do not
			// depend on how on was written.
			n.On = n.On[:0]
			for _, ev := range NotifyEvents {
				if containsString(on, ev) {
					n.On = append(n.On, ev)
				}
			}
			if len(n.On) == 0 && !bad {
				a.warnf("on", "Notify block sends nothing", "on is empty: the block %q sends no message. List some of: %s.", n.Name, strings.Join(NotifyEvents, ", "))
			}
		}
		var stale string
		if a.str("stale_after", &stale) {
			if d, err := ParseDuration(stale); err != nil || d <= 0 {
				a.errorf("stale_after", "Invalid stale_after", "stale_after must be a positive duration, such as 3h or 2d: how old a table's last successful sync may get before a stale message.")
			} else {
				n.StaleAfter = d
			}
			if !n.Wants("stale") && !a.isUnknown("on") && !a.isUnknown("stale_after") {
				a.warnf("stale_after", "stale_after ignored", `on does not list "stale", so no stale message is sent; add "stale" to on, or remove stale_after.`)
			}
		} else if !a.has("stale_after") && n.Wants("stale") {
			a.errorf("on", "Missing stale_after",
				`on lists "stale", which needs stale_after: how old a table's last successful sync may get before a stale message, such as stale_after = "3h". No default fits every schedule.`)
		}
		l.cfg.Notify = append(l.cfg.Notify, n)
	}
}

// isLoopbackHost reports whether host names this machine: a name or an
// address, so that http:// stays within it.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// notifySecretSpans returns the literals of every notify block's url, which
// snippets mask: unlike a database URL, a webhook URL is a credential
// whole (Slack's carries its token in the path), so masking its password
// is not enough.
func notifySecretSpans(tokens hclsyntax.Tokens) []span {
	var out []span
	depth, notifyDepth := 0, -1
	for i, tok := range tokens {
		switch tok.Type {
		case hclsyntax.TokenOBrace:
			depth++
			// A notify block's body: `notify "NAME" {` (at the top level).
			if depth == 1 && i >= 2 && isNotifyHeader(tokens[:i]) {
				notifyDepth = depth
			}
		case hclsyntax.TokenCBrace:
			if depth == notifyDepth {
				notifyDepth = -1
			}
			depth--
		case hclsyntax.TokenIdent:
			if notifyDepth > 0 && depth == notifyDepth && string(tok.Bytes) == "url" && i+1 < len(tokens) &&
				(tokens[i+1].Type == hclsyntax.TokenEqual || tokens[i+1].Type == hclsyntax.TokenColon) {
				for _, lit := range valueLiterals(tokens[i+2:]) {
					out = append(out, span{lit.Range.Start.Byte, lit.Range.End.Byte})
				}
			}
		}
	}
	return out
}

// isNotifyHeader reports whether the tokens before a "{" end with a notify
// block's header: the word notify and its label, quoted or bare.
func isNotifyHeader(before hclsyntax.Tokens) bool {
	i := len(before) - 1
	switch before[i].Type {
	case hclsyntax.TokenCQuote:
		for i >= 0 && before[i].Type != hclsyntax.TokenOQuote {
			i--
		}
		i--
	case hclsyntax.TokenIdent:
		i--
	default:
		return false
	}
	return i >= 0 && before[i].Type == hclsyntax.TokenIdent && string(before[i].Bytes) == "notify"
}
