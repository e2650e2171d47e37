// Package sink writes encoded output to the outside world. It is pure Go
// and writes bytes verbatim: framing, if any, is the encoder's business.
//
// # TCP sink
//
// A TCP is a client that connects to a data receiver. Use it in this
// order:
//
//  1. NewTCP applies defaults; nothing happens yet.
//  2. Start launches the writer goroutine, which logs
//     "TCPSink initializing connection to <addr>" and connects.
//  3. WaitConnected returns once the first connection is up (a worker is
//     not ready until its sinks are connected).
//  4. Write queues chunks; Flush waits for what was queued to be written.
//  5. Close refuses new writes, flushes with Start's context, closes the
//     connection and waits for the goroutine to exit. Cancelling Start's
//     context instead abandons whatever is still queued.
//
// Goroutines: one writer goroutine per TCP, from Start until Close or the
// end of Start's context, plus one reader goroutine per connection that
// discards anything the peer sends and notices at once when the peer
// closes or resets the connection. Write, Flush, WaitConnected and Close
// are safe for concurrent use.
//
// Buffers: Write takes ownership of its chunk and never copies it; the
// writer goroutine writes queued chunks with one writev (net.Buffers) of
// at most MaxWrite bytes (DefaultMaxWrite, 64 KiB) per call, and keeps a
// chunk until the peer has acknowledged all of it (see Failures).
//
// Backpressure: at most QueueBytes are held that the kernel has not
// accepted (queued or in flight). Write blocks beyond that, so a receiver
// that does not read, or no receiver at all, eventually blocks the
// pipeline upstream. Nothing is dropped to relieve the queue. On top of
// that, chunks the kernel accepted stay referenced until the peer
// acknowledges them: at most the socket's send buffer plus one chunk.
//
// Failures: when a connection fails, the sink logs why and reconnects
// (the first attempt at once, then with exponential backoff from RetryMin
// to RetryMax). The caller must give Write whole frames: each chunk starts
// and ends on a frame boundary (the worker writes the encoder output of
// whole messages), because chunk starts are the only frame boundaries the
// sink knows. What is guaranteed, per sink:
//
//   - Order: the bytes of each connection are a contiguous run of the
//     stream of chunks, in Write order.
//   - No torn frame: every connection after the first starts at the start
//     of a chunk, so a receiver never sees the tail of a frame whose head
//     went to a connection that died.
//   - At least once, up to the peer's acknowledgement: the new connection
//     starts at the first chunk that the old connection's peer had not
//     acknowledged completely (TCP acknowledgement, read from the kernel
//     with SIOCOUTQ after every write and when the failure is noticed), and
//     sends everything after it. So every byte is either acknowledged by
//     the receiving host or sent again, including bytes the kernel had
//     accepted for the dead connection.
//   - Duplicates are bounded: what is sent twice is the part of that first
//     chunk the peer had acknowledged, plus whatever it acknowledged after
//     the sink last asked (at most about one write, MaxWrite, when the
//     failure is a clean close the sink notices at once). Receivers that
//     must not see a frame twice have to tell duplicates apart themselves.
//
// What is not guaranteed: bytes the receiving host acknowledged but its
// application never read (it closed with unread data) are lost; TCP gives
// the sender no way to know. When the kernel cannot tell (a connection
// reset purges its queue), the sink uses what it learnt at its last write.
// On systems other than Linux, and for connections that are not TCP
// sockets, what the kernel accepted counts as acknowledged: only the chunk
// a failed write cut is sent again. (Wallaroo 0.6 discarded the whole
// queue on disconnect and retried every 10 s.)
package sink
