package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

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

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// instance is a data_receiver running in the test process.
type instance struct {
	addr           string
	stdout, stderr *syncBuffer
	done           chan int
	cancel         context.CancelFunc
}

// start runs the receiver with args plus "--listen 127.0.0.1:0" and waits
// for its "Listening on" line.
func start(t *testing.T, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1), cancel: cancel}
	args = append([]string{"--listen", "127.0.0.1:0"}, args...)
	go func() { in.done <- runContext(ctx, args, in.stdout, in.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(10 * time.Second):
			t.Error("receiver did not stop")
		}
	})
	const prefix = "Listening on "
	waitFor(t, "Listening on", func() bool {
		for _, s := range []string{in.stdout.String(), in.stderr.String()} {
			if rest, ok := strings.CutPrefix(s, prefix); ok && strings.Contains(rest, "\n") {
				in.addr, _, _ = strings.Cut(rest, "\n")
				return true
			}
		}
		return false
	})
	return in
}

// exit waits for the receiver to exit by itself and returns its status.
func (in *instance) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-in.done:
		in.done <- code // let Cleanup see it too
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("receiver did not exit; stderr %q", in.stderr.String())
		return 0
	}
}

// stop cancels the receiver as a signal would and returns its status.
func (in *instance) stop(t *testing.T) int {
	t.Helper()
	in.cancel()
	return in.exit(t)
}

// dial connects to the receiver.
func (in *instance) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", in.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send writes each part as a separate write and closes the connection.
func (in *instance) send(t *testing.T, parts ...[]byte) {
	t.Helper()
	c := in.dial(t)
	for _, p := range parts {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func frame(payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// split cuts b into pieces of at most n bytes.
func split(b []byte, n int) [][]byte {
	var parts [][]byte
	for len(b) > n {
		parts = append(parts, b[:n])
		b = b[n:]
	}
	return append(parts, b)
}

func TestReceive_StreamingToStdout(t *testing.T) {
	in := start(t, "--expect", "3")
	in.send(t, []byte("a\nb"), []byte("b\nc"), []byte("\n"))
	if code := in.exit(t); code != 0 {
		t.Fatalf("exit %d: %s", code, in.stderr.String())
	}
	if got, want := in.stdout.String(), "a\nbb\nc\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if !strings.HasPrefix(in.stderr.String(), "Listening on 127.0.0.1:") {
		t.Errorf("stderr %q lacks the Listening line", in.stderr.String())
	}
}

func TestReceive_StreamingBinaryUnchanged(t *testing.T) {
	data := []byte("\x00\x01\xff\r\n\n\x00x\n")
	in := start(t, "--expect", "3")
	in.send(t, split(data, 3)...)
	if code := in.exit(t); code != 0 {
		t.Fatalf("exit %d: %s", code, in.stderr.String())
	}
	if got := in.stdout.String(); got != string(data) {
		t.Errorf("stdout %q, want %q", got, data)
	}
}

func TestReceive_FramedToFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.txt")
	in := start(t, "--framed", "--output", out, "--expect", "3")
	// One byte per write: frames and headers arrive cut everywhere.
	in.send(t, split(frame("x", "", "hello world"), 1)...)
	if code := in.exit(t); code != 0 {
		t.Fatalf("exit %d: %s", code, in.stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "x\n\nhello world\n"; string(got) != want {
		t.Errorf("output %q, want %q", got, want)
	}
	if want := "Listening on " + in.addr + "\n"; in.stdout.String() != want {
		t.Errorf("stdout %q, want %q", in.stdout.String(), want)
	}
	if in.stderr.String() != "" {
		t.Errorf("stderr %q, want nothing", in.stderr.String())
	}
}

func TestReceive_ExpectStopsAtExactlyN(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		data []byte
		want string
	}{
		{"streaming", nil, []byte("1\n2\n3\n4"), "1\n2\n"},
		{"framed", []string{"-f"}, frame("1", "2", "3"), "1\n2\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := start(t, append(tt.args, "--expect", "2")...)
			c := in.dial(t)
			if _, err := c.Write(tt.data); err != nil {
				t.Fatal(err)
			}
			if code := in.exit(t); code != 0 {
				t.Fatalf("exit %d: %s", code, in.stderr.String())
			}
			if got := in.stdout.String(); got != tt.want {
				t.Errorf("stdout %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReceive_ConcurrentConnections sends many lines (or frames) over many
// connections at once, in writes that cut lines at odd places, and checks
// that every line arrives whole and in per-connection order.
func TestReceive_ConcurrentConnections(t *testing.T) {
	const conns, lines = 8, 300
	for _, framed := range []bool{false, true} {
		t.Run(fmt.Sprintf("framed=%v", framed), func(t *testing.T) {
			args := []string{"--expect", strconv.Itoa(conns * lines)}
			if framed {
				args = append(args, "--framed")
			}
			in := start(t, args...)
			var wg sync.WaitGroup
			for c := range conns {
				var data []byte
				for l := range lines {
					msg := fmt.Sprintf("conn %d line %d %s", c, l, strings.Repeat("x", l%37))
					if framed {
						data = append(data, frame(msg)...)
					} else {
						data = append(data, msg+"\n"...)
					}
				}
				conn := in.dial(t)
				wg.Go(func() {
					for _, p := range split(data, 7+c) {
						if _, err := conn.Write(p); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if code := in.exit(t); code != 0 {
				t.Fatalf("exit %d: %s", code, in.stderr.String())
			}
			next := make([]int, conns)
			got := strings.Split(strings.TrimSuffix(in.stdout.String(), "\n"), "\n")
			if len(got) != conns*lines {
				t.Fatalf("%d lines, want %d", len(got), conns*lines)
			}
			for _, line := range got {
				var c, l int
				var xs string
				n, _ := fmt.Sscanf(line, "conn %d line %d %s", &c, &l, &xs)
				if n < 2 || c < 0 || c >= conns || l != next[c] || xs != strings.Repeat("x", l%37) {
					t.Fatalf("mangled or out-of-order line %q", line)
				}
				next[c]++
			}
		})
	}
}

func TestReceive_PartialLineWrittenAtClose(t *testing.T) {
	in := start(t)
	in.send(t, []byte("whole\npart"), []byte("ial"))
	waitFor(t, "the partial line", func() bool { return in.stdout.String() == "whole\npartial" })
	if code := in.stop(t); code != 0 {
		t.Errorf("exit %d: %s", code, in.stderr.String())
	}
}

func TestReceive_PartialLineWrittenAtShutdown(t *testing.T) {
	in := start(t)
	c := in.dial(t)
	if _, err := c.Write([]byte("done\npending")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the whole line", func() bool { return in.stdout.String() == "done\n" })
	if code := in.stop(t); code != 0 {
		t.Errorf("exit %d: %s", code, in.stderr.String())
	}
	if got := in.stdout.String(); got != "done\npending" {
		t.Errorf("stdout %q, want %q", got, "done\npending")
	}
}

func TestReceive_FlushesWhileRunning(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.txt")
	in := start(t, "-o", out)
	c := in.dial(t)
	if _, err := c.Write([]byte("tail me\n")); err != nil {
		t.Fatal(err)
	}
	// The receiver keeps running; the line must reach the file anyway.
	waitFor(t, "data in the output file", func() bool {
		b, _ := os.ReadFile(out)
		return string(b) == "tail me\n"
	})
}

func TestReceive_TruncatedFrameReported(t *testing.T) {
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"payload", append(frame("ok"), 0, 0, 0, 10, 'a', 'b', 'c'), "closed inside a frame: 3 of 10 payload bytes received"},
		{"header", append(frame("ok"), 0, 0), "closed inside a frame header: 2 of 4 header bytes received"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := start(t, "--framed")
			in.send(t, tt.data)
			waitFor(t, "the truncation report", func() bool { return strings.Contains(in.stderr.String(), tt.want) })
			if !strings.Contains(in.stderr.String(), "data_receiver: connection from 127.0.0.1:") {
				t.Errorf("report does not name the connection: %q", in.stderr.String())
			}
			waitFor(t, "the complete frame", func() bool { return in.stdout.String() == "ok\n" })
		})
	}
}

func TestReceive_NoWriteStillCounts(t *testing.T) {
	in := start(t, "--no-write", "--expect", "2", "--ponythreads", "1", "--ponynoblock")
	in.send(t, []byte("a\nb\n"))
	if code := in.exit(t); code != 0 {
		t.Fatalf("exit %d: %s", code, in.stderr.String())
	}
	if want := "Listening on " + in.addr + "\n"; in.stdout.String() != want {
		t.Errorf("stdout %q, want only %q", in.stdout.String(), want)
	}
}

func TestReceive_Timeout(t *testing.T) {
	in := start(t, "--expect", "5", "--timeout", "300ms")
	in.send(t, []byte("a\nb\n"))
	if code := in.exit(t); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(in.stderr.String(), "error: timeout after 300ms: received ") ||
		!strings.HasSuffix(in.stderr.String(), " of 5 messages\n") {
		t.Errorf("stderr %q lacks the timeout error", in.stderr.String())
	}
}

func TestReceive_Errors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", nil, "error: --listen is required"},
		{"bad address", []string{"-l", "nowhere"}, "error: --listen must be host:port"},
		{"unknown flag", []string{"-l", "127.0.0.1:0", "--bogus"}, "error: unknown flag: --bogus"},
		{"positional", []string{"-l", "127.0.0.1:0", "x"}, `error: unexpected argument "x"`},
		{"no-write and output", []string{"-l", "127.0.0.1:0", "-n", "-o", "f"}, "can't be used together"},
		{"zero expect", []string{"-l", "127.0.0.1:0", "--expect", "0"}, "--expect must be greater than 0"},
		{"bad expect", []string{"-l", "127.0.0.1:0", "--expect", "many"}, `invalid number "many"`},
		{"timeout without expect", []string{"-l", "127.0.0.1:0", "--timeout", "1s"}, "--timeout requires --expect"},
		{"bad timeout", []string{"-l", "127.0.0.1:0", "--expect", "1", "--timeout", "soon"}, "error: invalid argument"},
		{"address in use", []string{"-l", busy.Addr().String(), "-n"}, "error: listen on " + busy.Addr().String() + ": "},
		{"output in missing directory", []string{"-l", "127.0.0.1:0", "-o", filepath.Join(t.TempDir(), "no", "f")}, "error: create --output: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.want) || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr %q: want one line containing %q", stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestReceive_Help(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{arg}, &stdout, &stderr)
		if code != 0 || !strings.HasPrefix(stdout.String(), "Usage: data_receiver --listen H:P") || stderr.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, stdout.String(), stderr.String())
		}
	}
}
