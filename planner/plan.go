// Package planner computes what apply would change: the desired
// configuration x the recorded state x what introspection observed -> a
// Plan. It is pure: no I/O, the same inputs give the same plan, so it is
// tested with tables of inputs and no database.
package planner

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/state"
)

// Action is what a change does.
type Action string

// The actions of SPEC §3.
const (
	Create  Action = "create"
	Update  Action = "update"
	Delete  Action = "delete"
	Replace Action = "replace"
	Resync  Action = "resync" // the table's data will be reloaded
	NoOp    Action = "no-op"
)

// Symbol is the mark the text rendering puts before a change, as Terraform
// does; resync has its own so that a reload is never missed in review.
func (a Action) Symbol() string {
	switch a {
	case Create:
		return "+"
	case Update:
		return "~"
	case Delete:
		return "-"
	case Replace:
		return "-/+"
	case Resync:
		return "!"
	}
	return " "
}

// Change kinds.
const (
	KindSource      = "source"
	KindTable       = "table"
	KindPublication = "publication"
	KindSlot        = "slot"
	KindWebhook     = "webhook"
)

// Change is one thing apply will do.
type Change struct {
	Address string   `json:"address"`
	Kind    string   `json:"kind"`
	Action  Action   `json:"action"`
	Reasons []string `json:"reasons"`
	// Before and After are the settings before and after, with sensitive
	// values replaced by "(sensitive)"; nil for a create (Before) or a
	// delete (After).
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	// Sensitive names the attributes whose values are hidden.
	Sensitive []string `json:"sensitive,omitempty"`
	// Warnings are said next to the change (e.g. what disabling a cdc table
	// loses).
	Warnings []string `json:"warnings,omitempty"`
	// Planned is what apply records for the change, as the planner
	// computed it: apply applies it and does not compute the desired state
	// again (OpenTofu's Change.After). Before and After are its display.
	// It is left out of the plan's JSON rendering (SPEC §3) and kept in
	// saved plans.
	Planned *Planned `json:"-"`
}

// Planned is the recorded state a change leads to, by kind of change.
// Connection secrets are never in it (only their fingerprints, in Source);
// apply reads them from the configuration when it connects.
type Planned struct {
	// Source holds the settings, fingerprints and prefix of a source
	// (KindSource); its tables and resources are other changes.
	Source *state.Source `json:"source,omitempty"`
	// Table and Prefix are a table and its source's prefix (KindTable).
	// Apply adds what only it knows: when it applied, and the resync it
	// requests.
	Table  *state.Table `json:"table,omitempty"`
	Prefix string       `json:"prefix,omitempty"`
	// Publication and Management are a source's publication (its name and
	// tables) and whether sluice manages it (KindPublication; Publication
	// is nil for a delete).
	Publication *state.PublicationState `json:"publication,omitempty"`
	Management  string                  `json:"management,omitempty"`
	// Slot is a replication slot's name and plugin (KindSlot).
	Slot *state.SlotState `json:"slot,omitempty"`
	// Webhook is a webhook endpoint's URL and event types (KindWebhook).
	Webhook *state.WebhookState `json:"webhook,omitempty"`
}

// Drift is a difference between the live source and recorded state that
// the configuration did not cause.
type Drift struct {
	Address string `json:"address"`
	Kind    string `json:"kind"`
	Detail  string `json:"detail"`
	// Severity is "warning" or "critical" for lag, "" otherwise.
	Severity string `json:"severity,omitempty"`
}

// Summary counts the changes by action, and the drift.
type Summary struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Delete  int `json:"delete"`
	Replace int `json:"replace"`
	Resync  int `json:"resync"`
	Drift   int `json:"drift"`
}

// Plan is the result of planning.
type Plan struct {
	Changes     []Change        `json:"changes"`
	Drift       []Drift         `json:"drift"`
	Diagnostics hcl.Diagnostics `json:"-"`

	// What the plan was made from, so that a saved plan can tell it is
	// stale: the state's lineage and serial, a hash of the desired
	// configuration (secrets by fingerprint) and of the observed sources.
	StateLineage string `json:"state_lineage"`
	StateSerial  int64  `json:"state_serial"`
	ConfigHash   string `json:"config_hash"`
	ObservedHash string `json:"observed_hash"`
	// Refreshed reports whether the live sources were introspected.
	Refreshed bool     `json:"refreshed"`
	Targets   []string `json:"targets,omitempty"`
}

// Summary counts the plan's changes.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			s.Create++
		case Update:
			s.Update++
		case Delete:
			s.Delete++
		case Replace:
			s.Replace++
		case Resync:
			s.Resync++
		}
	}
	s.Drift = len(p.Drift)
	return s
}

// Empty reports whether there is nothing to do and nothing drifted.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 && len(p.Drift) == 0 }

// HasErrors reports whether planning found errors; such a plan must not be
// applied.
func (p *Plan) HasErrors() bool { return p.Diagnostics.HasErrors() }
