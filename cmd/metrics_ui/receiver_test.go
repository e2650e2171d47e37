package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/hubproto"
	"github.com/wallaroo-go/machida/internal/logline"
)

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReceiver(t *testing.T) {
	c := &clock{t0.Add(time.Second)}
	store := NewStore(c.now)
	logs := &logBuf{}
	rc := NewReceiver(store, slog.New(logline.New(logs, slog.LevelInfo)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- rc.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	good, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	var b []byte
	b = hubproto.AppendConnect(b)
	b = hubproto.AppendJoin(b, "metrics:wc", "w1")
	b = hubproto.AppendPayload(b, "metrics:wc", rec("start-to-end", "P", "w1", "P", t0, 10, 20))
	b = hubproto.AppendPayload(b, "metrics:wc", rec("bogus", "P", "w1", "P", t0, 10))
	if _, err := good.Write(b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record", func() bool {
		d, err := store.Dashboard("wc")
		return err == nil && len(d.Pipelines) == 1 && d.Pipelines[0].Count == 2 && len(d.Connected) == 1
	})

	// A malformed stream closes only its own connection, with the reason.
	bad, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.Write(hubproto.AppendConnect(nil))
	bad.Write([]byte{0, 0, 0, 2, 9, 9})
	bad.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := bad.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from the UI, want the connection closed", n)
	}
	waitFor(t, "the log line", func() bool {
		return strings.Contains(logs.String(), "closed: message 2: hub protocol: unknown message type 9 at frame offset 0")
	})
	if !strings.Contains(logs.String(), `unknown category "bogus"`) {
		t.Errorf("rejected record not logged:\n%s", logs)
	}

	// The good connection still works.
	good.Write(hubproto.AppendPayload(nil, "metrics:wc", rec("start-to-end", "P", "w1", "P", t0, 30)))
	waitFor(t, "the second record", func() bool {
		d, _ := store.Dashboard("wc")
		return d.Pipelines[0].Count == 3
	})
	good.Close()
	waitFor(t, "the worker to leave", func() bool {
		d, _ := store.Dashboard("wc")
		return len(d.Connected) == 0
	})
}
