package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/work"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

var testSecret = []byte("a cluster secret for the tests")

func secured(secret []byte) func(int, *Config) {
	g := linkauth.New(linkauth.Config{Secret: secret})
	return func(_ int, c *Config) { c.Guard = g }
}

func TestMember_SecretLinksCarryData(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, gs := startCluster(t, ctx, 3, secured(testSecret))
	for _, m := range ms {
		if err := m.LinksUp(ctx); err != nil {
			t.Fatal(err)
		}
		m.Ready()
	}
	for _, m := range ms {
		m.WaitStarted(ctx)
	}
	for i := 0; i < 100; i++ {
		if err := ms[1].Route(ctx, work.Envelopes{Dest: ms[1].Dest("worker2"), Count: 1, Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "100 batches at worker2", func() bool { return gs[2].count() == 100 })
	if err := ms[1].Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMember_WrongSecretCannotJoin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	init := New(Config{Initializer: true, WorkerCount: 2, Control: "127.0.0.1:0", Data: "127.0.0.1:0", Hello: hello(),
		Guard: linkauth.New(linkauth.Config{Secret: testSecret})})
	if err := init.Listen(); err != nil {
		t.Fatal(err)
	}
	defer init.Close()
	go init.Start(ctx)
	for name, g := range map[string]*linkauth.Guard{
		"another secret": linkauth.New(linkauth.Config{Secret: []byte("not the cluster's secret at all")}),
		"no secret":      nil,
	} {
		w := New(Config{Name: "w", Control: init.ctlL.Addr().String(), MyControl: "127.0.0.1:0", Data: "127.0.0.1:0",
			Hello: hello(), JoinTimeout: 5 * time.Second, Guard: g})
		if err := w.Listen(); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		err := w.Start(wctx)
		wcancel()
		w.Close()
		if err == nil || (g != nil && !errors.Is(err, linkauth.ErrHandshake)) {
			t.Errorf("%s: joined (%v)", name, err)
		}
		if g == nil && (err == nil || !strings.Contains(err.Error(), "cluster secret or TLS")) {
			t.Errorf("%s: the error does not hint at the cause: %v", name, err)
		}
		init.mu.Lock()
		trace := len(init.ctl) + len(init.pending)
		init.mu.Unlock()
		if trace != 0 {
			t.Errorf("%s: the initializer recorded the worker", name)
		}
	}
}

// A client that writes well-formed cluster frames to a secured data
// port, without the handshake, is disconnected before anything is
// decoded or delivered.
func TestMember_SecuredDataPortDropsRawFrames(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, gs := startCluster(t, ctx, 2, secured(testSecret))
	h := hello()
	h.Version, h.Worker, h.Channel = WireVersion, "worker1", DataChannel
	var raw []byte
	raw = AppendFrame(raw, KindHello, h.Encode())
	raw = AppendFrame(raw, KindDataConnect, Seq(1))
	raw = AppendFrame(raw, KindEnvelopes, EnvelopeBatch{Seq: 1, Count: 1, Data: []byte("cos\nsystem\n(S'id'\ntR.")}.Encode())
	c, err := net.Dial("tcp", ms[0].datL.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(raw)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if len(got) != linkauth.ChallengeSize || (err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset")) {
		t.Fatalf("the worker answered %q, %v; want its challenge, then a close", got, err)
	}
	// A peer with another secret does not get through the handshake.
	wrong := linkauth.New(linkauth.Config{Secret: []byte("not the cluster's secret at all")})
	c2, err := net.Dial("tcp", ms[0].datL.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialled(ctx, wrong, c2, linkauth.Data, ms[0].datL.Addr().String()); !errors.Is(err, linkauth.ErrHandshake) {
		t.Fatalf("a data link with another secret: %v", err)
	}
	if gs[0].count() != 0 {
		t.Fatal("a batch from an unauthenticated client was delivered")
	}
}

// fakeConn is a net.Conn that reads from a byte slice and discards
// writes.
type fakeConn struct {
	io.Reader
	net.Conn // nil: only the methods below are used
}

func (f fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (f fakeConn) Read(p []byte) (int, error)       { return f.Reader.Read(p) }
func (fakeConn) SetDeadline(time.Time) error        { return nil }
func (fakeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9} }
func (fakeConn) Close() error                       { return nil }
func (fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(t time.Time) error { return nil }

// zeros is a nonce source that gives the server a known nonce, so the
// fuzz corpus can hold a valid handshake to mutate.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// authentic returns a client's side of a valid secured data link to a
// server whose nonce is all zeros: the handshake, then frames in records.
func authentic(frames []byte) []byte {
	var nc [linkauth.NonceSize]byte
	nc[0] = 7
	c := linkauth.NewHandshake(linkauth.Client, linkauth.Data, testSecret, nc)
	s := linkauth.NewHandshake(linkauth.Server, linkauth.Data, testSecret, [linkauth.NonceSize]byte{})
	c.Start()
	resp, _ := c.Receive(s.Start())
	confirm, _ := s.Receive(resp)
	c.Receive(confirm)
	out := append([]byte(nil), resp...)
	send, recv := c.Keys()
	pr, pw := net.Pipe()
	defer pr.Close()
	go func() {
		linkauth.NewConn(pw, send, recv).Write(frames)
		pw.Close()
	}()
	rest, _ := io.ReadAll(pr)
	return append(out, rest...)
}

// FuzzSecureWire feeds arbitrary bytes to the server side of a secured
// data link and then to the frame reader: nothing may panic, and no
// bytes but those of the authentic handshake open the link.
func FuzzSecureWire(f *testing.F) {
	frames := AppendFrame(nil, KindHello, Hello{App: "a", Worker: "w", Channel: DataChannel}.Encode())
	frames = AppendFrame(frames, KindEnvelopes, EnvelopeBatch{Seq: 1, Count: 1, Data: []byte("d")}.Encode())
	good := authentic(frames)
	f.Add(good)
	f.Add(frames)
	f.Add([]byte("\x80\x02cos\nsystem\n"))
	hs := linkauth.ResponseSize
	g := linkauth.New(linkauth.Config{Secret: testSecret, Rand: zeros{}})
	f.Fuzz(func(t *testing.T, raw []byte) {
		conn, err := g.Server(context.Background(), fakeConn{Reader: bytes.NewReader(raw)}, linkauth.Data)
		if err != nil {
			return
		}
		if len(raw) < hs || !bytes.Equal(raw[:hs], good[:hs]) {
			t.Fatalf("bytes that are not the handshake opened the link: %q", raw[:min(len(raw), hs)])
		}
		for {
			if _, err := ReadFrame(conn); err != nil {
				return
			}
		}
	})
}
