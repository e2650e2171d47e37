package host

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/enginetest"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/topology"
	"github.com/wallaroo-go/machida/engine/work"
)

// runLoop runs batches through p with the engine's own loop; envelopes
// for any destination loop back into p. Returns the lines of each sink.
func runLoop(t *testing.T, p *processor, own *work.Ownership, batches [][]string) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q := work.NewQueue(8, 1<<20)
	go func() {
		if own != nil {
			if err := q.Put(ctx, work.OwnershipItem(*own)); err != nil {
				return
			}
		}
		for _, b := range batches {
			if err := q.Deliver(ctx, batchOf(b...)); err != nil {
				return
			}
		}
		q.Close()
	}()
	sinks := []*enginetest.ListSink{{}, {}}
	err := work.Loop(ctx, ctx, work.LoopConfig{
		Processor: p, Queue: q, Sinks: []work.Sink{sinks[0], sinks[1]},
		MaxItemsPerCall: 3, ExitWhenDrained: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the loop did not finish in time")
	}
	// Sink 0 writes "word:n\n", sink 1 "WORD:N|".
	var upper []string
	for _, l := range sinks[1].Lines() {
		upper = append(upper, strings.Split(strings.TrimSuffix(l, "|"), "|")...)
	}
	return [][]string{sinks[0].Lines(), upper}
}

func wordBatches(seed int64, n int) [][]string {
	rnd := rand.New(rand.NewSource(seed))
	vocab := []string{"apple", "avocado", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi", "éclair", "ñandú"}
	var out [][]string
	for i := 0; i < n; i++ {
		var lines []string
		for l := rnd.Intn(4) + 1; l > 0; l-- {
			var ws []string
			for w := rnd.Intn(6) + 1; w > 0; w-- {
				ws = append(ws, vocab[rnd.Intn(len(vocab))])
			}
			lines = append(lines, strings.Join(ws, " "))
		}
		out = append(out, lines)
	}
	return out
}

// byKey groups "word:n" lines by the word's first letter (countApp's key).
func byKey(lines []string) map[string][]string {
	m := map[string][]string{}
	for _, l := range lines {
		r := []rune(strings.ToLower(l))
		m[string(r[0])] = append(m[string(r[0])], l)
	}
	return m
}

func TestSegments_EnvelopesLoopBackThroughTheRunner(t *testing.T) {
	in := wordBatches(11, 80)
	fused, _ := newCountProcessor(t)
	want := runLoop(t, fused, nil, in)
	if len(want[0]) == 0 {
		t.Fatal("no output")
	}
	// Two of every three partitions owned by "another interpreter"
	// (destinations 1 and 2), which the loop routes back here.
	split, _ := newCountProcessor(t)
	own := work.Ownership{Epoch: 2, Owner: make([]work.Dest, routing.DefaultPartitions)}
	for p := range own.Owner {
		own.Owner[p] = work.Dest(p % 3)
	}
	got := runLoop(t, split, &own, in)
	for s := range want {
		w, g := append([]string(nil), want[s]...), append([]string(nil), got[s]...)
		sort.Strings(w)
		sort.Strings(g)
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("sink %d: the multiset of outputs differs", s)
		}
		wk, gk := byKey(want[s]), byKey(got[s])
		for k := range wk {
			if strings.Join(wk[k], ",") != strings.Join(gk[k], ",") {
				t.Errorf("sink %d key %q: order differs:\n fused %v\n split %v", s, k, wk[k], gk[k])
			}
		}
	}
	ents, err := split.StateEntities()
	if err != nil {
		t.Fatal(err)
	}
	wantEnts, err := fused.StateEntities()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ents) != fmt.Sprint(wantEnts) {
		t.Errorf("state keys %v, want %v", ents, wantEnts)
	}
	// With the spread chain dealt over three destinations too, every
	// word still comes out once.
	spread, _ := newCountProcessor(t)
	own.Spread = []work.Dest{0, 1, 2}
	got = runLoop(t, spread, &own, in)
	words := func(lines []string) string {
		var ws []string
		for _, l := range lines {
			ws = append(ws, l[:strings.LastIndex(l, ":")])
		}
		sort.Strings(ws)
		return strings.Join(ws, " ")
	}
	if words(got[0]) != words(want[0]) {
		t.Error("spread run: the words that came out differ")
	}
}

func TestSegments_PartitionExportImportRoundTrip(t *testing.T) {
	a, _ := newCountProcessor(t)
	runLoop(t, a, nil, [][]string{{"apple avocado banana", "cherry apple"}})
	b, _ := newCountProcessor(t)
	step := topology.StepID{Node: 0, Index: 2} // countApp's "count" stage
	if err := b.ImportPartition(topology.StepID{Node: 5, Index: 5}, 0, []byte("P")); err == nil || !strings.Contains(err.Error(), "no state step") {
		t.Errorf("import into an unknown step: %v", err)
	}
	moved := 0
	for part := 0; part < routing.DefaultPartitions; part++ {
		data, err := a.ExportPartition(step, routing.PartitionID(part))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.ImportPartition(step, routing.PartitionID(part), data); err != nil {
			t.Fatal(err)
		}
		moved++
	}
	ea, _ := a.StateEntities()
	eb, _ := b.StateEntities()
	if fmt.Sprint(ea) != fmt.Sprint(eb) || len(ea) == 0 {
		t.Fatalf("after import: %v, want %v", eb, ea)
	}
	// The counts moved too: the next "apple" is the third a-word... in b.
	out := runLoop(t, b, nil, [][]string{{"apricot"}})
	if len(out[0]) != 1 || out[0][0] != "apricot:4" {
		t.Errorf("after import, b counts %v, want [apricot:4]", out[0])
	}
	// A corrupt or misplaced partition is refused with a clear error.
	pa := routing.PartitionOf([]byte("a"), routing.DefaultPartitions)
	data, _ := a.ExportPartition(step, pa)
	if err := b.ImportPartition(step, (pa+1)%routing.DefaultPartitions, data); err == nil || !strings.Contains(err.Error(), "belongs to partition") {
		t.Errorf("misplaced import: %v", err)
	}
	if err := b.ImportPartition(step, pa, []byte("Pnot a pickle")); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt import: %v", err)
	}
}

func TestProcessor_WarningsGoToTheInjectedLogger(t *testing.T) {
	p, _ := newCountProcessor(t)
	var buf syncBuf
	p.log = slog.New(slog.NewTextHandler(&buf, nil))
	err := testInterp.Do(func(py *bridge.Py) error {
		// A salvage that is not bytes per sink cannot be delivered: the
		// processor says so through its logger, not on os.Stderr.
		bad, err := py.Exec("bad_salvage", "value = (1, 2)\n")
		if err != nil {
			return err
		}
		defer py.DecRef(bad)
		v, err := py.GetAttr(bad, "value")
		if err != nil {
			return err
		}
		defer py.DecRef(v)
		if err := py.SetAttr(p.paths[0], "salvage", v); err != nil {
			return err
		}
		p.salvage(py, 0, make([][]byte, 2))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "output produced before the failure could not be read") {
		t.Errorf("logger got %q", buf.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SetSpread weighs the dealing of the spread chain from the next
// Process call on: all here, then all to destination 1.
func TestProcessor_SetSpreadWeighsTheDeal(t *testing.T) {
	p, _ := newCountProcessor(t)
	own := work.Ownership{Epoch: 2, Owner: make([]work.Dest, routing.DefaultPartitions), Spread: []work.Dest{0, 1}}
	if err := p.SetOwnership(own); err != nil {
		t.Fatal(err)
	}
	sent := func() int {
		out := work.NewOutput(2)
		if err := p.Process(items(batchOf(wordBatches(3, 1)[0]...), batchOf("a b", "c d e", "f")), out); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range out.Envelopes {
			if e.Dest != 1 {
				t.Fatalf("envelopes for destination %d", e.Dest)
			}
			n += e.Count
		}
		return n
	}
	p.SetSpread(map[work.Dest]float64{work.Here: 1})
	if n := sent(); n != 0 {
		t.Fatalf("all weight here, yet %d messages left", n)
	}
	p.SetSpread(map[work.Dest]float64{1: 1})
	if n := sent(); n == 0 {
		t.Fatal("all weight on destination 1, yet no message left")
	}
	// Weights naming only a destination that is not a spread
	// destination (stale: measured before a shrink took it out) leave
	// the deal as it was.
	p.SetSpread(map[work.Dest]float64{7: 1})
	if n := sent(); n == 0 {
		t.Fatal("after stale weights the deal changed")
	}
	// With others beside it, its part goes to them: all here now.
	p.SetSpread(map[work.Dest]float64{work.Here: 1, 7: 3})
	if n := sent(); n != 0 {
		t.Fatalf("the weight of a destination that is not a spread destination was not left out: %d messages left", n)
	}
}

// An envelope batch that is not one of this application (damaged bytes
// from a peer) is refused before any of it runs: the loop logs it as
// lost, naming the peer, and the items around it run as usual instead of
// the worker stopping.
func TestSegments_DamagedEnvelopeBatchIsDroppedAndNamed(t *testing.T) {
	p, _ := newCountProcessor(t)
	var logs syncBuf
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q := work.NewQueue(8, 1<<20)
	damaged := []work.Envelopes{
		{Count: 3, Data: []byte("Pnot a pickle")},
		{Count: 1, Data: []byte("Xsome other format")},
	}
	go func() {
		defer q.Close()
		if err := q.Deliver(ctx, batchOf("apple banana")); err != nil {
			return
		}
		for _, e := range damaged {
			if err := q.Put(ctx, work.Item{Kind: work.KindEnvelopes, Input: 2, Envelopes: e}); err != nil {
				return
			}
		}
		_ = q.Deliver(ctx, batchOf("apple cherry"))
	}()
	sinks := []*enginetest.ListSink{{}, {}}
	err := work.Loop(ctx, ctx, work.LoopConfig{
		Processor: p, Queue: q, Sinks: []work.Sink{sinks[0], sinks[1]},
		MaxItemsPerCall: 8, ExitWhenDrained: true,
		InputName: func(input int) string { return fmt.Sprintf("w%d", input) },
		Log:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatalf("the loop stopped on a damaged batch: %v", err)
	}
	got := strings.Join(sinks[0].Lines(), " ")
	for _, want := range []string{"apple:1", "banana:1", "apple:2", "cherry:1"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	log := logs.String()
	if n := strings.Count(log, "level=ERROR"); n != 2 {
		t.Errorf("%d ERROR lines, want one per damaged batch:\n%s", n, log)
	}
	for _, want := range []string{`from="worker w2"`, "envelopes=3", "envelopes=1", "corrupt", "not a known format"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
