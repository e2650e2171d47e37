package cluster

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/linkauth"
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

// A peer the cluster does not know that keeps redialling (every 500 ms)
// is logged within the bounds of linkauth.RefusalLog, not once a try.
func TestInbound_AnUnknownPeerRedialingIsLoggedInBursts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log lockedLog
	ms, _ := startCluster(t, ctx, 2, func(i int, c *Config) {
		if i == 0 {
			c.Log = slog.New(slog.NewTextHandler(&log, nil))
		}
	})
	startAll(t, ctx, ms)
	h := ms[1].cfg.Hello
	h.Worker = "ghost"
	const tries = linkauth.RefusalBurst + 5
	for i := 0; i < tries; i++ {
		conn, err := net.Dial("tcp", ms[0].datL.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		var refused *refusedError
		if _, err := handshake(conn, bufio.NewReader(conn), h, DataChannel); !errors.As(err, &refused) {
			t.Fatalf("try %d: %v, want the link refused", i, err)
		}
		conn.Close()
	}
	waitFor(t, "the refusals logged", func() bool {
		return strings.Count(log.String(), "not a worker of this cluster") >= linkauth.RefusalBurst
	})
	if n := strings.Count(log.String(), "not a worker of this cluster"); n != linkauth.RefusalBurst {
		t.Errorf("%d lines for %d refused links from one unknown worker, want %d:\n%s", n, tries, linkauth.RefusalBurst, log.String())
	}
}
