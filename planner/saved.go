package planner

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// SavedFormatVersion is the version of the saved-plan file format.
// Version 2 holds what each change records (Change.Planned), which apply
// applies; version 1 files did not, and are refused.
const SavedFormatVersion = 2

// Saved is a plan written by `plan -out`: the changes, and what they were
// computed from, so that apply can refuse it once the world moved on. It
// holds no secrets: the plan itself never does.
type Saved struct {
	FormatVersion int       `json:"format_version"`
	CreatedAt     time.Time `json:"created_at"`
	SluiceVersion string    `json:"sluice_version"`
	Plan          *Plan     `json:"plan"`
	// Planned is Change.Planned of each of Plan.Changes, in order: the
	// plan's JSON rendering (SPEC §3) leaves it out, a saved plan keeps it.
	Planned []*Planned `json:"planned"`
}

// WriteSaved writes a saved plan.
func WriteSaved(w io.Writer, p *Plan, version string, now time.Time) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	planned := make([]*Planned, len(p.Changes))
	for i, c := range p.Changes {
		planned[i] = c.Planned
	}
	return enc.Encode(Saved{FormatVersion: SavedFormatVersion, CreatedAt: now.UTC(), SluiceVersion: version, Plan: p, Planned: planned})
}

// ReadSaved reads a saved plan, refusing what is not one.
func ReadSaved(r io.Reader) (*Saved, error) {
	var s Saved
	dec := json.NewDecoder(r)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("not a saved sluice plan: %w", err)
	}
	switch {
	case s.FormatVersion == 1 && s.Plan != nil:
		return nil, fmt.Errorf("this plan was saved by an older sluice (saved-plan format 1), whose changes do not hold what apply records; make a new one with `sluice plan -out=FILE`")
	case s.FormatVersion > SavedFormatVersion && s.Plan != nil:
		return nil, fmt.Errorf("this plan was saved by a newer sluice (saved-plan format %d, this one reads %d); apply it with that sluice, or make a new one with `sluice plan -out=FILE`", s.FormatVersion, SavedFormatVersion)
	case s.FormatVersion != SavedFormatVersion || s.Plan == nil:
		return nil, fmt.Errorf("not a saved sluice plan (format_version %d); write one with `sluice plan -out=FILE`", s.FormatVersion)
	case len(s.Planned) != len(s.Plan.Changes):
		return nil, fmt.Errorf("damaged saved plan: %d changes but %d planned states; make a new one with `sluice plan -out=FILE`", len(s.Plan.Changes), len(s.Planned))
	}
	for i := range s.Plan.Changes {
		s.Plan.Changes[i].Planned = s.Planned[i]
	}
	return &s, nil
}

// Stale explains why a saved plan no longer applies to fresh, a plan made
// now from the same inputs, or returns "" when it still does.
func (s *Saved) Stale(fresh *Plan) string {
	old := s.Plan
	// An empty state has a fresh lineage at every read until its first
	// write, so two empty states are the same history.
	bothEmpty := old.StateSerial == 0 && fresh.StateSerial == 0
	switch {
	case old.StateLineage != fresh.StateLineage && !bothEmpty:
		return fmt.Sprintf("the state is another history (lineage %s, the plan was made for %s)", fresh.StateLineage, old.StateLineage)
	case old.StateSerial != fresh.StateSerial:
		return fmt.Sprintf("the state changed since the plan was made (serial %d, the plan was made at %d)", fresh.StateSerial, old.StateSerial)
	case old.ConfigHash != fresh.ConfigHash:
		return "the configuration changed since the plan was made"
	case old.Refreshed && old.ObservedHash != fresh.ObservedHash:
		return "the live sources changed since the plan was made"
	}
	return ""
}
