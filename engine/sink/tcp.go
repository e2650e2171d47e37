package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"
)

// Defaults applied by NewTCP to zero TCPConfig fields.
const (
	DefaultRetryMin   = 100 * time.Millisecond
	DefaultRetryMax   = 2 * time.Second
	DefaultQueueBytes = 4 << 20
)

// dialTimeout bounds one connection attempt, so that an address that
// drops packets is retried rather than waited on for minutes.
const dialTimeout = 10 * time.Second

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("sink is closed")

// TCPConfig configures a TCP sink. Zero fields take the defaults above.
type TCPConfig struct {
	Name       string        // sink name for log lines and errors
	Addr       string        // host:port to connect to
	RetryMin   time.Duration // first pause after a failed connection attempt
	RetryMax   time.Duration // the pause doubles up to this
	QueueBytes int           // bytes queued and not yet written before Write blocks
}

// TCP is a TCP sink client: it connects to Addr, reconnects when the
// connection fails, and writes the chunks given to Write verbatim and in
// order. See the package documentation for its goroutines and ownership
// rules.
type TCP struct {
	cfg  TCPConfig
	log  *log.Logger
	dial func(ctx context.Context) (net.Conn, error) // replaced in tests

	mu       sync.Mutex
	queue    [][]byte        // chunks not yet taken by the writer goroutine
	queued   int             // bytes enqueued and not yet written (queue and in flight)
	enqueued int64           // bytes ever enqueued
	written  int64           // bytes ever written to a socket
	closed   bool            // Close was called: Write refuses
	ctx      context.Context // Start's context; nil before Start
	stopErr  error           // why the writer goroutine stopped; nil while it runs
	changed  chan struct{}   // closed and replaced when any field above changes

	wake      chan struct{} // capacity 1: something was queued
	connected chan struct{} // closed on the first connection
	stop      chan struct{} // closed by Close once flushed
	done      chan struct{} // closed when the writer goroutine exits
}

// NewTCP returns a sink that does nothing until Start. A nil logger
// discards log lines.
func NewTCP(cfg TCPConfig, logger *log.Logger) *TCP {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	dialer := &net.Dialer{Timeout: dialTimeout}
	return &TCP{
		cfg:       cfg,
		log:       logger,
		dial:      func(ctx context.Context) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", cfg.Addr) },
		changed:   make(chan struct{}),
		wake:      make(chan struct{}, 1),
		connected: make(chan struct{}),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// label names the sink in log lines and errors.
func (s *TCP) label() string {
	if s.cfg.Name == "" {
		return "TCPSink"
	}
	return s.cfg.Name + " sink"
}

// Start launches the goroutine that connects and writes. It returns at
// once. When ctx ends the goroutine closes the connection and exits;
// anything not yet written then stays unwritten. Call it once.
func (s *TCP) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx != nil {
		panic(fmt.Sprintf("sink: %s to %s started twice", s.label(), s.cfg.Addr))
	}
	s.ctx = ctx
	go s.run(ctx)
}

// WaitConnected returns nil once the first connection is established, or
// an error if ctx ends or the sink stops first. Safe for concurrent use.
func (s *TCP) WaitConnected(ctx context.Context) error {
	select {
	case <-s.connected:
		return nil
	case <-s.done:
		return fmt.Errorf("%s: stopped before connecting to %s", s.label(), s.cfg.Addr)
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for a connection to %s: %w", s.label(), s.cfg.Addr, ctx.Err())
	}
}

// Write queues p to be written and takes ownership of it: the caller must
// not modify p afterwards. It blocks while QueueBytes are already queued
// (a single chunk larger than QueueBytes is accepted when the queue is
// empty). It fails after Close, when ctx ends, or when the writer
// goroutine has stopped. Safe for concurrent use; chunks from one
// goroutine are written in the order of the calls.
func (s *TCP) Write(ctx context.Context, p []byte) error {
	s.mu.Lock()
	for {
		switch {
		case s.closed:
			s.mu.Unlock()
			return fmt.Errorf("%s: write: %w", s.label(), ErrClosed)
		case s.stopErr != nil:
			err := s.stopErr
			s.mu.Unlock()
			return fmt.Errorf("%s: write: %w", s.label(), err)
		}
		if s.queued == 0 || s.queued+len(p) <= s.cfg.QueueBytes {
			break
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s: write: %w", s.label(), ctx.Err())
		}
		s.mu.Lock()
	}
	if len(p) > 0 {
		s.queue = append(s.queue, p)
		s.queued += len(p)
		s.enqueued += int64(len(p))
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Flush waits until every byte enqueued before the call has been written
// to a socket (accepted by the kernel; not necessarily received). It fails
// if ctx ends or the writer goroutine stops first. Safe for concurrent
// use.
func (s *TCP) Flush(ctx context.Context) error {
	s.mu.Lock()
	target := s.enqueued
	for s.written < target {
		if s.stopErr != nil {
			err := fmt.Errorf("%s: flush: %d bytes not written: %w", s.label(), target-s.written, s.stopErr)
			s.mu.Unlock()
			return err
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s: flush: %w", s.label(), ctx.Err())
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// Close refuses further writes, flushes with Start's context (so it waits
// for a connection if there is none), closes the connection and waits for
// the writer goroutine to exit. It returns the flush error, if any. Calls
// after the first return nil.
func (s *TCP) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.broadcastLocked()
	ctx, unwritten := s.ctx, s.enqueued-s.written
	s.mu.Unlock()

	if ctx == nil {
		if unwritten > 0 {
			return fmt.Errorf("%s: closed before Start with %d bytes unwritten", s.label(), unwritten)
		}
		return nil
	}
	err := s.Flush(ctx)
	close(s.stop)
	<-s.done
	return err
}

// broadcastLocked wakes everyone waiting for a change. s.mu must be held.
func (s *TCP) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// errStopped is the writer goroutine's stop reason after Close.
var errStopped = errors.New("sink stopped")

// run is the writer goroutine: connect, write until the connection fails,
// reconnect after a pause, until ctx ends or Close stops it.
func (s *TCP) run(ctx context.Context) {
	var inflight net.Buffers // chunks taken from the queue, not yet fully written
	reason := errStopped
	defer func() {
		s.mu.Lock()
		s.stopErr = reason
		s.broadcastLocked()
		s.mu.Unlock()
		close(s.done)
	}()

	s.log.Printf("TCPSink initializing connection to %s", s.cfg.Addr)
	pause := s.cfg.RetryMin
	for {
		conn, err := s.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				reason = ctx.Err()
				return
			}
			s.log.Printf("%s: connection to %s failed: %v; retrying in %v", s.label(), s.cfg.Addr, err, pause)
			timer := time.NewTimer(pause)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				reason = ctx.Err()
				return
			case <-s.stop:
				timer.Stop()
				return
			}
			pause = min(2*pause, s.cfg.RetryMax)
			continue
		}
		pause = s.cfg.RetryMin
		s.log.Printf("%s: connected to %s", s.label(), s.cfg.Addr)
		select {
		case <-s.connected:
		default:
			close(s.connected)
		}

		err = s.serve(ctx, conn, &inflight)
		switch {
		case ctx.Err() != nil:
			reason = ctx.Err()
			return
		case err == nil: // stopped by Close
			return
		}
		s.log.Printf("%s: connection to %s lost: %v; reconnecting", s.label(), s.cfg.Addr, err)
	}
}

// serve writes queued chunks to conn until the connection fails (returning
// why), ctx ends or Close stops it (returning nil). On failure *inflight
// holds the chunks not yet completely written, to be written first on the
// next connection. A chunk the failure cut is kept whole: each chunk is
// whole frames (one Write), so a new connection always starts at a frame
// boundary; the cut chunk's frames that did reach the old peer may arrive
// twice (at least once, never a torn frame).
func (s *TCP) serve(ctx context.Context, conn net.Conn, inflight *net.Buffers) error {
	// The peer never sends anything we need, but reading tells us at
	// once when it closes or resets the connection, instead of at the
	// next write (whose bytes the kernel would take and then lose).
	broken := make(chan error, 1)
	go func() {
		var buf [512]byte
		for {
			if _, err := conn.Read(buf[:]); err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("closed by peer")
				}
				broken <- err
				conn.Close() // also ends a write blocked on a dead peer
				return
			}
		}
	}()
	stopWatch := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		stopWatch()
		conn.Close()
		<-broken // the reader has exited
	}()

	var batch [][]byte // backing array of *inflight, recycled as the next queue
	var whole [][]byte // the chunks of the current write, as they were before it
	for {
		if len(*inflight) == 0 {
			s.mu.Lock()
			if len(s.queue) > 0 {
				*inflight = s.queue
				s.queue, batch = batch[:0], s.queue
			}
			s.mu.Unlock()
		}
		if len(*inflight) == 0 {
			select {
			case <-s.wake:
				continue
			case err := <-broken:
				broken <- err // for the deferred wait
				return err
			case <-s.stop:
				return nil
			case <-ctx.Done():
				return nil
			}
		}

		// Remember the chunks whole: a chunk cut by a failure is sent again
		// from its start on the next connection.
		whole = append(whole[:0], *inflight...)
		before := buffersLen(*inflight)
		n, err := inflight.WriteTo(conn)
		if after := buffersLen(*inflight); before-after != int(n) {
			panic(fmt.Sprintf("sink: net.Buffers.WriteTo reported %d bytes but consumed %d", n, before-after))
		}
		if err != nil && len(*inflight) > 0 {
			if cut := len(whole) - len(*inflight); len((*inflight)[0]) != len(whole[cut]) {
				partial := len(whole[cut]) - len((*inflight)[0])
				(*inflight)[0] = whole[cut]
				n -= int64(partial) // not delivered: it goes again, whole
			}
		}
		s.mu.Lock()
		s.written += n
		s.queued -= int(n)
		s.broadcastLocked()
		s.mu.Unlock()
		if err != nil {
			select {
			case rerr := <-broken: // the reader saw the reason first
				broken <- rerr
				return fmt.Errorf("write: %w", rerr)
			default:
			}
			return fmt.Errorf("write: %w", err)
		}
	}
}

func buffersLen(v net.Buffers) int {
	n := 0
	for _, b := range v {
		n += len(b)
	}
	return n
}
