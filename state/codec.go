package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Errors that callers tell apart with errors.Is.
var (
	// ErrCorrupt marks a stored state that cannot be read. sluice never
	// starts over from an empty state in its place: that would forget the
	// replication slots and webhooks it created.
	ErrCorrupt = errors.New("state is corrupt")
	// ErrNewerFormat marks a state written by a newer sluice.
	ErrNewerFormat = errors.New("state was written by a newer sluice")
	// ErrStateChanged marks a Write whose state is behind the stored one
	// (another process wrote in between) or of another lineage.
	ErrStateChanged = errors.New("state changed since it was read")
)

// Encode returns the canonical JSON document of st: indented, map keys
// sorted (encoding/json sorts them), ending in a newline, so that two
// encodings of equal states are byte-identical and diffs stay small.
func Encode(st *State) ([]byte, error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(data, '\n'), nil
}

// Decode parses a state document; name says where it came from in errors
// ("state file .sluice/state.json"). It refuses documents of a newer format
// version and documents that are not sluice state, wrapping ErrNewerFormat
// or ErrCorrupt.
func Decode(data []byte, name string) (*State, error) {
	// The version is checked before the rest is decoded: a newer format may
	// give fields types this build cannot decode, and "upgrade sluice" is
	// the useful message then, not a type error.
	var head struct {
		FormatVersion *int    `json:"format_version"`
		Lineage       *string `json:"lineage"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, corrupt(name, data, err)
	}
	switch {
	case head.FormatVersion == nil:
		return nil, fmt.Errorf("%w: %s has no format_version; it is not a sluice state document", ErrCorrupt, name)
	case *head.FormatVersion > FormatVersion:
		return nil, fmt.Errorf("%w: %s has format version %d, this sluice reads up to %d; upgrade sluice", ErrNewerFormat, name, *head.FormatVersion, FormatVersion)
	case *head.FormatVersion < 1:
		return nil, fmt.Errorf("%w: %s has format version %d, which no sluice writes", ErrCorrupt, name, *head.FormatVersion)
	case head.Lineage == nil || *head.Lineage == "":
		return nil, fmt.Errorf("%w: %s has no lineage", ErrCorrupt, name)
	}
	st := &State{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, corrupt(name, data, err)
	}
	for addr, src := range st.Sources {
		if src == nil {
			return nil, fmt.Errorf("%w: %s: source %q is null", ErrCorrupt, name, addr)
		}
		for label, t := range src.Tables {
			if t == nil {
				return nil, fmt.Errorf("%w: %s: table %q of source %q is null", ErrCorrupt, name, label, addr)
			}
		}
	}
	st.normalize()
	st.migrate()
	return st, nil
}

// normalize gives every map a value, so that callers can add to a state
// they read without checking for nil first.
func (s *State) normalize() {
	if s.Sources == nil {
		s.Sources = map[string]*Source{}
	}
	for _, src := range s.Sources {
		if src.Settings == nil {
			src.Settings = map[string]string{}
		}
		if src.Tables == nil {
			src.Tables = map[string]*Table{}
		}
	}
}

// corrupt describes a JSON error with the line and column where it was
// found, which is what someone repairing the file by hand needs.
func corrupt(name string, data []byte, err error) error {
	var offset int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		offset = syn.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%w: %s is empty", ErrCorrupt, name)
	}
	if offset < 0 {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	line, col := lineCol(data, offset)
	return fmt.Errorf("%w: %s:%d:%d: %v", ErrCorrupt, name, line, col, err)
}

func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return line, col
}
