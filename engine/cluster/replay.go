package cluster

import (
	"errors"
	"fmt"
)

// outQueue is the sender's half of a data link as a state machine: it
// numbers batches, keeps every one until the receiver acknowledges it,
// and says what to send again after a reconnect. It is bounded: Full
// reports when the sender must wait (backpressure upstream) instead of
// growing. No I/O, no locking: the Outbound that owns it serialises use.
type outQueue struct {
	next     uint64 // sequence number of the next batch (first is 1)
	acked    uint64 // every batch up to acked was received
	entries  []outEntry
	bytes    int
	maxCount int
	maxBytes int
}

type outEntry struct {
	seq   uint64
	count uint32
	data  []byte
}

func newOutQueue(maxCount, maxBytes int) *outQueue {
	return &outQueue{next: 1, maxCount: maxCount, maxBytes: maxBytes}
}

// Full reports whether no batch may be pushed now. An empty queue always
// takes one batch, however large.
func (q *outQueue) Full() bool {
	return len(q.entries) > 0 && (len(q.entries) >= q.maxCount || q.bytes >= q.maxBytes)
}

// Push numbers a batch and keeps it until acknowledged.
func (q *outQueue) Push(count uint32, data []byte) outEntry {
	e := outEntry{seq: q.next, count: count, data: data}
	q.next++
	q.entries = append(q.entries, e)
	q.bytes += len(data)
	return e
}

// ErrAckBeyondSent is the protocol fault of a receiver that acknowledges
// (or, reconnecting, says it has) a batch that was never sent: the two
// ends disagree on the link's numbering.
var ErrAckBeyondSent = errors.New("acknowledged a batch that was never sent")

// Ack drops every batch up to seq. An ack beyond what was sent is a
// protocol fault (ErrAckBeyondSent).
func (q *outQueue) Ack(seq uint64) error {
	if seq >= q.next {
		return fmt.Errorf("%w: batch %d, but only %d were sent", ErrAckBeyondSent, seq, q.next-1)
	}
	if seq <= q.acked {
		return nil // an old or repeated ack
	}
	q.acked = seq
	i := 0
	for i < len(q.entries) && q.entries[i].seq <= seq {
		q.bytes -= len(q.entries[i].data)
		q.entries[i] = outEntry{}
		i++
	}
	q.entries = q.entries[i:]
	return nil
}

// Resume is called when the receiver, after a (re)connect, says the last
// batch it has is last: what it lacks must be sent again, in order.
func (q *outQueue) Resume(last uint64) ([]outEntry, error) {
	if err := q.Ack(last); err != nil {
		return nil, err
	}
	if last < q.acked {
		// The receiver lost batches it had acknowledged (it restarted):
		// they are gone from here too; say how many.
		return append([]outEntry(nil), q.entries...), fmt.Errorf("receiver restarted: it has up to batch %d but had acknowledged %d; batches %d to %d were lost with it", last, q.acked, last+1, q.acked)
	}
	return append([]outEntry(nil), q.entries...), nil
}

// FirstHeld is what DataConnect announces: the sequence number of the
// oldest batch still held, or, with none held, of the next one to be
// sent (a receiver that restarted starts counting there).
func (q *outQueue) FirstHeld() uint64 {
	if len(q.entries) > 0 {
		return q.entries[0].seq
	}
	return q.next
}

// Pending returns how many batches wait for an ack.
func (q *outQueue) Pending() int { return len(q.entries) }

// inSeq is the receiver's half: it drops batches it has seen already (a
// replay after a reconnect may repeat some) and remembers what to ack.
type inSeq struct {
	last uint64 // highest sequence number delivered
}

// Accept reports whether batch seq is new and must be delivered. Batches
// arrive in order; a gap is a protocol fault.
func (s *inSeq) Accept(seq uint64) (bool, error) {
	switch {
	case seq <= s.last:
		return false, nil
	case seq == s.last+1:
		s.last = seq
		return true, nil
	}
	return false, fmt.Errorf("batch %d arrived after batch %d: batches %d to %d are missing", seq, s.last, s.last+1, seq-1)
}
