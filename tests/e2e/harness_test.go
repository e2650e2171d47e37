package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/childproc"
)

var binDir string

// hostBinary is the binary the suite runs applications with: machida3, or
// machida (Python 2.7) when WALLAROO_HOST says so.
var hostBinary = "machida3"

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

// runSuite runs the tests and returns the exit status. It is TestMain's
// body without os.Exit, so that its deferred clean-up (the temporary bin
// directory) runs.
func runSuite(m *testing.M) int {
	binDir = os.Getenv("WALLAROO_BIN")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "e2e-bin-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		root := repoRoot()
		for _, pkg := range []string{"./machida3", "./cmd/sender", "./cmd/data_receiver", "./cmd/metrics_ui"} {
			cmd := exec.Command("go", "build", "-o", dir+"/", pkg)
			cmd.Dir = root
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: building %s failed: %v (build with `make build` and set WALLAROO_BIN)\n", pkg, err)
				return 1
			}
		}
		binDir = dir
	}
	if h := os.Getenv("WALLAROO_HOST"); h != "" {
		hostBinary = h
	}
	index, count, err := parsePortSlice(os.Getenv("E2E_PORT_SLICE"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	// Where the Python 2.7 binary was built too, the whole suite runs
	// again with it, in a child process of this test binary, at the same
	// time as this run (the suite mostly waits on workers: two runs take
	// little more than one). Each run takes ports from its own half of
	// this process's slice; the child's output is printed once it ends.
	var rerun *exec.Cmd
	var rerunOut bytes.Buffer
	if os.Getenv("WALLAROO_HOST") == "" {
		if _, err := os.Stat(bin("machida")); err == nil {
			child := fmt.Sprintf("%d/%d", 2*index+1, 2*count)
			if _, _, err := parsePortSlice(child); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: E2E_PORT_SLICE=%d/%d cannot be halved for the machida run: %v\n", index, count, err)
				return 2
			}
			rerun = exec.Command(os.Args[0], rerunArgs(os.Args[1:])...)
			rerun.Env = append(os.Environ(), "WALLAROO_HOST=machida", "WALLAROO_BIN="+binDir, "E2E_PORT_SLICE="+child)
			rerun.Stdout, rerun.Stderr = &rerunOut, &rerunOut
			// It dies with this process (a panic, a go test timeout)
			// rather than run on unseen, holding its slice of ports
			// (childproc).
			if err := childproc.Start(rerun); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: the suite could not run again with machida: %v\n", err)
				return 1
			}
			index, count = 2*index, 2*count
		}
	}
	portSlice.index, portSlice.count = index, count
	code := m.Run()
	if rerun != nil {
		err := rerun.Wait()
		fmt.Fprintln(os.Stderr, "e2e: the suite ran again with machida (Python 2.7), at the same time; its output:")
		os.Stdout.Write(rerunOut.Bytes())
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: the suite failed with machida: %v\n", err)
			code = 1
		}
	} else if os.Getenv("WALLAROO_HOST") == "" {
		fmt.Fprintln(os.Stderr, "e2e: "+noMachidaRerun())
	}
	return code
}

// rerunArgs is the test binary's arguments for the machida run: the
// parent's, but those naming files both runs would write at once
// (profiles, traces, go test's log) left out.
func rerunArgs(args []string) []string {
	files := []string{"-test.coverprofile", "-test.cpuprofile", "-test.memprofile", "-test.blockprofile",
		"-test.mutexprofile", "-test.trace", "-test.testlogfile", "-test.outputdir", "-test.gocoverdir"}
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(a, "=")
		name = "-" + strings.TrimLeft(name, "-")
		if slices.Contains(files, name) {
			if !hasValue {
				i++ // its value is the next argument
			}
			continue
		}
		out = append(out, a)
	}
	return out
}

// portSlice is the part of the test ports (see firstTestPort) this test
// process takes its ports from: slice index of count equal slices. Suites
// that run at once (the machida run beside the machida3 one, the Python
// minors of build/test-pythons) are given disjoint slices, so that one
// never probes a port another has handed out and not yet bound.
var portSlice = struct{ index, count int }{0, 1}

// parsePortSlice reads E2E_PORT_SLICE, "i/n" (0 <= i < n): slice i of n;
// empty, the whole range.
func parsePortSlice(s string) (index, count int, err error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n || portsBelowEphemeral/n < 500 {
		return 0, 0, fmt.Errorf("E2E_PORT_SLICE=%q: want i/n, slice i (from 0) of n, with at least 500 ports a slice (n <= %d)",
			s, portsBelowEphemeral/500)
	}
	return i, n, nil
}

// noMachidaRerun says why the suite did not run again with machida.
func noMachidaRerun() string {
	how := "build it with `make machida` (needs Python 2.7 and its embedding library) and run with WALLAROO_BIN=<repo>/bin"
	if os.Getenv("WALLAROO_BIN") == "" {
		how = "WALLAROO_BIN is not set, so only machida3 was built (into a temporary directory); " + how
	}
	return fmt.Sprintf("NOT re-running the suite with machida (Python 2.7): %s does not exist; %s", bin("machida"), how)
}

// TestSuite_RunsAgainWithMachida reports, in the test output, whether
// TestMain runs the whole suite a second time with the Python 2.7 binary
// (beside this run):
// a missing bin/machida skips that run, and this test says so.
func TestSuite_RunsAgainWithMachida(t *testing.T) {
	if py2() {
		t.Skip("this is the machida (Python 2.7) run of the suite")
	}
	if _, err := os.Stat(bin("machida")); err != nil {
		t.Skip(noMachidaRerun())
	}
	t.Logf("TestMain runs the suite again with %s, at the same time as this run", bin("machida"))
}

// py2 reports whether the suite runs the Python 2.7 binary.
func py2() bool { return hostBinary == "machida" }

// bytesRepr is repr() of a byte string on the host's Python.
func bytesRepr(s string) string {
	if py2() {
		return "'" + s + "'"
	}
	return "b'" + s + "'"
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func bin(name string) string { return filepath.Join(binDir, name) }

// sharedData returns the path of a Wallaroo data file in ../shared/data,
// skipping the test when the checkout has no shared/ beside it.
func sharedData(t *testing.T, name string) string {
	p := filepath.Join(repoRoot(), "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not available: %v", p, err)
	}
	return p
}

// handedOut remembers the ports freePort returned to tests that have not
// ended (a test's cleanups stop its workers before the one that gives its
// ports back runs), and where to look next: a port comes again only once
// the cursor has gone round the slice, and only if nothing is bound to it
// then (the probe).
var handedOut = struct {
	sync.Mutex
	ports map[string]bool
	next  int // offset of the next port to try
}{ports: map[string]bool{}}

// freePort returns a loopback address nobody listens on right now and
// that no test still running was given, from this process's portSlice.
func freePort(t *testing.T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	size := portsBelowEphemeral / portSlice.count
	base := firstTestPort + portSlice.index*size
	for tries := 0; tries < size; tries++ {
		if handedOut.next == 0 {
			// A random place to start, so that two test processes on
			// the machine given the same slice seldom probe the same
			// ports.
			handedOut.next = rand.IntN(size)
		}
		port := base + handedOut.next%size
		handedOut.next++
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if handedOut.ports[addr] {
			continue
		}
		// Probed without SO_REUSEADDR, as a worker binds its sources: a
		// port with connections of an earlier test still in TIME_WAIT is
		// passed over.
		l, err := listenWithSockopt(addr, syscall.SO_REUSEADDR, 0)
		if err != nil {
			continue // taken: the next one
		}
		l.Close()
		handedOut.ports[addr] = true
		t.Cleanup(func() {
			handedOut.Lock()
			delete(handedOut.ports, addr)
			handedOut.Unlock()
		})
		return addr
	}
	t.Fatalf("no free port between %d and %d (E2E_PORT_SLICE %d/%d)", base, base+size-1, portSlice.index, portSlice.count)
	return ""
}

// listenWithSockopt listens on addr with the socket option opt
// (SOL_SOCKET level) set to value before the bind.
func listenWithSockopt(addr string, opt, value int) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, value)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}

// Ports for workers' listeners come from below Linux's ephemeral range
// (32768 and up by default), probed by binding them, as Wallaroo's harness
// allocated its own from 20000: a port picked from the ephemeral range
// can be taken, between the probe and the worker's bind, by one of the
// many outgoing connections a cluster test makes.
const (
	firstTestPort       = 20000
	portsBelowEphemeral = 12000
)

// syncBuf is a goroutine-safe output capture.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a started process with captured output.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout syncBuf
	stderr syncBuf
	done   chan struct{}
	err    error
}

// start runs a binary in dir (the example or testdata directory).
func start(t *testing.T, dir string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	if name == "machida3" {
		name = hostBinary
	}
	p.cmd = exec.Command(bin(name), args...)
	p.cmd.Dir = dir
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	t.Logf("run (in %s): %s %s", dir, name, strings.Join(args, " "))
	if err := childproc.Start(p.cmd); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.stdout.String(), name, p.stderr.String())
		}
	})
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits for exit and returns the exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("process did not exit within %v\nstdout:\n%s\nstderr:\n%s", timeout, p.stdout.String(), p.stderr.String())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatalf("wait: %v", p.err)
	return -1
}

// waitOutput polls until stdout or stderr contains s.
func (p *proc) waitOutput(s string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.stdout.String(), s) || strings.Contains(p.stderr.String(), s) {
			return
		}
		select {
		case <-p.done:
			if strings.Contains(p.stdout.String(), s) || strings.Contains(p.stderr.String(), s) {
				return
			}
			p.t.Fatalf("process exited (%v) before printing %q\nstdout:\n%s\nstderr:\n%s", p.err, s, p.stdout.String(), p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.t.Fatalf("no %q within %v\nstdout:\n%s\nstderr:\n%s", s, timeout, p.stdout.String(), p.stderr.String())
}

// sink is an in-test TCP listener collecting everything written to it,
// each connection's bytes apart (the workers of a cluster write to one
// sink at once: their streams must not interleave mid-line).
type sink struct {
	l      net.Listener
	mu     sync.Mutex
	data   []*bytes.Buffer // per connection, in the order they were accepted
	conns  int             // connections accepted
	closed int             // accepted connections the peer has closed
}

func newSink(t *testing.T) *sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			data := &bytes.Buffer{}
			s.data = append(s.data, data)
			s.mu.Unlock()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					s.mu.Lock()
					data.Write(buf[:n])
					s.mu.Unlock()
					if err != nil {
						c.Close()
						s.mu.Lock()
						s.closed++
						s.mu.Unlock()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return s
}

func (s *sink) addr() string { return s.l.Addr().String() }

// connections returns how many connections were accepted and how many of
// them the peer has closed since.
func (s *sink) connections() (accepted, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.closed
}

// waitClosed waits until every accepted connection has been closed by the
// peer (after the worker exited: everything it wrote has been read) and
// returns the number of connections accepted.
func (s *sink) waitClosed(t *testing.T, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		accepted, closed := s.connections()
		if accepted == closed {
			return accepted
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink %s: %d of %d connections still open after %v", s.addr(), accepted-closed, accepted, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bytes returns what every connection sent, one connection after the
// other in the order they were accepted.
func (s *sink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []byte
	for _, d := range s.data {
		out = append(out, d.Bytes()...)
	}
	return out
}

// lines returns the newline-terminated lines every connection sent (a
// connection's unfinished last line is left out).
func (s *sink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.data {
		ls := strings.Split(d.String(), "\n")
		out = append(out, ls[:len(ls)-1]...)
	}
	return out
}

// waitLines waits until the sink received at least n newline-terminated lines.
func (s *sink) waitLines(t *testing.T, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := s.lines()
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink got %d lines, want %d, within %v", len(lines), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFrames waits for at least n u32-BE-framed messages.
func (s *sink) waitFrames(t *testing.T, n int, timeout time.Duration) [][]byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		frames := splitFrames(s.bytes())
		if len(frames) >= n {
			return frames
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink got %d frames, want %d, within %v", len(frames), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func splitFrames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		if len(b) < 4+n {
			break
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

// frame returns payload with a u32 big-endian length header.
func frame(payload []byte) []byte {
	out := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(out, uint32(len(payload)))
	copy(out[4:], payload)
	return out
}

// dial connects to a source, retrying briefly.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// machida starts machida3 with the standard single-worker flags.
func machida(t *testing.T, dir, module, in, out string, extra ...string) *proc {
	t.Helper()
	args := []string{"--application-module", module}
	if in != "" {
		args = append(args, "--in", in)
	}
	if out != "" {
		args = append(args, "--out", out)
	}
	args = append(args, "--metrics", freePort(t), "--control", freePort(t), "--data", freePort(t),
		"--name", "worker-name", "--external", freePort(t), "--cluster-initializer",
		"--ponythreads=1", "--ponynoblock")
	args = append(args, extra...)
	return start(t, dir, "machida3", args...)
}

func testdataDir() string { return filepath.Join(repoRoot(), "tests", "e2e", "testdata") }

func exampleDir(name string) string {
	return filepath.Join(repoRoot(), "examples", "python", name)
}

// readLines returns the non-empty lines of a text file.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

var _ = io.EOF

// The machida run gets the parent's flags but those naming files both
// runs would write at once; E2E_PORT_SLICE is read or refused whole.
func TestHarness_RerunFlagsAndPortSlices(t *testing.T) {
	got := rerunArgs([]string{"-test.v=true", "-test.testlogfile=/tmp/x", "-test.timeout=40m0s",
		"-test.cpuprofile", "cpu.out", "--test.trace=t.out", "-test.run=TestA"})
	want := []string{"-test.v=true", "-test.timeout=40m0s", "-test.run=TestA"}
	if !slices.Equal(got, want) {
		t.Errorf("rerunArgs = %q, want %q", got, want)
	}
	for s, want := range map[string][2]int{"": {0, 1}, "1/2": {1, 2}, "5/6": {5, 6}} {
		i, n, err := parsePortSlice(s)
		if err != nil || i != want[0] || n != want[1] {
			t.Errorf("parsePortSlice(%q) = %d, %d, %v; want %d/%d", s, i, n, err, want[0], want[1])
		}
	}
	for _, s := range []string{"2/2", "-1/3", "1", "a/b", "0/0", "0/100"} {
		if _, _, err := parsePortSlice(s); err == nil {
			t.Errorf("parsePortSlice(%q) accepted", s)
		}
	}
}
