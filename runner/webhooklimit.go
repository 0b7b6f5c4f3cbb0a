package runner

import (
	"container/list"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// WebhookLimits bound what webhook deliveries may hold, so that clients
// that send slowly (or not at all) cannot keep connections open or crowd
// out Stripe. The zero value of a field means its default.
type WebhookLimits struct {
	// BodyTimeout bounds the reading of one delivery's body, from the
	// end of its headers; a body still incomplete then is answered 408
	// and the connection closed. Stripe sends its small bodies at once.
	// Default 10s.
	BodyTimeout time.Duration
	// MaxInFlight bounds the deliveries being received at once, for all
	// sources together (default 64); MaxInFlightPerSource those of one
	// source (default 32), so that an attack on one endpoint leaves room
	// for the others.
	MaxInFlight          int
	MaxInFlightPerSource int
	// EvictAfter: when a limit is reached, the delivery that has been
	// reading its body the longest gives way to the new one, if it has
	// been reading for at least this long (default 1s): a slow client
	// cannot keep a fast one out. When none has, the new delivery is
	// answered 503 with Retry-After.
	EvictAfter time.Duration
}

func (l WebhookLimits) withDefaults() WebhookLimits {
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = 10 * time.Second
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = 64
	}
	if l.MaxInFlightPerSource <= 0 {
		l.MaxInFlightPerSource = 32
	}
	if l.MaxInFlightPerSource > l.MaxInFlight {
		l.MaxInFlightPerSource = l.MaxInFlight
	}
	if l.EvictAfter <= 0 {
		l.EvictAfter = time.Second
	}
	return l
}

// hookLimiter counts the deliveries in flight and keeps, oldest first,
// those still reading their body: the ones that may be evicted.
type hookLimiter struct {
	lim WebhookLimits

	mu        sync.Mutex
	total     int
	perSource map[string]int
	reading   list.List // of *inflight, by start
}

// inflight is one delivery holding a slot.
type inflight struct {
	source  string
	start   time.Time
	rc      *http.ResponseController
	elem    *list.Element // in reading, nil once the body is read
	evicted bool          // its slot was given to another delivery
}

func newHookLimiter(l WebhookLimits) *hookLimiter {
	return &hookLimiter{lim: l.withDefaults(), perSource: map[string]int{}}
}

// acquire takes a slot for a delivery to source, evicting the oldest
// slow reader when a limit is reached; nil when none may be evicted.
func (hl *hookLimiter) acquire(source string, rc *http.ResponseController, now time.Time) *inflight {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	for hl.total >= hl.lim.MaxInFlight || hl.perSource[source] >= hl.lim.MaxInFlightPerSource {
		only := ""
		if hl.perSource[source] >= hl.lim.MaxInFlightPerSource {
			only = source
		}
		victim := hl.oldestReader(only)
		if victim == nil || now.Sub(victim.start) < hl.lim.EvictAfter {
			return nil
		}
		hl.evict(victim)
	}
	f := &inflight{source: source, start: now, rc: rc}
	f.elem = hl.reading.PushBack(f)
	hl.total++
	hl.perSource[source]++
	return f
}

// oldestReader is the delivery reading its body the longest, of source
// when it is not "".
func (hl *hookLimiter) oldestReader(source string) *inflight {
	for e := hl.reading.Front(); e != nil; e = e.Next() {
		if f := e.Value.(*inflight); source == "" || f.source == source {
			return f
		}
	}
	return nil
}

// evict frees f's slot and makes its body read fail now: its handler
// answers 408 and the connection closes.
func (hl *hookLimiter) evict(f *inflight) {
	hl.reading.Remove(f.elem)
	f.elem = nil
	f.evicted = true
	hl.free(f.source)
	// The connection's deadline may be set from any goroutine.
	_ = f.rc.SetReadDeadline(time.Now())
}

func (hl *hookLimiter) free(source string) {
	hl.total--
	if hl.perSource[source]--; hl.perSource[source] <= 0 {
		delete(hl.perSource, source)
	}
}

// bodyRead marks f as past its body: no longer a candidate for eviction.
func (hl *hookLimiter) bodyRead(f *inflight) {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if f.elem != nil {
		hl.reading.Remove(f.elem)
		f.elem = nil
	}
}

// release frees f's slot, unless it was evicted (and so freed) already.
func (hl *hookLimiter) release(f *inflight) {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if f.elem != nil {
		hl.reading.Remove(f.elem)
		f.elem = nil
	}
	if !f.evicted {
		f.evicted = true
		hl.free(f.source)
	}
}

// retryAfter is the Retry-After of a 503 for lack of slots, in seconds:
// by then every slow reader has been cut off.
func (hl *hookLimiter) retryAfter() string {
	return strconv.Itoa(int((hl.lim.BodyTimeout + time.Second - 1) / time.Second))
}
