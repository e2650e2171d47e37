//go:build !linux

package source

import "net"

// boundPort, where sockets cannot be bound apart from listening, listens
// at once: connections made before Serve wait in the kernel's backlog
// instead of being refused.
type boundPort struct{ ln net.Listener }

func bindPort(addr string) (*boundPort, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &boundPort{ln: ln}, nil
}

func (b *boundPort) Addr() net.Addr { return b.ln.Addr() }

func (b *boundPort) listen() (net.Listener, error) { return b.ln, nil }

func (b *boundPort) Close() error { return b.ln.Close() }
