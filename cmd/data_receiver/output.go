package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"
)

// output is the destination shared by all connections: it writes whole
// chunks atomically, counts messages for --expect and remembers the first
// write error. It is safe for concurrent use; its methods block only on the
// underlying writer.
type output struct {
	mu      sync.Mutex
	w       *bufio.Writer // nil with --no-write
	c       io.Closer     // closed by close; nil for stdout
	limit   uint64        // 0 means unlimited
	count   uint64
	err     error
	reached chan struct{} // closed when count reaches limit
	failed  chan struct{} // closed on the first write error
}

// newOutput returns an output writing to w (nil discards). c, if not nil,
// is closed by close. limit is the --expect count, 0 for none.
func newOutput(w io.Writer, c io.Closer, limit uint64) *output {
	o := &output{c: c, limit: limit, reached: make(chan struct{}), failed: make(chan struct{})}
	if w != nil {
		o.w = bufio.NewWriterSize(w, 256*1024)
	}
	return o
}

// stopped reports whether nothing more may be written. Caller holds mu.
func (o *output) stopped() bool {
	return o.err != nil || (o.limit > 0 && o.count >= o.limit)
}

// writeLines writes a streaming-mode chunk: whole lines, except that the
// last one may be partial (connection closed or line too long). Only
// newline-terminated lines are counted. With a limit the chunk is cut after
// the line that reaches it.
func (o *output) writeLines(chunk []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped() {
		return
	}
	n := uint64(bytes.Count(chunk, []byte{'\n'}))
	if o.limit > 0 && o.count+n >= o.limit {
		n = o.limit - o.count
		chunk = chunk[:indexNth(chunk, '\n', int(n))+1]
	}
	o.write(chunk, n)
}

// writeRecords writes a framed-mode chunk holding len(ends) records, record
// i ending at offset ends[i]. With a limit the chunk is cut after the record
// that reaches it.
func (o *output) writeRecords(chunk []byte, ends []int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped() || len(ends) == 0 {
		return
	}
	n := uint64(len(ends))
	if o.limit > 0 && o.count+n >= o.limit {
		n = o.limit - o.count
		chunk = chunk[:ends[n-1]]
	}
	o.write(chunk, n)
}

// write writes chunk, adds n to the count and signals the limit. Caller
// holds mu.
func (o *output) write(chunk []byte, n uint64) {
	if o.w != nil {
		if _, err := o.w.Write(chunk); err != nil {
			o.fail(err)
			return
		}
	}
	o.count += n
	if o.limit > 0 && o.count == o.limit {
		close(o.reached)
	}
}

// fail records the first write error. Caller holds mu.
func (o *output) fail(err error) {
	if o.err == nil {
		o.err = fmt.Errorf("write output: %w", err)
		close(o.failed)
	}
}

// received returns how many messages have been written (or discarded with
// --no-write).
func (o *output) received() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count
}

// flush writes buffered data to the underlying writer.
func (o *output) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w != nil && o.err == nil && o.w.Buffered() > 0 {
		if err := o.w.Flush(); err != nil {
			o.fail(err)
		}
	}
}

// close flushes, closes the file if any and returns the first error.
func (o *output) close() error {
	o.flush()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.c != nil {
		if err := o.c.Close(); err != nil && o.err == nil {
			o.err = fmt.Errorf("close output: %w", err)
		}
	}
	return o.err
}

// indexNth returns the index of the nth (1-based) occurrence of c in b, or
// -1 if there are fewer.
func indexNth(b []byte, c byte, n int) int {
	off := 0
	for ; n > 0; n-- {
		i := bytes.IndexByte(b[off:], c)
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return off - 1
}
