package cluster

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"
)

// A sender keeps one data connection at a time, so a new one from the
// same worker (its restart after a power loss, or a reconnect after a
// partition this side did not notice) replaces the one registered: it is
// accepted at once instead of being turned away until the old one dies
// of TCP timeouts (minutes).
func TestInbound_ANewLinkFromAPeerReplacesTheOldOne(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _ := startCluster(t, ctx, 2, nil)
	startAll(t, ctx, ms)
	conn, err := net.Dial("tcp", ms[0].datL.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := ms[1].cfg.Hello
	h.Incarnation = 0xdead | 1 // another run of worker1
	h.Restart = true
	r := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := handshake(conn, r, h, DataChannel); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(AppendFrame(nil, KindDataConnect, Seq(1))); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(r)
	if err != nil || f.Kind != KindDataAccept {
		t.Fatalf("a new link from worker1 got %v, %v; want data-accept", f.Kind, err)
	}
}
