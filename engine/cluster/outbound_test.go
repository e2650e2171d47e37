package cluster

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// A peer that, reconnecting, says it has batches this side never sent
// fails the link with the reason (taking its word would skip batches it
// never got); the link is not marked up.
func TestOutbound_APeerThatClaimsUnsentBatchesFailsTheLink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		h := hello()
		h.Worker = "w1"
		if _, err := handshake(c, r, h, DataChannel); err != nil {
			served <- err
			return
		}
		if f, err := ReadFrame(r); err != nil || f.Kind != KindDataConnect {
			served <- errors.Join(err, errors.New("no data-connect"))
			return
		}
		// Nothing was sent yet, but this peer says it has up to batch 7.
		_, err = c.Write(AppendFrame(nil, KindDataAccept, Seq(7)))
		served <- err
		io.Copy(io.Discard, r)
	}()
	h := hello()
	h.Worker = "w0"
	o := newOutbound("w1", ln.Addr().String(), h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o.q.Push(1, []byte("x"))
	err = o.session(ctx)
	if !errors.Is(err, ErrAckBeyondSent) {
		t.Fatalf("session = %v, want the protocol fault", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.up || o.q.Pending() != 1 {
		t.Errorf("after the fault: up %v, %d batches held (want down, 1)", o.up, o.q.Pending())
	}
}
