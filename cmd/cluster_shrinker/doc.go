// Command cluster_shrinker asks a Wallaroo cluster to shrink, or which of
// its workers may leave, as utils/cluster_shrinker of Wallaroo 0.6 does.
//
// Usage:
//
//	cluster_shrinker --external H:P (--query | --count N | --workers a,b,...)
//
// H:P is the external channel (--external) of a worker that is not
// leaving. Exactly one mode is required. The tool writes one ShrinkRequest
// frame (uint32 BE length, uint16 BE message id 4, JSON payload
// {"query": bool, "node_names": [...], "node_count": n}) and waits up to
// --timeout (default 30s) for one reply:
//
//   - --query sends {"query":true,"node_names":[],"node_count":0}; the reply
//     (id 5, JSON {"node_names": [...], "node_count": n}) is printed as
//     "Eligible for shrink: Node count: <n>, Nodes: |w1,w2,|".
//   - --count N sends {"query":false,"node_names":[],"node_count":N}.
//   - --workers a,b sends {"query":false,"node_names":["a","b"],"node_count":0}.
//     The worker shrinks by names when node_names is not empty.
//
// For both shrink forms the reply (id 6, text) is printed as "Cluster
// shrink response: <text>", for example "Shrinking by 1 workers!" or
// "Invalid shrink targets!"; the exit status is 0 whatever the text says.
//
// Errors print one line "error: ..." on stderr and exit 1: bad flags (no
// mode or several), "unable to connect to H:P: ...", a failed write, no
// reply within --timeout, or a reply that is malformed or has another id.
// Pony runtime options (--ponythreads 1, --ponynoblock, any --pony*) are
// accepted and ignored.
package main
