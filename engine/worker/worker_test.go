package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/source"
	"github.com/wallaroo-go/machida/engine/work"
)

// upper is a Go processor: every frame comes out upper-cased with a
// newline, on every sink; the frame "fail" is an error.
type upper struct {
	mu        sync.Mutex
	calls     int
	generated int // messages made by Generate; it stops at genLimit
}

const genLimit = 1000

func (u *upper) SetOwnership(work.Ownership) error { return nil }

func (u *upper) Generate(src int, max int, o *work.Output) (bool, error) {
	out := o.Sinks
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := 0; i < max && u.generated < genLimit; i++ {
		u.generated++
		for s := range out {
			out[s] = append(out[s], fmt.Sprintf("G%d:%d\n", src, u.generated)...)
		}
	}
	return u.generated >= genLimit, nil
}

func (u *upper) Process(items []work.Item, o *work.Output) error {
	out := o.Sinks
	u.mu.Lock()
	u.calls++
	u.mu.Unlock()
	for _, it := range items {
		b := it.Batch
		for i := 0; i < b.Len(); i++ {
			f := b.Frame(i)
			if string(f) == "fail" {
				return errors.New("processor failed on purpose")
			}
			for s := range out {
				out[s] = append(out[s], bytes.ToUpper(f)...)
				out[s] = append(out[s], '\n')
			}
		}
	}
	return nil
}

func frame(s string) []byte {
	b := make([]byte, 4+len(s))
	binary.BigEndian.PutUint32(b, uint32(len(s)))
	copy(b[4:], s)
	return b
}

// freeAddr returns a loopback address nobody listens on now, from ports
// 10000-19999: below the kernel's ephemeral range, from which a port
// released here could be taken by another test's outgoing connection
// before the worker under test binds it (and below the 20000 up that
// tests/e2e hands out). A port is handed out once per test process.
func freeAddr(t *testing.T) string {
	t.Helper()
	freeAddrs.Lock()
	defer freeAddrs.Unlock()
	for range 2000 {
		port := 10000 + rand.IntN(10000)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if freeAddrs.given[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken: another
		}
		l.Close()
		freeAddrs.given[addr] = true
		return addr
	}
	t.Fatal("no free port between 10000 and 19999")
	return ""
}

var freeAddrs = struct {
	sync.Mutex
	given map[string]bool
}{given: map[string]bool{}}

func length4(h []byte) (int, error) { return int(binary.BigEndian.Uint32(h)), nil }

// collector accepts one sink connection and keeps what it reads.
type collector struct {
	l      net.Listener
	mu     sync.Mutex
	buf    bytes.Buffer
	lines  int           // newlines in buf
	paused chan struct{} // while open, the collector does not read
}

func newCollector(t *testing.T, paused bool) *collector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{l: l, paused: make(chan struct{})}
	if !paused {
		close(c.paused)
	}
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		<-c.paused
		b := make([]byte, 4096)
		for {
			n, err := conn.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			c.lines += bytes.Count(b[:n], []byte{'\n'})
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { l.Close() })
	return c
}

func (c *collector) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *collector) lineCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

// waitFor waits (up to 60 s) until the collector has read lines lines.
func (c *collector) waitFor(t *testing.T, lines int) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c.lineCount() >= lines {
			return c.text()
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("collector has %d lines, want %d", c.lineCount(), lines)
	return ""
}

// fillUntilBlocked writes msg to conn over and over, at most max times,
// until a write cannot finish within blockedAfter: every buffer between
// the writer and a peer that stopped reading is full. That is the only
// thing that makes a write wait that long (a scheduling delay under load
// is far shorter, and a slow but moving pipeline frees space well within
// it); a pipeline that buffers without bound never blocks and sends all
// max messages, which the caller reports. It returns how many whole
// messages were written and, when blocked, what the blocked write left of
// its message (all of it if it wrote nothing), to be written once the
// peer reads again. The write deadline is cleared afterwards.
func fillUntilBlocked(t *testing.T, conn net.Conn, msg []byte, max int) (sent int, rest []byte, blocked bool) {
	t.Helper()
	defer conn.SetWriteDeadline(time.Time{})
	for sent < max {
		conn.SetWriteDeadline(time.Now().Add(blockedAfter))
		n, err := conn.Write(msg)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return sent, msg[n:], true
		}
		if err != nil {
			t.Fatalf("write after %d messages: %v", sent, err)
		}
		sent++
	}
	return sent, nil, false
}

// blockedAfter is how long a write must wait for fillUntilBlocked to
// take it as blocked by backpressure.
const blockedAfter = 5 * time.Second

type running struct {
	cancel context.CancelFunc
	done   chan error
}

func startWorker(t *testing.T, cfg Config) *running {
	t.Helper()
	ready := make(chan struct{})
	cfg.OnReady = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("worker not ready")
	}
	t.Cleanup(cancel)
	return r
}

func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

func TestRun_TwoSourcesTwoSinks(t *testing.T) {
	a, b := freeAddr(t), freeAddr(t)
	s1, s2 := newCollector(t, false), newCollector(t, false)
	var console bytes.Buffer
	r := startWorker(t, Config{
		Sources: []SourceConfig{
			{Name: "A", Addr: a, HeaderLen: 4, Length: length4},
			{Name: "B", Addr: b, HeaderLen: 4, Length: length4},
		},
		Sinks:     []SinkConfig{{Name: "one", Addr: s1.l.Addr().String()}, {Name: "two", Addr: s2.l.Addr().String()}},
		Processor: &upper{},
		Console:   &console,
	})
	for _, addr := range []string{a, b} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(append(frame("x-"+addr[len(addr)-2:]), frame("y")...))
		c.Close()
	}
	for _, s := range []*collector{s1, s2} {
		got := s.waitFor(t, 4)
		if strings.Count(got, "Y\n") != 2 || strings.Count(got, "X-") != 2 {
			t.Errorf("sink got %q", got)
		}
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v after cancel, want nil", err)
	}
	for _, want := range []string{"INIT PHASE III: Application is ready to work!", "Application has successfully initialized"} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, console.String())
		}
	}
}

func TestRun_BackpressureReachesTheSenderAndLosesNothing(t *testing.T) {
	in := freeAddr(t)
	out := newCollector(t, true) // does not read until released
	startWorker(t, Config{
		Sources:      []SourceConfig{{Name: "S", Addr: in, HeaderLen: 4, Length: length4}},
		Sinks:        []SinkConfig{{Name: "slow", Addr: out.l.Addr().String()}},
		Processor:    &upper{},
		QueueBatches: 2,
	})
	conn, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const total = 100000 // 100 MB: far more than every buffer on the way
	msg := frame(strings.Repeat("m", 1000))
	// The writer must block (a write waits blockedAfter without finishing)
	// long before the end: the sink's stall reaches the sender.
	sent, rest, blocked := fillUntilBlocked(t, conn, msg, total)
	if !blocked {
		t.Fatalf("sent all %d messages into a sink that does not read", total)
	}
	t.Logf("the sender blocked after %d of %d messages", sent, total)
	// Once the sink reads again the writer resumes and nothing is lost.
	close(out.paused)
	wrote := make(chan error, 1)
	go func() {
		if _, err := conn.Write(rest); err != nil {
			wrote <- err
			return
		}
		for i := sent + 1; i < total; i++ {
			if _, err := conn.Write(msg); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("writer still blocked 60 s after the sink resumed")
	}
	got := out.waitFor(t, total)
	if n := strings.Count(got, strings.Repeat("M", 1000)+"\n"); n != total {
		t.Errorf("sink got %d messages, sent %d", n, total)
	}
}

func TestRun_ProcessorErrorStopsAndKeepsEarlierOutput(t *testing.T) {
	in := freeAddr(t)
	out := newCollector(t, false)
	r := startWorker(t, Config{
		Sources:   []SourceConfig{{Name: "S", Addr: in, HeaderLen: 4, Length: length4}},
		Sinks:     []SinkConfig{{Name: "o", Addr: out.l.Addr().String()}},
		Processor: &upper{},
	})
	conn, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(frame("before"))
	out.waitFor(t, 1)
	conn.Write(frame("fail"))
	select {
	case err := <-r.done:
		if err == nil || !strings.Contains(err.Error(), "failed on purpose") {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop on a processor error")
	}
	if out.text() != "BEFORE\n" {
		t.Errorf("sink = %q", out.text())
	}
}

func TestRun_ListenErrorIsReported(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := newCollector(t, false)
	err = Run(context.Background(), Config{
		Sources:   []SourceConfig{{Name: "Taken", Addr: l.Addr().String(), HeaderLen: 4, Length: length4}},
		Sinks:     []SinkConfig{{Name: "o", Addr: out.l.Addr().String()}},
		Processor: &upper{},
	})
	if !errors.Is(err, ErrListen) || !strings.Contains(err.Error(), "Taken") {
		t.Errorf("Run = %v, want ErrListen naming the source", err)
	}
}

func TestRun_GeneratorSourceRunsUntilItStops(t *testing.T) {
	in := freeAddr(t)
	out := newCollector(t, false)
	var console syncBuffer
	r := startWorker(t, Config{
		Sources:   []SourceConfig{{Name: "Gen", Generator: true}, {Name: "S", Addr: in, HeaderLen: 4, Length: length4}},
		Sinks:     []SinkConfig{{Name: "o", Addr: out.l.Addr().String()}},
		Processor: &upper{},
		Console:   &console,
	})
	got := out.waitFor(t, genLimit)
	if !strings.HasPrefix(got, "G0:1\nG0:2\n") || !strings.HasSuffix(got, fmt.Sprintf("G0:%d\n", genLimit)) {
		t.Errorf("sink got %q...", got[:min(40, len(got))])
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(console.String(), "GenSource produced a None. Stopping GenSource.") {
		if time.Now().After(deadline) {
			t.Fatalf("console: %s", console.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The worker keeps running after its generator stopped (other sources
	// may exist): the TCP source is still served, and Run has not
	// returned when it is cancelled.
	conn, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(frame("after the generator")); err != nil {
		t.Fatal(err)
	}
	if got := out.waitFor(t, genLimit+1); !strings.HasSuffix(got, "AFTER THE GENERATOR\n") {
		t.Errorf("sink ends with %q, want the TCP source's message", got[max(0, len(got)-40):])
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run returned %v after its generator stopped, before it was cancelled", err)
	default:
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A stop must not hang on a sink that does not read, nor on queued work:
// what is not done within ShutdownTimeout is dropped. The sink never
// reads, so the stop cannot finish its work: Run returns (well within a
// generous bound) only because the shutdown deadline passed, which the
// log says, along with the output it dropped.
func TestRun_StopIsBoundedWithAStuckSink(t *testing.T) {
	in := freeAddr(t)
	out := newCollector(t, true) // never reads
	var logs syncBuffer
	r := startWorker(t, Config{
		Sources:         []SourceConfig{{Name: "S", Addr: in, HeaderLen: 4, Length: length4}},
		Sinks:           []SinkConfig{{Name: "stuck", Addr: out.l.Addr().String()}},
		Processor:       &upper{},
		ShutdownTimeout: 300 * time.Millisecond,
		Log:             slog.New(slog.NewTextHandler(&logs, nil)),
	})
	conn, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Fill every buffer on the way: the sink's socket, its queue, the
	// work queue and the source's socket.
	msg := frame(strings.Repeat("m", 10000))
	if _, _, blocked := fillUntilBlocked(t, conn, msg, 100000); !blocked {
		t.Fatal("1 GB went into a sink that does not read")
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60 s of the cancel with a 300ms shutdown timeout and a stuck sink")
	}
	for _, want := range []string{
		"shutdown: not finished in time; dropping what is left",
		"output not delivered at shutdown",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// A listen failure of a later source frees the ports of the sources bound
// before it, and the error keeps its cause (errors.Is sees through it).
func TestRun_ListenErrorFreesEarlierListeners(t *testing.T) {
	a := freeAddr(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	out := newCollector(t, false)
	err = Run(context.Background(), Config{
		Sources: []SourceConfig{
			{Name: "First", Addr: a, HeaderLen: 4, Length: length4},
			{Name: "Second", Addr: taken.Addr().String(), HeaderLen: 4, Length: length4},
		},
		Sinks:     []SinkConfig{{Name: "o", Addr: out.l.Addr().String()}},
		Processor: &upper{},
	})
	if !errors.Is(err, ErrListen) || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "Second") {
		t.Fatalf("Run = %v, want ErrListen wrapping EADDRINUSE, naming the second source", err)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("the first source's port is still taken after Run failed: %v", err)
	}
	l.Close()
}

func TestRun_ExternalListenErrorWrapsItsCause(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = Run(context.Background(), Config{External: taken.Addr().String(), Processor: &upper{}})
	if !errors.Is(err, ErrListen) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Run = %v, want ErrListen wrapping EADDRINUSE", err)
	}
}

// A source configuration the engine cannot use is not a listen error.
func TestRun_SourceConfigErrorIsNotAListenError(t *testing.T) {
	a := freeAddr(t)
	out := newCollector(t, false)
	err := Run(context.Background(), Config{
		Sources: []SourceConfig{
			{Name: "Good", Addr: a, HeaderLen: 4, Length: length4},
			{Name: "Headless", Addr: freeAddr(t), HeaderLen: 0, Length: length4},
		},
		Sinks:     []SinkConfig{{Name: "o", Addr: out.l.Addr().String()}},
		Processor: &upper{},
	})
	if !errors.Is(err, source.ErrConfig) || errors.Is(err, ErrListen) || !strings.Contains(err.Error(), "Headless") {
		t.Fatalf("Run = %v, want source.ErrConfig (not ErrListen) naming the source", err)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("the first source's port is still taken after Run failed: %v", err)
	}
	l.Close()
}

func TestInitializerSinks(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := Config{Sinks: []SinkConfig{{Addr: "mine:1"}, {Name: "kept", Addr: "same:2"}}}
	if err := initializerSinks(&cfg, nil, log); err != nil || cfg.Sinks[0].Addr != "mine:1" {
		t.Fatalf("no topology sinks (one worker): %v %+v", err, cfg.Sinks)
	}
	if err := initializerSinks(&cfg, []string{"theirs:1", "same:2"}, log); err != nil {
		t.Fatal(err)
	}
	if cfg.Sinks[0].Addr != "theirs:1" || cfg.Sinks[1] != (SinkConfig{Name: "kept", Addr: "same:2"}) {
		t.Errorf("sinks %+v, want the initializer's addresses", cfg.Sinks)
	}
	if !strings.Contains(logs.String(), "initializer=theirs:1") || strings.Count(logs.String(), "differs") != 1 {
		t.Errorf("log:\n%s", logs.String())
	}
	err := initializerSinks(&cfg, []string{"theirs:1"}, log)
	if err == nil || !strings.Contains(err.Error(), "the initializer's application has 1 sink(s) (theirs:1), this worker's 2") {
		t.Errorf("a different number of sinks: %v", err)
	}
}
