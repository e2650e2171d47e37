// Command sender is a load generator compatible with the Giles sender of
// Wallaroo 0.6 (giles/sender). It opens one TCP connection to a Wallaroo TCP
// source and writes messages in batches, one batch per interval, until it has
// sent --messages messages or its input is exhausted.
//
// Usage:
//
//	sender --host H:P --messages N [options]
//
// Wire output (what the TCP source receives):
//
//   - default: decimal text "1", "2", ... (first value --start-from+1), each
//     framed with a big-endian uint32 length;
//   - --file (text): every non-empty line of the files, in order, without its
//     line terminator ("\n" or "\r\n"), framed with a uint32 length;
//   - --binary --msg-size G: consecutive G-byte chunks of the files, written
//     unchanged (the files must already contain the framing);
//   - --binary --variable-size: every uint32-framed record of the files,
//     written unchanged with its prefix (zero-length records are skipped);
//   - --u64: records uint32(8+len(p)) · uint64(value) · p where p is
//     --partition. The record already carries its length, so it is meant to be
//     used with --binary --msg-size 12; without --binary a second length header
//     is added, as Giles did (spec Appendix A item 9), and a warning is
//     printed.
//
// With --binary the generated records (decimal or --u64) are written without
// an added length header, as Giles did.
//
// Behaviour:
//
//  1. Input files are read completely and turned into wire frames before the
//     connection is opened, so a missing or malformed file is reported
//     without touching the target.
//  2. Unless --no-write is given, ./sent.txt is truncated and receives one
//     line "<wall-clock ns>, <message>" per message sent; all messages of a
//     batch share the timestamp taken right after the batch was written.
//     The message is the payload without the length header the sender adds
//     (for --binary --msg-size: the whole chunk; for --u64: the whole record).
//  3. "Connected" is printed on stdout once connected; TCP_NODELAY is set.
//  4. Each batch is a single write. The write blocks while the peer does not
//     read, so Wallaroo backpressure slows the sender down. Timer ticks missed
//     while blocked are dropped, not caught up. --interval 0 sends as fast as
//     the connection accepts.
//  5. About every two seconds a progress line goes to stderr.
//  6. At the end the connection is closed and the exit status is 0. Errors
//     (bad flags, unreadable files, failed connection or write) print one line
//     "error: ..." on stderr ("error: Unable to connect to H:P: ..." for a
//     failed connection, with 0.6's words) and exit 1. SIGINT/SIGTERM stop the sender after
//     flushing sent.txt, with exit status 1.
//
// Pony runtime options (--ponythreads 4, --ponythreads=4, --ponynoblock,
// --ponypinasio and any other --pony* option) are accepted and ignored so
// that Wallaroo 0.6 command lines work unchanged. Numeric options (--messages,
// --interval, --batch-size, ...) accept underscores between digits, for
// example 100_000_000.
package main
