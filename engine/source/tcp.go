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
	"time"

	"github.com/wallaroo-go/machida/engine/connset"
)

// Defaults applied by NewTCP to zero TCPConfig fields.
const (
	DefaultMaxConns   = 10       // as the 0.6 TCP source listener
	DefaultReadBuffer = 64 << 10 // bytes per socket read
	DefaultMaxBatch   = 1024     // frames per Batch
)

// maxBatchBytes is the most a Batch can hold: its offsets are int32.
const maxBatchBytes = math.MaxInt32

// TCPConfig configures a TCP source listener. Zero numeric fields take the
// defaults above (DefaultMaxPayload for MaxPayload).
type TCPConfig struct {
	Name       string     // pipeline (source) name, used in log lines and errors
	Index      int        // Batch.Source of every batch delivered
	Addr       string     // host:port to listen on; port 0 picks a free one
	HeaderLen  int        // frame header bytes (the decoder's header_length)
	Length     LengthFunc // payload length from a header
	MaxPayload int        // largest payload accepted; a larger one closes the connection
	MaxConns   int        // connections served at once; more wait un-accepted
	ReadBuffer int        // bytes read from a socket at a time
	MaxBatch   int        // frames per delivered Batch
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

	ln net.Listener // set by Listen

	conns connset.Set // connections being served
}

// NewTCP checks cfg, applies defaults and returns a source that is not yet
// listening. A nil logger discards log lines.
func NewTCP(cfg TCPConfig, consumer Consumer, logger *log.Logger) (*TCP, error) {
	switch {
	case cfg.HeaderLen < 1:
		return nil, fmt.Errorf("%s source: header length %d, want at least 1", cfg.Name, cfg.HeaderLen)
	case cfg.Length == nil:
		return nil, fmt.Errorf("%s source: no length function", cfg.Name)
	case consumer == nil:
		return nil, fmt.Errorf("%s source: no consumer", cfg.Name)
	case cfg.MaxPayload < 0 || cfg.MaxConns < 0 || cfg.ReadBuffer < 0 || cfg.MaxBatch < 0:
		return nil, fmt.Errorf("%s source: negative limit in %+v", cfg.Name, cfg)
	case cfg.MaxPayload > maxBatchBytes-max(cfg.ReadBuffer, DefaultReadBuffer):
		// A batch holds at most one split frame plus one read.
		return nil, fmt.Errorf("%s source: payload limit %d is too large for a batch", cfg.Name, cfg.MaxPayload)
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

// Listen binds the listening socket and logs "<name> source is listening
// on <addr>". Connections made after Listen wait in the kernel's backlog
// until Serve accepts them. Call it once, before Serve.
func (t *TCP) Listen() error {
	if t.ln != nil {
		return fmt.Errorf("%s source is already listening on %s", t.cfg.Name, t.ln.Addr())
	}
	ln, err := net.Listen("tcp", t.cfg.Addr)
	if err != nil {
		return fmt.Errorf("%s source is unable to listen on %s: %w", t.cfg.Name, t.cfg.Addr, err)
	}
	t.ln = ln
	t.log.Printf("%s source is listening on %s", t.cfg.Name, ln.Addr())
	return nil
}

// Addr returns the bound address (useful with port 0), or nil before
// Listen.
func (t *TCP) Addr() net.Addr {
	if t.ln == nil {
		return nil
	}
	return t.ln.Addr()
}

// Serve accepts and serves connections until ctx ends; then it closes the
// listener and every connection, waits for all its goroutines and returns
// nil. Connection goroutines pass ctx to Consumer.Deliver. It returns an
// error only if Listen was not called or the listener fails for good
// (closed by someone else). Call it once.
func (t *TCP) Serve(ctx context.Context) error {
	if t.ln == nil {
		return fmt.Errorf("%s source: Serve called before Listen", t.cfg.Name)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, t.closeAll)
	defer stop()
	defer t.closeAll() // covers returns on a listener failure

	// A slot in sem is taken before Accept, so once MaxConns connections
	// are being served the next one stays in the kernel backlog.
	sem := make(chan struct{}, t.cfg.MaxConns)
	var backoff time.Duration
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		conn, err := t.ln.Accept()
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("%s source on %s: %w", t.cfg.Name, t.ln.Addr(), err)
			}
			// Probably out of file descriptors: wait and retry, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Printf("%s source: accept on %s failed: %v; retrying in %v", t.cfg.Name, t.ln.Addr(), err, backoff)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		if !t.conns.Add(conn) {
			conn.Close()
			<-sem
			return nil
		}
		t.log.Printf("%s source accepted a connection from %s", t.cfg.Name, conn.RemoteAddr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer t.conns.Remove(conn)
			t.serveConn(ctx, conn)
		}()
	}
}

// closeAll closes the listener and every connection being served, which
// ends Accept and Read calls in progress.
func (t *TCP) closeAll() {
	t.conns.CloseAll(t.ln)
}

// serveConn reads one connection until it ends, delivering a batch of the
// frames completed by each read. While Deliver blocks, nothing is read.
func (t *TCP) serveConn(ctx context.Context, conn net.Conn) {
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
				if err := t.consumer.Deliver(ctx, b); err != nil {
					if ctx.Err() == nil {
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
		case rerr == nil:
		case ctx.Err() != nil:
			return // shutting down; closeAll closed the socket
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

// closed logs why a connection is being closed.
func (t *TCP) closed(conn net.Conn, reason error) {
	t.log.Printf("%s source: connection from %s closed: %v", t.cfg.Name, conn.RemoteAddr(), reason)
}

// sleepCtx waits for d or until ctx ends, reporting false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
