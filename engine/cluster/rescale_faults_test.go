package cluster

// Rescales that go wrong: a grow aborted before its freeze, a joiner
// that leaves before its join is complete, a stop while messages are
// parked, an initializer restarted after a shrink to itself alone. The
// members run with a fake processor (its ownership installed at once,
// state exported and imported as partition numbers).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/work"
)

// fakeProc stands in for the processor loop and the Python state of one
// member: Install applies at once and runs then(); DeliverCall runs f at
// once; ExportMany exports every partition asked for; ImportMany imports.
type fakeProc struct {
	mu        sync.Mutex
	exported  []uint32
	imported  []uint32
	dropped   []uint32
	owns      []work.Ownership
	exportAt  []int       // len(owns) at each export call
	onInstall func(n int) // called before then(), with the count of installs so far
	ran       []work.Item // what then() gave to run first
}

func (f *fakeProc) wire(c *Config) {
	c.States = []string{"s"}
	c.ExportMany = func(step string, ps []routing.PartitionID, budget time.Duration) ([][]byte, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.exportAt = append(f.exportAt, len(f.owns))
		var out [][]byte
		for _, p := range ps {
			f.exported = append(f.exported, uint32(p))
			out = append(out, binary.BigEndian.AppendUint32(nil, uint32(p)))
		}
		return out, nil
	}
	c.ImportMany = func(steps []string, ps []routing.PartitionID, datas [][]byte, budget time.Duration) (int, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range ps {
			f.imported = append(f.imported, uint32(p))
		}
		return len(ps), nil
	}
	c.DropMany = func(step string, ps []routing.PartitionID) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range ps {
			f.dropped = append(f.dropped, uint32(p))
		}
		return nil
	}
	c.Install = func(ctx context.Context, o work.Ownership, then func() []work.Item) error {
		f.mu.Lock()
		f.owns = append(f.owns, o)
		n := len(f.owns)
		hook := f.onInstall
		f.mu.Unlock()
		if hook != nil {
			hook(n)
		}
		if then != nil {
			items := then()
			f.mu.Lock()
			f.ran = append(f.ran, items...)
			f.mu.Unlock()
		}
		return nil
	}
	c.DeliverCall = func(ctx context.Context, fn func() []work.Item) error {
		fn()
		return nil
	}
}

func (f *fakeProc) counts() (exp, imp int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.exported), len(f.imported)
}

func (f *fakeProc) lastOwn() work.Ownership {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.owns) == 0 {
		return work.Ownership{}
	}
	return f.owns[len(f.owns)-1]
}

func heldIn(o work.Ownership) int {
	n := 0
	for _, d := range o.Owner {
		if _, ok := heldSlot(d); ok {
			n++
		}
	}
	return n
}

type rescaleResult struct {
	kind string
	ok   bool
}

// rsCluster forms a cluster of n members with fake processors; the
// initializer reports each rescale on the returned channel.
func rsCluster(t *testing.T, ctx context.Context, n int, extra func(i int, c *Config)) ([]*Member, []*fakeProc, chan rescaleResult) {
	t.Helper()
	return rsClusterIn(t, func(int) context.Context { return ctx }, n, extra)
}

// rsClusterIn is rsCluster with member i running until ctxOf(i) ends.
func rsClusterIn(t *testing.T, ctxOf func(i int) context.Context, n int, extra func(i int, c *Config)) ([]*Member, []*fakeProc, chan rescaleResult) {
	t.Helper()
	ctx := ctxOf(0)
	res := make(chan rescaleResult, 16)
	fps := make([]*fakeProc, n)
	ms, _ := startClusterIn(t, ctxOf, n, func(i int, c *Config) {
		fps[i] = &fakeProc{}
		fps[i].wire(c)
		if i == 0 {
			c.OnRescale = func(kind string, ok bool, took time.Duration) { res <- rescaleResult{kind, ok} }
		}
		if extra != nil {
			extra(i, c)
		}
	})
	startAll(t, ctx, ms)
	return ms, fps, res
}

// rsClusterLogged is rsCluster of n whose initializer logs into the
// returned buffer.
func rsClusterLogged(t *testing.T, ctx context.Context, n int) ([]*Member, chan rescaleResult, *lockedLog) {
	t.Helper()
	log := &lockedLog{}
	ms, _, results := rsCluster(t, ctx, n, func(i int, c *Config) {
		if i == 0 {
			c.Log = slog.New(slog.NewTextHandler(log, nil))
		}
	})
	return ms, results, log
}

// joiner makes a worker that asks to join k at once through the
// initializer; it is started on its own context.
func joiner(t *testing.T, init *Member, name string, k int, fp *fakeProc, mod func(*Config)) *Member {
	t.Helper()
	g := &got{byIn: map[int][]string{}}
	cfg := Config{Name: name, Control: init.ctlL.Addr().String(), MyControl: "127.0.0.1:0", Data: "127.0.0.1:0",
		Hello: hello(), Deliver: g.deliver, JoinTimeout: 10 * time.Second, Joining: k}
	fp.wire(&cfg)
	if mod != nil {
		mod(&cfg)
	}
	m := New(cfg)
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	return m
}

func waitResult(t *testing.T, ch chan rescaleResult, d time.Duration) rescaleResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("no rescale result within %v", d)
	}
	return rescaleResult{}
}

// A grow aborted before its freeze (a joiner fails its preparation) is
// told to every worker and joiner: the members drop the links their
// Prepare made to the joiners (a later rescale would wait for them), and
// a joiner told to abort is not started when it says it is ready.
func TestRescale_AbortedGrowTellsEveryoneAndDropsItsLinks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsCluster(t, ctx, 2, nil)
	j1 := joiner(t, ms[0], "j1", 2, &fakeProc{}, nil)
	defer j1.Close()
	j2 := joiner(t, ms[0], "j2", 2, &fakeProc{}, nil)
	defer j2.Close()
	errs := make(chan error, 2)
	go func() { errs <- j1.Start(ctx) }()
	waitFor(t, "j1 waiting for its join", func() bool {
		ms[0].rs.mu.Lock()
		defer ms[0].rs.mu.Unlock()
		return len(ms[0].rs.gather.Joiners) == 1
	})
	go func() { errs <- j2.Start(ctx) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("joiner start: %v", err)
		}
	}
	j1.rs.mu.Lock()
	id := j1.rs.pending.ID
	j1.rs.mu.Unlock()
	if err := j1.toInit.send(KindRescaleAck, RescaleAck{ID: id, Phase: PhasePrepare, Err: "j1: preparation failed (test)"}.Encode()); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, results, time.Minute); r.ok {
		t.Fatal("the grow succeeded")
	}
	for _, m := range ms {
		waitFor(t, m.cfg.Name+" drops its links to the joiners", func() bool {
			return m.linkTo("j1") == nil && m.linkTo("j2") == nil
		})
	}
	if err := j2.Ready(); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	var je *JoinError
	if err := j2.WaitStarted(sctx); !errors.As(err, &je) {
		t.Fatalf("the aborted joiner j2: WaitStarted = %v, want its JoinError", err)
	}
	if got := ms[0].Workers(); !slices.Equal(got, []string{"initializer", "worker1"}) {
		t.Errorf("members after the abort: %v", got)
	}
}

// A joiner that leaves before the others of its join came no longer
// counts: its name is free and a join of one with it completes.
func TestRescale_AJoinerThatLeavesIsTakenOutOfItsJoin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsCluster(t, ctx, 2, nil)
	jctx, kill := context.WithCancel(ctx)
	j := joiner(t, ms[0], "j1", 2, &fakeProc{}, nil)
	go j.Start(jctx)
	waitFor(t, "j1 waiting for its join", func() bool {
		ms[0].rs.mu.Lock()
		defer ms[0].rs.mu.Unlock()
		return len(ms[0].rs.gather.Joiners) == 1
	})
	kill()
	j.Close()
	waitFor(t, "j1 taken out of its join", func() bool {
		ms[0].rs.mu.Lock()
		defer ms[0].rs.mu.Unlock()
		return len(ms[0].rs.gather.Joiners) == 0
	})
	again := joiner(t, ms[0], "j1", 1, &fakeProc{}, nil)
	defer again.Close()
	runJoiner(ctx, again, func(err error) { t.Errorf("j1 joining again: %v", err) })
	if r := waitResult(t, results, time.Minute); !r.ok {
		t.Fatal("the join of one failed")
	}
	if got := ms[0].Workers(); !slices.Equal(got, []string{"initializer", "worker1", "j1"}) {
		t.Errorf("members after the grow: %v", got)
	}
}

// A joiner that acked its Prepare and died while an old worker has yet
// to ack it fails the grow at once: before the Release, a participant
// that acked counts too (the rescale cannot end without it), where a
// wait for the unacked alone would wait out the phase's timeout for the
// old worker's ack.
func TestRescale_AnAckedJoinerLostBeforeTheReleaseFailsThePhase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, results, log := rsClusterLogged(t, ctx, 2)
	held, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	var once sync.Once
	ms[1].beforePrepareAck = func() { // worker1 acks only at the end of the test
		once.Do(func() { close(held) })
		<-release
	}
	jctx, kill := context.WithCancel(ctx)
	defer kill()
	j := joiner(t, ms[0], "j1", 1, &fakeProc{}, nil)
	defer j.Close()
	if err := j.Start(jctx); err != nil {
		t.Fatalf("joiner start: %v", err)
	}
	if err := j.LinksUp(jctx); err != nil {
		t.Fatal(err)
	}
	<-held
	if err := j.Ready(); err != nil { // its ack, read before its link closes
		t.Fatal(err)
	}
	kill()
	j.Close()
	growFailsOnLostLink(t, results, log, "j1")
}

// growFailsOnLostLink expects the grow under way to fail within half of
// the phase's timeout (well under what it waited before the lost link
// counted), the initializer's log naming the lost link of worker.
func growFailsOnLostLink(t *testing.T, results chan rescaleResult, log *lockedLog, worker string) {
	t.Helper()
	select {
	case r := <-results:
		if r.ok {
			t.Fatalf("the grow succeeded without %s", worker)
		}
	case <-time.After(phaseTimeout / 2):
		t.Fatalf("the grow has not failed within %v:\n%s", phaseTimeout/2, log.String())
	}
	if !strings.Contains(log.String(), "lost the control link to "+worker) {
		t.Errorf("the initializer's log does not say %s's link was lost:\n%s", worker, log.String())
	}
}

// After a grow, envelopes from every old worker reach the joiner: the
// data links the Prepare made outlive its phase (the initializer's own
// Prepare runs under a context that ends with the phase).
func TestRescale_AfterAGrowEveryWorkerReachesTheJoiner(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsCluster(t, ctx, 2, nil)
	g := &got{byIn: map[int][]string{}}
	j := joiner(t, ms[0], "j1", 1, &fakeProc{}, func(c *Config) { c.Deliver = g.deliver })
	defer j.Close()
	runJoiner(ctx, j, func(err error) { t.Errorf("j1: %v", err) })
	if r := waitResult(t, results, 3*phaseTimeout); !r.ok {
		t.Fatal("the grow failed")
	}
	for _, m := range ms {
		waitFor(t, m.cfg.Name+" linked to j1", func() bool { return m.linkTo("j1") != nil })
		for i := 0; i < 3; i++ {
			if err := m.Route(ctx, work.Envelopes{Dest: m.Dest("j1"), Count: 1, Data: []byte(m.cfg.Name)}); err != nil {
				t.Fatalf("%s: route to j1: %v", m.cfg.Name, err)
			}
		}
	}
	waitFor(t, "j1 receiving 3 envelopes from each old worker", func() bool { return g.count() == 6 })
}

// A joiner that acked its Prepare and then died, while an old worker
// still waits in its Prepare for its data link to the joiner (which can
// never come up), fails the grow at once: the initializer does not wait
// out the phase's timeout for the old worker's ack. The members drop
// their slots for the joiner, and a later rescale goes ahead.
func TestRescale_AJoinerLostAfterItsPrepareAckFailsTheGrowAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, results, log := rsClusterLogged(t, ctx, 2)
	jctx, kill := context.WithCancel(ctx)
	defer kill()
	j := joiner(t, ms[0], "j1", 1, &fakeProc{}, nil)
	defer j.Close()
	j.datL = dropListener{j.datL} // no data link to j1 will come up
	if err := j.Start(jctx); err != nil {
		t.Fatalf("joiner start: %v", err)
	}
	if err := j.Ready(); err != nil { // its ack of the Prepare
		t.Fatal(err)
	}
	waitFor(t, "worker1 waiting for its data link to j1", func() bool {
		ms[1].rs.mu.Lock()
		defer ms[1].rs.mu.Unlock()
		return ms[1].rs.pending != nil && ms[1].linkTo("j1") != nil
	})
	kill()
	j.Close()
	growFailsOnLostLink(t, results, log, "j1")
	for _, m := range ms {
		waitFor(t, m.cfg.Name+" drops its link to j1", func() bool { return m.linkTo("j1") == nil })
	}
	shrinkGoesAhead(t, ctx, ms[0], results, "after the failed grow")
}

// A worker not yet started that waits for its data links (a joiner
// whose initializer crashed mid-grow: the restarted initializer refuses
// its links for ever) stops waiting when its join fails, with the
// failure, which WaitStarted then reports too.
func TestRescale_AFailedJoinEndsTheWaitForLinks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	refusing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing = dropListener{refusing}
	defer refusing.Close()
	go refusing.Accept()
	m := New(Config{Name: "j1", Hello: hello(), Data: "127.0.0.1:0", MyControl: "127.0.0.1:0"})
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.setTopology(ctx, Topology{Workers: []string{"initializer", "j1"}, Data: []string{refusing.Addr().String(), m.datL.Addr().String()}})
	done := make(chan error, 1)
	go func() { done <- m.LinksUp(ctx) }()
	m.rs.lostInitializer()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "lost the control link to the initializer") {
			t.Fatalf("LinksUp after the join failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("LinksUp still waits after the join failed")
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := m.WaitStarted(wctx); err == nil || !strings.Contains(err.Error(), "lost the control link to the initializer") {
		t.Fatalf("WaitStarted after the join failed: %v", err)
	}
}

// A joiner that waits for the rest of its join is not yet a worker of
// the cluster: the commits the initializer tells reach the members only
// (a joiner recorded them, and a restart of it then found commits of
// checkpoints it held nothing of).
func TestRescale_AWaitingJoinerIsToldNoCommit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	told := map[string]int{}
	record := func(name string) func(Checkpoint) Checkpoint {
		return func(c Checkpoint) Checkpoint {
			if c.Op == OpCommit && c.ID == 7 {
				mu.Lock()
				told[name]++
				mu.Unlock()
			}
			return Checkpoint{}
		}
	}
	ms, _, results := rsCluster(t, ctx, 2, func(i int, c *Config) {
		if i == 1 {
			c.OnCheckpoint = record("worker1")
		}
	})
	j1 := joiner(t, ms[0], "j1", 2, &fakeProc{}, func(c *Config) { c.OnCheckpoint = record("j1") })
	defer j1.Close()
	formed := make(chan error, 1)
	go func() { formed <- j1.Start(ctx) }()
	waitFor(t, "j1 waiting for its join", func() bool {
		ms[0].rs.mu.Lock()
		defer ms[0].rs.mu.Unlock()
		return len(ms[0].rs.gather.Joiners) == 1
	})
	ms[0].Tell(Checkpoint{Op: OpCommit, ID: 7})
	// The join completes: its Prepare reaches j1 on the same control
	// link after the commit, so once j1 has its topology, a commit told
	// to it would have been taken.
	j2 := joiner(t, ms[0], "j2", 2, &fakeProc{}, nil)
	defer j2.Close()
	runJoiner(ctx, j2, nil)
	if err := <-formed; err != nil {
		t.Fatalf("j1: %v", err)
	}
	j1.LinksUp(ctx)
	j1.Ready()
	if r := waitResult(t, results, 3*phaseTimeout); !r.ok {
		t.Fatal("the grow failed")
	}
	waitFor(t, "worker1 told of commit 7", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return told["worker1"] == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if told["j1"] != 0 {
		t.Errorf("the waiting joiner j1 was told commit 7 (%d times)", told["j1"])
	}
}

// A shrink asked while a worker has no control link (it stopped or
// crashed) is refused with the reason: it would fail before anything
// moved (and was answered "Shrinking by 1 workers!" before).
func TestRescale_AShrinkWithAWorkerAwayIsRefused(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, _ := rsCluster(t, ctx, 3, nil)
	w := ms[2]
	w.mu.Lock()
	w.shutdownR = "test: worker2 is gone" // (it does not reconnect)
	link := w.toInit
	w.mu.Unlock()
	link.conn.Close()
	waitFor(t, "the initializer losing worker2's control link", func() bool {
		ms[0].mu.Lock()
		defer ms[0].mu.Unlock()
		return ms[0].ctl["worker2"] == nil
	})
	for _, leaving := range []string{"worker1", "worker2"} {
		if r := ms[0].startShrink(ctx, ShrinkRequest{Leaving: []string{leaving}}); !strings.Contains(r, "Cannot shrink now: not connected to worker2") {
			t.Errorf("shrink by %s with worker2 away: %q", leaving, r)
		}
	}
	if ms[0].Rescaling() {
		t.Error("a refused shrink left the initializer rescaling")
	}
}

// dropListener closes every connection it accepts.
type dropListener struct{ net.Listener }

func (l dropListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c.Close()
	}
}

// While a join is incomplete (one joiner of two came), the initializer
// says every so often which came and how many it still waits for.
func TestRescale_AnIncompleteJoinSaysWhoIsMissing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, log := rsClusterLogged(t, ctx, 2)
	ms[0].joinLogEvery = 20 * time.Millisecond
	j := joiner(t, ms[0], "j1", 2, &fakeProc{}, nil)
	defer j.Close()
	go j.Start(ctx)
	waitFor(t, "the initializer saying it waits for one more joiner", func() bool {
		return strings.Contains(log.String(), `msg="waiting for 1 more of 2 joining workers (their --worker-count) before the grow starts" joined=j1`)
	})
}

// lockedLog is a log destination safe for concurrent writers.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An old worker whose control link drops during the freeze and comes
// back (the same process reconnects; one started again after a crash
// comes back the same way, with nothing of the rescale) fails the grow,
// and the undo waits for it, then goes ahead with it: every old worker
// takes back what it sent, none stays held, the cluster is not wedged,
// and a later rescale goes ahead.
func TestRescale_AWorkerThatComesBackTakesPartInTheUndo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	awaiting := make(chan struct{})
	ms, fps, results := rsClusterLosingWorker2(t, ctx, false)
	ms[2].beforeRejoin = func() { <-awaiting }
	ms[0].onAwaitBack = func(names []string) {
		if slices.Equal(names, []string{"worker2"}) {
			close(awaiting)
		}
	}
	j := joiner(t, ms[0], "j1", 1, &fakeProc{}, nil)
	defer j.Close()
	runJoiner(ctx, j, nil)
	if r := waitResult(t, results, 3*phaseTimeout); r.ok {
		t.Fatal("the grow succeeded though worker2's link dropped")
	}
	select {
	case <-awaiting:
	default:
		t.Fatal("the undo did not wait for worker2")
	}
	wedged := wedgedOf(ms[0])
	if wedged != "" {
		t.Fatalf("wedged: %s", wedged)
	}
	checkTookBack(t, ms, fps)
	shrinkGoesAhead(t, ctx, ms[0], results, "after the undo")
}

// A worker lost during the undo itself (its link drops while it takes
// its states back) is waited for and told again once it is back: the
// undo completes (every old worker took back what it sent, nothing is
// held, the cluster is not wedged).
func TestRescale_AWorkerLostDuringTheUndoIsToldAgain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ms []*Member
	var once sync.Once
	awaiting := make(chan struct{})
	ms, fps, results := rsCluster(t, ctx, 3, func(i int, c *Config) {
		if i != 2 {
			return
		}
		next := c.ImportMany
		c.ImportMany = func(steps []string, ps []routing.PartitionID, datas [][]byte, budget time.Duration) (int, error) {
			once.Do(func() { // the undo's import of what worker2 sent
				w := ms[2]
				w.mu.Lock()
				link := w.toInit
				w.mu.Unlock()
				link.conn.Close()
			})
			return next(steps, ps, datas, budget)
		}
	})
	ms[2].beforeRejoin = func() { <-awaiting }
	ms[0].onAwaitBack = func(names []string) {
		if slices.Equal(names, []string{"worker2"}) {
			close(awaiting)
		}
	}
	j, _ := refusingJoiner(t, ctx, ms[0])
	defer j.Close()
	if r := waitResult(t, results, 4*phaseTimeout); r.ok {
		t.Fatal("the grow succeeded")
	}
	select {
	case <-awaiting:
	default:
		t.Fatal("the undo did not wait for worker2")
	}
	if w := wedgedOf(ms[0]); w != "" {
		t.Fatalf("wedged: %s", w)
	}
	checkTookBack(t, ms, fps)
}

// An undo phase told again while its first run still runs (the
// initializer lost another worker and tells every one not yet done) is
// not run a second time beside it: the repeat waits for the first run
// and reports its result, a failure included; a later rescale's undo
// runs afresh.
func TestRescale_AnUndoPhaseToldAgainRunsOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(Config{Name: "worker1"})
	release := make(chan struct{})
	runs := 0
	first := make(chan error, 1)
	undo := Rescale{ID: 7, Phase: PhaseUndo}
	go func() {
		first <- m.undoOnce(ctx, undo, func() error {
			runs++
			<-release
			return errors.New("the state cannot be read here")
		})
	}()
	waitFor(t, "the first run to start", func() bool {
		m.rs.mu.Lock()
		defer m.rs.mu.Unlock()
		return m.rs.undoRuns[PhaseUndo] != nil
	})
	again := make(chan error, 1)
	go func() {
		again <- m.undoOnce(ctx, undo, func() error {
			t.Error("the phase ran a second time")
			return nil
		})
	}()
	select {
	case err := <-again:
		t.Fatalf("the repeat returned (%v) before the first run ended", err)
	default:
	}
	close(release)
	for _, ch := range []chan error{first, again} {
		if err := <-ch; err == nil || !strings.Contains(err.Error(), "cannot be read") {
			t.Errorf("got %v, want the first run's failure", err)
		}
	}
	if runs != 1 {
		t.Errorf("ran %d times", runs)
	}
	next := 0
	if err := m.undoOnce(ctx, Rescale{ID: 8, Phase: PhaseUndo}, func() error { next++; return nil }); err != nil || next != 1 {
		t.Errorf("the undo of the next rescale: err %v, ran %d times", err, next)
	}
}

// A worker back from a restart that says it is ready while a grow or
// shrink is under way is not started until the rescale has ended:
// started at once, it would route by the old table while the others
// still hold the moving partitions. An Abort of that rescale does not
// fail its start (it is no joiner).
func TestRescale_AWorkerBackFromARestartStartsWhenTheRescaleEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, _ := rsCluster(t, ctx, 2, nil)
	ms[0].rs.mu.Lock()
	ms[0].rs.busy = true // a rescale under way
	ms[0].rs.mu.Unlock()
	ms[1].mu.Lock()
	ms[1].started = make(chan struct{}) // as a process started again
	ms[1].mu.Unlock()
	if err := ms[1].Ready(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the initializer to put worker1's start off", func() bool {
		ms[0].rs.mu.Lock()
		defer ms[0].rs.mu.Unlock()
		return slices.Equal(ms[0].rs.startAfter, []string{"worker1"})
	})
	if ms[1].Started() {
		t.Fatal("worker1 was started during the rescale")
	}
	// The rescale is aborted (every worker is told): a worker back
	// from a restart is no joiner, and waits for its start all the same.
	ms[0].mu.Lock()
	link := ms[0].ctl["worker1"]
	ms[0].mu.Unlock()
	if err := link.send(KindRescale, Rescale{ID: 7, Phase: PhaseAbort}.Encode()); err != nil {
		t.Fatal(err)
	}
	ms[0].endRescale()
	// (The Start comes after the Abort on the same link.)
	waitFor(t, "worker1 started once the rescale ended", ms[1].Started)
	select {
	case err := <-ms[1].rs.joinFailed:
		t.Errorf("the Abort failed worker1's start: %v", err)
	default:
	}
}

// A joiner whose control link is registered only after its grow was
// aborted (the grow waited for it in vain: "no control link") is told
// to go when its link comes, and fails its join with a Join Error
// rather than waiting for ever; a later join goes ahead.
func TestRescale_AJoinerLinkedAfterItsGrowWasAbortedIsTold(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsCluster(t, ctx, 2, nil)
	release := make(chan struct{})
	ms[0].joinerWait = 50 * time.Millisecond
	ms[0].beforeJoinerLink = func(w string) {
		if w == "j1" {
			<-release // until its grow has been aborted
		}
	}
	failed := make(chan error, 2)
	join := func(name string) *Member {
		j := joiner(t, ms[0], name, 2, &fakeProc{}, nil)
		runJoiner(ctx, j, func(err error) { failed <- fmt.Errorf("%s: %w", name, err) })
		return j
	}
	j1 := join("j1")
	defer j1.Close()
	waitFor(t, "j1 in its join", func() bool {
		ms[0].rs.mu.Lock()
		defer ms[0].rs.mu.Unlock()
		return len(ms[0].rs.gather.Joiners) == 1
	})
	j2 := join("j2")
	defer j2.Close()
	if r := waitResult(t, results, 3*phaseTimeout); r.ok {
		t.Fatal("the grow succeeded without j1's link")
	}
	close(release)
	for _, name := range []string{"j1", "j2"} {
		select {
		case err := <-failed:
			if !strings.Contains(err.Error(), "Join Error") {
				t.Errorf("a joiner of the aborted grow failed with %v, want a Join Error", err)
			}
		case <-time.After(phaseTimeout):
			t.Fatalf("a joiner of the aborted grow (%s or the other) was never told to go", name)
		}
	}
	again := joiner(t, ms[0], "j3", 1, &fakeProc{}, nil)
	defer again.Close()
	runJoiner(ctx, again, func(err error) { t.Errorf("j3: %v", err) })
	if r := waitResult(t, results, 3*phaseTimeout); !r.ok {
		t.Fatal("a join after the aborted grow failed")
	}
}

// A drain (the clean stop's) does not call the cluster at rest while
// messages wait, parked, for the release of a rescale.
func TestRescale_DrainWaitsForParkedMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, _ := rsCluster(t, ctx, 2, nil)
	// What Route does with a message of a moving partition in a freeze.
	if err := ms[0].Route(ctx, work.Envelopes{Dest: holdDest(ms[0].index["worker1"]), Count: 3, Data: []byte("abc")}); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	if err := ms[0].Drain(dctx); err == nil {
		t.Fatal("Drain says the cluster is at rest with a message parked")
	}
}

// An initializer started with --worker-count 2 and shrunk to itself alone
// restarts from its recovery files as a cluster of one (not waiting for
// the worker that left).
func TestRescale_InitializerShrunkToOneRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mctx, crash := context.WithCancel(ctx)
	ms, _, results := rsCluster(t, mctx, 2, func(i int, c *Config) { c.ResilienceDir = dir })
	if r := ms[0].Shrink(mctx, []string{"worker1"}, 0); r != "Shrinking by 1 workers!" {
		t.Fatalf("shrink: %q", r)
	}
	if r := waitResult(t, results, time.Minute); !r.ok {
		t.Fatal("the shrink failed")
	}
	b, err := os.ReadFile(filepath.Join(dir, "app-initializer.workers"))
	if err != nil || strings.TrimSpace(string(b)) != "initializer" {
		t.Fatalf(".workers after the shrink: %q, %v", b, err)
	}
	crash()
	ms[0].Close()
	cfg := ms[0].cfg
	cfg.OnShutdown, cfg.OnStop = nil, nil
	m := listenAgain(t, cfg)
	defer m.Close()
	if !m.Restarted() {
		t.Fatal("not a restart")
	}
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if err := m.Start(sctx); err != nil {
		t.Fatalf("the restarted initializer does not take up its cluster of one: %v", err)
	}
	if got := m.Workers(); !slices.Equal(got, []string{"initializer"}) {
		t.Errorf("workers after the restart: %v", got)
	}
}

// rsClusterLosingWorker2 is rsCluster of 3 whose worker2 loses its
// control link to the initializer at its first freeze; with stop it
// stops (and does not come back), else it reconnects as a worker that
// lost its initializer does.
func rsClusterLosingWorker2(t *testing.T, ctx context.Context, stop bool) ([]*Member, []*fakeProc, chan rescaleResult) {
	t.Helper()
	var ms []*Member
	var once sync.Once
	ms, fps, results := rsCluster(t, ctx, 3, func(i int, c *Config) {
		if i != 2 {
			return
		}
		next := c.Install
		c.Install = func(ctx context.Context, o work.Ownership, then func() []work.Item) error {
			once.Do(func() {
				w := ms[2]
				w.mu.Lock()
				if stop {
					w.shutdownR = "test: worker2 is gone"
				}
				link := w.toInit
				w.mu.Unlock()
				link.conn.Close()
			})
			return next(ctx, o, then)
		}
	})
	return ms, fps, results
}

// wedgedOf is why init refuses every rescale ("" if it does not).
func wedgedOf(init *Member) string {
	init.rs.mu.Lock()
	defer init.rs.mu.Unlock()
	return init.rs.wedged
}

// checkTookBack checks that every member exported states and imported
// the same ones again (an undone grow), and that none is rescaling or
// holds a partition.
func checkTookBack(t *testing.T, ms []*Member, fps []*fakeProc) {
	t.Helper()
	for i, fp := range fps {
		fp.mu.Lock()
		exp, back := slices.Clone(fp.exported), slices.Clone(fp.imported)
		fp.mu.Unlock()
		if len(exp) == 0 || !slices.Equal(exp, back) {
			t.Errorf("worker %d exported %v, imported again %v", i, exp, back)
		}
		if ms[i].Rescaling() || heldIn(fp.lastOwn()) != 0 {
			t.Errorf("worker %d after the undo: rescaling %v, %d partitions held", i, ms[i].Rescaling(), heldIn(fp.lastOwn()))
		}
	}
}

// runJoiner starts j, then says its links are up and it is ready, on a
// goroutine of its own; failed (nil: nothing) gets the error of a Start
// that fails.
func runJoiner(ctx context.Context, j *Member, failed func(error)) {
	go func() {
		if err := j.Start(ctx); err != nil {
			if failed != nil {
				failed(err)
			}
			return
		}
		j.LinksUp(ctx)
		j.Ready()
	}()
}

// shrinkGoesAhead asks init's cluster to shrink by worker1 and waits
// for it to succeed (after what).
func shrinkGoesAhead(t *testing.T, ctx context.Context, init *Member, results chan rescaleResult, what string) {
	t.Helper()
	if r := init.startShrink(ctx, ShrinkRequest{Leaving: []string{"worker1"}}); r != "Shrinking by 1 workers!" {
		t.Fatalf("a shrink %s: %q", what, r)
	}
	if r := waitResult(t, results, 3*phaseTimeout); !r.ok {
		t.Fatalf("the shrink %s failed", what)
	}
}

// refusingJoiner starts a joiner into init's cluster whose every import
// fails (it cannot read the states sent to it): the grow fails at its
// Commit, once every old worker has sent its states.
func refusingJoiner(t *testing.T, ctx context.Context, init *Member) (*Member, *fakeProc) {
	t.Helper()
	fp := &fakeProc{}
	j := joiner(t, init, "j1", 1, fp, func(c *Config) {
		c.ImportMany = func([]string, []routing.PartitionID, [][]byte, time.Duration) (int, error) {
			return 0, errors.New("the state cannot be read here")
		}
	})
	runJoiner(ctx, j, nil)
	return j, fp
}

// The worker that loses partitions still runs them through the freeze,
// until the fences of every other worker have been processed (a key
// crossing two keyed boundaries would otherwise park at both, on two
// workers, and could reach its new owner out of order), and parks them
// in a table installed before their states are exported; the worker
// that gains them parks them from the freeze on.
func TestRescale_LosingWorkerRunsItsPartitionsUntilTheirStatesLeave(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, fps, results := rsCluster(t, ctx, 2, nil)
	shrinkGoesAhead(t, ctx, ms[0], results, "by worker1")
	lose, gain := fps[1], fps[0]
	lose.mu.Lock()
	owns, at, exported := slices.Clone(lose.owns), slices.Clone(lose.exportAt), len(lose.exported)
	lose.mu.Unlock()
	if exported == 0 || len(owns) < 2 {
		t.Fatalf("worker1: %d tables installed, %d partitions exported", len(owns), exported)
	}
	if n := heldIn(owns[0]); n != 0 {
		t.Errorf("worker1's freeze table parks %d partitions, want none (it loses them, and runs them until they leave)", n)
	}
	if n := heldIn(owns[1]); n != exported {
		t.Errorf("worker1's second table parks %d partitions, want the %d it exports", n, exported)
	}
	for _, n := range at {
		if n != 2 {
			t.Errorf("worker1 exported with %d tables installed, want 2 (the parking one before any export)", n)
		}
	}
	gain.mu.Lock()
	defer gain.mu.Unlock()
	if len(gain.owns) == 0 {
		t.Errorf("the initializer installed no table")
	} else if n := heldIn(gain.owns[0]); n != exported {
		t.Errorf("the initializer's freeze table parks %d partitions, want the %d it gains", n, exported)
	}
	if len(gain.exported) != 0 {
		t.Errorf("the initializer exported %v, losing nothing", gain.exported)
	}
}

// A grow that fails after the freeze (its joiner cannot read the states
// sent to it) is undone: every old worker takes back the states it sent
// (it exported, then imported the same partitions), installs its old
// table (nothing held), and runs what it had parked routed again; the
// joiner is told to go, its links go, and a later shrink goes ahead.
func TestRescale_FailureAfterTheFreezeIsUndone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, fps, results := rsCluster(t, ctx, 2, nil)
	parked := work.Envelopes{Count: 1, Data: []byte("parked during the freeze")}
	fps[0].mu.Lock()
	fps[0].onInstall = func(n int) {
		if n == 1 { // the initializer's freeze
			e := parked
			e.Dest = holdDest(2)
			ms[0].park(e)
		}
	}
	fps[0].mu.Unlock()
	j, _ := refusingJoiner(t, ctx, ms[0])
	defer j.Close()
	if r := waitResult(t, results, 3*phaseTimeout); r.ok {
		t.Fatal("the grow succeeded")
	}
	for i, fp := range fps {
		fp.mu.Lock()
		exp, imp := slices.Clone(fp.exported), slices.Clone(fp.imported)
		installs, ran := len(fp.owns), slices.Clone(fp.ran)
		fp.mu.Unlock()
		if len(exp) == 0 || !slices.Equal(exp, imp) {
			t.Errorf("worker %d: exported %v, imported again %v", i, exp, imp)
		}
		// The freeze (what this worker loses still runs here), the
		// table that parks those too before their states leave, and
		// the old table again.
		if installs != 3 || heldIn(fp.lastOwn()) != 0 {
			t.Errorf("worker %d: %d tables installed, %d partitions held in the last", i, installs, heldIn(fp.lastOwn()))
		}
		if i == 0 {
			if len(ran) != 1 || !ran[0].Envelopes.Reroute || ran[0].Envelopes.Dest != work.Here || string(ran[0].Envelopes.Data) != string(parked.Data) {
				t.Errorf("the initializer ran %+v after the undo, want its parked batch routed again", ran)
			}
		}
	}
	if ms[0].Rescaling() || ms[1].Rescaling() {
		t.Error("still rescaling after the undo")
	}
	if got := ms[0].Workers(); !slices.Equal(got, []string{"initializer", "worker1"}) {
		t.Errorf("workers after the undo: %v", got)
	}
	select {
	case err := <-j.rs.joinFailed:
		if !strings.Contains(err.Error(), "Join Error") {
			t.Errorf("the joiner was told: %v", err)
		}
	case <-time.After(phaseTimeout):
		t.Error("the joiner of the undone grow was not told to go")
	}
	shrinkGoesAhead(t, ctx, ms[0], results, "after the undone grow")
}

// A worker that imported states drops them at the undo (a shrink whose
// leaver's states could not all be read by the worker that stays is
// undone too: the leaver takes back all of its partitions).
func TestRescale_AnUndoneShrinkDropsWhatCameAndGivesBackWhatLeft(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var imports int
	ms, fps, results := rsCluster(t, ctx, 3, func(i int, c *Config) {
		if i == 1 {
			next := c.ImportMany
			c.ImportMany = func(steps []string, ps []routing.PartitionID, datas [][]byte, budget time.Duration) (int, error) {
				imports++
				if imports > 1 { // the first batch is in, then nothing
					return 0, errors.New("the state cannot be read here")
				}
				return next(steps[:1], ps[:1], datas[:1], budget)
			}
		}
	})
	if r := ms[0].startShrink(ctx, ShrinkRequest{Leaving: []string{"worker2"}}); r != "Shrinking by 1 workers!" {
		t.Fatalf("shrink: %q", r)
	}
	if r := waitResult(t, results, 3*phaseTimeout); r.ok {
		t.Fatal("the shrink succeeded")
	}
	fps[1].mu.Lock()
	imp, drop := slices.Clone(fps[1].imported), slices.Clone(fps[1].dropped)
	fps[1].mu.Unlock()
	// Everything that came is dropped: what was imported, and what
	// failed to be (it may be there in part).
	for _, p := range imp {
		if !slices.Contains(drop, p) {
			t.Errorf("worker1 imported partition %d and did not drop it at the undo (dropped %v)", p, drop)
		}
	}
	if len(imp) == 0 || len(drop) <= len(imp) {
		t.Errorf("worker1 imported %v, dropped at the undo %v: want the first batch in, the rest refused, all dropped", imp, drop)
	}
	fps[2].mu.Lock()
	exp, back := slices.Clone(fps[2].exported), slices.Clone(fps[2].imported)
	fps[2].mu.Unlock()
	if len(exp) == 0 || !slices.Equal(exp, back) {
		t.Errorf("the leaver exported %v, imported again %v", exp, back)
	}
	fps[0].mu.Lock()
	imp0, drop0 := slices.Clone(fps[0].imported), slices.Clone(fps[0].dropped)
	fps[0].mu.Unlock()
	if len(imp0) == 0 || !slices.Equal(imp0, drop0) {
		t.Errorf("the initializer imported %v, dropped at the undo %v", imp0, drop0)
	}
	if got := ms[0].Workers(); len(got) != 3 || ms[2].Leaving() {
		t.Errorf("after the undone shrink: workers %v, worker2 leaving %v", got, ms[2].Leaving())
	}
	wedged := wedgedOf(ms[0])
	if wedged != "" {
		t.Errorf("wedged after an undo: %s", wedged)
	}
	for i, m := range ms {
		if m.Rescaling() || heldIn(fps[i].lastOwn()) != 0 {
			t.Errorf("worker %d after the undo: rescaling %v, %d partitions held", i, m.Rescaling(), heldIn(fps[i].lastOwn()))
		}
	}
}

// A rescale whose undo fails too (here an old worker cannot import its
// own states again) leaves the cluster refusing later rescales (what is
// parked must not be dropped), and the sources held once maxParked
// batches are parked.
func TestRescale_AFailedUndoRefusesLaterRescales(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsCluster(t, ctx, 2, func(i int, c *Config) {
		if i == 1 {
			c.ImportMany = func([]string, []routing.PartitionID, [][]byte, time.Duration) (int, error) {
				return 0, errors.New("the state cannot be read here")
			}
		}
	})
	j, _ := refusingJoiner(t, ctx, ms[0])
	defer j.Close()
	if r := waitResult(t, results, 4*phaseTimeout); r.ok {
		t.Fatal("the grow succeeded")
	}
	if r := ms[0].startShrink(ctx, ShrinkRequest{Leaving: []string{"worker1"}}); !strings.Contains(r, "failed after its state began to move") {
		t.Errorf("a shrink after the failed undo: %q", r)
	}
	if ms[0].Congested() != nil {
		t.Fatal("held before anything is parked")
	}
	for i := 0; i < maxParked; i++ {
		ms[0].park(work.Envelopes{Dest: holdDest(0), Count: 1, Data: []byte("x")})
	}
	if ms[0].Congested() == nil {
		t.Errorf("%d batches parked and the sources not held", maxParked)
	}
}

// An old worker lost during the freeze (here it stops: its control link
// goes and it does not come back) fails the grow as soon as its link is
// gone (the reason names the lost link, not phaseTimeout); the undo
// waits for it to come back and, as it does not, is refused before it
// begins (what it sent or was sent cannot be put back): no other worker
// takes anything back, the cluster refuses later rescales saying why,
// and what is parked stays parked.
func TestRescale_AWorkerLostDuringTheFreezeWedgesWithoutAnUndo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, fps, results := rsClusterLosingWorker2(t, ctx, true)
	ms[0].comeBack = 200 * time.Millisecond // it never comes back
	fp := &fakeProc{}
	j := joiner(t, ms[0], "j1", 1, fp, nil)
	defer j.Close()
	runJoiner(ctx, j, nil)
	if r := waitResult(t, results, 3*phaseTimeout); r.ok {
		t.Fatal("the grow succeeded without worker2")
	}
	wedged := wedgedOf(ms[0])
	if !strings.Contains(wedged, "lost the control link to worker2") || !strings.Contains(wedged, "no control link to worker2 (not back within") {
		t.Errorf("wedged: %q, want the lost link and the refused undo named", wedged)
	}
	for i := 0; i < 2; i++ {
		fps[i].mu.Lock()
		exp, back, dropped := len(fps[i].exported), len(fps[i].imported), len(fps[i].dropped)
		fps[i].mu.Unlock()
		if exp == 0 || back != 0 || dropped != 0 {
			t.Errorf("worker %d exported %d partitions, imported %d, dropped %d: want its states sent and nothing undone", i, exp, back, dropped)
		}
	}
	if r := ms[0].startShrink(ctx, ShrinkRequest{Leaving: []string{"worker1"}}); !strings.Contains(r, "failed after its state began to move") {
		t.Errorf("a shrink after the refused undo: %q", r)
	}
}

// A worker lost in its freeze before it sent its fences fails the grow
// as soon as its link is gone: the initializer's own freeze, which waits
// for those fences, does not wait out the phase's timeout.
func TestRescale_AWorkerLostBeforeItsFencesFailsTheFreezeAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ms []*Member
	var once sync.Once
	ms, _, results := rsCluster(t, ctx, 3, func(i int, c *Config) {
		if i != 2 {
			return
		}
		c.Install = func(ctx context.Context, o work.Ownership, then func() []work.Item) error {
			once.Do(func() {
				w := ms[2]
				w.mu.Lock()
				w.shutdownR = "test: worker2 is gone"
				link := w.toInit
				w.mu.Unlock()
				link.conn.Close()
			})
			<-ctx.Done() // its fences are never sent
			return ctx.Err()
		}
	})
	ms[0].comeBack = 200 * time.Millisecond // it never comes back
	growFailsWithin(t, ctx, ms[0], results, phaseTimeout/2, "the grow has not failed")
	if wedged := wedgedOf(ms[0]); !strings.Contains(wedged, "lost the control link to worker2") {
		t.Errorf("wedged: %q, want the lost link named", wedged)
	}
}

// A partition's state larger than a KindState frame carries goes in
// pieces, through the initializer, and is imported whole by its new
// owner.
func TestRescale_StateLargerThanAFrameArrivesInPieces(t *testing.T) {
	big := func(p routing.PartitionID) []byte {
		return []byte(strings.Repeat(fmt.Sprintf("<%d>", p), 10+int(p)%5))
	}
	bigExports := func(c *Config) {
		c.ExportMany = func(step string, ps []routing.PartitionID, budget time.Duration) ([][]byte, error) {
			var out [][]byte
			for _, p := range ps {
				out = append(out, big(p))
			}
			return out, nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsCluster(t, ctx, 2, func(i int, c *Config) {
		bigExports(c)
		c.StateChunk = 7
	})
	var mu sync.Mutex
	got := map[routing.PartitionID][]byte{}
	j := joiner(t, ms[0], "j1", 1, &fakeProc{}, func(c *Config) {
		c.ImportMany = func(steps []string, ps []routing.PartitionID, datas [][]byte, budget time.Duration) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			for i, p := range ps {
				got[p] = slices.Clone(datas[i])
			}
			return len(ps), nil
		}
	})
	defer j.Close()
	runJoiner(ctx, j, func(err error) { t.Errorf("j1: %v", err) })
	if r := waitResult(t, results, time.Minute); !r.ok {
		t.Fatal("the grow failed")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("j1 imported nothing")
	}
	for p, data := range got {
		if want := big(p); !bytes.Equal(data, want) {
			t.Errorf("partition %d: imported %q, want %q", p, data, want)
		}
	}
	for _, m := range ms {
		m.rs.mu.Lock()
		if len(m.rs.pieces) != 0 {
			t.Errorf("%s holds pieces after the grow", m.cfg.Name)
		}
		m.rs.mu.Unlock()
	}
}

// A fence counts only for the rescale it names: one of a rescale that was
// undone (sent late by a freeze cut short) is not taken for the next's.
func TestRescale_AFenceOfAnotherRescaleIsIgnored(t *testing.T) {
	m := New(Config{Name: "w0"})
	m.rs.pending = &Rescale{ID: 2}
	m.rs.oldMembers = []string{"w1"}
	m.rs.fenced = map[string]bool{}
	m.rs.fencesDone = make(chan struct{})
	m.fenceProcessed("w1", 1)
	select {
	case <-m.rs.fencesDone:
		t.Fatal("the fence of rescale 1 counted for rescale 2")
	default:
	}
	m.fenceProcessed("w1", 2)
	select {
	case <-m.rs.fencesDone:
	default:
		t.Fatal("the fence of rescale 2 did not count for it")
	}
}

// listenAgain makes a member of cfg, an initializer's that crashed, and
// waits until it binds its listeners again (the crashed one's are let
// go by the system).
func listenAgain(t *testing.T, cfg Config) *Member {
	t.Helper()
	var m *Member
	waitFor(t, "the restarted initializer binds its listeners again", func() bool {
		m = New(cfg)
		if err := m.Listen(); err != nil {
			m.Close()
			return false
		}
		return true
	})
	return m
}

// The initializer's processor loop does not take the freeze's table in
// time (held up behind a slow sink): the freeze fails within its bound
// and the grow is undone once the loop takes the tables (the freeze's
// first, then the old one again); a later rescale goes ahead.
func TestRescale_AFreezeTheLoopDoesNotTakeInTimeIsUndone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The initializer's loop, held up until stuck closes: the tables
	// wait in its queue and are applied in order once it is free.
	stuck := make(chan struct{})
	var qmu sync.Mutex
	var queued []func()
	ms, _, results := rsCluster(t, ctx, 2, func(i int, c *Config) {
		if i != 0 {
			return
		}
		apply := c.Install
		c.Install = func(ictx context.Context, o work.Ownership, then func() []work.Item) error {
			done := make(chan error, 1)
			qmu.Lock()
			queued = append(queued, func() { done <- apply(ctx, o, then) })
			qmu.Unlock()
			go func() {
				<-stuck
				qmu.Lock()
				defer qmu.Unlock()
				for len(queued) > 0 {
					f := queued[0]
					queued = queued[1:]
					f()
				}
			}()
			select {
			case err := <-done:
				return err
			case <-ictx.Done():
				return ictx.Err()
			}
		}
	})
	ms[0].freezeLimit = 200 * time.Millisecond
	j := joiner(t, ms[0], "j1", 1, &fakeProc{}, nil)
	defer j.Close()
	runJoiner(ctx, j, nil)
	// Without a bound the grow would wait here for ever; with it, the
	// freeze fails and the undo queues the old table behind the
	// freeze's, well within the phase limit.
	deadline := time.Now().Add(phaseTimeout / 2)
	for {
		qmu.Lock()
		n := len(queued)
		qmu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no undo within %v: %d tables wait for the loop", phaseTimeout/2, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stuck)
	if r := waitResult(t, results, 3*phaseTimeout); r.ok {
		t.Fatal("the grow succeeded")
	}
	if ms[0].Rescaling() || ms[1].Rescaling() {
		t.Error("still rescaling after the undo")
	}
	if got := ms[0].Workers(); !slices.Equal(got, []string{"initializer", "worker1"}) {
		t.Errorf("workers after the undo: %v", got)
	}
	shrinkGoesAhead(t, ctx, ms[0], results, "after the undone grow")
}

// A stop that begins while the undo of a failed grow waits for a lost
// worker to come back ends that wait (the worker will not come: the
// cluster stops) as soon as the stop has begun, before its drain and its
// last checkpoint, which waits for the rescale's lock: the stop is not
// held for the minute the undo would wait, and the rescale is not left
// wedged.
func TestRescale_AStopEndsTheUndosWaitForALostWorker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsClusterLosingWorker2(t, ctx, true)
	locked := make(chan struct{})
	ms[0].onAwaitBack = func(names []string) {
		// What the initializer's stop does first: it notes the stop,
		// then (drained) takes a last checkpoint under the lock the
		// rescale holds.
		ms[0].StopAsked()
		go func() {
			unlock := ms[0].Exclusive()
			unlock()
			close(locked)
		}()
	}
	growFailsWithin(t, ctx, ms[0], results, comeBackWait/2, "the undo still waits for worker2 after the stop began")
	select {
	case <-locked:
	case <-time.After(comeBackWait / 2):
		t.Fatalf("the stop's checkpoint still waits for the rescale's lock %v after the stop began", comeBackWait/2)
	}
	if w := wedgedOf(ms[0]); w != "" {
		t.Errorf("wedged by a stop: %q", w)
	}
}

// growFailsWithin starts a joiner j1 into init's cluster (worker2 lost)
// and waits up to d for the grow to fail (fatal with what, if it has not
// ended by then, or succeeded).
func growFailsWithin(t *testing.T, ctx context.Context, init *Member, results chan rescaleResult, d time.Duration, what string) {
	t.Helper()
	j := joiner(t, init, "j1", 1, &fakeProc{}, nil)
	t.Cleanup(func() { j.Close() })
	runJoiner(ctx, j, nil)
	select {
	case r := <-results:
		if r.ok {
			t.Fatal("the grow succeeded without worker2")
		}
	case <-time.After(d):
		t.Fatalf("%s within %v", what, d)
	}
}
