package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

const (
	// readSize is the minimum free space offered to each read.
	readSize = 64 * 1024
	// maxPartialLine bounds the memory a connection may hold while waiting
	// for a newline; longer partial lines are written as they are.
	maxPartialLine = 16 << 20
	// flushEvery is the longest time data waits in the output buffer.
	flushEvery = 50 * time.Millisecond
	// partialIdle is how long an unterminated tail waits for its newline
	// before it is written as it is (binary output has no newlines):
	// longer than TCP takes to send a lost segment again (200 ms at
	// first, then doubling), so that a line cut by a lost packet waits
	// for its end rather than letting another connection's lines in.
	partialIdle = time.Second
)

// receiver accepts connections and copies their data to out. Its methods
// are safe for concurrent use.
type receiver struct {
	framed bool
	out    *output
	stderr io.Writer // safe for concurrent use

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup
}

func newReceiver(framed bool, out *output, stderr io.Writer) *receiver {
	return &receiver{framed: framed, out: out, stderr: stderr, conns: make(map[net.Conn]struct{})}
}

// start serves ln in the background until shutdown.
func (r *receiver) start(ln net.Listener) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.accept(ln)
	}()
}

// accept runs the accept loop; it returns when ln is closed.
func (r *receiver) accept(ln net.Listener) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || r.isClosing() {
				return
			}
			// Typically out of file descriptors: report and retry.
			fmt.Fprintf(r.stderr, "data_receiver: accept: %v\n", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !r.track(conn) {
			conn.Close()
			return
		}
		go func() {
			defer r.wg.Done()
			defer r.untrack(conn)
			r.serve(conn)
		}()
	}
}

// track registers conn and its goroutine; false means shutdown started.
func (r *receiver) track(conn net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	r.conns[conn] = struct{}{}
	r.wg.Add(1)
	return true
}

func (r *receiver) untrack(conn net.Conn) {
	r.mu.Lock()
	delete(r.conns, conn)
	r.mu.Unlock()
	conn.Close()
}

func (r *receiver) isClosing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// shutdown closes ln and every connection and waits until all handlers have
// written what they hold.
func (r *receiver) shutdown(ln net.Listener) {
	r.mu.Lock()
	r.closing = true
	ln.Close()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// serve reads conn until it closes, writing its data to r.out.
func (r *receiver) serve(conn net.Conn) {
	var err error
	if r.framed {
		err = r.serveFramed(conn)
	} else {
		err = r.serveStream(conn)
	}
	if err != nil && !r.isClosing() {
		fmt.Fprintf(r.stderr, "data_receiver: connection from %s: %v\n", conn.RemoteAddr(), err)
	}
}

// readMore reads once from conn into the free space of buf, growing it so
// that at least readSize bytes are free. io.EOF is returned as nil with
// done set.
func readMore(conn net.Conn, buf []byte) (_ []byte, done bool, err error) {
	if cap(buf)-len(buf) < readSize {
		nb := make([]byte, len(buf), 2*cap(buf)+readSize)
		copy(nb, buf)
		buf = nb
	}
	n, err := conn.Read(buf[len(buf):cap(buf)])
	buf = buf[:len(buf)+n]
	if errors.Is(err, io.EOF) {
		return buf, true, nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return buf, false, err
	}
	if err != nil {
		return buf, true, fmt.Errorf("read: %w", err)
	}
	return buf, false, nil
}

// serveStream copies conn's bytes unchanged. It writes whole lines so
// that connections do not interleave mid-line; a tail without a newline is
// written once the connection has been quiet for partialIdle (binary
// output has no newlines and must not wait for the connection to close).
func (r *receiver) serveStream(conn net.Conn) error {
	buf := make([]byte, 0, readSize)
	for {
		before := len(buf)
		var done bool
		var err error
		if len(buf) > 0 {
			conn.SetReadDeadline(time.Now().Add(partialIdle))
		} else {
			conn.SetReadDeadline(time.Time{})
		}
		buf, done, err = readMore(conn, buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			r.out.writeLines(buf)
			buf = buf[:0]
			continue
		}
		if i := bytes.LastIndexByte(buf[before:], '\n'); i >= 0 {
			end := before + i + 1
			r.out.writeLines(buf[:end])
			buf = buf[:copy(buf, buf[end:])]
		} else if len(buf) >= maxPartialLine {
			r.out.writeLines(buf)
			buf = buf[:0]
		}
		if done {
			if len(buf) > 0 {
				r.out.writeLines(buf)
			}
			return err
		}
	}
}

// serveFramed parses uint32 frames from conn and writes each payload
// followed by a newline. The frames completed by one read are written as one
// chunk.
func (r *receiver) serveFramed(conn net.Conn) error {
	var (
		buf   = make([]byte, 0, readSize)
		chunk []byte
		ends  []int
	)
	for {
		var done bool
		var err error
		buf, done, err = readMore(conn, buf)
		chunk, ends = chunk[:0], ends[:0]
		off := 0
		for len(buf)-off >= 4 {
			n := int(binary.BigEndian.Uint32(buf[off:]))
			if len(buf)-off-4 < n {
				break
			}
			chunk = append(chunk, buf[off+4:off+4+n]...)
			chunk = append(chunk, '\n')
			ends = append(ends, len(chunk))
			off += 4 + n
		}
		r.out.writeRecords(chunk, ends)
		buf = buf[:copy(buf, buf[off:])]
		if done {
			if len(buf) > 0 {
				err = errors.Join(err, truncatedFrame(buf))
			}
			return err
		}
	}
}

// truncatedFrame describes the incomplete frame rest left at close.
func truncatedFrame(rest []byte) error {
	if len(rest) < 4 {
		return fmt.Errorf("closed inside a frame header: %d of 4 header bytes received", len(rest))
	}
	n := binary.BigEndian.Uint32(rest)
	return fmt.Errorf("closed inside a frame: %d of %d payload bytes received", len(rest)-4, n)
}
