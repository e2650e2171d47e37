package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/engine/external"
	"github.com/wallaroo-go/machida/engine/sink"
	"github.com/wallaroo-go/machida/engine/source"
)

// Processor runs the application's stages. Process is called from one
// goroutine at a time. It runs every batch in order and appends the bytes
// each sink must receive to out[i] (out has one entry per sink; the slices
// it stores are owned by the caller afterwards). An error is fatal: it
// means user code failed and the worker must stop. Even then out holds
// what was produced before the failure, which the worker still delivers.
type Processor interface {
	Process(batches []source.Batch, out [][]byte) error
	// Generate makes up to max messages from generator source src, runs
	// them, and appends the output to out like Process. stopped reports
	// that the generator has no more values.
	Generate(src int, max int, out [][]byte) (stopped bool, err error)
}

// SourceConfig describes one source: a TCP listener, or (Generator) a
// generator whose messages the processor makes itself.
type SourceConfig struct {
	Name       string // pipeline name
	Generator  bool   // a GenSourceConfig source; the fields below are unused
	Addr       string
	HeaderLen  int
	Length     source.LengthFunc
	MaxPayload int
}

// SinkConfig describes one TCP sink.
type SinkConfig struct {
	Name string
	Addr string
}

// Config is everything Run needs.
type Config struct {
	Sources   []SourceConfig
	Sinks     []SinkConfig
	Processor Processor
	// Console receives the lines operators and tools wait for (stdout).
	Console io.Writer
	// Log receives diagnostics (stderr).
	Log *log.Logger
	// QueueBatches bounds the batches waiting for the processor (default 64).
	QueueBatches int
	// QueueBytes bounds the bytes of frames waiting for or in the
	// processor (default 8 MiB).
	QueueBytes int
	// MaxBatchesPerCall bounds how many queued batches one Process call
	// takes (default 64).
	MaxBatchesPerCall int
	// ShutdownTimeout bounds how long a clean stop may take to process
	// what the sources had queued and flush the sinks (default 5s).
	ShutdownTimeout time.Duration
	// Name is the worker's name in the cluster ("initializer").
	Name string
	// External is the address of the external (operator) channel; empty
	// for none.
	External string
	// Stages and Partitions describe the application for the external
	// channel's queries: stage ids, and the partitions this worker owns.
	Stages     Stages
	Partitions []string
	// Queries answers the state-entity queries; may be nil.
	Queries Queries
	// OnReady, if set, is called once the worker is serving.
	OnReady func()
}

func (c SourceConfig) maxConns() int { return source.DefaultMaxConns }

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "initializer"
	}
	if c.QueueBatches <= 0 {
		c.QueueBatches = 64
	}
	if c.MaxBatchesPerCall <= 0 {
		c.MaxBatchesPerCall = 64
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 8 << 20
	}
	if c.Console == nil {
		c.Console = io.Discard
	}
	if c.Log == nil {
		c.Log = log.New(io.Discard, "", 0)
	}
}

// ErrListen wraps a failure to bind a source or external-channel listener
// (a user configuration error: the address is taken or invalid).
var ErrListen = errors.New("source listener")

// queue is the bounded hand-off from the sources to the processor loop. It
// bounds the bytes waiting or being processed (a batch larger than the
// bound is let in when nothing else is queued) and the number of batches.
type queue struct {
	ch    chan source.Batch
	max   int
	mu    sync.Mutex
	bytes int
	space chan struct{} // closed and replaced whenever bytes are released
}

func newQueue(batches, maxBytes int) *queue {
	return &queue{ch: make(chan source.Batch, batches), max: maxBytes, space: make(chan struct{})}
}

func batchBytes(b source.Batch) int { return len(b.Buf) + 4*len(b.Ends) }

// Deliver implements source.Consumer: it blocks while the queue is full.
func (q *queue) Deliver(ctx context.Context, b source.Batch) error {
	n := batchBytes(b)
	for {
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
	case q.ch <- b:
		return nil
	case <-ctx.Done():
		q.release(n)
		return ctx.Err()
	}
}

// release returns n bytes to the queue once a batch has been processed.
func (q *queue) release(n int) {
	q.mu.Lock()
	q.bytes -= n
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
}

// Run runs the worker until ctx is cancelled (clean stop, nil error) or the
// processor fails (its error is returned, after what was already produced
// has been flushed to the sinks).
//
// A clean stop first stops the sources, then processes what they had
// queued and flushes the sinks, all within cfg.ShutdownTimeout; what is
// left after that is dropped with a log line, so a stuck sink or slow user
// code cannot keep the worker from exiting.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	ctx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	// drainCtx bounds the work done after a stop was asked for: it ends
	// ShutdownTimeout after ctx does.
	drainCtx, endDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer endDrain()
	go func() {
		select {
		case <-ctx.Done():
		case <-drainCtx.Done():
			return
		}
		t := time.NewTimer(cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cfg.Log.Printf("shutdown: not finished after %v; dropping what is left", cfg.ShutdownTimeout)
			endDrain()
		case <-drainCtx.Done():
		}
	}()

	// The external channel answers from the start (cluster-status says
	// "not initialized" until the worker is ready) and can stop the worker.
	st := &status{cfg: &cfg, shutdown: func(reason string) {
		cfg.Log.Printf("shutting down: %s", reason)
		shutdown()
	}}
	if cfg.External != "" {
		ext := external.NewServer(external.Config{Addr: cfg.External}, st, cfg.Log)
		if err := ext.Listen(); err != nil {
			return fmt.Errorf("%w: %w", ErrListen, err)
		}
		extCtx, stopExt := context.WithCancel(context.WithoutCancel(ctx))
		extDone := make(chan struct{})
		go func() {
			defer close(extDone)
			if err := ext.Serve(extCtx); err != nil {
				cfg.Log.Printf("external channel: %v", err)
			}
		}()
		defer func() {
			stopExt()
			<-extDone
		}()
	}

	fmt.Fprintln(cfg.Console, "|~~ INIT PHASE I: Initializing sinks ~~|")
	sinks := make([]*sink.TCP, len(cfg.Sinks))
	for i, sc := range cfg.Sinks {
		sinks[i] = sink.NewTCP(sink.TCPConfig{Name: sc.Name, Addr: sc.Addr}, cfg.Log)
		sinks[i].Start(drainCtx)
	}
	closeSinks := func() {
		endDrain() // Close must not wait for a peer that is gone
		for _, s := range sinks {
			if err := s.Close(); err != nil && !errors.Is(err, context.Canceled) {
				cfg.Log.Printf("sink: %v", err)
			}
		}
	}
	for _, s := range sinks {
		if err := s.WaitConnected(ctx); err != nil {
			closeSinks()
			return nil // stopped before the sinks came up
		}
	}

	fmt.Fprintln(cfg.Console, "|~~ INIT PHASE II: Initializing sources ~~|")
	q := newQueue(cfg.QueueBatches, cfg.QueueBytes)
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	var sources []*source.TCP
	var gens []int
	for i, sc := range cfg.Sources {
		if sc.Generator {
			gens = append(gens, i)
			continue
		}
		s, err := source.NewTCP(source.TCPConfig{
			Name: sc.Name, Index: i, Addr: sc.Addr, HeaderLen: sc.HeaderLen,
			Length: sc.Length, MaxPayload: sc.MaxPayload,
		}, q, cfg.Log)
		if err == nil {
			if err = s.Listen(); err != nil {
				err = fmt.Errorf("%w: %w", ErrListen, err)
			}
		}
		if err != nil { // a NewTCP error (source.ErrConfig) is not a listen error
			for _, s := range sources {
				s.Close()
			}
			closeSinks()
			return err
		}
		sources = append(sources, s)
	}

	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Add(1)
		go func(s *source.TCP) {
			defer wg.Done()
			if err := s.Serve(srcCtx, drainCtx); err != nil && !errors.Is(err, context.Canceled) {
				cfg.Log.Printf("source: %v", err)
			}
		}(s)
	}
	st.initialized.Store(true)
	fmt.Fprintln(cfg.Console, "|~~ INIT PHASE III: Application is ready to work! ~~|")
	fmt.Fprintln(cfg.Console, "Application has successfully initialized")
	if cfg.OnReady != nil {
		cfg.OnReady()
	}

	// When the sources have stopped, close the queue so the loop drains it.
	go func() {
		wg.Wait()
		close(q.ch)
	}()
	err := loop(srcCtx, drainCtx, cfg, q, sinks, gens)
	shutdown() // after an error too: starts the shutdown deadline
	// Whatever the loop left (after an error, or past the shutdown
	// deadline) is dropped, so that the sources can finish.
	go func() {
		for b := range q.ch {
			q.release(batchBytes(b))
		}
	}()
	wg.Wait()
	for i, s := range sinks {
		if ferr := s.Flush(drainCtx); ferr != nil {
			cfg.Log.Printf("sink %s: output not delivered at shutdown: %v", cfg.Sinks[i].Name, ferr)
		}
	}
	closeSinks()
	return err
}

// genBatch is how many messages one Generate call asks for.
const genBatch = 256

// loop is the processor loop: it returns nil when q is closed and drained
// or drainCtx ends, or the processor's error. While generator sources are
// active and no batch is waiting, it runs them; they stop when srcCtx ends.
func loop(srcCtx, drainCtx context.Context, cfg Config, q *queue, sinks []*sink.TCP, gens []int) error {
	batches := make([]source.Batch, 0, cfg.MaxBatchesPerCall)
	deliver := func(out [][]byte, perr error) error {
		// On a processor error, out still holds what was produced before
		// the failure: deliver it before stopping.
		for i, o := range out {
			if len(o) == 0 {
				continue
			}
			if err := sinks[i].Write(drainCtx, o); err != nil {
				if perr == nil && drainCtx.Err() != nil {
					cfg.Log.Printf("sink %s: output not delivered at shutdown: %v", cfg.Sinks[i].Name, err)
					return nil
				}
				return errors.Join(perr, fmt.Errorf("sink %s: %w", cfg.Sinks[i].Name, err))
			}
		}
		return perr
	}
	qOpen := true
	for {
		if drainCtx.Err() != nil {
			return nil
		}
		var b source.Batch
		var ok bool
		if len(gens) > 0 && srcCtx.Err() == nil {
			got := false
			if qOpen {
				select {
				case b, ok = <-q.ch:
					if !ok {
						qOpen = false
						continue
					}
					got = true
				default:
				}
			}
			if !got {
				next := gens[:0]
				for _, g := range gens {
					out := make([][]byte, len(sinks))
					stopped, perr := cfg.Processor.Generate(g, genBatch, out)
					if err := deliver(out, perr); err != nil {
						return err
					}
					if stopped {
						fmt.Fprintln(cfg.Console, "GenSource produced a None. Stopping GenSource.")
					} else {
						next = append(next, g)
					}
				}
				gens = next
				continue
			}
		} else {
			if qOpen {
				select {
				case b, ok = <-q.ch:
				case <-drainCtx.Done():
					return nil
				}
			}
			if !ok {
				// Every source has ended (stopped, or only generators fed
				// this worker and they are done): stay up until told to
				// stop, as a 0.6 worker does.
				<-srcCtx.Done()
				return nil
			}
		}
		batches = append(batches[:0], b)
	drain:
		for len(batches) < cfg.MaxBatchesPerCall {
			select {
			case b, ok := <-q.ch:
				if !ok {
					break drain
				}
				batches = append(batches, b)
			default:
				break drain
			}
		}
		out := make([][]byte, len(sinks))
		perr := cfg.Processor.Process(batches, out)
		for _, b := range batches {
			q.release(batchBytes(b))
		}
		if err := deliver(out, perr); err != nil {
			return err
		}
	}
}
