package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Schedule is how often a table syncs: every Interval, or once a day at a
// fixed UTC time when Daily is set.
type Schedule struct {
	Interval time.Duration
	Daily    bool
	// At is the time of day (UTC) of a daily schedule, as an offset from
	// midnight.
	At time.Duration
}

// String renders the schedule the way it is written in configuration.
func (s Schedule) String() string {
	if s.Daily {
		m := int(s.At / time.Minute)
		return fmt.Sprintf("daily@%02d:%02d", m/60, m%60)
	}
	return formatDuration(s.Interval)
}

// IsZero reports whether no schedule was set.
func (s Schedule) IsZero() bool { return !s.Daily && s.Interval == 0 }

// Next returns the first time strictly after last at which a sync is due.
// A zero last (never synced) is due at once, which the caller handles.
func (s Schedule) Next(last time.Time) time.Time {
	if !s.Daily {
		return last.Add(s.Interval)
	}
	last = last.UTC()
	day := time.Date(last.Year(), last.Month(), last.Day(), 0, 0, 0, 0, time.UTC)
	next := day.Add(s.At)
	if !next.After(last) {
		next = day.AddDate(0, 0, 1).Add(s.At)
	}
	return next
}

// MinFrequency is the shortest sync interval sluice accepts; shorter ones
// would hammer the source for little gain (use cdc for freshness).
const MinFrequency = time.Minute

// ParseSchedule parses a frequency: a duration such as "5m", "1h", "24h",
// "7d", or "daily@HH:MM" (UTC).
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "daily@"); ok {
		hh, mm, ok := strings.Cut(rest, ":")
		h, err1 := strconv.Atoi(hh)
		m, err2 := strconv.Atoi(mm)
		if !ok || err1 != nil || err2 != nil || len(hh) != 2 || len(mm) != 2 || h > 23 || m > 59 || h < 0 || m < 0 {
			return Schedule{}, fmt.Errorf("%q is not a daily schedule: write daily@HH:MM with a 24-hour UTC time, such as daily@02:30", s)
		}
		return Schedule{Daily: true, At: time.Duration(h)*time.Hour + time.Duration(m)*time.Minute}, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return Schedule{}, err
	}
	if d < MinFrequency {
		return Schedule{}, fmt.Errorf("frequency %q is shorter than the minimum of %s; use sync = \"cdc\" for fresher data", s, formatDuration(MinFrequency))
	}
	return Schedule{Interval: d}, nil
}

// ParseDuration parses Go durations ("90s", "1h30m") and adds a day unit
// ("7d"), which schedules need and time.ParseDuration lacks.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, fmt.Errorf("empty duration: write a number and a unit, such as 30m, 6h or 1d")
	}
	var total time.Duration
	// Split off whole days, then leave the rest to the standard parser.
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: write a number and a unit, such as 30m, 6h or 1d", orig)
		}
		total = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return total, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration: write a number and a unit, such as 30m, 6h or 1d", orig)
	}
	return total + d, nil
}

func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

var sizeUnits = map[string]float64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// ParseSize parses a byte size such as "512MiB", "1GiB", "1.5GB" or "1024".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	n, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a size: write a number and a unit, such as 512MiB, 1GiB or 10GB", s)
	}
	v := n * mult
	if v <= 0 || v > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is out of range: it must be more than zero", s)
	}
	return int64(v), nil
}

// FormatSize renders a byte count with a binary unit, the way lag
// thresholds are usually written.
func FormatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f == math.Trunc(f) {
		return fmt.Sprintf("%d%s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}
