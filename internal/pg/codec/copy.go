package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/records"
)

// COPY's framing, both directions: the binary stream snapshots read
// (CopyStream) and result rows (DecodeRow), and the binary and text
// streams the warehouse writes (BinaryRowReader, TextRowReader). The
// values inside are the type families' business.

// CopySignature starts every binary COPY stream.
const CopySignature = "PGCOPY\n\xff\r\n\x00"

var copySignature = []byte(CopySignature)

// copyHeaderLen is the signature, the flags and the extension length.
const copyHeaderLen = 11 + 4 + 4

// copyFlagOIDs is the flag of a stream whose tuples carry OIDs; the other
// flags of the high half are critical: a reader that does not know them
// must stop.
const copyFlagOIDs = 1 << 16

// RowSink receives the rows a decoder completes.
type RowSink interface {
	// Batch is the batch rows are decoded into.
	Batch() *records.Batch
	// RowDone is called after each row with its size on the wire.
	RowDone(size int) error
}

// CopyStream decodes a binary COPY stream, written to it in pieces of any
// size (pgconn's CopyTo writes each CopyData message's payload; a row
// may span several), into the sink's batch.
//
// Memory is bounded by the rows: a row is decoded once all of its bytes
// have arrived, and only the bytes of an incomplete row are kept, never
// buffers sized from the lengths the stream announces.
type CopyStream struct {
	cols []*Decoder
	sink RowSink
	// header and done record that the header and the trailer were read.
	header, done bool
	// carry holds the start of an incomplete row (or header).
	carry []byte
}

// NewCopyStream returns a CopyStream that decodes into sink's batch with
// one decoder per column.
func NewCopyStream(cols []*Decoder, sink RowSink) *CopyStream {
	return &CopyStream{cols: cols, sink: sink}
}

// Reset readies the stream for another COPY into the same sink.
func (s *CopyStream) Reset() {
	s.header, s.done, s.carry = false, false, s.carry[:0]
}

// Write decodes the complete rows of p (after what an earlier Write left
// incomplete) and keeps the rest for the next Write.
func (s *CopyStream) Write(p []byte) (int, error) {
	if len(s.carry) > 0 {
		s.carry = append(s.carry, p...)
		used, err := s.parse(s.carry)
		if err != nil {
			return 0, err
		}
		s.carry = s.carry[:copy(s.carry, s.carry[used:])]
		return len(p), nil
	}
	used, err := s.parse(p)
	if err != nil {
		return 0, err
	}
	if used < len(p) {
		s.carry = append(s.carry, p[used:]...)
	}
	return len(p), nil
}

// Finish checks that the stream ended where it should: after its trailer.
func (s *CopyStream) Finish() error {
	if !s.done {
		if !s.header {
			return errors.New("COPY stream ended before its header")
		}
		return errors.New("COPY stream ended in the middle of a row")
	}
	return nil
}

// parse decodes the complete rows at the start of buf and returns how
// many bytes they took.
func (s *CopyStream) parse(buf []byte) (int, error) {
	pos := 0
	if !s.header {
		if len(buf) < copyHeaderLen {
			if !bytes.HasPrefix(copySignature, buf[:min(len(buf), len(copySignature))]) {
				return 0, errors.New("not a binary COPY stream")
			}
			return 0, nil
		}
		if !bytes.Equal(buf[:len(copySignature)], copySignature) {
			return 0, errors.New("not a binary COPY stream")
		}
		flags := binary.BigEndian.Uint32(buf[11:])
		if flags&copyFlagOIDs != 0 {
			return 0, errors.New("binary COPY stream with OIDs")
		}
		if flags>>16 != 0 {
			return 0, fmt.Errorf("binary COPY stream with unknown critical flags %#x", flags)
		}
		ext := int32(binary.BigEndian.Uint32(buf[15:]))
		if ext < 0 {
			return 0, fmt.Errorf("binary COPY header extension of length %d", ext)
		}
		if len(buf)-copyHeaderLen < int(ext) {
			return 0, nil
		}
		pos = copyHeaderLen + int(ext)
		s.header = true
	}
	for pos < len(buf) {
		if s.done {
			return 0, errors.New("data after the end of the binary COPY stream")
		}
		if len(buf)-pos < 2 {
			break
		}
		nf := int16(binary.BigEndian.Uint16(buf[pos:]))
		if nf == -1 {
			s.done = true
			pos += 2
			continue
		}
		if int(nf) != len(s.cols) {
			return 0, fmt.Errorf("binary COPY row of %d fields, want %d", nf, len(s.cols))
		}
		end, complete, err := s.rowEnd(buf, pos+2)
		if err != nil {
			return 0, err
		}
		if !complete {
			break
		}
		if err := s.decodeRow(buf[pos+2 : end]); err != nil {
			return 0, err
		}
		if err := s.sink.RowDone(end - pos); err != nil {
			return 0, err
		}
		pos = end
	}
	return pos, nil
}

// rowEnd finds where the row whose fields start at p ends, or reports
// that its bytes have not all arrived.
func (s *CopyStream) rowEnd(buf []byte, p int) (int, bool, error) {
	for range s.cols {
		if len(buf)-p < 4 {
			return 0, false, nil
		}
		n := int32(binary.BigEndian.Uint32(buf[p:]))
		p += 4
		if n == -1 {
			continue
		}
		if n < 0 {
			return 0, false, fmt.Errorf("binary COPY field of length %d", n)
		}
		if len(buf)-p < int(n) {
			return 0, false, nil
		}
		p += int(n)
	}
	return p, true, nil
}

// decodeRow decodes the fields of a complete row.
func (s *CopyStream) decodeRow(row []byte) error {
	b := s.sink.Batch()
	p := 0
	for i, d := range s.cols {
		n := int32(binary.BigEndian.Uint32(row[p:]))
		p += 4
		v := &b.Cols[i]
		if n == -1 {
			v.AppendNull()
			continue
		}
		if err := d.DecodeColumn(v, row[p:p+int(n)]); err != nil {
			return fmt.Errorf("column %s: %w", colName(b.Schema, i), err)
		}
		p += int(n)
	}
	b.N++
	return nil
}

// DecodeRow decodes one row of binary result fields (nil for NULL),
// as pgconn's ResultReader gives them.
func DecodeRow(cols []*Decoder, b *records.Batch, vals [][]byte) error {
	if len(vals) != len(cols) {
		return fmt.Errorf("row of %d fields, want %d", len(vals), len(cols))
	}
	for i, d := range cols {
		v := &b.Cols[i]
		if vals[i] == nil {
			v.AppendNull()
			continue
		}
		if err := d.DecodeColumn(v, vals[i]); err != nil {
			return fmt.Errorf("column %s: %w", colName(b.Schema, i), err)
		}
	}
	b.N++
	return nil
}

// colName names column i of a schema for messages.
func colName(s *records.Schema, i int) string {
	if s == nil || i >= len(s.Columns) {
		return fmt.Sprint(i + 1)
	}
	return fmt.Sprintf("%q", s.Columns[i].Name)
}

// appendCopyEscaped appends s escaped for COPY's text format.
func appendCopyEscaped(out, s []byte) []byte {
	for _, c := range s {
		switch c {
		case '\\':
			out = append(out, '\\', '\\')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			out = append(out, c)
		}
	}
	return out
}

// TextRowReader streams a batch as COPY text, a row at a time, so that memory
// holds the batch and a chunk of text, never the batch's whole text.
type TextRowReader struct {
	B       *records.Batch
	Cols    []int // batch column of each COPY column, before the extras
	Enc     []TextEncoder
	Extra   func(out []byte, row int) []byte // columns after the batch's (tab-led), or nil
	row     int
	buf     []byte
	off     int
	scratch []byte
	rows    int64
}

func (r *TextRowReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.row >= r.B.N {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for r.row < r.B.N && len(r.buf) < 256<<10 {
			r.buf = r.appendRow(r.buf, r.row)
			r.row++
			r.rows++
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *TextRowReader) appendRow(out []byte, row int) []byte {
	for k, ci := range r.Cols {
		if k > 0 {
			out = append(out, '\t')
		}
		v := &r.B.Cols[ci]
		if v.Unchanged != nil && row < len(v.Unchanged) && v.Unchanged[row] {
			out = append(out, '\\', 'N')
			continue
		}
		if text, ok := v.ExactAt(row); ok {
			// The source's exact text form of a value the Parquet type
			// does not hold (infinity, NaN, an array's bounds).
			out = appendCopyEscaped(out, text)
			continue
		}
		if v.IsNull(row) {
			out = append(out, '\\', 'N')
			continue
		}
		r.scratch = r.Enc[k](r.scratch[:0], v, row)
		out = appendCopyEscaped(out, r.scratch)
	}
	if r.Extra != nil {
		out = r.Extra(out, row)
	}
	return append(out, '\n')
}

// Copied is the number of rows read so far.
func (r *TextRowReader) Copied() int64 { return r.rows }

// appendBinaryValue appends a non-null value with its length word.
func appendBinaryValue(out []byte, v *records.Vec, i int, enc BinaryEncoder) ([]byte, error) {
	at := len(out)
	out = append(out, 0, 0, 0, 0)
	out, err := enc(out, v, i)
	if err != nil {
		return out[:at], err
	}
	n := len(out) - at - 4
	if n > math.MaxInt32 {
		return out[:at], fmt.Errorf("value of %d bytes: a field holds 2 GiB at most", n)
	}
	binary.BigEndian.PutUint32(out[at:], uint32(n))
	return out, nil
}

// AppendBinaryInt64Field appends a bigint field with its length word.
func AppendBinaryInt64Field(out []byte, x int64) []byte {
	out = binary.BigEndian.AppendUint32(out, 8)
	return binary.BigEndian.AppendUint64(out, uint64(x))
}

// AppendBinaryInt4ArrayField appends an integer[] field with its length
// word: NULL for nil xs, '{}' for an empty one. The xs are column
// positions, far inside int32.
func AppendBinaryInt4ArrayField(out []byte, xs []int) []byte {
	if xs == nil {
		return appendBinaryNullField(out)
	}
	if len(xs) == 0 {
		out = binary.BigEndian.AppendUint32(out, 12)
		out = binary.BigEndian.AppendUint32(out, 0)
		out = binary.BigEndian.AppendUint32(out, 0)
		return binary.BigEndian.AppendUint32(out, pgtype.Int4OID)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(20+8*len(xs)))
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, 0)
	out = binary.BigEndian.AppendUint32(out, pgtype.Int4OID)
	out = binary.BigEndian.AppendUint32(out, uint32(len(xs)))
	out = binary.BigEndian.AppendUint32(out, 1)
	for _, x := range xs {
		out = binary.BigEndian.AppendUint32(out, 4)
		out = binary.BigEndian.AppendUint32(out, uint32(int32(x)))
	}
	return out
}

// AppendBinaryTimestampField appends a timestamptz field with its length
// word; unixMicros is a clock reading (time.Now().UnixMicro()), far inside
// timestamptz's range.
func AppendBinaryTimestampField(out []byte, unixMicros int64) []byte {
	out = binary.BigEndian.AppendUint32(out, 8)
	return binary.BigEndian.AppendUint64(out, uint64(unixMicros-PGEpochMicros))
}

// appendBinaryNullField appends a NULL field.
func appendBinaryNullField(out []byte) []byte {
	return binary.BigEndian.AppendUint32(out, math.MaxUint32) // -1
}

// binaryHeader starts every COPY binary stream: the signature, the flags
// (no OIDs) and the length of the header extension (none).
const binaryHeader = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"

// binaryTrailer ends it: a field count of -1.
const binaryTrailer = "\xff\xff"

// binaryBufferSize is how much of the stream is built before it is handed
// to the connection: large enough that the per-chunk work is noise, small
// enough that a batch's whole stream is never in memory.
const binaryBufferSize = 256 << 10

// BinaryRowReader streams a batch as one complete COPY binary stream, a
// chunk of rows at a time, as TextRowReader does for the text format. Unlike
// text, a value can fail to encode (a malformed uuid or number, an
// out-of-range date); Read then returns the error, which makes the COPY
// fail as a whole (pgconn sends CopyFail with its message).
type BinaryRowReader struct {
	B     *records.Batch
	Cols  []int // batch column of each COPY column, before the extras
	Enc   []BinaryEncoder
	Extra func(out []byte, row int) []byte // fields after the batch's, each with its length word, or nil
	// nExtra is how many fields extra appends.
	NExtra int
	rows   int64

	row     int
	started bool // the header is written
	done    bool // the trailer is written
	err     error
	buf     []byte
	off     int
}

// Read implements io.Reader.
func (r *BinaryRowReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.fill()
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// fill builds the next chunk of the stream, or records the error that
// ends it.
func (r *BinaryRowReader) fill() {
	r.buf, r.off = r.buf[:0], 0
	if !r.started {
		fields := len(r.Cols) + r.NExtra
		if len(r.Enc) != len(r.Cols) || fields > math.MaxInt16 || r.NExtra < 0 {
			r.err = fmt.Errorf("COPY of %d columns with %d encoders and %d extra fields", len(r.Cols), len(r.Enc), r.NExtra)
			return
		}
		if r.buf == nil {
			r.buf = make([]byte, 0, binaryBufferSize+binaryBufferSize/4)
		}
		r.buf = append(r.buf, binaryHeader...)
		r.started = true
	}
	for r.row < r.B.N && len(r.buf) < binaryBufferSize {
		var err error
		if r.buf, err = r.appendRow(r.buf, r.row); err != nil {
			r.buf, r.err = r.buf[:0], err
			return
		}
		r.row++
		r.rows++
	}
	if r.row >= r.B.N {
		r.buf = append(r.buf, binaryTrailer...)
		r.done = true
	}
}

// appendRow appends one tuple: the field count, each field (NULL for a
// null or unchanged value), then the extras.
func (r *BinaryRowReader) appendRow(out []byte, row int) ([]byte, error) {
	out = binary.BigEndian.AppendUint16(out, uint16(len(r.Cols)+r.NExtra))
	for k, ci := range r.Cols {
		if ci < 0 || ci >= len(r.B.Cols) {
			return out, fmt.Errorf("COPY column %d is batch column %d of %d", k, ci, len(r.B.Cols))
		}
		v := &r.B.Cols[ci]
		if v.IsNull(row) || (v.Unchanged != nil && row < len(v.Unchanged) && v.Unchanged[row]) {
			out = appendBinaryNullField(out)
			continue
		}
		var err error
		if out, err = appendBinaryValue(out, v, row, r.Enc[k]); err != nil {
			return out, fmt.Errorf("column %s, row %d of the batch: %w", r.columnName(ci), row+1, err)
		}
	}
	if r.Extra != nil {
		out = r.Extra(out, row)
	}
	return out, nil
}

// columnName names batch column ci for an error.
func (r *BinaryRowReader) columnName(ci int) string {
	if s := r.B.Schema; s != nil && ci < len(s.Columns) {
		return strconv.Quote(s.Columns[ci].Name)
	}
	return strconv.Itoa(ci + 1)
}

// Copied is the number of rows read so far.
func (r *BinaryRowReader) Copied() int64 { return r.rows }
