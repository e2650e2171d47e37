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
// writer goroutine writes all queued chunks with one writev (net.Buffers)
// when it can, and drops its references once they are written.
//
// Backpressure: at most QueueBytes are held that the kernel has not
// accepted (queued or in flight). Write blocks beyond that, so a receiver
// that does not read, or no receiver at all, eventually blocks the
// pipeline upstream. Nothing is dropped to relieve the queue.
//
// Failures: when a connection fails, the sink logs why, reconnects (the
// first attempt at once, then with exponential backoff from RetryMin to
// RetryMax) and resumes with the first byte the kernel did not accept, so
// no queued byte is lost or duplicated by the sink. Bytes the kernel
// accepted for a connection that then died are lost: TCP cannot tell which
// of them arrived. (Wallaroo 0.6 discarded the whole queue on disconnect
// and retried every 10 s.)
package sink
