package linkauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Kind is the kind of channel a link is: it is part of every proof, so
// that a proof for one kind opens no other.
type Kind uint8

const (
	Control  Kind = 1
	Data     Kind = 2
	External Kind = 3
)

func (k Kind) String() string {
	switch k {
	case Control:
		return "control"
	case Data:
		return "data"
	case External:
		return "external"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Role says which end of a connection a Handshake runs: the Client
// dialled, the Server accepted.
type Role uint8

const (
	Client Role = 1
	Server Role = 2
)

// Sizes of the handshake's parts and messages.
const (
	NonceSize = 32
	proofSize = sha256.Size
	magicSize = 8
	// ChallengeSize, ResponseSize and ConfirmSize are the sizes of the
	// three messages, in order: the server's challenge, the client's
	// response with its own challenge, the server's confirmation.
	ChallengeSize = magicSize + 1 + NonceSize
	ResponseSize  = magicSize + 1 + NonceSize + proofSize
	ConfirmSize   = proofSize
)

var magic = []byte("wlauth1\n")

// ErrHandshake is wrapped by every handshake failure: the peer does not
// speak the handshake, or does not know the cluster secret.
var ErrHandshake = errors.New("link authentication failed")

type hsStep uint8

const (
	stepStart hsStep = iota
	stepWaitChallenge
	stepWaitResponse
	stepWaitConfirm
	stepDone
	stepFailed
)

// Handshake is one end of the secret handshake (see the package doc), as
// a state machine without I/O: Start gives the first message to send (the
// server's challenge; nothing for the client), then each message received
// goes to Receive, which returns what to send back. Expect says how many
// bytes the next message has (0 once over). Any error is final.
type Handshake struct {
	role   Role
	kind   Kind
	secret []byte
	nc, ns [NonceSize]byte
	step   hsStep
}

// NewHandshake returns one end of a handshake for a link of kind k. nonce
// must be fresh random bytes (crypto/rand): it is this end's nonce.
func NewHandshake(role Role, k Kind, secret []byte, nonce [NonceSize]byte) *Handshake {
	h := &Handshake{role: role, kind: k, secret: secret, step: stepStart}
	if role == Client {
		h.nc = nonce
	} else {
		h.ns = nonce
	}
	return h
}

// Start returns the first message to send: the server's challenge (the
// client sends nothing first, and gets nil).
func (h *Handshake) Start() []byte {
	if h.step != stepStart {
		return nil
	}
	if h.role == Client {
		h.step = stepWaitChallenge
		return nil
	}
	h.step = stepWaitResponse
	msg := make([]byte, 0, ChallengeSize)
	msg = append(msg, magic...)
	msg = append(msg, byte(h.kind))
	return append(msg, h.ns[:]...)
}

// Expect returns the size of the next message to receive, or 0 when
// the handshake is over (done or failed).
func (h *Handshake) Expect() int {
	switch h.step {
	case stepWaitChallenge:
		return ChallengeSize
	case stepWaitResponse:
		return ResponseSize
	case stepWaitConfirm:
		return ConfirmSize
	}
	return 0
}

// Done reports whether both ends have proved the secret.
func (h *Handshake) Done() bool { return h.step == stepDone }

func (h *Handshake) fail(format string, args ...any) error {
	h.step = stepFailed
	return fmt.Errorf("%w: %s", ErrHandshake, fmt.Sprintf(format, args...))
}

// header checks a message's magic and channel kind.
func (h *Handshake) header(msg []byte) error {
	if !bytes.Equal(msg[:magicSize], magic) {
		return h.fail("the peer does not speak the authenticated link protocol (is it started without the cluster secret, or is it not a worker?)")
	}
	if k := Kind(msg[magicSize]); k != h.kind {
		return h.fail("the peer offers a %v link where a %v link was expected (wrong port?)", k, h.kind)
	}
	return nil
}

// Receive takes the next message from the peer (exactly Expect bytes)
// and returns the reply to send (nil when there is none).
func (h *Handshake) Receive(msg []byte) ([]byte, error) {
	want := h.Expect()
	if want == 0 {
		return nil, h.fail("a message after the handshake ended")
	}
	if len(msg) != want {
		return nil, h.fail("a message of %d bytes where %d were expected", len(msg), want)
	}
	switch h.step {
	case stepWaitChallenge: // client
		if err := h.header(msg); err != nil {
			return nil, err
		}
		copy(h.ns[:], msg[magicSize+1:])
		if h.ns == h.nc {
			return nil, h.fail("the peer sent back this end's own nonce (a reflected handshake)")
		}
		h.step = stepWaitConfirm
		reply := make([]byte, 0, ResponseSize)
		reply = append(reply, magic...)
		reply = append(reply, byte(h.kind))
		reply = append(reply, h.nc[:]...)
		return append(reply, h.proof(Client)...), nil
	case stepWaitResponse: // server
		if err := h.header(msg); err != nil {
			return nil, err
		}
		copy(h.nc[:], msg[magicSize+1:magicSize+1+NonceSize])
		if h.ns == h.nc {
			return nil, h.fail("the peer sent back this end's own nonce (a reflected handshake)")
		}
		if !hmac.Equal(msg[magicSize+1+NonceSize:], h.proof(Client)) {
			return nil, h.fail("the peer's proof does not match: it has another cluster secret")
		}
		h.step = stepDone
		return h.proof(Server), nil
	case stepWaitConfirm: // client
		if !hmac.Equal(msg, h.proof(Server)) {
			return nil, h.fail("the peer's proof does not match: it has another cluster secret")
		}
		h.step = stepDone
		return nil, nil
	}
	return nil, h.fail("unexpected handshake state")
}

// proof is the proof of the given role over the kind and both nonces.
func (h *Handshake) proof(r Role) []byte {
	label := "client proof"
	if r == Server {
		label = "server proof"
	}
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte("wallaroo-go link " + label))
	m.Write([]byte{byte(h.kind)})
	m.Write(h.nc[:])
	m.Write(h.ns[:])
	return m.Sum(nil)
}

// Keys returns the MAC keys of this end's two directions: send for the
// records it writes, recv for those it reads. Only valid once Done.
func (h *Handshake) Keys() (send, recv []byte) {
	if h.step != stepDone {
		panic("linkauth: Keys before the handshake is done")
	}
	salt := append(append([]byte(nil), h.nc[:]...), h.ns[:]...)
	prk := mac(salt, h.secret)
	c2s := mac(prk, []byte("wallaroo-go client to server"), []byte{byte(h.kind), 1})
	s2c := mac(prk, []byte("wallaroo-go server to client"), []byte{byte(h.kind), 1})
	if h.role == Client {
		return c2s, s2c
	}
	return s2c, c2s
}

// mac is HMAC-SHA-256(key, parts...).
func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}
