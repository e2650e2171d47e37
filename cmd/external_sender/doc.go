// Command external_sender sends one message to a Wallaroo worker's
// external channel (--external on the worker) and, for queries, prints the
// worker's reply. It is compatible with testing/tools/external_sender of
// Wallaroo 0.6, whose --json output the test harness parses.
//
// Usage:
//
//	external_sender --external H:P --type T [--message M] [--json] [--timeout D]
//
// Types (in any case, as 0.6's tool took them) and what is sent (message
// id, payload; spec 3.7):
//
//	print (default)                  1  M, logged by the worker
//	rotate-log                       2  M = the worker whose event log rotates
//	clean-shutdown                   3  M (optional); the whole cluster shuts down
//	partition-query                  7  empty; reply 8
//	cluster-status-query             9  empty; reply 10, or 11 before the worker is ready
//	partition-count-query           12  empty; reply 13
//	source-ids-query                14  empty; reply 15
//	boundary-count-status           16  "boundary-count-status"; the worker logs, no reply
//	state-entity-query              17  empty; reply 18
//	stateless-partition-query       19  empty; reply 20
//	state-entity-count-query        21  empty; reply 22
//	stateless-partition-count-query 23  empty; reply 24
//
// Behaviour:
//
//  1. One TCP connection is opened (within --timeout, default 10s) and one
//     frame is written: uint32 big-endian length (2 + payload length),
//     uint16 big-endian message id, payload.
//  2. For the types without a reply the connection is closed at once;
//     nothing is printed and the exit status is 0.
//  3. For queries the tool waits up to --timeout for the reply, which must
//     carry the expected message id and a JSON payload. With --json it
//     prints only the JSON, on one line, as the worker sent it; the empty
//     "not initialized" cluster status reply prints
//     {"processing_messages": false}. Without --json a header line naming
//     the query comes first.
//  4. Errors print one line "error: ..." on stderr and exit 1: bad flags
//     (an unknown --type lists the valid ones), "unable to connect to H:P:
//     ...", a failed write, no reply within --timeout, or a reply that is
//     malformed, has another id or is not JSON.
//
// Pony runtime options (--ponythreads 1, --ponynoblock, any --pony*) are
// accepted and ignored so that Wallaroo 0.6 command lines work unchanged.
package main
