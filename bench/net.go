package main

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// base is the origin of every timestamp (monotonic, nanoseconds).
var base = time.Now()

func nowNs() int64 { return int64(time.Since(base)) }

// freeAddrs returns n loopback addresses whose ports were free a moment ago.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var addrs []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

func dial(addr string) (net.Conn, error) {
	var err error
	for i := 0; i < 50; i++ {
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			return c, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

// outputParser finds latency ids in the output stream.
type outputParser interface {
	feed(data []byte, now int64)
}

// receiver is the sink: it accepts the connection of the system under test
// and reads everything it writes, counting bytes (and output separators,
// a CRC of the stream, or latency ids, as asked).
type receiver struct {
	ln      net.Listener
	conn    net.Conn
	hash    bool
	sep     byte
	parser  outputParser
	bytes   atomic.Int64
	seps    atomic.Int64
	target  atomic.Int64 // when bytes reaches it, doneAt is set
	doneAt  atomic.Int64
	crcMu   sync.Mutex
	crc     uint32
	closed  chan struct{}
	readErr error
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &receiver{ln: ln, closed: make(chan struct{})}, nil
}

func (r *receiver) addr() string { return r.ln.Addr().String() }

// serve accepts one connection and reads it until it closes. Call it in a
// goroutine before starting the system under test.
func (r *receiver) serve() {
	defer close(r.closed)
	c, err := r.ln.Accept()
	r.ln.Close()
	if err != nil {
		r.readErr = err
		return
	}
	r.conn = c
	buf := make([]byte, 256<<10)
	var total int64
	crc := uint32(0)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			now := nowNs()
			data := buf[:n]
			total += int64(n)
			if r.hash {
				crc = crc32.Update(crc, crc32.IEEETable, data)
				r.crcMu.Lock()
				r.crc = crc
				r.crcMu.Unlock()
			}
			if r.sep != 0 {
				r.seps.Add(int64(bytes.Count(data, []byte{r.sep})))
			}
			if r.parser != nil {
				r.parser.feed(data, now)
			}
			r.bytes.Store(total)
			if t := r.target.Load(); t > 0 && total >= t && r.doneAt.Load() == 0 {
				r.doneAt.Store(now)
			}
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.readErr = err
			}
			return
		}
	}
}

func (r *receiver) close() {
	r.ln.Close()
	if r.conn != nil {
		r.conn.Close()
	}
}

func (r *receiver) sum() uint32 {
	r.crcMu.Lock()
	defer r.crcMu.Unlock()
	return r.crc
}

// waitBytes waits until the receiver has got target bytes in all and
// returns the time the last of them arrived. It fails when no byte arrives
// for stall, or when the process under test exits.
func (r *receiver) waitBytes(target int64, stall time.Duration, p *proc) (int64, error) {
	r.doneAt.Store(0)
	r.target.Store(target)
	if r.bytes.Load() >= target {
		return nowNs(), nil
	}
	last := r.bytes.Load()
	lastChange := time.Now()
	for {
		if t := r.doneAt.Load(); t != 0 {
			return t, nil
		}
		time.Sleep(500 * time.Microsecond)
		got := r.bytes.Load()
		if got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > stall {
			return 0, fmt.Errorf("no output for %v: got %d of %d bytes", stall, got, target)
		}
		if p != nil && !p.alive() {
			if t := r.doneAt.Load(); t != 0 {
				return t, nil
			}
			return 0, fmt.Errorf("%s exited: got %d of %d bytes (%v)\n%s", p.name, r.bytes.Load(), target, p.waitErr(), p.output())
		}
	}
}

// latGen makes latency messages: next appends message m's frame to the
// buffer of its source and returns the id of the output it will produce,
// or -1 if it produces none that can be matched.
type latGen interface {
	next(m int, bufs [][]byte) int
}

// latSession matches outputs to the send times of their messages.
type latSession struct {
	sendNs  []atomic.Int64 // by id
	latNs   []int64        // by id; written by the receiver only
	matched atomic.Int64
	dup     atomic.Int64
	unknown atomic.Int64
}

func newLatSession(maxIDs int) *latSession {
	return &latSession{sendNs: make([]atomic.Int64, maxIDs), latNs: make([]int64, maxIDs)}
}

func (s *latSession) record(id int, now int64) {
	if id < 0 || id >= len(s.sendNs) {
		s.unknown.Add(1)
		return
	}
	sent := s.sendNs[id].Load()
	if sent == 0 {
		s.unknown.Add(1)
		return
	}
	if s.latNs[id] != 0 {
		s.dup.Add(1)
		return
	}
	s.latNs[id] = max(now-sent, 1)
	s.matched.Add(1)
}

// pacer sends latency messages at a fixed rate on one connection per
// source. Every tick it writes the messages that are due, one write per
// source; each message's send time is taken just before the writes of its
// tick. Each tick is a nanosleep on a locked thread with a 1 µs timer
// slack (Go's own timers are ~1 ms coarse here); ticks of 0.2 ms keep the
// wake-ups, which cost this program more CPU than the sending, few.
type pacer struct {
	tick  time.Duration
	gen   latGen
	conns []net.Conn
	s     *latSession
	m     int // next message number
	ids   int // ids handed out so far
}

type paceResult struct {
	firstID, lastID int // the ids sent are in [firstID, lastID)
	expected        int // how many ids were sent (outputs to wait for)
	messages        int
	maxLagNs        int64 // how far the pacer fell behind its schedule
}

// setTimerSlack makes short sleeps of this OS thread precise (Linux
// PR_SET_TIMERSLACK; the default slack is 50 µs).
func setTimerSlack(ns uintptr) {
	const prSetTimerslack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, ns, 0)
}

func (p *pacer) run(rate float64, d time.Duration) (paceResult, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setTimerSlack(1000)
	res := paceResult{firstID: p.ids}
	bufs := make([][]byte, len(p.conns))
	ids := make([]int, 0, 1024)
	start := time.Now()
	sent := 0
	for {
		el := time.Since(start)
		if el >= d {
			break
		}
		due := int(rate * el.Seconds())
		if due > sent {
			lag := el - time.Duration(float64(sent)/rate*float64(time.Second))
			res.maxLagNs = max(res.maxLagNs, int64(lag))
			ids = ids[:0]
			for i := range bufs {
				bufs[i] = bufs[i][:0]
			}
			for ; sent < due; sent++ {
				if id := p.gen.next(p.m, bufs); id >= 0 {
					ids = append(ids, id)
				}
				p.m++
			}
			if len(ids) > 0 && ids[len(ids)-1] >= len(p.s.sendNs) {
				return res, fmt.Errorf("latency: more ids than planned (%d)", len(p.s.sendNs))
			}
			t := nowNs()
			for _, id := range ids {
				p.s.sendNs[id].Store(t)
				p.ids = id + 1
			}
			res.expected += len(ids)
			for i, c := range p.conns {
				if len(bufs[i]) == 0 {
					continue
				}
				if _, err := c.Write(bufs[i]); err != nil {
					return res, err
				}
			}
		}
		// sleep until the next tick boundary
		next := (el/p.tick + 1) * p.tick
		ts := syscall.NsecToTimespec(int64(next - time.Since(start)))
		if ts.Nano() > 0 {
			_ = syscall.Nanosleep(&ts, nil)
		}
	}
	res.lastID = p.ids
	res.messages = sent
	return res, nil
}
