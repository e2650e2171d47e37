package external

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/engine/connset"
)

// Config configures the external channel server.
type Config struct {
	Addr string // host:port to listen on (--external); port 0 picks a free one
}

// Server is the external channel server. See the package documentation
// for its use, goroutines and replies.
type Server struct {
	cfg    Config
	status Status
	log    *log.Logger

	ln net.Listener // set by Listen

	conns connset.Set // connections being served
}

// NewServer returns a server that is not yet listening. status answers
// the requests; a nil logger discards log lines.
func NewServer(cfg Config, status Status, logger *log.Logger) *Server {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	return &Server{cfg: cfg, status: status, log: logger}
}

// Listen binds the listening socket and logs the bound address.
// Connections made after Listen wait in the kernel's backlog until Serve
// accepts them. Call it once, before Serve.
func (s *Server) Listen() error {
	if s.ln != nil {
		return fmt.Errorf("external channel: already listening on %s", s.ln.Addr())
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("external channel: unable to listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.log.Printf("external channel: listening on %s", ln.Addr())
	return nil
}

// Addr returns the bound address (useful with port 0), or nil before
// Listen.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts and serves connections until ctx ends; then it closes the
// listener and every connection, waits for all its goroutines and returns
// nil. It returns an error only if Listen was not called or the listener
// fails for good (closed by someone else). Call it once.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("external channel: Serve called before Listen")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, s.closeAll)
	defer stop()
	defer s.closeAll() // covers returns on a listener failure

	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("external channel on %s: %w", s.ln.Addr(), err)
			}
			// Probably out of file descriptors: wait and retry, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Printf("external channel: accept on %s failed: %v; retrying in %v", s.ln.Addr(), err, backoff)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		if !s.conns.Add(conn) {
			conn.Close()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.conns.Remove(conn)
			s.serveConn(ctx, conn)
		}()
	}
}

// closeAll closes the listener and every connection being served, which
// ends Accept, Read and Write calls in progress.
func (s *Server) closeAll() {
	s.conns.CloseAll(s.ln)
}

// serveConn handles the requests of one connection, one at a time, until
// the peer closes it, it sends a malformed frame or ctx ends.
func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	r := bufio.NewReader(conn)
	peer := conn.RemoteAddr()
	for {
		f, err := ReadFrame(r)
		switch {
		case err == nil:
		case ctx.Err() != nil, errors.Is(err, io.EOF):
			return // shutting down, or a clean close at a frame boundary
		default:
			s.log.Printf("external channel: closing connection from %s: %v", peer, err)
			return
		}
		id, reply, ok := s.handle(f, peer)
		if !ok {
			continue
		}
		if _, err := conn.Write(AppendFrame(nil, id, reply)); err != nil {
			if ctx.Err() == nil {
				s.log.Printf("external channel: closing connection from %s: write %s: %v", peer, id, err)
			}
			return
		}
	}
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
