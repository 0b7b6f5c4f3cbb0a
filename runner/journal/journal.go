// Package journal is the durable journal of one webhook source: the
// deliveries a receiver acknowledged, in order, until every table they are
// for has committed them.
//
// An event is appended as one JSON line and fsynced before the delivery is
// answered, so an acknowledged event survives a crash. Each record has a
// sequence number; the tables record, in the same commit as their rows,
// the number of the last record they merged (Committed tells the journal),
// so that the records past it are merged after a restart and none twice.
// Event ids already journaled are recognised (a redelivery or a replay is
// not journaled again), also for SeenRetention after their records were
// compacted away.
//
// Files, in the journal's directory, all mode 0600:
//
//	journal.jsonl  {"seq","id","table","received","event"} lines, append-only
//	seen.json      ids of events already journaled and compacted away, kept
//	               for SeenRetention, and the last sequence number
//	lock           flock'ed by the process that owns the journal
//
// That is the journal of one runner (Journal). The runners of a fleet,
// which all receive a source's deliveries, share one in the state
// database instead (package pgjournal); both are a Store.
//
// The package knows nothing of providers, warehouses or the runner.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/atomicfile"
)

const (
	// SeenRetention is how long event ids are remembered after their
	// records are compacted away: Stripe retries a delivery for up to
	// three days, and a late retry of an old event must not overwrite a
	// newer version of its object.
	SeenRetention = 96 * time.Hour
	// Bounds of what Pending returns (one merge commit), so that memory
	// stays bounded however long the journal grew while a table waited
	// for its bulk load.
	MaxEventsPerCommit = 10_000
	MaxBytesPerCommit  = 64 << 20
	// compactAfter is how many applied records make the journal worth
	// rewriting even while others are pending.
	compactAfter = 1024

	journalFile = "journal.jsonl"
	seenFile    = "seen.json"
	lockFile    = "lock"
)

// ErrLocked reports that another process owns a journal.
var ErrLocked = errors.New("another sluice run owns the webhook journal")

// Journal is one source's journal, open and locked. Its methods are safe
// for concurrent use.
type Journal struct {
	name string
	dir  string
	lock *os.File

	mu     sync.Mutex
	f      *os.File // the journal, O_APPEND
	size   int64    // bytes of complete records
	broken error    // set when a failed append could not be undone
	seen   map[string]int64
	last   uint64  // the last sequence number given
	index  []entry // the journal's records, in order
	done   map[string]uint64
}

type entry struct {
	seq   uint64
	table string
	size  int
}

// Record is one journaled event.
type Record struct {
	Seq      uint64          `json:"seq"`
	ID       string          `json:"id"`
	Table    string          `json:"table"`
	Received int64           `json:"received"`
	Event    json.RawMessage `json:"event"`
}

type seenState struct {
	LastSeq uint64           `json:"last_seq"`
	IDs     map[string]int64 `json:"ids"`
}

// Open opens (creating it) the journal in dir and locks it: the seen ids,
// and the records not yet compacted away (a torn last line, from a crash
// while it was written and so never acknowledged, is cut off). name (the
// source's address) prefixes its errors. A journal another process holds
// is ErrLocked.
func Open(dir, name string, now time.Time) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: create the webhook journal directory: %w", name, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: webhook journal: %w", name, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w in %s; stop the other runner, or run this one with another state directory", name, ErrLocked, dir)
		}
		return nil, fmt.Errorf("%s: lock the webhook journal: %w", name, err)
	}
	j := &Journal{name: name, dir: dir, lock: lock, seen: map[string]int64{}, done: map[string]uint64{}}
	fail := func(err error) (*Journal, error) {
		j.Close()
		return nil, fmt.Errorf("%s: webhook journal in %s: %w", name, dir, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, seenFile)); err == nil {
		var s seenState
		if err := json.Unmarshal(data, &s); err != nil {
			return fail(fmt.Errorf("%s is damaged (%v); remove it (event ids seen before are forgotten)", seenFile, err))
		}
		j.last = s.LastSeq
		cutoff := now.Add(-SeenRetention).Unix()
		for id, at := range s.IDs {
			if at >= cutoff {
				j.seen[id] = at
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	path := filepath.Join(dir, journalFile)
	_, statErr := os.Stat(path)
	j.f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := atomicfile.SyncDir(dir); err != nil {
			return fail(err)
		}
	}
	rd := bufio.NewReaderSize(j.f, 64<<10)
	for {
		line, err := rd.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				// A record cut short by a crash: never acknowledged.
				if err := j.f.Truncate(j.size); err != nil {
					return fail(err)
				}
			}
			break
		}
		if err != nil {
			return fail(err)
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil || rec.Seq == 0 {
			return fail(fmt.Errorf("record at byte %d is damaged; move the file away to start a new journal (its unapplied events are then lost until the next bulk refresh)", j.size))
		}
		j.size += int64(len(line))
		j.index = append(j.index, entry{seq: rec.Seq, table: rec.Table, size: len(line)})
		j.seen[rec.ID] = rec.Received
		j.last = max(j.last, rec.Seq)
	}
	return j, nil
}

// Close closes the journal and releases its lock. A journal that is not
// closed (a crash) is left as it is on disk.
func (j *Journal) Close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	if j.lock != nil {
		j.lock.Close() // releases the flock
		j.lock = nil
	}
	if j.broken == nil {
		j.broken = errors.New("the webhook journal is closed")
	}
}

// Append journals the event id of table, whose body is JSON, and syncs it
// to disk. dup reports an event id already journaled, which is not
// journaled again.
func (j *Journal) Append(_ context.Context, id, table string, body []byte, now time.Time) (dup bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.seen[id]; ok {
		return true, nil
	}
	if j.broken != nil {
		return false, j.broken
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return false, err
	}
	rec := Record{Seq: j.last + 1, ID: id, Table: table, Received: now.Unix(), Event: compact.Bytes()}
	line, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	line = append(line, '\n')
	_, err = j.f.Write(line)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		// Cut off what may have been written, so that the next record
		// does not continue a partial line.
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("the webhook journal could not be repaired after a failed write (%v); restart the runner", terr)
		}
		return false, fmt.Errorf("journal the event: %w", err)
	}
	j.size += int64(len(line))
	j.last = rec.Seq
	j.index = append(j.index, entry{seq: rec.Seq, table: table, size: len(line)})
	j.seen[id] = rec.Received
	return false, nil
}

// Committed records that table committed the records up to seq. Sequence
// numbers never go back, even if the journal's files were lost: a number
// already committed would be taken for applied.
func (j *Journal) Committed(table string, seq uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.done[table] = seq
	j.last = max(j.last, seq)
}

// HasPending reports whether the journal holds records of table past what
// it committed (or not known to be committed).
func (j *Journal) HasPending(_ context.Context, table string) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	done, known := j.done[table]
	for i := len(j.index) - 1; i >= 0; i-- {
		e := j.index[i]
		if e.table == table {
			return !known || e.seq > done, nil
		}
	}
	return false, nil
}

// Pending reads the records of table past the sequence number done, in
// order, up to the bounds of one commit.
func (j *Journal) Pending(_ context.Context, table string, done uint64) ([]Record, error) {
	j.mu.Lock()
	size, any := j.size, false
	for _, e := range j.index {
		if e.table == table && e.seq > done {
			any = true
			break
		}
	}
	j.mu.Unlock()
	if !any {
		return nil, nil
	}
	// Another descriptor, read up to the records complete now: appends go
	// on meanwhile, and a compaction replaces the file but keeps every
	// record not yet committed, which these are.
	f, err := os.Open(filepath.Join(j.dir, journalFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	bytesIn := 0
	rd := bufio.NewReaderSize(io.LimitReader(f, size), 64<<10)
	for len(out) < MaxEventsPerCommit && bytesIn < MaxBytesPerCommit {
		line, err := rd.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("webhook journal of %s: a record is damaged: %w", j.name, err)
		}
		if rec.Table == table && rec.Seq > done {
			out = append(out, rec)
			bytesIn += len(line)
		}
	}
	return out, nil
}

// Compact drops the records every table has committed (and those of tables
// not in live, which no longer sync by webhook) once enough have, first
// saving their ids in the seen file, so that replays are still recognised.
// Each file is replaced atomically; a crash between the two leaves ids in
// both, which is harmless.
func (j *Journal) Compact(_ context.Context, live map[string]bool, now time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.broken != nil {
		return nil
	}
	applied := func(e entry) bool {
		done, known := j.done[e.table]
		return !live[e.table] || (known && e.seq <= done)
	}
	drop := 0
	for _, e := range j.index {
		if applied(e) {
			drop++
		}
	}
	if drop == 0 || (drop < len(j.index) && drop < compactAfter) {
		return nil
	}
	cutoff := now.Add(-SeenRetention).Unix()
	for id, at := range j.seen {
		if at < cutoff {
			delete(j.seen, id)
		}
	}
	data, err := json.Marshal(seenState{LastSeq: j.last, IDs: j.seen})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(j.dir, seenFile), data, 0o600); err != nil {
		return err
	}
	var kept []entry
	var size int64
	err = atomicfile.Write(filepath.Join(j.dir, journalFile), 0o600, func(w io.Writer) error {
		if _, err := j.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		rd := bufio.NewReaderSize(io.LimitReader(j.f, j.size), 64<<10)
		for _, e := range j.index {
			line := make([]byte, e.size)
			if _, err := io.ReadFull(rd, line); err != nil {
				return err
			}
			if applied(e) {
				continue
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
			kept = append(kept, e)
			size += int64(e.size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(j.dir, journalFile), os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		j.broken = fmt.Errorf("reopen the compacted webhook journal: %w; restart the runner", err)
		return j.broken
	}
	j.f.Close()
	j.f, j.size, j.index = f, size, kept
	return nil
}
