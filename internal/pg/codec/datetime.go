package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
)

// date, time, timestamp and timestamptz: PostgreSQL's epoch, the ranges
// the server accepts, the binary forms and the ISO text forms, read and
// written.

// PostgreSQL's epoch is 2000-01-01, Parquet's (Unix's) 1970-01-01.
const (
	pgEpochDays   = 10957
	PGEpochMicros = pgEpochDays * 86400 * 1000000
)

// appendDate writes days since 1970-01-01 as PostgreSQL's ISO date, years
// before 1 as "BC".
func appendDate(out []byte, days int64) []byte {
	t := time.Unix(days*86400, 0).UTC()
	out = appendYMD(out, t)
	if t.Year() <= 0 {
		out = append(out, " BC"...)
	}
	return out
}

// appendTime writes microseconds since midnight (24:00:00 included).
func appendTime(out []byte, us int64) []byte {
	out = appendPadded(out, us/3_600_000_000, 2)
	out = append(out, ':')
	out = appendPadded(out, us/60_000_000%60, 2)
	out = append(out, ':')
	out = appendPadded(out, us/1_000_000%60, 2)
	out = append(out, '.')
	return appendPadded(out, us%1_000_000, 6)
}

// AppendTimestamp writes microseconds since 1970-01-01 00:00 (UTC for
// timestamptz).
func AppendTimestamp(out []byte, us int64, tz bool) []byte {
	day := us / microsPerDay
	rem := us % microsPerDay
	if rem < 0 {
		day--
		rem += microsPerDay
	}
	t := time.Unix(day*86400, 0).UTC()
	out = appendYMD(out, t)
	out = append(out, ' ')
	out = appendTime(out, rem)
	if tz {
		out = append(out, "+00"...)
	}
	if t.Year() <= 0 {
		out = append(out, " BC"...)
	}
	return out
}

// usecsPerDay is time's upper bound: 24:00:00 is valid.
const usecsPerDay = 86_400_000_000

// The range date_recv and timestamp_recv accept (IS_VALID_DATE,
// IS_VALID_TIMESTAMP), in days and µs since 1970-01-01: 4714-11-24 BC to
// 5874897-12-31 for dates, 4714-11-24 00:00 BC onwards for timestamps
// (their end, 294277-01-01, lies beyond math.MaxInt64 µs after 1970). The
// encoders check it themselves because moving a value to the 2000 epoch
// could wrap, and the ends of the int32 and int64 ranges mean ±infinity
// there, which no batch value means.
const (
	minDateDays    = -2451545 + pgEpochDays
	endDateDays    = 2145031949 + pgEpochDays
	minTimestampUs = -211813488000000000 + PGEpochMicros
)

// appendBinaryDate moves a DATE to PostgreSQL's epoch, refusing what
// date_recv would (and what would wrap into ±infinity).
func appendBinaryDate(out []byte, v *records.Vec, i int) ([]byte, error) {
	d := int64(v.I32[i])
	if d < minDateDays || d >= endDateDays {
		return out, fmt.Errorf("date out of range: %d days from 1970-01-01", d)
	}
	return binary.BigEndian.AppendUint32(out, uint32(int32(d-pgEpochDays))), nil
}

// appendBinaryTime writes microseconds since midnight, 24:00:00 included
// as time_recv allows.
func appendBinaryTime(out []byte, v *records.Vec, i int) ([]byte, error) {
	us := v.I64[i]
	if us < 0 || us > usecsPerDay {
		return out, fmt.Errorf("time out of range: %d microseconds from midnight", us)
	}
	return binary.BigEndian.AppendUint64(out, uint64(us)), nil
}

// appendBinaryTimestamp moves a TIMESTAMP to PostgreSQL's epoch; both
// timestamp and timestamptz hold UTC microseconds.
func appendBinaryTimestamp(out []byte, v *records.Vec, i int) ([]byte, error) {
	us := v.I64[i]
	if us < minTimestampUs {
		return out, fmt.Errorf("timestamp out of range: %d microseconds from 1970-01-01", us)
	}
	return binary.BigEndian.AppendUint64(out, uint64(us-PGEpochMicros)), nil
}

// appendYMD appends an ISO date, the year of the BC era as PostgreSQL
// counts it (year 0 is 1 BC; appendEra adds the " BC").
func appendYMD(dst []byte, t time.Time) []byte {
	y := int64(t.Year())
	if y <= 0 {
		y = 1 - y
	}
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int64(t.Month()), 2)
	dst = append(dst, '-')
	return appendPadded(dst, int64(t.Day()), 2)
}

func appendEra(dst []byte, t time.Time) []byte {
	if t.Year() <= 0 {
		return append(dst, " BC"...)
	}
	return dst
}

func appendClock(dst []byte, h, m, s, us int64) []byte {
	dst = appendPadded(dst, h, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, m, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, s, 2)
	if us != 0 {
		dst = append(dst, '.')
		dst = appendPadded(dst, us, 6)
	}
	return dst
}

func appendPadded(dst []byte, n int64, width int) []byte {
	var buf [20]byte
	digits := strconv.AppendInt(buf[:0], n, 10)
	for i := len(digits); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, digits...)
}

// Date and time ranges: PostgreSQL's dates run from 4713 BC to 5874897
// AD; nothing outside (or a year of more digits) is a value it prints.
const (
	minTextYear = -4713
	maxTextYear = 5874898
)

// parseTextDate parses "2026-11-21" or "0044-03-15 BC" into days since
// 1970-01-01.
func parseTextDate(s []byte) (int64, bool) {
	s, bc := cutTextBC(s)
	days, rest, ok := parseTextYMD(s, bc)
	if !ok || len(rest) != 0 {
		return 0, false
	}
	return days, true
}

// cutTextBC removes a trailing " BC".
func cutTextBC(s []byte) ([]byte, bool) {
	if n := len(s); n > 3 && string(s[n-3:]) == " BC" {
		return s[:n-3], true
	}
	return s, false
}

// parseTextYMD parses "YYYY-MM-DD" (four or more year digits) at the start of
// s into days since 1970-01-01 of the proleptic Gregorian calendar (1 BC
// is year 0), and returns what follows.
func parseTextYMD(s []byte, bc bool) (days int64, rest []byte, ok bool) {
	i := 0
	var year int64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		year = year*10 + int64(s[i]-'0')
		i++
		if i > 7 {
			return 0, nil, false
		}
	}
	if i < 4 || len(s) < i+6 || s[i] != '-' || s[i+3] != '-' {
		return 0, nil, false
	}
	month, ok1 := textTwoDigits(s[i+1:])
	day, ok2 := textTwoDigits(s[i+4:])
	if !ok1 || !ok2 {
		return 0, nil, false
	}
	if bc {
		if year == 0 {
			return 0, nil, false
		}
		year = 1 - year
	}
	if year < minTextYear || year > maxTextYear || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) {
		return 0, nil, false
	}
	return daysFromCivil(year, month, day), s[i+6:], true
}

func textTwoDigits(s []byte) (int64, bool) {
	if len(s) < 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int64(s[0]-'0')*10 + int64(s[1]-'0'), true
}

func daysInMonth(year, month int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts the days from 1970-01-01 to y-m-d (Howard
// Hinnant's algorithm, exact for every proleptic Gregorian date).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

const (
	microsPerSecond = 1_000_000
	microsPerDay    = 86400 * microsPerSecond
)

// parseTextTime parses "HH:MM:SS[.ffffff]" (24:00:00 included) into
// microseconds since midnight.
func parseTextTime(s []byte) (int64, bool) {
	us, rest, ok := parseTextHMS(s)
	if !ok || len(rest) != 0 {
		return 0, false
	}
	return us, true
}

func parseTextHMS(s []byte) (us int64, rest []byte, ok bool) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' {
		return 0, nil, false
	}
	h, ok1 := textTwoDigits(s)
	m, ok2 := textTwoDigits(s[3:])
	sec, ok3 := textTwoDigits(s[6:])
	if !ok1 || !ok2 || !ok3 || h > 24 || m > 59 || sec > 60 {
		return 0, nil, false
	}
	us = ((h*60+m)*60 + sec) * microsPerSecond
	i := 8
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		var frac int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start >= 6 {
				return 0, nil, false
			}
			frac = frac*10 + int64(s[i]-'0')
			i++
		}
		if i == start {
			return 0, nil, false
		}
		for n := i - start; n < 6; n++ {
			frac *= 10
		}
		us += frac
	}
	if us > microsPerDay {
		return 0, nil, false
	}
	return us, s[i:], true
}

// parseTextTimestamp parses "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]"
// into microseconds since 2000-01-01 (PostgreSQL's epoch, in which every
// timestamp it holds fits in an int64), UTC when tz is set.
func parseTextTimestamp(s []byte, tz bool) (int64, bool) {
	s, bc := cutTextBC(s)
	days, rest, ok := parseTextYMD(s, bc)
	if !ok || len(rest) < 1 || rest[0] != ' ' {
		return 0, false
	}
	tod, rest, ok := parseTextHMS(rest[1:])
	if !ok {
		return 0, false
	}
	var offset int64 // seconds east of UTC
	if tz {
		if offset, ok = parseTextOffset(rest); !ok {
			return 0, false
		}
	} else if len(rest) != 0 {
		return 0, false
	}
	days -= pgEpochDays
	if days > maxTimestampDays || days < -maxTimestampDays {
		return 0, false
	}
	return days*microsPerDay + tod - offset*microsPerSecond, true
}

// maxTimestampDays bounds the days (from 2000-01-01) of a timestamp, far
// beyond PostgreSQL's 294276 AD, so that adding the time of day and an
// offset (less than two days together) cannot overflow.
const maxTimestampDays = math.MaxInt64/microsPerDay - 2

// parseTextOffset parses a time zone offset: +HH, +HH:MM or +HH:MM:SS.
func parseTextOffset(s []byte) (int64, bool) {
	if len(s) < 3 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	h, ok := textTwoDigits(s[1:])
	if !ok {
		return 0, false
	}
	secs := h * 3600
	rest := s[3:]
	for _, mult := range []int64{60, 1} {
		if len(rest) == 0 {
			break
		}
		if rest[0] != ':' {
			return 0, false
		}
		n, ok := textTwoDigits(rest[1:])
		if !ok || n > 59 {
			return 0, false
		}
		secs += n * mult
		rest = rest[3:]
	}
	if len(rest) != 0 || h > 15 {
		return 0, false
	}
	if s[0] == '-' {
		secs = -secs
	}
	return secs, true
}
