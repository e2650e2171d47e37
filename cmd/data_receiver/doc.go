// Command data_receiver listens for TCP connections from Wallaroo TCP sinks
// and writes what they send to stdout or a file, like utils/data_receiver of
// Wallaroo 0.6.
//
// Usage:
//
//	data_receiver --listen H:P [--framed] [--no-write] [--output FILE]
//	              [--expect N [--timeout D]]
//
// Behaviour:
//
//  1. Once listening it prints "Listening on H:P" with the bound address
//     (useful with port 0). The line goes to stderr when the data goes to
//     stdout, so stdout carries nothing but data; otherwise (--output FILE or
//     --no-write) it goes to stdout.
//  2. Any number of connections are served concurrently.
//  3. Streaming mode (default) copies the received bytes unchanged. Each
//     connection is buffered up to its last newline and whole lines are
//     written, so lines from different connections never interleave; a
//     partial line (binary output has no newlines) is written once its
//     connection has been quiet for 1 s, or when it closes. A partial line
//     longer than maxPartialLine is written early to bound memory. Binary
//     records from several connections at once (a cluster's workers) can
//     hold newline bytes and be cut into each other: --framed keeps them
//     whole.
//  4. --framed parses big-endian uint32 length frames and writes each payload
//     followed by "\n". Frames of one read are written together. Bytes of an
//     incomplete frame left when a connection closes are reported on stderr.
//  5. Output is buffered and flushed at least every flushEvery.
//  6. --no-write discards the data but still counts it for --expect.
//  7. --expect N (our addition) exits 0 once N messages have been written:
//     N frames with --framed, N newline-terminated lines otherwise. Output
//     stops at exactly N; anything received after the Nth is discarded.
//     --timeout D makes the receiver exit 1 with an error if N is not reached
//     within D of listening.
//  8. SIGINT/SIGTERM close all connections (writing their partial lines),
//     flush and exit 0.
//
// Pony runtime options (--ponythreads 4, --ponynoblock, any --pony*) are
// accepted and ignored so that Wallaroo 0.6 command lines work unchanged.
package main
