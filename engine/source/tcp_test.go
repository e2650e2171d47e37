package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait in these tests; reaching it is a failure.
// It is generous so that a loaded machine does not reach it.
const waitLimit = 30 * time.Second

// blockedAfter is how long a write must wait, unfinished, to count as
// blocked by backpressure. A write that waits this long proves the reader
// stopped (a scheduling delay, even on a loaded machine, is far shorter);
// a short deadline could also expire on a reader that is merely slow, and
// the test would pass without proving anything.
const blockedAfter = 5 * time.Second

// logLines is a log destination that tests can wait on.
type logLines struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every write
}

func newLogLines() *logLines { return &logLines{changed: make(chan struct{})} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// count returns how many lines contain sub, and a channel closed on the
// next write.
func (l *logLines) count(sub string) (int, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n, l.changed
}

// waitFor waits until n lines contain sub.
func (l *logLines) waitFor(t testing.TB, sub string, n int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		got, changed := l.count(sub)
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("waited for %d log lines with %q, got %d in:\n%s", n, sub, got, strings.Join(l.lines, "\n"))
		}
	}
}

// chanConsumer hands every batch to a channel. With a gate, Deliver first
// waits for the gate to open (backpressure).
type chanConsumer struct {
	batches chan Batch
	gate    chan struct{} // nil: no gate
	entered chan struct{} // receives a value each time Deliver is called, if not nil
}

func (c *chanConsumer) Deliver(ctx context.Context, b Batch) error {
	if c.entered != nil {
		select {
		case c.entered <- struct{}{}:
		default:
		}
	}
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case c.batches <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// harness runs one TCP source on a free loopback port.
type harness struct {
	src     *TCP
	addr    string
	logs    *logLines
	cons    *chanConsumer
	cancel  context.CancelFunc // ends Serve's stop and drain contexts
	serveCh chan error
}

func startTCP(t *testing.T, cfg TCPConfig, cons *chanConsumer) *harness {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "Split and Count"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.HeaderLen == 0 {
		fr := be32(t)
		cfg.HeaderLen, cfg.Length = fr.HeaderLen, fr.Length
	}
	if cons == nil {
		cons = &chanConsumer{batches: make(chan Batch, 1024)}
	}
	logs := newLogLines()
	logger := log.New(io.MultiWriter(logs, testWriter{t}), "", 0)
	src, err := NewTCP(cfg, cons, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Bind(); err != nil {
		t.Fatal(err)
	}
	if err := src.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{src: src, addr: src.Addr().String(), logs: logs, cons: cons, cancel: cancel, serveCh: make(chan error, 1)}
	go func() { h.serveCh <- src.Serve(ctx, ctx) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

// stop cancels Serve and waits for it to return.
func (h *harness) stop(t testing.TB) {
	t.Helper()
	h.cancel()
	select {
	case err, ok := <-h.serveCh:
		if ok && err != nil {
			t.Errorf("Serve: %v", err)
		}
		if ok {
			close(h.serveCh)
		}
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return after cancel")
	}
}

// testWriter sends log lines to t.Log so failures show them.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// receive collects n frames from the consumer, failing after waitLimit.
func (h *harness) receive(t testing.TB, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(waitLimit)
	for len(got) < n {
		select {
		case b := <-h.cons.batches:
			if b.Source != h.src.cfg.Index {
				t.Fatalf("batch from source %d, want %d", b.Source, h.src.cfg.Index)
			}
			if b.Len() > h.src.cfg.MaxBatch {
				t.Fatalf("batch of %d frames, max %d", b.Len(), h.src.cfg.MaxBatch)
			}
			got = append(got, frames(t, b)...)
		case <-deadline:
			t.Fatalf("received %d of %d frames", len(got), n)
		}
	}
	return got
}

// dial connects to the harness and closes the connection at cleanup.
func (h *harness) dial(t testing.TB) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func mustWrite(t testing.TB, c net.Conn, p []byte) {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
}

// waitEOF waits until the server closes c. A reset counts: the server
// may close with bytes it did not read.
func waitEOF(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	n, err := io.Copy(io.Discard, c)
	if n != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("waiting for the server to close: read %d bytes, %v", n, err)
	}
}

func payloads(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d-%s", prefix, i, strings.Repeat("p", i%37))
	}
	return out
}

func TestTCP_ManyFrames(t *testing.T) {
	h := startTCP(t, TCPConfig{Index: 3, MaxBatch: 7}, nil)
	h.logs.waitFor(t, "Split and Count source is listening on "+h.addr, 1)
	c := h.dial(t)
	want := payloads("m", 5000)
	mustWrite(t, c, frame32(want...))
	got := h.receive(t, len(want))
	if !slices.Equal(got, want) {
		t.Fatalf("frames differ: got %d, first %q", len(got), got[:3])
	}
	h.logs.waitFor(t, "Split and Count source accepted a connection from "+c.LocalAddr().String(), 1)

	// A clean end at a frame boundary is not a "closed:" complaint.
	c.CloseWrite()
	waitEOF(t, c)
	h.stop(t)
	if n, _ := h.logs.count("closed:"); n != 0 {
		t.Fatalf("clean EOF logged as a closed connection")
	}
}

func TestTCP_FramesSplitAcrossReadsAndWrites(t *testing.T) {
	// A 3-byte read buffer cuts every frame; writes of uneven sizes cut
	// them differently again.
	h := startTCP(t, TCPConfig{ReadBuffer: 3}, nil)
	c := h.dial(t)
	c.SetNoDelay(true)
	want := append(payloads("s", 200), "", "", "last")
	stream := frame32(want...)
	for i, step := 0, 1; i < len(stream); step = step%11 + 1 {
		k := min(step, len(stream)-i)
		mustWrite(t, c, stream[i:i+k])
		i += k
	}
	if got := h.receive(t, len(want)); !slices.Equal(got, want) {
		t.Fatalf("frames differ")
	}
}

func TestTCP_ConcurrentConnections(t *testing.T) {
	h := startTCP(t, TCPConfig{}, nil)
	const conns, each = 8, 2000
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		c := h.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := frame32(payloads(fmt.Sprintf("c%d", i), each)...)
			for len(stream) > 0 { // many small writes interleave connections
				k := min(1000, len(stream))
				if _, err := c.Write(stream[:k]); err != nil {
					t.Error(err)
					return
				}
				stream = stream[k:]
			}
		}()
	}
	got := h.receive(t, conns*each)
	wg.Wait()
	perConn := make(map[string][]string)
	for _, f := range got {
		id, _, _ := strings.Cut(f, "-")
		perConn[id] = append(perConn[id], f)
	}
	for i := 0; i < conns; i++ {
		id := fmt.Sprintf("c%d", i)
		if !slices.Equal(perConn[id], payloads(id, each)) {
			t.Fatalf("connection %s: %d frames, out of order or damaged", id, len(perConn[id]))
		}
	}
}

func TestTCP_MaxConns(t *testing.T) {
	h := startTCP(t, TCPConfig{}, nil) // default: 10 connections
	var served []*net.TCPConn
	for i := 0; i < DefaultMaxConns; i++ {
		c := h.dial(t)
		mustWrite(t, c, frame32(fmt.Sprintf("hello %d", i)))
		served = append(served, c)
	}
	h.receive(t, DefaultMaxConns)
	h.logs.waitFor(t, "accepted a connection", DefaultMaxConns)

	// The 11th connection completes in the kernel backlog but is not
	// accepted: its frame is not delivered while the others still are.
	extra := h.dial(t)
	mustWrite(t, extra, frame32("eleventh"))
	for i, c := range served {
		mustWrite(t, c, frame32(fmt.Sprintf("again %d", i)))
	}
	for _, f := range h.receive(t, DefaultMaxConns) {
		if f == "eleventh" {
			t.Fatal("the 11th connection was served while 10 were open")
		}
	}
	if n, _ := h.logs.count("accepted a connection"); n != DefaultMaxConns {
		t.Fatalf("%d connections accepted, want %d", n, DefaultMaxConns)
	}

	// Closing one lets the 11th in.
	served[0].Close()
	if got := h.receive(t, 1); got[0] != "eleventh" {
		t.Fatalf("got %q, want the 11th connection's frame", got)
	}
	h.logs.waitFor(t, "accepted a connection", DefaultMaxConns+1)
}

func TestTCP_BadFrameClosesOnlyThatConnection(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		reason string
	}{
		{"oversize", append(frame32("fine"), 0, 0, 1, 1, 'x'), "closed: frame of 257 bytes exceeds the limit of 256 bytes"},
		{"truncated payload", append(frame32("fine"), 0, 0, 0, 9, 'a', 'b', 'c'), "closed: truncated frame: got 3 of 9 payload bytes"},
		{"truncated header", append(frame32("fine"), 0, 0), "closed: truncated frame: got 2 of 4 header bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startTCP(t, TCPConfig{MaxPayload: 256}, nil)
			good, bad := h.dial(t), h.dial(t)
			mustWrite(t, good, frame32("before"))
			mustWrite(t, bad, tt.stream)
			bad.CloseWrite() // for the truncated cases: the peer ends mid-frame
			if got := h.receive(t, 2); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"before", "fine"}) {
				t.Fatalf("got %q", got)
			}
			h.logs.waitFor(t, "Split and Count source: connection from "+bad.LocalAddr().String()+" "+tt.reason, 1)
			waitEOF(t, bad)

			mustWrite(t, good, frame32("after"))
			if got := h.receive(t, 1); got[0] != "after" {
				t.Fatalf("got %q", got)
			}
			// The listener still accepts.
			c := h.dial(t)
			mustWrite(t, c, frame32("new"))
			if got := h.receive(t, 1); got[0] != "new" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestTCP_Backpressure(t *testing.T) {
	gate := make(chan struct{})
	cons := &chanConsumer{batches: make(chan Batch, 1<<16), gate: gate, entered: make(chan struct{}, 1)}
	h := startTCP(t, TCPConfig{ReadBuffer: 4096}, cons)
	c := h.dial(t)
	c.SetWriteBuffer(16 << 10)

	// Write until a write cannot finish: the source stopped reading while
	// its first Deliver is blocked.
	want := payloads("b", 1<<17)
	stream := frame32(want...)
	sent := 0
	for {
		k := min(64<<10, len(stream)-sent)
		if k == 0 {
			t.Fatal("all frames went through although Deliver was blocked")
		}
		c.SetWriteDeadline(time.Now().Add(blockedAfter))
		n, err := c.Write(stream[sent : sent+k])
		sent += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-cons.entered:
	case <-time.After(waitLimit):
		t.Fatal("Deliver never called")
	}
	if len(cons.batches) != 0 {
		t.Fatal("a batch got past the blocked Deliver")
	}
	t.Logf("writes blocked after %d of %d bytes", sent, len(stream))

	// Unblock: everything arrives, in order, nothing lost.
	close(gate)
	c.SetWriteDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(stream[sent:])
		errc <- err
	}()
	if got := h.receive(t, len(want)); !slices.Equal(got, want) {
		t.Fatal("frames lost or reordered after backpressure")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestTCP_CancelShutsDown(t *testing.T) {
	gate := make(chan struct{}) // never opened: a connection stays in Deliver
	cons := &chanConsumer{batches: make(chan Batch, 16), gate: gate, entered: make(chan struct{}, 1)}
	h := startTCP(t, TCPConfig{}, cons)
	blocked, idle := h.dial(t), h.dial(t)
	mustWrite(t, blocked, frame32("stuck"))
	mustWrite(t, idle, frame32("partial")[:6]) // mid-frame
	select {
	case <-cons.entered:
	case <-time.After(waitLimit):
		t.Fatal("Deliver never called")
	}
	h.logs.waitFor(t, "accepted a connection", 2)

	h.stop(t) // fails unless Serve returns
	waitEOF(t, blocked)
	waitEOF(t, idle)
	if c, err := net.Dial("tcp", h.addr); err == nil {
		c.Close()
		t.Fatal("listener still accepting after shutdown")
	}
	if n, _ := h.logs.count("closed:"); n != 0 {
		t.Fatal("shutdown logged connection failures")
	}
	// Stop and drain ended together: the blocked batch is dropped, and
	// the log says so.
	h.logs.waitFor(t, "dropping what was read from", 1)
}

func TestTCP_ListenFailure(t *testing.T) {
	h := startTCP(t, TCPConfig{}, nil)
	cfg := TCPConfig{Name: "Alphabet", Addr: h.addr, HeaderLen: 4, Length: h.src.cfg.Length}
	src, err := NewTCP(cfg, h.cons, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Bind()
	want := "Alphabet source is unable to listen on " + h.addr + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Listen on a taken port: %v, want prefix %q", err, want)
	}
	if err := src.Serve(context.Background(), context.Background()); err == nil {
		t.Fatal("Serve without a listener succeeded")
	}
}

func TestNewTCP_Validates(t *testing.T) {
	cons := &chanConsumer{}
	length := func([]byte) (int, error) { return 0, nil }
	for _, cfg := range []TCPConfig{
		{Name: "x", HeaderLen: 0, Length: length},
		{Name: "x", HeaderLen: 4},
		{Name: "x", HeaderLen: 4, Length: length, MaxConns: -1},
		{Name: "x", HeaderLen: 4, Length: length, MaxPayload: 1 << 31},
	} {
		if _, err := NewTCP(cfg, cons, nil); err == nil {
			t.Errorf("NewTCP(%+v) accepted", cfg)
		}
	}
	if _, err := NewTCP(TCPConfig{Name: "x", HeaderLen: 4, Length: length}, nil, nil); err == nil {
		t.Error("NewTCP without a consumer accepted")
	}
}

// pipeListener is a net.Listener whose connections are net.Pipe ends the
// test hands over: a Write to the other end returns only once the source
// has read all of it, so the test knows what sits in the source's buffer.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// pipeSource serves a source on a pipeListener with separate stop and
// drain contexts and returns the client end of one connection.
type pipeSource struct {
	logs    *logLines
	stop    context.CancelFunc
	drain   context.CancelFunc
	serveCh chan error
	client  net.Conn
}

func startPipeSource(t *testing.T, cons Consumer) *pipeSource {
	t.Helper()
	fr := be32(t)
	logs := newLogLines()
	src, err := NewTCP(TCPConfig{Name: "Drain", HeaderLen: fr.HeaderLen, Length: fr.Length, MaxBatch: 1},
		cons, log.New(io.MultiWriter(logs, testWriter{t}), "", 0))
	if err != nil {
		t.Fatal(err)
	}
	ln := newPipeListener()
	src.ln = ln
	stopCtx, stop := context.WithCancel(context.Background())
	drainCtx, drain := context.WithCancel(context.Background())
	ps := &pipeSource{logs: logs, stop: stop, drain: drain, serveCh: make(chan error, 1)}
	go func() { ps.serveCh <- src.Serve(stopCtx, drainCtx) }()
	client, server := net.Pipe()
	ln.conns <- server
	ps.client = client
	t.Cleanup(func() {
		stop()
		drain()
		client.Close()
		select {
		case <-ps.serveCh:
		case <-time.After(waitLimit):
			t.Error("Serve did not return")
		}
	})
	return ps
}

func (ps *pipeSource) served(t *testing.T) {
	t.Helper()
	select {
	case err := <-ps.serveCh:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
		ps.serveCh <- nil // for the cleanup
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return")
	}
}

// writeAll writes p and returns once the source has read all of it.
func (ps *pipeSource) writeAll(t *testing.T, p []byte) {
	t.Helper()
	ps.client.SetWriteDeadline(time.Now().Add(waitLimit))
	if _, err := ps.client.Write(p); err != nil {
		t.Fatal(err)
	}
}

// stopped waits until the source has stopped reading: a write to its
// connection fails because Serve closed it.
func (ps *pipeSource) stopped(t *testing.T) {
	t.Helper()
	ps.client.SetWriteDeadline(time.Now().Add(waitLimit))
	if _, err := ps.client.Write(frame32("after the stop")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after the stop: %v, want io.ErrClosedPipe (the source closed its socket)", err)
	}
}

// A stop stops reading but delivers, with the drain context, everything
// already read: the batch blocked in Deliver and the frames behind it in
// the read buffer. Only the partial frame at the end is dropped, logged.
func TestTCP_StopDeliversWhatWasRead(t *testing.T) {
	gate := make(chan struct{})
	cons := &chanConsumer{batches: make(chan Batch, 16), gate: gate, entered: make(chan struct{}, 1)}
	ps := startPipeSource(t, cons)
	ps.writeAll(t, append(frame32("a", "b", "c"), frame32("partial")[:6]...))
	select {
	case <-cons.entered: // "a" is blocked in Deliver; "b", "c" are in the buffer
	case <-time.After(waitLimit):
		t.Fatal("Deliver never called")
	}
	ps.stop()
	ps.stopped(t)
	close(gate) // the consumer takes batches again after the stop
	ps.served(t)
	close(cons.batches)
	var got []string
	for b := range cons.batches {
		got = append(got, frames(t, b)...)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q after the stop, want %q", got, want)
	}
	ps.logs.waitFor(t, "Drain source: stopped reading from pipe inside a frame (truncated frame: got 2 of 7 payload bytes)", 1)
	if n, _ := ps.logs.count("dropping"); n != 0 {
		t.Fatal("frames reported dropped although the drain context was alive")
	}
}

// When the drain context ends too, what is left is dropped and counted.
func TestTCP_DrainEndDropsAndCounts(t *testing.T) {
	cons := &chanConsumer{batches: make(chan Batch, 16), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	ps := startPipeSource(t, cons)
	ps.writeAll(t, frame32("a", "b", "c"))
	select {
	case <-cons.entered:
	case <-time.After(waitLimit):
		t.Fatal("Deliver never called")
	}
	ps.stop()
	ps.stopped(t)
	ps.drain()
	ps.served(t)
	if len(cons.batches) != 0 {
		t.Fatal("a batch was delivered through a closed gate")
	}
	ps.logs.waitFor(t, "Drain source: shutdown deadline passed; dropping what was read from pipe and not delivered: 1 frames (1 payload bytes) and 10 bytes not yet framed", 1)
}

func TestNewTCP_ConfigErrorsAreErrConfig(t *testing.T) {
	_, err := NewTCP(TCPConfig{Name: "Words", HeaderLen: 0}, &chanConsumer{}, nil)
	if !errors.Is(err, ErrConfig) || err.Error() != "Words source: invalid source configuration: header length 0, want at least 1" {
		t.Fatalf("NewTCP = %v, want ErrConfig naming the source", err)
	}
}

func TestTCP_CloseFreesThePortWithoutServe(t *testing.T) {
	fr := be32(t)
	src, err := NewTCP(TCPConfig{Name: "Unserved", Addr: "127.0.0.1:0", HeaderLen: fr.HeaderLen, Length: fr.Length}, &chanConsumer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close before Listen = %v", err)
	}
	if err := src.Bind(); err != nil {
		t.Fatal(err)
	}
	addr := src.Addr().String()
	if err := src.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still taken after Close: %v", err)
	}
	ln.Close()
}
