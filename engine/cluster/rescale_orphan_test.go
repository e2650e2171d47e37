package cluster

// An initializer that crashes in the middle of a grow or shrink, after
// the old workers froze and sent their states: started again from its
// recovery files, the cluster it recorded says whether the rescale
// completes (it had committed it: the workers it left frozen complete
// it) or is undone (it undoes it on the workers that come back frozen,
// before the cluster starts), rather than the workers waiting for ever.
// And control links that drop and come back at a live initializer
// during a rescale.

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// orphanedGrow forms a cluster of 3 with recovery files, grows it by a
// joiner, crashes the initializer just before it tells phase, and
// starts it again from its files. It returns the members (the restarted
// initializer first), their fake processors, the joiner and what its
// start returned (nil while it runs).
func orphanedGrow(t *testing.T, ctx context.Context, phase uint8) ([]*Member, []*fakeProc, *Member, func() error) {
	t.Helper()
	return orphaned(t, ctx, phase, "", nil)
}

// restartConsole receives the console of the initializers restarted by
// restartInitializer (one test at a time: not parallel).
var restartConsole = &lockedLog{}

// orphaned is orphanedGrow, or, with leaver, a shrink by leaver
// (worker2, or worker3 which comes by a grow first), which calls left
// when it leaves; no joiner is returned then.
func orphaned(t *testing.T, ctx context.Context, phase uint8, leaver string, left func()) ([]*Member, []*fakeProc, *Member, func() error) {
	t.Helper()
	// (Not t.TempDir: the members' goroutines may still write there for
	// a moment after the test has ended them.)
	dir, err := os.MkdirTemp("", "orphaned-grow")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(30 * time.Second)
		for os.RemoveAll(dir) != nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	})
	ictx, crash := context.WithCancel(ctx)
	crashed := make(chan struct{})
	resume := make(chan struct{})
	var once sync.Once
	var armed atomic.Bool
	armed.Store(leaver != "worker3") // (its grow goes through)
	ms, fps, results := rsClusterIn(t, func(i int) context.Context {
		if i == 0 {
			return ictx
		}
		return ctx
	}, 3, func(i int, c *Config) {
		c.ResilienceDir = dir
		if i == 2 && leaver == "worker2" {
			c.OnLeave = left
		}
	})
	ms[0].beforePhase = func(ph uint8) {
		if ph == phase && armed.Load() {
			// The crash: nothing of this run goes out from here on.
			once.Do(func() { crash(); close(crashed) })
			<-resume
		}
	}
	t.Cleanup(func() {
		// The crashed run's rescale ends (it fails: its links are gone)
		// before the files it could touch are removed.
		close(resume)
		waitResult(t, results, 3*phaseTimeout)
	})
	if leaver == "worker3" {
		j := joiner(t, ms[0], "worker3", 1, &fakeProc{}, func(c *Config) { c.ResilienceDir = dir; c.OnLeave = left })
		t.Cleanup(j.Close)
		runJoiner(ctx, j, func(err error) { t.Errorf("the joiner: %v", err) })
		if r := waitResult(t, results, 3*phaseTimeout); !r.ok {
			t.Fatal("the grow failed")
		}
		armed.Store(true)
		ms = append(ms, j)
	}
	if leaver != "" {
		if r := ms[0].Shrink(ictx, []string{leaver}, 0); r != "Shrinking by 1 workers!" {
			t.Fatalf("shrink: %q", r)
		}
		return restartInitializer(t, ctx, ms, crashed), fps, nil, nil
	}
	jfp := &fakeProc{}
	j := joiner(t, ms[0], "worker3", 1, jfp, func(c *Config) { c.ResilienceDir = dir })
	t.Cleanup(j.Close)
	var jmu sync.Mutex
	var jerr error
	jctx, jstop := context.WithCancel(ctx)
	t.Cleanup(jstop)
	go func() {
		err := j.Start(jctx)
		if err == nil {
			err = j.LinksUp(jctx)
		}
		if err == nil {
			err = j.Ready()
		}
		if err == nil {
			err = j.WaitStarted(jctx)
		}
		if err == nil {
			err = errors.New("started")
		}
		jmu.Lock()
		jerr = err
		jmu.Unlock()
	}()
	return restartInitializer(t, ctx, ms, crashed), fps, j, func() error { jmu.Lock(); defer jmu.Unlock(); return jerr }
}

// restartInitializer waits until crashed is closed and starts ms[0]
// again from its files, in its place in the returned members.
func restartInitializer(t *testing.T, ctx context.Context, ms []*Member, crashed chan struct{}) []*Member {
	t.Helper()
	select {
	case <-crashed:
	case <-time.After(3 * phaseTimeout):
		t.Fatal("the rescale did not reach the phase the initializer crashes before")
	}
	ms[0].Close()
	cfg := ms[0].cfg
	cfg.OnShutdown, cfg.OnStop, cfg.OnRescale = nil, nil, nil
	restartConsole = &lockedLog{}
	cfg.Console = restartConsole
	m := listenAgain(t, cfg)
	t.Cleanup(m.Close)
	if !m.Restarted() {
		t.Fatal("not a restart")
	}
	if err := m.Start(ctx); err != nil {
		t.Fatalf("the restarted initializer: %v", err)
	}
	if err := m.Ready(); err != nil {
		t.Fatal(err)
	}
	ms[0] = m
	return ms
}

// Crashed after every old worker froze and sent its states, before the
// Commit: the initializer comes back with the cluster of before (it had
// recorded nothing else) and, once every worker is back, undoes the
// grow on the workers that say they are frozen in it (each takes back
// what it sent and runs what it parked by the old table), before the
// cluster starts. The joiner, which had not all its states, fails its
// join.
func TestRescale_AnInitializerCrashedBeforeTheCommitComesBackToAnUndoneGrow(t *testing.T) {
	undoneOnRestart(t, PhaseCommit, "lost the control link to the initializer before joining")
}

// Crashed after every Commit ack, before it recorded the new cluster:
// the same undo; the joiner, which had all its states, reconnects, is
// refused as not a member, and fails its join saying so.
func TestRescale_AnInitializerCrashedBeforeItsCommitPointComesBackToAnUndoneGrow(t *testing.T) {
	undoneOnRestart(t, commitPoint, "came back without this worker")
}

// undoneOnRestart is the test of an initializer crashed just before
// phase whose grow is undone when it is back; the joiner fails with
// joinErr.
func undoneOnRestart(t *testing.T, phase uint8, joinErr string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, fps, _, joined := orphanedGrow(t, ctx, phase)
	waitFor(t, "the old workers settle the grow", func() bool {
		return !ms[1].Rescaling() && !ms[2].Rescaling()
	})
	checkTookBack(t, ms[1:], fps[1:])
	waitFor(t, "the restarted initializer says the grow was undone", func() bool {
		return strings.Contains(restartConsole.String(), "was undone")
	})
	for _, w := range ms {
		if got := slices.Sorted(slices.Values(w.Workers())); !slices.Equal(got, []string{"initializer", "worker1", "worker2"}) {
			t.Errorf("%s: workers %v after the undo", w.cfg.Name, got)
		}
	}
	waitFor(t, "the joiner fails", func() bool { return joined() != nil })
	if err := joined(); !strings.Contains(err.Error(), joinErr) {
		t.Errorf("the joiner: %v, want its join to fail (%s)", err, joinErr)
	}
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	for _, w := range ms {
		if err := w.WaitStarted(sctx); err != nil {
			t.Fatalf("%s not started: %v", w.cfg.Name, err)
		}
	}
	out := restartConsole.String()
	if u, s := strings.Index(out, "was undone"), strings.Index(out, "workers reporting Topology ready"); u < 0 || s < 0 || s < u {
		t.Errorf("the cluster started before the undo ended:\n%s", out)
	}
}

// Crashed after it recorded the new cluster, before telling anyone to
// release: it comes back with the joiner in its cluster; the old workers
// and the joiner (which had all its states and reconnects) complete the
// grow themselves.
func TestRescale_AnInitializerCrashedAfterTheCommitComesBackToACompletedGrow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, fps, j, joined := orphanedGrow(t, ctx, PhaseRelease)
	want := ms[0].Workers()
	if got := slices.Sorted(slices.Values(want)); !slices.Equal(got, []string{"initializer", "worker1", "worker2", "worker3"}) {
		t.Fatalf("the restarted initializer's workers: %v", want)
	}
	waitFor(t, "the old workers settle the grow", func() bool {
		return !ms[1].Rescaling() && !ms[2].Rescaling()
	})
	for i, w := range ms[1:] {
		if got := w.Workers(); !slices.Equal(got, want) {
			t.Errorf("%s: workers %v after the grow", w.cfg.Name, got)
		}
		if w.Table().Epoch() != ms[0].Table().Epoch() {
			t.Errorf("%s: table epoch %d, the initializer's %d", w.cfg.Name, w.Table().Epoch(), ms[0].Table().Epoch())
		}
		fp := fps[i+1]
		if exp, _ := fp.counts(); exp == 0 || heldIn(fp.lastOwn()) != 0 {
			t.Errorf("%s: exported %d, %d partitions held after the grow", w.cfg.Name, exp, heldIn(fp.lastOwn()))
		}
	}
	waitFor(t, "the joiner starts", func() bool { return joined() != nil })
	if err := joined(); err.Error() != "started" {
		t.Fatalf("the joiner: %v", err)
	}
	if got := j.Workers(); !slices.Equal(got, want) {
		t.Errorf("the joiner's workers: %v", got)
	}
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	for _, w := range ms {
		if err := w.WaitStarted(sctx); err != nil {
			t.Fatalf("%s not started: %v", w.cfg.Name, err)
		}
	}
}

// Crashed after it recorded a shrink, before telling anyone to release:
// it comes back without the leaver, which it refuses; the leaver
// completes the shrink (it hands over what it parked) and leaves, the
// worker that stays completes it too.
func TestRescale_AnInitializerCrashedAfterTheCommitOfAShrinkLetsTheLeaverGo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	left := make(chan struct{})
	var once sync.Once
	ms, _, _, _ := orphaned(t, ctx, PhaseRelease, "worker2", func() { once.Do(func() { close(left) }) })
	want := ms[0].Workers()
	if got := slices.Sorted(slices.Values(want)); !slices.Equal(got, []string{"initializer", "worker1"}) {
		t.Fatalf("the restarted initializer's workers: %v", want)
	}
	select {
	case <-left:
	case <-time.After(time.Minute):
		t.Fatal("the leaver did not leave")
	}
	waitFor(t, "worker1 settles the shrink", func() bool { return !ms[1].Rescaling() })
	if got := ms[1].Workers(); !slices.Equal(got, want) || ms[1].Table().Epoch() != ms[0].Table().Epoch() {
		t.Errorf("worker1: workers %v, epoch %d; the initializer's %v, %d", got, ms[1].Table().Epoch(), want, ms[0].Table().Epoch())
	}
}

// A worker whose control link goes as the Release is told (the
// initializer lives on) completes the release once it is back, even
// before the initializer has released (it is told the rescale's
// cluster), and acks the Release told on its new link: the grow
// completes rather than wedging the cluster.
func TestRescale_AWorkerLostAtTheReleaseCompletesItWhenBack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, fps, results := rsCluster(t, ctx, 3, nil)
	var once sync.Once
	ms[0].beforePhase = func(ph uint8) {
		if ph != PhaseRelease {
			return
		}
		once.Do(func() {
			ms[1].mu.Lock()
			link := ms[1].toInit
			ms[1].mu.Unlock()
			link.conn.Close()
			// It comes back before this initializer has released
			// (and is told the Release on its new link after that).
			deadline := time.Now().Add(time.Minute)
			for ms[1].Rescaling() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	j := joiner(t, ms[0], "worker3", 1, &fakeProc{}, nil)
	defer j.Close()
	runJoiner(ctx, j, func(err error) { t.Errorf("the joiner: %v", err) })
	if r := waitResult(t, results, 3*phaseTimeout); !r.ok {
		t.Fatal("the grow failed")
	}
	waitFor(t, "worker1 completes the grow", func() bool { return !ms[1].Rescaling() })
	want := ms[0].Workers()
	if len(want) != 4 {
		t.Fatalf("workers after the grow: %v", want)
	}
	if got := ms[1].Workers(); !slices.Equal(got, want) || ms[1].Table().Epoch() != ms[0].Table().Epoch() {
		t.Errorf("worker1: workers %v, epoch %d; the initializer's %v, %d", got, ms[1].Table().Epoch(), want, ms[0].Table().Epoch())
	}
	if heldIn(fps[1].lastOwn()) != 0 {
		t.Errorf("worker1 holds %d partitions after the grow", heldIn(fps[1].lastOwn()))
	}
	shrinkGoesAhead(t, ctx, ms[0], results, "after the grow")
}

// A worker whose control link drops and comes back at the live
// initializer before the Commit: the initializer fails the rescale (the
// link it was prepared on is gone: states sent on it may be lost) and
// undoes it everywhere, that worker included; it does not commit with a
// worker that took the old cluster (every worker ends on the same
// table).
func TestRescale_AWorkerBackOnANewLinkBeforeTheCommitIsUndoneWithTheRest(t *testing.T) {
	flapUndone(t, PhaseCommit) // back before the Commit is told
}

// flapUndone grows a cluster of 3 by a joiner, worker1's control link
// dropping and coming back just before the initializer reaches phase,
// and checks that the grow fails and is undone on every worker (the
// same table everywhere, nothing wedged).
func flapUndone(t *testing.T, phase uint8) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, fps, results := rsCluster(t, ctx, 3, nil)
	var once sync.Once
	ms[0].beforePhase = func(ph uint8) {
		if ph == phase {
			once.Do(func() { flapBack(ms[0], ms[1]) })
		}
	}
	j := joiner(t, ms[0], "worker3", 1, &fakeProc{}, nil)
	defer j.Close()
	runJoiner(ctx, j, nil)
	if r := waitResult(t, results, 3*phaseTimeout); r.ok {
		t.Fatal("the grow completed with a worker whose link changed before the commit")
	}
	waitFor(t, "every worker ends the grow", func() bool {
		return !ms[1].Rescaling() && !ms[2].Rescaling()
	})
	checkTookBack(t, ms, fps)
	for _, w := range ms {
		if len(w.Workers()) != 3 || w.Table().Epoch() != ms[0].Table().Epoch() {
			t.Errorf("%s: workers %v, epoch %d; the initializer's epoch %d", w.cfg.Name, w.Workers(), w.Table().Epoch(), ms[0].Table().Epoch())
		}
	}
	if r := wedgedOf(ms[0]); r != "" {
		t.Errorf("wedged: %s", r)
	}
}

// A joiner whose control link drops as the Release is told (the
// initializer lives on) reconnects, is let in as a member of the
// committed cluster (not refused as unknown, nor for a moment as
// already joined, for good) and completes the grow: it starts.
func TestRescale_AJoinerLostAtTheReleaseReconnectsAndStarts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsCluster(t, ctx, 3, nil)
	var j *Member
	var once sync.Once
	ms[0].beforePhase = func(ph uint8) {
		if ph == PhaseRelease {
			once.Do(func() {
				j.mu.Lock()
				link := j.toInit
				j.mu.Unlock()
				link.conn.Close()
			})
		}
	}
	j = joiner(t, ms[0], "worker3", 1, &fakeProc{}, nil)
	defer j.Close()
	started := make(chan error, 1)
	go func() {
		err := j.Start(ctx)
		if err == nil {
			err = j.LinksUp(ctx)
		}
		if err == nil {
			err = j.Ready()
		}
		if err == nil {
			err = j.WaitStarted(ctx)
		}
		started <- err
	}()
	if r := waitResult(t, results, 3*phaseTimeout); !r.ok {
		t.Fatal("the grow failed")
	}
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("the joiner: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the joiner did not start")
	}
	waitFor(t, "the joiner completes the grow", func() bool { return !j.Rescaling() })
	if got, want := j.Workers(), ms[0].Workers(); !slices.Equal(got, want) || j.Table().Epoch() != ms[0].Table().Epoch() {
		t.Errorf("the joiner: workers %v, epoch %d; the initializer's %v, %d", got, j.Table().Epoch(), want, ms[0].Table().Epoch())
	}
}

// The same with a leaver that came in by a grow (refused, as a joiner
// is, with a Join Error): it leaves too.
func TestRescale_AnInitializerCrashedAfterTheCommitOfAShrinkLetsAGrownLeaverGo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	left := make(chan struct{})
	var once sync.Once
	ms, _, _, _ := orphaned(t, ctx, PhaseRelease, "worker3", func() { once.Do(func() { close(left) }) })
	if got := slices.Sorted(slices.Values(ms[0].Workers())); !slices.Equal(got, []string{"initializer", "worker1", "worker2"}) {
		t.Fatalf("the restarted initializer's workers: %v", got)
	}
	select {
	case <-left:
	case <-time.After(time.Minute):
		t.Fatal("the leaver did not leave")
	}
	waitFor(t, "the others settle the shrink", func() bool { return !ms[1].Rescaling() && !ms[2].Rescaling() })
}

// A worker whose control link drops and comes back after its Commit
// ack, before the initializer commits: the commit sees the link changed
// (the worker, back, was sent the old cluster) and the rescale is undone
// everywhere instead.
func TestRescale_AWorkerBackOnANewLinkAtTheCommitPointIsUndoneWithTheRest(t *testing.T) {
	flapUndone(t, commitPoint)
}

// flapBack closes w's control link to init and waits until w is back on
// a new one, registered at init.
func flapBack(init, w *Member) {
	w.mu.Lock()
	link := w.toInit
	w.mu.Unlock()
	link.conn.Close()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		init.mu.Lock()
		c := init.ctl[w.cfg.Name]
		init.mu.Unlock()
		w.mu.Lock()
		back := w.toInit != link && w.toInit != nil
		w.mu.Unlock()
		if c != nil && back {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A worker still frozen in a rescale it has not settled (back on a new
// link, its Topology not yet read) refuses the Prepare of another, and
// that one's Abort leaves the frozen rescale for its Topology to settle.
func TestRescale_AFrozenWorkerRefusesAnotherPrepareAndKeepsItsRescale(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, _ := rsCluster(t, ctx, 2, nil)
	w := ms[1]
	frozen := &Rescale{ID: 1, Phase: PhasePrepare, Topo: Topology{Epoch: 9}}
	w.rs.mu.Lock()
	w.rs.pending, w.rs.frozen = frozen, true
	w.rs.mu.Unlock()
	w.mu.Lock()
	now := w.topologyLocked()
	w.mu.Unlock()
	err := w.prepareAs(ctx, ctx, Rescale{ID: 2, Phase: PhasePrepare, Topo: now}, 1)
	if err == nil || !strings.Contains(err.Error(), "still frozen in grow or shrink 1") {
		t.Fatalf("a Prepare while frozen: %v", err)
	}
	w.workerPhase(ctx, nil, Rescale{ID: 2, Phase: PhaseAbort})
	w.rs.mu.Lock()
	p, f := w.rs.pending, w.rs.frozen
	w.rs.mu.Unlock()
	if p != frozen || !f {
		t.Errorf("after the other rescale's Abort: pending %v, frozen %v; want rescale 1, frozen", p, f)
	}
}
