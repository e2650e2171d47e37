package source

import (
	"fmt"
	"math"
)

// DefaultMaxPayload is the payload limit used when Framer.MaxPayload or
// TCPConfig.MaxPayload is zero.
const DefaultMaxPayload = 16 << 20

// Framer describes a length-prefixed framing: a fixed header of HeaderLen
// bytes, from which Length computes the payload length, followed by that
// many payload bytes. A Framer is a read-only description; the per
// connection state lives in a Stream. Length is called on the Stream's
// goroutine with a header slice that it must not retain.
type Framer struct {
	HeaderLen  int        // header bytes per frame, at least 1
	Length     LengthFunc // payload length from the header bytes
	MaxPayload int        // largest accepted payload; 0 means DefaultMaxPayload
}

// NewStream returns the framing state for one byte stream (one
// connection). It panics if the Framer has no Length or a HeaderLen below
// 1, which is a wiring bug, not an input error.
func (f *Framer) NewStream() *Stream {
	if f.HeaderLen < 1 || f.Length == nil {
		panic(fmt.Sprintf("source: framer with header length %d and length func %v is unusable",
			f.HeaderLen, f.Length != nil))
	}
	limit := f.MaxPayload
	if limit <= 0 {
		limit = DefaultMaxPayload
	}
	return &Stream{
		headerLen: f.HeaderLen,
		length:    f.Length,
		limit:     limit,
		hdr:       make([]byte, 0, f.HeaderLen),
	}
}

// Stream splits one byte stream into frames. Feed it the bytes in arrival
// order, cut anywhere; it keeps whatever belongs to an unfinished frame and
// completes it on a later Feed. A Stream is not safe for concurrent use.
//
// Bytes of a frame that spans Feed calls are copied into a buffer the
// Stream owns (at most one payload, so at most MaxPayload bytes) and then
// once more into the batch; a frame inside one Feed is copied once.
type Stream struct {
	headerLen int
	length    LengthFunc
	limit     int

	hdr       []byte // partial header carried from earlier Feeds
	inPayload bool   // header decoded, payload not complete
	size      int    // payload length of the current frame
	need      int    // payload bytes of the current frame not yet seen
	pending   []byte // payload bytes of the current frame from earlier Feeds
	err       error  // sticky framing error
	spans     []span // scratch: complete payloads found by the current Feed
}

// span is a payload range in the bytes given to one Feed.
type span struct{ start, end int }

// pendingKeep is the largest carry buffer kept for reuse after a split
// frame completes; bigger ones are released.
const pendingKeep = 64 << 10

// Feed consumes p and appends the payload (header stripped) of every frame
// it completes to b, in order, growing b.Buf and b.Ends at most once each
// to exactly the size needed. With maxFrames > 0 it stops right after the
// maxFrames-th frame completed in this call; otherwise it consumes all of
// p. It returns the number of bytes of p consumed; the caller feeds the
// rest again later (after delivering b).
//
// A framing error (the LengthFunc fails, or a length is negative or above
// the limit) is returned after the frames before it were appended; the
// Stream is then broken and every later Feed returns the same error.
//
// Feed keeps no reference to p or b: the caller may reuse p and hand b
// away as soon as Feed returns.
func (s *Stream) Feed(b *Batch, p []byte, maxFrames int) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	spans := s.spans[:0]
	carried := len(s.pending) // belongs to the first frame completed here
	tail := -1                // start in p of an incomplete payload
	i := 0
	for i < len(p) {
		if maxFrames > 0 && len(spans) >= maxFrames {
			break
		}
		if !s.inPayload {
			var header []byte
			if len(s.hdr) == 0 && len(p)-i >= s.headerLen {
				header = p[i : i+s.headerLen]
				i += s.headerLen
			} else {
				k := min(s.headerLen-len(s.hdr), len(p)-i)
				s.hdr = append(s.hdr, p[i:i+k]...)
				i += k
				if len(s.hdr) < s.headerLen {
					break
				}
				header = s.hdr
			}
			n, err := s.length(header)
			switch {
			case err != nil:
				s.err = fmt.Errorf("bad frame header %x: %w", header, err)
			case n < 0:
				s.err = fmt.Errorf("bad frame header %x: negative payload length %d", header, n)
			case n > s.limit:
				s.err = fmt.Errorf("frame of %d bytes exceeds the limit of %d bytes", n, s.limit)
			}
			s.hdr = s.hdr[:0]
			if s.err != nil {
				break
			}
			s.inPayload, s.size, s.need = true, n, n
		}
		start := i
		k := min(s.need, len(p)-i)
		i += k
		s.need -= k
		if s.need > 0 {
			tail = start
			break
		}
		spans = append(spans, span{start, i})
		s.inPayload = false
	}
	s.spans = spans

	s.appendFrames(b, p, spans, carried)
	if carried > 0 && len(spans) > 0 {
		// The carried bytes went out with the first frame.
		s.pending = s.pending[:0]
		if cap(s.pending) > pendingKeep {
			s.pending = nil
		}
	}
	if tail >= 0 {
		s.pending = append(s.pending, p[tail:i]...)
	}
	return i, s.err
}

// appendFrames copies the payloads found by Feed into b, the first one
// prefixed by the carried bytes if any.
func (s *Stream) appendFrames(b *Batch, p []byte, spans []span, carried int) {
	if len(spans) == 0 {
		return
	}
	total := 0
	if carried > 0 {
		total = carried
	}
	for _, sp := range spans {
		total += sp.end - sp.start
	}
	if len(b.Buf)+total > math.MaxInt32 {
		// Frames are bounded by the limit and batches by the caller;
		// a batch this large means the caller never delivers.
		panic(fmt.Sprintf("source: batch of %d bytes overflows its int32 frame offsets", len(b.Buf)+total))
	}
	if cap(b.Buf)-len(b.Buf) < total {
		buf := make([]byte, len(b.Buf), len(b.Buf)+total)
		copy(buf, b.Buf)
		b.Buf = buf
	}
	if cap(b.Ends)-len(b.Ends) < len(spans) {
		ends := make([]int32, len(b.Ends), len(b.Ends)+len(spans))
		copy(ends, b.Ends)
		b.Ends = ends
	}
	for j, sp := range spans {
		if j == 0 && carried > 0 {
			b.Buf = append(b.Buf, s.pending...)
		}
		b.Buf = append(b.Buf, p[sp.start:sp.end]...)
		b.Ends = append(b.Ends, int32(len(b.Buf)))
	}
}

// Finish reports whether the stream may end here: nil at a frame boundary,
// otherwise a "truncated frame" error saying how much of the header or
// payload arrived. After a framing error it returns that error.
func (s *Stream) Finish() error {
	switch {
	case s.err != nil:
		return s.err
	case s.inPayload:
		return fmt.Errorf("truncated frame: got %d of %d payload bytes", s.size-s.need, s.size)
	case len(s.hdr) > 0:
		return fmt.Errorf("truncated frame: got %d of %d header bytes", len(s.hdr), s.headerLen)
	}
	return nil
}
