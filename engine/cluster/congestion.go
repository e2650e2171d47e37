package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Backpressure past the first hop. A worker's processor loop stops taking
// its own sources' input while a replay queue of its links is full (see
// Member.Congested), but it always takes its peers' work (holding that
// could deadlock two workers that send to each other). So a worker with
// no sources, passing work on to a slow or absent peer, could let that
// link's queue grow without bound. It tells the initializer instead
// (KindCongestion), which holds its sources, the only way into the
// cluster, until no worker is congested.
const (
	congestionPoll   = 25 * time.Millisecond  // how often a worker looks at its links
	congestionRepeat = 500 * time.Millisecond // a report is repeated while it holds
	congestionStale  = 2 * time.Second        // a report not repeated for this long lapses
)

// congestion is the initializer's record of which workers are congested.
// Safe for concurrent use.
type congestion struct {
	mu      sync.Mutex
	reports map[string]time.Time // worker → when it last said it is congested
	wake    chan struct{}        // closed and replaced whenever reports change
	// note is poked by this worker's links when one's replay queue
	// fills, so that the report goes at once, not at the next poll.
	note chan struct{}
}

func newCongestion() *congestion {
	return &congestion{reports: map[string]time.Time{}, wake: make(chan struct{}), note: make(chan struct{}, 1)}
}

// set records a worker's report at now.
func (c *congestion) set(worker string, on bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, was := c.reports[worker]
	if on {
		c.reports[worker] = now
	} else {
		delete(c.reports, worker)
	}
	if was != on {
		close(c.wake)
		c.wake = make(chan struct{})
	}
}

// expire drops the reports not repeated since congestionStale before now
// (a worker that died congested, a lost control link).
func (c *congestion) expire(now time.Time) (lapsed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w, at := range c.reports {
		if now.Sub(at) > congestionStale {
			delete(c.reports, w)
			lapsed = append(lapsed, w)
		}
	}
	if len(lapsed) > 0 {
		close(c.wake)
		c.wake = make(chan struct{})
	}
	return lapsed
}

// held returns, while any worker is congested, a channel that closes
// when that may have changed; nil otherwise.
func (c *congestion) held() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reports) == 0 {
		return nil
	}
	return c.wake
}

// Congestion is the payload of KindCongestion.
func Congestion(on bool) []byte {
	if on {
		return Seq(1)
	}
	return Seq(0)
}

// DecodeCongestion reads a Congestion payload.
func DecodeCongestion(p []byte) (bool, error) {
	n, err := DecodeSeq(p)
	if err != nil {
		return false, err
	}
	if n > 1 {
		return false, fmt.Errorf("%w: congestion %d (want 0 or 1)", ErrMalformed, n)
	}
	return n == 1, nil
}

// watchCongestion runs until ctx ends. On a worker it reports its links'
// congestion to the initializer when it changes, and again every
// congestionRepeat while it lasts; on the initializer it lets reports
// lapse.
func (m *Member) watchCongestion(ctx context.Context) {
	t := time.NewTicker(congestionPoll)
	defer t.Stop()
	var on bool
	var sent time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.cong.note:
		}
		now := time.Now()
		if m.cfg.Initializer {
			for _, w := range m.cong.expire(now) {
				m.log.Warn("a worker said its links were congested and has not said so since; the sources go on", "worker", w)
			}
			continue
		}
		full := m.congestedHere() != nil
		if full == on && (!on || now.Sub(sent) < congestionRepeat) {
			continue
		}
		m.mu.Lock()
		c := m.toInit
		m.mu.Unlock()
		if c == nil {
			continue
		}
		if err := c.send(KindCongestion, Congestion(full)); err != nil {
			continue // the control link is being made anew: sent again then
		}
		on, sent = full, now
	}
}
