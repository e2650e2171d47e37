package enginetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/engine/barrier"
	"github.com/wallaroo-go/machida/engine/work"
)

// ListSink is a work.Sink that keeps what it is given. FailAt, if > 0,
// makes the FailAt-th Write fail (a sink whose peer went away).
type ListSink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	FailAt int
}

// Write implements work.Sink.
func (s *ListSink) Write(ctx context.Context, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.FailAt > 0 && s.writes == s.FailAt {
		return errors.New("enginetest: sink failed on purpose")
	}
	s.buf.Write(b)
	return nil
}

// Lines returns what the sink received, split at newlines.
func (s *ListSink) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	str := strings.TrimSuffix(s.buf.String(), "\n")
	if str == "" {
		return nil
	}
	return strings.Split(str, "\n")
}

// Run is one run of the engine's processor loop with Go fakes.
type Run struct {
	Processor *Processor
	// Inputs are the upstreams; each is a list of items put on the queue
	// in order by its own goroutine (so inputs interleave as real
	// sources and peer links do). Input i's items get Input = i.
	Inputs [][]work.Item
	// Generators lists generator sources (path indices).
	Generators []int
	// Route, if set, takes envelopes bound elsewhere (else they loop back).
	Route func(ctx context.Context, e work.Envelopes) error
	// OnBarrier is called when a barrier has arrived on every input.
	OnBarrier func(b barrier.Barrier) error
	// SinkFailAt sets FailAt on every sink.
	SinkFailAt int
	// QueueItems bounds the queue (default 4, small so that producers
	// block and interleave).
	QueueItems int
	// MaxItemsPerCall is passed to the loop (default 2).
	MaxItemsPerCall int
	// Timeout bounds the whole run (default 1 minute): a deadlock fails
	// the test instead of hanging it.
	Timeout time.Duration
}

// Result is what a Run produced.
type Result struct {
	Sinks   []*ListSink
	Err     error
	Console string
}

// Go runs the loop until every input has been put on the queue, every
// generator has stopped, and the loop has drained the queue.
func (r Run) Go() Result {
	p := r.Processor
	if r.QueueItems <= 0 {
		r.QueueItems = 4
	}
	if r.MaxItemsPerCall <= 0 {
		r.MaxItemsPerCall = 2
	}
	if r.Timeout <= 0 {
		r.Timeout = time.Minute
	}
	inputs := len(r.Inputs)
	if inputs == 0 {
		inputs = 1
	}
	sinks := make([]*ListSink, p.Sinks)
	ws := make([]work.Sink, p.Sinks)
	for i := range sinks {
		sinks[i] = &ListSink{FailAt: r.SinkFailAt}
		ws[i] = sinks[i]
	}
	q := work.NewQueue(r.QueueItems, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()

	console := &lockedBuffer{}
	gensDone := make(chan struct{})
	console.watch = func(s string) {
		if strings.Count(s, "GenSource produced a None") >= len(r.Generators) {
			select {
			case <-gensDone:
			default:
				close(gensDone)
			}
		}
	}
	if len(r.Generators) == 0 {
		close(gensDone)
	}
	var wg sync.WaitGroup
	for in, items := range r.Inputs {
		wg.Add(1)
		go func(in int, items []work.Item) {
			defer wg.Done()
			for _, it := range items {
				it.Input = in
				if err := q.Put(ctx, it); err != nil {
					return
				}
			}
		}(in, items)
	}
	go func() {
		wg.Wait()
		select {
		case <-gensDone:
		case <-ctx.Done():
		}
		q.Close()
	}()
	loopDone := make(chan error, 1)
	go func() {
		loopDone <- work.Loop(srcCtx, ctx, work.LoopConfig{
			Processor: p, Queue: q, Sinks: ws, Generators: r.Generators,
			MaxItemsPerCall: r.MaxItemsPerCall, Inputs: inputs, Route: r.Route,
			OnBarrier: r.OnBarrier, Console: console, ExitWhenDrained: true,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}()
	err := <-loopDone
	if ctx.Err() == context.DeadlineExceeded {
		err = errors.Join(err, fmt.Errorf("enginetest: run not finished after %v (deadlock?)", r.Timeout))
	}
	q.Discard()
	return Result{Sinks: sinks, Err: err, Console: console.String()}
}

type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	watch func(string)
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.b.Write(p)
	if l.watch != nil {
		l.watch(l.b.String())
	}
	return n, err
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
