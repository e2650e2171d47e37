package routing

import (
	"cmp"
	"fmt"
	"hash/crc32"
	"slices"
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

// Table assigns every partition to a worker of a worker set, and carries
// the epoch of that assignment. A Table is an immutable value: Rebalance
// returns a new one and never changes its receiver, so tables may be
// shared between goroutines. The zero Table (epoch 0) is unusable; build
// one with NewTable, then derive the next ones with Rebalance.
type Table struct {
	owners  []WorkerName
	workers []WorkerName // the worker set, in the cluster's order
	epoch   uint64
}

// NewTable spreads n partitions over workers in contiguous, nearly equal
// ranges, in the order given (the cluster's worker order). Its epoch is 1.
// The workers must be distinct, non-empty names.
func NewTable(n int, workers []WorkerName) (Table, error) {
	if n <= 0 {
		return Table{}, fmt.Errorf("routing: partition count must be positive, got %d", n)
	}
	if err := checkWorkers(workers); err != nil {
		return Table{}, err
	}
	owners := make([]WorkerName, n)
	for p := range owners {
		owners[p] = workers[p*len(workers)/n]
	}
	return Table{owners: owners, workers: slices.Clone(workers), epoch: 1}, nil
}

func checkWorkers(workers []WorkerName) error {
	if len(workers) == 0 {
		return fmt.Errorf("routing: a partition table needs at least one worker")
	}
	seen := make(map[WorkerName]bool, len(workers))
	for _, w := range workers {
		if w == "" {
			return fmt.Errorf("routing: empty worker name in %q", workers)
		}
		if seen[w] {
			return fmt.Errorf("routing: worker %q listed twice in %q", w, workers)
		}
		seen[w] = true
	}
	return nil
}

// Rebalance returns the table for a new worker set, derived from t so
// that as few partitions as possible change owner: afterwards every
// worker owns floor(n/w) or ceil(n/w) of the n partitions, and the
// partitions that move are those of workers no longer in the set plus
// just enough of the over-full workers' to fill the others. No other
// assignment with that balance moves fewer partitions.
//
// The result depends only on t's owners and on workers (including their
// order, which breaks ties), never on map iteration order. Its epoch is
// t's plus one, also when nothing moves. The worker set rules are
// NewTable's.
func (t Table) Rebalance(workers []WorkerName) (Table, error) {
	if len(t.owners) == 0 {
		return Table{}, fmt.Errorf("routing: rebalance of the zero table; build the first with NewTable")
	}
	if err := checkWorkers(workers); err != nil {
		return Table{}, err
	}
	n, w := len(t.owners), len(workers)
	index := make(map[WorkerName]int, w) // position in workers; absent: leaving
	for i, name := range workers {
		index[name] = i
	}
	have := make([]int, w) // partitions each staying worker owns now
	for _, o := range t.owners {
		if i, ok := index[o]; ok {
			have[i]++
		}
	}

	// Every worker gets q partitions and n%w of them one more. Giving the
	// extra ones to the workers that own most now keeps the most in place
	// (an extra partition saves a move only for a worker that already
	// owns more than q); ties go to the earlier worker in the list.
	q, extra := n/w, n%w
	byHave := make([]int, w)
	for i := range byHave {
		byHave[i] = i
	}
	slices.SortStableFunc(byHave, func(a, b int) int { return cmp.Compare(have[b], have[a]) })
	target := make([]int, w)
	for rank, i := range byHave {
		target[i] = q
		if rank < extra {
			target[i]++
		}
	}

	// A worker keeps its lowest-numbered partitions up to its target; the
	// rest, and every partition of a leaving worker, are freed in
	// ascending order and filled into the under-full workers in list order.
	owners := slices.Clone(t.owners)
	kept := make([]int, w)
	var freed []PartitionID
	for p, o := range owners {
		if i, ok := index[o]; ok && kept[i] < target[i] {
			kept[i]++
			continue
		}
		freed = append(freed, PartitionID(p))
	}
	next := 0
	for i, name := range workers {
		for ; kept[i] < target[i]; kept[i]++ {
			owners[freed[next]] = name
			next++
		}
	}
	if next != len(freed) {
		panic(fmt.Sprintf("routing: rebalance left %d of %d freed partitions unassigned", len(freed)-next, len(freed)))
	}
	return Table{owners: owners, workers: slices.Clone(workers), epoch: t.epoch + 1}, nil
}

// Move is one partition changing owner between two tables.
type Move struct {
	Partition PartitionID
	From, To  WorkerName
}

// Moves returns the partitions whose owner differs between from and to,
// in ascending partition order. Both tables must have the same partition
// count (it is fixed for the life of a cluster); Moves panics otherwise.
func Moves(from, to Table) []Move {
	if len(from.owners) != len(to.owners) {
		panic(fmt.Sprintf("routing: Moves between tables of %d and %d partitions", len(from.owners), len(to.owners)))
	}
	var moves []Move
	for p, o := range from.owners {
		if to.owners[p] != o {
			moves = append(moves, Move{Partition: PartitionID(p), From: o, To: to.owners[p]})
		}
	}
	return moves
}

// Epoch returns the table's epoch: 1 for a table from NewTable, one more
// for each Rebalance since; 0 only for the zero Table. A message or an
// ownership change tagged with an epoch refers to exactly one table.
func (t Table) Epoch() uint64 { return t.epoch }

// Workers returns the table's worker set in the order it was given,
// including workers that own no partition (more workers than partitions),
// as a copy.
func (t Table) Workers() []WorkerName { return slices.Clone(t.workers) }

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

// Count returns how many partitions each worker owns. Workers owning
// none are absent (see Workers).
func (t Table) Count() map[WorkerName]int {
	c := make(map[WorkerName]int)
	for _, o := range t.owners {
		c[o]++
	}
	return c
}

// FromOwners rebuilds a table from its owners (one per partition, each a
// worker of workers) and epoch: how a worker that joins, or restarts,
// takes the table the cluster has now. The worker set rules are
// NewTable's; every owner must be in workers.
func FromOwners(owners, workers []WorkerName, epoch uint64) (Table, error) {
	if len(owners) == 0 {
		return Table{}, fmt.Errorf("routing: a partition table needs at least one partition")
	}
	if err := checkWorkers(workers); err != nil {
		return Table{}, err
	}
	in := make(map[WorkerName]bool, len(workers))
	for _, w := range workers {
		in[w] = true
	}
	for p, o := range owners {
		if !in[o] {
			return Table{}, fmt.Errorf("routing: partition %d is owned by %q, not a worker of %q", p, o, workers)
		}
	}
	if epoch == 0 {
		return Table{}, fmt.Errorf("routing: epoch 0 is the zero table's")
	}
	return Table{owners: slices.Clone(owners), workers: slices.Clone(workers), epoch: epoch}, nil
}

// Owners returns the owner of every partition, in partition order.
func (t Table) Owners() []WorkerName { return slices.Clone(t.owners) }
