// Package routing maps keys to the workers that own them, in two levels:
// a key hashes to one of a fixed number of partitions (PartitionOf), and a
// partition table assigns each partition to a worker (Table). A cluster of
// one worker and a cluster of ten use the same code; growing or shrinking
// the cluster only rewrites the table, and only the partitions whose owner
// changed move.
//
// The key hash is CRC-32 (IEEE) of the key bytes, the same function as
// Python's zlib.crc32, so the Python runner can place keys into partitions
// inside the interpreter without a round trip to Go. Pure functions and
// values; no I/O, no goroutines.
//
// Where it stands: the host builds the Table and hands the runner
// (pyapi/wallaroo/_runner.py) the list of partitions this worker owns. The
// runner hashes every key of a state computation to its partition, keeps
// state per partition, and checks the partition is local; a non-local
// partition is an error until clusters exist to forward it to its owner.
package routing
