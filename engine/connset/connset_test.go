package connset

import (
	"context"
	"errors"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCloseAllClosesListenerAndConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer b.Close()
	var s Set
	if !s.Add(a) {
		t.Fatal("Add refused before CloseAll")
	}
	s.CloseAll(ln)
	if _, err := a.Write([]byte("x")); err == nil {
		t.Error("connection still open after CloseAll")
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("listener still open after CloseAll")
	}
	c, d := net.Pipe()
	defer d.Close()
	if s.Add(c) {
		t.Error("Add accepted a connection after CloseAll")
	}
	s.Remove(c)
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Remove did not close the connection")
	}
}

// waitLimit bounds every wait in these tests; reaching it is a failure.
const waitLimit = 10 * time.Second

// fakeListener hands out the connections and errors the test queues.
type fakeListener struct {
	accepts chan acceptResult
	closed  chan struct{}
	once    sync.Once
}

type acceptResult struct {
	conn net.Conn
	err  error
}

func newFakeListener() *fakeListener {
	return &fakeListener{accepts: make(chan acceptResult, 16), closed: make(chan struct{})}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case r := <-l.accepts:
		return r.conn, r.err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

type tempErr struct{}

func (tempErr) Error() string { return "too many open files" }

func serveAsync(ctx context.Context, ln net.Listener, cfg Config, handle func(net.Conn)) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, cfg, handle) }()
	return done
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("%s: not within %v", what, waitLimit)
		var zero T
		return zero
	}
}

func TestServe_StopClosesConnectionsAndWaitsForHandlers(t *testing.T) {
	ln := newFakeListener()
	a, b := net.Pipe()
	defer b.Close()
	ln.accepts <- acceptResult{conn: a}
	release := make(chan struct{})
	readErr := make(chan error, 1)
	entered := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := serveAsync(ctx, ln, Config{Label: "test"}, func(conn net.Conn) {
		close(entered)
		_, err := conn.Read(make([]byte, 1))
		readErr <- err
		<-release // still working after its socket closed
	})
	// Stop only once the connection is being served: stopping earlier
	// would (rightly) leave it unaccepted and the handler never called.
	wait(t, entered, "the handler to start")
	cancel()
	if err := wait(t, readErr, "handler's Read to fail"); err == nil {
		t.Fatal("Read succeeded after stop")
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v while a handler was still running", err)
	default:
	}
	close(release)
	if err := wait(t, done, "Serve to return"); err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

func TestServe_MaxConnsLeavesTheRestUnaccepted(t *testing.T) {
	ln := newFakeListener()
	var served atomic.Int32
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 3 {
		a, b := net.Pipe()
		defer b.Close()
		ln.accepts <- acceptResult{conn: a}
	}
	done := serveAsync(ctx, ln, Config{Label: "test", MaxConns: 2}, func(net.Conn) {
		served.Add(1)
		entered <- struct{}{}
		<-release
	})
	wait(t, entered, "first connection")
	wait(t, entered, "second connection")
	// The third stays queued in the listener until a slot is free.
	deadline := time.Now().Add(waitLimit)
	for len(ln.accepts) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left in the listener, want 1", len(ln.accepts))
		}
		time.Sleep(time.Millisecond)
	}
	if n := served.Load(); n != 2 {
		t.Fatalf("%d connections served at once, want 2", n)
	}
	release <- struct{}{}
	wait(t, entered, "third connection after a slot freed")
	close(release)
	cancel()
	if err := wait(t, done, "Serve to return"); err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

func TestServe_RetriesTransientAcceptErrors(t *testing.T) {
	ln := newFakeListener()
	var logs strings.Builder
	var mu sync.Mutex
	logger := log.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), "", 0)
	ln.accepts <- acceptResult{err: tempErr{}}
	ln.accepts <- acceptResult{err: tempErr{}}
	a, b := net.Pipe()
	defer b.Close()
	ln.accepts <- acceptResult{conn: a}
	got := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := serveAsync(ctx, ln, Config{Label: "Words source", Log: logger}, func(net.Conn) { got <- struct{}{} })
	wait(t, got, "the connection after two failed accepts")
	cancel()
	if err := wait(t, done, "Serve to return"); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "Words source: accept on 127.0.0.1:0 failed: too many open files; retrying in "); n != 2 {
		t.Fatalf("log:\n%s\nwant two retry lines", logs.String())
	}
}

func TestServe_ListenerClosedElsewhereIsAnError(t *testing.T) {
	ln := newFakeListener()
	done := serveAsync(context.Background(), ln, Config{Label: "external channel"}, func(net.Conn) {})
	ln.Close()
	if err := wait(t, done, "Serve to return"); !errors.Is(err, net.ErrClosed) || !strings.HasPrefix(err.Error(), "external channel on ") {
		t.Fatalf("Serve = %v, want net.ErrClosed naming the listener", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
