package external

import (
	"context"
	"io"
	"log"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/extframe"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

// With a Guard, a client must authenticate: a 0.6 client's CleanShutdown
// is dropped unread, a client with the secret is served.
func TestServer_SecretRequiredOfClients(t *testing.T) {
	secret := []byte("the cluster secret of this test")
	g := linkauth.New(linkauth.Config{Secret: secret})
	st := newFakeStatus()
	logs := &syncLog{}
	s := NewServer(Config{Addr: "127.0.0.1:0", Guard: g}, st, log.New(logs, "", 0))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := s.Addr().String()

	raw := dial(t, addr)
	raw.Write(extframe.Append(nil, extframe.MsgCleanShutdown, nil))
	raw.Write(make([]byte, linkauth.ResponseSize)) // enough for a response: the server decides now
	if b, _ := io.ReadAll(raw); len(b) != linkauth.ChallengeSize {
		t.Fatalf("an unauthenticated client got %q, want only the challenge", b)
	}
	raw.Close()
	if !strings.Contains(logs.String(), "link authentication failed") || !strings.Contains(logs.String(), raw.LocalAddr().String()) {
		t.Fatalf("the refusal is not logged with the client's address:\n%s", logs.String())
	}
	select {
	case r := <-st.shutdowns:
		t.Fatalf("an unauthenticated client shut the worker down: %s", r)
	default:
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := g.Client(context.Background(), c, linkauth.External, addr)
	if err != nil {
		t.Fatal(err)
	}
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	sc.Write(extframe.Append(nil, extframe.MsgClusterStatusQuery, nil))
	f, err := extframe.Read(sc, extframe.MaxReplyLen)
	if err != nil || f.ID != extframe.MsgClusterStatusQueryResponse {
		t.Fatalf("reply %v, %v", f.ID, err)
	}
}
