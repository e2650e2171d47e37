package linkauth

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// DefaultTimeout bounds a connection's handshakes (TLS and secret).
const DefaultTimeout = 10 * time.Second

// Guard protects connections with a cluster secret, TLS, or both. A nil
// *Guard protects nothing: Server and Client return the connection as
// it is (0.6's links).
type Guard struct {
	secret    []byte
	serverTLS *tls.Config
	clientTLS *tls.Config
	timeout   time.Duration
	rand      io.Reader
}

// Config configures a Guard. Leave Secret empty and TLS nil for none.
type Config struct {
	Secret []byte // the cluster secret (ReadSecretFile)
	TLS    *TLS   // LoadTLS
	// Timeout bounds each connection's handshakes (default
	// DefaultTimeout).
	Timeout time.Duration
	// Rand supplies the nonces (default crypto/rand).
	Rand io.Reader
}

// New returns a Guard for cfg, or nil when cfg asks for no protection.
func New(cfg Config) *Guard {
	if len(cfg.Secret) == 0 && cfg.TLS == nil {
		return nil
	}
	g := &Guard{secret: cfg.Secret, timeout: cfg.Timeout, rand: cfg.Rand}
	if cfg.TLS != nil {
		g.serverTLS, g.clientTLS = cfg.TLS.server, cfg.TLS.client
	}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	if g.rand == nil {
		g.rand = rand.Reader
	}
	return g
}

// Secret reports whether g requires the cluster secret.
func (g *Guard) Secret() bool { return g != nil && len(g.secret) > 0 }

// CheckListeners fails, saying what to do, if g's TLS certificate would
// be refused by the peers of this worker before any of them tries: it is
// out of its dates, or it does not name the host of a listener the
// others dial (addrs, as they dial them: the addresses bound; each
// described by the same index of what; a listener on every interface,
// or no host, is not checked: the host the others dial it at is not
// known here). Without TLS it checks nothing.
func (g *Guard) CheckListeners(addrs, what []string, now time.Time) error {
	if !g.TLS() || len(g.serverTLS.Certificates) == 0 {
		return nil
	}
	cert := g.serverTLS.Certificates[0]
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
	}
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("--tls-cert: the certificate expired on %s: every peer would refuse it; give this worker a current one", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("--tls-cert: the certificate is not valid before %s: every peer would refuse it until then (is this machine's clock right?)", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for i, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			continue
		}
		if err := leaf.VerifyHostname(host); err != nil {
			return fmt.Errorf("--tls-cert does not name %s, where the others reach this worker's %s listener (%s): they would refuse it (%w); give it a certificate whose subjectAltName names %s", host, what[i], a, err, host)
		}
	}
	return nil
}

// TLS reports whether g runs TLS.
func (g *Guard) TLS() bool { return g != nil && g.serverTLS != nil }

// Describe says what g does, for logs ("cluster secret", "mutual TLS",
// "mutual TLS and cluster secret", "none").
func (g *Guard) Describe() string {
	switch {
	case g.TLS() && g.Secret():
		return "mutual TLS and cluster secret"
	case g.TLS():
		return "mutual TLS"
	case g.Secret():
		return "cluster secret"
	}
	return "none"
}

// Server runs the server's side of the handshakes on an accepted
// connection of kind k and returns the connection to use, or an error
// naming the peer's address (the caller closes conn). Nothing the peer
// sent is passed on before it has authenticated.
func (g *Guard) Server(ctx context.Context, conn net.Conn, k Kind) (net.Conn, error) {
	if g == nil {
		return conn, nil
	}
	c, err := g.upgrade(ctx, conn, k, Server, "")
	if err != nil {
		return nil, fmt.Errorf("%v link from %s: %w", k, conn.RemoteAddr(), err)
	}
	return c, nil
}

// Client runs the client's side of the handshakes on a connection of
// kind k dialled to addr (its host is the name the server's certificate
// must carry) and returns the connection to use.
func (g *Guard) Client(ctx context.Context, conn net.Conn, k Kind, addr string) (net.Conn, error) {
	if g == nil {
		return conn, nil
	}
	c, err := g.upgrade(ctx, conn, k, Client, addr)
	if err != nil {
		return nil, fmt.Errorf("%v link to %s: %w", k, addr, err)
	}
	return c, nil
}

// plainPeerAlert is a TLS record holding a fatal unexpected_message
// alert, written to a peer whose first bytes were not TLS.
var plainPeerAlert = []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a}

func (g *Guard) upgrade(ctx context.Context, conn net.Conn, k Kind, role Role, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// A cancelled ctx unblocks the handshake's reads and writes.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	c := conn
	if g.serverTLS != nil {
		var tc *tls.Conn
		if role == Server {
			tc = tls.Server(conn, g.serverTLS)
		} else {
			cfg := g.clientTLS.Clone()
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			cfg.ServerName = host
			tc = tls.Client(conn, cfg)
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			var plain tls.RecordHeaderError
			if role == Server && errors.As(err, &plain) && plain.Conn != nil {
				// A peer that speaks no TLS (a 0.6 tool without the
				// options) is told so with a fatal alert, which it
				// reads as bytes where it expected none or a frame: a
				// plain close could pass for a request taken.
				_, _ = plain.Conn.Write(plainPeerAlert) // (best effort: the handshake's error is what is reported)
			}
			return nil, fmt.Errorf("%w: TLS: %w%s", ErrHandshake, err, tlsHint(role, err))
		}
		c = tc
		if len(g.secret) == 0 {
			// In TLS 1.3 a client finishes its handshake before the
			// server has checked the client's certificate: one byte from
			// the server says it has, so a refused client learns why
			// here (the server's alert) and not later from a reset.
			if err := tlsAccepted(tc, role); err != nil {
				return nil, fmt.Errorf("%w: TLS: %w%s", ErrHandshake, err, tlsHint(role, err))
			}
		}
	}
	if len(g.secret) > 0 {
		send, recv, err := g.secretHandshake(c, k, role)
		switch {
		case err == nil:
		case errors.Is(err, ErrHandshake):
			return nil, err
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w: no answer within %v: %w", ErrHandshake, g.timeout, err)
		default:
			return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
		}
		if g.serverTLS == nil {
			c = NewConn(c, send, recv)
		}
	}
	if !stop() {
		// The timeout (or ctx) ended the handshake's time just as it
		// finished: the deadline it set would break the connection.
		return nil, fmt.Errorf("%w: not finished within %v", ErrHandshake, g.timeout)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return c, nil
}

// tlsHint is what to add to a client's TLS handshake error: the server's
// "certificate required" means the client sent none, which a client does
// when no CA the server names signed its certificate.
func tlsHint(role Role, err error) string {
	if role != Client || !strings.Contains(err.Error(), "certificate required") {
		return ""
	}
	return " (the server trusts no CA that signed this end's --tls-cert: use a certificate of the cluster's CA)"
}

// tlsAccepted is the server's one-byte word that it accepted the
// client's certificate: the server writes it, the client waits for it.
func tlsAccepted(c net.Conn, role Role) error {
	var b [1]byte
	if role == Server {
		b[0] = 1
		_, err := c.Write(b[:])
		return err
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	switch {
	case b[0] == magic[0]:
		// The first byte of a secret's challenge: it runs a cluster
		// secret inside TLS, and this end has none.
		return errors.New("the server asks for a cluster secret as well as TLS: give the same --cluster-secret-file too")
	case b[0] != 1:
		return fmt.Errorf("the server's acceptance is %#x, want 0x01", b[0])
	}
	return nil
}

// secretHandshake runs Handshake over c and returns the record keys.
func (g *Guard) secretHandshake(c net.Conn, k Kind, role Role) (send, recv []byte, err error) {
	var nonce [NonceSize]byte
	if _, err := io.ReadFull(g.rand, nonce[:]); err != nil {
		return nil, nil, fmt.Errorf("a random nonce: %w", err)
	}
	h := NewHandshake(role, k, g.secret, nonce)
	if msg := h.Start(); msg != nil {
		if _, err := c.Write(msg); err != nil {
			return nil, nil, fmt.Errorf("sending the handshake: %w", err)
		}
	}
	buf := make([]byte, ResponseSize)
	for !h.Done() {
		in := buf[:h.Expect()]
		if _, err := io.ReadFull(c, in); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil, fmt.Errorf("%w: the peer closed the connection during the handshake (has it another cluster secret, or none, or does it run TLS where this worker does not? its log says)", ErrHandshake)
			}
			return nil, nil, fmt.Errorf("reading the handshake: %w", err)
		}
		reply, err := h.Receive(in)
		if err != nil {
			return nil, nil, err
		}
		if reply != nil {
			if _, err := c.Write(reply); err != nil {
				return nil, nil, fmt.Errorf("sending the handshake: %w", err)
			}
		}
	}
	send, recv = h.Keys()
	return send, recv, nil
}

// Exposed reports whether a listener bound to addr (host:port) can be
// reached from other machines: any address but loopback ("" and
// 0.0.0.0 bind every interface).
func Exposed(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
