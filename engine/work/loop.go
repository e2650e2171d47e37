package work

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/wallaroo-go/machida/engine/barrier"
)

// Sink receives the bytes one sink must write, in order. Write blocks
// while the sink is full (backpressure) and fails only when ctx ends or
// the sink is closed.
type Sink interface {
	Write(ctx context.Context, b []byte) error
}

// internalInput marks items the loop made itself (envelopes looped back
// to this processor): they belong to work already admitted, so a barrier
// never holds them.
const internalInput = -1

// ControlInput is the input of the engine's own items (ownership
// changes, calls, a barrier's cancel): they go in the peers' lane, are
// taken in order with it, and no barrier ever holds them.
const ControlInput = math.MaxInt32

// LoopConfig is what Loop needs. The loop owns nothing it is given; it
// runs on the caller's goroutine.
type LoopConfig struct {
	Processor Processor
	Queue     *Queue
	Sinks     []Sink
	SinkNames []string // for log lines; one per sink
	// Generators lists the source indices of generator sources; the loop
	// runs them in turn with the queued work.
	Generators []int
	// MaxItemsPerCall bounds how many data items one Process call takes
	// (default 64), and MaxMessagesPerCall how many messages they may
	// carry together (default 1024, one full source batch; the first
	// item is always taken whole); GenBatch how many messages one
	// Generate call asks for (default 256). The message bound keeps a
	// call short: what it produces (sink bytes, envelopes for peers)
	// leaves only when it returns, so one huge call would leave the peers
	// it feeds idle (2048, two source batches a call, gave a 2-worker
	// word count 2-6 % less throughput; one worker is the same with
	// either: PERFORMANCE.md).
	MaxItemsPerCall    int
	MaxMessagesPerCall int
	GenBatch           int
	// Inputs is the number of upstreams barriers are aligned over
	// (default 1: this worker's own sources, input 0).
	Inputs int
	// Route sends envelopes bound for a destination other than Here. If
	// nil, every destination is looped back into this processor: a single
	// process, or a test that marks partitions as owned elsewhere.
	Route func(ctx context.Context, e Envelopes) error
	// OnBarrier acts on a barrier once it has arrived on every input,
	// before later items flow (a checkpoint, a rescale, a rollback). nil:
	// nothing to do. An error stops the loop.
	OnBarrier func(b barrier.Barrier) error
	// BarrierInputs, if set, names the inputs a barrier arrives on, asked
	// when its first arrival opens it (a cluster worker: its sources and
	// each peer); nil: inputs 0 to Inputs-1.
	BarrierInputs func(b barrier.Barrier) []int
	// OnBarrierOpen, if set, is told of a barrier's first arrival before
	// any later item is taken (a cluster worker forwards it to its peers
	// then). An error stops the loop.
	OnBarrierOpen func(b barrier.Barrier) error
	// OnBarrierCancel, if set, is told that the barrier being aligned was
	// given up (a Cancel item, or a newer barrier overtook it).
	OnBarrierCancel func(b barrier.Barrier)
	// Idle, if set, is kept true while the loop waits for work with
	// nothing held or looped back (it is false from the moment it takes
	// an item until it waits again): with an empty queue, the worker has
	// nothing left to do. Read it from any goroutine.
	Idle *atomic.Bool
	// BusyNanos, if set, accumulates the nanoseconds spent in the
	// processor's Process and Generate calls (user code), so that a
	// reader can compute this worker's utilisation over a period.
	BusyNanos *atomic.Int64
	// Hold, if set, is asked before each item is taken: a non-nil channel
	// means the links to peers are congested, so new source input (the
	// local lane) waits while the peers' work is taken; the channel
	// closes when that may have changed. nil: take everything.
	Hold func() <-chan struct{}
	// ExitWhenDrained makes Loop return once the queue is closed and all
	// is processed, instead of staying up until srcCtx ends (tests).
	ExitWhenDrained bool
	// InputName, if set, names an input in log lines (a cluster worker:
	// the peer whose Dest it is).
	InputName func(input int) string
	// Log receives diagnostics; Console the lines tools wait for.
	Log     *slog.Logger
	Console io.Writer
}

func (c *LoopConfig) setDefaults() {
	if c.MaxItemsPerCall <= 0 {
		c.MaxItemsPerCall = 64
	}
	if c.MaxMessagesPerCall <= 0 {
		c.MaxMessagesPerCall = 1024
	}
	if c.GenBatch <= 0 {
		c.GenBatch = 256
	}
	if c.Inputs <= 0 {
		c.Inputs = 1
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Console == nil {
		c.Console = io.Discard
	}
}

// loop is the state of one Loop run; only its goroutine touches it.
type loop struct {
	cfg LoopConfig
	// local holds work taken before the queue: envelopes looped back to
	// this processor (first: they continue items already processed),
	// items released after a barrier, an item put back while gathering a
	// run of data items, and the items a call or an ownership change
	// hands back (what a rescale parked, to run now). Only pushFront
	// adds to it; resumed counts its items of internalInput (the
	// loop's own work, older than anything a generator makes now).
	local   []Item
	resumed int
	held    map[int][]Item
	aligner *barrier.Aligner
	// closed is the newest barrier completed or given up: later
	// arrivals of it (or of older ones) are dropped.
	closed barrier.ID
	// heldBytes is what held holds (see hold).
	heldBytes int
	gens      []int
	// localCh and peerCh are the queue's lanes, nil once closed and
	// drained.
	localCh, peerCh <-chan Item
	out             *Output
}

// Loop is the processor loop. It takes items in order (first those it
// made itself, then the queue), hands runs of data items to
// Processor.Process in one call (never waiting for more), writes what
// comes out to the sinks and routes envelopes, aligns barriers per input,
// applies ownership changes in order, and runs generator sources in turn
// with the queued work so neither starves the other (never ahead of the
// loop's own work that has not run yet: it is older).
//
// It returns nil when drainCtx ends, or when the queue is closed and
// drained and srcCtx has ended; the processor's (or a sink's, or
// OnBarrier's) error otherwise, after delivering what was produced before
// the failure. Generators stop when srcCtx ends.
func Loop(srcCtx, drainCtx context.Context, cfg LoopConfig) error {
	cfg.setDefaults()
	l := &loop{
		cfg:     cfg,
		held:    map[int][]Item{},
		aligner: barrier.NewAligner(cfg.Inputs),
		gens:    append([]int(nil), cfg.Generators...),
		localCh: cfg.Queue.local.ch,
		peerCh:  cfg.Queue.peer.ch,
		out:     NewOutput(len(cfg.Sinks)),
	}
	return l.run(srcCtx, drainCtx)
}

// next returns the next item: one the loop made or held first, then the
// queue's lanes. While Hold says the links are congested, the local lane
// (new source input) is not taken: only peers' work, which drains the
// links. With block false it returns ok=false when nothing is ready; it
// also returns ok=false once both lanes are closed and empty.
func (l *loop) next(ctx context.Context, block bool) (it Item, ok bool) {
	if len(l.local) > 0 {
		it = l.local[0]
		l.local[0] = Item{}
		l.local = l.local[1:]
		if it.Input == internalInput {
			l.resumed--
		}
		return it, true
	}
	for {
		if l.localCh == nil && l.peerCh == nil {
			return Item{}, false
		}
		localCh := l.localCh
		var hold <-chan struct{}
		if l.cfg.Hold != nil {
			if hold = l.cfg.Hold(); hold != nil {
				localCh = nil
			}
		}
		if l.aligner.Held(0) {
			// The sources' barrier has arrived: their later input waits
			// in the queue (bounded) rather than in the loop's memory.
			localCh = nil
		}
		select {
		case it, ok = <-localCh:
			if !ok {
				l.localCh = nil
				continue
			}
			return it, true
		case it, ok = <-l.peerCh:
			if !ok {
				l.peerCh = nil
				continue
			}
			return it, true
		default:
		}
		if !block {
			return Item{}, false
		}
		if _, aligning := l.aligner.Pending(); l.cfg.Idle != nil && !aligning {
			// (While a barrier is aligned, held input waits: not idle.)
			l.cfg.Idle.Store(true)
		}
		select {
		case it, ok = <-localCh:
			if !ok {
				l.localCh = nil
			}
		case it, ok = <-l.peerCh:
			if !ok {
				l.peerCh = nil
			}
		case <-hold:
			// The hold ended (the links have room again, or the sources
			// were resumed): the caller looks again at what it may take,
			// generators included.
			if l.cfg.Idle != nil {
				l.cfg.Idle.Store(false)
			}
			return Item{}, false
		case <-ctx.Done():
			if l.cfg.Idle != nil {
				l.cfg.Idle.Store(false)
			}
			return Item{}, false
		}
		if l.cfg.Idle != nil {
			l.cfg.Idle.Store(false)
		}
		if ok {
			return it, true
		}
	}
}

func (l *loop) generating(srcCtx context.Context) bool {
	if len(l.gens) == 0 || srcCtx.Err() != nil || l.aligner.Held(0) {
		return false
	}
	return l.cfg.Hold == nil || l.cfg.Hold() == nil
}

func (l *loop) run(srcCtx, drainCtx context.Context) error {
	items := make([]Item, 0, l.cfg.MaxItemsPerCall)
	for {
		if drainCtx.Err() != nil {
			return nil
		}
		gen := l.generating(srcCtx)
		it, ok := l.next(drainCtx, !gen)
		if !ok {
			if gen {
				if err := l.generate(drainCtx); err != nil {
					return err
				}
				continue
			}
			if drainCtx.Err() != nil {
				return nil
			}
			if l.localCh != nil || l.peerCh != nil {
				continue // woken by the end of a hold: look again
			}
			// The queue is closed and nothing is left: every source has
			// ended. Stay up until told to stop, as a 0.6 worker does.
			if !l.cfg.ExitWhenDrained {
				<-srcCtx.Done()
			}
			return nil
		}
		if it.Input != internalInput && l.aligner.Held(it.Input) {
			if err := l.hold(it); err != nil {
				return err
			}
			continue
		}
		switch it.Kind {
		case KindBarrier:
			if err := l.barrier(it); err != nil {
				return err
			}
			continue
		case KindOwnership:
			err := l.cfg.Processor.SetOwnership(it.Ownership)
			if it.Applied != nil {
				if first := it.Applied(err); len(first) > 0 {
					l.pushFront(first...)
				}
			}
			if err != nil {
				return fmt.Errorf("apply ownership epoch %d: %w", it.Ownership.Epoch, err)
			}
			continue
		case KindCall:
			if it.Call != nil {
				if first := it.Call(); len(first) > 0 {
					l.pushFront(first...)
				}
			}
			if it.Rearm {
				l.gens = append(l.gens[:0], l.cfg.Generators...)
			}
			continue
		case KindBatch, KindEnvelopes:
		default:
			return fmt.Errorf("work: queue item of unknown kind %v", it.Kind)
		}
		items = append(items[:0], it)
		msgs := it.messages()
	gather:
		for len(items) < l.cfg.MaxItemsPerCall && msgs < l.cfg.MaxMessagesPerCall {
			more, ok := l.next(drainCtx, false)
			if !ok {
				break
			}
			switch {
			case more.Kind != KindBatch && more.Kind != KindEnvelopes,
				more.Input != internalInput && l.aligner.Held(more.Input):
				l.pushFront(more)
				break gather
			}
			items = append(items, more)
			msgs += more.messages()
		}
		l.out.Reset()
		t0 := l.busyStart()
		perr := l.cfg.Processor.Process(items, l.out)
		l.busyEnd(t0)
		for i := range items {
			if items[i].Input != internalInput && !items[i].released {
				l.cfg.Queue.done(&items[i])
			}
			items[i] = Item{}
		}
		if err := l.deliver(drainCtx, perr); err != nil {
			return err
		}
		// Fairness: one generator round after each run of queued work,
		// but not while the loop's own work waits (l.resumed): what a
		// rescale parked and now resumes, or envelopes looped back, is
		// older than anything a generator would make now, and a key's
		// messages keep their order (parked work split over two calls
		// by the message budget would otherwise be overtaken).
		if l.resumed == 0 && l.generating(srcCtx) {
			if err := l.generate(drainCtx); err != nil {
				return err
			}
		}
	}
}

func (l *loop) busyStart() time.Time {
	if l.cfg.BusyNanos == nil {
		return time.Time{}
	}
	return time.Now()
}

func (l *loop) busyEnd(t0 time.Time) {
	if l.cfg.BusyNanos != nil {
		l.cfg.BusyNanos.Add(int64(time.Since(t0)))
	}
}

// generate runs one round of every active generator.
func (l *loop) generate(ctx context.Context) error {
	next := l.gens[:0]
	for _, g := range l.gens {
		l.out.Reset()
		t0 := l.busyStart()
		stopped, perr := l.cfg.Processor.Generate(g, l.cfg.GenBatch, l.out)
		l.busyEnd(t0)
		if err := l.deliver(ctx, perr); err != nil {
			return err
		}
		if stopped {
			fmt.Fprintln(l.cfg.Console, "GenSource produced a None. Stopping GenSource.")
		} else {
			next = append(next, g)
		}
	}
	l.gens = next
	return nil
}

// barrier aligns b; once it has arrived on every input, acts on it and
// lets the held items flow again (ahead of the queue, in their order).
// Its first arrival opens it (over BarrierInputs, told to OnBarrierOpen).
// A barrier already completed or given up is dropped; a newer one
// overtaking the one under way gives that one up (its cancel was late).
func (l *loop) barrier(it Item) error {
	b := it.Barrier
	pending, active := l.aligner.Pending()
	if b.Kind == barrier.Cancel {
		// (An older one still open lost its own cancel: it goes too.)
		if active && pending.ID <= b.ID {
			l.giveUp(pending)
		}
		l.close(b.ID)
		return nil
	}
	if b.ID <= l.closed || (active && b.ID < pending.ID) {
		l.cfg.Log.Debug("late barrier dropped", "barrier", b.String(), "input", it.Input)
		return nil
	}
	if active && b.ID > pending.ID {
		l.cfg.Log.Info("a newer barrier overtook the one under way; giving that one up", "newer", b.String(), "given_up", pending.String())
		l.giveUp(pending)
		l.close(pending.ID)
		active = false
	}
	if !active {
		var inputs []int
		if l.cfg.BarrierInputs != nil {
			inputs = l.cfg.BarrierInputs(b)
		} else {
			for in := 0; in < l.cfg.Inputs; in++ {
				inputs = append(inputs, in)
			}
		}
		if err := l.aligner.Open(b, inputs); err != nil {
			return err
		}
		if l.cfg.OnBarrierOpen != nil {
			if err := l.cfg.OnBarrierOpen(b); err != nil {
				return fmt.Errorf("%v: %w", b, err)
			}
		}
	}
	complete, err := l.aligner.Arrive(it.Input, b)
	if err != nil {
		// A peer's fault (or one that left): not a reason to stop.
		l.cfg.Log.Warn("barrier arrival dropped", "err", err)
		return nil
	}
	if !complete {
		return nil
	}
	if l.cfg.OnBarrier != nil {
		if err := l.cfg.OnBarrier(b); err != nil {
			return fmt.Errorf("%v: %w", b, err)
		}
	}
	l.close(b.ID)
	l.release()
	return nil
}

// maxHeldBytes bounds what a barrier's alignment may hold: past it the
// barrier is given up here (its checkpoint fails and is taken again
// later) rather than the loop's memory growing with a slow peer.
const maxHeldBytes = 256 << 20

// hold keeps it until the barrier being aligned has arrived on every
// input. Its bytes go back to the queue at once: the peers share one
// lane, and held bytes must not keep another peer's barrier out of it.
func (l *loop) hold(it Item) error {
	if !it.released {
		l.cfg.Queue.done(&it)
		it.released = true
	}
	l.held[it.Input] = append(l.held[it.Input], it)
	l.heldBytes += it.size()
	if l.heldBytes > maxHeldBytes {
		if b, ok := l.aligner.Pending(); ok {
			l.cfg.Log.Warn("giving up a barrier: too much input held while waiting for it", "barrier", b.String(), "held_bytes", l.heldBytes, "missing_inputs", fmt.Sprint(l.aligner.Missing()))
			l.giveUp(b)
			l.close(b.ID)
		}
	}
	return nil
}

// giveUp ends the alignment of b without acting on it.
func (l *loop) giveUp(b barrier.Barrier) {
	l.release()
	if l.cfg.OnBarrierCancel != nil {
		l.cfg.OnBarrierCancel(b)
	}
}

// close records that barrier id is over.
func (l *loop) close(id barrier.ID) {
	if id > l.closed {
		l.closed = id
	}
}

// release ends the alignment: the held items run next, in their order
// per input.
func (l *loop) release() {
	l.aligner.Done()
	var released []Item
	for in, items := range l.held {
		released = append(released, items...)
		delete(l.held, in)
	}
	l.heldBytes = 0
	l.pushFront(released...)
}

// pushFront puts items ahead of everything else the loop will take, in
// their order.
func (l *loop) pushFront(items ...Item) {
	for i := range items {
		if items[i].Input == internalInput {
			l.resumed++
		}
	}
	l.local = append(items, l.local...)
}

// deliver logs the batches the processor rejected, writes l.out to the
// sinks and routes its envelopes. On a processor error (perr), out still
// holds what was produced before the failure: it is delivered before the
// error is returned.
func (l *loop) deliver(ctx context.Context, perr error) error {
	for _, r := range l.out.Rejected {
		from := fmt.Sprintf("input %d", r.Input)
		if l.cfg.InputName != nil {
			if n := l.cfg.InputName(r.Input); n != "" {
				from = "worker " + n
			}
		}
		l.cfg.Log.Error("dropped a batch of envelopes that is not a batch of this application: the messages in it are lost; if it happens again, check that every worker runs the same build and application",
			"from", from, "envelopes", r.Count, "reason", r.Reason)
	}
	for i, o := range l.out.Sinks {
		if len(o) == 0 {
			continue
		}
		if err := l.cfg.Sinks[i].Write(ctx, o); err != nil {
			name := fmt.Sprint(i)
			if i < len(l.cfg.SinkNames) {
				name = l.cfg.SinkNames[i]
			}
			if perr == nil && ctx.Err() != nil {
				l.cfg.Log.Warn("output not delivered at shutdown", "sink", name, "bytes", len(o), "err", err)
				return nil
			}
			return errors.Join(perr, fmt.Errorf("sink %s: %w", name, err))
		}
	}
	var back []Item
	defer func() {
		if len(back) > 0 {
			l.pushFront(back...)
		}
	}()
	for _, e := range l.out.Envelopes {
		if e.Dest == Here {
			return errors.Join(perr, fmt.Errorf("work: the processor made envelopes for itself (%d of them)", e.Count))
		}
		if l.cfg.Route == nil {
			back = append(back, Item{Kind: KindEnvelopes, Input: internalInput, Envelopes: e})
			continue
		}
		if err := l.cfg.Route(ctx, e); err != nil {
			if perr == nil && ctx.Err() != nil {
				l.cfg.Log.Warn("envelopes not delivered at shutdown", "dest", e.Dest, "count", e.Count, "err", err)
				return nil
			}
			return errors.Join(perr, fmt.Errorf("route %d envelopes to destination %d: %w", e.Count, e.Dest, err))
		}
	}
	return perr
}
