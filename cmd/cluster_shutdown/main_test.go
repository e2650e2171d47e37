package main

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeWorker listens on a free loopback port; the channel yields every
// byte the first connection sent, once the client closed it.
func fakeWorker(t *testing.T) (string, <-chan []byte) {
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

func runTool(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRun_SendsCleanShutdown(t *testing.T) {
	for _, extra := range [][]string{nil, {"--ponythreads", "1", "--ponynoblock", "--ponypinasio"}} {
		addr, got := fakeWorker(t)
		code, stdout, stderr := runTool(append(extra, addr)...)
		if code != 0 || stdout != "" || stderr != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		select {
		case b := <-got:
			if want := []byte{0, 0, 0, 2, 0, 3}; !bytes.Equal(b, want) {
				t.Fatalf("sent % x, want % x", b, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("fake worker received nothing within 30s")
		}
	}
}

// A worker that answers a plain CleanShutdown (one started with a cluster
// secret sends its challenge first; one running TLS, an alert) did not
// take it: the tool fails and says to give it the worker's options.
func TestRun_AnAnswerMeansTheRequestWasRefused(t *testing.T) {
	addr := serveOnce(t, func(c net.Conn) {
		c.Write([]byte("wlauth1\n challenge"))
		io.Copy(io.Discard, c)
	})
	code, stdout, stderr := runTool(addr)
	if want := "Error: " + addr + " did not take CleanShutdown: it answered"; code != 1 || stdout != "" ||
		!strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "give this tool the same options") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and prefix %q with the options hint", code, stdout, stderr, want)
	}
}

// A worker that resets the connection (one stopping: it closes what it
// accepted unread) took the request, as 0.6's tool assumed: exit 0.
func TestRun_AResetIsNoRefusal(t *testing.T) {
	addr := serveOnce(t, func(c net.Conn) {
		var b [1]byte
		c.Read(b[:]) // the request has come
		c.(*net.TCPConn).SetLinger(0)
		// Closed (by serveOnce) with unread bytes and no linger: a reset.
	})
	if code, stdout, stderr := runTool(addr); code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and no output", code, stdout, stderr)
	}
}

func TestRun_ConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, stdout, stderr := runTool(addr)
	if want := "Error: Unable to connect to " + addr + ": "; code != 1 || stdout != "" || !strings.HasPrefix(stderr, want) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want prefix %q", code, stdout, stderr, want)
	}
}

func TestRun_BadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "error: missing HOST:PORT\n\n" + usage},
		{[]string{"--ponythreads=1"}, "error: missing HOST:PORT\n\n" + usage},
		{[]string{"a:1", "b:2"}, "error: unexpected argument \"b:2\"\n\n" + usage},
		{[]string{"--bogus", "a:1"}, "error: unknown flag: --bogus\n\n" + usage},
	} {
		code, stdout, stderr := runTool(tc.args...)
		if code != 1 || stdout != "" || stderr != tc.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestRun_Help(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		code, stdout, stderr := runTool(arg)
		if code != 0 || stdout != usage || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, stdout, stderr)
		}
	}
}

// serveOnce listens on loopback, serves the first connection with serve
// (then closes it) and returns the address; the listener is closed when
// the test ends.
func serveOnce(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	return ln.Addr().String()
}
