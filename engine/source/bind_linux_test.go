//go:build linux

package source

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// Bound but not listening, the port refuses clients (0.6 refused them
// until the cluster was ready); Listen opens it.
func TestTCP_BoundPortRefusesUntilListen(t *testing.T) {
	fr := be32(t)
	src, err := NewTCP(TCPConfig{Name: "Early", Addr: "127.0.0.1:0", HeaderLen: fr.HeaderLen, Length: fr.Length}, &chanConsumer{batches: make(chan Batch, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Bind(); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	addr := src.Addr().String()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("a client connected to %s before Listen", addr)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial before Listen: %v, want connection refused", err)
	}
	if err := src.Listen(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial after Listen: %v", err)
	}
	c.Close()
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Errorf("another listener took %s while the source listens", addr)
	}
}

// While bound and not yet listening, the port is not free for another
// source or program: a second bind is refused at once, not at listen.
func TestTCP_BoundPortIsTakenBeforeListen(t *testing.T) {
	fr := be32(t)
	mk := func(addr string) *TCP {
		src, err := NewTCP(TCPConfig{Name: "Held", Addr: addr, HeaderLen: fr.HeaderLen, Length: fr.Length}, &chanConsumer{batches: make(chan Batch, 1)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	a := mk("127.0.0.1:0")
	if err := a.Bind(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr := a.Addr().String()
	if err := mk(addr).Bind(); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("a second source bound %s while the first holds it: %v", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Errorf("net.Listen took %s while a source holds it", addr)
	}
	if err := a.Listen(); err != nil {
		t.Fatalf("Listen after the refused binds: %v", err)
	}
}
