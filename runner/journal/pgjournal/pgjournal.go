// Package pgjournal is the webhook journal (journal.Store) of a fleet:
// several runners behind one load balancer all
// receive a source's deliveries, so its journal is in the state database,
// where every runner sees it.
//
// Tables, in schema sluice of the state database:
//
//	webhook_sources  (source, last_seq)  the last sequence number given
//	webhook_journal  (source, seq, event_id, table_name, received, event)
//	                 the records not yet compacted away
//	webhook_seen     (source, event_id, seen_at)  every id journaled, kept
//	                 while its record is and journal.SeenRetention after it was
//	                 received
//
// An append is one transaction, committed with synchronous_commit on:
// the id goes into webhook_seen first (ON CONFLICT DO NOTHING, so of two
// runners receiving one event at once, one journals it and the other
// waits for that commit and finds a duplicate); then the source's row of
// webhook_sources is incremented, whose row lock is held until the commit;
// then the record. The row lock makes a source's appends take their
// numbers one after the other, each only once the previous one committed
// (or rolled back), so a record is readable before any with a higher
// number: a reader asking for the records past the last it applied never
// skips one. A rolled-back append leaves no gap; a number is reused.
package pgjournal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sluice-dev/sluice/runner/journal"
)

const (
	// setupLockKey is the state backend's lock that serializes creating
	// the schema and tables (state/pgstate): CREATE ... IF NOT EXISTS
	// alone is not safe when several runners start at once.
	setupLockKey int64 = 0x736c756963650003

	pgSources = `sluice.webhook_sources`
	pgJournal = `sluice.webhook_journal`
	pgSeen    = `sluice.webhook_seen`

	// orphanGrace is how long records of a table that is not live are
	// kept: a runner that has not yet read a newly applied state does not
	// know a new webhook table, whose events the others journal already.
	orphanGrace = time.Hour
	// compactEvery spaces a journal's compactions: every runner compacts
	// after each pass of its applier.
	compactEvery = 10 * time.Second
)

var pgSetup = []string{
	`CREATE SCHEMA IF NOT EXISTS sluice`,
	`CREATE TABLE IF NOT EXISTS ` + pgSources + ` (
		source   text   PRIMARY KEY,
		last_seq bigint NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS ` + pgJournal + ` (
		source     text        NOT NULL,
		seq        bigint      NOT NULL,
		event_id   text        NOT NULL,
		table_name text        NOT NULL,
		received   timestamptz NOT NULL,
		event      bytea       NOT NULL,
		PRIMARY KEY (source, seq),
		UNIQUE (source, event_id))`,
	`CREATE INDEX IF NOT EXISTS webhook_journal_table ON ` + pgJournal + ` (source, table_name, seq)`,
	`CREATE TABLE IF NOT EXISTS ` + pgSeen + ` (
		source   text        NOT NULL,
		event_id text        NOT NULL,
		seen_at  timestamptz NOT NULL,
		PRIMARY KEY (source, event_id))`,
	`CREATE INDEX IF NOT EXISTS webhook_seen_age ON ` + pgSeen + ` (source, seen_at)`,
}

// PG is one source's journal in the state database, shared by the runners
// of a fleet. Its methods are safe for concurrent use; every runner may
// append, read and compact.
type PG struct {
	pool   *pgxpool.Pool
	source string

	mu          sync.Mutex
	done        map[string]uint64 // committed sequence numbers by table
	floor       uint64            // the highest of them
	closed      bool
	lastCompact time.Time

	// Bounds of Pending and the spacing of compactions; tests lower them.
	maxEvents    int
	maxBytes     int
	compactEvery time.Duration
}

// OpenPostgres opens the journal of source (its address) in the state
// database of pool, creating the tables when they are missing, and forgets
// the ids seen longer than journal.SeenRetention before now. The pool remains the
// caller's.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, source string, now time.Time) (*PG, error) {
	if err := setupPG(ctx, pool); err != nil {
		return nil, fmt.Errorf("%s: webhook journal: %w", source, err)
	}
	p := &PG{pool: pool, source: source, done: map[string]uint64{},
		maxEvents: journal.MaxEventsPerCommit, maxBytes: journal.MaxBytesPerCommit, compactEvery: compactEvery}
	if _, err := pool.Exec(ctx, forgetSeen, source, now.Add(-journal.SeenRetention)); err != nil {
		return nil, fmt.Errorf("%s: webhook journal: forget old event ids: %w", source, err)
	}
	return p, nil
}

func setupPG(ctx context.Context, pool *pgxpool.Pool) error {
	// Usually everything exists, and a role without CREATE privileges can
	// then use tables an administrator prepared.
	var ready bool
	err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL`,
		pgSources, pgJournal, pgSeen).Scan(&ready)
	if err != nil {
		return fmt.Errorf("look for the journal's tables: %w", err)
	}
	if ready {
		return nil
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, setupLockKey); err != nil {
			return err
		}
		for _, ddl := range pgSetup {
			if _, err := tx.Exec(ctx, ddl); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create the journal's tables in schema sluice (the role needs CREATE on the database, or an administrator creates them once): %w", err)
	}
	return nil
}

// appendRecord journals an event in one statement: the id, unless seen
// already; then, only if it was new, the next sequence number (the row
// lock on the source's counter, held to the commit, orders appends); then
// the record. No row means a duplicate.
const appendRecord = `
WITH seen AS (
	INSERT INTO ` + pgSeen + ` (source, event_id, seen_at) VALUES ($1, $2, $4)
	ON CONFLICT DO NOTHING
	RETURNING 1),
next AS (
	INSERT INTO ` + pgSources + ` AS s (source, last_seq)
	SELECT $1, $5::bigint + 1 FROM seen
	ON CONFLICT (source) DO UPDATE SET last_seq = GREATEST(s.last_seq, $5::bigint) + 1
	RETURNING last_seq)
INSERT INTO ` + pgJournal + ` (source, seq, event_id, table_name, received, event)
SELECT $1, last_seq, $2, $3, $4, $6 FROM next
RETURNING seq`

// Append journals the event id of table, whose body is JSON, in a
// transaction committed synchronously (whatever the database's default):
// when it returns nil, the record is durable. dup reports an id already
// journaled, by this runner or another, which is not journaled again.
func (p *PG) Append(ctx context.Context, id, table string, body []byte, now time.Time) (dup bool, err error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return false, err
	}
	p.mu.Lock()
	floor, closed := p.floor, p.closed
	p.mu.Unlock()
	if closed {
		return false, errors.New("the webhook journal is closed")
	}
	if floor > 1<<62 {
		return false, fmt.Errorf("webhook journal of %s: sequence number %d out of range", p.source, floor)
	}
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`SET LOCAL synchronous_commit = on`)
		var seq int64
		b.Queue(appendRecord, p.source, id, table, now, int64(floor), compact.Bytes()).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&seq)
			if errors.Is(err, pgx.ErrNoRows) {
				dup = true
				return nil
			}
			return err
		})
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return false, fmt.Errorf("journal the event: %w", err)
	}
	return dup, nil
}

// Committed records that table committed the records up to seq; appends
// number their records past the highest such seq, even if the journal's
// tables were emptied or lost: a number already committed would be taken
// for applied.
func (p *PG) Committed(table string, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[table] = seq
	p.floor = max(p.floor, seq)
}

// HasPending reports whether the journal holds records of table past what
// it committed, as far as this runner knows (another runner may have
// applied them since: Pending, from the table's committed position, says).
func (p *PG) HasPending(ctx context.Context, table string) (bool, error) {
	p.mu.Lock()
	done := p.done[table]
	p.mu.Unlock()
	var ok bool
	err := p.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+pgJournal+` WHERE source = $1 AND table_name = $2 AND seq > $3)`,
		p.source, table, int64(done)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("webhook journal of %s: %w", p.source, err)
	}
	return ok, nil
}

// pendingRecords reads a table's records past a sequence number, at most
// $4 of them, and only while the events before each total less than $5
// bytes (the sizes are read without the events).
const pendingRecords = `
SELECT seq, event_id, received, event FROM (
	SELECT seq, event_id, received, event,
		sum(octet_length(event)) OVER (ORDER BY seq) - octet_length(event) AS before
	FROM (
		SELECT seq, event_id, received, event FROM ` + pgJournal + `
		WHERE source = $1 AND table_name = $2 AND seq > $3
		ORDER BY seq LIMIT $4) AS first) AS sized
WHERE before < $5
ORDER BY seq`

// Pending reads the records of table past the sequence number done, in
// order, up to the bounds of one commit.
func (p *PG) Pending(ctx context.Context, table string, done uint64) ([]journal.Record, error) {
	rows, err := p.pool.Query(ctx, pendingRecords, p.source, table, int64(done), p.maxEvents, p.maxBytes)
	if err != nil {
		return nil, fmt.Errorf("webhook journal of %s: %w", p.source, err)
	}
	var out []journal.Record
	for rows.Next() {
		var (
			seq      int64
			received time.Time
			rec      = journal.Record{Table: table}
		)
		if err := rows.Scan(&seq, &rec.ID, &received, &rec.Event); err != nil {
			rows.Close()
			return nil, fmt.Errorf("webhook journal of %s: %w", p.source, err)
		}
		rec.Seq, rec.Received = uint64(seq), received.Unix()
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webhook journal of %s: %w", p.source, err)
	}
	return out, nil
}

// forgetSeen deletes the ids seen before $2 whose records are gone.
const forgetSeen = `
DELETE FROM ` + pgSeen + ` AS s
WHERE s.source = $1 AND s.seen_at < $2
	AND NOT EXISTS (SELECT FROM ` + pgJournal + ` AS j WHERE j.source = s.source AND j.event_id = s.event_id)`

// Compact drops the records each live table committed (as far as this
// runner knows: a lower number than another runner knows only keeps more)
// and those of tables not in live received more than an hour ago, and
// forgets the ids seen longer than journal.SeenRetention ago whose records are
// gone. Runners compact one at a time: while another does, this one
// returns at once.
func (p *PG) Compact(ctx context.Context, live map[string]bool, now time.Time) error {
	p.mu.Lock()
	if p.closed || (!p.lastCompact.IsZero() && now.Sub(p.lastCompact) < p.compactEvery && now.After(p.lastCompact)) {
		p.mu.Unlock()
		return nil
	}
	p.lastCompact = now
	var tables, liveTables []string
	var dones []int64
	for t := range live {
		liveTables = append(liveTables, t)
		if d, ok := p.done[t]; ok {
			tables, dones = append(tables, t), append(dones, int64(d))
		}
	}
	p.mu.Unlock()
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var mine bool
		err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended('sluice webhook journal compaction ' || $1, 0))`, p.source).Scan(&mine)
		if err != nil || !mine {
			return err
		}
		if len(tables) > 0 {
			_, err := tx.Exec(ctx, `DELETE FROM `+pgJournal+` AS j USING unnest($2::text[], $3::bigint[]) AS d(t, done)
				WHERE j.source = $1 AND j.table_name = d.t AND j.seq <= d.done`, p.source, tables, dones)
			if err != nil {
				return err
			}
		}
		if liveTables == nil {
			liveTables = []string{}
		}
		_, err = tx.Exec(ctx, `DELETE FROM `+pgJournal+` WHERE source = $1 AND table_name <> ALL ($2::text[]) AND received < $3`,
			p.source, liveTables, now.Add(-orphanGrace))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, forgetSeen, p.source, now.Add(-journal.SeenRetention))
		return err
	})
	if err != nil {
		return fmt.Errorf("webhook journal of %s: compact: %w", p.source, err)
	}
	return nil
}

// Close ends the use of the journal; the pool is the caller's and stays
// open.
func (p *PG) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
}

var _ journal.Store = (*PG)(nil)
