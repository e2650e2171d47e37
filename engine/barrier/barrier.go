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
	// Cancel is not a barrier but the end of one: the barrier of the
	// same ID is given up (its alignment ends, the held inputs flow, its
	// late arrivals are dropped).
	Cancel
)

func (k Kind) String() string {
	switch k {
	case Checkpoint:
		return "checkpoint"
	case Rescale:
		return "rescale"
	case Rollback:
		return "rollback"
	case Cancel:
		return "cancel"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Barrier is one barrier as it travels with the data.
type Barrier struct {
	ID   ID
	Kind Kind
	// Checkpoint is the checkpoint a Checkpoint barrier takes (a retry
	// of a checkpoint has its own barrier ID, the same Checkpoint).
	Checkpoint uint64
}

func (b Barrier) String() string { return fmt.Sprintf("%s barrier %d", b.Kind, b.ID) }

// Aligner tracks one barrier at a time over a set of inputs: by default
// inputs 0 to n-1; Open names another set for one barrier (the workers of
// a cluster come and go between barriers).
type Aligner struct {
	n        int
	current  Barrier
	active   bool
	expected map[int]bool // input → has it arrived
	count    int
}

// NewAligner returns an aligner whose barriers come, unless Open says
// otherwise, on inputs 0 to n-1 (n >= 1).
func NewAligner(n int) *Aligner {
	if n < 1 {
		panic(fmt.Sprintf("barrier: an aligner needs at least one input, got %d", n))
	}
	return &Aligner{n: n}
}

// Inputs returns the number of inputs of the default set.
func (a *Aligner) Inputs() int { return a.n }

// Open starts aligning b over inputs (no other barrier may be under
// way; at least one input).
func (a *Aligner) Open(b Barrier, inputs []int) error {
	if a.active {
		return fmt.Errorf("barrier: %v opened while %v is being aligned", b, a.current)
	}
	if len(inputs) == 0 {
		return fmt.Errorf("barrier: %v opened over no input", b)
	}
	a.active, a.current, a.count = true, b, 0
	a.expected = make(map[int]bool, len(inputs))
	for _, in := range inputs {
		a.expected[in] = false
	}
	return nil
}

// Arrive records that b arrived on input in. It reports whether b has now
// arrived on every input (the consumer acts on it and calls Done). A
// barrier arriving while none is under way opens it over the default
// inputs. An error means a protocol fault: the input is not one the
// barrier comes on, it delivered the same barrier twice, or another
// barrier arrived while one is being aligned (barriers never overtake
// each other on an input).
func (a *Aligner) Arrive(in int, b Barrier) (complete bool, err error) {
	if !a.active {
		all := make([]int, a.n)
		for i := range all {
			all[i] = i
		}
		if err := a.Open(b, all); err != nil {
			return false, err
		}
	}
	if b != a.current {
		return false, fmt.Errorf("barrier: %v arrived on input %d while %v is being aligned", b, in, a.current)
	}
	arrived, ok := a.expected[in]
	if !ok {
		return false, fmt.Errorf("barrier: %v arrived on input %d, which it does not come on", b, in)
	}
	if arrived {
		return false, fmt.Errorf("barrier: %v arrived twice on input %d", b, in)
	}
	a.expected[in] = true
	a.count++
	return a.count == len(a.expected), nil
}

// Held reports whether input in's items must wait: its barrier has
// arrived and others' have not yet.
func (a *Aligner) Held(in int) bool { return a.active && a.expected[in] }

// Pending returns the barrier being aligned, if any.
func (a *Aligner) Pending() (Barrier, bool) { return a.current, a.active }

// Missing lists the inputs the barrier being aligned has not arrived on.
func (a *Aligner) Missing() []int {
	var out []int
	for in, arrived := range a.expected {
		if !arrived {
			out = append(out, in)
		}
	}
	return out
}

// Done ends the alignment of the current barrier (after the consumer has
// acted on it, or gave it up): every input flows again.
func (a *Aligner) Done() {
	a.active = false
	a.count = 0
	a.expected = nil
}
