package main

import (
	"github.com/wallaroo-go/machida/internal/extframe"

	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeWorker is an external channel on a free loopback port that accepts
// one connection, answers each request frame with reply(id, payload) (nil:
// no answer) and yields every byte the client sent once it closed the
// connection.
func fakeWorker(t *testing.T, reply func(id uint16, payload []byte) []byte) (string, <-chan []byte) {
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
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		var seen bytes.Buffer
		r := io.TeeReader(conn, &seen)
		for {
			f, err := extframe.Read(r, extframe.MaxRequestLen)
			id, payload := uint16(f.ID), f.Payload
			if err != nil {
				break
			}
			if b := reply(id, payload); b != nil {
				conn.Write(b)
			}
		}
		got <- seen.Bytes()
	}()
	return ln.Addr().String(), got
}

func received(t *testing.T, got <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-got:
		return b
	case <-time.After(30 * time.Second):
		t.Fatal("fake worker received nothing within 30s")
		return nil
	}
}

func replyWith(id uint16, payload string) func(uint16, []byte) []byte {
	return func(uint16, []byte) []byte { return extframe.Append(nil, extframe.MsgID(id), []byte(payload)) }
}

// frame4 returns the expected ShrinkRequest frame for a JSON payload.
func frame4(payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(2+len(payload)))
	b = append(b, 0, 4)
	return append(b, payload...)
}

func runTool(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRun_Modes(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		sent    string
		replyID uint16
		reply   string
		stdout  string
	}{
		{"query", []string{"--query"}, `{"query":true,"node_names":[],"node_count":0}`,
			5, `{"node_names": ["worker1", "worker2"], "node_count": 2}`,
			"Eligible for shrink: Node count: 2, Nodes: |worker1,worker2,|\n"},
		{"query, none eligible", []string{"-q"}, `{"query":true,"node_names":[],"node_count":0}`,
			5, `{"node_names":[],"node_count":0}`,
			"Eligible for shrink: Node count: 0, Nodes: ||\n"},
		{"count", []string{"--count", "1"}, `{"query":false,"node_names":[],"node_count":1}`,
			6, "Shrinking by 1 workers!", "Cluster shrink response: Shrinking by 1 workers!\n"},
		{"count 0", []string{"-c", "0"}, `{"query":false,"node_names":[],"node_count":0}`,
			6, "Cannot shrink 0 workers!", "Cluster shrink response: Cannot shrink 0 workers!\n"},
		{"workers", []string{"--workers", "worker1,worker2"}, `{"query":false,"node_names":["worker1","worker2"],"node_count":0}`,
			6, "Shrinking by 2 workers!", "Cluster shrink response: Shrinking by 2 workers!\n"},
		{"invalid targets", []string{"-w", "initializer"}, `{"query":false,"node_names":["initializer"],"node_count":0}`,
			6, "Invalid shrink targets!", "Cluster shrink response: Invalid shrink targets!\n"},
		{"pony flags", []string{"--ponythreads=1", "--ponynoblock", "-w", "w3"}, `{"query":false,"node_names":["w3"],"node_count":0}`,
			6, "Shrinking by 1 workers!", "Cluster shrink response: Shrinking by 1 workers!\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := fakeWorker(t, replyWith(tc.replyID, tc.reply))
			code, stdout, stderr := runTool(append([]string{"-e", addr}, tc.args...)...)
			if code != 0 || stdout != tc.stdout || stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want stdout %q", code, stdout, stderr, tc.stdout)
			}
			if b, want := received(t, got), frame4(tc.sent); !bytes.Equal(b, want) {
				t.Errorf("sent % x (%q)\nwant % x (%q)", b, b, want, want)
			}
		})
	}
}

func TestRun_BadReplies(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		reply func(uint16, []byte) []byte
		want  string
	}{
		{"shrink answered as query", []string{"-c", "1"}, replyWith(5, `{"node_names":[],"node_count":0}`),
			`unexpected reply from ADDR: message id 5 ("{\"node_names\":[],\"node_count\":0}"), want 6`},
		{"query answered as shrink", []string{"-q"}, replyWith(6, "Invalid shrink request"),
			`unexpected reply from ADDR: message id 6 ("Invalid shrink request"), want 5`},
		{"query reply not JSON", []string{"-q"}, replyWith(5, "{nope"), "invalid reply from ADDR: invalid character"},
		{"malformed frame", []string{"-q"}, func(uint16, []byte) []byte { return []byte{0, 0, 0, 1} }, "invalid reply from ADDR: malformed frame: length 1"},
		{"closed without reply", []string{"-q"}, func(uint16, []byte) []byte { return nil }, "ADDR closed the connection without replying"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close() // answer once, then hang up
				if f, err := extframe.Read(conn, extframe.MaxRequestLen); err == nil {
					conn.Write(tc.reply(uint16(f.ID), f.Payload))
				}
			}()
			addr := ln.Addr().String()
			code, stdout, stderr := runTool(append([]string{"-e", addr}, tc.args...)...)
			want := "error: " + strings.ReplaceAll(tc.want, "ADDR", addr)
			if code != 1 || stdout != "" || !strings.HasPrefix(stderr, want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and stderr starting %q", code, stdout, stderr, want)
			}
		})
	}
}

func TestRun_NoReplyTimesOut(t *testing.T) {
	addr, _ := fakeWorker(t, func(uint16, []byte) []byte { return nil })
	code, _, stderr := runTool("-e", addr, "-q", "--timeout", "100ms")
	if want := "error: no reply from " + addr + " within 100ms\n"; code != 1 || stderr != want {
		t.Fatalf("exit %d, stderr %q, want %q", code, stderr, want)
	}
}

func TestRun_ConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, stdout, stderr := runTool("-e", addr, "-c", "1")
	if want := "error: unable to connect to " + addr + ": "; code != 1 || stdout != "" || !strings.HasPrefix(stderr, want) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want prefix %q", code, stdout, stderr, want)
	}
}
