package work

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/engine/source"
)

// Queue is the bounded hand-off from the sources (and, later, the peer
// links) to the processor loop: one FIFO of Items. It bounds the bytes
// waiting or being processed (an item larger than the bound is let in
// when nothing else is queued) and the number of items. Put and Deliver
// are safe for concurrent use; only the loop receives.
type Queue struct {
	ch    chan Item
	max   int
	mu    sync.Mutex
	bytes int
	space chan struct{} // closed and replaced whenever bytes are released
	// gate lets Close wait for the Puts under way: Put holds it shared,
	// Close exclusively, so no Put ever sends on the closed channel.
	gate   sync.RWMutex
	closed bool
}

// ErrClosed is returned by Put after Close.
var ErrClosed = errors.New("work: the queue is closed")

// NewQueue returns a queue of at most items items and maxBytes bytes.
func NewQueue(items, maxBytes int) *Queue {
	return &Queue{ch: make(chan Item, items), max: maxBytes, space: make(chan struct{})}
}

// Deliver implements source.Consumer (input 0, this worker's sources): it
// blocks while the queue is full.
func (q *Queue) Deliver(ctx context.Context, b source.Batch) error {
	if b.Ingest == 0 {
		b.Ingest = time.Now().UnixNano()
	}
	return q.Put(ctx, BatchItem(0, b))
}

// Put queues an item, blocking while the queue is full; ctx.Err() if ctx
// ends first. Control items (barriers, ownership) count against the item
// bound only.
func (q *Queue) Put(ctx context.Context, it Item) error {
	q.gate.RLock()
	defer q.gate.RUnlock()
	if q.closed {
		return ErrClosed
	}
	n := it.size()
	for n > 0 {
		q.mu.Lock()
		if q.bytes == 0 || q.bytes+n <= q.max {
			q.bytes += n
			q.mu.Unlock()
			break
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case q.ch <- it:
		return nil
	case <-ctx.Done():
		q.release(n)
		return ctx.Err()
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
		close(q.ch)
	}
}

// Empty reports whether nothing is queued.
func (q *Queue) Empty() bool { return len(q.ch) == 0 }

// done gives back an item's bytes once it has been processed.
func (q *Queue) done(it *Item) { q.release(it.size()) }

func (q *Queue) release(n int) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	q.bytes -= n
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
}

// Discard drops whatever is still queued (after the loop has ended), so
// producers blocked in Put can finish; it returns once the queue is
// closed and empty. Items dropped are counted in the result.
func (q *Queue) Discard() (items, bytes int) {
	for it := range q.ch {
		items++
		bytes += it.size()
		q.done(&it)
	}
	return items, bytes
}
