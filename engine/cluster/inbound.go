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

// ackEvery is how many batches a receiver may take before it acks, at
// most (it also acks whenever it has read all that was buffered).
const ackEvery = 64

// inbound serves this worker's data listener: each peer's link, over any
// number of reconnects, delivers its batches once and in order.
type inbound struct {
	hello   Hello
	log     *slog.Logger
	deliver func(ctx context.Context, from string, e work.Envelopes) error
	known   func(name string) bool // is name a worker of the cluster?
	guarded bool                   // the links are protected (for the log's hints)
	unknown linkauth.RefusalLog    // links refused for an unknown peer, for the log

	mu   sync.Mutex
	seqs map[string]*inSeq     // per sending worker, kept across reconnects
	inc  map[string]uint64     // the incarnation each sequence belongs to
	busy map[string]*inSession // the link from that worker being served
	// processed counts the batches delivered (for the shutdown's
	// quiescence count).
	processed uint64
}

func newInbound(hello Hello, log *slog.Logger, known func(string) bool,
	deliver func(ctx context.Context, from string, e work.Envelopes) error) *inbound {
	return &inbound{hello: hello, log: log, known: known, deliver: deliver,
		seqs: map[string]*inSeq{}, busy: map[string]*inSession{}, inc: map[string]uint64{}}
}

// inSession is a data link being served: its connection, and done,
// closed once the session has ended (it no longer touches its sequence).
type inSession struct {
	conn net.Conn
	done chan struct{}
}

// serve handles one accepted data connection until it ends or ctx does.
// A malformed frame, or one that breaks the link's order, closes the
// connection with a logged reason; the peer reconnects and replays.
func (in *inbound) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	from, err := in.session(ctx, conn)
	if err == nil || ctx.Err() != nil {
		return
	}
	attrs := []any{"peer", from, "remote", conn.RemoteAddr(), "err", err.Error() + silentPeerHint(in.guarded, err)}
	var unknown *unknownPeerError
	if errors.As(err, &unknown) {
		// It redials every 500 ms (a joiner whose grow ended with a
		// crash of the initializer, say): a few lines per period.
		host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
		more, log := in.unknown.NoteKey(from+" at "+host, time.Now())
		if !log {
			return
		}
		if more > 0 {
			attrs = append(attrs, "more_from_that_worker_unlogged", more)
		}
	}
	in.log.Warn("data link from a peer closed", attrs...)
}

// unknownPeerError is a data link refused because its peer is not a
// worker of this cluster.
type unknownPeerError struct{ peer string }

func (e *unknownPeerError) Error() string {
	return fmt.Sprintf("refused a data link from %q: not a worker of this cluster", e.peer)
}

func (in *inbound) session(ctx context.Context, conn net.Conn) (string, error) {
	r := bufio.NewReaderSize(conn, 256<<10)
	conn.SetDeadline(time.Now().Add(handshakeLimit))
	peer, err := readHello(conn, r, in.hello, DataChannel)
	if err != nil {
		return "?", err
	}
	from := peer.Worker
	if !in.known(from) {
		conn.Write(AppendFrame(nil, KindRefuse, Text(fmt.Sprintf("worker %s does not know a worker %q in its cluster", in.hello.Worker, from))))
		return from, &unknownPeerError{peer: from}
	}
	mine := in.hello
	mine.Channel = DataChannel
	if _, err := conn.Write(AppendFrame(nil, KindHello, mine.Encode())); err != nil {
		return from, err
	}
	f, err := ReadFrame(r)
	if err != nil {
		return from, fmt.Errorf("waiting for data-connect: %w", err)
	}
	if f.Kind != KindDataConnect {
		return from, fmt.Errorf("%w: %v where data-connect was expected", ErrMalformed, f.Kind)
	}
	first, err := DecodeSeq(f.Payload)
	if err != nil {
		return from, err
	}
	in.mu.Lock()
	if old := in.busy[from]; old != nil {
		// A sender keeps one connection at a time: dialling again, it
		// has given up on the one before, which this side may not know
		// yet (a peer that lost power, or restarted, sends no FIN). That
		// one goes; its session must end before this one takes over the
		// sequence (it may be delivering a batch: the sender retries).
		in.mu.Unlock()
		in.log.Info("a new data link from a peer replaces the one before", "peer", from, "old_remote", old.conn.RemoteAddr())
		old.conn.Close()
		t := time.NewTimer(handshakeLimit)
		select {
		case <-old.done:
			t.Stop()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		in.mu.Lock()
		if in.busy[from] != nil {
			in.mu.Unlock()
			return from, fmt.Errorf("a second data link from %q while the first is still delivering", from)
		}
	}
	cur := &inSession{conn: conn, done: make(chan struct{})}
	in.busy[from] = cur
	conn.SetDeadline(time.Now().Add(handshakeLimit)) // (after any wait above)
	seq := in.seqs[from]
	if seq != nil && in.inc[from] != peer.Incarnation {
		// The sender restarted: its numbering starts again.
		in.log.Info("a peer restarted; its data link starts afresh", "peer", from)
		seq = nil
	}
	in.inc[from] = peer.Incarnation
	if seq == nil {
		// A link seen for the first time (or after this worker
		// restarted): start from what the sender still holds.
		seq = &inSeq{last: first - 1}
		if first == 0 {
			seq.last = 0
		}
		in.seqs[from] = seq
	}
	last := seq.last
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		if in.busy[from] == cur {
			delete(in.busy, from)
		}
		in.mu.Unlock()
		close(cur.done)
	}()
	if _, err := conn.Write(AppendFrame(nil, KindDataAccept, Seq(last))); err != nil {
		return from, err
	}
	conn.SetDeadline(time.Time{})
	unacked := 0
	for {
		f, err := ReadFrame(r)
		if err != nil {
			return from, err
		}
		if f.Kind != KindEnvelopes {
			return from, fmt.Errorf("%w: %v on a data link", ErrMalformed, f.Kind)
		}
		b, err := DecodeEnvelopeBatch(f.Payload)
		if err != nil {
			return from, err
		}
		ok, err := seq.Accept(b.Seq)
		if err != nil {
			return from, err
		}
		if ok {
			// Data aliases the frame's own buffer: the queue owns it now.
			if err := in.deliver(ctx, from, work.Envelopes{Count: int(b.Count), Data: b.Data, Arrived: time.Now().UnixNano()}); err != nil {
				// Not delivered: not to be acked either (a later session
				// must take it again).
				seq.last = b.Seq - 1
				return from, err
			}
			in.mu.Lock()
			in.processed++
			in.mu.Unlock()
		}
		unacked++
		if unacked >= ackEvery || r.Buffered() == 0 {
			if _, err := conn.Write(AppendFrame(nil, KindAck, Seq(seq.last))); err != nil {
				return from, err
			}
			unacked = 0
		}
	}
}

// delivered returns how many batches were delivered.
func (in *inbound) delivered() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.processed
}
