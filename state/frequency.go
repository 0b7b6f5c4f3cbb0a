package state

import (
	"fmt"

	"github.com/sluice-dev/sluice/config"
)

// Frequency is a table's recorded schedule, written as the configuration
// writes it ("6h", "daily@02:30"). Text that is not a frequency (a state
// edited by hand) is kept as it was in Invalid, so that the state still
// reads, apply can correct it and a re-encoding does not lose it; Schedule
// reports it as an error, and nothing falls back to a default.
type Frequency struct {
	Schedule config.Schedule
	// Invalid is the recorded text when it does not parse.
	Invalid string
}

// NewFrequency records a schedule.
func NewFrequency(s config.Schedule) Frequency { return Frequency{Schedule: s} }

// ParseFrequency reads a recorded frequency; text that does not parse is
// kept in Invalid.
func ParseFrequency(s string) Frequency {
	var f Frequency
	_ = f.UnmarshalText([]byte(s))
	return f
}

// String is the frequency as written in state.
func (f Frequency) String() string {
	if f.Invalid != "" || f.Schedule.IsZero() {
		return f.Invalid
	}
	return f.Schedule.String()
}

// Get returns the schedule, or an error saying why the recorded text is
// not one. The caller names the table.
func (f Frequency) Get() (config.Schedule, error) {
	if f.Invalid == "" && !f.Schedule.IsZero() {
		return f.Schedule, nil
	}
	if f.Invalid == "" {
		return config.Schedule{}, fmt.Errorf("no frequency is recorded; run `sluice apply` to record one")
	}
	_, err := config.ParseSchedule(f.Invalid)
	return config.Schedule{}, fmt.Errorf("recorded frequency %q is invalid (%v); run `sluice apply` to record the configured one", f.Invalid, err)
}

// MarshalText implements encoding.TextMarshaler.
func (f Frequency) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. It never fails: see
// Frequency.
func (f *Frequency) UnmarshalText(b []byte) error {
	*f = Frequency{}
	if len(b) == 0 {
		return nil
	}
	s, err := config.ParseSchedule(string(b))
	if err != nil {
		f.Invalid = string(b)
		return nil
	}
	f.Schedule = s
	return nil
}
