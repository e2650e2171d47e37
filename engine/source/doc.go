// Package source reads framed messages from the outside world and hands
// them, in batches, to a Consumer. It is pure Go: it knows nothing of
// Python; a decoder's framing reaches it as a header length and a
// LengthFunc (ParseLengthFormat compiles the common struct formats, and the
// host wraps the Python payload_length for the rest).
//
// # Framing
//
// A Framer describes a length-prefixed framing; a Stream applies it to one
// byte stream. Feed accepts bytes cut at any offset and appends every
// completed payload (header stripped) to a Batch. Zero-length payloads are
// delivered as empty frames. A length above the limit, a negative length
// or a LengthFunc error breaks the Stream: the frames before it are still
// returned, and the connection is expected to close. Finish tells a clean
// end (at a frame boundary) from a truncated one.
//
// # TCP source
//
// Use a TCP in this order:
//
//  1. NewTCP checks the configuration and applies defaults. An invalid
//     configuration is an error wrapping ErrConfig (a wiring bug or a bad
//     decoder definition), never a listen error.
//  2. Bind binds the socket without listening: the port is taken, but a
//     client that connects is refused until Serve, as 0.6 refused
//     connections to its sources until the cluster was ready. A bind
//     failure is a user configuration error, returned as
//     "<name> source is unable to listen on <addr>: ...".
//  3. Listen starts listening (and logs "<name> source is listening on
//     <addr>"); clients can connect from then on.
//  4. Serve(stop, drain) accepts and serves (listening first if Listen
//     was not called) until stop ends, then closes
//     the listener and every socket and returns once all its goroutines
//     have exited (see Stopping). A source that will not be served after
//     all (another part of the worker failed to start) is closed with
//     Close instead, which frees its port.
//
// Goroutines: Serve runs the accept loop (engine/connset) on the caller's
// goroutine and
// starts one goroutine per connection, at most MaxConns at a time; further
// connections stay in the kernel's backlog until one ends. Each connection
// goroutine owns its socket, its read buffer and its Stream, and is the
// only caller of Deliver for that connection, so batches from one
// connection are delivered in order, one at a time. Batches from different
// connections may be delivered concurrently.
//
// Buffers: each read of up to ReadBuffer bytes is framed into one or more
// Batches (at most MaxBatch frames each), delivered at once, without
// waiting for more input. Every Batch has freshly allocated Buf and Ends,
// sized exactly; after Deliver the Consumer owns them and the source never
// touches them again.
//
// Backpressure: while Deliver blocks, its connection is not read, so the
// kernel buffers fill and the sender's writes block. Nothing is dropped.
//
// Stopping: when stop ends, the listener and every socket are closed, so
// no connection reads again, but each connection goroutine still frames
// the bytes it had already read and delivers them: Deliver is always
// called with the drain context, so a batch blocked in Deliver at the stop
// is not lost either. Only a frame cut by the stop (its bytes had not all
// arrived) is dropped, with a log line. When drain ends as well, a
// connection still delivering gives up and logs what it drops: the frames
// and payload bytes of the batch it held and the bytes not yet framed.
// Pass a drain context that outlives stop by the time the consumer needs
// to take what is in flight (the worker's shutdown deadline).
//
// Failures: a framing error, a peer that closes in the middle of a frame,
// a read error or a Deliver error closes that connection only, with a log
// line naming the source, the remote address and the reason. A clean close
// at a frame boundary is not logged.
package source
