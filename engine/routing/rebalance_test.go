package routing

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// minMoves is the fewest partitions that must change owner to take t to
// a balanced table over workers, computed from t's counts alone: every
// partition of a leaving worker, plus each staying worker's excess over
// q = n/w, less one for each of the n%w workers allowed q+1 that already
// owns more than q.
func minMoves(t Table, workers []WorkerName) int {
	n, w := t.Partitions(), len(workers)
	q, extra := n/w, n%w
	counts := t.Count()
	leaving := n
	excess, overFull := 0, 0
	for _, name := range workers {
		c := counts[name]
		leaving -= c
		if c > q {
			excess += c - q
			overFull++
		}
	}
	return leaving + excess - min(extra, overFull)
}

// checkRebalanced asserts next is t rebalanced onto workers: complete,
// balanced, minimal, epoch one more, and t itself unchanged.
func checkRebalanced(t *testing.T, ctx string, old, next Table, oldOwners []WorkerName, workers []WorkerName) {
	t.Helper()
	n, w := old.Partitions(), len(workers)
	if next.Partitions() != n {
		t.Fatalf("%s: %d partitions, want %d", ctx, next.Partitions(), n)
	}
	if !slices.Equal(old.owners, oldOwners) {
		t.Fatalf("%s: Rebalance changed its receiver", ctx)
	}
	if !slices.Equal(next.Workers(), workers) {
		t.Fatalf("%s: Workers() = %v, want %v", ctx, next.Workers(), workers)
	}
	if next.Epoch() != old.Epoch()+1 {
		t.Fatalf("%s: epoch %d after %d", ctx, next.Epoch(), old.Epoch())
	}
	member := make(map[WorkerName]bool)
	for _, name := range workers {
		member[name] = true
	}
	for p := 0; p < n; p++ {
		if o := next.Owner(PartitionID(p)); !member[o] {
			t.Fatalf("%s: partition %d owned by %q, not in %v", ctx, p, o, workers)
		}
	}
	counts := next.Count()
	for _, name := range workers {
		if c := counts[name]; c != n/w && c != (n+w-1)/w {
			t.Fatalf("%s: %s owns %d of %d partitions over %d workers", ctx, name, c, n, w)
		}
	}
	moves := Moves(old, next)
	if want := minMoves(old, workers); len(moves) != want {
		t.Fatalf("%s: %d partitions moved, the minimum is %d", ctx, len(moves), want)
	}
	for _, m := range moves {
		if m.From != old.Owner(m.Partition) || m.To != next.Owner(m.Partition) || m.From == m.To {
			t.Fatalf("%s: move %+v does not match the tables", ctx, m)
		}
	}
}

// nextWorkers changes a worker set the way a cluster does: grow, shrink,
// both at once, or the same set in another order.
func nextWorkers(rng *rand.Rand, cur []WorkerName, fresh func() WorkerName) []WorkerName {
	out := slices.Clone(cur)
	remove := func(k int) {
		for ; k > 0 && len(out) > 1; k-- {
			i := rng.IntN(len(out))
			out = slices.Delete(out, i, i+1)
		}
	}
	add := func(k int) {
		for ; k > 0; k-- {
			i := rng.IntN(len(out) + 1)
			out = slices.Insert(out, i, fresh())
		}
	}
	switch rng.IntN(4) {
	case 0:
		add(1 + rng.IntN(3))
	case 1:
		remove(1 + rng.IntN(3))
	case 2:
		remove(1 + rng.IntN(3))
		add(1 + rng.IntN(3))
	case 3:
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}

func TestRebalance_BalancedCompleteMinimalDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(2018, 6))
	sizes := []int{1, 3, 7, 16, 100, DefaultPartitions, 1000}
	for seq := 0; seq < 300; seq++ {
		n := sizes[rng.IntN(len(sizes))]
		next := 0
		fresh := func() WorkerName { next++; return WorkerName(fmt.Sprintf("worker%d", next)) }
		workers := make([]WorkerName, 1+rng.IntN(8))
		for i := range workers {
			workers[i] = fresh()
		}
		tab, err := NewTable(n, workers)
		if err != nil {
			t.Fatal(err)
		}
		for step := 0; step < 25; step++ {
			workers = nextWorkers(rng, workers, fresh)
			ctx := fmt.Sprintf("sequence %d step %d (n=%d, workers %v)", seq, step, n, workers)
			before := slices.Clone(tab.owners)
			got, err := tab.Rebalance(slices.Clone(workers))
			if err != nil {
				t.Fatalf("%s: %v", ctx, err)
			}
			checkRebalanced(t, ctx, tab, got, before, workers)
			again, err := tab.Rebalance(slices.Clone(workers))
			if err != nil || !slices.Equal(again.owners, got.owners) || again.Epoch() != got.Epoch() {
				t.Fatalf("%s: a second Rebalance of the same input differs", ctx)
			}
			tab = got
		}
	}
}

// The closed form in minMoves is the true minimum: on tables small enough
// to try every balanced assignment, none moves fewer partitions.
func TestMinMoves_MatchesExhaustiveSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(6)
		pool := []WorkerName{"a", "b", "c", "d", "e"}
		rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		from := pool[:1+rng.IntN(3)]
		lo := rng.IntN(2) // overlapping with from, or not at all
		to := slices.Clone(pool[lo : lo+1+rng.IntN(4)])
		tab, err := NewTable(n, from)
		if err != nil {
			t.Fatal(err)
		}
		if trial%2 == 1 { // start from an arbitrary, not necessarily even, table
			for p := range tab.owners {
				tab.owners[p] = from[rng.IntN(len(from))]
			}
		}
		best := exhaustiveMin(tab, to)
		if got := minMoves(tab, to); got != best {
			t.Fatalf("owners %v -> %v: formula %d, exhaustive %d", tab.owners, to, got, best)
		}
		got, err := tab.Rebalance(to)
		if err != nil {
			t.Fatal(err)
		}
		if len(Moves(tab, got)) != best {
			t.Fatalf("owners %v -> %v: Rebalance moved %d, minimum %d", tab.owners, to, len(Moves(tab, got)), best)
		}
	}
}

// exhaustiveMin tries all len(workers)^n assignments.
func exhaustiveMin(t Table, workers []WorkerName) int {
	n, w := t.Partitions(), len(workers)
	best := n + 1
	assign := make([]int, n)
	for {
		counts := make([]int, w)
		moved := 0
		for p, i := range assign {
			counts[i]++
			if workers[i] != t.owners[p] {
				moved++
			}
		}
		balanced := true
		for _, c := range counts {
			balanced = balanced && (c == n/w || c == (n+w-1)/w)
		}
		if balanced {
			best = min(best, moved)
		}
		p := 0
		for ; p < n; p++ {
			assign[p]++
			if assign[p] < w {
				break
			}
			assign[p] = 0
		}
		if p == n {
			return best
		}
	}
}

// From 2 to 3 workers over 256 partitions the new worker must receive
// floor(256/3) = 85 partitions, and 85 is enough: the old workers own 128
// each, one keeps ceil(256/3) = 86 (42 leave it) and the other 85 (43
// leave it). Striping contiguous ranges anew would move 127.
func TestRebalance_TwoToThreeWorkersMoves85(t *testing.T) {
	two, err := NewTable(DefaultPartitions, []WorkerName{"initializer", "worker1"})
	if err != nil {
		t.Fatal(err)
	}
	three, err := two.Rebalance([]WorkerName{"initializer", "worker1", "worker2"})
	if err != nil {
		t.Fatal(err)
	}
	moves := Moves(two, three)
	if len(moves) != 85 {
		t.Fatalf("%d partitions moved, want 85", len(moves))
	}
	for _, m := range moves {
		if m.To != "worker2" {
			t.Fatalf("move %+v: only the new worker should receive partitions", m)
		}
	}
	if c := three.Count(); c["initializer"] != 86 || c["worker1"] != 85 || c["worker2"] != 85 {
		t.Errorf("counts %v", c)
	}
	restriped, _ := NewTable(DefaultPartitions, three.Workers())
	if got := len(Moves(two, restriped)); got != 127 {
		t.Errorf("restriping moves %d, expected 127", got)
	}
	if two.Epoch() != 1 || three.Epoch() != 2 {
		t.Errorf("epochs %d, %d", two.Epoch(), three.Epoch())
	}

	// And back: removing worker2 moves exactly its partitions.
	back, err := three.Rebalance([]WorkerName{"initializer", "worker1"})
	if err != nil {
		t.Fatal(err)
	}
	moves = Moves(three, back)
	if len(moves) != 85 {
		t.Fatalf("shrinking moved %d partitions, want worker2's 85", len(moves))
	}
	for _, m := range moves {
		if m.From != "worker2" {
			t.Fatalf("move %+v: only the leaving worker's partitions should move", m)
		}
	}
	if c := back.Count(); c["initializer"] != 128 || c["worker1"] != 128 || back.Epoch() != 3 {
		t.Errorf("counts %v, epoch %d", c, back.Epoch())
	}
}

func TestRebalance_MoreWorkersThanPartitions(t *testing.T) {
	tab, err := NewTable(3, []WorkerName{"a"})
	if err != nil {
		t.Fatal(err)
	}
	many := []WorkerName{"a", "b", "c", "d", "e"}
	got, err := tab.Rebalance(many)
	if err != nil {
		t.Fatal(err)
	}
	if len(Moves(tab, got)) != 2 || got.Count()["a"] != 1 {
		t.Errorf("owners %v", got.owners)
	}
	if !slices.Equal(got.Workers(), many) {
		t.Errorf("Workers() = %v", got.Workers())
	}
}

func TestRebalance_RejectsBadWorkerSets(t *testing.T) {
	tab, err := NewTable(8, []WorkerName{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range [][]WorkerName{nil, {"a", "a"}, {"a", ""}} {
		if _, err := tab.Rebalance(ws); err == nil {
			t.Errorf("Rebalance(%q) accepted", ws)
		}
		if _, err := NewTable(8, ws); err == nil {
			t.Errorf("NewTable(8, %q) accepted", ws)
		}
	}
	if _, err := (Table{}).Rebalance([]WorkerName{"a"}); err == nil {
		t.Error("Rebalance of the zero table accepted")
	}
	if (Table{}).Epoch() != 0 {
		t.Error("zero table epoch")
	}
}

func TestMoves_SameTableNoneDifferentCountsPanics(t *testing.T) {
	a, _ := NewTable(16, []WorkerName{"a", "b"})
	if m := Moves(a, a); len(m) != 0 {
		t.Errorf("Moves(a, a) = %v", m)
	}
	b, _ := NewTable(8, []WorkerName{"a", "b"})
	defer func() {
		if recover() == nil {
			t.Error("Moves between 16 and 8 partitions did not panic")
		}
	}()
	Moves(a, b)
}
