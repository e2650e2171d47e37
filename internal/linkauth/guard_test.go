package linkauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pair runs the client and server sides of g over a TCP loopback
// connection and returns both results.
func pair(t *testing.T, cg, sg *Guard, ck, sk Kind) (c, s net.Conn, cerr, serr error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw, err := l.Accept()
		if err != nil {
			serr = err
			return
		}
		s, serr = sg.Server(context.Background(), raw, sk)
		if serr != nil {
			raw.Close()
		}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, cerr = cg.Client(context.Background(), raw, ck, l.Addr().String())
	if cerr != nil {
		raw.Close()
	}
	<-done
	t.Cleanup(func() {
		for _, x := range []net.Conn{c, s} {
			if x != nil {
				x.Close()
			}
		}
	})
	return c, s, cerr, serr
}

func echo(t *testing.T, c, s net.Conn) {
	t.Helper()
	msg := bytes.Repeat([]byte("batch of envelopes "), 100_000) // several records
	go func() { c.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("server read %v", err)
	}
	s.Write([]byte("ack"))
	ack := make([]byte, 3)
	if _, err := io.ReadFull(c, ack); err != nil || string(ack) != "ack" {
		t.Fatalf("client read %q %v", ack, err)
	}
}

func TestGuard_SecretLinks(t *testing.T) {
	g := New(Config{Secret: testSecret})
	c, s, cerr, serr := pair(t, g, g, Data, Data)
	if cerr != nil || serr != nil {
		t.Fatalf("client %v, server %v", cerr, serr)
	}
	if _, ok := c.(*Conn); !ok {
		t.Fatalf("a secret link without TLS is not MACed: %T", c)
	}
	echo(t, c, s)

	other := New(Config{Secret: []byte("another secret, long enough")})
	_, _, cerr, serr = pair(t, other, g, Control, Control)
	if !errors.Is(cerr, ErrHandshake) || !errors.Is(serr, ErrHandshake) {
		t.Fatalf("wrong secret: client %v, server %v", cerr, serr)
	}
	if !strings.Contains(serr.Error(), "127.0.0.1:") {
		t.Fatalf("the server's error does not name the peer: %v", serr)
	}
	// A client that says nothing: the server gives up at its timeout.
	quick := New(Config{Secret: testSecret, Timeout: 200 * time.Millisecond})
	_, _, _, serr = pair(t, nil, quick, Data, Data)
	if serr == nil {
		t.Fatal("a client without the secret was let in")
	}
}

func TestGuard_NilPassesThrough(t *testing.T) {
	var g *Guard
	c, s, cerr, serr := pair(t, g, g, Data, Data)
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		t.Fatalf("got %T", c)
	}
	echo(t, c, s)
	if New(Config{}) != nil {
		t.Fatal("New without a secret or TLS is not nil")
	}
}

// tlsGuards makes a CA in a temporary directory and returns a function
// that makes a Guard with a certificate for name signed by ca (the
// cluster's CA when nil; other CAs are made with newTestCA), checked
// against the cluster's CA, and the cluster's CA.
func tlsGuards(t *testing.T) (func(ca *testCA, name string, expired bool, secret []byte) *Guard, *testCA) {
	t.Helper()
	dir := t.TempDir()
	cluster, err := newTestCA("cluster CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := cluster.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	return func(ca *testCA, name string, expired bool, secret []byte) *Guard {
		t.Helper()
		if ca == nil {
			ca = cluster
		}
		cert, key, err := ca.Leaf(dir, name, expired)
		if err != nil {
			t.Fatal(err)
		}
		tl, err := LoadTLS(cert, key, caFile)
		if err != nil {
			t.Fatal(err)
		}
		return New(Config{TLS: tl, Secret: secret, Timeout: 5 * time.Second})
	}, cluster
}

func TestGuard_MutualTLS(t *testing.T) {
	load, ca := tlsGuards(t)
	other, _ := newTestCA("another CA")
	good := load(ca, "w1", false, nil)
	c, s, cerr, serr := pair(t, load(ca, "w2", false, nil), good, Control, Control)
	if cerr != nil || serr != nil {
		t.Fatalf("client %v, server %v", cerr, serr)
	}
	echo(t, c, s)
	both := load(ca, "w3", false, testSecret)
	c, s, cerr, serr = pair(t, both, both, Data, Data)
	if cerr != nil || serr != nil {
		t.Fatalf("TLS and secret: client %v, server %v", cerr, serr)
	}
	echo(t, c, s)
	for name, g := range map[string]*Guard{"expired": load(ca, "old", true, nil), "other CA": load(other, "stranger", false, nil)} {
		_, _, cerr, serr := pair(t, g, good, Control, Control)
		if serr == nil || cerr == nil || !strings.Contains(cerr.Error(), "remote error: tls:") {
			t.Errorf("%s client certificate: server %v, client %v (want the server's alert)", name, serr, cerr)
		}
		_, _, cerr, serr = pair(t, good, g, Control, Control)
		if cerr == nil {
			t.Errorf("%s server certificate accepted (server: %v)", name, serr)
		}
	}
	// A client without the secret of a server that runs both is told so.
	_, _, cerr, _ = pair(t, good, both, Control, Control)
	if cerr == nil || !strings.Contains(cerr.Error(), "asks for a cluster secret as well as TLS") {
		t.Errorf("a TLS-only client of a TLS-and-secret server: %v", cerr)
	}
	// A client whose certificate no trusted CA signed hears why.
	_, _, cerr, _ = pair(t, load(other, "stranger", false, nil), good, Control, Control)
	if cerr == nil || !strings.Contains(cerr.Error(), "use a certificate of the cluster's CA") {
		t.Errorf("a client certificate of another CA: %v", cerr)
	}
	if _, err := LoadTLS("a", "", ""); err == nil {
		t.Fatal("a partial TLS configuration was accepted")
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	b, err := ReadSecretFile(write("ok", "0123456789abcdef0123\n", 0o600))
	if err != nil || string(b) != "0123456789abcdef0123" {
		t.Fatalf("%q %v", b, err)
	}
	for name, p := range map[string]string{
		"chmod 600":        write("open", "0123456789abcdef0123", 0o644),
		"at least 16":      write("short", "short\n", 0o600),
		"no such file":     filepath.Join(dir, "missing"),
		"at least 16 byte": write("empty", "", 0o600),
	} {
		if _, err := ReadSecretFile(p); err == nil || !strings.Contains(err.Error(), strings.Fields(name)[0]) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if SecretPath("", func(string) string { return "/env" }) != "/env" || SecretPath("/f", os.Getenv) != "/f" {
		t.Fatal("SecretPath")
	}
}

func TestKeyFileWarning(t *testing.T) {
	dir := t.TempDir()
	for mode, warned := range map[os.FileMode]bool{0o600: false, 0o400: false, 0o640: true, 0o644: true, 0o604: true} {
		p := filepath.Join(dir, fmt.Sprintf("key%o", mode))
		if err := os.WriteFile(p, []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		w := KeyFileWarning(p)
		if (w != "") != warned || (warned && !strings.Contains(w, "chmod 600 "+p)) {
			t.Errorf("mode %04o: %q", mode, w)
		}
	}
	if KeyFileWarning("") != "" || KeyFileWarning(filepath.Join(dir, "missing")) != "" {
		t.Error("no key or a missing one is warned of (the load says what is wrong with it)")
	}
}

func TestExposed(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": false, "[::1]:1": false, "localhost:1": false,
		"0.0.0.0:1": true, ":1": true, "10.0.0.5:1": true, "example.com:1": true} {
		if Exposed(addr) != want {
			t.Errorf("Exposed(%q) != %v", addr, want)
		}
	}
}

// A certificate the peers would refuse is found before any link: out of
// its dates, or not naming the host of a listener the others dial (a
// listener on every interface is not checked); a guard without TLS
// checks nothing.
func TestCheckListeners(t *testing.T) {
	load, _ := tlsGuards(t)
	guard := func(expired bool) *Guard { return load(nil, "w", expired, nil) }
	g, now := guard(false), time.Now()
	what := []string{"control", "data", "external"}
	if err := g.CheckListeners([]string{"127.0.0.1:6000", "localhost:6001", ":0"}, what, now); err != nil {
		t.Errorf("hosts the certificate names: %v", err)
	}
	if err := g.CheckListeners([]string{"0.0.0.0:6000", "[::]:6001", "127.0.0.1:6002"}, what, now); err != nil {
		t.Errorf("listeners on every interface: %v", err)
	}
	err := g.CheckListeners([]string{"127.0.0.1:6000", "10.9.9.9:6001"}, what, now)
	if err == nil || !strings.Contains(err.Error(), "--tls-cert does not name 10.9.9.9, where the others reach this worker's data listener (10.9.9.9:6001)") {
		t.Errorf("a host the certificate does not name: %v", err)
	}
	if err := g.CheckListeners(nil, nil, now.Add(48*time.Hour)); err == nil || !strings.Contains(err.Error(), "the certificate expired on") {
		t.Errorf("a certificate out of its dates: %v", err)
	}
	if err := guard(true).CheckListeners(nil, nil, now); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired certificate: %v", err)
	}
	if err := g.CheckListeners(nil, nil, now.Add(-2*time.Hour)); err == nil || !strings.Contains(err.Error(), "not valid before") {
		t.Errorf("a certificate not yet valid: %v", err)
	}
	var none *Guard
	if err := none.CheckListeners([]string{"10.9.9.9:1"}, []string{"data"}, now); err != nil {
		t.Errorf("no guard: %v", err)
	}
	if err := New(Config{Secret: testSecret}).CheckListeners([]string{"10.9.9.9:1"}, []string{"data"}, now); err != nil {
		t.Errorf("a secret alone: %v", err)
	}
}

// A TLS server whose peer's first bytes are not TLS (a 0.6 tool without
// the options) answers them with a fatal TLS alert before closing, so the
// tool reads bytes rather than a close it could take for a request taken.
func TestGuard_PlainPeerGetsATLSAlert(t *testing.T) {
	load, _ := tlsGuards(t)
	g := load(nil, "w", false, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			serr <- err
			return
		}
		defer c.Close()
		_, err = g.Server(context.Background(), c, External)
		serr <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0, 0, 0, 2, 0, 3}) // a 0.6 CleanShutdown frame
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, _ := io.ReadAll(c)
	if !bytes.Equal(got, plainPeerAlert) {
		t.Errorf("the plain peer read % x, want the alert % x", got, plainPeerAlert)
	}
	if err := <-serr; err == nil {
		t.Error("the server took a peer that speaks no TLS")
	}
}
