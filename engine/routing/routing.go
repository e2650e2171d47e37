package routing

import (
	"fmt"
	"hash/crc32"
)

// PartitionID numbers a partition, 0 <= id < partition count.
type PartitionID uint32

// WorkerName names a worker of the cluster ("initializer", "worker1"...).
type WorkerName string

// DefaultPartitions is the partition count of an application. Fixed for
// the life of a cluster: it bounds how finely state can be spread.
const DefaultPartitions = 256

// PartitionOf returns the partition of key among n partitions.
func PartitionOf(key []byte, n int) PartitionID {
	return PartitionID(crc32.ChecksumIEEE(key) % uint32(n))
}

// Table assigns every partition to a worker. The zero Table is unusable;
// build one with NewTable.
type Table struct {
	owners []WorkerName
}

// NewTable spreads n partitions over workers in contiguous, nearly equal
// ranges, in the order given (the cluster's worker order).
func NewTable(n int, workers []WorkerName) (Table, error) {
	if n <= 0 {
		return Table{}, fmt.Errorf("routing: partition count must be positive, got %d", n)
	}
	if len(workers) == 0 {
		return Table{}, fmt.Errorf("routing: a partition table needs at least one worker")
	}
	owners := make([]WorkerName, n)
	for p := range owners {
		owners[p] = workers[p*len(workers)/n]
	}
	return Table{owners: owners}, nil
}

// Partitions returns the partition count.
func (t Table) Partitions() int { return len(t.owners) }

// Owner returns the worker owning partition p.
func (t Table) Owner(p PartitionID) WorkerName { return t.owners[p] }

// OwnerOf returns the worker owning key.
func (t Table) OwnerOf(key []byte) WorkerName { return t.owners[PartitionOf(key, len(t.owners))] }

// Local returns, for each partition, whether worker w owns it.
func (t Table) Local(w WorkerName) []bool {
	local := make([]bool, len(t.owners))
	for p, o := range t.owners {
		local[p] = o == w
	}
	return local
}

// Count returns how many partitions each worker owns.
func (t Table) Count() map[WorkerName]int {
	c := make(map[WorkerName]int)
	for _, o := range t.owners {
		c[o]++
	}
	return c
}
