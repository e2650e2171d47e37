package source

import "context"

// Batch is a run of complete frame payloads read from one source
// connection, in arrival order. Frame i is Buf[Ends[i-1]:Ends[i]] (with
// Ends[-1] taken as 0). Headers are stripped: each frame is the payload the
// decoder's decode() receives. A Batch is owned by whoever received it from
// Deliver; the source never touches it again.
type Batch struct {
	Source int     // index of the source in the application (topology order)
	Buf    []byte  // payload bytes, back to back
	Ends   []int32 // end offset of each frame in Buf
	// Ingest is when the batch entered the engine (Unix nanoseconds); the
	// consumer sets it if the source left it zero.
	Ingest int64
	// Raw batches come from a source whose frames only the application
	// can find (a decoder with its own payload_length): Buf is bytes as
	// read from connection Conn, Ends is empty, and the consumer frames
	// them, keeping a partial frame per connection. Closed marks the
	// connection's end (Buf then empty). Reject closes the connection
	// with a logged reason when its bytes cannot be framed; it may be
	// called from any goroutine, more than once.
	Raw    bool
	Conn   uint64
	Closed bool
	Reject func(reason string)
}

// Len returns the number of frames in the batch.
func (b *Batch) Len() int { return len(b.Ends) }

// Frame returns the payload of frame i. The slice aliases b.Buf.
func (b *Batch) Frame(i int) []byte {
	start := int32(0)
	if i > 0 {
		start = b.Ends[i-1]
	}
	return b.Buf[start:b.Ends[i]]
}

// Consumer receives batches from sources. Deliver blocks while the consumer
// is full, which is how backpressure reaches the source sockets: a
// connection goroutine blocked in Deliver stops reading its socket. Deliver
// returns ctx.Err() if ctx ends first. Safe for concurrent use.
type Consumer interface {
	Deliver(ctx context.Context, b Batch) error
}

// LengthFunc computes a frame's payload length from its header bytes
// (exactly the framer's header length). An error means the stream can no
// longer be framed; the connection is closed with that reason.
type LengthFunc func(header []byte) (int, error)
