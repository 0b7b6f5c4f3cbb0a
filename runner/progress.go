package runner

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints a line now and then for a long sync, on a terminal: rows
// so far and the rate. It stays quiet for syncs shorter than a few seconds.
type progress struct {
	out   io.Writer // nil: quiet
	addr  string
	start time.Time
	mu    sync.Mutex
	rows  int64
	last  time.Time
	// estimate is the table's estimated rows, 0 when unknown.
	estimate int64
}

func newProgress(out io.Writer, addr string) *progress {
	now := time.Now()
	return &progress{out: out, addr: addr, start: now, last: now}
}

const progressEvery = 5 * time.Second

func (p *progress) add(n int64) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows += n
	now := time.Now()
	if now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	rate := float64(p.rows) / now.Sub(p.start).Seconds()
	eta := ""
	if p.estimate > p.rows && rate > 0 {
		eta = fmt.Sprintf(", about %s left", (time.Duration(float64(p.estimate-p.rows)/rate) * time.Second).Round(time.Second))
	}
	fmt.Fprintf(p.out, "%s: %d rows, %.0f rows/s, %s elapsed%s\n", p.addr, p.rows, rate, now.Sub(p.start).Round(time.Second), eta)
}

func (p *progress) done() {
	if p.out == nil || time.Since(p.start) < progressEvery {
		return
	}
	fmt.Fprintf(p.out, "%s: %d rows in %s\n", p.addr, p.rows, time.Since(p.start).Round(time.Second))
}
