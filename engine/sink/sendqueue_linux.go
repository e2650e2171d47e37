package sink

import (
	"net"
	"syscall"
	"unsafe"
)

// tcpClose is the kernel's TCP_CLOSE socket state (include/net/tcp_states.h):
// the connection was reset or is gone, and its send queue was purged.
const tcpClose = 7

// sendQueueLen returns how many bytes the kernel holds for conn that the
// peer has not acknowledged yet (SIOCOUTQ), or false if the connection was
// reset (the kernel then dropped the queue, so a 0 would wrongly say that
// everything was acknowledged). For a connection that is not a TCP socket
// it returns 0: what it accepted counts as delivered.
func sendQueueLen(conn net.Conn) (int, bool) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return 0, true
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, false // closed
	}
	var outq int32
	var info [1]byte // tcp_info starts with the state byte
	known := false
	cerr := rc.Control(func(fd uintptr) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&outq))); e != 0 {
			return
		}
		// The state is read after the queue: if a reset came in between,
		// the state says so.
		size := uint32(len(info))
		if _, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
			return
		}
		known = info[0] != tcpClose
	})
	if cerr != nil || !known || outq < 0 {
		return 0, false
	}
	return int(outq), true
}
