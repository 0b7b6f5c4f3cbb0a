package planner

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// SavedFormatVersion is the version of the saved-plan file format.
const SavedFormatVersion = 1

// Saved is a plan written by `plan -out`: the changes, and what they were
// computed from, so that apply can refuse it once the world moved on. It
// holds no secrets: the plan itself never does.
type Saved struct {
	FormatVersion int       `json:"format_version"`
	CreatedAt     time.Time `json:"created_at"`
	SluiceVersion string    `json:"sluice_version"`
	Plan          *Plan     `json:"plan"`
}

// WriteSaved writes a saved plan.
func WriteSaved(w io.Writer, p *Plan, version string, now time.Time) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Saved{FormatVersion: SavedFormatVersion, CreatedAt: now.UTC(), SluiceVersion: version, Plan: p})
}

// ReadSaved reads a saved plan, refusing what is not one.
func ReadSaved(r io.Reader) (*Saved, error) {
	var s Saved
	dec := json.NewDecoder(r)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("not a saved sluice plan: %w", err)
	}
	if s.FormatVersion != SavedFormatVersion || s.Plan == nil {
		return nil, fmt.Errorf("not a saved sluice plan (format_version %d); write one with `sluice plan -out=FILE`", s.FormatVersion)
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
