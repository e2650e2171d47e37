// Package connset keeps the set of connections a listener is serving, so
// that shutdown can close the listener and every connection in one call,
// which ends the Accept, Read and Write calls in progress. The zero Set is
// ready to use; it is safe for concurrent use.
package connset

import (
	"net"
	"sync"
)

// Set is the live connections of one listener.
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
