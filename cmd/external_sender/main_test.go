package main

import (
	"github.com/wallaroo-go/machida/internal/extframe"

	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeWorker is an external channel on a free loopback port that accepts
// one connection and answers each request frame with reply(id, payload)
// (nil: no answer). The channel yields every byte the client sent, once it
// closed the connection.
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

// received waits for what fakeWorker collected.
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

// replyWith answers every request with one frame.
func replyWith(id uint16, payload string) func(uint16, []byte) []byte {
	return func(uint16, []byte) []byte { return extframe.Append(nil, extframe.MsgID(id), []byte(payload)) }
}

func noReply(uint16, []byte) []byte { return nil }

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func runTool(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRun_Queries(t *testing.T) {
	cases := []struct {
		typ        string
		sent       []byte
		replyID    uint16
		reply      string
		wantJSON   string
		wantHeader string
	}{
		{"partition-query", []byte{0, 0, 0, 2, 0, 7}, 8,
			`{"state_partitions":{"1":{"initializer":["2"]}},"stateless_partitions":{}}`,
			`{"state_partitions":{"1":{"initializer":["2"]}},"stateless_partitions":{}}`, "Partition query response:"},
		{"partition-count-query", []byte{0, 0, 0, 2, 0, 12}, 13,
			`{"state_partitions": {"1": {"initializer": 10}}, "stateless_partitions": {}}`,
			`{"state_partitions":{"1":{"initializer":10}},"stateless_partitions":{}}`, "Partition count query response:"},
		{"cluster-status-query", []byte{0, 0, 0, 2, 0, 9}, 10,
			`{"worker_count":2,"worker_names":["initializer","worker1"],"processing_messages":true}`,
			`{"worker_count":2,"worker_names":["initializer","worker1"],"processing_messages":true}`, "Cluster status query response:"},
		{"cluster-status-query", []byte{0, 0, 0, 2, 0, 9}, 11, "",
			`{"processing_messages": false}`, "Cluster status query response:"},
		{"source-ids-query", []byte{0, 0, 0, 2, 0, 14}, 15, `{"source_ids":["1","2"]}`,
			`{"source_ids":["1","2"]}`, "Source ids query response:"},
		{"state-entity-query", []byte{0, 0, 0, 2, 0, 17}, 18, `{"5":["a","single-partition-key"]}`,
			`{"5":["a","single-partition-key"]}`, "State entity query response:"},
		{"state-entity-count-query", []byte{0, 0, 0, 2, 0, 21}, 22, `{"5":2,"6":0}`,
			`{"5":2,"6":0}`, "State entity count query response:"},
		{"stateless-partition-query", []byte{0, 0, 0, 2, 0, 19}, 20, `{"7":{"worker1":["1"]}}`,
			`{"7":{"worker1":["1"]}}`, "Stateless partition query response:"},
		{"stateless-partition-count-query", []byte{0, 0, 0, 2, 0, 23}, 24, `{"7":{"worker1":10}}`,
			`{"7":{"worker1":10}}`, "Stateless partition count query response:"},
	}
	for _, tc := range cases {
		for _, jsonOnly := range []bool{true, false} {
			name := tc.typ + "/" + map[bool]string{true: "json", false: "human"}[jsonOnly]
			t.Run(name, func(t *testing.T) {
				addr, got := fakeWorker(t, replyWith(tc.replyID, tc.reply))
				args := []string{"--external", addr, "--type", tc.typ}
				if jsonOnly {
					args = append(args, "--json")
				}
				code, stdout, stderr := runTool(args...)
				if code != 0 {
					t.Fatalf("exit %d, stderr %q", code, stderr)
				}
				if b := received(t, got); !bytes.Equal(b, tc.sent) {
					t.Errorf("sent % x, want % x", b, tc.sent)
				}
				want := tc.wantJSON + "\n"
				if !jsonOnly {
					want = tc.wantHeader + "\n" + want
				}
				if stdout != want {
					t.Errorf("stdout %q, want %q", stdout, want)
				}
			})
		}
	}
}

func TestRun_MessagesWithoutReply(t *testing.T) {
	cases := []struct {
		name string
		args []string
		sent []byte
	}{
		{"print is the default", []string{"-m", "hello"}, []byte{0, 0, 0, 7, 0, 1, 'h', 'e', 'l', 'l', 'o'}},
		{"print without message", []string{"-t", "print"}, []byte{0, 0, 0, 2, 0, 1}},
		{"rotate-log", []string{"-t", "rotate-log", "-m", "worker1"}, append([]byte{0, 0, 0, 9, 0, 2}, "worker1"...)},
		{"clean-shutdown", []string{"--type=clean-shutdown"}, []byte{0, 0, 0, 2, 0, 3}},
		{"boundary-count-status", []string{"-t", "boundary-count-status"}, append([]byte{0, 0, 0, 23, 0, 16}, "boundary-count-status"...)},
		{"pony flags ignored", []string{"--ponythreads", "1", "--ponynoblock", "-t", "clean-shutdown", "--ponypinasio"}, []byte{0, 0, 0, 2, 0, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := fakeWorker(t, noReply)
			code, stdout, stderr := runTool(append([]string{"-e", addr}, tc.args...)...)
			if code != 0 || stdout != "" || stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			if b := received(t, got); !bytes.Equal(b, tc.sent) {
				t.Errorf("sent % x, want % x", b, tc.sent)
			}
		})
	}
}

func TestRun_ZeroLengthFrameBeforeReplySkipped(t *testing.T) {
	addr, _ := fakeWorker(t, func(uint16, []byte) []byte {
		return extframe.Append([]byte{0, 0, 0, 0}, extframe.MsgSourceIDsQueryResponse, []byte(`{"source_ids":[]}`))
	})
	code, stdout, stderr := runTool("-e", addr, "-t", "source-ids-query", "-j")
	if code != 0 || stdout != "{\"source_ids\":[]}\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestRun_BadReplies(t *testing.T) {
	cases := []struct {
		name  string
		reply func(uint16, []byte) []byte
		args  []string
		want  string
	}{
		{"wrong id", replyWith(6, "Invalid shrink targets!"), nil, "unexpected reply from ADDR: message id 6, want 10"},
		{"not JSON", replyWith(10, "{oops"), nil, "invalid reply from ADDR: message id 10: payload is not JSON"},
		{"malformed frame", func(uint16, []byte) []byte { return []byte{0, 0, 0, 1, 0} }, nil, "invalid reply from ADDR: malformed frame: length 1"},
		{"truncated frame", func(uint16, []byte) []byte { return []byte{0, 0, 0, 9, 0, 10} }, []string{"--timeout", "200ms"}, "invalid reply from ADDR: a 9-byte message cut short after 2 bytes: unexpected EOF"},
		{"closed without reply", func(uint16, []byte) []byte { return nil }, nil, "ADDR closed the connection without replying to cluster-status-query"},
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
				// Answer the request, then close: a worker that sent a
				// truncated frame and hung up.
				defer conn.Close()
				if f, err := extframe.Read(conn, extframe.MaxRequestLen); err == nil {
					conn.Write(tc.reply(uint16(f.ID), f.Payload))
				}
			}()
			addr := ln.Addr().String()
			code, stdout, stderr := runTool(append([]string{"-e", addr, "-t", "cluster-status-query", "--json"}, tc.args...)...)
			want := "error: " + strings.ReplaceAll(tc.want, "ADDR", addr)
			if code != 1 || stdout != "" || !strings.HasPrefix(stderr, want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and stderr starting %q", code, stdout, stderr, want)
			}
		})
	}
}

func TestRun_NoReplyTimesOut(t *testing.T) {
	addr, _ := fakeWorker(t, noReply)
	code, _, stderr := runTool("-e", addr, "-t", "partition-query", "--timeout", "100ms")
	if want := "error: no reply from " + addr + " within 100ms\n"; code != 1 || stderr != want {
		t.Fatalf("exit %d, stderr %q, want %q", code, stderr, want)
	}
}

func TestRun_ConnectFailure(t *testing.T) {
	addr := deadAddr(t)
	for _, typ := range []string{"cluster-status-query", "print"} {
		code, stdout, stderr := runTool("-e", addr, "-t", typ, "--json")
		if want := "error: unable to connect to " + addr + ": "; code != 1 || stdout != "" || !strings.HasPrefix(stderr, want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want prefix %q", typ, code, stdout, stderr, want)
		}
	}
}
