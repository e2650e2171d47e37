package work

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/engine/source"
)

// Queue is the bounded hand-off to the processor loop, in two lanes: one
// for this worker's own sources (items with Input 0) and one for what
// peers send (Input 1 and up). Each lane is a FIFO bounded in items and
// bytes (an item larger than the bound is let in when nothing else is
// queued in its lane). Two lanes, so the loop can stop taking new source
// input while the links to its peers are congested and still take its
// peers' work: with one lane, two workers sending to each other could
// each wait for the other to take (a cycle of full buffers). Put and
// Deliver are safe for concurrent use; only the loop receives.
type Queue struct {
	local, peer lane
	// gate lets Close wait for the Puts under way: Put holds it shared,
	// Close exclusively, so no Put ever sends on a closed channel.
	gate   sync.RWMutex
	closed bool
	// abandoned is closed by Discard (the loop has ended): Puts waiting
	// for room give up with ErrClosed instead of holding the gate that
	// Close waits for, since nobody will make room any more.
	abandoned chan struct{}
	abandon   sync.Once
}

// lane is one bounded FIFO of a Queue.
type lane struct {
	ch    chan Item
	max   int
	mu    sync.Mutex
	bytes int
	space chan struct{} // closed and replaced whenever bytes are released
}

func newLane(items, maxBytes int) lane {
	return lane{ch: make(chan Item, items), max: maxBytes, space: make(chan struct{})}
}

// ErrClosed is returned by Put after Close.
var ErrClosed = errors.New("work: the queue is closed")

// NewQueue returns a queue whose lanes hold at most items items and
// maxBytes bytes each.
func NewQueue(items, maxBytes int) *Queue {
	return &Queue{local: newLane(items, maxBytes), peer: newLane(items, maxBytes), abandoned: make(chan struct{})}
}

func (q *Queue) laneOf(it *Item) *lane {
	if it.Input > 0 {
		return &q.peer
	}
	return &q.local
}

// Deliver implements source.Consumer (input 0, this worker's sources): it
// blocks while the queue is full.
func (q *Queue) Deliver(ctx context.Context, b source.Batch) error {
	if b.Ingest == 0 {
		b.Ingest = time.Now().UnixNano()
	}
	return q.Put(ctx, BatchItem(0, b))
}

// Put queues an item in its lane, blocking while that lane is full;
// ctx.Err() if ctx ends first. Control items (barriers, ownership) count
// against the item bound only.
func (q *Queue) Put(ctx context.Context, it Item) error { return q.put(ctx, it, q.laneOf(&it)) }

// PutControl queues a control item (of no bytes: a barrier, a call) in
// the peers' lane whatever its Input: the loop takes it even while the
// sources' lane is held (a barrier injected at the sources of a worker
// whose sources wait for the first checkpoint).
func (q *Queue) PutControl(ctx context.Context, it Item) error {
	if it.size() != 0 {
		return fmt.Errorf("work: PutControl of a %v item of %d bytes", it.Kind, it.size())
	}
	return q.put(ctx, it, &q.peer)
}

func (q *Queue) put(ctx context.Context, it Item, l *lane) error {
	q.gate.RLock()
	defer q.gate.RUnlock()
	if q.closed {
		return ErrClosed
	}
	select {
	case <-q.abandoned:
		return ErrClosed
	default:
	}
	n := it.size()
	for n > 0 {
		l.mu.Lock()
		if l.bytes == 0 || l.bytes+n <= l.max {
			l.bytes += n
			l.mu.Unlock()
			break
		}
		space := l.space
		l.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-q.abandoned:
			return ErrClosed
		}
	}
	select {
	case l.ch <- it:
		return nil
	case <-ctx.Done():
		l.release(n)
		return ctx.Err()
	case <-q.abandoned:
		l.release(n)
		return ErrClosed
	}
}

// Close ends the queue: later Puts fail with ErrClosed, and the loop
// drains what is queued and then sees it closed. Close waits for the
// Puts under way, so producers still running must have their contexts
// ended first (or the loop must be receiving). Closing twice is harmless.
func (q *Queue) Close() {
	q.gate.Lock()
	defer q.gate.Unlock()
	if !q.closed {
		q.closed = true
		close(q.local.ch)
		close(q.peer.ch)
	}
}

// Empty reports whether nothing is queued.
func (q *Queue) Empty() bool { return len(q.local.ch) == 0 && len(q.peer.ch) == 0 }

// Depth is how many items wait in each lane: this worker's sources, and
// its peers. Safe from any goroutine.
func (q *Queue) Depth() (local, peer int) { return len(q.local.ch), len(q.peer.ch) }

// done gives back an item's bytes once it has been processed.
func (q *Queue) done(it *Item) { q.laneOf(it).release(it.size()) }

func (l *lane) release(n int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	l.bytes -= n
	close(l.space)
	l.space = make(chan struct{})
	l.mu.Unlock()
}

// Discard drops whatever is still queued (after the loop has ended), so
// producers blocked in Put can finish (a Put waiting for room, or made
// from now on, fails with ErrClosed: nobody takes from the queue any
// more); it returns once the queue is closed and empty. Items dropped are
// counted in the result.
func (q *Queue) Discard() (items, bytes int) {
	q.abandon.Do(func() { close(q.abandoned) })
	for _, ch := range []chan Item{q.local.ch, q.peer.ch} {
		for it := range ch {
			items++
			bytes += it.size()
			q.done(&it)
		}
	}
	return items, bytes
}
