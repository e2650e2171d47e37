package work

import (
	"fmt"

	"github.com/wallaroo-go/machida/engine/barrier"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/source"
)

// Dest numbers a destination of the ownership table: 0 is the processor
// itself (this interpreter), any other value a place the engine routes
// envelopes to (another interpreter of this worker, or another worker).
type Dest int

// Here is the processor's own destination number.
const Here Dest = 0

// AnyPartition is the partition of an envelope bound for a spread
// segment (the first stateless chain after a source, or after a merge of
// pipelines that do not end in key_by), which any worker may run.
const AnyPartition = -1

// Envelopes is a batch of messages that left the processor at segment
// boundaries bound for one destination. Each message is an envelope:
// (path, segment, partition or AnyPartition, key, ingest time, value);
// Data holds them serialised by the processor (the Python runner pickles
// the whole batch at once, or calls the module's own serialize per
// value), opaque to the engine, which only routes them by Dest.
type Envelopes struct {
	Dest  Dest
	Count int    // envelopes in Data
	Data  []byte // owned by whoever holds the batch
	// Arrived is when the batch reached this worker (Unix nanoseconds;
	// set by the link that received it, 0 for a batch looped back
	// here), for the node-ingress-egress metric.
	Arrived int64
	// Reroute marks a batch that must be routed again before it runs
	// here (what a rescale undone after its freeze had parked): each
	// record goes by the ownership table installed now, from the
	// segment it names; those this worker does not own leave again.
	Reroute bool
}

// Ownership is the table that says where each partition's segments run,
// with an epoch that grows with every change. Owner[p] is the
// destination of partition p (Here for local); Spread lists the
// destinations a spread segment's messages are dealt to at random (empty
// or [Here] keeps them all local).
type Ownership struct {
	Epoch  uint64
	Owner  []Dest
	Spread []Dest
}

// OwnershipOf makes the ownership table of worker me from a partition
// table: Here for me's partitions, dest(owner) for the others. Spread
// deals the spread segments over every worker of the table in its order
// (me included, as Here).
func OwnershipOf(t routing.Table, me routing.WorkerName, dest func(routing.WorkerName) Dest) Ownership {
	o := Ownership{Epoch: t.Epoch(), Owner: make([]Dest, t.Partitions())}
	for p := range o.Owner {
		if w := t.Owner(routing.PartitionID(p)); w != me {
			o.Owner[p] = dest(w)
		}
	}
	if ws := t.Workers(); len(ws) > 1 {
		for _, w := range ws {
			if w == me {
				o.Spread = append(o.Spread, Here)
			} else {
				o.Spread = append(o.Spread, dest(w))
			}
		}
	}
	return o
}

// AllLocal reports whether every partition and spread segment runs here.
func (o Ownership) AllLocal() bool {
	for _, d := range o.Owner {
		if d != Here {
			return false
		}
	}
	for _, d := range o.Spread {
		if d != Here {
			return false
		}
	}
	return true
}

// Kind says what an Item carries.
type Kind uint8

const (
	// KindBatch: frames read from a source connection.
	KindBatch Kind = iota + 1
	// KindEnvelopes: messages that resume at a segment here.
	KindEnvelopes
	// KindBarrier: a barrier, aligned over the loop's inputs.
	KindBarrier
	// KindOwnership: a new ownership table, applied in order.
	KindOwnership
	// KindCall: a function the loop runs in order with the data (a
	// rescale's fence from a peer: everything that peer sent before it
	// has been processed).
	KindCall
)

func (k Kind) String() string {
	switch k {
	case KindBatch:
		return "batch"
	case KindEnvelopes:
		return "envelopes"
	case KindBarrier:
		return "barrier"
	case KindOwnership:
		return "ownership"
	case KindCall:
		return "call"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Item is one element of the processor loop's queue: a sum type whose
// Kind says which one field is set. Input numbers the upstream it came
// from (0 for this worker's own sources; peers get their own numbers), so
// barriers can be aligned per input.
type Item struct {
	Kind      Kind
	Input     int
	Batch     source.Batch
	Envelopes Envelopes
	Barrier   barrier.Barrier
	Ownership Ownership
	// Applied, if set on a KindOwnership item, is told once the loop
	// has installed it (nil) or failed to (the error that stops it); on
	// the loop's goroutine. The items it returns (envelopes parked for
	// this worker during a rescale) run before anything else.
	Applied func(error) []Item
	// Call is a KindCall item's function (on the loop's goroutine); the
	// items it returns run before anything else.
	Call func() []Item
	// Rearm, on a KindCall item, has every generator of the loop run
	// again after the call, also one that had stopped: the call returned
	// the processor to a checkpoint, which moved the generators back (one
	// restored as stopped drops out again on its first round).
	Rearm bool
	// released: the item's bytes were given back to its queue lane when
	// a barrier held it (the loop counts them apart meanwhile).
	released bool
}

// BatchItem, EnvelopesItem, BarrierItem and OwnershipItem build items.
func BatchItem(input int, b source.Batch) Item { return Item{Kind: KindBatch, Input: input, Batch: b} }

// EnvelopesItem wraps a batch of envelopes arriving from input.
func EnvelopesItem(input int, e Envelopes) Item {
	return Item{Kind: KindEnvelopes, Input: input, Envelopes: e}
}

// BarrierItem wraps a barrier arriving from input.
func BarrierItem(input int, b barrier.Barrier) Item {
	return Item{Kind: KindBarrier, Input: input, Barrier: b}
}

// OwnershipItem wraps an ownership change.
func OwnershipItem(o Ownership) Item { return Item{Kind: KindOwnership, Ownership: o} }

// CallItem wraps a function the loop runs when it reaches the item.
func CallItem(input int, f func() []Item) Item { return Item{Kind: KindCall, Input: input, Call: f} }

// ResumeItem wraps envelopes this worker made itself and kept back, to
// be run here (not queued: the loop runs them next).
func ResumeItem(e Envelopes) Item {
	return Item{Kind: KindEnvelopes, Input: internalInput, Envelopes: e}
}

// messages is how many messages a data item carries (a raw batch, whose
// frames are not found yet, counts as one).
func (it *Item) messages() int {
	switch it.Kind {
	case KindBatch:
		if it.Batch.Raw {
			return 1
		}
		return len(it.Batch.Ends)
	case KindEnvelopes:
		return it.Envelopes.Count
	}
	return 0
}

// size is the bytes an item holds while queued (for the byte bound).
func (it *Item) size() int {
	switch it.Kind {
	case KindBatch:
		return len(it.Batch.Buf) + 4*len(it.Batch.Ends)
	case KindEnvelopes:
		return len(it.Envelopes.Data)
	}
	return 0
}

// Output collects what one Process or Generate call produced: the bytes
// for each sink (Sinks[i] for sink i; the slices are the caller's
// afterwards), the envelopes bound elsewhere, and the envelope batches
// the processor refused to run.
type Output struct {
	Sinks     [][]byte
	Envelopes []Envelopes
	Rejected  []Rejected
}

// Rejected is an envelope batch the processor could not read as a batch
// of its application (damaged bytes, or a peer that is not what its
// handshake said): none of it ran, and the loop logs it as lost instead
// of stopping the worker. Other items of the same call still run.
type Rejected struct {
	Input  int // the item's input (a peer's Dest)
	Count  int // envelopes in the batch
	Reason string
}

// NewOutput returns an Output for n sinks.
func NewOutput(n int) *Output { return &Output{Sinks: make([][]byte, n)} }

// Reset empties o for reuse, keeping nothing it handed out.
func (o *Output) Reset() {
	for i := range o.Sinks {
		o.Sinks[i] = nil
	}
	o.Envelopes = o.Envelopes[:0]
	o.Rejected = o.Rejected[:0]
}

// SpreadSetter is implemented by a processor that can deal the messages
// of its spread segments with weights (see package spread) instead of
// evenly. SetSpread may be called from any goroutine; the weights (by
// destination, Here included; destinations missing get none) take effect
// at a later Process call.
type SpreadSetter interface {
	SetSpread(weights map[Dest]float64)
}

// Processor runs the application's segments (the user code). It is
// called from one goroutine at a time (the loop). An error is fatal: user
// code failed and the worker must stop; even then out holds what was
// produced before the failure, which the loop still delivers.
type Processor interface {
	// Process runs the data items (KindBatch, KindEnvelopes) in order.
	Process(items []Item, out *Output) error
	// Generate makes up to max messages from generator source src and
	// runs them. stopped reports that the generator has no more values.
	Generate(src int, max int, out *Output) (stopped bool, err error)
	// SetOwnership installs a new ownership table; later items are
	// routed by it.
	SetOwnership(o Ownership) error
}
