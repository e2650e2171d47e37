package work

import (
	"context"
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
	once  sync.Once
}

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

// Close ends the queue once no producer will Put again; the loop drains
// what is queued and then sees it closed.
func (q *Queue) Close() { q.once.Do(func() { close(q.ch) }) }

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
