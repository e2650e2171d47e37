//go:build linux

package source

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// boundPort is a TCP socket bound to its address but not listening: the
// port is the source's (a worker that finds it taken says so at once),
// yet a client that connects is refused until listen, as 0.6 refused
// connections to its sources before the cluster was ready (spec 1.5).
// Only the goroutine that made it uses it (Bind, then Serve or Close).
type boundPort struct {
	fd   int // -1 once handed to a listener or closed
	addr *net.TCPAddr
}

// bindPort binds a socket to addr (host:port; an empty host or [::]
// binds every address, IPv4 and IPv6, as net.Listen does; 0.0.0.0 binds
// every IPv4 address) with SO_REUSEADDR, so a restarted worker can bind
// again while the connections of its previous run are in TIME_WAIT. A
// port another socket holds, listening or only bound, is refused.
func bindPort(addr string) (*boundPort, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	type attempt struct {
		family int
		sa     syscall.Sockaddr
		v6only bool
	}
	var attempts []attempt
	switch ip4 := ta.IP.To4(); {
	case ta.IP == nil || (ip4 == nil && ta.IP.IsUnspecified()):
		attempts = []attempt{
			{syscall.AF_INET6, &syscall.SockaddrInet6{Port: ta.Port}, false},
			{syscall.AF_INET, &syscall.SockaddrInet4{Port: ta.Port}, false}, // no IPv6 here
		}
	case ip4 != nil:
		sa := &syscall.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ip4)
		attempts = []attempt{{syscall.AF_INET, sa, false}}
	default:
		sa := &syscall.SockaddrInet6{Port: ta.Port}
		copy(sa.Addr[:], ta.IP.To16())
		if ta.Zone != "" {
			if ifi, err := net.InterfaceByName(ta.Zone); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			}
		}
		attempts = []attempt{{syscall.AF_INET6, sa, true}}
	}
	var errs []error
	for _, a := range attempts {
		fd, err := syscall.Socket(a.family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			errs = append(errs, os.NewSyscallError("socket", err))
			continue
		}
		err = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		if err == nil && a.family == syscall.AF_INET6 {
			v6only := 0
			if a.v6only {
				v6only = 1
			}
			err = syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, v6only)
		}
		if err != nil {
			syscall.Close(fd)
			return nil, os.NewSyscallError("setsockopt", err)
		}
		if err := syscall.Bind(fd, a.sa); err != nil {
			syscall.Close(fd)
			// The address is taken or not ours: trying another family
			// would not help.
			return nil, os.NewSyscallError("bind", err)
		}
		// Bound, SO_REUSEADDR off until listen: two sockets that both
		// have it may share a port while neither listens, so another
		// worker (or any program) could take the port meanwhile and
		// this one would learn it only at listen.
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 0); err != nil {
			syscall.Close(fd)
			return nil, os.NewSyscallError("setsockopt", err)
		}
		bound, err := syscall.Getsockname(fd)
		if err != nil {
			syscall.Close(fd)
			return nil, os.NewSyscallError("getsockname", err)
		}
		return &boundPort{fd: fd, addr: tcpAddrOf(bound)}, nil
	}
	return nil, errors.Join(errs...)
}

func tcpAddrOf(sa syscall.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
	}
	return &net.TCPAddr{}
}

// Addr is the bound address (its port is the one the kernel chose for
// port 0).
func (b *boundPort) Addr() net.Addr { return b.addr }

// listen starts listening and returns the socket as a net.Listener, which
// owns it from then on.
func (b *boundPort) listen() (net.Listener, error) {
	if b.fd < 0 {
		return nil, net.ErrClosed
	}
	fd := b.fd
	b.fd = -1
	// Back on for listen, which checks the port again: the connections
	// of a previous run in TIME_WAIT must not make it fail.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if err := syscall.Listen(fd, listenBacklog); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("listen", err)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("tcp:%s", b.addr))
	ln, err := net.FileListener(f) // a duplicate of fd, in Go's poller
	f.Close()
	return ln, err
}

// Close frees a port that will not be listened on.
func (b *boundPort) Close() error {
	if b.fd < 0 {
		return nil
	}
	err := syscall.Close(b.fd)
	b.fd = -1
	return err
}

// listenBacklog is the backlog asked for (the kernel caps it at
// net.core.somaxconn).
const listenBacklog = 4096
