// Package routing maps keys to the workers that own them, in two levels:
// a key hashes to one of a fixed number of partitions (PartitionOf), and a
// partition table assigns each partition to a worker (Table). A cluster of
// one worker and a cluster of ten use the same code; growing or shrinking
// the cluster only rewrites the table.
//
// The key hash is CRC-32 (IEEE) of the key bytes, the same function as
// Python's zlib.crc32, so the Python runner can place keys into partitions
// inside the interpreter without a round trip to Go (host's
// partition-agreement test checks the two agree on str and bytes keys).
//
// Tables are immutable values, safe to share between goroutines. NewTable
// builds the first one (contiguous, nearly equal ranges in worker order,
// epoch 1). When the worker set changes, Table.Rebalance derives the next
// table from the current one, moving as few partitions as possible while
// leaving every worker floor(n/w) or ceil(n/w) of them: the partitions of
// leaving workers plus just enough of the over-full workers' (about 1/w of
// them when one worker joins), never a re-striping. Moves lists what
// changed owner, which is what migration has to transfer. Both are
// deterministic: the same table and worker list (order included) always
// give the same result.
//
// Each table carries an epoch, one more per Rebalance. The engine treats
// "ownership table with epoch" as runtime data: whoever holds the current
// table (the worker's composition root, once clusters exist) tags
// ownership changes and routed messages with its epoch, so a message
// routed under an older table can be recognised. This package only counts
// epochs; it does not decide when a table becomes current.
//
// Pure functions and values; no I/O, no goroutines.
//
// Where it stands: the host builds a one-worker Table. The processor
// loop (engine/work) runs with an Ownership, a table of destinations per
// partition made from a Table by work.OwnershipOf; the Python runner
// compiles it into its loops (nothing at all when every partition is
// local) and sends a message whose partition is owned elsewhere out as
// an envelope. Nothing calls Rebalance yet: the cluster does next.
package routing
