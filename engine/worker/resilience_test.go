package worker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wallaroo-go/machida/engine/barrier"
	"github.com/wallaroo-go/machida/engine/checkpoint"
	"github.com/wallaroo-go/machida/engine/cluster"
	"github.com/wallaroo-go/machida/engine/work"
)

// genProc is a Checkpointer whose state is one generator position and
// one key of one state step (keys: the keys the last restore gave it).
type genProc struct {
	pos      byte
	restored int
	keys     int
}

func (p *genProc) SetTracking(bool) error { return nil }

func (p *genProc) TakeCheckpoint(full bool) (checkpoint.Delta, error) {
	lens := binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, 1), 1)
	step := checkpoint.StepDelta{Step: "1", Keys: []byte("k"), States: []byte("s"), Lens: lens}
	return checkpoint.Delta{Full: full, Steps: []checkpoint.StepDelta{step}, Gens: map[int][]byte{0: {p.pos}}}, nil
}

func (p *genProc) RestoreCheckpoint(im *checkpoint.Image) (int, error) {
	p.pos = im.Gens[0][0]
	p.restored++
	p.keys = len(im.Steps["1"])
	return len(im.Gens), nil
}

func newTestResilience(t *testing.T, dir string, p *genProc) *resilience {
	t.Helper()
	nop := func(string, ...any) {}
	return newResilience(Resilience{Dir: dir}, p, checkpoint.Open(dir, "app", "initializer"), nil, &gate{}, nop, nop, nop, func(string) {})
}

// startAt starts a process's resilience on dir with a processor whose
// generator is at pos, and says whether it recovered from the files.
func startAt(t *testing.T, dir string, pos byte) (*resilience, *genProc, bool) {
	t.Helper()
	p := &genProc{pos: pos}
	r := newTestResilience(t, dir, p)
	ok, err := r.start()
	require.NoError(t, err)
	return r, p, ok
}

// The floor of the last grow or shrink survives a restart (it is in the
// files); a process that starts again with no checkpoint after it goes
// back to the newest before it, and the next checkpoint numbers on from
// the newest in the files.
func TestResilience_RescaleFloorSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	r, _, ok := startAt(t, dir, 7)
	assert.False(t, ok, "nothing to recover yet")
	id, err := r.final()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), id)

	// Started again: checkpoint 1 comes back.
	r2, p2, ok := startAt(t, dir, 0)
	assert.True(t, ok)
	assert.Equal(t, byte(7), p2.pos)
	assert.Equal(t, 1, p2.keys)

	// The cluster grew after checkpoint 1; the process dies before the
	// next one completes.
	r2.afterRescale()
	r3, p3, ok := startAt(t, dir, 99)
	// It goes back to checkpoint 1 (its generators too: from their
	// initial values they would make the whole stream again), for want
	// of a later one; the keys of partitions given away go when the
	// cluster's recovery ends (dropNotOwned). No rollback returns there.
	assert.True(t, ok, "the checkpoint from before the grow was not restored")
	assert.Equal(t, 1, p3.restored)
	assert.Equal(t, byte(7), p3.pos)
	assert.Equal(t, 1, p3.keys)
	assert.Equal(t, uint64(1), r3.floor.Load())
	p3.pos = 99
	id, err = r3.final()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), id, "the next checkpoint must number on from the files' newest")

	// And that one is used by the next start.
	_, p4, ok := startAt(t, dir, 0)
	assert.True(t, ok)
	assert.Equal(t, byte(99), p4.pos)
}

// fakePeers is one other worker (worker1, destination and input 5).
type fakePeers struct{ forwarded []barrier.Barrier }

func (f *fakePeers) BarrierInputs() []int          { return []int{5} }
func (f *fakePeers) SendBarrier(b barrier.Barrier) { f.forwarded = append(f.forwarded, b) }
func (f *fakePeers) WorkerAt(d work.Dest) string   { return map[work.Dest]string{5: "worker1"}[d] }

// echoProc sends every envelope it gets back to destination 5, and has a
// generator position as its state.
type echoProc struct{ genProc }

func (p *echoProc) Process(items []work.Item, out *work.Output) error {
	for _, it := range items {
		out.Envelopes = append(out.Envelopes, work.Envelopes{Dest: 5, Count: 1, Data: it.Envelopes.Data})
	}
	return nil
}
func (p *echoProc) Generate(int, int, *work.Output) (bool, error) { return true, nil }
func (p *echoProc) SetOwnership(work.Ownership) error             { return nil }

// The coordinator's barrier, injected at its sources, is forwarded to
// the peer at once; until the peer's barrier comes back, what this
// worker routes (work of the peer's input from before its barrier) is
// recorded with the checkpoint's part as in flight to that peer; what
// comes after the peer's barrier is held, then runs, unrecorded.
func TestResilience_BarrierRecordsWhatIsInFlight(t *testing.T) {
	dir := t.TempDir()
	p := &echoProc{}
	q := work.NewQueue(64, 1<<20)
	nop := func(string, ...any) {}
	r := newResilience(Resilience{Dir: dir}, &p.genProc, checkpoint.Open(dir, "app", "initializer"), q, &gate{}, nop, nop, nop, func(string) {})
	peers := &fakePeers{}
	var routed []string
	lc := work.LoopConfig{Processor: p, Queue: q, ExitWhenDrained: true,
		Route: func(_ context.Context, e work.Envelopes) error { routed = append(routed, string(e.Data)); return nil }}
	r.hookLoop(&lc, peers, true)
	b := barrier.Barrier{ID: 77, Kind: barrier.Checkpoint, Checkpoint: 1}
	ctx := context.Background()
	env := func(s string) work.Item { return work.EnvelopesItem(5, work.Envelopes{Count: 1, Data: []byte(s)}) }
	require.NoError(t, q.Put(ctx, env("before")))
	require.NoError(t, q.PutControl(ctx, work.BarrierItem(0, b)))
	require.NoError(t, q.Put(ctx, env("in the window")))
	require.NoError(t, q.Put(ctx, work.BarrierItem(5, b)))
	require.NoError(t, q.Put(ctx, env("after")))
	q.Close()
	require.NoError(t, work.Loop(ctx, ctx, lc))

	assert.Equal(t, []barrier.Barrier{b}, peers.forwarded)
	assert.Equal(t, []string{"before", "in the window", "after"}, routed)
	require.NoError(t, <-r.outcome(77))
	d, ok := r.pending[1]
	require.True(t, ok, "no part taken for checkpoint 1")
	require.Len(t, d.InFlight["worker1"], 1)
	assert.Equal(t, "in the window", string(d.InFlight["worker1"][0].Data))

	// A barrier given up: no part, the outcome says so, nothing recorded
	// after it.
	q = work.NewQueue(64, 1<<20)
	lc.Queue = q
	b2 := barrier.Barrier{ID: 78, Kind: barrier.Checkpoint, Checkpoint: 2}
	require.NoError(t, q.PutControl(ctx, work.BarrierItem(0, b2)))
	require.NoError(t, q.Put(ctx, env("x")))
	require.NoError(t, q.PutControl(ctx, work.BarrierItem(work.ControlInput, barrier.Barrier{ID: 78, Kind: barrier.Cancel})))
	q.Close()
	require.NoError(t, work.Loop(ctx, ctx, lc))
	assert.ErrorIs(t, <-r.outcome(78), errGivenUp)
	_, ok = r.pending[2]
	assert.False(t, ok)
	assert.False(t, r.recording)
}

// finiteGen is a processor with one generator that stops (a None) when
// its position reaches limit; the position is its whole state. pos is
// read and written on the loop's goroutine only.
type finiteGen struct {
	pos, limit byte
}

func (p *finiteGen) SetTracking(bool) error { return nil }
func (p *finiteGen) TakeCheckpoint(full bool) (checkpoint.Delta, error) {
	return checkpoint.Delta{Full: full, Gens: map[int][]byte{0: {p.pos}}}, nil
}
func (p *finiteGen) RestoreCheckpoint(im *checkpoint.Image) (int, error) {
	p.pos = im.Gens[0][0]
	return len(im.Gens), nil
}
func (p *finiteGen) Process([]work.Item, *work.Output) error { return nil }
func (p *finiteGen) SetOwnership(work.Ownership) error       { return nil }
func (p *finiteGen) Generate(int, int, *work.Output) (bool, error) {
	p.pos++
	return p.pos >= p.limit, nil
}

// A generator that came to its end after a checkpoint runs again after a
// rollback to that checkpoint (another worker crashed): it is back where
// the checkpoint had it and produces the rest again.
func TestResilience_RollbackRearmsAStoppedGenerator(t *testing.T) {
	dir := t.TempDir()
	q := work.NewQueue(64, 1<<20)
	p := &finiteGen{pos: 2, limit: 5}
	nop := func(string, ...any) {}
	r := newResilience(Resilience{Dir: dir}, p, checkpoint.Open(dir, "app", "initializer"), q, &gate{}, nop, nop, nop, func(string) {})
	_, err := r.start()
	require.NoError(t, err)
	id, err := r.final() // the checkpoint has the generator at 2
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go work.Loop(ctx, ctx, work.LoopConfig{Processor: p, Queue: q, Generators: []int{0}})
	pos := func() byte {
		var got byte
		require.NoError(t, r.inLoop(ctx, func() error { got = p.pos; return nil }))
		return got
	}
	require.Eventually(t, func() bool { return pos() == 5 }, time.Minute, 5*time.Millisecond, "the generator never came to its end")
	_, err = r.rollbackHere(ctx, id, 1)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return pos() == 5 }, time.Minute, 5*time.Millisecond,
		"after the rollback the generator did not produce 3 to 5 again")
}

// A process that recovered from its files prints 0.6's "Replayed" and
// "Resuming" lines once: the cluster's rollback that follows a restart,
// to the checkpoint it restored, prints them no second time; a rollback
// after that, or to another checkpoint, prints them again.
func TestResilience_ReplayedOncePerRestore(t *testing.T) {
	dir := t.TempDir()
	nop := func(string, ...any) {}
	first := newResilience(Resilience{Dir: dir}, &finiteGen{pos: 1, limit: 9}, checkpoint.Open(dir, "app", "initializer"), nil, &gate{}, nop, nop, nop, func(string) {})
	_, err := first.start()
	require.NoError(t, err)
	one, err := first.final()
	require.NoError(t, err)
	two, err := first.final()
	require.NoError(t, err)

	var lines []string
	q := work.NewQueue(64, 1<<20)
	p := &finiteGen{pos: 0, limit: 9}
	r := newResilience(Resilience{Dir: dir}, p, checkpoint.Open(dir, "app", "initializer"), q, &gate{}, nop, nop, nop,
		func(s string) { lines = append(lines, s) })
	ok, err := r.start()
	require.NoError(t, err)
	require.True(t, ok)
	replayed := func() int {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "RESILIENCE: Replayed") {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, replayed(), "at the restore: %q", lines)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go work.Loop(ctx, ctx, work.LoopConfig{Processor: p, Queue: q, Generators: []int{0}})
	_, err = r.rollbackHere(ctx, two, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, replayed(), "the rollback to the checkpoint restored at the start printed again: %q", lines)
	_, err = r.rollbackHere(ctx, two, 2)
	require.NoError(t, err)
	assert.Equal(t, 2, replayed(), "a later rollback: %q", lines)
	_, err = r.rollbackHere(ctx, one, 3)
	require.NoError(t, err)
	assert.Equal(t, 3, replayed(), "a rollback to another checkpoint: %q", lines)
}

// A worker's reply to a rollback says the highest attempt it has been
// asked for, whatever the rollback's own (an initializer restarted with
// its clock behind asks with lower numbers): the initializer numbers its
// next barriers above it, never below (raise).
func TestResilience_RollbackRepliesCarryTheHighestAttemptSeen(t *testing.T) {
	r := newTestResilience(t, t.TempDir(), &genProc{})
	ctx := context.Background()
	_, err := r.start()
	require.NoError(t, err)
	got := r.handle(ctx, cluster.Checkpoint{Op: cluster.OpRollback, Attempt: 700})
	assert.Equal(t, uint64(700), got.Seen)
	got = r.handle(ctx, cluster.Checkpoint{Op: cluster.OpRollback, Attempt: 300})
	assert.Equal(t, uint64(300), got.Attempt, "the reply is the request's")
	assert.Equal(t, uint64(700), got.Seen)

	// A cancel from the initializer behind what this worker saw gives up
	// whatever its earlier run left open here (up to where its attempts
	// go on after the rollback); one in step gives up to its own.
	assert.Equal(t, uint64(700+attemptMargin), r.cancelAttempt(300))
	assert.Equal(t, uint64(700), r.cancelAttempt(700))

	var a atomic.Uint64
	a.Store(500)
	raise(&a, 400)
	assert.Equal(t, uint64(500), a.Load())
	raise(&a, 900)
	assert.Equal(t, uint64(900), a.Load())
}

// A rotation asked by size runs off the committing goroutine (the commit
// returns before it), and a rotation asked after a clean stop removed the
// files (as one on its own goroutine may be) writes none again.
func TestResilience_RotationsAfterACleanStopWriteNothing(t *testing.T) {
	dir := t.TempDir()
	nop := func(string, ...any) {}
	r := newResilience(Resilience{Dir: dir, LogRotation: true, LogFileSize: 1}, &genProc{pos: 3},
		checkpoint.Open(dir, "app", "initializer"), nil, &gate{}, nop, nop, nop, func(string) {})
	_, err := r.start()
	require.NoError(t, err)
	files := func() []string {
		names, err := filepath.Glob(filepath.Join(dir, "*"))
		require.NoError(t, err)
		return names
	}
	_, err = r.final() // committed: the log grew past 1 byte
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, n := range files() {
			if b := filepath.Base(n); strings.HasPrefix(b, "app-initializer-") && strings.HasSuffix(b, ".evlog") {
				return true
			}
		}
		return false
	}, 30*time.Second, 5*time.Millisecond, "no rotated file: %v", files())

	require.NoError(t, r.removeFiles())
	require.Empty(t, files(), "a clean stop leaves no files")
	require.NoError(t, r.rotate("asked after the stop"))
	assert.Empty(t, files(), "a rotation after the clean stop wrote a file")
}

// Checkpoints that fail in a row for the same reason (a worker down)
// are logged once, then again only every failLogEvery with how many were
// not; a new reason is logged at once, and the first success after
// failures says so.
func TestFailedCheckpoints_LogsARepeatedReasonOnce(t *testing.T) {
	var warns, logs []string
	r := &resilience{
		warn:  func(msg string, args ...any) { warns = append(warns, fmt.Sprint(append([]any{msg}, args...)...)) },
		log:   func(msg string, args ...any) { logs = append(logs, msg) },
		debug: func(string, ...any) {},
	}
	var f failedCheckpoints
	down := errors.New("take of checkpoint 5: not connected to [worker2]")
	for i := 0; i < 50; i++ {
		f.failed(r, 5, down)
	}
	if len(warns) != 1 {
		t.Fatalf("50 failures for one reason logged %d times: %q", len(warns), warns)
	}
	f.loggedAt = f.loggedAt.Add(-failLogEvery) // as if failLogEvery passed
	f.failed(r, 5, down)
	if len(warns) != 2 || !strings.Contains(warns[1], "not_logged49") {
		t.Fatalf("the repeat after failLogEvery: %q", warns)
	}
	f.failed(r, 5, errors.New("take of checkpoint 5: worker1: disk full"))
	if len(warns) != 3 {
		t.Fatalf("a new reason was not logged at once: %q", warns)
	}
	f.complete(r, 6)
	if len(logs) != 1 || logs[0] != "checkpoints complete again" {
		t.Fatalf("the success after failures: %q", logs)
	}
	f.complete(r, 7)
	if len(logs) != 1 {
		t.Fatalf("a success after successes was logged: %q", logs)
	}
}

// checkpointedDir returns a resilience directory of the worker "initializer" of
// app "app" with n committed checkpoints (the generator at 1..n), and
// the files' paths.
func checkpointedDir(t *testing.T, n int) (dir, evlog, ids string) {
	t.Helper()
	dir = t.TempDir()
	for i := 1; i <= n; i++ {
		r, _, _ := startAt(t, dir, byte(i))
		_, err := r.final()
		require.NoError(t, err)
	}
	store := checkpoint.Open(dir, "app", "initializer")
	return dir, store.EventLogPath(), store.IDsPath()
}

// Recovery files that list committed checkpoints none of which can be
// restored refuse the start with 0.6's words, the file and what to do;
// a worker that is not the coordinator may go on when its event log
// holds a whole checkpoint (the coordinator's list decides which), and
// files of no committed checkpoint, or of checkpoints all before the
// last grow or shrink, are no reason to refuse.
func TestResilience_CheckFilesRefusesFilesThatCannotBeRestored(t *testing.T) {
	check := func(dir string, coordinator bool) error {
		return newTestResilience(t, dir, &genProc{}).checkFiles("initializer", coordinator)
	}
	t.Run("intact", func(t *testing.T) {
		dir, _, _ := checkpointedDir(t, 2)
		assert.NoError(t, check(dir, true))
		assert.NoError(t, check(dir, false))
	})
	t.Run("no files", func(t *testing.T) {
		assert.NoError(t, check(t.TempDir(), true))
	})
	t.Run("event log removed", func(t *testing.T) {
		dir, evlog, _ := checkpointedDir(t, 2)
		require.NoError(t, os.Remove(evlog))
		for _, coordinator := range []bool{true, false} {
			err := check(dir, coordinator)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "Some resilience/recovery files are missing or damaged! Cannot continue!")
			assert.Contains(t, err.Error(), "holds no checkpoint (it is missing or empty)")
			assert.Contains(t, err.Error(), "stop its cluster and start every worker without its recovery files")
		}
	})
	t.Run("event log emptied", func(t *testing.T) {
		dir, evlog, _ := checkpointedDir(t, 2)
		require.NoError(t, os.WriteFile(evlog, nil, 0o600))
		err := check(dir, false)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "does not start as an event log")
	})
	t.Run("ids file of garbage", func(t *testing.T) {
		dir, _, ids := checkpointedDir(t, 2)
		garbage := []byte(strings.Repeat("garbage!", 11) + "xy") // 90 bytes
		require.NoError(t, os.WriteFile(ids, garbage, 0o600))
		err := check(dir, true)
		require.Error(t, err, "the coordinator's list is the cluster's: garbage in it must not be believed")
		assert.Contains(t, err.Error(), "90 bytes, not a whole number of 16-byte records")
		assert.Contains(t, err.Error(), "is not in the event log")
		assert.NoError(t, check(dir, false), "another worker's event log holds whole checkpoints: the coordinator's rollback picks one")
		_, err = os.Stat(ids)
		assert.True(t, os.IsNotExist(err), "the damaged list is set aside, so later commits start a new one")
		b, err := os.ReadFile(ids + ".damaged")
		require.NoError(t, err)
		assert.Equal(t, garbage, b)
	})
	t.Run("before the last rescale", func(t *testing.T) {
		dir, evlog, _ := checkpointedDir(t, 2)
		r := newTestResilience(t, dir, &genProc{})
		_, err := r.start()
		require.NoError(t, err)
		r.afterRescale()
		require.NoError(t, os.Remove(evlog))
		assert.NoError(t, check(dir, true))
	})
}

// The initializer lets a worker come back afresh (without its recovery
// files) only while no checkpoint is committed: after that its keys
// could not return to one with the others'.
func TestResilience_FreshRejoinRefusedOnceACheckpointIsCommitted(t *testing.T) {
	dir := t.TempDir()
	r := newTestResilience(t, dir, &genProc{})
	assert.Empty(t, r.freshRejoin("worker1", false))
	assert.True(t, r.holdsNoCheckpoint())
	dir, evlog, ids := checkpointedDir(t, 1)
	r = newTestResilience(t, dir, &genProc{})
	assert.False(t, r.holdsNoCheckpoint())
	reason := r.freshRejoin("worker1", false)
	assert.Contains(t, reason, `worker "worker1" of this cluster started afresh`)
	assert.Contains(t, reason, "committed checkpoint 1")
	assert.Contains(t, r.freshRejoin("worker1", true), "restarted from recovery files that hold no checkpoint")

	// Every committed checkpoint before the last grow or shrink: none
	// to return to, so it is let in.
	r.floor.Store(1)
	assert.Empty(t, r.freshRejoin("worker1", true))
	r.floor.Store(0)

	// Only the committed list gone: the event log still holds one.
	require.NoError(t, os.Remove(ids))
	assert.False(t, r.holdsNoCheckpoint())
	require.NoError(t, os.WriteFile(evlog, nil, 0o600))
	assert.True(t, r.holdsNoCheckpoint())
}

// heldProc records the envelope batches its loop runs.
type heldProc struct {
	genProc
	got []work.Envelopes
}

func (p *heldProc) Process(items []work.Item, _ *work.Output) error {
	for _, it := range items {
		p.got = append(p.got, it.Envelopes)
	}
	return nil
}
func (p *heldProc) Generate(int, int, *work.Output) (bool, error) { return true, nil }
func (p *heldProc) SetOwnership(work.Ownership) error             { return nil }

// A restarted worker holds what its peers send until the cluster's
// recovery ends: the cluster going on as it is (no checkpoint to return
// to), the batches run in the order they came, routed again, before
// what comes after; the cluster rolled back, they are dropped (the
// rollback sends again what was in flight). Past the bound, a batch and
// every later one are dropped and counted.
func TestResilience_RestartedWorkerHoldsWhatPeersSendUntilTheRecoveryEnds(t *testing.T) {
	ctx := context.Background()
	nop := func(string, ...any) {}
	env := func(s string) work.Envelopes { return work.Envelopes{Dest: 3, Count: 1, Data: []byte(s)} }
	run := func(q *work.Queue) []work.Envelopes {
		t.Helper()
		p := &heldProc{}
		q.Close()
		require.NoError(t, work.Loop(ctx, ctx, work.LoopConfig{Processor: p, Queue: q, ExitWhenDrained: true}))
		return p.got
	}
	for _, keep := range []bool{true, false} {
		dir := t.TempDir()
		q := work.NewQueue(64, 1<<20)
		var warned []string
		warn := func(msg string, _ ...any) { warned = append(warned, msg) }
		r := newResilience(Resilience{Dir: dir}, &genProc{}, checkpoint.Open(dir, "app", "worker1"), q, &gate{}, nop, nop, warn, func(string) {})
		r.holdMax = len("one") + len("two") + len("three") + 1
		// It restored a checkpoint at its start: going on without a
		// rollback, it drops the partitions it no longer owns.
		r.restored = true
		drops := 0
		r.dropNotOwned = func() (int, error) { drops++; return 2, nil }
		assert.False(t, r.hold(2, env("before")), "held while not discarding")
		r.discarding.Store(true)
		for _, s := range []string{"one", "two", "three"} {
			require.True(t, r.hold(2, env(s)))
		}
		require.True(t, r.hold(2, env("too much")), "a batch past the bound is taken (and dropped)")
		require.True(t, r.hold(2, env("x")), "a batch after one dropped is taken (and dropped: no hole in the middle)")
		r.endDiscarding(ctx, keep)
		assert.False(t, r.discarding.Load())
		require.False(t, r.hold(2, env("after")), "held after the recovery ended")
		require.NoError(t, q.Put(ctx, work.EnvelopesItem(2, env("after"))))
		var got []string
		for _, e := range run(q) {
			got = append(got, string(e.Data))
			assert.Equal(t, string(e.Data) != "after", e.Reroute, "%q routed again", e.Data)
		}
		if keep {
			assert.Equal(t, []string{"one", "two", "three", "after"}, got)
			assert.Equal(t, 1, drops, "the partitions owned elsewhere now were not dropped")
			assert.True(t, r.forceFull.Load(), "the next checkpoint must be whole after a drop")
		} else {
			assert.Equal(t, []string{"after"}, got)
			assert.Zero(t, drops, "dropped after a rollback (its checkpoint is the cluster's)")
		}
		want := 0
		if keep {
			want = 1 // (after a rollback nothing held runs anyway)
		}
		assert.Len(t, warned, want, "the batches dropped past the bound are reported")
		r.endDiscarding(ctx, keep) // a second end does nothing
		assert.Len(t, warned, want)
	}
}

// A rollback request that waited for the worker's start behind a later
// one (its attempt timed out at the initializer, which went on to the
// later one) is not made: only the newest is, whatever their attempt
// numbers (a restarted initializer's start lower).
func TestResilience_ARollbackThatWaitedBehindALaterOneIsNotMade(t *testing.T) {
	ctx := context.Background()
	nop := func(string, ...any) {}
	dir := t.TempDir()
	q := work.NewQueue(64, 1<<20)
	r := newResilience(Resilience{Dir: dir}, &genProc{}, checkpoint.Open(dir, "app", "worker1"), q, &gate{}, nop, nop, nop, func(string) {})
	r.discarding.Store(true)
	replies := make(chan cluster.Checkpoint, 2)
	for _, c := range []cluster.Checkpoint{
		{Op: cluster.OpRollback, ID: 0, Attempt: 900, Received: 1},
		{Op: cluster.OpRollback, ID: 0, Attempt: 5, Received: 2}, // (an initializer restarted, its clock behind)
	} {
		go func() { replies <- r.handle(ctx, c) }()
	}
	// Both wait for the start (files read), then one is made.
	require.Eventually(t, func() bool { return r.newestRollback.Load() == 2 }, time.Minute, time.Millisecond)
	_, err := r.start()
	require.NoError(t, err)
	got := map[uint64]string{}
	for range 2 {
		c := <-replies
		got[c.Attempt] = c.Text
	}
	assert.Equal(t, "a later rollback request came meanwhile", got[900])
	assert.Equal(t, "", got[5], "the newest request is made")
	assert.False(t, r.discarding.Load(), "the newest request (go on as is) ended the recovery")
}
