package linkauth

import (
	"bytes"
	"errors"
	"testing"
)

var testSecret = []byte("0123456789abcdef-test-secret")

func nonce(b byte) (n [NonceSize]byte) {
	for i := range n {
		n[i] = b
	}
	return n
}

// run drives a client and a server handshake to the end, passing
// messages through tamper (which may change them).
func run(t *testing.T, c, s *Handshake, tamper func(step int, msg []byte) []byte) (cerr, serr error) {
	t.Helper()
	if c.Start() != nil {
		t.Fatal("the client sent something first")
	}
	msg := s.Start()
	step := 0
	to, from := c, s
	for msg != nil {
		msg = tamper(step, msg)
		step++
		reply, err := to.Receive(msg)
		if err != nil {
			if to == s {
				return nil, err
			}
			return err, nil
		}
		msg = reply
		to, from = from, to
	}
	return nil, nil
}

func keep(_ int, m []byte) []byte { return m }

func TestHandshake_AgreesOnKeys(t *testing.T) {
	c := NewHandshake(Client, Data, testSecret, nonce(1))
	s := NewHandshake(Server, Data, testSecret, nonce(2))
	if cerr, serr := run(t, c, s, keep); cerr != nil || serr != nil {
		t.Fatalf("client %v, server %v", cerr, serr)
	}
	if !c.Done() || !s.Done() {
		t.Fatal("not done")
	}
	cs, cr := c.Keys()
	ss, sr := s.Keys()
	if !bytes.Equal(cs, sr) || !bytes.Equal(cr, ss) || bytes.Equal(cs, cr) {
		t.Fatal("the directions' keys do not pair up, or are equal")
	}
	// Other nonces, other keys.
	c2 := NewHandshake(Client, Data, testSecret, nonce(3))
	s2 := NewHandshake(Server, Data, testSecret, nonce(2))
	run(t, c2, s2, keep)
	if k, _ := c2.Keys(); bytes.Equal(k, cs) {
		t.Fatal("keys do not depend on the nonces")
	}
}

func TestHandshake_WrongSecretFailsOnBothSides(t *testing.T) {
	// The client knows another secret: the server sees its proof fail.
	c := NewHandshake(Client, Control, []byte("another secret, quite long"), nonce(1))
	s := NewHandshake(Server, Control, testSecret, nonce(2))
	_, serr := run(t, c, s, keep)
	if !errors.Is(serr, ErrHandshake) || s.Done() {
		t.Fatalf("server: %v", serr)
	}
	// A server that fakes its confirmation: the client refuses it.
	c = NewHandshake(Client, Control, testSecret, nonce(1))
	s = NewHandshake(Server, Control, testSecret, nonce(2))
	cerr, _ := run(t, c, s, func(step int, m []byte) []byte {
		if step == 2 {
			m = append([]byte(nil), m...)
			m[0] ^= 1
		}
		return m
	})
	if !errors.Is(cerr, ErrHandshake) || c.Done() {
		t.Fatalf("client: %v", cerr)
	}
}

func TestHandshake_ReplayedProofFails(t *testing.T) {
	// Record a whole good exchange...
	c := NewHandshake(Client, Data, testSecret, nonce(1))
	s := NewHandshake(Server, Data, testSecret, nonce(2))
	var rec [][]byte
	run(t, c, s, func(_ int, m []byte) []byte { rec = append(rec, append([]byte(nil), m...)); return m })
	// ...and replay the client's response to a server with a fresh nonce.
	s2 := NewHandshake(Server, Data, testSecret, nonce(9))
	s2.Start()
	if _, err := s2.Receive(rec[1]); !errors.Is(err, ErrHandshake) {
		t.Fatalf("a replayed client proof was accepted: %v", err)
	}
	// Replay the server's side to a client with a fresh nonce.
	c2 := NewHandshake(Client, Data, testSecret, nonce(8))
	c2.Start()
	if _, err := c2.Receive(rec[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Receive(rec[2]); !errors.Is(err, ErrHandshake) {
		t.Fatalf("a replayed server proof was accepted: %v", err)
	}
}

func TestHandshake_ReflectedOrReorderedOrOtherKindFails(t *testing.T) {
	// The server's challenge sent back to it as the client's response.
	s := NewHandshake(Server, Data, testSecret, nonce(2))
	ch := s.Start()
	fake := append(append([]byte(nil), ch...), make([]byte, proofSize)...)
	if _, err := s.Receive(fake); !errors.Is(err, ErrHandshake) {
		t.Fatalf("reflection: %v", err)
	}
	// Messages out of order: a confirmation first.
	c := NewHandshake(Client, Data, testSecret, nonce(1))
	c.Start()
	if _, err := c.Receive(make([]byte, ConfirmSize)); !errors.Is(err, ErrHandshake) {
		t.Fatalf("reordered: %v", err)
	}
	// A data-link client on a control listener.
	c = NewHandshake(Client, Data, testSecret, nonce(1))
	s = NewHandshake(Server, Control, testSecret, nonce(2))
	if cerr, _ := run(t, c, s, keep); !errors.Is(cerr, ErrHandshake) {
		t.Fatalf("kind: %v", cerr)
	}
	// A peer that does not speak the protocol (a pickle, say).
	s = NewHandshake(Server, Data, testSecret, nonce(2))
	s.Start()
	junk := bytes.Repeat([]byte("c"), ResponseSize)
	if _, err := s.Receive(junk); !errors.Is(err, ErrHandshake) {
		t.Fatalf("junk: %v", err)
	}
	// And once failed, it stays failed.
	if _, err := s.Receive(make([]byte, ResponseSize)); err == nil {
		t.Fatal("a failed handshake went on")
	}
}
