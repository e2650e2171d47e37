package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"
)

const (
	// sentFile is where sent messages are logged, relative to the working
	// directory, as with Giles.
	sentFile = "sent.txt"
	// progressEvery is how often a progress line goes to stderr.
	progressEvery = 2 * time.Second
	// varyEvery is how many batches share one --vary-by draw.
	varyEvery = 1000
	// dialTimeout bounds the connection attempt.
	dialTimeout = 10 * time.Second
)

// send runs one send: it loads the input, connects, writes batches until
// done and closes the connection. It returns nil when every message it meant
// to send was written.
func send(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	src, err := newSource(cfg)
	if err != nil {
		return err
	}
	var sentTxt *sentLog
	if !cfg.noWrite {
		if sentTxt, err = createSentLog(sentFile); err != nil {
			return err
		}
	}

	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.host)
	if err != nil {
		// 0.6's words (spec 6.1), which scripts look for.
		return errors.Join(fmt.Errorf("Unable to connect to %s: %w", cfg.host, err), sentTxt.close())
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(true); err != nil {
			conn.Close()
			return errors.Join(fmt.Errorf("set TCP_NODELAY on %s: %w", cfg.host, err), sentTxt.close())
		}
	}
	fmt.Fprintln(stdout, "Connected")

	// A cancelled context unblocks a write stuck on backpressure.
	stopAfter := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	sent, sendErr := sendBatches(ctx, cfg, src, conn, sentTxt, stderr)
	stopAfter()
	if sendErr != nil && ctx.Err() != nil {
		sendErr = fmt.Errorf("interrupted after sending %d of %d messages", sent, cfg.messages)
	}

	closeErr := closeConn(conn)
	if sendErr == nil && closeErr != nil {
		sendErr = fmt.Errorf("close connection to %s: %w", cfg.host, closeErr)
	}
	return errors.Join(sendErr, sentTxt.close())
}

// closeConn half-closes conn so the peer sees an orderly end of stream, then
// releases it.
func closeConn(conn net.Conn) error {
	var err error
	if tc, ok := conn.(*net.TCPConn); ok {
		err = tc.CloseWrite()
	}
	return errors.Join(err, conn.Close())
}

// span is the [start, end) offsets of one logged message in a batch.
type span struct{ start, end int }

// sendBatches is the hot loop. It writes one batch per interval until
// cfg.messages were sent, the source is exhausted, ctx is cancelled or a
// write fails, and returns how many messages were written. It does not
// allocate per message once its buffers have grown.
func sendBatches(ctx context.Context, cfg *config, src source, w io.Writer, sentTxt *sentLog, stderr io.Writer) (uint64, error) {
	var (
		wire      = make([]byte, 0, 64*1024)
		spans     = make([]span, 0, cfg.batchSize)
		sent      uint64
		extra     uint64 // current --vary-by draw
		batchNo   uint64
		start     = time.Now()
		nextBatch = start
		prog      = progress{last: start, w: stderr}
		tick      *time.Timer // created on first use
		exhausted bool
	)
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for sent < cfg.messages && !exhausted {
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
		if cfg.varyBy > 0 && batchNo%varyEvery == 0 {
			extra = rand.Uint64N(cfg.varyBy)
		}
		batchNo++
		n := min(cfg.batchSize+extra, cfg.messages-sent)

		wire, spans = wire[:0], spans[:0]
		for range n {
			var logStart int
			var ok bool
			if wire, logStart, ok = src.next(wire); !ok {
				exhausted = true
				break
			}
			spans = append(spans, span{logStart, len(wire)})
		}
		if len(spans) == 0 {
			break
		}
		if _, err := w.Write(wire); err != nil {
			return sent, fmt.Errorf("write to %s after %d messages: %w", cfg.host, sent, err)
		}
		sent += uint64(len(spans))
		now := time.Now()
		if err := sentTxt.record(now.UnixNano(), wire, spans); err != nil {
			return sent, err
		}
		prog.report(now, sent, cfg.messages)

		if cfg.interval <= 0 || sent >= cfg.messages || exhausted {
			continue
		}
		nextBatch = nextBatch.Add(cfg.interval)
		wait := nextBatch.Sub(now)
		if wait <= -cfg.interval {
			// Blocked by backpressure for more than a tick: drop the missed
			// ticks rather than bursting to catch up.
			nextBatch = now
			continue
		}
		if wait <= 0 {
			continue
		}
		if tick == nil {
			tick = time.NewTimer(wait)
		} else {
			tick.Reset(wait)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return sent, ctx.Err()
		}
	}
	prog.finish(time.Now(), start, sent)
	return sent, nil
}

// progress prints a progress line to stderr about every progressEvery.
type progress struct {
	w        io.Writer
	last     time.Time
	lastSent uint64
	printed  bool
}

func (p *progress) report(now time.Time, sent, total uint64) {
	el := now.Sub(p.last)
	if el < progressEvery {
		return
	}
	rate := float64(sent-p.lastSent) / el.Seconds()
	fmt.Fprintf(p.w, "sender: sent %d of %d messages (%.0f msg/s)\n", sent, total, rate)
	p.last, p.lastSent, p.printed = now, sent, true
}

// finish prints a summary if progress lines were printed.
func (p *progress) finish(now, start time.Time, sent uint64) {
	if !p.printed {
		return
	}
	el := now.Sub(start)
	fmt.Fprintf(p.w, "sender: sent %d messages in %s (%.0f msg/s)\n", sent, el.Round(time.Millisecond), float64(sent)/el.Seconds())
}

// sentLog writes "<wall-clock ns>, <message>" lines to sent.txt. A nil
// *sentLog discards everything.
type sentLog struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

// createSentLog truncates (or creates) path.
func createSentLog(path string) (*sentLog, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &sentLog{f: f, w: bufio.NewWriterSize(f, 1<<20), buf: make([]byte, 0, 32)}, nil
}

// record logs every message of a batch with timestamp at.
func (l *sentLog) record(at int64, wire []byte, spans []span) error {
	if l == nil {
		return nil
	}
	l.buf = strconv.AppendInt(l.buf[:0], at, 10)
	l.buf = append(l.buf, ", "...)
	for _, s := range spans {
		l.w.Write(l.buf)
		l.w.Write(wire[s.start:s.end])
		if err := l.w.WriteByte('\n'); err != nil {
			return fmt.Errorf("write %s: %w", l.f.Name(), err)
		}
	}
	return nil
}

// close flushes and closes the file.
func (l *sentLog) close() error {
	if l == nil {
		return nil
	}
	err := l.w.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", l.f.Name(), err)
	}
	return nil
}
