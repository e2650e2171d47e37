package work

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

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
