package external

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/wallaroo-go/machida/engine/connset"
	"github.com/wallaroo-go/machida/internal/extframe"
	"github.com/wallaroo-go/machida/internal/linkauth"
	"github.com/wallaroo-go/machida/internal/portwait"
)

// Config configures the external channel server.
type Config struct {
	Addr string // host:port to listen on (--external); port 0 picks a free one
	// Guard, if set, makes every client authenticate (the cluster
	// secret, TLS or both; see package linkauth) before its first frame
	// is read. Nil: 0.6's unauthenticated channel, byte for byte.
	Guard *linkauth.Guard
	// Listener, if set, is the socket bound for Addr already (the
	// process bound it first thing, so that tools find the port taken
	// from the start); Listen takes it instead of binding.
	Listener net.Listener
}

// Server is the external channel server. See the package documentation
// for its use, goroutines and replies.
type Server struct {
	cfg    Config
	status Status
	log    *log.Logger

	ln      net.Listener        // set by Listen
	refused linkauth.RefusalLog // connections closed for what they sent, for the log
}

// NewServer returns a server that is not yet listening. status answers
// the requests; a nil logger discards log lines.
func NewServer(cfg Config, status Status, logger *log.Logger) *Server {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	return &Server{cfg: cfg, status: status, log: logger}
}

// Bind binds the external channel's socket on addr (for Config.Listener,
// or Listen), with an error that names the channel and the address. A
// port in use is tried again for a while (portwait); busy, if not nil,
// is given the line to log when it is first found in use.
func Bind(addr string, busy func(line string)) (net.Listener, error) {
	ln, err := portwait.Listen(addr, "external channel", busy)
	if err != nil {
		return nil, fmt.Errorf("external channel: unable to listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Listen binds the listening socket and logs the bound address.
// Connections made after Listen wait in the kernel's backlog until Serve
// accepts them. Call it once, before Serve.
func (s *Server) Listen() error {
	if s.ln != nil {
		return fmt.Errorf("external channel: already listening on %s", s.ln.Addr())
	}
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = Bind(s.cfg.Addr, func(line string) { s.log.Print(line) }); err != nil {
			return err
		}
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
	return connset.Serve(ctx, s.ln, connset.Config{Label: "external channel", Log: s.log},
		func(conn net.Conn) { s.serveConn(ctx, conn) })
}

// serveConn handles the requests of one connection, one at a time, until
// the peer closes it, it sends a malformed frame or ctx ends.
func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	peer := conn.RemoteAddr()
	conn, err := s.cfg.Guard.Server(ctx, conn, linkauth.External)
	if err != nil {
		if ctx.Err() == nil {
			s.refuse(peer, err)
		}
		return
	}
	r := bufio.NewReader(conn)
	for {
		f, err := extframe.Read(r, extframe.MaxRequestLen)
		switch {
		case err == nil:
		case ctx.Err() != nil, errors.Is(err, io.EOF):
			return // shutting down, or a clean close at a frame boundary
		default:
			s.refuse(peer, err)
			return
		}
		id, reply, ok := s.handle(f, peer)
		if !ok {
			continue
		}
		if _, err := conn.Write(extframe.Append(nil, id, reply)); err != nil {
			if ctx.Err() == nil {
				s.log.Printf("external channel: closing connection from %s: write %s: %v", peer, id, err)
			}
			return
		}
	}
}

// refuse logs the close of a connection from peer that did not
// authenticate or sent what cannot be read, within the bounds of
// linkauth.RefusalLog (a flood of them must not fill the log).
func (s *Server) refuse(peer net.Addr, err error) {
	more, log := s.refused.Note(peer.String(), time.Now())
	if !log {
		return
	}
	if more > 0 {
		s.log.Printf("external channel: closing connection from %s: %v (and %d more from that host not logged)", peer, err, more)
		return
	}
	s.log.Printf("external channel: closing connection from %s: %v", peer, err)
}
