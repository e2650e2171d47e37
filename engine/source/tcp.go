package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"sync"
	"sync/atomic"

	"github.com/wallaroo-go/machida/engine/connset"
	"github.com/wallaroo-go/machida/internal/portwait"
)

// Defaults applied by NewTCP to zero TCPConfig fields.
const (
	DefaultMaxConns   = 10       // as the 0.6 TCP source listener
	DefaultReadBuffer = 64 << 10 // bytes per socket read
	DefaultMaxBatch   = 1024     // frames per Batch
)

// ErrConfig is wrapped by NewTCP's errors: the configuration is invalid
// (an engine wiring bug or a bad decoder definition, not a bind failure).
var ErrConfig = errors.New("invalid source configuration")

// maxBatchBytes is the most a Batch can hold: its offsets are int32.
const maxBatchBytes = math.MaxInt32

// TCPConfig configures a TCP source listener. Zero numeric fields take the
// defaults above (DefaultMaxPayload for MaxPayload).
type TCPConfig struct {
	Name      string     // pipeline (source) name, used in log lines and errors
	Index     int        // Batch.Source of every batch delivered
	Addr      string     // host:port to listen on; port 0 picks a free one
	HeaderLen int        // frame header bytes (the decoder's header_length)
	Length    LengthFunc // payload length from a header (unused when Raw)
	// Raw delivers each read as a raw Batch (see Batch.Raw) for the
	// consumer to frame, instead of framing here.
	Raw        bool
	MaxPayload int // largest payload accepted; a larger one closes the connection
	MaxConns   int // connections served at once; more wait un-accepted
	ReadBuffer int // bytes read from a socket at a time
	MaxBatch   int // frames per delivered Batch
	// OnClosed, if set, is told of every connection closed for a reason
	// other than its peer's clean end or a stop (a framing error, a
	// read error); from the connection's goroutine, must not block.
	OnClosed func()
	// ClosedLog, if set, takes the lines of those closes (a client's
	// malformed input is a warning, where the rest of the log is not);
	// nil: the logger given to NewTCP.
	ClosedLog *log.Logger
}

// TCP is a TCP source: it listens, accepts up to MaxConns connections at a
// time, splits each connection's bytes into frames and delivers them to a
// Consumer in batches. See the package documentation for its goroutines
// and ownership rules.
type TCP struct {
	cfg      TCPConfig
	framer   Framer
	consumer Consumer
	log      *log.Logger

	bound *boundPort    // set by Bind
	ln    net.Listener  // set by Listen
	conns atomic.Uint64 // numbers the connections of raw batches
}

// NewTCP checks cfg, applies defaults and returns a source that is not yet
// listening. A nil logger discards log lines.
func NewTCP(cfg TCPConfig, consumer Consumer, logger *log.Logger) (*TCP, error) {
	switch {
	case cfg.HeaderLen < 1:
		return nil, fmt.Errorf("%s source: %w: header length %d, want at least 1", cfg.Name, ErrConfig, cfg.HeaderLen)
	case cfg.Length == nil && !cfg.Raw:
		return nil, fmt.Errorf("%s source: %w: no length function", cfg.Name, ErrConfig)
	case consumer == nil:
		return nil, fmt.Errorf("%s source: %w: no consumer", cfg.Name, ErrConfig)
	case cfg.MaxPayload < 0 || cfg.MaxConns < 0 || cfg.ReadBuffer < 0 || cfg.MaxBatch < 0:
		return nil, fmt.Errorf("%s source: %w: negative limit in %+v", cfg.Name, ErrConfig, cfg)
	case cfg.MaxPayload > maxBatchBytes-max(cfg.ReadBuffer, DefaultReadBuffer):
		// A batch holds at most one split frame plus one read.
		return nil, fmt.Errorf("%s source: %w: payload limit %d is too large for a batch", cfg.Name, ErrConfig, cfg.MaxPayload)
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	return &TCP{
		cfg:      cfg,
		framer:   Framer{HeaderLen: cfg.HeaderLen, Length: cfg.Length, MaxPayload: cfg.MaxPayload},
		consumer: consumer,
		log:      logger,
	}, nil
}

// Bind binds the source's port without listening on it yet: a port that
// is taken is reported now ("<name> source is unable to listen on
// <addr>: ..."), while clients that connect are refused until Serve
// listens, as 0.6 refused them until the cluster was ready. Call it
// once, before Serve.
func (t *TCP) Bind() error {
	if t.bound != nil {
		return fmt.Errorf("%s source is already bound to %s", t.cfg.Name, t.bound.Addr())
	}
	b, err := portwait.Bind(func() (*boundPort, error) { return bindPort(t.cfg.Addr) }, func(err error) {
		t.log.Print(portwait.Busy(fmt.Sprintf("%s source on %s", t.cfg.Name, t.cfg.Addr), err))
	})
	if err != nil {
		return fmt.Errorf("%s source is unable to listen on %s: %w", t.cfg.Name, t.cfg.Addr, err)
	}
	t.bound = b
	return nil
}

// Listen starts listening on the port Bind bound and logs "<name> source
// is listening on <addr>": from now on clients can connect (they wait in
// the kernel's backlog until Serve accepts them). Serve calls it if it
// was not called; call it first to know the port is open when it
// returns.
func (t *TCP) Listen() error {
	if t.ln != nil {
		return fmt.Errorf("%s source is already listening on %s", t.cfg.Name, t.ln.Addr())
	}
	if t.bound == nil {
		return fmt.Errorf("%s source: Listen called before Bind", t.cfg.Name)
	}
	ln, err := t.bound.listen()
	if err != nil {
		return fmt.Errorf("%s source is unable to listen on %s: %w", t.cfg.Name, t.bound.Addr(), err)
	}
	t.ln = ln
	t.log.Printf("%s source is listening on %s", t.cfg.Name, ln.Addr())
	return nil
}

// Close frees the port of a source that will not be served (the worker
// failed to start after Bind). Serve closes its listener itself; Close is
// for the case where Serve is never called, and must not run alongside
// it. Close before Bind, or twice, does nothing.
func (t *TCP) Close() error {
	var err error
	switch {
	case t.ln != nil:
		err = t.ln.Close()
	case t.bound != nil:
		err = t.bound.Close()
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Addr returns the bound address (useful with port 0), or nil before
// Bind.
func (t *TCP) Addr() net.Addr {
	if t.bound == nil {
		return nil
	}
	return t.bound.Addr()
}

// Serve accepts and serves connections until stop ends. Then every
// connection stops reading its socket, frames what it had already read and
// delivers it with drain (Consumer.Deliver is always called with drain, so
// a Deliver blocked at the stop keeps its batch); Serve closes the
// listener and every socket, waits for all its goroutines and returns nil.
// Only when drain ends too is what is left dropped, with a log line
// counting the frames and bytes lost. drain should outlive stop (pass the
// same context for both to drop at once). Serve listens first if Listen
// was not called, and returns an error only if Bind was not called,
// listening fails, or the listener fails for good (closed by someone
// else). Call it once; do not call Close once Listen or Serve was.
func (t *TCP) Serve(stop, drain context.Context) error {
	if t.ln == nil {
		if err := t.Listen(); err != nil {
			return err
		}
	}
	cfg := connset.Config{Label: t.cfg.Name + " source", MaxConns: t.cfg.MaxConns, Log: t.log}
	return connset.Serve(stop, t.ln, cfg, func(conn net.Conn) {
		t.log.Printf("%s source accepted a connection from %s", t.cfg.Name, conn.RemoteAddr())
		t.serveConn(stop, drain, conn)
	})
}

// serveConn reads one connection until it ends or stop does, delivering a
// batch of the frames completed by each read. While Deliver blocks,
// nothing is read. After stop it reads no more but still frames and
// delivers (with drain) the bytes it had read.
func (t *TCP) serveConn(stop, drain context.Context, conn net.Conn) {
	if t.cfg.Raw {
		t.serveRaw(stop, drain, conn)
		return
	}
	stream := t.framer.NewStream()
	buf := make([]byte, t.cfg.ReadBuffer)
	for {
		n, rerr := conn.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			b := Batch{Source: t.cfg.Index}
			k, ferr := stream.Feed(&b, p, t.cfg.MaxBatch)
			p = p[k:]
			if b.Len() > 0 {
				if err := t.consumer.Deliver(drain, b); err != nil {
					if drain.Err() != nil {
						t.dropped(conn, b, p, stream)
					} else {
						t.closed(conn, fmt.Errorf("deliver: %w", err))
					}
					return
				}
			}
			if ferr != nil {
				t.closed(conn, ferr)
				return
			}
		}
		switch {
		case stop.Err() != nil:
			// Stopping: what was read is delivered; the socket is (or
			// is about to be) closed by Serve, so read no more. A frame
			// cut by the stop cannot be delivered.
			if err := stream.Finish(); err != nil {
				t.log.Printf("%s source: stopped reading from %s inside a frame (%v); its bytes are dropped", t.cfg.Name, conn.RemoteAddr(), err)
			}
			return
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			if err := stream.Finish(); err != nil {
				t.closed(conn, err)
			}
			return
		default:
			t.closed(conn, rerr)
			return
		}
	}
}

// serveRaw reads one connection of a Raw source: every read is delivered
// as it came, then a Closed batch when the connection ends (EOF, error,
// stop, or Reject).
func (t *TCP) serveRaw(stop, drain context.Context, conn net.Conn) {
	id := t.conns.Add(1)
	var once sync.Once
	reject := func(reason string) {
		once.Do(func() {
			t.closed(conn, errors.New(reason))
			conn.Close()
		})
	}
	deliver := func(b Batch) bool {
		b.Source, b.Raw, b.Conn, b.Reject = t.cfg.Index, true, id, reject
		if err := t.consumer.Deliver(drain, b); err != nil {
			if drain.Err() != nil {
				t.log.Printf("%s source: shutdown deadline passed; dropping %d bytes read from %s and not delivered", t.cfg.Name, len(b.Buf), conn.RemoteAddr())
			} else {
				t.closed(conn, fmt.Errorf("deliver: %w", err))
			}
			return false
		}
		return true
	}
	defer deliver(Batch{Closed: true})
	buf := make([]byte, t.cfg.ReadBuffer)
	for {
		n, rerr := conn.Read(buf)
		if n > 0 && !deliver(Batch{Buf: append([]byte(nil), buf[:n]...)}) {
			return
		}
		switch {
		case stop.Err() != nil:
			return
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, net.ErrClosed):
			return
		default:
			t.closed(conn, rerr)
			return
		}
	}
}

// dropped logs what a connection loses when drain ends with batch b
// undelivered and rest not yet framed.
func (t *TCP) dropped(conn net.Conn, b Batch, rest []byte, stream *Stream) {
	partial := ""
	if err := stream.Finish(); err != nil {
		partial = fmt.Sprintf(", and a partial frame (%v)", err)
	}
	t.log.Printf("%s source: shutdown deadline passed; dropping what was read from %s and not delivered: %d frames (%d payload bytes) and %d bytes not yet framed%s",
		t.cfg.Name, conn.RemoteAddr(), b.Len(), len(b.Buf), len(rest), partial)
}

// closed logs why a connection is being closed.
func (t *TCP) closed(conn net.Conn, reason error) {
	if t.cfg.OnClosed != nil {
		t.cfg.OnClosed()
	}
	l := t.cfg.ClosedLog
	if l == nil {
		l = t.log
	}
	l.Printf("%s source: connection from %s closed: %v", t.cfg.Name, conn.RemoteAddr(), reason)
}
