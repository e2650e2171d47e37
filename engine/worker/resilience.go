package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wallaroo-go/machida/engine/barrier"
	"github.com/wallaroo-go/machida/engine/checkpoint"
	"github.com/wallaroo-go/machida/engine/cluster"
	"github.com/wallaroo-go/machida/engine/work"
)

// Checkpointer is implemented by a processor whose state can be
// checkpointed. The worker calls its methods on the loop's goroutine (or
// before the loop runs), never two at once.
type Checkpointer interface {
	// SetTracking turns on the record of changed keys.
	SetTracking(on bool) error
	// TakeCheckpoint returns the states of the keys changed since the
	// last call (every key if full) and the generators' positions.
	TakeCheckpoint(full bool) (checkpoint.Delta, error)
	// RestoreCheckpoint replaces all state by the image's, moves the
	// generators back, and says how many entries it read.
	RestoreCheckpoint(im *checkpoint.Image) (int, error)
}

// Resilience configures checkpoints and recovery (--run-with-resilience).
type Resilience struct {
	// Dir is --resilience-dir.
	Dir string
	// Every is the time between the end of one checkpoint and the start
	// of the next (--time-between-checkpoints; default 1 s).
	Every time.Duration
	// KeepStateOnStop: a clean stop takes a last checkpoint and leaves
	// the files, so the same command lines resume from it.
	KeepStateOnStop bool
	// FullEvery: a worker starts a new chain with a whole snapshot after
	// FullEvery links of changed keys (compaction); default 20.
	FullEvery int
	// LogRotation (--log-rotation) lets the event log move on to a new
	// file: when asked through the external channel (RotateLog), and at
	// a checkpoint once its file has grown by LogFileSize bytes since it
	// began (--event-log-file-size; 0: never for its size).
	LogRotation bool
	LogFileSize int64
	// CrashAt is CrashAtEnv's value, StallStart StallStartEnv's (tests
	// only).
	CrashAt, StallStart string
}

// recoverRequest is a restarted worker's message to the coordinator:
// it asks for the cluster's recovery (its files are read), or (reading)
// it has rejoined and reads its files, and will ask.
type recoverRequest struct {
	who     string
	reading bool
}

// readingLimit bounds how long the sources wait for a restarted worker
// that reads its files (see recoverRequest) before they go on without
// its request (what comes for it is then held there, see holdLimit).
const readingLimit = 10 * time.Minute

// keepCheckpoints is how many complete checkpoints each worker keeps.
const keepCheckpoints = 2

// AttemptSeedEnv (tests) numbers this process's first checkpoint
// attempts from its value instead of the clock's: what an initializer
// restarted with its clock behind would do.
const AttemptSeedEnv = "MACHIDA_TEST_ATTEMPT_SEED"

// maxRollbackAttempts bounds the tries of one rollback (500 ms apart).
const maxRollbackAttempts = 60

// gate pauses a worker's sources: while paused, the processor loop takes
// no new source input and runs no generator (its Hold), while the peers'
// work still flows. Safe for concurrent use.
type gate struct {
	mu sync.Mutex
	ch chan struct{} // open while paused
}

func (g *gate) pause() {
	g.mu.Lock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	g.mu.Unlock()
}

func (g *gate) resume() {
	g.mu.Lock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
	g.mu.Unlock()
}

// hold is the loop's Hold: a channel that closes on resume while paused,
// nil otherwise.
func (g *gate) hold() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ch
}

func (g *gate) paused() bool { return g.hold() != nil }

// resilience drives one worker's checkpoints and rollbacks. On the
// initializer (or a worker alone) it also coordinates them: a timer
// starts each checkpoint; a restarted peer's request starts a rollback.
//
// A checkpoint is a barrier (package barrier) the initializer injects at
// its sources (the only sources of a 0.6 cluster): each worker's loop,
// at the barrier's first arrival on one of its inputs, forwards it on
// its data link to every other worker (in order with the envelopes) and
// from then on holds each input after its barrier until the barrier has
// arrived on all of them; then it takes its part (the state of its keys,
// its generators' positions) and releases the held input. Forwarding at
// the first arrival, not after the alignment, is what keeps workers that
// send to each other (a cycle) from waiting for each other; the price is
// that what a worker sends between forwarding and taking its part (work
// of input from before the barrier, which its peers will hold and take
// after theirs) is recorded with its part, and sent again by a rollback
// to that checkpoint (Chandy–Lamport's channel state, kept by the
// sender). The initializer commits once every worker has written its
// part; nothing stops or drains for a checkpoint.
//
// Goroutines: run (coordinator only), the member's handler goroutines,
// and Run's goroutine at the start and the stop; mu serialises what they
// do to the store, the image and the ids.
type resilience struct {
	cfg    Resilience
	log    func(msg string, args ...any)
	debug  func(msg string, args ...any)
	warn   func(msg string, args ...any)
	cons   func(line string)
	proc   Checkpointer
	store  *checkpoint.Store
	q      *work.Queue
	member *cluster.Member // nil for a worker alone
	gate   *gate

	mu        sync.Mutex
	committed uint64 // the newest checkpoint committed here
	// Checkpoint files are chains (package checkpoint): a whole snapshot,
	// then links holding only the keys that changed. base starts the
	// chain the last file written here is on (0: none yet); lastTaken is
	// the last checkpoint whose part was taken here.
	rollback  uint64 // the rollback id checkpoints are committed under
	taken     int    // checkpoints this process took
	base      uint64
	lastTaken uint64
	chain     int // links written since the chain's whole snapshot
	pending   map[uint64]checkpoint.Delta
	forceFull atomic.Bool
	restored  bool // recovered from the files at the start
	// announced: the checkpoint whose restore start printed (0: none
	// yet, or already matched): the cluster's rollback that follows a
	// restart returns this worker to the same one, and 0.6 printed its
	// "Replayed" line once for it (rollbackHere prints it again only for
	// another checkpoint).
	announced uint64
	// unfinished (under mu): start said "Attempting to recover..." and
	// restored no checkpoint; when the cluster's recovery ends without
	// a rollback, endDiscarding ends 0.6's recovery lines.
	unfinished bool
	// dropNotOwned (a cluster member) forgets the state of every
	// partition the cluster's table does not give this worker, and says
	// how many partitions it dropped from.
	dropNotOwned func() (int, error)

	recover chan recoverRequest // restarted workers' requests (coordinator)
	// waiting (coordinator) counts the restarted workers that read their
	// files and will ask for the recovery: until then the sources wait
	// (run keeps who they are).
	waiting atomic.Int32
	attempt atomic.Uint64 // numbers the coordinator's requests (cluster.Checkpoint.Attempt)
	seen    atomic.Uint64 // (workers) the highest attempt asked of this worker
	// newestRollback (workers) is the Received number of the newest
	// rollback asked of this worker: one that waited (for start) behind
	// a later one is not made (its attempt failed; the cluster has gone
	// on to the later one, or on as it is).
	newestRollback atomic.Uint64
	// rescaled (coordinator) asks for a checkpoint at once after a grow
	// or shrink; floor is the newest checkpoint committed before the
	// last rescale: a rollback never goes back to it or before (the
	// partitions were elsewhere then).
	rescaled chan struct{}
	floor    atomic.Uint64
	// discarding: this worker restarted in a cluster and does not run
	// what its peers send until the cluster's recovery has ended. It
	// holds those batches (hold, under holdMu, acknowledged: the cluster
	// can come to rest) and, when the recovery ends (endDiscarding),
	// drops them if the cluster rolled back (the generators give them
	// again from the checkpoint and the rollback sends again what was
	// in flight then; state made from them would not be consistent with
	// the checkpoint's) or runs them if the cluster goes on as it is (no
	// checkpoint to return to: nothing would send them again). Past
	// holdMax bytes a batch is dropped and counted in overflow.
	discarding atomic.Bool
	// rollingBack (the initializer): a rollback of the cluster is asked
	// for and not done yet.
	rollingBack atomic.Bool
	holdMu      sync.Mutex
	held        []work.Item
	heldBytes   int
	holdMax     int // holdLimit (a test makes it smaller)
	overflow    int
	stopped     chan struct{}
	// startDone closes when start has returned: a rollback waits for it
	// (one asked for by another worker's restart may come while this
	// worker, restarted too, has not read its files yet).
	startDone     chan struct{}
	startDoneOnce sync.Once

	// Barriers (see hookLoop). recording and rec are the loop
	// goroutine's: what this worker routed to each peer since it
	// forwarded the barrier being aligned. outcomes (under outMu) hands
	// the result of the take of each barrier (by its ID) to whoever waits
	// for it; inflight (under mu) is what was in flight from here at the
	// checkpoint restored last, to send again (OpResend).
	recording bool
	rec       map[work.Dest][]checkpoint.Batch
	outMu     sync.Mutex // outcomes' own: the loop never waits for a write's I/O to report
	outcomes  map[uint64]chan error
	inflight  map[string][]checkpoint.Batch
	crash     *crashPoints // tests: where this process kills itself (nil: nowhere)
	// flushSinks, once set (when the sinks exist), waits until what this
	// worker's sinks were given is written (see flushOutput).
	flushSinks atomic.Pointer[func(ctx context.Context) error]
}

func newResilience(cfg Resilience, proc Checkpointer, store *checkpoint.Store, q *work.Queue, g *gate, log, debug, warn func(string, ...any), cons func(string)) *resilience {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.FullEvery <= 0 {
		cfg.FullEvery = 20
	}
	r := &resilience{cfg: cfg, proc: proc, store: store, q: q, gate: g, log: log, debug: debug, warn: warn, cons: cons,
		pending: map[uint64]checkpoint.Delta{}, recover: make(chan recoverRequest, 64), rescaled: make(chan struct{}, 1), stopped: make(chan struct{}),
		startDone: make(chan struct{}), holdMax: holdLimit}
	// Attempts number barriers too, and a loop drops a barrier not newer
	// than its last: a restarted initializer must go on above the
	// numbers of its earlier run. The clock gives that, unless it went
	// back; the workers' replies to the rollback that starts every run
	// of the initializer (waitRolledBack) make sure of it.
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(AttemptSeedEnv); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			seed = n
		}
	}
	r.attempt.Store(seed)
	return r
}

// start turns change tracking on and, if this worker's files hold a
// committed checkpoint, returns the processor to it (before any input is
// processed). It reports whether it did.
func (r *resilience) start() (bool, error) {
	defer r.startDoneOnce.Do(func() { close(r.startDone) })
	if err := r.proc.SetTracking(true); err != nil {
		return false, err
	}
	// (r.mu around every use of the store: a RotateLog may come from the
	// external channel meanwhile.)
	r.mu.Lock()
	if err := r.store.RemoveTemps(); err != nil {
		r.warn("temporary checkpoint files not removed", "err", err)
	}
	recs, err := r.store.Committed()
	r.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("read the committed checkpoints: %w", err)
	}
	if len(recs) == 0 {
		// Snapshots of a run that never committed one are of no use,
		// except to a worker that restarted in a running cluster: the
		// initializer may have committed one this worker wrote.
		if r.member == nil || !r.member.Restarted() {
			if err := r.removeFiles(); err != nil {
				r.warn("stale checkpoint files not removed", "err", err)
			}
		}
		return false, nil
	}
	r.cons("Recovering from recovery files!")
	r.cons("Attempting to recover...")
	// The initializer recorded when the cluster last grew or shrank: the
	// checkpoints before that are of another partitioning.
	r.mu.Lock()
	floor, err := r.store.Floor()
	r.mu.Unlock()
	if err != nil {
		r.warn("the record of the last grow or shrink is damaged; any checkpoint may be rolled back to", "err", err)
	}
	r.floor.Store(floor)
	var rec checkpoint.Record
	n, found, belowFloor := 0, false, false
	for i := len(recs) - 1; i >= 0 && !found; i-- {
		rec = recs[i]
		if rec.ID <= floor && !belowFloor {
			// Of another partitioning, but this worker's files commit
			// none after it: its keys of the partitions it still owns
			// are the best state it has (a rollback of the cluster to a
			// later checkpoint, which the initializer may hold, replaces
			// them), and, on the initializer, its generators' positions
			// (from their initial values they would make the whole
			// stream again). The keys of partitions given away go at
			// once and again when the cluster's recovery ends
			// (dropNotOwned).
			r.warn("the newest checkpoints here were taken before the last grow or shrink: this worker goes back to one of them and keeps only the keys of the partitions it owns now (on the initializer, the generator sources go on from there: what they made since then comes again), unless the cluster rolls back to a later one", "checkpoint", rec.ID, "floor", floor)
			belowFloor = true
		}
		n, err = r.restore(rec.ID, nil)
		switch {
		case err == nil:
			found = true
		case errors.Is(err, checkpoint.ErrCorrupt) || errors.Is(err, os.ErrNotExist):
			r.warn("a checkpoint in the event log is damaged or missing; using the one before it", "checkpoint", rec.ID, "err", err)
		default:
			return false, err
		}
	}
	if !found {
		if r.member != nil && r.member.Restarted() {
			// (checkFiles found a whole checkpoint in the event log.)
			r.warn("no checkpoint this worker's list commits is usable here; it starts with empty state, and the cluster's rollback decides what it returns to", "dir", r.cfg.Dir, "committed", len(recs))
		} else {
			r.warn("ERROR: no usable checkpoint in the recovery files; starting with empty state (the state of this worker's keys is lost)", "dir", r.cfg.Dir, "committed", len(recs))
		}
		// The next checkpoints number on from the files' newest.
		last := recs[len(recs)-1]
		r.mu.Lock()
		r.committed, r.rollback = last.ID, last.Rollback+1
		r.unfinished = true // its lines end with the recovery (endDiscarding)
		r.mu.Unlock()
		return false, nil
	}
	if belowFloor && r.dropNotOwned != nil {
		// (The member has the cluster's table now: start runs once this
		// worker has joined. A worker let in afresh, its files being of
		// other listeners, has no recovery to end.)
		if _, err := r.dropNotOwned(); err != nil {
			r.warn("state of partitions another worker owns now was not dropped here", "err", err)
		}
	}
	r.mu.Lock()
	r.committed = rec.ID
	if belowFloor {
		// (Numbered on from the files' newest: a checkpoint at or below
		// the floor could never be rolled back to.)
		r.committed = max(rec.ID, recs[len(recs)-1].ID)
	}
	r.rollback = rec.Rollback + 1
	r.restored = true
	r.announced = rec.ID
	err = r.store.Commit(checkpoint.Record{ID: rec.ID, Rollback: rec.Rollback + 1})
	r.mu.Unlock()
	if err != nil {
		return false, err
	}
	r.cons(fmt.Sprintf("RESILIENCE: Replayed %d entries from recovery log file.", n))
	r.cons("|~~ - Recovery COMPLETE - ~~|")
	r.cons("~~~Resuming message processing.~~~")
	return true, nil
}

// checkFiles runs before this worker joins its cluster (or, alone,
// before it starts): recovery files that list committed checkpoints but
// cannot return this worker to any of them refuse the start, with 0.6's
// words (runtime spec 4.2) and what to do, instead of going on with
// empty state. A cluster returns to a checkpoint every worker holds:
// without this worker's, the rollback fails and the others' restored
// state would meet this one's empty keys.
//
// The coordinator (the initializer, or a worker alone) needs one of the
// checkpoints its own list commits: that list is the cluster's. Another
// worker needs a checkpoint its event log holds whole; which one the
// cluster returns to is the coordinator's to say (its own list may be
// the damaged file). Files of checkpoints all taken before the last grow
// or shrink, or no committed checkpoint at all, are no reason to refuse:
// start and the cluster's rollback deal with those.
func (r *resilience) checkFiles(worker string, coordinator bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	recs, err := r.store.Committed()
	if err != nil {
		return fmt.Errorf("read the committed checkpoints in %s: %w", r.cfg.Dir, err)
	}
	if len(recs) == 0 {
		return nil
	}
	floor, _ := r.store.Floor() // (damaged: start warns; any checkpoint may be used)
	if recs[len(recs)-1].ID <= floor {
		return nil
	}
	var committed []uint64
	for _, rec := range recs {
		if rec.ID > floor {
			committed = append(committed, rec.ID)
		}
	}
	_, why, ok, err := r.store.NewestWhole(committed)
	if err != nil {
		return fmt.Errorf("read the event log in %s: %w", r.cfg.Dir, err)
	}
	if ok {
		return nil
	}
	if !coordinator {
		written, _ := r.store.Written()
		written = slices.DeleteFunc(written, func(id uint64) bool { return id <= floor })
		slices.Sort(written)
		if id, _, ok, _ := r.store.NewestWhole(written); ok {
			// Its list is the damaged file: set aside (later commits
			// would go after its garbage, and pruning by it would empty
			// the event log), the cluster's rollback returns this worker
			// to a checkpoint its event log holds, and the next commit
			// starts a new list.
			aside, err := r.store.SetAsideIDs()
			if err != nil {
				return err
			}
			r.warn("none of the checkpoints this worker's list commits can be read; the list is set aside, and the cluster's rollback will use a checkpoint its event log holds",
				"damaged_list", aside, "newest_whole", id, "err", errors.Join(why...))
			return nil
		}
	}
	return r.filesUnusable(worker, recs, why)
}

// freshRejoin (the initializer's cluster.Config.FreshRejoin) refuses a
// worker of the cluster that comes back with no checkpoint to return to
// (afresh, not from its recovery files; or from files that hold no
// checkpoint) once one is committed: the cluster could not return its
// keys to that checkpoint with the others', and what it had taken in
// since would be lost without a word. Before any checkpoint (or any
// since the last grow or shrink) there is nothing to return to, and it is
// let in.
func (r *resilience) freshRejoin(worker string, restarted bool) string {
	newest, ok := r.returnable()
	if !ok {
		// (All before the last grow or shrink: no rollback returns to
		// them, the cluster goes on as it is.)
		return ""
	}
	how := "started afresh, not from its recovery files (there are none in its --resilience-dir, or they record other listeners than its command line)"
	if restarted {
		how = "restarted from recovery files that hold no checkpoint (its .checkpoint_ids and event log are missing or empty)"
	}
	return fmt.Sprintf("worker %q of this cluster %s, and the cluster runs with --run-with-resilience and has committed checkpoint %d: its keys could not return to it with the others'. "+
		"Start it again with its recovery files in place, or stop the cluster and start every worker without its recovery files (all state is then lost)",
		worker, how, newest)
}

// holdsCommittedCheckpoint says this worker's files list a committed
// checkpoint taken after the last grow or shrink: one a restart would
// return to.
func (r *resilience) holdsCommittedCheckpoint() bool {
	_, ok := r.returnable()
	return ok
}

// returnable is the newest committed checkpoint in the files if it was
// taken after the last grow or shrink (the floor in the files, or the
// one recorded since), so that a rollback may return to it.
func (r *resilience) returnable() (uint64, bool) {
	r.mu.Lock()
	recs, err := r.store.Committed()
	floor, _ := r.store.Floor() // (also before start has read it)
	r.mu.Unlock()
	floor = max(floor, r.floor.Load())
	if err != nil || len(recs) == 0 || recs[len(recs)-1].ID <= floor {
		return 0, false
	}
	return recs[len(recs)-1].ID, true
}

// holdsNoCheckpoint says this worker's files hold no checkpoint at all:
// none committed and none in the event log (missing, empty or
// unreadable).
func (r *resilience) holdsNoCheckpoint() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if recs, err := r.store.Committed(); err != nil || len(recs) > 0 {
		return false
	}
	written, _ := r.store.Written()
	return len(written) == 0
}

// filesUnusable is checkFiles' refusal: which files, what is wrong with
// them, what to do.
func (r *resilience) filesUnusable(worker string, recs []checkpoint.Record, why []error) error {
	// The event log as a whole first: when it cannot be read at all,
	// that is the one reason for every checkpoint.
	evlog := r.store.EventLogPath()
	written, lerr := r.store.Written()
	switch {
	case len(written) == 0 && lerr != nil:
		why = []error{lerr}
	case len(written) == 0:
		why = []error{fmt.Errorf("%s holds no checkpoint (it is missing or empty)", evlog)}
	}
	ids := r.store.IDsPath()
	damaged := ""
	if n := r.store.IDsFileSize(); n%16 != 0 {
		damaged = fmt.Sprintf(" (it is %d bytes, not a whole number of 16-byte records: it is damaged)", n)
	}
	const todo = "put back intact copies of these files; or, to go on with empty state, move them away if this worker runs alone, " +
		"or stop its cluster and start every worker without its recovery files (all state is then lost)"
	return fmt.Errorf("Some resilience/recovery files are missing or damaged! Cannot continue! Worker %q in %s: %s lists %d committed checkpoint(s), the newest %d%s, and none of them can be restored from the event log %s: %s. To go on: %s",
		worker, r.cfg.Dir, filepath.Base(ids), len(recs), recs[len(recs)-1].ID, damaged, filepath.Base(evlog), joinErrs(why), todo)
}

// joinErrs lists errs on one line.
func joinErrs(errs []error) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// restore returns the processor to checkpoint id (its chain read from
// the files): directly when inLoop is nil (before the loop runs), else
// through it.
func (r *resilience) restore(id uint64, inLoop func(func() error) error) (int, error) {
	r.mu.Lock()
	im, base, err := r.store.Load(id)
	r.mu.Unlock()
	if err != nil {
		return 0, err
	}
	var n int
	do := func() error {
		var err error
		n, err = r.proc.RestoreCheckpoint(im)
		return err
	}
	if inLoop == nil {
		err = do()
	} else {
		err = inLoop(do)
	}
	if err != nil {
		return 0, fmt.Errorf("restore checkpoint %d: %w", id, err)
	}
	r.mu.Lock()
	clear(r.pending)
	// The next checkpoint links to this one (the runner's record of
	// changed keys starts empty again).
	r.base, r.lastTaken = base, id
	r.inflight = im.InFlight
	r.mu.Unlock()
	return n, nil
}

// inLoop runs f on the processor loop's goroutine, in order with its
// work, and waits for it.
func (r *resilience) inLoop(ctx context.Context, f func() error) error {
	return r.callInLoop(ctx, f, false)
}

// callInLoop is inLoop; with rearm, f returns the processor to a
// checkpoint, and the loop runs its generators again after it (see
// work.Item.Rearm).
func (r *resilience) callInLoop(ctx context.Context, f func() error, rearm bool) error {
	done := make(chan error, 1)
	var gone atomic.Bool // the caller stopped waiting: the call is not run
	call := func() []work.Item {
		if gone.Load() {
			done <- errAbandoned
			return nil
		}
		done <- f()
		return nil
	}
	it := work.CallItem(work.ControlInput, call)
	it.Rearm = rearm
	if err := r.q.Put(ctx, it); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		gone.Store(true)
		return ctx.Err()
	}
}

var errAbandoned = errors.New("abandoned before it ran")

// takeWith takes this worker's part of checkpoint id, with the
// processor reached through run (directly: on the loop's goroutine, or
// once the loop has ended), and the batches in flight to each peer at
// the checkpoint; it keeps the part until write.
func (r *resilience) takeWith(id uint64, run func(func() error) error, inflight map[string][]checkpoint.Batch) error {
	r.mu.Lock()
	// A whole snapshot: the first of this process, a new chain after
	// FullEvery links, after something went wrong (forceFull), and for
	// a retry of a checkpoint whose part was already taken (the changes
	// taken then are in no file of the chain).
	full := r.taken == 0 || r.base == 0 || r.chain >= r.cfg.FullEvery || id != r.lastTaken+1 || r.forceFull.Swap(false)
	r.mu.Unlock()
	var d checkpoint.Delta
	t0 := time.Now()
	err := run(func() error {
		var err error
		d, err = r.proc.TakeCheckpoint(full)
		return err
	})
	if err != nil {
		// The runner may have cleared its record of changed keys (a
		// take that failed half way, or ran after its caller gave up):
		// the next checkpoint writes every key.
		r.forceFull.Store(true)
		return err
	}
	d.InFlight = inflight
	r.mu.Lock()
	r.taken++
	r.lastTaken = id
	r.pending[id] = d
	r.mu.Unlock()
	inFlight := 0
	for _, bs := range inflight {
		inFlight += len(bs)
	}
	r.debug("checkpoint part taken", "id", id, "full", full, "keys", d.Count(), "in_flight_batches", inFlight, "took", time.Since(t0).Round(time.Microsecond))
	return nil
}

// write writes the part taken for id: a whole snapshot that starts a
// new chain, or a link of the current chain with the keys that changed.
func (r *resilience) write(id uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.pending[id]
	if !ok {
		return fmt.Errorf("checkpoint %d: nothing taken", id)
	}
	delete(r.pending, id)
	base := r.base
	if d.Full {
		base = id
	}
	part := checkpoint.NewImage()
	full := d
	full.Full = true // the part alone, as it is (no copies)
	if err := part.Apply(full); err != nil {
		r.forceFull.Store(true)
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	if err := r.store.WriteLink(id, base, part.Sections()); err != nil {
		r.forceFull.Store(true)
		return err
	}
	if d.Full {
		r.chain = 0
	} else {
		r.chain++
	}
	r.base = base
	return nil
}

// flushLimit bounds flushOutput's wait: a sink that is down fails the
// checkpoint (tried again at the next interval) instead of holding the
// coordinator's loop for a reply's whole limit.
const flushLimit = 10 * time.Second

// flushOutput waits (up to flushLimit) until what this worker's sinks
// were given so far, the output of everything before the checkpoint
// just taken included, is written to their connections. A checkpoint
// whose output is still queued here must not be committed: a crash
// would lose that output, and a rollback to the checkpoint would not
// make it again (at-least-once delivery).
func (r *resilience) flushOutput(ctx context.Context) error {
	f := r.flushSinks.Load()
	if f == nil {
		return nil
	}
	fctx, cancel := context.WithTimeout(ctx, flushLimit)
	defer cancel()
	if err := (*f)(fctx); err != nil {
		return fmt.Errorf("the output made before the checkpoint is not written to its sink yet (a sink is down or slow): %w", err)
	}
	return nil
}

// commit records id as committed and removes older checkpoints.
func (r *resilience) commit(id, rollback uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.store.Commit(checkpoint.Record{ID: id, Rollback: rollback}); err != nil {
		return err
	}
	r.committed, r.rollback = id, rollback
	if err := r.store.Prune(keepCheckpoints); err != nil {
		r.warn("old checkpoints not removed from the event log", "err", err)
	}
	if n := r.cfg.LogFileSize; r.cfg.LogRotation && n > 0 && r.store.EventLogGrowth() >= n {
		// Off the caller's goroutine (on a worker, the control link's
		// reader: a rotation writes the whole last checkpoint); the
		// next checkpoint write waits for it (r.mu).
		go func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.store.EventLogGrowth() >= n {
				r.rotateLocked(fmt.Sprintf("the event log grew by %d bytes or more (--event-log-file-size)", n))
			}
		}()
	}
	return nil
}

// rotate moves the event log on to a new file (spec 4.6; asked through
// the external channel), between two checkpoint writes. It returns why
// not when it cannot.
func (r *resilience) rotate(why string) error {
	if !r.cfg.LogRotation {
		return errors.New("this worker runs without --log-rotation")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rotateLocked(why)
	return nil
}

// rotateLocked rotates the event log (r.mu held) and says so: 0.6's
// console line (not for a rotation ignored), then the new file or why
// it did not.
func (r *resilience) rotateLocked(why string) {
	path, err := r.store.Rotate()
	if errors.Is(err, checkpoint.ErrNothingToRotate) {
		r.log("event log rotation ignored: no checkpoint was written to it since it began", "why", why)
		return
	}
	r.cons("Starting event log rotation.")
	var stale *checkpoint.StaleLogError
	switch {
	case errors.As(err, &stale):
		r.warn("event log rotated, but the old file is still there (it is not read again; the next start or a clean stop removes it)", "file", path, "why", why, "err", err)
	case err != nil:
		r.warn("event log not rotated; it goes on in the same file", "why", why, "err", err)
	default:
		r.log("event log rotated", "file", path, "why", why)
	}
}

// removeFiles deletes this worker's checkpoint files (a clean stop; a
// start that finds nothing committed). A rotation that comes after it
// (they run on goroutines of their own) writes none again: the store
// cannot read the log it would start the new file from.
func (r *resilience) removeFiles() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store.RemoveAll()
}

// multi reports whether this worker coordinates other workers.
func (r *resilience) multi() bool {
	return r.member != nil && len(r.member.Others()) > 0
}

// checkpoint (coordinator) takes, writes and commits one checkpoint of
// the cluster: it tells the others a barrier is coming (OpTake), injects
// it at this worker's sources (input 0), waits until every worker has
// taken its part, writes its own, and commits once every worker has
// written (run starts the sources after the first committed one, as 0.6
// unmuted them once its first checkpoint was written). A checkpoint that
// fails on the way is given up everywhere (the loops stop aligning it).
func (r *resilience) checkpoint(ctx context.Context) (uint64, error) {
	if r.member != nil {
		defer r.member.Exclusive()()
	}
	if r.discarding.Load() {
		return 0, errors.New("this worker restarted and waits for the cluster to roll back")
	}
	if r.rollingBack.Load() {
		// (A stop's keep-state checkpoint: it would record state the
		// rollback has not finished putting back.)
		return 0, errors.New("a rollback of the cluster is under way")
	}
	r.mu.Lock()
	id := r.committed + 1
	rollback := r.rollback
	r.mu.Unlock()
	multi := r.multi()
	att := r.attempt.Add(1)
	b := barrier.Barrier{ID: barrier.ID(att), Kind: barrier.Checkpoint, Checkpoint: id}
	var taken, written *cluster.Replies
	if multi {
		// A worker that cannot take its part (it restarted and waits
		// for a rollback) fails the checkpoint at once: the others'
		// barriers would wait for it.
		taken = r.member.Expect(id, att, cluster.OpTaken).FailFast()
		written = r.member.Expect(id, att, cluster.OpWritten)
		defer written.Close()
		if err := r.member.Send(cluster.Checkpoint{Op: cluster.OpTake, ID: id, Rollback: rollback, Attempt: att}); err != nil {
			taken.Close()
			r.cancel(ctx, id, att)
			return id, err
		}
	}
	here := r.outcome(att)
	if err := r.q.PutControl(ctx, work.BarrierItem(0, b)); err != nil {
		if taken != nil {
			taken.Close()
		}
		r.cancel(ctx, id, att)
		return id, fmt.Errorf("checkpoint %d: inject its barrier: %w", id, err)
	}
	// This worker's take and the others' replies are waited for
	// together: a worker lost on the way fails the checkpoint at once
	// (this worker's barrier would wait for it).
	wctx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	remote := make(chan error, 1)
	if multi {
		go func() { remote <- waitReplies(wctx, taken) }()
	} else {
		remote <- nil
	}
	local := make(chan error, 1)
	go func() { local <- r.waitTaken(wctx, att, here) }()
	for pending := 2; pending > 0; pending-- {
		var err error
		select {
		case err = <-local:
			if err == nil {
				r.crash.reached("taken")
			}
		case err = <-remote:
		}
		if err != nil {
			stopWaiting()
			r.cancel(ctx, id, att)
			return id, err
		}
	}
	tw := time.Now()
	if err := r.write(id); err != nil {
		return id, err
	}
	if err := r.flushOutput(ctx); err != nil {
		return id, err
	}
	r.crash.reached("written")
	r.debug("checkpoint written here", "id", id, "write", time.Since(tw).Round(time.Microsecond))
	if multi {
		if err := waitReplies(ctx, written); err != nil {
			return id, err
		}
	}
	if err := r.commit(id, rollback); err != nil {
		return id, err
	}
	r.crash.reached("commit")
	if multi {
		r.member.Tell(cluster.Checkpoint{Op: cluster.OpCommit, ID: id, Rollback: rollback})
	}
	return id, nil
}

// cancel (coordinator) gives up barrier att of checkpoint id here and on
// every other worker.
func (r *resilience) cancel(ctx context.Context, id, att uint64) {
	if r.multi() {
		r.member.Tell(cluster.Checkpoint{Op: cluster.OpCancel, ID: id, Attempt: att})
	}
	r.cancelHere(ctx, att)
}

// cancelHere has this worker's loop give up barrier att (and any older
// one still open). Also when ctx has ended (a stop): a loop left
// aligning would never be idle, and the stop's drain would wait for it.
func (r *resilience) cancelHere(ctx context.Context, att uint64) {
	it := work.BarrierItem(work.ControlInput, barrier.Barrier{ID: barrier.ID(att), Kind: barrier.Cancel})
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replyLimit)
	defer cancel()
	if err := r.q.PutControl(pctx, it); err != nil && !errors.Is(err, work.ErrClosed) {
		r.warn("a checkpoint's barrier was not given up here", "barrier", att, "err", err)
	}
}

// cancelAttempt (workers) is the attempt up to which a cancel asked with
// attempt att gives barriers up here: att, unless the initializer is
// behind what this worker has seen (it restarted with its clock behind,
// and cancels before its rollback what its earlier run left open here,
// whose number is above its own): then everything up to where its
// attempts go on after the rollback (waitRolledBack), so a barrier left
// open by the earlier run does not hold this worker's input for ever.
func (r *resilience) cancelAttempt(att uint64) uint64 {
	if seen := r.seen.Load(); att < seen {
		return seen + attemptMargin
	}
	return att
}

// errGivenUp is the outcome of a barrier given up before its part was
// taken.
var errGivenUp = errors.New("its barrier was given up before it reached every input")

// outcome returns the channel the take of barrier att reports on (made
// by whoever comes first: the loop, or the one waiting).
func (r *resilience) outcome(att uint64) chan error {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	if r.outcomes == nil {
		r.outcomes = map[uint64]chan error{}
	}
	ch := r.outcomes[att]
	if ch == nil {
		ch = make(chan error, 1)
		r.outcomes[att] = ch
		// Outcomes nobody waited for (a worker that restarted) go.
		for a := range r.outcomes {
			if a+64 < att {
				delete(r.outcomes, a)
			}
		}
	}
	return ch
}

// settle reports the take of barrier att (on the loop's goroutine).
func (r *resilience) settle(att uint64, err error) {
	select {
	case r.outcome(att) <- err:
	default:
	}
}

// waitTaken waits up to replyLimit for the take of barrier att here.
func (r *resilience) waitTaken(ctx context.Context, att uint64, ch chan error) error {
	defer func() {
		r.outMu.Lock()
		delete(r.outcomes, att)
		r.outMu.Unlock()
	}()
	t := time.NewTimer(replyLimit)
	defer t.Stop()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("the barrier did not arrive on every input of this worker within %v", replyLimit)
	}
}

// barrierPeers is what hookLoop needs of the cluster (a *cluster.Member;
// nil for a worker alone).
type barrierPeers interface {
	BarrierInputs() []int
	SendBarrier(b barrier.Barrier)
	WorkerAt(d work.Dest) string
}

// hookLoop wires checkpoints into the processor loop: the inputs a
// barrier comes on (this worker's sources if it injects barriers, and
// every other worker), forwarding it at its first arrival, the record of
// what is routed to peers until the part is taken, and the take itself
// once the barrier is aligned. All on the loop's goroutine.
func (r *resilience) hookLoop(lc *work.LoopConfig, member barrierPeers, coordinator bool) {
	if route := lc.Route; route != nil {
		lc.Route = func(ctx context.Context, e work.Envelopes) error {
			if r.recording && e.Dest > 0 {
				r.rec[e.Dest] = append(r.rec[e.Dest], checkpoint.Batch{Count: uint32(e.Count), Data: e.Data})
			}
			return route(ctx, e)
		}
	}
	lc.BarrierInputs = func(barrier.Barrier) []int {
		var ins []int
		if coordinator {
			ins = append(ins, 0)
		}
		if member != nil {
			ins = append(ins, member.BarrierInputs()...)
		}
		if len(ins) == 0 {
			ins = []int{0}
		}
		return ins
	}
	lc.OnBarrierOpen = func(b barrier.Barrier) error {
		if member != nil {
			member.SendBarrier(b)
		}
		r.recording, r.rec = true, map[work.Dest][]checkpoint.Batch{}
		return nil
	}
	lc.OnBarrier = func(b barrier.Barrier) error {
		var inflight map[string][]checkpoint.Batch
		for d, bs := range r.rec {
			if member != nil {
				if w := member.WorkerAt(d); w != "" {
					if inflight == nil {
						inflight = map[string][]checkpoint.Batch{}
					}
					inflight[w] = bs
				}
			}
		}
		r.recording, r.rec = false, nil
		// A take that fails fails the checkpoint, not the loop.
		r.settle(uint64(b.ID), r.takeWith(b.Checkpoint, func(f func() error) error { return f() }, inflight))
		return nil
	}
	lc.OnBarrierCancel = func(b barrier.Barrier) {
		r.recording, r.rec = false, nil
		r.settle(uint64(b.ID), errGivenUp)
	}
}

// resend (on every worker, after a rollback) sends again, through the
// loop, what was in flight from here at the checkpoint restored; it
// returns how many batches.
func (r *resilience) resend(ctx context.Context) (int, error) {
	r.mu.Lock()
	inflight := r.inflight
	r.inflight = nil
	r.mu.Unlock()
	if len(inflight) == 0 || r.member == nil {
		return 0, nil
	}
	n := 0
	err := r.inLoop(ctx, func() error {
		for w, bs := range inflight {
			d := r.member.Dest(w)
			for _, b := range bs {
				if err := r.member.Route(ctx, work.Envelopes{Dest: d, Count: int(b.Count), Data: b.Data}); err != nil {
					return fmt.Errorf("send again to %s: %w", w, err)
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// rollbackCluster (coordinator) returns every worker to the newest
// checkpoint all of them can read (a restarted worker asked for it).
//
// The sources stay paused (and a restarted initializer drops its input)
// from the start of a rollback until one succeeds (and, when no
// checkpoint was ever committed, until run commits the first): on
// failure run tries again, and no checkpoint is taken meanwhile.
func (r *resilience) rollbackCluster(ctx context.Context, why string) (err error) {
	defer r.member.Exclusive()()
	r.gate.pause()
	asIs := false // the cluster goes on without a rollback
	defer func() {
		if err == nil {
			r.endDiscarding(ctx, asIs) // a restarted initializer takes input again
			r.mu.Lock()
			committed := r.committed
			r.mu.Unlock()
			if committed > 0 && r.waiting.Load() == 0 {
				// (With none, the sources wait for the first, as at
				// the start: run takes it. While a restarted worker
				// reads its files, they wait for its request.)
				r.gate.resume()
			}
		}
	}()
	r.mu.Lock()
	recs, err := r.store.Committed()
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		r.warn("no checkpoint was completed before the failure: the restarted worker goes on with empty state", "restarted", why)
		asIs = true
		return r.goOnAsIs(ctx)
	}
	// A barrier whose cancel was lost would keep a loop aligning (not
	// idle): every one up to now goes.
	r.cancel(ctx, 0, r.attempt.Load())
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = r.member.Drain(dctx)
	cancel()
	if err != nil {
		return fmt.Errorf("the cluster did not come to rest for the rollback: %w", err)
	}
	r.mu.Lock()
	rollback := r.rollback + 1
	r.mu.Unlock()
	var errs []error
	floor := r.floor.Load()
	if recs[len(recs)-1].ID <= floor {
		// A grow or shrink came between the failure and the rollback
		// (it was under way when the worker restarted): the checkpoint
		// after it did not complete, the ones before are of another
		// partitioning.
		r.warn("no checkpoint was completed since the last grow or shrink: the cluster goes on without rolling back", "restarted", why, "last_checkpoint", recs[len(recs)-1].ID)
		asIs = true
		return r.goOnAsIs(ctx)
	}
	for i := len(recs) - 1; i >= 0; i-- {
		id := recs[i].ID
		if id <= floor {
			errs = append(errs, fmt.Errorf("checkpoint %d was taken before the last grow or shrink", id))
			break
		}
		done, err := r.askRollback(id, rollback)
		if err != nil {
			return err
		}
		_, lerr := r.rollbackHere(ctx, id, rollback)
		werr := r.waitRolledBack(ctx, done)
		if lerr == nil && werr == nil {
			// Every worker is back at id: now what was in flight then
			// goes again (not before: a worker not yet back would
			// lose it in its restore).
			if err := r.resendAll(ctx, id); err != nil {
				return fmt.Errorf("rolled back to checkpoint %d, but what was in flight then was not sent again: %w", id, err)
			}
			r.log("the cluster rolled back", "checkpoint", id, "rollback", rollback, "asked_by", why)
			return nil
		}
		err = errors.Join(lerr, werr)
		r.warn("rollback to a checkpoint failed; trying the one before it", "checkpoint", id, "err", err)
		errs = append(errs, err)
	}
	return fmt.Errorf("no checkpoint could be restored on every worker: %w", errors.Join(errs...))
}

// resendAll (coordinator) has every worker, itself included, send again
// what was in flight from it at checkpoint id, and waits for them (up to
// replyLimit).
func (r *resilience) resendAll(ctx context.Context, id uint64) error {
	att := r.attempt.Add(1)
	done := r.member.Expect(id, att, cluster.OpResent)
	if err := r.member.Send(cluster.Checkpoint{Op: cluster.OpResend, ID: id, Attempt: att}); err != nil {
		done.Close()
		return err
	}
	n, err := r.resend(ctx)
	if err != nil {
		done.Close()
		return err
	}
	// (Bounded like every other wait for replies: a worker that is alive
	// but stuck in user code would hold the recovery for ever.)
	got, err := collectReplies(ctx, done)
	for _, c := range got {
		n += int(c.N)
	}
	if n > 0 {
		r.log("sent again what was in flight at the checkpoint", "checkpoint", id, "batches", n)
	}
	return err
}

// giveUpRollback (coordinator) tells every worker to go on as it is
// (a rollback to no checkpoint) and resumes the sources.
func (r *resilience) giveUpRollback(ctx context.Context) error {
	defer r.member.Exclusive()()
	defer func() {
		r.endDiscarding(ctx, true)
		if r.waiting.Load() == 0 {
			r.gate.resume()
		}
	}()
	return r.goOnAsIs(ctx)
}

// goOnAsIs (coordinator) has every other worker go on with the state it
// has (a rollback to no checkpoint: a restarted one stops dropping its
// input) and waits for them.
func (r *resilience) goOnAsIs(ctx context.Context) error {
	r.forgetAnnounced()
	done, err := r.askRollback(0, 0)
	if err != nil {
		return err
	}
	return r.waitRolledBack(ctx, done)
}

// waitRolledBack (coordinator) waits for the replies to a rollback and
// numbers the next attempts above every one a worker has seen.
func (r *resilience) waitRolledBack(ctx context.Context, done *cluster.Replies) error {
	got, err := collectReplies(ctx, done)
	for _, c := range got {
		if c.Seen > 0 {
			// (With room for a barrier the worker's loop saw whose
			// request it did not read before this one's restart.)
			raise(&r.attempt, c.Seen+attemptMargin)
		}
	}
	return err
}

// attemptMargin is how far above the highest attempt a worker reports
// the next ones start.
const attemptMargin = 1 << 20

// raise sets a to v if v is higher.
func raise(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// askRollback (coordinator) asks every other worker to return to
// checkpoint id (0: go on as it is) under rollback id rollback; the
// replies are to be waited for.
func (r *resilience) askRollback(id, rollback uint64) (*cluster.Replies, error) {
	att := r.attempt.Add(1)
	done := r.member.Expect(id, att, cluster.OpRolledBack)
	if err := r.member.Send(cluster.Checkpoint{Op: cluster.OpRollback, ID: id, Rollback: rollback, Attempt: att}); err != nil {
		done.Close()
		return nil, err
	}
	return done, nil
}

// replyLimit bounds how long the initializer waits for every worker's
// reply to one step of a checkpoint or rollback.
const replyLimit = 60 * time.Second

// waitReplies waits up to replyLimit for every reply done expects.
func waitReplies(ctx context.Context, done *cluster.Replies) error {
	_, err := collectReplies(ctx, done)
	return err
}

// collectReplies is waitReplies returning the replies that came.
func collectReplies(ctx context.Context, done *cluster.Replies) (map[string]cluster.Checkpoint, error) {
	wctx, cancel := context.WithTimeout(ctx, replyLimit)
	defer cancel()
	return done.Wait(wctx)
}

// rollbackHere returns this worker to checkpoint id through its loop and
// records the rollback.
func (r *resilience) rollbackHere(ctx context.Context, id, rollback uint64) (int, error) {
	n, err := r.restore(id, func(f func() error) error { return r.callInLoop(ctx, f, true) })
	if err != nil {
		return 0, err
	}
	r.endDiscarding(ctx, false)
	if err := r.commit(id, rollback); err != nil {
		return n, err
	}
	r.mu.Lock()
	again := r.announced == id
	r.announced = 0
	r.mu.Unlock()
	if !again {
		r.cons(fmt.Sprintf("RESILIENCE: Replayed %d entries from recovery log file.", n))
		r.cons("~~~Resuming message processing.~~~")
	}
	return n, nil
}

// forgetAnnounced ends the wait for the rollback that follows a restart
// (it went on as is, or a checkpoint was committed since): a later
// rollback, to whichever checkpoint, prints its lines.
func (r *resilience) forgetAnnounced() {
	r.mu.Lock()
	r.announced = 0
	r.mu.Unlock()
}

// recordFloor records that a grow or shrink completed here: no
// checkpoint before it is restored again, also by this worker restarted
// before the next one completes (its own checkpoints would give it keys
// it no longer owns; a worker other than the initializer learns of the
// rescale at its release).
func (r *resilience) recordFloor() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.floor.Store(r.committed)
	if err := r.store.SetFloor(r.committed); err != nil {
		r.warn("the last grow or shrink was not recorded in the resilience directory", "err", err)
	}
}

// holding reports whether this worker is not processing as usual
// because of a rollback: it restarted and waits for the cluster to roll
// back, or (the initializer) a rollback is under way.
func (r *resilience) holding() bool {
	return r != nil && (r.discarding.Load() || r.rollingBack.Load())
}

// holdLimit bounds the bytes of the batches a restarted worker holds
// until the cluster's recovery ends (see resilience.discarding). The
// worker says it reads its files as soon as it has rejoined
// (OpRecovering), and the initializer's sources wait until it asks for
// the recovery (or its link goes, or readingLimit passes): what is held
// is what was in flight to it (in the peers' replay queues, and sent
// until the pause), not what the sources read while it starts. Past the
// bound the rest is dropped, and reported if it would have run.
const holdLimit = 64 << 20

// hold keeps a batch from peer input input while this worker waits for
// the cluster's recovery, and reports whether it did (false: the
// recovery has ended, the batch goes to the queue as usual).
func (r *resilience) hold(input int, e work.Envelopes) bool {
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	if !r.discarding.Load() {
		return false
	}
	if r.overflow > 0 || r.heldBytes+len(e.Data) > r.holdMax {
		// (Once one is dropped, every later one is: what runs has no
		// holes in the middle.)
		r.overflow++
		return true
	}
	// Routed again when it runs: the ownership table may have changed
	// while it waited.
	e.Reroute = true
	r.held = append(r.held, work.EnvelopesItem(input, e))
	r.heldBytes += len(e.Data)
	return true
}

// endDiscarding ends the discarding of a restarted worker: the cluster
// has rolled back (keep false: what it held is dropped) or goes on as it
// is (keep true: what it held runs, in the order it came and before
// anything that comes after). It says what it did.
func (r *resilience) endDiscarding(ctx context.Context, keep bool) {
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	if !r.discarding.Load() {
		return
	}
	held := r.held
	r.held, r.heldBytes = nil, 0
	r.mu.Lock()
	restored := r.restored
	r.mu.Unlock()
	if keep && restored && r.dropNotOwned != nil {
		// The checkpoint restored at the start stays, the cluster having
		// no rollback to make; if the cluster grew or shrank after it,
		// it holds keys of partitions another worker owns now: those go
		// (each key is held by one worker).
		if n, err := r.dropNotOwned(); err != nil {
			r.warn("state of partitions another worker owns now was not dropped here", "err", err)
		} else if n > 0 {
			r.forceFull.Store(true) // (the next checkpoint leaves them out)
		}
	}
	ran := 0
	if keep {
		// Under holdMu: a batch delivered meanwhile waits in hold and
		// then follows these.
		for _, it := range held {
			if err := r.q.Put(ctx, it); err != nil {
				r.warn("batches held during the recovery not run: the worker is stopping", "err", err)
				break
			}
			ran++
		}
	}
	r.discarding.Store(false)
	r.mu.Lock()
	unfinished := r.unfinished
	r.unfinished = false
	r.mu.Unlock()
	if keep && unfinished {
		// (A rollback prints its own lines: rollbackHere.)
		r.cons("RESILIENCE: Replayed 0 entries from recovery log file.")
		r.cons("|~~ - Recovery COMPLETE - ~~|")
		r.cons("~~~Resuming message processing.~~~")
	}
	args := []any{"batches_run", ran, "batches_dropped", len(held) - ran + r.overflow}
	if keep && r.overflow > 0 {
		r.warn(fmt.Sprintf("more than %d bytes came from peers during the recovery: the rest was dropped (lost)", r.holdMax), args...)
	}
	if keep {
		r.log("the cluster's recovery has ended without a rollback; running what peers sent meanwhile and taking input again", args...)
	} else {
		r.log("the cluster's recovery has ended; taking input again (what peers sent meanwhile is dropped: the rollback sends again what was in flight at the checkpoint)", args...)
	}
}

// handle (a worker that is not the initializer) answers the
// initializer's requests.
func (r *resilience) handle(ctx context.Context, c cluster.Checkpoint) cluster.Checkpoint {
	raise(&r.seen, c.Attempt)
	switch c.Op {
	case cluster.OpTake:
		reply := cluster.Checkpoint{Op: cluster.OpTaken, ID: c.ID, Attempt: c.Attempt}
		if r.discarding.Load() {
			// Its state is an old checkpoint's until the rollback: a
			// checkpoint now would not be consistent.
			reply.Text = "restarted, waiting for the cluster to roll back"
			return reply
		}
		if err := r.waitTaken(ctx, c.Attempt, r.outcome(c.Attempt)); err != nil {
			reply.Text = err.Error()
			return reply
		}
		r.crash.reached("taken")
		go func() {
			w := cluster.Checkpoint{Op: cluster.OpWritten, ID: c.ID, Attempt: c.Attempt}
			err := r.write(c.ID)
			if err == nil {
				err = r.flushOutput(ctx)
			}
			if err != nil {
				w.Text = err.Error()
				r.warn("checkpoint not ready to commit here", "id", c.ID, "err", err)
			} else {
				r.crash.reached("written")
			}
			if err := r.member.SendCheckpoint(w); err != nil {
				r.warn("checkpoint reply not sent", "id", c.ID, "err", err)
			}
		}()
		return reply
	case cluster.OpCancel:
		// Not on the control link's reader: the queue may be full. A
		// cancel that comes after the next barrier opened gives up
		// nothing (it is older).
		go r.cancelHere(ctx, r.cancelAttempt(c.Attempt))
	case cluster.OpResend:
		reply := cluster.Checkpoint{Op: cluster.OpResent, ID: c.ID, Attempt: c.Attempt}
		if r.discarding.Load() {
			// Restarted after this rollback restored: what it holds as
			// in flight is of its own older checkpoint, not this one's.
			reply.Text = "restarted, waiting for the cluster to roll back"
			return reply
		}
		n, err := r.resend(ctx)
		if err != nil {
			reply.Text = err.Error()
			r.warn("what was in flight at the checkpoint was not sent again", "checkpoint", c.ID, "err", err)
		}
		reply.N = uint64(n)
		return reply
	case cluster.OpCommit:
		r.crash.reached("commit")
		r.forgetAnnounced()
		if err := r.commit(c.ID, c.Rollback); err != nil {
			r.warn("checkpoint not committed here", "id", c.ID, "err", err)
		}
	case cluster.OpRotate:
		// Off the control link's reader, as RotateLog asked here is.
		go func() {
			if err := r.rotate("RotateLog from the external channel (passed on by another worker)"); err != nil {
				r.warn("RotateLog not done", "err", err)
			}
		}()
	case cluster.OpRollback:
		raise(&r.newestRollback, c.Received)
		reply := cluster.Checkpoint{Op: cluster.OpRolledBack, ID: c.ID, Attempt: c.Attempt, Seen: r.seen.Load()}
		select {
		case <-r.startDone:
		case <-ctx.Done():
			reply.Text = "this worker is stopping"
			return reply
		}
		if c.Received < r.newestRollback.Load() {
			r.debug("a rollback request that waited behind a later one is not made", "checkpoint", c.ID, "attempt", c.Attempt)
			reply.Text = "a later rollback request came meanwhile"
			return reply
		}
		if c.ID == 0 { // no checkpoint to return to: go on as is
			r.forgetAnnounced()
			r.endDiscarding(ctx, true)
			return reply
		}
		n, err := r.rollbackHere(ctx, c.ID, c.Rollback)
		if err != nil {
			reply.Text = err.Error()
			r.warn("rollback failed here", "checkpoint", c.ID, "err", err)
		}
		reply.N = uint64(n)
		return reply
	}
	return cluster.Checkpoint{}
}

// run (coordinator) takes a checkpoint every cfg.Every after the last
// one ended, and rolls the cluster back when a restarted worker asks,
// until ctx ends.
func (r *resilience) run(ctx context.Context) {
	defer close(r.stopped)
	defer r.gate.resume()
	// rolling: a rollback is asked for and not done yet (no checkpoint
	// then: the workers are not at one consistent state).
	rolling := false
	setRolling := func(on bool) {
		rolling = on
		r.rollingBack.Store(on)
		// No grow or shrink between two attempts: the checkpoint to
		// return to would then be of another partitioning.
		if r.member == nil {
			return
		}
		if on {
			r.member.HoldRescales("a rollback of the cluster to its last checkpoint is under way")
		} else {
			r.member.HoldRescales("")
		}
	}
	defer setRolling(false)
	failures := 0
	var lastRollback time.Time // when the last rollback completed
	started := time.Now()
	var who string
	rollback := func() {
		err := r.rollbackCluster(ctx, who)
		if err == nil {
			setRolling(false)
			failures = 0
			lastRollback = time.Now()
			return
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		if failures >= maxRollbackAttempts {
			// Better a cluster that runs than one that waits forever:
			// every worker goes on with the state it has.
			r.warn("ERROR: no rollback succeeded; the cluster goes on without returning to a checkpoint (its state may not be consistent: restart it from the files to try again)",
				"attempts", failures, "err", err)
			if gerr := r.giveUpRollback(ctx); gerr != nil {
				r.warn("could not tell every worker to go on", "err", gerr)
			}
			setRolling(false)
			failures = 0
			return
		}
		r.warn("rollback failed; trying again", "attempt", failures, "err", err)
		again := who
		time.AfterFunc(500*time.Millisecond, func() {
			select {
			case r.recover <- recoverRequest{who: again}:
			default:
			}
		})
	}
	// reading: the restarted workers that read their files and will ask
	// for the recovery, and until when the sources wait for them.
	reading := map[string]time.Time{}
	deferred := "" // who asked for a rollback while workers were reading
	noteReading := func() { r.waiting.Store(int32(len(reading))) }
	// mayGo lets the sources go on once nothing holds them: no rollback,
	// no worker reading its files, a committed checkpoint.
	mayGo := func() {
		if rolling || len(reading) > 0 {
			return
		}
		r.mu.Lock()
		committed := r.committed
		r.mu.Unlock()
		if committed > 0 {
			r.gate.resume()
		}
	}
	// request reports whether q calls for a rollback now, and who asked
	// for it (q's worker, or the one whose request waited for readers).
	request := func(q recoverRequest) (string, bool) {
		if q.reading {
			if r.member == nil || r.member.LinkedSince(q.who).IsZero() {
				return "", false // gone again already
			}
			if _, known := reading[q.who]; !known {
				r.log("a restarted worker reads its checkpoint files; the sources wait for its request for the recovery", "worker", q.who)
			}
			reading[q.who] = time.Now().Add(readingLimit)
			noteReading()
			r.gate.pause()
			return "", false
		}
		if _, ok := reading[q.who]; ok {
			delete(reading, q.who)
			noteReading()
		}
		if len(reading) == 0 && deferred != "" {
			return deferred, true // (the rollback that waited for the readers)
		}
		if !rolling && !lastRollback.IsZero() {
			since := r.member.LinkedSince(q.who)
			if q.who == cluster.InitializerName {
				since = started // this process: its own restart
			}
			if !since.IsZero() && lastRollback.After(since) {
				// It restarted before the last rollback, which took
				// it back with the others: nothing more to do.
				r.debug("a rollback asked for was already done", "worker", q.who)
				mayGo()
				return "", false
			}
		}
		if len(reading) > 0 {
			// One rollback, once every restarted worker has read its
			// files (asked of one still reading, it would wait for it,
			// and fail after replyLimit).
			if deferred == "" {
				r.log("a rollback waits until the restarted workers have read their files", "asked_by", q.who, "reading", len(reading))
			}
			deferred = q.who
			return "", false
		}
		return q.who, true
	}
	// startRollback starts the rollback asked for by w.
	startRollback := func(w string) {
		who, deferred = w, ""
		setRolling(true)
		rollback()
	}
	// Every request queued before run started (a restart: back to one
	// checkpoint everywhere first; also the restarted workers'), those
	// of workers reading their files first: a rollback waits for them.
	var first []recoverRequest
queued:
	for {
		select {
		case q := <-r.recover:
			first = append(first, q)
		default:
			break queued
		}
	}
	slices.SortStableFunc(first, func(a, b recoverRequest) int {
		switch {
		case a.reading && !b.reading:
			return -1
		case b.reading && !a.reading:
			return 1
		}
		return 0
	})
	for _, q := range first {
		if w, now := request(q); now {
			startRollback(w)
		}
	}
	t := time.NewTimer(0) // the first at once: the sources wait for it
	defer t.Stop()
	check := time.NewTicker(time.Second) // (the workers in reading)
	defer check.Stop()
	var fails failedCheckpoints
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if rolling || len(reading) > 0 {
				// (Not while a restarted worker reads its files: it
				// would fail each one. Soon after: one may be due, as
				// after a rescale.)
				t.Reset(min(r.nextCheckpointIn(), time.Second))
				continue
			}
			t0 := time.Now()
			id, err := r.checkpoint(ctx)
			logged := false
			if err != nil && ctx.Err() == nil {
				logged = fails.failed(r, id, err)
			} else if err == nil {
				fails.complete(r, id)
				r.debug("checkpoint complete", "id", id, "took", time.Since(t0).Round(time.Microsecond))
			}
			if !rolling && err == nil && len(reading) == 0 {
				r.gate.resume() // after the first complete one: the sources start
			}
			next := r.nextCheckpointIn()
			if logged && r.gate.hold() != nil && len(reading) == 0 {
				r.warn("the sources wait for the first committed checkpoint; trying again", "in", next)
			}
			t.Reset(next)
		case <-check.C:
			if len(reading) == 0 {
				continue
			}
			now := time.Now()
			for w, until := range reading {
				switch {
				case r.member.LinkedSince(w).IsZero():
					r.warn("a restarted worker went before it asked for the recovery; the sources go on (its keys wait until it is back)", "worker", w)
					delete(reading, w)
				case now.After(until):
					r.warn(fmt.Sprintf("a restarted worker has not asked for the recovery within %v of rejoining (its files, sinks or links are not ready); the sources go on (what comes for it meanwhile waits there, up to %d MiB)", readingLimit, holdLimit>>20), "worker", w)
					delete(reading, w)
				}
			}
			noteReading()
			if len(reading) == 0 && deferred != "" {
				startRollback(deferred)
				continue
			}
			mayGo()
		case q := <-r.recover:
			w, now := request(q)
			if !now {
				continue
			}
			startRollback(w)
			if r.gate.hold() != nil {
				// (Nothing committed yet: the sources wait for a first
				// checkpoint; take it soon.)
				t.Reset(r.nextCheckpointIn()) // (Go 1.23 timers: no stale tick)
			}
		case <-r.rescaled:
			// A checkpoint at once: until it is complete, a failure
			// cannot be rolled back (the last one predates the move).
			t.Reset(0) // (Go 1.23 timers: no stale tick)
		}
	}
}

// nextCheckpointIn is the wait before the next checkpoint: the
// interval, or at most a second while the sources wait for a first
// committed checkpoint (one failed, or a rollback found none).
func (r *resilience) nextCheckpointIn() time.Duration {
	r.mu.Lock()
	committed := r.committed
	r.mu.Unlock()
	if committed == 0 {
		return min(r.cfg.Every, time.Second)
	}
	return r.cfg.Every
}

// failedCheckpoints keeps the log of checkpoints that fail in a row
// readable: while a worker is down they fail every interval, the same
// way; each new reason is logged, a repeat only every failLogEvery (with
// how many failed meanwhile), and the first success after failures says
// so. Run's goroutine only.
type failedCheckpoints struct {
	last     string    // the last reason logged
	loggedAt time.Time // when
	quiet    int       // failures not logged since
	inRow    int
}

// failLogEvery is how often a checkpoint failing for the same reason is
// logged again.
const failLogEvery = 10 * time.Second

// failed records a failed checkpoint and reports whether it was logged.
func (f *failedCheckpoints) failed(r *resilience, id uint64, err error) bool {
	f.inRow++
	why := err.Error()
	if why == f.last && time.Since(f.loggedAt) < failLogEvery {
		f.quiet++
		r.debug("checkpoint failed again", "id", id, "err", err)
		return false
	}
	args := []any{"id", id, "err", err}
	if f.quiet > 0 {
		args = append(args, "failed_in_a_row", f.inRow, "not_logged", f.quiet)
	}
	r.warn("checkpoint failed; the next one will try again", args...)
	f.last, f.loggedAt, f.quiet = why, time.Now(), 0
	return true
}

func (f *failedCheckpoints) complete(r *resilience, id uint64) {
	if f.inRow > 0 {
		r.log("checkpoints complete again", "id", id, "failed_in_a_row_before", f.inRow)
	}
	*f = failedCheckpoints{}
}

// final (a worker alone, after its loop ended) takes, writes and commits
// a last checkpoint, so the same command line resumes from it.
func (r *resilience) final() (uint64, error) {
	r.mu.Lock()
	id, rollback := r.committed+1, r.rollback
	r.mu.Unlock()
	if err := r.takeWith(id, func(f func() error) error { return f() }, nil); err != nil {
		return id, err
	}
	if err := r.write(id); err != nil {
		return id, err
	}
	if err := r.flushOutput(context.Background()); err != nil {
		return id, err
	}
	return id, r.commit(id, rollback)
}

// wasRestored reports whether start recovered state from the files.
func (r *resilience) wasRestored() (bool, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restored, r.committed
}

// afterRescale (coordinator) is told that a grow or shrink completed.
func (r *resilience) afterRescale() {
	r.recordFloor()
	r.checkpointSoon()
}

// checkpointSoon (coordinator) asks for a checkpoint at once: after a
// grow or shrink, also one that failed (its commit may have recorded the
// floor before it failed: until the next checkpoint, no rollback would
// have anything to return to).
func (r *resilience) checkpointSoon() {
	select {
	case r.rescaled <- struct{}{}:
	default:
	}
}
