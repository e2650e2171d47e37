package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/engine/work"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

// Link timing and bounds (spec 3.3: 0.6 retried every 500 ms and muted
// upstream at 16 384 unacknowledged messages).
const (
	redialEvery    = 500 * time.Millisecond
	handshakeLimit = 10 * time.Second
	// MaxPendingBatches and MaxPendingBytes bound a link's replay queue:
	// when it is full the link is congested, and the processor loop takes
	// no new source input until acknowledgements free it (backpressure to
	// the sources; see Send).
	MaxPendingBatches = 1024
	MaxPendingBytes   = 32 << 20
)

// outbound is this worker's data link to one peer: it owns the replay
// queue and one goroutine that dials, handshakes, (re)sends and reads
// acks. Send is called by the processor loop's goroutine.
type outbound struct {
	peer  string // the peer's name
	hello Hello
	log   *slog.Logger
	guard *linkauth.Guard                               // set before run; nil: unauthenticated
	onUp  func(peer string, reconnect bool, resent int) // set before run; may be nil
	full  chan<- struct{}                               // set before run; may be nil: poked (without blocking) when Send fills the replay queue
	// stopping (set before run; may be nil) reports that the cluster is
	// stopping: a peer gone then is expected, said at info, not warned.
	stopping func() bool
	// cancel ends run (the peer left the cluster); nil for links made
	// at formation, which live as long as the member.
	cancel context.CancelFunc
	ups    int // connections made (run's goroutine)

	mu      sync.Mutex
	addr    string // the peer's data listener (moveTo changes it)
	q       *outQueue
	sent    uint64        // highest seq written on the current connection
	wake    chan struct{} // closed and replaced when a batch is pushed, acked, or the link changes
	up      bool          // connected and handshaken
	conn    net.Conn      // the current session's connection, once handshaken (nil between sessions)
	batches uint64        // batches pushed (for the shutdown's quiescence count)
	// redial cuts run's wait between two connection attempts short (the
	// peer announced it is back; see Member.peerBack).
	redial chan struct{}
}

func newOutbound(peer, addr string, hello Hello, log *slog.Logger) *outbound {
	return &outbound{peer: peer, addr: addr, hello: hello, log: log,
		q: newOutQueue(MaxPendingBatches, MaxPendingBytes), wake: make(chan struct{}), redial: make(chan struct{}, 1)}
}

// dialNow makes a link that waits to redial its peer dial at once.
func (o *outbound) dialNow() {
	select {
	case o.redial <- struct{}{}:
	default:
	}
}

// address is the peer's data listener as last told.
func (o *outbound) address() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.addr
}

// moveTo records that the peer, restarted, listens at addr now, and
// redials it there at once (what was not acknowledged goes again).
func (o *outbound) moveTo(addr string) {
	o.mu.Lock()
	o.addr = addr
	o.mu.Unlock()
	o.peerRestarted()
}

// peerRestarted ends the current session, if any (its connection is to
// the peer's earlier run, whose end this side may not have seen: a host
// that lost power sends no reset), and redials at once.
func (o *outbound) peerRestarted() {
	o.mu.Lock()
	c := o.conn
	o.mu.Unlock()
	if c != nil {
		c.Close()
	}
	o.dialNow()
}

// signal wakes whoever waits on o.wake; o.mu held.
func (o *outbound) signal() {
	close(o.wake)
	o.wake = make(chan struct{})
}

// Send queues a batch of envelopes for the peer; it never blocks. The
// replay queue may grow past its bound: Congested then tells the
// processor loop to stop taking new source input (backpressure to the
// sources) until acknowledgements bring it back under. Blocking here
// instead could deadlock two workers that send to each other, each
// waiting for the other to take. ctx is unused (kept for Route's shape).
func (o *outbound) Send(_ context.Context, e work.Envelopes) error {
	o.mu.Lock()
	o.q.Push(uint32(e.Count), e.Data)
	o.batches++
	o.signal()
	full := o.q.Full()
	o.mu.Unlock()
	if full && o.full != nil {
		select {
		case o.full <- struct{}{}:
		default:
		}
	}
	return nil
}

// congested returns, while the replay queue is at or over its bound, a
// channel that closes when that may have changed; nil otherwise.
func (o *outbound) congested() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.q.Full() {
		return o.wake
	}
	return nil
}

// stats returns the batches pushed and still unacknowledged.
func (o *outbound) stats() (pushed uint64, pending int, up bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.batches, o.q.Pending(), o.up
}

// run keeps the link up until ctx ends: dial every redialEvery until the
// peer answers, handshake, replay what it lacks, then send as batches
// come. A connection that fails is dropped and dialled again; nothing
// queued is lost (it waits in the replay queue).
func (o *outbound) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		ups := o.ups
		err := o.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if o.ups > ups {
			failures = 0 // it was up: this drop is news
		}
		var refused *refusedError
		if errors.As(err, &refused) {
			// During a grow a new worker may dial one that does not know
			// it yet: a warning while that can last, an error after.
			if failures < 10 {
				o.log.Warn("data link refused by peer; retrying", "peer", o.peer, "reason", refused.reason)
			} else if failures%20 == 10 {
				o.log.Error("data link refused by peer", "peer", o.peer, "reason", refused.reason, "refusals", failures+1)
			}
		} else if failures%20 == 0 {
			// Every 10 s while the peer stays away.
			if o.stopping != nil && o.stopping() {
				o.log.Info("data link closed while the cluster stops", "peer", o.peer, "err", err)
			} else {
				o.log.Warn("data link down; retrying every 500ms", "peer", o.peer, "addr", o.address(), "err", err)
			}
		}
		failures++
		select {
		case <-ctx.Done():
			return
		case <-time.After(redialEvery):
		case <-o.redial:
		}
	}
}

type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "refused: " + e.reason }

// session is one connection's life.
func (o *outbound) session(ctx context.Context) error {
	var d net.Dialer
	addr := o.address()
	dctx, cancel := context.WithTimeout(ctx, handshakeLimit)
	conn, err := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return err
	}
	if conn, err = dialled(ctx, o.guard, conn, linkauth.Data, addr); err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(handshakeLimit))
	peer, err := handshake(conn, r, o.hello, DataChannel)
	if err != nil {
		return err
	}
	if peer.Worker != o.peer {
		return fmt.Errorf("the data listener at %s is worker %q, not %q", addr, peer.Worker, o.peer)
	}
	o.mu.Lock()
	first := o.q.FirstHeld()
	o.mu.Unlock()
	if _, err := conn.Write(AppendFrame(nil, KindDataConnect, Seq(first))); err != nil {
		return err
	}
	f, err := ReadFrame(r)
	if err != nil {
		return fmt.Errorf("waiting for data-accept: %w", err)
	}
	if f.Kind != KindDataAccept {
		return fmt.Errorf("%w: %v where data-accept was expected", ErrMalformed, f.Kind)
	}
	last, err := DecodeSeq(f.Payload)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Time{})
	o.mu.Lock()
	again, rerr := o.q.Resume(last)
	if errors.Is(rerr, ErrAckBeyondSent) {
		// Taking its word would skip the batches from here to last,
		// which it never got: the link fails, saying why, and is dialled
		// again.
		o.mu.Unlock()
		return fmt.Errorf("the peer says it has up to batch %d: %w", last, rerr)
	}
	o.sent = last
	o.up = true
	o.conn = conn
	o.signal()
	o.mu.Unlock()
	if rerr != nil {
		o.log.Warn("data link", "peer", o.peer, "err", rerr)
	}
	o.log.Info("data link up", "peer", o.peer, "addr", addr, "resending", len(again))
	if o.onUp != nil {
		o.onUp(o.peer, o.ups > 0, len(again))
	}
	o.ups++
	defer func() {
		o.mu.Lock()
		o.up = false
		o.conn = nil
		o.signal()
		o.mu.Unlock()
	}()

	// Acks come back on the same connection.
	ackErr := make(chan error, 1)
	go func() {
		for {
			f, err := ReadFrame(r)
			if err != nil {
				ackErr <- err
				conn.Close()
				return
			}
			if f.Kind != KindAck {
				ackErr <- fmt.Errorf("%w: %v on a data link's return path", ErrMalformed, f.Kind)
				conn.Close()
				return
			}
			seq, err := DecodeSeq(f.Payload)
			if err == nil {
				o.mu.Lock()
				err = o.q.Ack(seq)
				o.signal()
				o.mu.Unlock()
			}
			if err != nil {
				ackErr <- err
				conn.Close()
				return
			}
		}
	}()
	w := bufio.NewWriterSize(conn, 256<<10)
	for {
		o.mu.Lock()
		var todo []outEntry
		for _, e := range o.q.entries {
			if e.seq > o.sent {
				todo = append(todo, e)
			}
		}
		wake := o.wake
		o.mu.Unlock()
		for _, e := range todo {
			p := EnvelopeBatch{Seq: e.seq, Count: e.count, Data: e.data}.Encode()
			if _, err := w.Write(AppendFrame(nil, KindEnvelopes, p)); err != nil {
				return err
			}
		}
		if len(todo) > 0 {
			if err := w.Flush(); err != nil {
				return err
			}
			o.mu.Lock()
			o.sent = todo[len(todo)-1].seq
			o.mu.Unlock()
			continue
		}
		select {
		case <-wake:
		case err := <-ackErr:
			return fmt.Errorf("reading acks: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handshake sends our Hello and reads the peer's, refusing (with a Refuse
// frame naming the reason) a peer that cannot work with us.
func handshake(conn net.Conn, r *bufio.Reader, mine Hello, ch Channel) (Hello, error) {
	mine.Channel = ch
	if _, err := conn.Write(AppendFrame(nil, KindHello, mine.Encode())); err != nil {
		return Hello{}, err
	}
	return readHello(conn, r, mine, ch)
}

// readHello reads the peer's Hello (or its Refuse) and checks it.
func readHello(conn net.Conn, r *bufio.Reader, mine Hello, ch Channel) (Hello, error) {
	f, err := readFrameMax(r, maxHandshakeFrame)
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			// What a peer that requires authentication sends first
			// (its challenge) reads as a malformed frame here.
			err = fmt.Errorf("%w (does the peer run with a cluster secret or TLS that this worker lacks?)", err)
		}
		return Hello{}, fmt.Errorf("waiting for the peer's hello: %w", err)
	}
	switch f.Kind {
	case KindRefuse:
		reason, _ := DecodeText(f.Payload)
		return Hello{}, &refusedError{reason: reason}
	case KindRedirect:
		addr, err := DecodeText(f.Payload)
		if err != nil || addr == "" {
			return Hello{}, fmt.Errorf("%w: a redirect without an address", ErrMalformed)
		}
		return Hello{}, &redirectError{addr: addr}
	case KindHello:
	default:
		return Hello{}, fmt.Errorf("%w: %v where hello was expected", ErrMalformed, f.Kind)
	}
	peer, err := DecodeHello(f.Payload)
	if err != nil {
		return Hello{}, err
	}
	mine.Channel = ch
	why := peer.Mismatch(mine)
	if why == "" && peer.Channel != ch {
		why = fmt.Sprintf("a %v link, on this worker's %v listener", peer.Channel, ch)
	}
	if why != "" {
		conn.Write(AppendFrame(nil, KindRefuse, Text(fmt.Sprintf("worker %s refuses a %v link from worker %s, which has %s", mine.Worker, ch, peer.Worker, why))))
		return Hello{}, fmt.Errorf("refused worker %q: it has %s", peer.Worker, why)
	}
	return peer, nil
}
