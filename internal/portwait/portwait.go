// Package portwait binds a worker's listening ports again when a port is
// still held by the process that had it: a worker killed with SIGKILL
// and started again at once with the same command line (as Wallaroo's
// tools and harness do) can reach its first bind a few milliseconds
// before the kernel has released the dead process's sockets. A port that
// stays taken (another program listens there) is still an error, only
// Window later.
//
// Pure functions over the caller's bind; no goroutines.
package portwait

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Window is how long Bind keeps trying a port that is in use, and Every
// how often.
const (
	Window = 5 * time.Second
	Every  = 50 * time.Millisecond
)

// Bind calls bind until it succeeds, fails with an error other than
// EADDRINUSE, or Window has passed; the last error then says how long the
// port stayed in use. busy, if not nil, is told the first time the port
// is found in use (for a log line: the wait is not silent).
func Bind[T any](bind func() (T, error), busy func(err error)) (T, error) {
	return bindFor(Window, Every, bind, busy)
}

// Listen is Bind for a TCP listener on addr; busy, if not nil, is
// given the line to log (Busy) the first time the port is found in use,
// what naming the listener.
func Listen(addr, what string, busy func(line string)) (net.Listener, error) {
	var note func(error)
	if busy != nil {
		note = func(err error) { busy(Busy(what+" on "+addr, err)) }
	}
	return Bind(func() (net.Listener, error) { return net.Listen("tcp", addr) }, note)
}

// Busy is the line a caller logs for busy: what is in use, and what
// happens now.
func Busy(what string, err error) string {
	return fmt.Sprintf("%s: the port is in use (%v); trying again for up to %v, as a process killed just before may still hold it", what, err, Window)
}

func bindFor[T any](window, every time.Duration, bind func() (T, error), busy func(error)) (T, error) {
	deadline := time.Now().Add(window)
	for first := true; ; first = false {
		v, err := bind()
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			return v, err
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("%w (still in use after %v: another program listens there; stop it or choose another port)", err, window)
		}
		if first && busy != nil {
			busy(err)
		}
		time.Sleep(every)
	}
}
