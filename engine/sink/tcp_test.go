package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait in these tests; reaching it is a failure.
// It is generous so that a loaded machine does not reach it.
const waitLimit = 30 * time.Second

// blockedAfter is how long a Write must wait, unfinished, to count as
// blocked by backpressure. A Write that waits this long proves the queue
// is full because the socket is (a scheduling delay, even on a loaded
// machine, is far shorter); a short deadline could also expire while the
// writer goroutine is merely slow to move the queue into the socket, and
// the test would pass without proving anything.
const blockedAfter = 5 * time.Second

// logLines is a log destination that tests can wait on.
type logLines struct {
	t       testing.TB
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every write
}

func newLogger(t testing.TB) (*log.Logger, *logLines) {
	l := &logLines{t: t, changed: make(chan struct{})}
	return log.New(l, "", 0), l
}

func (l *logLines) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	l.t.Log(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// waitFor waits until n lines contain sub.
func (l *logLines) waitFor(t testing.TB, sub string, n int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		l.mu.Lock()
		got := 0
		for _, line := range l.lines {
			if strings.Contains(line, sub) {
				got++
			}
		}
		changed := l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("waited for %d log lines with %q, got %d", n, sub, got)
		}
	}
}

// record returns a recognisable chunk: its number, padding of varying
// length, and a newline.
func record(i int) []byte {
	return []byte(fmt.Sprintf("%06d%s\n", i, strings.Repeat(".", i%53)))
}

func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func accept(t testing.TB, ln net.Listener) net.Conn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitLimit))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads c until the sink closes it.
func readAll(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got), err)
	}
	return got
}

// startSink starts a sink with fast retries; it is closed at cleanup.
func startSink(t testing.TB, cfg TCPConfig, setup func(*TCP)) (*TCP, *logLines) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "Alphabet"
	}
	cfg.RetryMin, cfg.RetryMax = 5*time.Millisecond, 50*time.Millisecond
	logger, logs := newLogger(t)
	s := NewTCP(cfg, logger)
	if setup != nil {
		setup(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	t.Cleanup(func() {
		cancel()
		s.Close()
	})
	return s, logs
}

func ctxLimit(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func TestTCP_WritesExactBytesInOrder(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	s, logs := startSink(t, TCPConfig{Addr: ln.Addr().String()}, nil)
	c := accept(t, ln)
	if err := s.WaitConnected(ctxLimit(t)); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "TCPSink initializing connection to "+ln.Addr().String(), 1)

	var want bytes.Buffer
	ctx := ctxLimit(t)
	for i := 0; i < 20000; i++ {
		p := record(i)
		want.Write(p)
		if err := s.Write(ctx, p); err != nil {
			t.Fatal(err)
		}
		if i == 100 {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil { // flushes
		t.Fatal(err)
	}
	if got := readAll(t, c); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d (or different bytes)", len(got), want.Len())
	}
	if err := s.Write(ctx, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestTCP_ConnectsWhenListenerAppears(t *testing.T) {
	// Find a free port, then leave it closed.
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()

	s, logs := startSink(t, TCPConfig{Addr: addr}, nil)
	if err := s.Write(ctxLimit(t), []byte("queued before connecting\n")); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "Alphabet sink: connection to "+addr+" failed: ", 2)
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.WaitConnected(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected with no listener: %v", err)
	}

	ln = listen(t, addr)
	c := accept(t, ln)
	if err := s.WaitConnected(ctxLimit(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctxLimit(t), []byte("and after\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(readAll(t, c)); got != "queued before connecting\nand after\n" {
		t.Fatalf("received %q", got)
	}
}

func TestTCP_ReconnectsAndSendsTheRest(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	s, logs := startSink(t, TCPConfig{Addr: addr}, nil)
	ctx := ctxLimit(t)

	var want bytes.Buffer
	write := func(from, to int) {
		for i := from; i < to; i++ {
			p := record(i)
			want.Write(p)
			if err := s.Write(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The first receiver reads part of the stream, then goes away.
	c1 := accept(t, ln)
	write(0, 5000)
	first := make([]byte, 10000)
	c1.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(c1, first); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	ln.Close()
	logs.waitFor(t, "Alphabet sink: connection to "+addr+" lost: ", 1)

	// Written while disconnected: must all reach the next receiver.
	write(5000, 10000)
	tailLen := 0
	for i := 5000; i < 10000; i++ {
		tailLen += len(record(i))
	}

	ln2 := listen(t, addr)
	c2 := accept(t, ln2)
	flushed := make(chan error, 1)
	go func() { flushed <- s.Close() }()
	second := readAll(t, c2)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}

	all := want.Bytes()
	if !bytes.HasPrefix(all, first) {
		t.Fatal("first receiver got bytes out of order")
	}
	// The second receiver gets one contiguous run of the stream that ends
	// with the last byte: everything from where the sink found out the
	// first connection's peer last acknowledged, from the start of that
	// chunk. Bytes the receiving host acknowledged but the receiver never
	// read are lost (TCP gives no way to know); nothing is reordered, and
	// a new connection never starts inside a chunk.
	if !bytes.HasSuffix(all, second) {
		t.Fatalf("second receiver's %d bytes are not the end of the stream", len(second))
	}
	if len(second) < tailLen {
		t.Fatalf("second receiver got %d bytes, want at least the %d written after the loss", len(second), tailLen)
	}
	// The second connection starts at a chunk (record) boundary.
	start, boundary := 0, false
	for i := 0; start <= len(all)-len(second); i++ {
		if start == len(all)-len(second) {
			boundary = true
			break
		}
		start += len(record(i))
	}
	if !boundary {
		t.Fatalf("second receiver starts %d bytes before the end, inside a record", len(second))
	}
	t.Logf("sent %d bytes; first receiver read %d, second got %d, lost %d", len(all), len(first), len(second), len(all)-len(first)-len(second))
}

// TestTCP_ResendsACutChunkWhole breaks a connection in the middle of a
// chunk and checks the next connection starts at the beginning of that
// chunk: a chunk is whole frames, and a new connection must not start in
// the middle of one. net.Pipe reports partial writes exactly, as a socket
// does.
func TestTCP_ResendsACutChunkWhole(t *testing.T) {
	peers := make(chan net.Conn, 2)
	s, logs := startSink(t, TCPConfig{Addr: "pipe"}, func(s *TCP) {
		s.dial = func(ctx context.Context) (net.Conn, error) {
			a, b := net.Pipe()
			select {
			case peers <- b:
				return a, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	})
	ctx := ctxLimit(t)
	want := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	for _, chunk := range [][]byte{want[:7], want[7:20], want[20:]} {
		if err := s.Write(ctx, chunk); err != nil {
			t.Fatal(err)
		}
	}

	p1 := <-peers
	got := make([]byte, 12) // in the middle of the second chunk
	if _, err := io.ReadFull(p1, got); err != nil {
		t.Fatal(err)
	}
	p1.Close()
	logs.waitFor(t, "lost", 1)

	p2 := <-peers
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	rest, err := io.ReadAll(p2)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want[:12]) || string(rest) != string(want[7:]) {
		t.Fatalf("first connection got %q, second %q; want %q then %q", got, rest, want[:12], want[7:])
	}
}

func TestTCP_Backpressure(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	s, _ := startSink(t, TCPConfig{Addr: ln.Addr().String(), QueueBytes: 64 << 10}, func(s *TCP) {
		dial := s.dial
		s.dial = func(ctx context.Context) (net.Conn, error) {
			c, err := dial(ctx)
			if err == nil {
				c.(*net.TCPConn).SetWriteBuffer(16 << 10) // fill up sooner
			}
			return c, err
		}
	})
	c := accept(t, ln) // and do not read yet
	c.(*net.TCPConn).SetReadBuffer(16 << 10)

	// Write until a Write cannot finish: the queue is full because the
	// socket is.
	var want bytes.Buffer
	i := 0
	for ; ; i++ {
		if want.Len() > 64<<20 {
			t.Fatal("64 MiB queued without Write blocking")
		}
		p := record(i)
		ctx, cancel := context.WithTimeout(context.Background(), blockedAfter)
		err := s.Write(ctx, p)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want.Write(p)
	}
	t.Logf("Write blocked after %d bytes", want.Len())

	// Reading again drains it; nothing is lost.
	received := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(c)
		received <- got
	}()
	ctx := ctxLimit(t)
	for j := i; j < i+1000; j++ {
		p := record(j)
		want.Write(p)
		if err := s.Write(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-received:
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("received %d bytes, want %d (or different bytes)", len(got), want.Len())
		}
	case <-time.After(waitLimit):
		t.Fatal("receiver did not finish")
	}
}

func TestTCP_StartContextEnds(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	logger, _ := newLogger(t)
	s := NewTCP(TCPConfig{Addr: ln.Addr().String()}, logger)
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	c := accept(t, ln)
	if err := s.WaitConnected(ctxLimit(t)); err != nil {
		t.Fatal(err)
	}
	cancel()
	readAll(t, c) // the sink closes its connection
	waitDone(t, s)
	if err := s.Write(ctxLimit(t), []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write after the sink stopped: %v", err)
	}
	if err := s.Flush(ctxLimit(t)); err != nil {
		t.Fatalf("Flush with nothing queued: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTCP_StoppedWithUnwrittenBytes(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nobody listens: the bytes stay queued
	logger, _ := newLogger(t)
	s := NewTCP(TCPConfig{Addr: addr, RetryMin: time.Millisecond}, logger)
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	if err := s.Write(ctxLimit(t), []byte("stuck")); err != nil {
		t.Fatal(err)
	}
	cancel()
	waitDone(t, s)
	if err := s.WaitConnected(ctxLimit(t)); err == nil {
		t.Fatal("WaitConnected succeeded without a connection")
	}
	if err := s.Flush(ctxLimit(t)); err == nil || !strings.Contains(err.Error(), "5 bytes not written") {
		t.Fatalf("Flush after the sink stopped: %v", err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close with unwritten bytes succeeded")
	}
}

func waitDone(t testing.TB, s *TCP) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(waitLimit):
		t.Fatal("writer goroutine did not stop")
	}
}

func TestTCP_CloseBeforeStart(t *testing.T) {
	s := NewTCP(TCPConfig{Addr: "127.0.0.1:1"}, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = NewTCP(TCPConfig{Addr: "127.0.0.1:1"}, nil)
	if err := s.Write(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "1 bytes unwritten") {
		t.Fatalf("Close before Start with data: %v", err)
	}
}

// kernelConn stands for a socket whose kernel accepts every write at
// once (as a send buffer with room does) and whose peer the test kills.
type kernelConn struct {
	net.Conn // nil: only the methods below are used
	mu       sync.Mutex
	got      bytes.Buffer
	writes   []int // size of each Write call
	dead     chan struct{}
	once     sync.Once
}

func newKernelConn() *kernelConn { return &kernelConn{dead: make(chan struct{})} }

func (c *kernelConn) Write(p []byte) (int, error) {
	select {
	case <-c.dead:
		return 0, syscall.EPIPE
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got.Write(p)
	c.writes = append(c.writes, len(p))
	return len(p), nil
}

func (c *kernelConn) Read([]byte) (int, error) {
	<-c.dead
	return 0, syscall.ECONNRESET
}

func (c *kernelConn) kill()                            { c.once.Do(func() { close(c.dead) }) }
func (c *kernelConn) Close() error                     { c.kill(); return nil }
func (c *kernelConn) SetWriteDeadline(time.Time) error { return nil }
func (c *kernelConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *kernelConn) accepted() int                    { c.mu.Lock(); defer c.mu.Unlock(); return c.got.Len() }
func (c *kernelConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.got.Bytes())
}

// The kernel accepted everything for a connection whose peer had
// acknowledged only part of it when the connection was reset: the next
// connection starts again at the start of the chunk holding the first
// unacknowledged byte, a chunk boundary, and sends everything after it;
// nothing before that boundary is sent twice.
func TestTCP_ResendsWhatThePeerDidNotAcknowledge(t *testing.T) {
	first, second := newKernelConn(), newKernelConn()
	conns := make(chan *kernelConn, 2)
	conns <- first
	conns <- second
	want := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	const acked = 12 // in the middle of the second chunk
	queried := make(chan struct{}, 100)
	s, logs := startSink(t, TCPConfig{Addr: "kernel"}, func(s *TCP) {
		s.dial = func(ctx context.Context) (net.Conn, error) {
			select {
			case c := <-conns:
				return c, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		s.unacked = func(conn net.Conn) (int, bool) {
			c := conn.(*kernelConn)
			select {
			case <-c.dead:
				return 0, false // reset: the kernel no longer knows
			default:
			}
			if c == first && c.accepted() == len(want) {
				queried <- struct{}{}
			}
			return max(c.accepted()-acked, 0), true
		}
	})
	ctx := ctxLimit(t)
	for _, chunk := range [][]byte{want[:7], want[7:20], want[20:]} {
		if err := s.Write(ctx, chunk); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-queried: // the sink knows the peer acknowledged 12 bytes
	case <-time.After(waitLimit):
		t.Fatal("the sink never asked how much the peer acknowledged after writing everything")
	}
	first.kill()
	logs.waitFor(t, "lost", 1)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for second.accepted() < len(want)-7 {
		if time.Now().After(deadline) {
			t.Fatalf("second connection got %q", second.bytes())
		}
		time.Sleep(time.Millisecond)
	}
	if got := string(first.bytes()); got != string(want) {
		t.Fatalf("first connection got %q, want %q", got, want)
	}
	if got := string(second.bytes()); got != string(want[7:]) {
		t.Fatalf("second connection got %q, want %q: from the chunk holding the first unacknowledged byte", got, want[7:])
	}
}

// No write call hands the kernel more than MaxWrite bytes, however large
// the chunk, and the bytes still arrive whole and in order.
func TestTCP_CapsEachWrite(t *testing.T) {
	conn := newKernelConn()
	s, _ := startSink(t, TCPConfig{Addr: "kernel"}, func(s *TCP) {
		s.dial = func(context.Context) (net.Conn, error) { return conn, nil }
	})
	ctx := ctxLimit(t)
	big := bytes.Repeat([]byte("0123456789"), 30000) // 300 kB in one chunk
	if err := s.Write(ctx, big); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := conn.bytes(); !bytes.Equal(got, append(bytes.Clone(big), "tail"...)) {
		t.Fatalf("got %d bytes, not the stream", len(got))
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	for i, n := range conn.writes {
		if n > DefaultMaxWrite {
			t.Fatalf("write %d handed %d bytes to the kernel, cap %d", i, n, DefaultMaxWrite)
		}
	}
}
