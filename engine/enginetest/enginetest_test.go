package enginetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wallaroo-go/machida/engine/barrier"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/work"
)

// countApp: split lines into words, drop "x…", key by first letter,
// count per key, upper-case; plus a second path that counts everything
// under the single partition key.
func countApp() *Processor {
	split := Stage{Name: "split", Map: func(v string) []string { return strings.Fields(v) }}
	dropX := Stage{Name: "drop x", Map: func(v string) []string {
		if strings.HasPrefix(v, "x") {
			return nil
		}
		return []string{v}
	}}
	first := Stage{Name: "first", Key: func(v string) string { return v[:1] }}
	count := Stage{Name: "count", State: func(v string, n *int) []string {
		*n++
		return []string{fmt.Sprintf("%s:%d", v, *n)}
	}}
	upper := Stage{Name: "upper", Map: func(v string) []string { return []string{strings.ToUpper(v)} }}
	total := Stage{Name: "total", State: func(v string, n *int) []string {
		*n++
		return []string{fmt.Sprintf("total:%d", *n)}
	}}
	return &Processor{
		Sinks: 2, Partitions: 16,
		Paths: []Path{
			{Stages: []Stage{split, dropX, first, count, upper}},
			{Stages: []Stage{total}},
		},
	}
}

func words(seed int64, batches int) [][]string {
	rnd := rand.New(rand.NewSource(seed))
	vocab := []string{"apple", "avocado", "banana", "cherry", "xray", "date", "elder", "fig", "grape", "kiwi", "éclair"}
	var out [][]string
	for b := 0; b < batches; b++ {
		var lines []string
		for l := rnd.Intn(5) + 1; l > 0; l-- {
			var ws []string
			for w := rnd.Intn(5) + 1; w > 0; w-- {
				ws = append(ws, vocab[rnd.Intn(len(vocab))])
			}
			lines = append(lines, strings.Join(ws, " "))
		}
		out = append(out, lines)
	}
	return out
}

func batches(src int, lines [][]string) []work.Item {
	var items []work.Item
	for _, l := range lines {
		items = append(items, work.BatchItem(0, Frames(src, l...)))
	}
	return items
}

// perKey groups lines by what precedes the first ':' (the key's word).
func perKey(lines []string) map[string][]string {
	m := map[string][]string{}
	for _, l := range lines {
		k := strings.ToLower(l[:1])
		m[k] = append(m[k], l)
	}
	return m
}

func ownership(epoch uint64, parts int, owner func(p int) work.Dest, spread ...work.Dest) work.Ownership {
	o := work.Ownership{Epoch: epoch, Owner: make([]work.Dest, parts), Spread: spread}
	for p := range o.Owner {
		o.Owner[p] = owner(p)
	}
	return o
}

func TestLoop_EnvelopesLoopBackToTheFusedOutput(t *testing.T) {
	in := words(1, 60)
	fused := countApp()
	r := Run{Processor: fused, Inputs: [][]work.Item{batches(0, in)}}.Go()
	require.NoError(t, r.Err)
	require.Zero(t, fused.Resumed())

	split := countApp()
	items := append([]work.Item{work.OwnershipItem(ownership(2, 16, func(p int) work.Dest { return work.Dest(p % 3) }))}, batches(0, in)...)
	r2 := Run{Processor: split, Inputs: [][]work.Item{items}}.Go()
	require.NoError(t, r2.Err)
	assert.Greater(t, split.Resumed(), 0, "no envelope left the loop")
	assert.Equal(t, []uint64{2}, split.Epochs())
	for s := range r.Sinks {
		assert.ElementsMatch(t, r.Sinks[s].Lines(), r2.Sinks[s].Lines(), "sink %d as a multiset", s)
		assert.Equal(t, perKey(r.Sinks[s].Lines()), perKey(r2.Sinks[s].Lines()), "sink %d per key in order", s)
	}
	assert.Equal(t, fused.States("count"), split.States("count"))
}

func TestLoop_SpreadSegmentKeepsEveryMessage(t *testing.T) {
	in := words(2, 40)
	fused := countApp()
	require.NoError(t, Run{Processor: fused, Inputs: [][]work.Item{batches(0, in)}}.Go().Err)
	spread := countApp()
	items := append([]work.Item{work.OwnershipItem(ownership(1, 16, func(int) work.Dest { return 0 }, 0, 1, 2))}, batches(0, in)...)
	r := Run{Processor: spread, Inputs: [][]work.Item{items}}.Go()
	require.NoError(t, r.Err)
	assert.Greater(t, spread.Resumed(), 0)
	// A spread chain has no order (0.6's random partitioner), but the
	// same totals per key.
	assert.Equal(t, fused.States("count"), spread.States("count"))
}

func TestLoop_OwnershipChangesMidStreamInOrder(t *testing.T) {
	in := words(3, 50)
	fused := countApp()
	want := Run{Processor: fused, Inputs: [][]work.Item{batches(0, in)}}.Go()
	require.NoError(t, want.Err)
	p := countApp()
	var items []work.Item
	for i, b := range batches(0, in) {
		if i%10 == 5 {
			e := uint64(i)
			items = append(items, work.OwnershipItem(ownership(e, 16, func(q int) work.Dest { return work.Dest((q + i) % 2) })))
		}
		items = append(items, b)
	}
	got := Run{Processor: p, Inputs: [][]work.Item{items}}.Go()
	require.NoError(t, got.Err)
	assert.Equal(t, []uint64{5, 15, 25, 35, 45}, p.Epochs())
	assert.Equal(t, perKey(want.Sinks[0].Lines()), perKey(got.Sinks[0].Lines()))
}

func TestLoop_BarrierIsAlignedOverInputs(t *testing.T) {
	// Two inputs, each: 5 batches, the barrier, 5 more. When the barrier
	// acts, exactly the 10 pre-barrier batches have been processed, one
	// message each.
	p := &Processor{Sinks: 1, Partitions: 4, Paths: []Path{{Stages: []Stage{{Name: "n", State: func(v string, n *int) []string {
		*n++
		return []string{v}
	}}}}}}
	mk := func(in int) []work.Item {
		var items []work.Item
		for i := 0; i < 10; i++ {
			if i == 5 {
				items = append(items, work.BarrierItem(in, barrier.Barrier{ID: 1, Kind: barrier.Checkpoint}))
			}
			items = append(items, work.BatchItem(in, Frames(0, fmt.Sprintf("in%d-%d", in, i))))
		}
		return items
	}
	var seen []int
	var acted []barrier.Barrier
	r := Run{Processor: p, Inputs: [][]work.Item{mk(0), mk(1)}, OnBarrier: func(b barrier.Barrier) error {
		acted = append(acted, b)
		seen = append(seen, p.States("n")["single-partition-key"])
		return nil
	}}.Go()
	require.NoError(t, r.Err)
	assert.Equal(t, []barrier.Barrier{{ID: 1, Kind: barrier.Checkpoint}}, acted)
	assert.Equal(t, []int{10}, seen, "state at the barrier")
	assert.Len(t, r.Sinks[0].Lines(), 20)
	// Per input, order is kept across the barrier.
	for in := 0; in < 2; in++ {
		var mine []string
		for _, l := range r.Sinks[0].Lines() {
			if strings.HasPrefix(l, fmt.Sprintf("in%d-", in)) {
				mine = append(mine, l)
			}
		}
		want := make([]string, 10)
		for i := range want {
			want[i] = fmt.Sprintf("in%d-%d", in, i)
		}
		assert.Equal(t, want, mine)
	}
}

func TestLoop_BarrierWaitsForLoopedBackEnvelopes(t *testing.T) {
	// Envelopes made from pre-barrier batches are processed before the
	// barrier acts, even when every partition is "elsewhere".
	p := countApp()
	items := []work.Item{work.OwnershipItem(ownership(1, 16, func(int) work.Dest { return 1 }))}
	items = append(items, batches(0, words(4, 10))...)
	items = append(items, work.BarrierItem(0, barrier.Barrier{ID: 9, Kind: barrier.Rescale}))
	var atBarrier map[string]int
	r := Run{Processor: p, Inputs: [][]work.Item{items}, OnBarrier: func(barrier.Barrier) error {
		atBarrier = p.States("count")
		return nil
	}}.Go()
	require.NoError(t, r.Err)
	assert.Equal(t, p.States("count"), atBarrier)
	assert.NotEmpty(t, atBarrier)
}

func TestLoop_ProtocolFaultAndOnBarrierErrorStop(t *testing.T) {
	p := countApp()
	b := barrier.Barrier{ID: 1, Kind: barrier.Checkpoint}
	r := Run{Processor: p, Inputs: [][]work.Item{{work.BarrierItem(0, b), work.BarrierItem(0, b)}}, OnBarrier: func(barrier.Barrier) error { return nil }}.Go()
	// one input: the first completes at once, the second is a new barrier with the same id: accepted.
	require.NoError(t, r.Err)
	r = Run{Processor: countApp(), Inputs: [][]work.Item{{work.BarrierItem(0, b)}}, OnBarrier: func(barrier.Barrier) error { return errors.New("disk full") }}.Go()
	require.ErrorContains(t, r.Err, "disk full")
	require.ErrorContains(t, r.Err, "checkpoint barrier 1")
}

func TestLoop_GeneratorsAndQueuedWorkTakeTurns(t *testing.T) {
	p := countApp()
	in := words(5, 40)
	lines := 0
	for _, b := range in {
		lines += len(b)
	}
	// The generator goes on until every line has been split, so queued
	// work and generated work overlap whatever the goroutines' timing.
	var split atomic.Int64
	inner := p.Paths[0].Stages[0].Map
	p.Paths[0].Stages[0].Map = func(v string) []string { split.Add(1); return inner(v) }
	made := 0
	p.Paths = append(p.Paths, Path{Stages: []Stage{{Name: "g", Map: func(v string) []string { return []string{v} }}},
		Generate: func(i int) (string, bool) {
			if i >= 5000 && split.Load() == int64(lines) {
				return "", false
			}
			made++
			return fmt.Sprintf("g%d", i), true
		}})
	r := Run{Processor: p, Inputs: [][]work.Item{batches(0, in)}, Generators: []int{2}, MaxItemsPerCall: 1}.Go()
	require.NoError(t, r.Err)
	assert.Contains(t, r.Console, "GenSource produced a None")
	calls := p.Calls()
	// Until the generator stops, every run of queued work is followed by
	// a generator round: never two Process calls in a row.
	lastGen := 0
	for i, c := range calls {
		if c == "generate" {
			lastGen = i
		}
	}
	processed := 0
	for i := 1; i < lastGen; i++ {
		if calls[i] == "process" {
			processed++
			require.NotEqual(t, "process", calls[i-1], "call %d: the generator was skipped while batches were queued", i)
		}
	}
	assert.Greater(t, processed, 0, "no batch was processed before the generator stopped")
	var g int
	for _, l := range r.Sinks[0].Lines() {
		if strings.HasPrefix(l, "g") && !strings.Contains(l, ":") {
			g++
		}
	}
	assert.Equal(t, made, g)
}

func TestLoop_UserErrorDeliversWhatCameBefore(t *testing.T) {
	p := countApp()
	p.FailOn = func(stage, v string) error {
		if stage == "count" && v == "boom" {
			return errors.New("user code raised")
		}
		return nil
	}
	r := Run{Processor: p, Inputs: [][]work.Item{{work.BatchItem(0, Frames(0, "apple", "banana boom cherry"))}}}.Go()
	require.ErrorContains(t, r.Err, "user code raised")
	assert.Equal(t, []string{"APPLE:1", "BANANA:1"}, r.Sinks[0].Lines())
}

func TestLoop_SinkErrorStops(t *testing.T) {
	r := Run{Processor: countApp(), Inputs: [][]work.Item{batches(0, words(6, 10))}, SinkFailAt: 2}.Go()
	require.ErrorContains(t, r.Err, "sink failed on purpose")
}

func TestLoop_RouteGetsForeignEnvelopes(t *testing.T) {
	p := countApp()
	var got []work.Envelopes
	items := append([]work.Item{work.OwnershipItem(ownership(1, 16, func(q int) work.Dest { return work.Dest(q % 2 * 7) }))}, batches(0, words(7, 10))...)
	r := Run{Processor: p, Inputs: [][]work.Item{items}, Route: func(_ context.Context, e work.Envelopes) error {
		got = append(got, e)
		return nil
	}}.Go()
	require.NoError(t, r.Err)
	require.NotEmpty(t, got)
	for _, e := range got {
		assert.Equal(t, work.Dest(7), e.Dest)
		assert.Greater(t, e.Count, 0)
	}
	assert.Zero(t, p.Resumed())
}

// Envelopes marked Reroute (what an undone rescale had parked) are routed
// again at their own segment: those of partitions owned elsewhere leave,
// the others run here; unmarked, all run here.
func TestLoop_RerouteSendsOnWhatIsNotOwnedHere(t *testing.T) {
	var parked []work.Envelopes
	all := ownership(1, 16, func(int) work.Dest { return 7 })
	r := Run{Processor: countApp(), Inputs: [][]work.Item{append([]work.Item{work.OwnershipItem(all)}, batches(0, words(7, 10))...)},
		Route: func(_ context.Context, e work.Envelopes) error {
			parked = append(parked, e)
			return nil
		}}.Go()
	require.NoError(t, r.Err)
	require.NotEmpty(t, parked)
	sent := 0
	for _, e := range parked {
		sent += e.Count
	}
	half := ownership(2, 16, func(q int) work.Dest { return work.Dest(q % 2 * 7) })
	run := func(reroute bool) (local int, left int) {
		items := []work.Item{work.OwnershipItem(half)}
		for _, e := range parked {
			e.Dest, e.Reroute = work.Here, reroute
			items = append(items, work.ResumeItem(e))
		}
		res := Run{Processor: countApp(), Inputs: [][]work.Item{items}, Route: func(_ context.Context, e work.Envelopes) error {
			assert.Equal(t, work.Dest(7), e.Dest)
			left += e.Count
			return nil
		}}.Go()
		require.NoError(t, res.Err)
		return len(res.Sinks[0].Lines()), left
	}
	local, left := run(true)
	assert.Positive(t, local)
	assert.Positive(t, left)
	assert.Equal(t, sent, local+left, "every rerouted message runs here or leaves, once")
	local, left = run(false)
	assert.Equal(t, sent, local)
	assert.Zero(t, left)
}

func TestLoop_QueueKeepsOrderPerInput(t *testing.T) {
	p := &Processor{Sinks: 1, Paths: []Path{{Stages: []Stage{{Name: "id", Map: func(v string) []string { return []string{v} }}}}}}
	var inputs [][]work.Item
	for in := 0; in < 3; in++ {
		var items []work.Item
		for i := 0; i < 200; i++ {
			items = append(items, work.BatchItem(in, Frames(0, fmt.Sprintf("%d:%04d", in, i))))
		}
		inputs = append(inputs, items)
	}
	r := Run{Processor: p, Inputs: inputs}.Go()
	require.NoError(t, r.Err)
	lines := r.Sinks[0].Lines()
	require.Len(t, lines, 600)
	for in := 0; in < 3; in++ {
		var mine []string
		for _, l := range lines {
			if strings.HasPrefix(l, fmt.Sprint(in)+":") {
				mine = append(mine, l)
			}
		}
		assert.True(t, sort.StringsAreSorted(mine), "input %d out of order", in)
	}
}

func TestProcessor_PartitionExportImport(t *testing.T) {
	a := countApp()
	require.NoError(t, Run{Processor: a, Inputs: [][]work.Item{batches(0, words(8, 20))}}.Go().Err)
	b := countApp()
	for part := 0; part < 16; part++ {
		data, err := a.ExportPartition("count", routing.PartitionID(part))
		require.NoError(t, err)
		require.NoError(t, b.ImportPartition("count", routing.PartitionID(part), data))
	}
	assert.Equal(t, a.States("count"), b.States("count"))
	data, err := a.ExportPartition("count", routing.PartitionOf([]byte("a"), 16))
	require.NoError(t, err)
	assert.Error(t, b.ImportPartition("count", (routing.PartitionOf([]byte("a"), 16)+1)%16, data))
}
