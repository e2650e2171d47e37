// Package connset serves the connections of one listener: Serve is the
// accept loop (with a retry backoff on transient accept failures and an
// optional cap on the connections served at once) that the TCP source and
// the external channel share, and Set is the registry of live connections
// that lets shutdown close the listener and every connection in one call,
// which ends the Accept, Read and Write calls in progress.
//
// Goroutines: Serve runs the accept loop on the caller's goroutine and
// starts one goroutine per accepted connection, which runs the caller's
// handler; Serve returns only once every handler has returned. The
// handler owns its connection until it returns; Serve closes it then.
package connset

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

// Set is the live connections of one listener. The zero Set is ready to
// use; it is safe for concurrent use.
type Set struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool // CloseAll ran: new connections are refused
}

// Add registers conn, or reports false once CloseAll has run (the caller
// then closes conn itself).
func (s *Set) Add(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[conn] = struct{}{}
	return true
}

// Remove forgets conn and closes it.
func (s *Set) Remove(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	conn.Close()
}

// CloseAll closes ln (if not nil) and every connection in the set, and
// refuses connections added later.
func (s *Set) CloseAll(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if ln != nil {
		ln.Close()
	}
	for conn := range s.conns {
		conn.Close()
	}
}

// Config configures Serve.
type Config struct {
	// Label names the listener in log lines and errors ("external
	// channel", "Words source").
	Label string
	// MaxConns bounds the connections served at once; 0 means no bound.
	// A slot is taken before Accept, so once MaxConns connections are
	// being served the next one stays in the kernel's backlog.
	MaxConns int
	// Log receives accept failures; nil discards them.
	Log *log.Logger
}

// Retry pauses after a failed Accept: doubling from the first to the last.
const (
	retryFirst = 5 * time.Millisecond
	retryMax   = time.Second
)

// Serve accepts connections on ln until ctx ends and runs handle(conn) for
// each in its own goroutine. When ctx ends it closes ln and every
// connection being served (so their Reads and Writes fail at once), waits
// for every handler to return and returns nil. A transient Accept failure
// (probably out of file descriptors) is logged and retried after a pause,
// as net/http does. If ln is closed by someone else, Serve closes the
// connections, waits for the handlers and returns an error wrapping
// net.ErrClosed.
//
// handle must return once its connection is closed; it may keep working
// on what it already read (Serve waits for it). Serve closes conn after
// handle returns.
func Serve(ctx context.Context, ln net.Listener, cfg Config, handle func(conn net.Conn)) error {
	logger := cfg.Log
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	var conns Set
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { conns.CloseAll(ln) })
	defer stop()
	defer conns.CloseAll(ln) // covers returns on a listener failure

	var sem chan struct{} // nil: no bound
	if cfg.MaxConns > 0 {
		sem = make(chan struct{}, cfg.MaxConns)
	}
	release := func() {
		if sem != nil {
			<-sem
		}
	}
	var backoff time.Duration
	for {
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		conn, err := ln.Accept()
		if err != nil {
			release()
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("%s on %s: %w", cfg.Label, ln.Addr(), err)
			}
			backoff = min(max(2*backoff, retryFirst), retryMax)
			logger.Printf("%s: accept on %s failed: %v; retrying in %v", cfg.Label, ln.Addr(), err, backoff)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		if !conns.Add(conn) {
			conn.Close()
			release()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			defer conns.Remove(conn)
			handle(conn)
		}()
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
