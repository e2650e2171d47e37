package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// frame returns payload with a big-endian uint32 length header.
func frame(payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// u64rec returns a --u64 record uint32(8+len(p)) · uint64(v) · p.
func u64rec(v uint64, p string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(p)))
	b = binary.BigEndian.AppendUint64(b, v)
	return append(b, p...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// capture listens on a free loopback port. The channel yields everything
// the first accepted connection sent, once it is closed.
func capture(t *testing.T) (string, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(conn)
		got <- b
	}()
	return ln.Addr().String(), got
}

// received waits for what capture collected.
func received(t *testing.T, got <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-got:
		return b
	case <-time.After(30 * time.Second):
		t.Fatal("listener received nothing within 30s")
		return nil
	}
}

// runSender runs the command and returns its exit status and output.
func runSender(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// freePort returns a loopback address on which nothing listens.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestSend_WireBytes(t *testing.T) {
	sixes := "AAAAAABBBBBBCCCCCC"
	variable := string(cat(frame("one"), frame(""), frame("three")))
	files := map[string]string{
		"a.txt":     "alpha\n\nbeta\r\n\ngamma", // empty lines skipped, CRLF, no final newline
		"b.txt":     "bee\n",
		"six.bin":   sixes,
		"var.bin":   variable,
		"empty.txt": "",
	}
	tests := []struct {
		name string
		args []string
		want []byte
	}{
		{"decimal default", []string{"-m", "3"}, frame("1", "2", "3")},
		{"decimal start-from", []string{"-m", "2", "--start-from", "41"}, frame("42", "43")},
		{"decimal zero messages", []string{"-m", "0"}, nil},
		{"decimal binary is unframed", []string{"-m", "3", "-y", "-g", "1"}, []byte("123")},
		{"text file stops at end", []string{"-m", "100", "-f", "{dir}/a.txt"}, frame("alpha", "beta", "gamma")},
		{"text file message limit", []string{"-m", "2", "-f", "{dir}/a.txt"}, frame("alpha", "beta")},
		{"files in order, repeated name", []string{"-m", "100", "-f", "{dir}/a.txt,{dir}/b.txt,{dir}/a.txt"},
			frame("alpha", "beta", "gamma", "bee", "alpha", "beta", "gamma")},
		{"repeat cycles files", []string{"-m", "5", "-r", "-f", "{dir}/b.txt,{dir}/a.txt"},
			frame("bee", "alpha", "beta", "gamma", "bee")},
		{"empty file", []string{"-m", "5", "-f", "{dir}/empty.txt"}, nil},
		{"binary msg-size verbatim", []string{"-m", "10", "-y", "-g", "6", "-f", "{dir}/six.bin"}, []byte(sixes)},
		{"binary msg-size limit", []string{"-m", "2", "-y", "-g", "6", "-f", "{dir}/six.bin"}, []byte(sixes[:12])},
		{"binary msg-size repeat", []string{"-m", "4", "-r", "-y", "-g", "6", "-f", "{dir}/six.bin"}, []byte(sixes + sixes[:6])},
		{"binary variable-size verbatim, zero-length skipped", []string{"-m", "10", "-y", "-z", "-f", "{dir}/var.bin"}, frame("one", "three")},
		{"binary variable-size repeat", []string{"-m", "3", "-r", "-y", "-z", "-f", "{dir}/var.bin"}, frame("one", "three", "one")},
		{"u64 binary", []string{"-m", "2", "-u", "-y", "-g", "12", "-v", "5"}, cat(u64rec(6, ""), u64rec(7, ""))},
		{"u64 partition", []string{"-m", "2", "-u", "-y", "-g", "12", "-p", "ab"}, cat(u64rec(1, "ab"), u64rec(2, "ab"))},
		{"u64 without binary is framed twice", []string{"-m", "1", "-u"}, frame(string(u64rec(1, "")))},
		{"small batches with interval", []string{"-m", "5", "-s", "2", "-i", "1_000_000"}, frame("1", "2", "3", "4", "5")},
		{"vary-by", []string{"-m", "50", "-s", "1", "-j", "7"}, frame(seq(1, 50)...)},
		{"batch larger than count", []string{"-m", "3", "-s", "1000"}, frame("1", "2", "3")},
		{"pony flags ignored", []string{"--ponythreads", "4", "-m", "2", "--ponynoblock", "--ponythreads=1", "--ponypinasio"}, frame("1", "2")},
	}
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, got := capture(t)
			args := []string{"--host", addr, "--no-write", "--interval", "0"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "{dir}", dir))
			}
			code, stdout, stderr := runSender(args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stdout != "Connected\n" {
				t.Errorf("stdout = %q, want %q", stdout, "Connected\n")
			}
			if b := received(t, got); !bytes.Equal(b, tt.want) {
				t.Errorf("wire bytes\n got %q\nwant %q", b, tt.want)
			}
		})
	}
}

// seq returns the decimal strings from..to.
func seq(from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

func TestSend_LargeCountMatchesMessages(t *testing.T) {
	const n = 200_000
	addr, got := capture(t)
	code, _, stderr := runSender("-h", addr, "-m", strconv.Itoa(n), "-i", "0", "-w")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b := received(t, got)
	count := 0
	for len(b) > 0 {
		l := int(binary.BigEndian.Uint32(b))
		count++
		if got, want := string(b[4:4+l]), strconv.Itoa(count); got != want {
			t.Fatalf("message %d = %q, want %q", count, got, want)
		}
		b = b[4+l:]
	}
	if count != n {
		t.Errorf("received %d messages, want %d", count, n)
	}
}

func TestSend_SentTxt(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("sent.txt", []byte("stale content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("in.txt", []byte("x\n\ny z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, got := capture(t)
	before := time.Now().UnixNano()
	code, _, stderr := runSender("-h", addr, "-m", "5", "-r", "-f", "in.txt", "-s", "2", "-i", "0")
	after := time.Now().UnixNano()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	received(t, got)
	data, err := os.ReadFile("sent.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	want := []string{"x", "y z", "x", "y z", "x"}
	if len(lines) != len(want) {
		t.Fatalf("sent.txt has %d lines, want %d:\n%s", len(lines), len(want), data)
	}
	for i, l := range lines {
		ts, msg, ok := strings.Cut(l, ", ")
		if !ok || msg != want[i] {
			t.Errorf("line %d = %q, want \"<ns>, %s\"", i, l, want[i])
			continue
		}
		ns, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || ns < before || ns > after {
			t.Errorf("line %d timestamp %q not a wall-clock ns between %d and %d", i, ts, before, after)
		}
	}
}

func TestSend_SentTxtBinaryLogsRecord(t *testing.T) {
	t.Chdir(t.TempDir())
	addr, got := capture(t)
	if code, _, stderr := runSender("-h", addr, "-m", "1", "-u", "-y", "-g", "12"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	received(t, got)
	data, err := os.ReadFile("sent.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, msg, _ := bytes.Cut(data, []byte(", "))
	if want := append(u64rec(1, ""), '\n'); !bytes.Equal(msg, want) {
		t.Errorf("logged %q, want %q", msg, want)
	}
}

func TestSend_NoWriteLeavesSentTxtAlone(t *testing.T) {
	t.Chdir(t.TempDir())
	addr, got := capture(t)
	if code, _, stderr := runSender("-h", addr, "-m", "1", "--no-write"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	received(t, got)
	if _, err := os.Stat("sent.txt"); !os.IsNotExist(err) {
		t.Errorf("sent.txt exists with --no-write (stat: %v)", err)
	}
}

func TestSend_IntervalPacesBatches(t *testing.T) {
	addr, got := capture(t)
	start := time.Now()
	code, _, stderr := runSender("-h", addr, "-m", "5", "-s", "1", "-i", "20ms", "-w")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if el := time.Since(start); el < 80*time.Millisecond {
		t.Errorf("5 batches at 20ms took %s, want at least 80ms", el)
	}
	if b := received(t, got); !bytes.Equal(b, frame(seq(1, 5)...)) {
		t.Errorf("got %q", b)
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

func TestSend_BlocksOnBackpressureUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // never read: the sender's writes must block
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"-h", ln.Addr().String(), "-m", "100_000_000", "-i", "0", "-w"}, &stdout, &stderr)
	}()
	waitFor(t, "Connected", func() bool { return stdout.String() == "Connected\n" })
	conn := <-accepted
	defer conn.Close()
	select {
	case code := <-done:
		t.Fatalf("sender finished (exit %d) although the peer never read: %s", code, stderr.String())
	default:
	}
	cancel()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "error: interrupted after sending ") {
			t.Errorf("exit %d, stderr %q; want 1 and an interrupted error", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sender did not stop after cancel")
	}
}

func TestSend_Errors(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "odd.bin")
	trunc := filepath.Join(dir, "trunc.bin")
	empty := filepath.Join(dir, "empty.txt")
	for name, content := range map[string]string{odd: "12345", trunc: "\x00\x00\x00\x09abc", empty: ""} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing.txt")
	refused := freePort(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", nil, "error: --host is required"},
		{"missing messages", []string{"-h", "127.0.0.1:1"}, "error: --messages is required"},
		{"host without port", []string{"-h", "localhost", "-m", "1"}, "error: --host must be host:port"},
		{"bad messages", []string{"-h", "127.0.0.1:1", "-m", "ten"}, `invalid number "ten"`},
		{"negative messages", []string{"-h", "127.0.0.1:1", "-m", "-5"}, "error: "},
		{"bad interval", []string{"-h", "127.0.0.1:1", "-m", "1", "-i", "soon"}, `invalid interval "soon"`},
		{"zero batch size", []string{"-h", "127.0.0.1:1", "-m", "1", "-s", "0"}, "error: --batch-size must be greater than 0"},
		{"unknown flag", []string{"-h", "127.0.0.1:1", "-m", "1", "--bogus"}, "error: unknown flag: --bogus"},
		{"positional argument", []string{"-h", "127.0.0.1:1", "-m", "1", "extra"}, `error: unexpected argument "extra"`},
		{"binary without size", []string{"-h", "127.0.0.1:1", "-m", "1", "-y"}, "error: --binary requires either --msg-size or --variable-size"},
		{"msg-size and variable-size", []string{"-h", "127.0.0.1:1", "-m", "1", "-y", "-g", "4", "-z"}, "can't be used together"},
		{"zero msg-size", []string{"-h", "127.0.0.1:1", "-m", "1", "-y", "-g", "0"}, "--msg-size must be greater than 0"},
		{"u64 with file", []string{"-h", "127.0.0.1:1", "-m", "1", "-u", "-f", empty}, "can't be used with --file"},
		{"empty file name", []string{"-h", "127.0.0.1:1", "-m", "1", "-f", empty + ","}, "empty file name"},
		{"missing file", []string{"-h", "127.0.0.1:1", "-m", "1", "-f", missing}, "error: read --file: open " + missing},
		{"chunked file not a multiple", []string{"-h", "127.0.0.1:1", "-m", "1", "-y", "-g", "2", "-f", odd}, fmt.Sprintf("error: file %q: size 5 is not a multiple of --msg-size 2", odd)},
		{"truncated framed file", []string{"-h", "127.0.0.1:1", "-m", "1", "-y", "-z", "-f", trunc}, "record at offset 0 needs 9 bytes, only 3 left"},
		{"repeat with no messages", []string{"-h", "127.0.0.1:1", "-m", "1", "-r", "-f", empty}, "error: --repeat: the files contain no messages"},
		{"unable to connect", []string{"-h", refused, "-m", "1"}, "error: Unable to connect to " + refused + ": "},
	}
	t.Chdir(dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runSender(tt.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.want)
			}
			if strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestSend_Help(t *testing.T) {
	code, stdout, stderr := runSender("--help")
	if code != 0 || !strings.HasPrefix(stdout, "Usage: sender --host H:P --messages N") || stderr != "" {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// -h is --host, so a lone -h is a missing value, not help.
	if code, _, stderr := runSender("-h"); code != 1 || !strings.Contains(stderr, "flag needs an argument") {
		t.Errorf("-h: exit %d, stderr %q", code, stderr)
	}
}

func TestSend_WarnsAboutDoubleFraming(t *testing.T) {
	addr, got := capture(t)
	code, _, stderr := runSender("-h", addr, "-m", "1", "-u", "-w")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	received(t, got)
	if !strings.Contains(stderr, "warning: --u64 without --binary adds a second length header") {
		t.Errorf("stderr %q lacks the double-framing warning", stderr)
	}
}
