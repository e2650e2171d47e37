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
	DefaultMaxWrite   = 64 << 10
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
	MaxWrite   int           // bytes handed to the kernel per write call
	// OnWrite, if set, is told the bytes of every write to the peer, and
	// OnReconnect every time a lost connection is made again (metrics);
	// both are called from the writer goroutine and must not block.
	OnWrite     func(n int)
	OnReconnect func()
}

// TCP is a TCP sink client: it connects to Addr, reconnects when the
// connection fails, and writes the chunks given to Write verbatim and in
// order. See the package documentation for its goroutines and ownership
// rules.
type TCP struct {
	cfg  TCPConfig
	log  *log.Logger
	dial func(ctx context.Context) (net.Conn, error) // replaced in tests
	// unacked reports the bytes of conn's stream the peer has not
	// acknowledged yet, or false if that cannot be known now
	// (sendQueueLen; replaced in tests).
	unacked func(conn net.Conn) (int, bool)

	mu       sync.Mutex
	queue    [][]byte        // chunks not yet taken by the writer goroutine
	queued   int             // bytes enqueued and not yet written (queue and in flight)
	enqueued int64           // bytes ever enqueued
	written  int64           // stream offset up to which bytes were accepted by a kernel
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
	if cfg.MaxWrite <= 0 {
		cfg.MaxWrite = DefaultMaxWrite
	}
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	dialer := &net.Dialer{Timeout: dialTimeout}
	return &TCP{
		cfg:       cfg,
		log:       logger,
		dial:      func(ctx context.Context) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", cfg.Addr) },
		unacked:   sendQueueLen,
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
// to a socket (accepted by the kernel; not necessarily received, and sent
// again on the next connection if the peer had not acknowledged it when
// the connection failed). It fails
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
	var out outbox // what is to be (re-)sent, kept across connections
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

		out.rewind()
		err = s.serve(ctx, conn, &out)
		switch {
		case ctx.Err() != nil:
			reason = ctx.Err()
			return
		case err == nil: // stopped by Close
			return
		}
		if s.cfg.OnReconnect != nil {
			s.cfg.OnReconnect()
		}
		if resend := out.sentTo - out.start; resend > 0 {
			s.log.Printf("%s: connection to %s lost: %v; reconnecting (%d bytes the peer did not acknowledge will be sent again)", s.label(), s.cfg.Addr, err, resend)
		} else {
			s.log.Printf("%s: connection to %s lost: %v; reconnecting", s.label(), s.cfg.Addr, err)
		}
	}
}

// outbox is the writer goroutine's view of the output stream: the chunks
// from the first one the peer may not have received (not known to be
// acknowledged) to the last one taken from the queue, in stream order.
// Offsets are positions in the stream of every byte ever enqueued (the
// same as TCP.enqueued and TCP.written). Only the writer goroutine uses it.
type outbox struct {
	chunks  [][]byte
	start   int64 // stream offset of chunks[0]: always a chunk boundary
	end     int64 // stream offset after the last chunk
	sentTo  int64 // the current connection's kernel has accepted the stream up to here
	ackedTo int64 // the current connection's peer is known to have acknowledged up to here
	idx     int   // chunks[idx][off] is the byte at sentTo
	off     int
}

// add appends chunks taken from the queue.
func (o *outbox) add(q [][]byte) {
	for _, c := range q {
		o.chunks = append(o.chunks, c)
		o.end += int64(len(c))
	}
}

// rewind starts a new connection from o.start, the start of the first
// chunk not known to be acknowledged: a chunk boundary, so a frame
// boundary when every chunk is whole frames.
func (o *outbox) rewind() {
	o.sentTo, o.ackedTo, o.idx, o.off = o.start, o.start, 0, 0
}

// next returns the next bytes to write, at most max.
func (o *outbox) next(max int) net.Buffers {
	var bufs net.Buffers
	for i, off := o.idx, o.off; i < len(o.chunks) && max > 0; i, off = i+1, 0 {
		b := o.chunks[i][off:]
		if len(b) > max {
			b = b[:max]
		}
		bufs = append(bufs, b)
		max -= len(b)
	}
	return bufs
}

// advance records that the kernel accepted n more bytes.
func (o *outbox) advance(n int) {
	o.sentTo += int64(n)
	for n > 0 {
		k := min(n, len(o.chunks[o.idx])-o.off)
		n -= k
		o.off += k
		if o.off == len(o.chunks[o.idx]) {
			o.idx, o.off = o.idx+1, 0
		}
	}
}

// ack records that the peer acknowledged the stream up to to, and drops
// the chunks it acknowledged completely.
func (o *outbox) ack(to int64) {
	o.ackedTo = max(o.ackedTo, min(to, o.sentTo))
	drop := 0
	for drop < o.idx && o.start+int64(len(o.chunks[drop])) <= o.ackedTo {
		o.start += int64(len(o.chunks[drop]))
		o.chunks[drop] = nil
		drop++
	}
	o.chunks = o.chunks[drop:]
	o.idx -= drop
	if len(o.chunks) == 0 {
		o.chunks = nil // let a grown backing array go
	}
}

// learnAcks updates o from the kernel's count of the bytes of conn's
// stream that the peer has not acknowledged; if that cannot be known now
// (the connection was reset), o keeps what it knew.
func (s *TCP) learnAcks(conn net.Conn, o *outbox) {
	if n, ok := s.unacked(conn); ok {
		o.ack(o.sentTo - int64(n))
	}
}

// serve writes queued chunks to conn until the connection fails (returning
// why), ctx ends or Close stops it (returning nil). It hands the kernel at
// most MaxWrite bytes per write call and, after each, learns how far the
// peer has acknowledged; on a failure out still holds everything from the
// first chunk the peer did not acknowledge completely, for the next
// connection to send again (see the package documentation).
func (s *TCP) serve(ctx context.Context, conn net.Conn, out *outbox) error {
	// The peer never sends anything we need, but reading tells us at
	// once when it closes or resets the connection, instead of at the
	// next write (whose bytes the kernel would take and then lose). The
	// reader does not close conn, so that the writer can still ask the
	// kernel what the peer acknowledged; it ends a blocked write with a
	// deadline instead.
	broken := make(chan error, 1)
	go func() {
		var buf [512]byte
		for {
			if _, err := conn.Read(buf[:]); err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("closed by peer")
				}
				broken <- err
				conn.SetWriteDeadline(time.Now()) // ends a write blocked on a dead peer
				return
			}
		}
	}()
	stopWatch := context.AfterFunc(ctx, func() { conn.Close() })
	var failure error
	defer func() {
		stopWatch()
		if failure != nil {
			s.learnAcks(conn, out)
		}
		conn.Close()
		<-broken // the reader has exited
	}()

	for {
		if out.sentTo == out.end {
			s.mu.Lock()
			if len(s.queue) > 0 {
				out.add(s.queue)
				clear(s.queue)
				s.queue = s.queue[:0]
			}
			s.mu.Unlock()
		}
		if out.sentTo == out.end {
			select {
			case <-s.wake:
				continue
			case err := <-broken:
				broken <- err // for the deferred wait
				failure = err
				return err
			case <-s.stop:
				return nil
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case err := <-broken: // found out between writes
			broken <- err
			failure = err
			return err
		default:
		}

		bufs := out.next(s.cfg.MaxWrite)
		before := buffersLen(bufs)
		n, err := bufs.WriteTo(conn)
		if after := buffersLen(bufs); before-after != int(n) {
			panic(fmt.Sprintf("sink: net.Buffers.WriteTo reported %d bytes but consumed %d", n, before-after))
		}
		out.advance(int(n))
		if s.cfg.OnWrite != nil && n > 0 {
			s.cfg.OnWrite(int(n))
		}
		if err == nil {
			s.learnAcks(conn, out)
		}
		s.mu.Lock()
		if out.sentTo > s.written {
			s.queued -= int(out.sentTo - s.written)
			s.written = out.sentTo
			s.broadcastLocked()
		}
		s.mu.Unlock()
		if err != nil {
			select {
			case rerr := <-broken: // the reader saw the reason first
				broken <- rerr
				failure = rerr
				return fmt.Errorf("write: %w", rerr)
			default:
			}
			failure = err
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
