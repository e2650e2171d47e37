// Command cluster_shutdown asks a Wallaroo cluster to shut down cleanly,
// as utils/cluster_shutdown of Wallaroo 0.6 does.
//
// Usage:
//
//	cluster_shutdown HOST:PORT
//
// HOST:PORT is the external channel (--external) of any worker. The tool
// connects, writes one CleanShutdown frame (uint32 BE length 2, uint16 BE
// message id 3, no payload), closes the connection and exits 0 without
// printing anything. The worker then shuts the whole cluster down and every
// worker deletes its recovery files (spec 3.8).
//
// Errors exit 1: a missing or extra argument prints the usage on stderr; a
// failed connection prints "Error: Unable to connect to HOST:PORT: <reason>"
// and a failed write "Error: Unable to send CleanShutdown to HOST:PORT:
// <reason>". --help prints the usage on stdout and exits 0. Pony runtime
// options (--ponythreads 1, --ponynoblock, any --pony*) are accepted and
// ignored.
package main
