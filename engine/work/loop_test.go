package work

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/barrier"
	"github.com/wallaroo-go/machida/engine/source"
)

// countingProcessor records how many messages each Process call got and
// spends a little time in each, as user code would.
type countingProcessor struct{ calls []int }

func (p *countingProcessor) Process(items []Item, out *Output) error {
	n := 0
	for i := range items {
		n += items[i].messages()
	}
	p.calls = append(p.calls, n)
	time.Sleep(time.Millisecond)
	return nil
}

func (p *countingProcessor) Generate(int, int, *Output) (bool, error) { return true, nil }
func (p *countingProcessor) SetOwnership(Ownership) error             { return nil }

func batchOf(n int) Item {
	return BatchItem(0, source.Batch{Buf: make([]byte, n), Ends: make([]int32, n)})
}

// A call gathers queued items until their messages reach
// MaxMessagesPerCall (the first item whole, however large), so that
// what a call makes leaves for the peers while the next runs; and the
// loop's time in the processor is counted in BusyNanos.
func TestLoop_MessageBudgetBoundsACall(t *testing.T) {
	q := NewQueue(16, 1<<20)
	ctx := context.Background()
	for _, n := range []int{5000, 1500, 1500, 100, 600, 10, 10} {
		if err := q.Put(ctx, batchOf(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Put(ctx, EnvelopesItem(0, Envelopes{Dest: Here, Count: 3000})); err != nil {
		t.Fatal(err)
	}
	q.Close()
	p := &countingProcessor{}
	var busy atomic.Int64
	err := Loop(ctx, ctx, LoopConfig{Processor: p, Queue: q,
		MaxMessagesPerCall: 2048, BusyNanos: &busy, ExitWhenDrained: true})
	if err != nil {
		t.Fatal(err)
	}
	// 5000 alone (over the budget by itself); 1500+1500; 100+600+10+10
	// and then the 3000 envelopes still fit the gathering (720 < 2048).
	want := []int{5000, 3000, 3720}
	if !slices.Equal(p.calls, want) {
		t.Fatalf("messages per call %v, want %v", p.calls, want)
	}
	if got := time.Duration(busy.Load()); got < time.Duration(len(want))*time.Millisecond {
		t.Fatalf("BusyNanos counted %v for %d calls of at least 1ms each", got, len(want))
	}
}

// genProcessor's generator source reports each round on a channel.
type genProcessor struct{ rounds chan int }

func (p *genProcessor) Process([]Item, *Output) error { return nil }
func (p *genProcessor) Generate(src int, max int, out *Output) (bool, error) {
	select {
	case p.rounds <- max:
	default:
	}
	return false, nil
}
func (p *genProcessor) SetOwnership(Ownership) error { return nil }

// A generator held by Hold (paused sources, congested links) runs again
// as soon as the hold ends, with nothing queued to wake the loop.
func TestLoop_GeneratorRunsAgainWhenAHoldEnds(t *testing.T) {
	q := NewQueue(4, 1<<20)
	held := make(chan struct{})
	var holding atomic.Bool
	holding.Store(true)
	p := &genProcessor{rounds: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Loop(ctx, ctx, LoopConfig{Processor: p, Queue: q, Generators: []int{0},
			Hold: func() <-chan struct{} {
				if holding.Load() {
					return held
				}
				return nil
			}})
	}()
	select {
	case <-p.rounds:
		t.Fatal("the generator ran while held")
	case <-time.After(50 * time.Millisecond):
	}
	holding.Store(false)
	close(held)
	select {
	case <-p.rounds:
	case <-time.After(30 * time.Second):
		t.Fatal("the generator did not run after the hold ended")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// recordingProcessor records the size of every batch it processes, in
// order (a batch's size tags it in the tests).
type recordingProcessor struct{ seen []int }

func (p *recordingProcessor) Process(items []Item, out *Output) error {
	for _, it := range items {
		p.seen = append(p.seen, len(it.Batch.Buf))
	}
	return nil
}

func (p *recordingProcessor) Generate(int, int, *Output) (bool, error) { return true, nil }
func (p *recordingProcessor) SetOwnership(Ownership) error             { return nil }

func tagged(input, tag int) Item {
	return BatchItem(input, source.Batch{Buf: make([]byte, tag), Ends: []int32{int32(tag)}})
}

// Barriers over a set of inputs named when each opens: an input is held
// after its barrier until every input has delivered it; a cancel gives
// the barrier up (held input flows, its late arrivals are dropped); a
// newer barrier overtakes one under way; what is given up is never acted
// on.
func TestLoop_BarriersOpenAlignCancelAndOvertake(t *testing.T) {
	q := NewQueue(64, 1<<20)
	ctx := context.Background()
	p := &recordingProcessor{}
	var events []string
	mark := func(what string, b barrier.Barrier) {
		events = append(events, fmt.Sprintf("%s %d after %v", what, b.ID, p.seen))
	}
	ck := func(id barrier.ID) barrier.Barrier { return barrier.Barrier{ID: id, Kind: barrier.Checkpoint} }
	items := []Item{
		BarrierItem(1, ck(1)), tagged(1, 11), tagged(2, 21), BarrierItem(2, ck(1)), // aligned: 21 before, 11 after
		BarrierItem(2, ck(2)), tagged(2, 22), BarrierItem(ControlInput, barrier.Barrier{ID: 2, Kind: barrier.Cancel}),
		BarrierItem(1, ck(2)), tagged(1, 12), // late: dropped, 12 flows
		BarrierItem(1, ck(4)), tagged(1, 13), BarrierItem(2, ck(5)), tagged(2, 23), // 5 overtakes 4
		BarrierItem(1, ck(5)), tagged(1, 14),
	}
	for _, it := range items {
		if err := q.Put(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	err := Loop(ctx, ctx, LoopConfig{Processor: p, Queue: q, ExitWhenDrained: true,
		BarrierInputs:   func(barrier.Barrier) []int { return []int{1, 2} },
		OnBarrierOpen:   func(b barrier.Barrier) error { mark("open", b); return nil },
		OnBarrier:       func(b barrier.Barrier) error { mark("act", b); return nil },
		OnBarrierCancel: func(b barrier.Barrier) { mark("cancel", b) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"open 1 after []", "act 1 after [21]",
		"open 2 after [21 11]", "cancel 2 after [21 11]",
		"open 4 after [21 11 22 12]", "cancel 4 after [21 11 22 12]", "open 5 after [21 11 22 12]",
		"act 5 after [21 11 22 12 13]",
	}
	if !slices.Equal(events, want) {
		t.Errorf("events:\n%q\nwant\n%q", events, want)
	}
	if wantSeen := []int{21, 11, 22, 12, 13, 23, 14}; !slices.Equal(p.seen, wantSeen) {
		t.Errorf("processed %v, want %v", p.seen, wantSeen)
	}
}

// Input held by a barrier gives its bytes back to the queue: peers share
// one lane, and one peer's held input (it delivered its barrier first
// and sends on) must not keep another peer's barrier out of the lane.
func TestLoop_HeldInputDoesNotFillTheLane(t *testing.T) {
	q := NewQueue(64, 1000) // the lane holds 1000 bytes
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	p := &recordingProcessor{}
	acted := make(chan struct{})
	loopDone := make(chan error, 1)
	go func() {
		loopDone <- Loop(ctx, ctx, LoopConfig{Processor: p, Queue: q,
			BarrierInputs: func(barrier.Barrier) []int { return []int{1, 2} },
			OnBarrier:     func(barrier.Barrier) error { close(acted); return nil },
		})
	}()
	b := barrier.Barrier{ID: 1, Kind: barrier.Checkpoint}
	puts := make(chan error, 1)
	go func() { // the peers' links, in order (a Put blocks while the lane is full)
		items := []Item{BarrierItem(1, b)}
		for i := 0; i < 30; i++ { // 3000 bytes held, three times the lane
			items = append(items, tagged(1, 100))
		}
		for _, it := range append(items, tagged(2, 100), BarrierItem(2, b)) {
			if err := q.Put(ctx, it); err != nil {
				puts <- err
				return
			}
		}
		puts <- nil
	}()
	select {
	case <-acted:
	case <-time.After(30 * time.Second):
		t.Errorf("the barrier was not aligned: held input filled the lane; processed %v", p.seen)
	}
	stop()
	<-loopDone
	if err := <-puts; err != nil && err != context.Canceled {
		t.Error(err)
	}
}

// orderProcessor logs, in order, each envelope batch it runs (its Count
// is its tag), each raw batch (its size is its tag) and each generator
// round (-1).
type orderProcessor struct {
	mu  sync.Mutex
	log []int
}

func (p *orderProcessor) Process(items []Item, out *Output) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, it := range items {
		switch it.Kind {
		case KindEnvelopes:
			p.log = append(p.log, it.Envelopes.Count)
		case KindBatch:
			p.log = append(p.log, len(it.Batch.Buf))
		}
	}
	return nil
}

// Generate logs a round, once for a run of rounds with nothing between
// (the log stays short while the generator spins).
func (p *orderProcessor) Generate(int, int, *Output) (bool, error) {
	p.mu.Lock()
	if n := len(p.log); n == 0 || p.log[n-1] != -1 {
		p.log = append(p.log, -1)
	}
	p.mu.Unlock()
	return false, nil
}

func (p *orderProcessor) SetOwnership(Ownership) error { return nil }

func (p *orderProcessor) snapshot() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

// waitLog waits (up to 30 s) until done holds for the log, and returns
// the log then.
func (p *orderProcessor) waitLog(t *testing.T, what string, done func([]int) bool) []int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := p.snapshot()
		if done(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s; log %v", what, got)
		}
		time.Sleep(time.Millisecond)
	}
}

// Work the loop resumes (what an undone rescale parked, handed back by a
// call) runs whole before the next generator round, even when the
// message budget splits it over several calls: the generator's new
// messages must not overtake the older parked ones of the same keys.
func TestLoop_ResumedWorkRunsBeforeTheNextGeneratorRound(t *testing.T) {
	q := NewQueue(16, 1<<20)
	p := &orderProcessor{}
	var resumed []int
	for tag := 100; tag < 112; tag++ {
		resumed = append(resumed, tag)
	}
	call := CallItem(ControlInput, func() []Item {
		var items []Item
		for _, tag := range resumed {
			items = append(items, ResumeItem(Envelopes{Dest: Here, Count: tag}))
		}
		return items
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Loop(ctx, ctx, LoopConfig{Processor: p, Queue: q, Generators: []int{0},
			MaxMessagesPerCall: 150})
	}()
	if err := q.Put(ctx, call); err != nil {
		t.Fatal(err)
	}
	got := p.waitLog(t, "every resumed batch run and a generator round after", func(got []int) bool {
		i := slices.Index(got, resumed[len(resumed)-1])
		return i >= 0 && slices.Contains(got[i:], -1)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	first := slices.Index(got, resumed[0])
	if run := got[first : first+len(resumed)]; !slices.Equal(run, resumed) {
		t.Fatalf("a generator round ran in the middle of the resumed work: %v", run)
	}
}

// Items of peers put back into the loop's own list (an input held by a
// barrier, met while gathering) are not the loop's own work: generator
// rounds go on between the calls meanwhile.
func TestLoop_HeldPeerInputDoesNotStopTheGenerators(t *testing.T) {
	const pairs = 100
	q := NewQueue(4*pairs, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The barrier has come on input 1 (not on 0 or 2): input 1 is held;
	// the lane alternates input 2 (runs) and input 1 (held, put back).
	items := []Item{BarrierItem(1, barrier.Barrier{ID: 1, Kind: barrier.Checkpoint})}
	for i := 0; i < pairs; i++ {
		items = append(items, tagged(2, 200+i), tagged(1, 1000+i))
	}
	for _, it := range items {
		if err := q.Put(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	p := &orderProcessor{}
	done := make(chan error, 1)
	go func() {
		done <- Loop(ctx, ctx, LoopConfig{Processor: p, Queue: q, Generators: []int{0}, Inputs: 3,
			MaxMessagesPerCall: 1 << 20})
	}()
	last := 200 + pairs - 1
	got := p.waitLog(t, "input 2 run", func(got []int) bool { return slices.Contains(got, last) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rounds := 0
	for _, v := range got[slices.Index(got, 200):slices.Index(got, last)] {
		if v == -1 {
			rounds++
		}
	}
	if rounds < pairs/2 {
		t.Fatalf("%d generator rounds while %d calls ran input 2 (input 1 held): the generators were held back by peers' input", rounds, pairs)
	}
}
