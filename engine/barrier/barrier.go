// Package barrier aligns barriers across the inputs of one consumer, as
// Wallaroo 0.6 and Chandy–Lamport style snapshots do (runtime spec 4.3):
// a barrier travels in band with the data of every input; once it has
// arrived on one input, that input is held (its later items wait) until
// the barrier has arrived on every input; then the consumer acts on it
// (a checkpoint, a stop-the-world rescale, a rollback), forwards it, and
// releases the held inputs.
//
// Aligner is the bookkeeping alone: a state machine fed "barrier b
// arrived on input i" and asked "is input i held?". It does no I/O, owns
// no goroutine and is not safe for concurrent use: the single consumer
// (the engine's processor loop) owns it.
package barrier

import "fmt"

// ID numbers barriers; each is larger than the one before it.
type ID uint64

// Kind says what a barrier is for.
type Kind uint8

const (
	// Checkpoint: save the state and the sources' positions.
	Checkpoint Kind = iota + 1
	// Rescale: the cluster stops the world to move partitions.
	Rescale
	// Rollback: return to the last checkpoint after a failure.
	Rollback
)

func (k Kind) String() string {
	switch k {
	case Checkpoint:
		return "checkpoint"
	case Rescale:
		return "rescale"
	case Rollback:
		return "rollback"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Barrier is one barrier as it travels with the data.
type Barrier struct {
	ID   ID
	Kind Kind
}

func (b Barrier) String() string { return fmt.Sprintf("%s barrier %d", b.Kind, b.ID) }

// Aligner tracks one barrier at a time over a fixed number of inputs
// (numbered 0 to n-1).
type Aligner struct {
	n       int
	current Barrier
	active  bool
	arrived []bool
	count   int
}

// NewAligner returns an aligner for n inputs (n >= 1).
func NewAligner(n int) *Aligner {
	if n < 1 {
		panic(fmt.Sprintf("barrier: an aligner needs at least one input, got %d", n))
	}
	return &Aligner{n: n, arrived: make([]bool, n)}
}

// Inputs returns the number of inputs.
func (a *Aligner) Inputs() int { return a.n }

// Arrive records that b arrived on input in. It reports whether b has now
// arrived on every input (the consumer acts on it and calls Done). An
// error means a protocol fault: the input is out of range, it delivered
// the same barrier twice, or another barrier arrived while one is being
// aligned (barriers never overtake each other on an input).
func (a *Aligner) Arrive(in int, b Barrier) (complete bool, err error) {
	if in < 0 || in >= a.n {
		return false, fmt.Errorf("barrier: %v arrived on input %d of %d", b, in, a.n)
	}
	if a.active && b != a.current {
		return false, fmt.Errorf("barrier: %v arrived on input %d while %v is being aligned", b, in, a.current)
	}
	if !a.active {
		a.active, a.current = true, b
	}
	if a.arrived[in] {
		return false, fmt.Errorf("barrier: %v arrived twice on input %d", b, in)
	}
	a.arrived[in] = true
	a.count++
	return a.count == a.n, nil
}

// Held reports whether input in's items must wait: its barrier has
// arrived and others' have not yet.
func (a *Aligner) Held(in int) bool { return a.active && a.arrived[in] }

// Pending returns the barrier being aligned, if any.
func (a *Aligner) Pending() (Barrier, bool) { return a.current, a.active }

// Done ends the alignment of the current barrier (after the consumer has
// acted on it): every input flows again.
func (a *Aligner) Done() {
	a.active = false
	a.count = 0
	for i := range a.arrived {
		a.arrived[i] = false
	}
}
