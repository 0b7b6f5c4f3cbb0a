package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
)

// This file keeps the values a column's Parquet type cannot hold exactly
// (SPEC §5): ±infinity dates and timestamps, numeric NaN and ±Infinity in
// a DECIMAL, arrays of several dimensions or with other lower bounds than
// 1, lists with such elements. The batch gets what the Parquet warehouse
// writes (NULL, counted in Vec.Nulled, or the list without its bounds)
// and, beside it, the value's exact text form (Vec.SetExact), which a
// warehouse whose columns keep the source's types writes instead. Both
// the binary path (snapshot, cursor) and the text path (CDC) give the
// same text, so a row has the same values by every path in both
// warehouses.

// DecodeColumn decodes the non-null binary value b of a batch column,
// recording its exact text form when the Parquet type does not hold it.
func (d *Decoder) DecodeColumn(v *records.Vec, b []byte) error {
	before := v.Nulled
	if err := d.decode(v, b, &v.Nulled); err != nil {
		return err
	}
	nulled := v.Nulled - before
	switch d.kind {
	case decTextList:
		if nulled > 0 || len(b) > 0 && b[0] == '[' {
			v.SetExact(b, nulled)
		}
		return nil
	case decList:
		if nulled == 0 && !arrayKeepsShape(b) {
			return nil
		}
	default:
		if nulled == 0 {
			return nil
		}
	}
	var err error
	if d.buf, err = d.appendText(d.buf[:0], b); err != nil {
		return err
	}
	v.SetExact(d.buf, nulled)
	return nil
}

// arrayKeepsShape reports whether a binary array a LIST holds as it is
// still needs its text form: one of several dimensions, or one whose lower
// bound is not 1.
func arrayKeepsShape(b []byte) bool {
	if len(b) < 12 {
		return false
	}
	ndim := int32(binary.BigEndian.Uint32(b))
	if ndim > 1 {
		return true
	}
	return ndim == 1 && len(b) >= 20 && int32(binary.BigEndian.Uint32(b[16:])) != 1
}

// appendText appends the text form of the binary value b: one that the
// type's input function reads back as the same value, in a session with
// any DateStyle and TimeZone (ISO dates, timestamps with an explicit
// offset, which a timestamp without time zone ignores).
func (d *Decoder) appendText(dst, b []byte) ([]byte, error) {
	switch d.kind {
	case decBool:
		if len(b) != 1 {
			return dst, lenError("boolean", len(b), 1)
		}
		if b[0] != 0 {
			return append(dst, 't'), nil
		}
		return append(dst, 'f'), nil
	case decInt2:
		if len(b) != 2 {
			return dst, lenError("smallint", len(b), 2)
		}
		return strconv.AppendInt(dst, int64(int16(binary.BigEndian.Uint16(b))), 10), nil
	case decInt4:
		if len(b) != 4 {
			return dst, lenError("integer", len(b), 4)
		}
		return strconv.AppendInt(dst, int64(int32(binary.BigEndian.Uint32(b))), 10), nil
	case decInt8:
		if len(b) != 8 {
			return dst, lenError("bigint", len(b), 8)
		}
		return strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(b)), 10), nil
	case decFloat4:
		if len(b) != 4 {
			return dst, lenError("real", len(b), 4)
		}
		return appendFloatText(dst, float64(math.Float32frombits(binary.BigEndian.Uint32(b))), 32), nil
	case decFloat8:
		if len(b) != 8 {
			return dst, lenError("double precision", len(b), 8)
		}
		return appendFloatText(dst, math.Float64frombits(binary.BigEndian.Uint64(b)), 64), nil
	case decNumeric32, decNumeric64, decNumericFixed, decNumericText:
		n, err := parseNumeric(b)
		if err != nil {
			return dst, err
		}
		return n.appendText(dst), nil
	case decBytes:
		if d.bytea {
			return appendBytea(dst, b), nil
		}
		return append(dst, b...), nil
	case decJSONB:
		if len(b) < 1 || b[0] != 1 {
			return dst, errors.New("jsonb value without version 1 header")
		}
		return append(dst, b[1:]...), nil
	case decDate:
		if len(b) != 4 {
			return dst, lenError("date", len(b), 4)
		}
		switch raw := int32(binary.BigEndian.Uint32(b)); raw {
		case math.MinInt32:
			return append(dst, "-infinity"...), nil
		case math.MaxInt32:
			return append(dst, "infinity"...), nil
		default:
			return appendDate(dst, int64(raw)+pgEpochDays), nil
		}
	case decTime:
		if len(b) != 8 {
			return dst, lenError("time", len(b), 8)
		}
		us := int64(binary.BigEndian.Uint64(b))
		if us < 0 {
			return dst, fmt.Errorf("time value of %d µs", us)
		}
		return appendClock(dst, us/3600e6, us/60e6%60, us/1e6%60, us%1e6), nil
	case decTimestamp:
		if len(b) != 8 {
			return dst, lenError("timestamp", len(b), 8)
		}
		switch us := int64(binary.BigEndian.Uint64(b)); us {
		case math.MinInt64:
			return append(dst, "-infinity"...), nil
		case math.MaxInt64:
			return append(dst, "infinity"...), nil
		default:
			sec, frac := us/1e6, us%1e6
			if frac < 0 {
				sec, frac = sec-1, frac+1e6
			}
			t := time.Unix(sec+PGEpochMicros/1e6, 0).UTC()
			dst = append(appendYMD(dst, t), ' ')
			dst = appendClock(dst, int64(t.Hour()), int64(t.Minute()), int64(t.Second()), frac)
			// The offset makes a timestamptz exact whatever the reading
			// session's TimeZone; a timestamp ignores it.
			return appendEra(append(dst, "+00"...), t), nil
		}
	case decUUID:
		if len(b) != 16 {
			return dst, lenError("uuid", len(b), 16)
		}
		return appendUUID(dst, b), nil
	case decList:
		return d.appendArrayText(dst, b)
	case decTextList:
		return append(dst, b...), nil
	}
	return dst, fmt.Errorf("unknown decoder %d", d.kind)
}
