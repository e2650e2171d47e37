// Package external is the worker's external channel (spec 3.7): a TCP
// server that operator tools (external_sender, cluster_shutdown,
// cluster_shrinker and the test harness) use to query a worker, ask it to
// shrink the cluster, rotate its event log or shut the cluster down. It is
// pure Go; what the worker knows is reached through the Status interface,
// which the worker implements.
//
// # Wire format
//
// Every message in either direction is one frame: a big-endian uint32
// length (2 + payload length), a big-endian uint16 message id
// (extframe.MsgID) and the payload, text or JSON without a terminator. A
// frame whose length is 0 is skipped. A length of 1 (no room for the id)
// or above extframe.MaxRequestLen is malformed: the connection is closed
// and the reason logged. A client may send any number of requests on one
// connection; replies come back on it in request order. The codec and the
// message ids live in internal/extframe, which the operator tools share.
//
// # Authentication (beyond 0.6)
//
// With Config.Guard set (the worker's --cluster-secret-file or TLS
// options; see internal/linkauth), every connection first runs the
// guard's handshake, on the connection's own goroutine and bounded in
// time: a client that fails it is closed and logged with its address,
// and none of its bytes reach the frame parser. Without a guard the
// channel is 0.6's, byte for byte, so 0.6's tools keep working.
//
// # Use
//
//  1. NewServer stores the configuration; nothing happens yet.
//  2. Listen binds the socket. A bind failure is a user configuration
//     error, returned as "external channel: unable to listen on <addr>: ...".
//  3. Serve accepts and serves until its context ends, then closes the
//     listener and every connection and returns once all its goroutines
//     have exited. After Serve returns, the Status is never called again.
//
// # Ownership and goroutines
//
// Serve runs the accept loop (engine/connset) on the caller's goroutine
// and starts one goroutine per connection. A connection goroutine owns its socket: it
// reads one request, calls the Status, writes the reply, then reads the
// next, so requests on one connection are handled one at a time and in
// order. Different connections are handled concurrently, which is why
// Status implementations must be safe for concurrent use. A Status method
// that blocks holds up its connection only, but Serve cannot return until
// it does, so Status methods must return promptly, also during shutdown.
// The caller owns the Status and whatever it returns; the server only
// reads the returned slices and maps while encoding the reply.
//
// # Behaviour per request
//
// Print is logged as "$$$ ExternalPrint: <text> $$$". RotateLog,
// CleanShutdown and the shrink request are handed to the Status.
// ReportStatus is logged; it has no reply. Each query gets the JSON reply
// of spec 3.7; a query the Status cannot answer (StateEntities returning
// an error) is logged and answered with "{}". ClusterStatusQuery before
// the worker is initialized gets the empty reply
// MsgClusterStatusQueryResponseNotInitialized. A shrink request that is
// not valid JSON gets a MsgShrinkErrorResponse naming the problem, so that
// the waiting tool does not hang. Unknown ids, and reply ids sent to the
// worker, are logged and ignored; the connection stays usable.
package external
