package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/engine/rescale"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/work"
)

// Growing and shrinking a running cluster (runtime spec 3.4–3.6).
//
// The initializer coordinates every rescale: a joiner that calls another
// worker is sent on to it (KindRedirect), and a shrink asked of another
// worker's external channel is forwarded to it (KindShrink). One rescale
// runs at a time, in phases, each acknowledged by every worker taking
// part before the next begins. Unlike 0.6, the world does not stop: only
// the partitions that move wait, and only while their state moves.
//
//  1. Prepare: the new cluster (workers, data listeners, partition
//     table) goes to everyone; old workers connect data links to the
//     joiners, joiners build, connect to everyone and their sinks, and
//     say Ready.
//  2. Freeze: every worker installs, in its processor loop's order, a
//     table in which each moving partition routes to a parking place
//     (holdDest of its new owner) instead of a worker, except those it
//     loses itself, which it still runs, then sends a fence on every
//     data link. Once the fence of every other old worker has been
//     processed here, nothing routed by the old table is left anywhere
//     for this worker's partitions: it parks the partitions it loses
//     too (a table installed in the loop's order) and then exports
//     the state of each, sends it through the initializer to the new
//     owner (which imports it as it arrives) and drops it. Running
//     them here until then matters where a key crosses two keyed
//     boundaries (key_by, state, key_by, state): a message routed here
//     by the old table at the first, before the freeze, meets the
//     second here after it; parked there it would reach the new owner
//     on another link than the key's later messages, parked at the
//     first boundary elsewhere, and could run after them.
//  3. Commit: every state has been sent; each worker acks once the
//     Commit arrives (its states came before it on the same link).
//  4. Release: every worker installs the new table and, in the same
//     step of its loop, sends what it parked to the new owners (its own
//     share runs next, before anything else), so a key's messages keep
//     their order. Leavers stop cleanly; joiners start.
//
// Partitions that do not move are routed the same way by all three
// tables: their messages flow throughout. Exactly once: a moving
// partition's messages routed by the old table are processed by its old
// owner before its state is exported (the fences), the ones routed
// during the freeze wait parked and are processed by the new owner after
// its state arrived, and after the release every worker routes by the
// new table.
//
// Failures before Freeze abort the rescale (joiners are told to go). A
// failure after it, before any Release, is undone: joiners are told to go,
// every old worker imports again the states it sent and drops those it
// imported (Undo), then installs the old table and routes what it parked
// again, record by record, to the partitions' old owners (UndoRelease):
// no message is lost or run twice, and the cluster is as it was. If the
// undo fails too (or the failure came during the Release), the moving
// partitions stay parked (bounded: the sources are held once maxParked
// batches wait), and no later rescale may start (one would drop them).

// phaseTimeout bounds one phase of a rescale.
const phaseTimeout = 60 * time.Second

// JoinError is a refused join (spec 3.4: "Join Error: ..."); the joiner
// exits 1 with it.
type JoinError struct{ Reason string }

func (e *JoinError) Error() string {
	if strings.HasPrefix(e.Reason, "Join Error") {
		return e.Reason
	}
	return "Join Error: " + e.Reason
}

// redirectError sends a joiner on to the initializer.
type redirectError struct{ addr string }

func (e *redirectError) Error() string { return "join through the initializer at " + e.addr }

// rescaleState is a member's part in rescales.
type rescaleState struct {
	mu sync.Mutex
	// Initializer: the joiners gathering, the rescale under way, and
	// the acks of its current phase.
	gather rescale.Gather
	// watching: a goroutine says, every joinWaitLog, which joiners of
	// gather came while it is incomplete (watchJoiners).
	watching bool
	busy     bool
	held     string // why no rescale may start now ("" if one may; HoldRescales)
	// wedged (initializer): why no rescale may start again: one failed
	// after its state began to move, and its moving partitions stay
	// parked (a later one would drop what they hold).
	wedged  string
	nextID  uint64
	joiners map[string]bool // the joiners of the current rescale (their Ready acks Prepare)
	// startAfter: workers back from a restart that said Ready during the
	// rescale, started when it ends (endRescale).
	startAfter []string
	// undoRuns (workers): the last run of each undo phase (undoOnce).
	undoRuns map[uint8]*undoRun
	acks     chan RescaleAck
	curID    uint64
	leaving  bool     // this worker leaves at the end of the current rescale
	pending  *Rescale // the Prepare of the rescale under way (workers)
	frozen   bool     // the Freeze of pending has come (workers)
	// committed: the Commit of pending has come and this worker had
	// every state it takes in; releasing: its release has begun
	// (workers).
	committed, releasing bool
	// settled: the last rescale this worker completed itself, back at a
	// live initializer whose Release it missed (settleOrphaned); that
	// Release, told again, is acked (until the next Prepare).
	settled  uint64
	importEr error // the first import that failed in the current rescale
	// exported holds the states this worker sent in the current rescale
	// (whole: a second copy of them until the Release or an Undo; those
	// an Undo could not import again stay, until the worker stops),
	// imported the partitions it took in: what an Undo gives back and
	// drops. undone is the id of the rescale last undone here
	// (its states arriving late are dropped). freezing, while this
	// worker's freeze runs, closes when it has ended; stopFreeze cuts
	// it short (an Undo came).
	exported   []State
	imported   []State
	undone     uint64
	freezing   chan struct{}
	stopFreeze context.CancelFunc
	// The freeze: old members (whose fences this worker waits for), the
	// fences processed so far, closed when all are; what is parked.
	oldMembers []string
	fenced     map[string]bool
	fencesDone chan struct{}
	parked     []work.Envelopes
	// parkedRoom, while parked holds maxParked batches or more, closes
	// when it holds fewer (the sources are held meanwhile: Congested).
	parkedRoom chan struct{}
	// States for this worker, waiting for the importer (one goroutine
	// while any are queued); importing counts those not yet imported.
	imports   []State
	importer  bool
	importing sync.WaitGroup
	// pieces holds the states arriving in pieces, until complete.
	pieces map[pieceKey][]byte
	// joinFailed reports a joiner's failure before it is a member.
	joinFailed chan error
	// prepared counts the Prepares a worker's control reader took;
	// aborted is that count when the last Abort came: a Prepare (run on
	// a goroutine of its own) numbered at or below it was aborted, even
	// if it runs after the Abort.
	prepared, aborted uint64
	// shrinkReply (non-initializers): the reply to the forwarded shrink.
	shrinkReply chan string
	// orphans (an initializer started again): the workers back frozen
	// in a rescale of its crashed run that its recorded cluster does not
	// have, with that rescale's id; orphanUndo while undoOrphans runs.
	orphans    map[string]uint64
	orphanUndo bool
}

func newRescaleState() rescaleState {
	return rescaleState{acks: make(chan RescaleAck, 64), joinFailed: make(chan error, 1), shrinkReply: make(chan string, 1)}
}

func (s *rescaleState) isLeaving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaving
}

// joinerReady routes a joiner's Ready to the acks of the current
// rescale; false if name is not joining now.
func (s *rescaleState) joinerReady(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.joiners[name] {
		return false
	}
	select {
	case s.acks <- RescaleAck{ID: s.curID, Phase: PhasePrepare, from: name}:
	default:
	}
	return true
}

// forgetUnfrozen (a worker that lost its initializer) drops a rescale
// that was prepared here but not frozen: nothing is parked, and the
// initializer that comes back does not go on with it. A frozen one stays
// (its moving partitions are parked; the status says so).
func (s *rescaleState) forgetUnfrozen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil || s.frozen {
		return false
	}
	s.pending = nil
	return true
}

func (s *rescaleState) lostInitializer() {
	s.failJoin(errors.New("lost the control link to the initializer before joining"))
}

// failJoin reports a joiner's failure before it is a member (once).
func (s *rescaleState) failJoin(err error) {
	select {
	case s.joinFailed <- err:
	default:
	}
}

// Leaving reports whether this worker has left the cluster (a shrink).
func (m *Member) Leaving() bool { return m.rs.isLeaving() }

// Rescaling reports whether a grow or shrink is under way as this worker
// takes part in it: on the initializer from the moment it has every
// joiner (or took a shrink) until the last phase has ended, on the other
// workers from the Prepare until the Release or Abort. The external
// channel's cluster status then says processing_messages false, as 0.6
// did while its world was stopped, so that tools wait for the end of it.
func (m *Member) Rescaling() bool {
	m.rs.mu.Lock()
	defer m.rs.mu.Unlock()
	return m.rs.busy || m.rs.pending != nil
}

// redirect (non-initializers' control listener) sends a worker that
// wants to join on to the initializer.
func (m *Member) redirect(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(handshakeLimit))
	peer, err := readHello(conn, r, m.cfg.Hello, ControlChannel)
	if err != nil {
		m.log.Warn("control connection refused", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	m.mu.Lock()
	addr := m.initCtl
	m.mu.Unlock()
	m.log.Info("a worker asks to join here: sent on to the initializer", "worker", peer.Worker, "initializer", addr)
	conn.Write(AppendFrame(nil, KindRedirect, Text(addr)))
}

// serveJoiner (initializer) takes a worker that asks to join the
// running cluster: refuses it with a Join Error, or keeps its control
// link and, once the k joiners of its join are here, grows the cluster.
func (m *Member) serveJoiner(ctx context.Context, c *ctlConn, r *bufio.Reader, j Join, mine Hello) {
	refuse := func(reason string) {
		err := &JoinError{Reason: reason}
		c.conn.Write(AppendFrame(nil, KindRefuse, Text(err.Error())))
		m.log.Error("refused a joining worker", "worker", j.Worker, "reason", err.Error())
	}
	m.mu.Lock()
	formed := m.workers != nil
	members := slices.Clone(m.workers)
	m.mu.Unlock()
	if !formed || !m.Started() {
		refuse("the cluster is still forming; join once it is processing")
		return
	}
	m.rs.mu.Lock()
	if m.rs.busy {
		m.rs.mu.Unlock()
		refuse("a grow or shrink is under way; join again when it is done")
		return
	}
	if m.rs.held != "" {
		why := m.rs.held
		m.rs.mu.Unlock()
		refuse(why + "; join again when it is done")
		return
	}
	if m.rs.wedged != "" {
		why := m.rs.wedged
		m.rs.mu.Unlock()
		refuse(why)
		return
	}
	done, err := m.rs.gather.Add(rescale.Joiner{Name: j.Worker, Control: j.Control, Data: hostFrom(j.Data, c.conn.RemoteAddr()), K: int(j.Joining)}, members)
	if err != nil {
		m.rs.mu.Unlock()
		refuse(strings.TrimPrefix(err.Error(), "Join Error: "))
		return
	}
	var joiners []rescale.Joiner
	k := m.rs.gather.K
	if done {
		joiners = m.rs.gather.Joiners
		m.rs.gather = rescale.Gather{}
		m.rs.busy = true
	} else if !m.rs.watching {
		m.rs.watching = true
		go m.watchJoiners(ctx)
	}
	m.rs.mu.Unlock()
	m.mu.Lock()
	if m.joinerUnlinked == nil {
		m.joinerUnlinked = map[string]bool{}
	}
	m.joinerUnlinked[j.Worker] = true
	m.mu.Unlock()
	c.conn.SetDeadline(time.Time{})
	c.conn.Write(AppendFrame(nil, KindHello, mine.Encode()))
	if m.beforeJoinerLink != nil {
		m.beforeJoinerLink(j.Worker)
	}
	m.mu.Lock()
	m.ctl[j.Worker] = c
	delete(m.joinerUnlinked, j.Worker)
	owed, late := m.owedAbort[j.Worker]
	delete(m.owedAbort, j.Worker)
	m.mu.Unlock()
	fmt.Fprintf(m.cfg.Console, "AUTOSCALE: Waiting for %d joining workers\n", k)
	m.log.Info("a worker asks to join", "worker", j.Worker, "joining together", k)
	if late {
		// Its grow was aborted before this link was registered.
		m.log.Warn("a joiner's link came after its grow was aborted: told to go", "worker", j.Worker, "id", owed)
		if err := c.send(KindRescale, Rescale{ID: owed, Phase: PhaseAbort}.Encode()); err != nil {
			m.log.Warn("rescale abort not sent", "id", owed, "worker", j.Worker, "err", err)
		}
	}
	if done {
		go m.grow(ctx, joiners)
	}
	m.readControl(ctx, c, r)
	m.mu.Lock()
	if m.ctl[j.Worker] == c {
		delete(m.ctl, j.Worker)
	}
	m.mu.Unlock()
	if !done {
		// Gone before the others of its group came: it no longer
		// counts (its name is free again, and a shrink is not held).
		m.rs.mu.Lock()
		left := m.rs.gather.Remove(j.Worker)
		m.rs.mu.Unlock()
		if left {
			m.log.Warn("a joining worker left before the others of its join came", "worker", j.Worker, "still_waiting_for", k)
		}
	}
}

// joinWaitLog is how often the initializer says which joiners of an
// incomplete join it has and how many it still waits for.
const joinWaitLog = 10 * time.Second

// watchJoiners (initializer) says every joinWaitLog, while joiners are
// gathering, which came and how many more their --worker-count asks for
// (a joiner that never comes, e.g. one that could not bind its
// listeners, holds the others in their join for as long as they wait).
func (m *Member) watchJoiners(ctx context.Context) {
	every := joinWaitLog
	if m.joinLogEvery > 0 {
		every = m.joinLogEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.rs.mu.Lock()
			m.rs.watching = false
			m.rs.mu.Unlock()
			return
		case <-tick.C:
		}
		m.rs.mu.Lock()
		g := m.rs.gather
		if len(g.Joiners) == 0 {
			m.rs.watching = false
			m.rs.mu.Unlock()
			return
		}
		var have []string
		for _, j := range g.Joiners {
			have = append(have, j.Name)
		}
		m.rs.mu.Unlock()
		m.log.Warn(fmt.Sprintf("waiting for %d more of %d joining workers (their --worker-count) before the grow starts", g.K-len(have), g.K),
			"joined", strings.Join(have, ","))
	}
}

// joinerLinkWait bounds how long a grow waits for the control links of
// its joiners to be registered.
const joinerLinkWait = 10 * time.Second

// grow (initializer) adds joiners to the cluster.
func (m *Member) grow(ctx context.Context, joiners []rescale.Joiner) {
	// The joiner that completed the join starts the grow; each of the
	// others registers its control link once its Hello is written, which
	// may be later: wait for them (a grow that started without one would
	// fail at once, "no control link").
	wait := joinerLinkWait
	if m.joinerWait > 0 {
		wait = m.joinerWait
	}
	names := make([]string, len(joiners))
	for i, j := range joiners {
		names[i] = j.Name
	}
	m.waitLinked(ctx, names, wait) // (a link still missing fails the Prepare, which aborts)
	m.mu.Lock()
	plan, err := rescale.Grow(m.table, m.workers, m.dataAddrs, joiners)
	m.mu.Unlock()
	if err == nil {
		err = m.runRescale(ctx, plan)
	} else {
		m.endRescale() // runRescale did not run: nothing else ends it
	}
	if err != nil {
		m.log.Error("grow failed", "err", err)
	}
}

// shrink (initializer) removes leaving from the cluster.
func (m *Member) shrink(ctx context.Context, leaving []string) {
	m.mu.Lock()
	plan, err := rescale.Shrink(m.table, m.workers, m.dataAddrs, leaving)
	m.mu.Unlock()
	if err == nil {
		err = m.runRescale(ctx, plan)
	} else {
		m.endRescale() // runRescale did not run: nothing else ends it
	}
	if err != nil {
		m.log.Error("shrink failed", "err", err)
	}
}

// oweAbort (initializer) records that joiner n, admitted to its join
// but with no control link registered yet, is to be told that rescale id
// was aborted once its link is (serveJoiner); it reports whether n was
// such a joiner.
func (m *Member) oweAbort(n string, id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctl[n] != nil || !m.joinerUnlinked[n] {
		return false
	}
	if m.owedAbort == nil {
		m.owedAbort = map[string]uint64{}
	}
	m.owedAbort[n] = id
	m.log.Warn("rescale aborted before a joiner's link came: it is told when the link comes", "id", id, "worker", n)
	return true
}

// endRescale (initializer) ends the rescale under way: runRescale's
// last step, or a grow or shrink for which no plan could be made.
func (m *Member) endRescale() {
	m.rs.mu.Lock()
	m.rs.busy = false
	m.rs.joiners = nil
	later := m.rs.startAfter
	m.rs.startAfter = nil
	wedged := m.rs.wedged != ""
	m.rs.mu.Unlock()
	if m.stopComing() && len(later) > 0 {
		m.log.Info("workers back from a restart during the grow or shrink are not started: the cluster is stopping", "workers", strings.Join(later, ","))
		return
	}
	if wedged && len(later) > 0 {
		// The moving partitions stay held: started, they would
		// route by the old table.
		m.log.Error("workers back from a restart are not started: the failed grow or shrink could not be undone; stop the cluster and start it again", "workers", strings.Join(later, ","))
		return
	}
	for _, n := range later {
		m.mu.Lock()
		c := m.ctl[n]
		m.mu.Unlock()
		if c == nil {
			continue // gone again: it says Ready when it is back
		}
		m.log.Info("the grow or shrink has ended: a worker back from a restart is started", "worker", n)
		if err := c.send(KindStart, nil); err != nil {
			m.log.Warn("start not sent", "worker", n, "err", err)
		}
	}
}

// startLater (initializer) keeps a worker back from a restart from
// starting while a grow or shrink is under way (it would route by the
// old table while others hold the moving partitions): endRescale starts
// it. It reports whether the start was put off.
func (s *rescaleState) startLater(worker string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.busy {
		return false
	}
	if !slices.Contains(s.startAfter, worker) {
		s.startAfter = append(s.startAfter, worker)
	}
	return true
}

// ShrinkQuery lists the workers a shrink asked of this worker may
// remove.
func (m *Member) ShrinkQuery() []string {
	leaving := m.rs.isLeaving()
	var out []string
	for _, w := range m.Workers() {
		// (The initializer by name, not as the first of the list: a
		// worker's list during a rescale is not always in the
		// cluster's order. A worker that is leaving is no longer one
		// to shrink by.)
		if w != InitializerName && !(leaving && w == m.cfg.Name) {
			out = append(out, w)
		}
	}
	return out
}

// Shrink handles a shrink request from this worker's external channel
// and returns 0.6's reply. The initializer starts it; another worker
// forwards it to the initializer and waits for its answer.
func (m *Member) Shrink(ctx context.Context, names []string, count int) string {
	if !m.Started() {
		return "Cannot shrink: the cluster is not processing yet"
	}
	if m.rs.isLeaving() {
		return "Cannot shrink: this worker is leaving the cluster; ask another"
	}
	leaving, reply := rescale.Targets(m.Workers(), names, count)
	if len(leaving) == 0 {
		return reply
	}
	req := ShrinkRequest{From: m.cfg.Name, Leaving: leaving}
	if m.cfg.Initializer {
		return m.startShrink(ctx, req)
	}
	m.mu.Lock()
	c := m.toInit
	m.mu.Unlock()
	select { // a stale reply from a request that timed out
	case <-m.rs.shrinkReply:
	default:
	}
	if c == nil || c.send(KindShrink, req.Encode()) != nil {
		return "Cannot shrink: the initializer cannot be reached"
	}
	select {
	case r := <-m.rs.shrinkReply:
		return r
	case <-time.After(10 * time.Second):
		return "Cannot shrink: the initializer did not answer"
	case <-ctx.Done():
		return "Cannot shrink: this worker is stopping"
	}
}

// startShrink (initializer) checks a shrink request against the cluster
// as it is now and starts it.
func (m *Member) startShrink(ctx context.Context, req ShrinkRequest) string {
	leaving, reply := rescale.Targets(m.Workers(), req.Leaving, 0)
	if len(leaving) == 0 {
		return reply
	}
	_, away := m.othersLinked() // workers without a control link now
	m.rs.mu.Lock()
	if m.rs.busy || len(m.rs.gather.Joiners) > 0 {
		m.rs.mu.Unlock()
		return "Cannot shrink now: a grow or shrink is under way; ask again when it is done"
	}
	if m.rs.held != "" {
		why := m.rs.held
		m.rs.mu.Unlock()
		return "Cannot shrink now: " + why + "; ask again when it is done"
	}
	if m.rs.wedged != "" {
		why := m.rs.wedged
		m.rs.mu.Unlock()
		return "Cannot shrink now: " + why
	}
	if len(away) > 0 {
		// (Its keys would have to leave through it, or go to it.)
		m.rs.mu.Unlock()
		return "Cannot shrink now: not connected to " + strings.Join(away, ",") + " (stopped or crashed?); start it again first"
	}
	m.rs.busy = true
	m.rs.mu.Unlock()
	m.log.Info("shrink requested", "from", req.From, "leaving", strings.Join(leaving, ","))
	go m.shrink(ctx, leaving)
	return reply
}

// HoldRescales (initializer) refuses every grow and shrink asked for
// from now on, saying why (a rollback of the cluster under way), until
// it is called with "". A rescale already under way is not stopped.
func (m *Member) HoldRescales(why string) {
	m.rs.mu.Lock()
	m.rs.held = why
	m.rs.mu.Unlock()
}

// runRescale (initializer) runs one rescale's phases.
func (m *Member) runRescale(ctx context.Context, plan rescale.Plan) (err error) {
	defer m.Exclusive()() // never interleaved with a checkpoint
	t0 := time.Now()
	m.rs.mu.Lock()
	m.rs.nextID++
	id := m.rs.nextID
	m.rs.curID = id
	m.rs.joiners = map[string]bool{}
	for _, j := range plan.Joining {
		m.rs.joiners[j] = true
	}
	m.rs.mu.Unlock()
	kind := "grow"
	if len(plan.Leaving) > 0 {
		kind = "shrink"
	}
	if m.cfg.OnRescale != nil {
		// (Told once the rescale has ended: another may start.)
		defer func() { m.cfg.OnRescale(kind, err == nil, time.Since(t0)) }()
	}
	defer m.endRescale()
	defer func() {
		m.mu.Lock()
		m.committedTopo = nil
		m.mu.Unlock()
	}()
	fmt.Fprintf(m.cfg.Console, "AUTOSCALE: %s to %d workers (%s) begins\n", kind, len(plan.Workers), strings.Join(append(plan.Joining, plan.Leaving...), ","))
	idx := map[routing.WorkerName]uint16{}
	for i, w := range plan.Workers {
		idx[routing.WorkerName(w)] = uint16(i)
	}
	topo := Topology{Workers: plan.Workers, Data: plan.Data, Epoch: plan.New.Epoch(), Metrics: m.Metrics(), Sinks: m.Sinks()}
	for _, o := range plan.New.Owners() {
		topo.Owners = append(topo.Owners, idx[o])
	}
	var old []string // the other workers before the rescale
	for _, w := range m.Workers() {
		if w != m.cfg.Name {
			old = append(old, w)
		}
	}
	everyone := append(slices.Clone(old), plan.Joining...)
	// via holds the control link each worker was last told a phase on
	// (its ack comes on that link or not at all; this goroutine only).
	via := map[string]*ctlConn{}
	send := m.teller(via)
	// prep holds the link each worker was told the Prepare on: until the
	// commit every phase goes on it (a worker whose link dropped and came
	// back may have lost states sent on the old one), and the commit
	// checks none changed.
	var prep map[string]*ctlConn
	tellOnPrep := func(names []string, r Rescale) error {
		if n := m.linkChanged(names, prep); n != "" {
			return fmt.Errorf("%s: the control link to %s changed during the rescale", PhaseName(r.Phase), n)
		}
		return send(names, r)
	}
	frozen, released := false, false
	defer func() {
		if err != nil && frozen && !released {
			m.log.Error("rescale failed after the freeze: undoing it", "id", id, "err", err)
			uerr := m.undoRescale(ctx, id, plan, old, send, via)
			if uerr == nil {
				fmt.Fprintf(m.cfg.Console, "AUTOSCALE: %s to %d workers failed (%v) and was undone: %d workers (%s), as before\n",
					kind, len(plan.Workers), err, len(old)+1, strings.Join(m.Workers(), ","))
				return
			}
			err = fmt.Errorf("%w; and undoing it failed: %v", err, uerr)
		}
		if err != nil && frozen && m.stopComing() {
			// (Nothing to refuse later: the stop ends this run; with
			// resilience, the files hold the last checkpoint taken
			// before it.)
			m.log.Warn("rescale cut short by the stop", "id", id, "err", err)
		} else if err != nil && frozen {
			why := fmt.Sprintf("grow or shrink %d failed after its state began to move (%v); the messages of its moving partitions wait parked and no grow or shrink can start: stop the cluster (cluster_shutdown) and start it again", id, err)
			m.log.Error("rescale failed after the freeze", "id", id, "err", err)
			m.rs.mu.Lock()
			m.rs.wedged = why
			m.rs.mu.Unlock()
		}
		if err != nil && !frozen {
			m.log.Warn("rescale aborted", "id", id, "err", err)
			fmt.Fprintf(m.cfg.Console, "AUTOSCALE: %s to %d workers failed (%v) before anything moved: %d workers (%s), as before\n",
				kind, len(plan.Workers), err, len(old)+1, strings.Join(m.Workers(), ","))
			// Every worker is told, also those after one that cannot
			// be (a joiner listed after a dead one would wait for ever).
			for _, n := range everyone {
				if m.oweAbort(n, id) {
					continue
				}
				if serr := send([]string{n}, Rescale{ID: id, Phase: PhaseAbort}); serr != nil {
					m.log.Warn("rescale abort not sent", "id", id, "worker", n, "err", serr)
				}
			}
			m.abortHere(plan)
		}
	}()
	// 1. Prepare.
	prepare := Rescale{ID: id, Phase: PhasePrepare, Topo: topo, Leaving: plan.Leaving}
	if err := send(everyone, prepare); err != nil {
		return err
	}
	prep = maps.Clone(via)
	if err := m.whileLinked(ctx, PhasePrepare, everyone, via, func(wctx context.Context) error { return m.prepareHere(ctx, wctx, prepare) }); err != nil {
		return err
	}
	if err := m.waitAcks(ctx, id, PhasePrepare, everyone, via); err != nil {
		return err
	}
	// 2. Freeze: the moving partitions park; their state moves.
	t1 := time.Now()
	frozen = true
	if err := tellOnPrep(everyone, Rescale{ID: id, Phase: PhaseFreeze}); err != nil {
		return err
	}
	if err := m.whileLinked(ctx, PhaseFreeze, everyone, via, func(wctx context.Context) error { return m.freezeHere(ctx, wctx, id, plan) }); err != nil {
		return err
	}
	if err := m.waitAcks(ctx, id, PhaseFreeze, everyone, via); err != nil {
		return err
	}
	t2 := time.Now()
	// 3. Commit: every state is on its way, ahead of this.
	if m.beforePhase != nil {
		m.beforePhase(PhaseCommit)
	}
	if m.cfg.OnRescaleStep != nil {
		m.cfg.OnRescaleStep("rescale-frozen")
	}
	if err := tellOnPrep(everyone, Rescale{ID: id, Phase: PhaseCommit}); err != nil {
		return err
	}
	if err := m.commitHere(); err != nil {
		return err
	}
	if err := m.waitAcks(ctx, id, PhaseCommit, everyone, via); err != nil {
		return err
	}
	t3 := time.Now()
	// 4. Release. (From here on nothing is undone: a worker may have
	// installed the new table.) The new cluster is recorded first: an
	// initializer that crashes from here on comes back with it, and the
	// workers it left frozen take it up (settleOrphaned); one that
	// crashed before comes back with the old one and they undo.
	if m.beforePhase != nil {
		m.beforePhase(commitPoint)
	}
	if err := m.commitRescale(topo, everyone, prep); err != nil {
		return err
	}
	released = true
	if m.cfg.OnRescaleStep != nil {
		m.cfg.OnRescaleStep("rescale-committed")
	}
	if m.beforePhase != nil {
		m.beforePhase(PhaseRelease)
	}
	// A worker that cannot be told, or whose link goes before it acks,
	// completes the release when it is back (settleOrphaned: the cluster
	// the initializer has then is the new one); one that crashed comes
	// back knowing nothing of it, its keys empty as after any restart.
	var told []string
	for _, n := range everyone {
		if err := send([]string{n}, Rescale{ID: id, Phase: PhaseRelease}); err != nil {
			m.log.Warn("rescale release not told: that worker completes it once it is back", "id", id, "worker", n, "err", err)
			continue
		}
		told = append(told, n)
	}
	if err := m.releaseHere(ctx, prepare); err != nil {
		return err
	}
	for len(told) > 0 {
		err := m.waitAcks(ctx, id, PhaseRelease, told, via)
		var lost *linksLostError
		if err == nil {
			break
		}
		if !errors.As(err, &lost) {
			return err
		}
		m.log.Warn("rescale release: a worker was lost before it acked; it completes the release once it is back", "id", id, "workers", strings.Join(lost.lost, ","))
		told = slices.DeleteFunc(lost.pending, func(n string) bool { return slices.Contains(lost.lost, n) })
	}
	if len(plan.Workers) > 1 {
		if err := m.writeRecoveryFiles(); err != nil {
			m.log.Warn("recovery files not written", "err", err)
		}
	}
	moved := len(routing.Moves(plan.Old, plan.New))
	fmt.Fprintf(m.cfg.Console, "AUTOSCALE: %s complete: %d workers (%s); %d of %d partitions moved\n",
		kind, len(plan.Workers), strings.Join(plan.Workers, ","), moved, plan.New.Partitions())
	m.log.Info("rescale complete", "kind", kind, "workers", strings.Join(plan.Workers, ","),
		"partitions_moved", moved, "moving_partitions_waited", time.Since(t1).Round(time.Millisecond), "total", time.Since(t0).Round(time.Millisecond),
		"prepare", t1.Sub(t0).Round(time.Millisecond), "freeze_and_state", t2.Sub(t1).Round(time.Millisecond),
		"commit", t3.Sub(t2).Round(time.Millisecond), "release", time.Since(t3).Round(time.Millisecond))
	return nil
}

// noteOrphan (initializer) records that worker, back at this
// initializer, is frozen in rescale id, which this run is not running
// and whose cluster it has not recorded: the run that crashed had not
// committed it (undoOrphans undoes it).
func (m *Member) noteOrphan(worker string, id uint64) {
	if m.Started() {
		// (A worker back frozen in a rescale of this run that failed
		// and could not be undone: the cluster is wedged and says so.)
		return
	}
	m.rs.mu.Lock()
	defer m.rs.mu.Unlock()
	if m.rs.busy {
		return // (this run's own rescale: it goes on with it)
	}
	if m.rs.orphans == nil {
		m.rs.orphans = map[string]uint64{}
	}
	m.rs.orphans[worker] = id
	m.rs.nextID = max(m.rs.nextID, id) // (its next rescale is told apart)
	m.log.Warn("a worker is back frozen in a grow or shrink that was not completed before this initializer stopped: it is undone once every worker is back", "worker", worker, "id", id)
}

// orphansHeld reports whether the start waits for undoOrphans.
func (m *Member) orphansHeld() bool {
	m.rs.mu.Lock()
	defer m.rs.mu.Unlock()
	return len(m.rs.orphans) > 0 || m.rs.orphanUndo
}

// maybeUndoOrphans (initializer) starts undoOrphans once every worker
// has a control link, if some came back frozen.
func (m *Member) maybeUndoOrphans(ctx context.Context) {
	if _, missing := m.othersLinked(); len(missing) > 0 {
		return
	}
	m.rs.mu.Lock()
	orphans := m.rs.orphans
	if len(orphans) == 0 || m.rs.busy || m.rs.orphanUndo {
		m.rs.mu.Unlock()
		return
	}
	m.rs.orphans, m.rs.orphanUndo, m.rs.busy = nil, true, true
	m.rs.mu.Unlock()
	go m.undoOrphans(ctx, orphans)
}

// undoOrphans (an initializer started again) undoes, on the workers that
// came back frozen in it, the rescale its crashed run had frozen and not
// committed, as that run would have (undoRescale: every one takes back
// what it sent and drops what came, then all go back to the old table,
// so what a worker parked goes to an old owner that has its state
// again). The cluster starts once it has ended (maybeStart); if it
// fails, every grow or shrink is refused from then on (wedged).
func (m *Member) undoOrphans(ctx context.Context, orphans map[string]uint64) {
	defer m.maybeStart()
	defer func() {
		m.rs.mu.Lock()
		m.rs.orphanUndo = false
		m.rs.mu.Unlock()
	}()
	defer m.endRescale()
	byID := map[uint64][]string{}
	for w, id := range orphans {
		byID[id] = append(byID[id], w)
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		names := slices.Sorted(slices.Values(byID[id]))
		via := map[string]*ctlConn{}
		err := m.undoRescale(ctx, id, rescale.Plan{}, names, m.teller(via), via)
		if err != nil && m.stopComing() {
			m.log.Warn("rescale undo after the initializer's restart cut short by the stop", "id", id, "workers", strings.Join(names, ","), "err", err)
			continue
		}
		if err != nil {
			why := fmt.Sprintf("grow or shrink %d, frozen when the initializer stopped, could not be undone (%v); the messages of its moving partitions wait parked and no grow or shrink can start: stop the cluster (cluster_shutdown) and start it again", id, err)
			m.log.Error("rescale undo after the initializer's restart failed", "id", id, "workers", strings.Join(names, ","), "err", err)
			fmt.Fprintf(m.cfg.Console, "AUTOSCALE: %s\n", why)
			m.rs.mu.Lock()
			m.rs.wedged = why
			m.rs.mu.Unlock()
			continue
		}
		fmt.Fprintf(m.cfg.Console, "AUTOSCALE: the grow or shrink under way when the initializer stopped was undone (%s): %d workers (%s), as before\n",
			strings.Join(names, ","), len(m.Workers()), strings.Join(m.Workers(), ","))
	}
}

// commitPoint names, for the beforePhase seam, the moment before
// commitRescale (every Commit acked).
const commitPoint = 0xff

// commitRescale (initializer) records the cluster a rescale makes, t,
// once every worker has its states and before any is told to release:
// its topology, and (OnRescaled) that no checkpoint from before it may
// be restored. Its releaseHere records the same again.
//
// It fails, committing nothing, if the control link to one of names is
// not the one it was prepared on (prep): that worker may have missed a
// state, or, back at this initializer, been sent the old cluster. From
// the check on, a worker that dials again is sent t (serveControl,
// under the same lock). It fails too if t cannot be recorded.
func (m *Member) commitRescale(t Topology, names []string, prep map[string]*ctlConn) error {
	if n := m.linkChanged(names, prep); n != "" {
		return fmt.Errorf("commit: the control link to %s changed during the rescale", n)
	}
	// (The floor first: an initializer started again with the new
	// cluster must not restore a checkpoint from before it. Left if the
	// rescale then fails: no harm, a checkpoint is taken after it.)
	if m.cfg.OnRescaled != nil {
		m.cfg.OnRescaled()
	}
	if err := m.saveTopologyAs(t); err != nil {
		m.saveTopology() // (the cluster as it is, again)
		return fmt.Errorf("commit: %w", err)
	}
	m.mu.Lock()
	if n := m.linkChangedLocked(names, prep); n != "" {
		m.mu.Unlock()
		m.saveTopology()
		return fmt.Errorf("commit: the control link to %s changed during the rescale", n)
	}
	m.committedTopo = &t
	m.mu.Unlock()
	return nil
}

// teller (initializer) returns a function that tells a rescale phase
// to workers on their control links, in order, recording each link in
// via; it fails at the first worker without a link or whose link broke
// (it is dropped at once).
func (m *Member) teller(via map[string]*ctlConn) func(names []string, r Rescale) error {
	return func(names []string, r Rescale) error {
		for _, n := range names {
			m.mu.Lock()
			c := m.ctl[n]
			m.mu.Unlock()
			if c == nil {
				return fmt.Errorf("no control link to %s", n)
			}
			via[n] = c
			if err := c.send(KindRescale, r.Encode()); err != nil {
				// The link is broken (send closed it): it is gone
				// now, not once its reader has seen it close.
				m.mu.Lock()
				if m.ctl[n] == c {
					delete(m.ctl, n)
				}
				m.mu.Unlock()
				return fmt.Errorf("tell %s: %w", n, err)
			}
		}
		return nil
	}
}

// linkChanged is the first of names whose control link is not the one in
// links ("" if none).
func (m *Member) linkChanged(names []string, links map[string]*ctlConn) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.linkChangedLocked(names, links)
}

func (m *Member) linkChangedLocked(names []string, links map[string]*ctlConn) string {
	for _, n := range names {
		if c := m.ctl[n]; c == nil || c != links[n] {
			return n
		}
	}
	return ""
}

// waitAcks (initializer) waits until every worker of names has acked
// phase of rescale id. It fails at the first ack that says why not, at
// phaseTimeout, or as soon as the control link to a worker it waits for
// is gone or is no longer the one it was told the phase on (via; the
// link of now for a name via lacks): it stopped or crashed, its ack will
// not come, and a process started again knows nothing of the rescale.
// Before the Release (Prepare, Freeze, Commit) the link of a worker that
// has acked counts too: the rescale cannot end without it, and the
// others may be waiting for it (an old worker's Prepare waits for its
// data links to the joiners). From the Release on, a worker that acked
// may go (a leaver stops once it has released).
func (m *Member) waitAcks(ctx context.Context, id uint64, phase uint8, names []string, via map[string]*ctlConn) error {
	everyLink := phase == PhasePrepare || phase == PhaseFreeze || phase == PhaseCommit
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	links := m.linksOf(names, via)
	take := func(a RescaleAck) error {
		if a.ID != id || a.Phase != phase {
			return nil
		}
		if a.Err != "" {
			return fmt.Errorf("%s: %s", PhaseName(phase), a.Err)
		}
		delete(want, a.from)
		return nil
	}
	timeout := time.NewTimer(phaseTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(linkCheckEvery)
	defer tick.Stop()
	for len(want) > 0 {
		select {
		case a := <-m.rs.acks:
			if err := take(a); err != nil {
				return err
			}
		case <-tick.C:
			// The links lost are read first, then the acks queued:
			// a link's reader queues every ack it read before its
			// link goes, so one that acked and then went counts.
			lost := m.lostLinks(links)
			for drained := false; !drained; {
				select {
				case a := <-m.rs.acks:
					if err := take(a); err != nil {
						return err
					}
				default:
					drained = true
				}
			}
			var gone []string
			for _, n := range lost {
				if want[n] || everyLink {
					gone = append(gone, n)
				}
			}
			if len(gone) > 0 {
				slices.Sort(gone)
				pending := slices.Sorted(maps.Keys(want))
				return &linksLostError{phase: phase, lost: gone, pending: pending}
			}
		case <-timeout.C:
			var missing []string
			for n := range want {
				missing = append(missing, n)
			}
			slices.Sort(missing)
			return fmt.Errorf("%s: no answer from %s within %v", PhaseName(phase), strings.Join(missing, ","), phaseTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// linksOf (initializer) is the control link each of names was told the
// phase on (via), or, for a name via lacks, its link of now.
func (m *Member) linksOf(names []string, via map[string]*ctlConn) map[string]*ctlConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	links := make(map[string]*ctlConn, len(names))
	for _, n := range names {
		if c, ok := via[n]; ok {
			links[n] = c
		} else {
			links[n] = m.ctl[n]
		}
	}
	return links
}

// lostLinks is the sorted names of links whose control link is gone or
// is no longer the one there was.
func (m *Member) lostLinks(links map[string]*ctlConn) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var lost []string
	for n, was := range links {
		if c := m.ctl[n]; c == nil || c != was {
			lost = append(lost, n)
		}
	}
	slices.Sort(lost)
	return lost
}

// whileLinked (initializer) runs here, its own part of phase, with a
// context that ends as soon as the control link of one of names is gone
// or replaced (via), and ends when here returns: here's waits may take
// it (the Prepare's for the data links to the joiners), never what must
// outlive the phase (the links themselves). Without one of names the
// rescale cannot end: the error is then the linksLostError.
func (m *Member) whileLinked(ctx context.Context, phase uint8, names []string, via map[string]*ctlConn, here func(context.Context) error) error {
	links := m.linksOf(names, via)
	hctx, cancel := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(linkCheckEvery)
		defer tick.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
				if lost := m.lostLinks(links); len(lost) > 0 {
					cancel(&linksLostError{phase: phase, lost: lost, pending: slices.Clone(names)})
					return
				}
			}
		}
	}()
	err := here(hctx)
	cause := context.Cause(hctx)
	cancel(nil)
	<-watched
	var lost *linksLostError
	if err != nil && errors.As(cause, &lost) {
		if errors.Is(err, context.Canceled) {
			return lost // (cut short by the loss: nothing more to say)
		}
		return fmt.Errorf("%w (while this worker's own part of it ran: %v)", lost, err)
	}
	return err
}

// linksLostError is waitAcks's failure when the control links of lost
// went before they acked (or, before the Release, at all); pending are
// all that had not acked then.
type linksLostError struct {
	phase         uint8
	lost, pending []string
}

func (e *linksLostError) Error() string {
	consequence := "the grow or shrink cannot go on without it"
	if e.phase == PhaseUndo || e.phase == PhaseUndoRelease {
		consequence = "its answer will not come" // (the undo tells it again once it is back)
	}
	return fmt.Sprintf("%s: lost the control link to %s (stopped or crashed): %s",
		PhaseName(e.phase), strings.Join(e.lost, ","), consequence)
}

// linkCheckEvery is how often waitAcks looks for lost control links.
const linkCheckEvery = 100 * time.Millisecond

// prepareHere makes the workers of the new cluster known (data links to
// joiners) and, on a worker that was already a member, waits for them.
// The links it makes live with ctx; the wait for them ends with
// waitCtx too (the initializer's ends when a participant is lost).
func (m *Member) prepareHere(ctx, waitCtx context.Context, r Rescale) error {
	return m.prepareAs(ctx, waitCtx, r, 0)
}

// prepareAs is prepareHere for the Prepare numbered n by a worker's
// control reader (0: the initializer's own, never aborted under it).
func (m *Member) prepareAs(ctx, waitCtx context.Context, r Rescale, n uint64) error {
	m.rs.mu.Lock()
	gone := n != 0 && n <= m.rs.aborted
	var unsettled uint64
	if p := m.rs.pending; p != nil && m.rs.frozen {
		unsettled = p.ID
	}
	m.rs.mu.Unlock()
	if gone {
		return fmt.Errorf("rescale %d was aborted before its preparation here", r.ID)
	}
	if unsettled != 0 {
		// (A worker back on a new link may be told a Prepare before
		// the Topology that settles the rescale it is frozen in.)
		return fmt.Errorf("this worker is still frozen in grow or shrink %d, not yet settled; try again", unsettled)
	}
	m.mu.Lock()
	var old []string
	for _, w := range m.workers {
		if w != m.cfg.Name {
			old = append(old, w)
		}
	}
	// New workers get slots after the others: the destinations the loop
	// uses now keep their numbers.
	m.addSlotsLocked(ctx, r.Topo.Workers, m.reachableLocked(r.Topo))
	m.mu.Unlock()
	m.rs.mu.Lock()
	m.rs.pending = &r
	m.rs.frozen, m.rs.committed, m.rs.releasing = false, false, false
	m.rs.importEr = nil
	m.rs.pieces = nil
	m.rs.exported, m.rs.imported, m.rs.undone = nil, nil, 0
	// (An initializer started again may number a rescale as an earlier
	// one: an undo run or settled release of that one must not answer
	// for the new one.)
	m.rs.undoRuns, m.rs.settled = nil, 0
	m.rs.oldMembers = old
	m.rs.fenced = map[string]bool{}
	m.rs.fencesDone = make(chan struct{})
	if len(old) == 0 {
		close(m.rs.fencesDone)
	}
	if n := len(m.rs.parked); n > 0 {
		m.rs.pending = nil
		m.rs.mu.Unlock()
		// (Left by a rescale that failed after its freeze: dropping them
		// would lose messages a source read.)
		return fmt.Errorf("%d batches of an earlier grow or shrink are still parked here", n)
	}
	if n != 0 && n <= m.rs.aborted {
		// The Abort came while this ran: undo what it made.
		m.rs.pending = nil
		m.rs.mu.Unlock()
		m.dropJoinerLinks(ctx)
		return fmt.Errorf("rescale %d was aborted during its preparation here", r.ID)
	}
	m.rs.mu.Unlock()
	lctx, cancel := context.WithTimeout(waitCtx, phaseTimeout)
	defer cancel()
	return m.LinksUp(lctx)
}

// flushLimit bounds the wait for the sinks before a partition's state
// leaves (a sink that is down would hold the frozen partitions).
const flushLimit = 5 * time.Second

// exportBudget is how long one export call may run: the processor
// loop's calls (the keys that do not move) run between two of them.
const exportBudget = 10 * time.Millisecond

// migrateHere sends the state of every partition this worker loses to
// its new owner (through the initializer) and drops it here.
func (m *Member) migrateHere(ctx context.Context, id uint64, plan rescale.Plan) error {
	moves := plan.Sends(m.cfg.Name)
	to := map[routing.PartitionID]string{}
	var parts []routing.PartitionID
	for _, mv := range moves {
		to[mv.Partition] = string(mv.To)
		parts = append(parts, mv.Partition)
	}
	sent := 0
	t0 := time.Now()
	if len(parts) > 0 && m.cfg.FlushSinks != nil {
		fctx, cancel := context.WithTimeout(ctx, flushLimit)
		err := m.cfg.FlushSinks(fctx)
		cancel()
		if err != nil {
			// Not a reason to fail the rescale: the outputs go out
			// later, possibly after the new owner's first ones.
			m.log.Warn("rescale: the sinks were not flushed before the state left", "err", err)
		}
	}
	for _, step := range m.cfg.States {
		rest := parts
		for len(rest) > 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("export state of %s: %w", step, err)
			}
			datas, err := m.cfg.ExportMany(step, rest, exportBudget)
			if err == nil && len(datas) == 0 {
				err = errors.New("no partition exported")
			}
			if err != nil {
				return fmt.Errorf("export state of %s: %w", step, err)
			}
			sts := make([]State, len(datas))
			for i, data := range datas {
				p := rest[i]
				sts[i] = State{ID: id, To: to[p], Step: step, Partition: uint32(p), Data: data}
			}
			m.rs.mu.Lock()
			m.rs.exported = append(m.rs.exported, sts...) // kept for an undo
			m.rs.mu.Unlock()
			for _, st := range sts {
				for _, piece := range st.Pieces(m.cfg.StateChunk) {
					if err := m.forwardState(ctx, piece); err != nil {
						return err
					}
				}
				sent += len(st.Data)
			}
			rest = rest[len(datas):]
		}
	}
	m.log.Info("rescale: state sent", "partitions", len(moves), "bytes", sent, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// forwardState takes one partition's state (or a piece of it) towards
// its new owner: the owner puts it together and imports it; the
// initializer passes it on; another worker sends it to the initializer.
func (m *Member) forwardState(ctx context.Context, st State) error {
	if st.To == m.cfg.Name {
		return m.assemble(st)
	}
	m.mu.Lock()
	var c *ctlConn
	if m.cfg.Initializer {
		c = m.ctl[st.To]
	} else {
		c = m.toInit
	}
	m.mu.Unlock()
	if c == nil {
		return fmt.Errorf("no control link towards %s for partition %d of %s", st.To, st.Partition, st.Step)
	}
	return c.send(KindState, st.Encode())
}

// pieceKey names a partition's state arriving in pieces.
type pieceKey struct {
	id        uint64
	step      string
	partition uint32
}

// assemble queues a partition's state for import once all of it has
// arrived here: whole, or the pieces of it in order (they come one
// after the other on one path). A piece out of order is an error.
func (m *Member) assemble(st State) error {
	if st.Offset == 0 && uint64(len(st.Data)) == st.Total {
		m.queueImport(st)
		return nil
	}
	key := pieceKey{st.ID, st.Step, st.Partition}
	m.rs.mu.Lock()
	if st.ID == m.rs.undone {
		m.rs.mu.Unlock()
		m.log.Warn("rescale: a state piece of a grow or shrink that was undone is dropped", "id", st.ID, "step", st.Step, "partition", st.Partition)
		return nil
	}
	buf, ok := m.rs.pieces[key]
	if uint64(len(buf)) != st.Offset {
		m.rs.mu.Unlock()
		return fmt.Errorf("state of partition %d of %s: a piece at byte %d after %d bytes (a piece was lost or came out of order)", st.Partition, st.Step, st.Offset, len(buf))
	}
	if !ok {
		buf = make([]byte, 0, min(st.Total, 1<<28))
	}
	buf = append(buf, st.Data...)
	if uint64(len(buf)) < st.Total {
		if m.rs.pieces == nil {
			m.rs.pieces = map[pieceKey][]byte{}
		}
		m.rs.pieces[key] = buf
		m.rs.mu.Unlock()
		return nil
	}
	delete(m.rs.pieces, key)
	m.rs.mu.Unlock()
	st.Offset, st.Data = 0, buf
	m.queueImport(st)
	return nil
}

// queueImport hands a state that arrived for this worker to the
// importer, which imports what has arrived in one call at a time.
func (m *Member) queueImport(st State) {
	m.rs.mu.Lock()
	if st.ID == m.rs.undone {
		m.rs.mu.Unlock()
		m.log.Warn("rescale: a state of a grow or shrink that was undone is dropped", "id", st.ID, "step", st.Step, "partition", st.Partition)
		return
	}
	m.rs.imported = append(m.rs.imported, State{ID: st.ID, Step: st.Step, Partition: st.Partition})
	m.rs.imports = append(m.rs.imports, st)
	m.rs.importing.Add(1)
	start := !m.rs.importer
	m.rs.importer = true
	m.rs.mu.Unlock()
	if start {
		go m.importLoop()
	}
}

// importLoop imports queued states until none is left.
func (m *Member) importLoop() {
	for {
		m.rs.mu.Lock()
		batch := m.rs.imports
		m.rs.imports = nil
		if len(batch) == 0 {
			m.rs.importer = false
			m.rs.mu.Unlock()
			return
		}
		m.rs.mu.Unlock()
		left, err := m.importStates(batch, func(n int) {
			for range n {
				m.rs.importing.Done()
			}
		})
		if err != nil {
			m.log.Error("rescale: state not imported", "partitions", left, "err", err)
			m.rs.mu.Lock()
			if m.rs.importEr == nil {
				m.rs.importEr = err
			}
			m.rs.mu.Unlock()
			for range left {
				m.rs.importing.Done()
			}
		}
	}
}

// importStates imports sts into the processor, in calls of about
// exportBudget each (the loop's own calls run in between), telling done
// how many each call took; at the first failure it returns how many were
// left (not imported) and the error.
func (m *Member) importStates(sts []State, done func(n int)) (left int, err error) {
	steps := make([]string, len(sts))
	parts := make([]routing.PartitionID, len(sts))
	datas := make([][]byte, len(sts))
	for i, st := range sts {
		steps[i], parts[i], datas[i] = st.Step, routing.PartitionID(st.Partition), st.Data
	}
	for len(parts) > 0 {
		n, err := m.cfg.ImportMany(steps, parts, datas, exportBudget)
		if err == nil && n == 0 {
			err = errors.New("no partition imported")
		}
		if err != nil {
			return len(parts), err
		}
		steps, parts, datas = steps[n:], parts[n:], datas[n:]
		if done != nil {
			done(n)
		}
	}
	return 0, nil
}

// freezeHere installs the freeze table (moving partitions park), sends
// a fence to every peer in the loop's order, waits until the fences of
// the other old members have been processed here (or fenceCtx ends: the
// initializer's ends when a worker it waits for is lost), then sends the
// state of the partitions this worker loses (a send is not cut short
// but by ctx: what left is then known, for an undo).
func (m *Member) freezeHere(ctx, fenceCtx context.Context, id uint64, plan rescale.Plan) error {
	if !m.Started() {
		return nil // a joiner: no loop has run, nothing to park or send
	}
	own := m.freezeOwnership(plan, true)
	if err := m.installWithin(ctx, own, func() []work.Item {
		m.sendFences(id)
		return nil
	}); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	m.rs.mu.Lock()
	done := m.rs.fencesDone
	m.rs.mu.Unlock()
	select {
	case <-done:
	case <-time.After(phaseTimeout):
		return fmt.Errorf("freeze: the fences of %s were not processed within %v", strings.Join(m.missingFences(), ","), phaseTimeout)
	case <-fenceCtx.Done():
		return fmt.Errorf("freeze: waiting for the fences of %s: %w", strings.Join(m.missingFences(), ","), fenceCtx.Err())
	}
	if len(plan.Sends(m.cfg.Name)) > 0 {
		// Everything routed here by the old table has run: from the
		// next message on, the partitions this worker loses park too,
		// and their states stay as they are exported.
		if err := m.installWithin(ctx, m.freezeOwnership(plan, false), nil); err != nil {
			return fmt.Errorf("freeze: park the partitions that leave: %w", err)
		}
	}
	return m.migrateHere(ctx, id, plan)
}

// installWithin installs a table of the freeze, waiting for this
// worker's loop at most phaseTimeout (freezeLimit in tests): a loop held
// up for longer (behind a sink that takes its output slowly, or user
// code that takes long) fails the freeze, which is undone, rather than
// holding the cluster frozen. A table already queued is applied when the
// loop gets to it, before the undo's own, which routes again what it
// parked; the fences it sends then are ignored by workers whose undo has
// begun, and counted by one still in the freeze, which then sends its
// states, taken back by the undo like any others.
func (m *Member) installWithin(ctx context.Context, own work.Ownership, then func() []work.Item) error {
	limit := phaseTimeout
	if m.freezeLimit > 0 {
		limit = m.freezeLimit
	}
	ictx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := m.cfg.Install(ictx, own, then)
	if err != nil && ictx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("this worker's processor loop did not take the table within %v (its sinks may take its output too slowly, or a call into the application takes that long; ask again once the receivers keep up): %w", limit, err)
	}
	return err
}

// freezeOwnership is this worker's table during the freeze: partitions
// that keep their owner route as before, moving ones park (holdDest of
// their new owner), but with keepLost those this worker loses still run
// here (until their states leave); stateless work is dealt to the
// workers that stay.
func (m *Member) freezeOwnership(plan rescale.Plan, keepLost bool) work.Ownership {
	m.mu.Lock()
	defer m.mu.Unlock()
	own := work.Ownership{Epoch: plan.New.Epoch(), Owner: make([]work.Dest, plan.Old.Partitions())}
	dest := func(w routing.WorkerName) work.Dest {
		if string(w) == m.cfg.Name {
			return work.Here
		}
		return work.Dest(m.index[string(w)] + 1)
	}
	for p := range own.Owner {
		from, to := plan.Old.Owner(routing.PartitionID(p)), plan.New.Owner(routing.PartitionID(p))
		switch {
		case from == to, keepLost && string(from) == m.cfg.Name:
			own.Owner[p] = dest(from)
		default:
			own.Owner[p] = holdDest(m.index[string(to)])
		}
	}
	var stay []string
	for _, w := range m.workers {
		if !slices.Contains(plan.Leaving, w) {
			stay = append(stay, w)
		}
	}
	if len(stay) > 1 {
		for _, w := range stay {
			own.Spread = append(own.Spread, dest(routing.WorkerName(w)))
		}
	}
	return own
}

// sendFences sends a fence on the link to every other worker; on the
// loop's goroutine, right after the freeze table was installed, so it
// follows everything routed by the old table.
func (m *Member) sendFences(id uint64) {
	m.mu.Lock()
	outs := slices.Clone(m.outs)
	m.mu.Unlock()
	for _, o := range outs {
		if o != nil {
			o.Send(context.Background(), work.Envelopes{Data: FenceMarker(id)})
		}
	}
}

// fenceProcessed records that everything from peer before its fence has
// been processed here (on the loop's goroutine).
func (m *Member) fenceProcessed(peer string, id uint64) {
	m.rs.mu.Lock()
	defer m.rs.mu.Unlock()
	if m.rs.pending == nil {
		// (A joiner's: it waits for no fence, and its grow may have
		// ended here before an old worker's fence came.)
		m.log.Debug("rescale: a fence of a grow or shrink not under way here ignored", "peer", peer, "rescale", id)
		return
	}
	if m.rs.pending.ID != id {
		// (Of a rescale that was undone, sent late by a freeze cut
		// short: not this one's.)
		m.log.Info("rescale: a fence of another grow or shrink ignored", "peer", peer, "rescale", id, "under_way", m.rs.pending.ID)
		return
	}
	if m.rs.fenced == nil || m.rs.fenced[peer] || !slices.Contains(m.rs.oldMembers, peer) {
		return
	}
	m.rs.fenced[peer] = true
	if len(m.rs.fenced) == len(m.rs.oldMembers) {
		close(m.rs.fencesDone)
	}
}

func (m *Member) missingFences() []string {
	m.rs.mu.Lock()
	defer m.rs.mu.Unlock()
	var out []string
	for _, w := range m.rs.oldMembers {
		if !m.rs.fenced[w] {
			out = append(out, w)
		}
	}
	return out
}

// park keeps envelopes bound for a moving partition until the release
// (Route's; on the loop's goroutine).
func (m *Member) park(e work.Envelopes) {
	e.Data = slices.Clone(e.Data)
	m.rs.mu.Lock()
	m.rs.parked = append(m.rs.parked, e)
	m.rs.mu.Unlock()
}

// maxParked bounds what a worker parks before its sources are held.
const maxParked = MaxPendingBatches

// parkedFull returns, while maxParked batches or more are parked here, a
// channel that closes once fewer are; nil otherwise.
func (m *Member) parkedFull() <-chan struct{} {
	m.rs.mu.Lock()
	defer m.rs.mu.Unlock()
	if len(m.rs.parked) < maxParked {
		return nil
	}
	if m.rs.parkedRoom == nil {
		m.rs.parkedRoom = make(chan struct{})
	}
	return m.rs.parkedRoom
}

// parkedShrunkLocked wakes those waiting for room among the parked
// batches, if there is; m.rs.mu held.
func (m *Member) parkedShrunkLocked() {
	if m.rs.parkedRoom != nil && len(m.rs.parked) < maxParked {
		close(m.rs.parkedRoom)
		m.rs.parkedRoom = nil
	}
}

// commitHere waits until every state sent here has been imported.
func (m *Member) commitHere() error {
	m.rs.importing.Wait()
	m.rs.mu.Lock()
	defer m.rs.mu.Unlock()
	if m.rs.importEr == nil && len(m.rs.pieces) > 0 {
		return fmt.Errorf("the state of %d partitions arrived here incomplete", len(m.rs.pieces))
	}
	return m.rs.importEr
}

// releaseHere installs the new cluster: the new table, applied in the
// loop's order together with sending what was parked for other workers
// to them; then the members of the new cluster (links to leavers close).
// What was parked for this worker itself is run in slices between new
// input (drainParked), its partitions still parking meanwhile so that
// their messages keep their order; the new table is complete once that
// is done. A leaver owns nothing after it.
func (m *Member) releaseHere(ctx context.Context, r Rescale) error {
	table, err := tableOf(r.Topo, m.cfg.Partitions)
	if err != nil {
		return err
	}
	leaving := slices.Contains(r.Leaving, m.cfg.Name)
	m.mu.Lock()
	old := m.table
	m.table = table
	me := m.index[m.cfg.Name]
	m.mu.Unlock()
	if m.Started() {
		final := work.OwnershipOf(table, routing.WorkerName(m.cfg.Name), func(w routing.WorkerName) work.Dest { return m.Dest(string(w)) })
		own := final
		var mine []int
		if old.Partitions() == table.Partitions() {
			for _, mv := range routing.Moves(old, table) {
				if string(mv.To) == m.cfg.Name {
					mine = append(mine, int(mv.Partition))
				}
			}
		}
		if len(mine) == 0 {
			if err := m.cfg.Install(ctx, final, func() []work.Item { return m.unpark(true) }); err != nil {
				return fmt.Errorf("release: %w", err)
			}
		} else {
			own.Owner = slices.Clone(final.Owner)
			for _, p := range mine {
				own.Owner[p] = holdDest(me)
			}
			done := make(chan error, 1)
			if err := m.cfg.Install(ctx, own, func() []work.Item {
				m.unpark(false)
				return m.drainParked(ctx, final, done)
			}); err != nil {
				return fmt.Errorf("release: %w", err)
			}
			select {
			case err := <-done:
				if err != nil {
					return fmt.Errorf("release: %w", err)
				}
			case <-ctx.Done():
				return ctx.Err()
			case <-m.cfg.LoopEnded:
				select {
				case err := <-done:
					if err != nil {
						return fmt.Errorf("release: %w", err)
					}
				default:
					return fmt.Errorf("release: what was parked here was not run: %w", ErrLoopEnded)
				}
			}
		}
	}
	m.mu.Lock()
	if leaving {
		// It keeps its links to the workers that stay until it stops.
		m.workers = append([]string{m.cfg.Name}, r.Topo.Workers...)
	} else {
		m.installWorkersLocked(ctx, r.Topo.Workers, m.reachableLocked(r.Topo))
	}
	m.mu.Unlock()
	if !leaving {
		m.saveTopology()
	}
	m.rs.mu.Lock()
	m.rs.leaving = leaving
	m.rs.pending = nil
	m.rs.frozen = false
	m.rs.committed = false
	m.rs.releasing = false
	// (What an undo would have given back is not needed any more.)
	m.rs.exported, m.rs.imported = nil, nil
	m.rs.freezing, m.rs.stopFreeze = nil, nil
	m.rs.mu.Unlock()
	return nil
}

// drainParkedSlice is how many parked messages run between two turns of
// new input while the parked backlog drains.
const drainParkedSlice = 2048

// drainParked (on the loop's goroutine) returns the next slice of what is
// parked for this worker, to run now, and queues the next step behind
// the input that has arrived meanwhile; once nothing is left it installs
// the final table (whose installation runs whatever was parked in
// between, first) and reports on done.
func (m *Member) drainParked(ctx context.Context, final work.Ownership, done chan<- error) []work.Item {
	m.rs.mu.Lock()
	var slice []work.Item
	n := 0
	for len(m.rs.parked) > 0 && n < drainParkedSlice {
		e := m.rs.parked[0]
		m.rs.parked = m.rs.parked[1:]
		e.Dest = work.Here
		slice = append(slice, work.ResumeItem(e))
		n += e.Count
	}
	left := len(m.rs.parked)
	m.parkedShrunkLocked()
	m.rs.mu.Unlock()
	if left == 0 {
		go func() {
			done <- m.cfg.Install(ctx, final, func() []work.Item { return m.unpark(true) })
		}()
	} else {
		go func() {
			if err := m.cfg.DeliverCall(ctx, func() []work.Item { return m.drainParked(ctx, final, done) }); err != nil {
				done <- err
			}
		}()
	}
	return slice
}

// unpark sends what was parked for other workers to them, in the order it
// was made; what is for this worker stays parked, or with mine comes back
// as items to run next. On the loop's goroutine, right after a table was
// installed.
func (m *Member) unpark(mine bool) []work.Item {
	m.rs.mu.Lock()
	parked := m.rs.parked
	m.rs.parked = nil
	m.parkedShrunkLocked()
	m.rs.mu.Unlock()
	var here []work.Item
	var keep []work.Envelopes
	for _, e := range parked {
		slot, _ := heldSlot(e.Dest)
		m.mu.Lock()
		var name string
		var o *outbound
		if slot >= 0 && slot < len(m.slots) {
			name, o = m.slots[slot], m.outs[slot]
		}
		m.mu.Unlock()
		switch {
		case name == m.cfg.Name && mine:
			e.Dest = work.Here
			here = append(here, work.ResumeItem(e))
		case name == m.cfg.Name:
			keep = append(keep, e)
		case o != nil:
			e.Dest = work.Dest(slot + 1)
			o.Send(context.Background(), e)
		default:
			m.log.Error("rescale: parked envelopes for a worker without a link are lost", "slot", slot, "worker", name, "count", e.Count)
		}
	}
	if len(keep) > 0 {
		m.rs.mu.Lock()
		m.rs.parked = append(keep, m.rs.parked...)
		m.rs.mu.Unlock()
	}
	return here
}

// undoRescale (initializer) undoes rescale id, which failed after its
// freeze and before any Release: the joiners are told to go; every old
// worker (others: those but this one) takes its states back (Undo), then
// the old table (UndoRelease). An old worker without a control link (it
// died) is waited for, up to comeBackWait: started again, it knows
// nothing of the rescale (its keys are empty, as after any restart; it
// is not started until the rescale has ended, so it processes nothing by
// the old table while others still hold the moving partitions), and the
// others take back what they sent. One that does not come back fails the
// undo before any worker is told: nothing is undone and the moving
// partitions stay parked. A worker lost during the undo is waited for in
// the same way and told its phase again (each phase is told at most
// undoRounds times in all; a worker runs it once, see undoOnce); one
// not back in time fails the undo with the workers told before having
// taken their states back (still parked: wedged).
func (m *Member) undoRescale(ctx context.Context, id uint64, plan rescale.Plan, others []string, send func([]string, Rescale) error, via map[string]*ctlConn) error {
	for _, n := range plan.Joining {
		if err := send([]string{n}, Rescale{ID: id, Phase: PhaseAbort}); err != nil {
			m.log.Warn("rescale undo: a joiner was not told to go", "id", id, "worker", n, "err", err)
		}
	}
	// Each undo phase is told again, once they are back, to the workers
	// not done when one was lost while it ran (or when it was sent): a
	// worker that runs it or ran it reports that run's result
	// (undoOnce); one started again has nothing to take back.
	phase := func(ph uint8, here func(context.Context) error) error {
		todo := others
		for round := 1; ; round++ {
			if err := m.awaitBack(ctx, id, todo); err != nil {
				return err
			}
			// (send fails only for a link that is gone or going:
			// the next round waits for it.)
			err := send(todo, Rescale{ID: id, Phase: ph})
			if err == nil && here != nil {
				if err := here(ctx); err != nil {
					return err
				}
				here = nil
			}
			if err == nil {
				err = m.waitAcks(ctx, id, ph, todo, via)
				if err == nil {
					return nil
				}
				var lost *linksLostError
				if !errors.As(err, &lost) {
					return err
				}
				todo = lost.pending
			}
			if round == undoRounds {
				return err
			}
			m.log.Warn("rescale undo: a worker was lost; telling it again once it is back", "id", id, "phase", PhaseName(ph), "err", err)
		}
	}
	if err := phase(PhaseUndo, func(ctx context.Context) error { return m.undoHere(ctx, id) }); err != nil {
		return err
	}
	return phase(PhaseUndoRelease, m.undoReleaseHere)
}

// undoRounds bounds how often one undo phase is told again to workers
// lost while it ran.
const undoRounds = 3

// awaitBack (initializer) waits, for the undo of rescale id, until each
// of names has a control link: a worker that crashed comes back when it
// is started again with its command line (spec 3.9), knowing nothing of
// the rescale (its keys restart empty, as after any such restart, and
// the others take back what they sent it); one whose link dropped and
// came back takes part as it is. It fails for one not back within
// comeBackWait.
func (m *Member) awaitBack(ctx context.Context, id uint64, names []string) error {
	gone := m.unlinked(names)
	if len(gone) == 0 {
		return nil
	}
	limit := comeBackWait
	if m.comeBack > 0 {
		limit = m.comeBack
	}
	fmt.Fprintf(m.cfg.Console, "AUTOSCALE: waiting up to %v for %s to come back, to undo the failed grow or shrink\n",
		limit, strings.Join(gone, ","))
	m.log.Warn("rescale undo: waiting for workers to come back", "id", id, "workers", strings.Join(gone, ","), "limit", limit)
	if m.onAwaitBack != nil {
		m.onAwaitBack(gone)
	}
	if still := m.waitLinked(ctx, gone, limit); len(still) > 0 {
		if m.stopComing() {
			return fmt.Errorf("no control link to %s, and the cluster is stopping", strings.Join(still, ","))
		}
		return fmt.Errorf("no control link to %s (not back within %v): what it sent or was sent cannot be put back", strings.Join(still, ","), limit)
	}
	return nil
}

// undoRun is one run of an undo phase on a worker.
type undoRun struct {
	id   uint64
	done chan struct{} // closed when it has ended, err set
	err  error
}

// undoOnce runs the undo phase r (Undo or UndoRelease) once per rescale:
// a repeat of it (the initializer tells a phase again to a worker it lost
// while it ran, and the slow ones with it) waits for the first run and
// reports its result rather than running beside it.
func (m *Member) undoOnce(ctx context.Context, r Rescale, run func() error) error {
	m.rs.mu.Lock()
	if u := m.rs.undoRuns[r.Phase]; u != nil && u.id == r.ID {
		m.rs.mu.Unlock()
		select {
		case <-u.done:
			return u.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	u := &undoRun{id: r.ID, done: make(chan struct{})}
	if m.rs.undoRuns == nil {
		m.rs.undoRuns = map[uint8]*undoRun{}
	}
	m.rs.undoRuns[r.Phase] = u
	m.rs.mu.Unlock()
	u.err = run()
	close(u.done)
	return u.err
}

// comeBackWait bounds how long an undo waits for an old worker whose
// control link was lost (it crashed) to be started again.
const comeBackWait = 60 * time.Second

// unlinked returns those of names with no control link.
func (m *Member) unlinked(names []string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var gone []string
	for _, n := range names {
		if m.ctl[n] == nil {
			gone = append(gone, n)
		}
	}
	return gone
}

// waitLinked waits up to limit until each of names has a control link
// and returns those that still have none; it gives up at once when a
// stop of the cluster has begun (they will not come).
func (m *Member) waitLinked(ctx context.Context, names []string, limit time.Duration) []string {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(linkCheckEvery)
	defer tick.Stop()
	for {
		still := m.unlinked(names)
		if len(still) == 0 || time.Now().After(deadline) || m.stopComing() {
			return still
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return still
		}
	}
}

// undoHere gives back what this worker's part in rescale id moved: once
// its freeze has ended (cut short), the partitions it imported are
// dropped and those it sent are imported again. The moving partitions
// stay parked meanwhile.
func (m *Member) undoHere(ctx context.Context, id uint64) error {
	m.rs.mu.Lock()
	m.rs.undone = id
	stop, freezing := m.rs.stopFreeze, m.rs.freezing
	m.rs.mu.Unlock()
	if stop != nil {
		stop()
	}
	if freezing != nil {
		select {
		case <-freezing:
		case <-time.After(phaseTimeout):
			return fmt.Errorf("undo: the freeze here did not end within %v", phaseTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.rs.importing.Wait() // what arrived before the undo is in; later states are dropped
	m.rs.mu.Lock()
	sent, got := m.rs.exported, m.rs.imported
	m.rs.exported, m.rs.imported, m.rs.pieces = nil, nil, nil
	m.rs.importEr = nil
	m.rs.mu.Unlock()
	dropped := 0
	for _, step := range m.cfg.States {
		var parts []routing.PartitionID
		for _, st := range got {
			if st.Step == step && !slices.Contains(parts, routing.PartitionID(st.Partition)) {
				parts = append(parts, routing.PartitionID(st.Partition))
			}
		}
		if len(parts) == 0 {
			continue
		}
		if m.cfg.DropMany == nil {
			return fmt.Errorf("undo: %d partitions of %s came here and cannot be dropped", len(parts), step)
		}
		if err := m.cfg.DropMany(step, parts); err != nil {
			return fmt.Errorf("undo: drop the imported state of %s: %w", step, err)
		}
		dropped += len(parts)
	}
	if left, err := m.importStates(sent, nil); err != nil {
		// What was not imported again stays kept (the only copy).
		m.rs.mu.Lock()
		m.rs.exported = append(sent[len(sent)-left:len(sent):len(sent)], m.rs.exported...)
		m.rs.mu.Unlock()
		return fmt.Errorf("undo: import again the state of %d partitions this worker sent: %w", left, err)
	}
	m.log.Info("rescale undo: states given back", "id", id, "imported_again", len(sent), "dropped", dropped)
	return nil
}

// undoReleaseHere installs this worker's old table again and, in the
// same step of its loop, runs what it parked through the runner routed
// again (each record goes to its partition's old owner, or runs here);
// the links made for joiners go.
func (m *Member) undoReleaseHere(ctx context.Context) error {
	if m.Started() {
		m.mu.Lock()
		table := m.table
		m.mu.Unlock()
		own := work.OwnershipOf(table, routing.WorkerName(m.cfg.Name), func(w routing.WorkerName) work.Dest { return m.Dest(string(w)) })
		if err := m.cfg.Install(ctx, own, m.rerouteParked); err != nil {
			return fmt.Errorf("undo: %w", err)
		}
	}
	m.mu.Lock()
	formed := m.workers != nil
	m.mu.Unlock()
	if formed { // (a worker back from a restart may not have its topology yet)
		m.dropJoinerLinks(ctx)
	}
	m.rs.mu.Lock()
	m.rs.pending = nil
	m.rs.frozen = false
	m.rs.committed = false
	m.rs.releasing = false
	m.rs.freezing, m.rs.stopFreeze = nil, nil
	m.rs.mu.Unlock()
	return nil
}

// rerouteParked returns everything parked here, in the order it was
// parked, as batches to run here routed again (on the loop's goroutine,
// right after the old table was installed).
func (m *Member) rerouteParked() []work.Item {
	m.rs.mu.Lock()
	parked := m.rs.parked
	m.rs.parked = nil
	m.parkedShrunkLocked()
	m.rs.mu.Unlock()
	items := make([]work.Item, 0, len(parked))
	for _, e := range parked {
		e.Dest, e.Reroute = work.Here, true
		items = append(items, work.ResumeItem(e))
	}
	return items
}

// abortHere forgets a rescale that did not freeze.
func (m *Member) abortHere(plan rescale.Plan) {
	m.dropJoinerLinks(context.Background())
	m.rs.mu.Lock()
	m.rs.pending = nil
	m.rs.frozen = false
	m.rs.committed = false
	m.rs.releasing = false
	m.rs.mu.Unlock()
}

// dropJoinerLinks makes the members the workers again: the slots and
// links a Prepare made for joiners go.
func (m *Member) dropJoinerLinks(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.installWorkersLocked(ctx, slices.Clone(m.workers), slices.Clone(m.dataAddrs))
}

// rescaleFrame handles the control frames of rescales (on any worker).
func (m *Member) rescaleFrame(ctx context.Context, c *ctlConn, f Frame) error {
	switch f.Kind {
	case KindRescaleAck:
		a, err := DecodeRescaleAck(f.Payload)
		if err != nil {
			return err
		}
		a.from = c.name
		select {
		case m.rs.acks <- a:
		default:
			m.log.Warn("rescale ack dropped", "from", c.name)
		}
	case KindState:
		st, err := DecodeState(f.Payload)
		if err != nil {
			return err
		}
		st.Data = slices.Clone(st.Data)
		if err := m.forwardState(ctx, st); err != nil {
			m.log.Error("rescale: state not delivered", "to", st.To, "step", st.Step, "partition", st.Partition, "err", err)
			m.rs.mu.Lock()
			if m.rs.importEr == nil {
				m.rs.importEr = err
			}
			m.rs.mu.Unlock()
		}
	case KindShrink:
		req, err := DecodeShrinkRequest(f.Payload)
		if err != nil {
			return err
		}
		reply := "Cannot shrink: only the initializer coordinates"
		if m.cfg.Initializer {
			reply = m.startShrink(ctx, req)
		}
		return c.send(KindShrinkReply, Text(reply))
	case KindShrinkReply:
		reply, err := DecodeText(f.Payload)
		if err != nil {
			return err
		}
		select {
		case m.rs.shrinkReply <- reply:
		default:
		}
	case KindRescale:
		r, err := DecodeRescale(f.Payload)
		if err != nil {
			return err
		}
		m.workerPhase(ctx, c, r)
	}
	return nil
}

// workerPhase does one phase of a rescale on a worker other than the
// initializer, and acks it (a joiner acks Prepare by its Ready).
func (m *Member) workerPhase(ctx context.Context, c *ctlConn, r Rescale) {
	ack := func(err error) {
		a := RescaleAck{ID: r.ID, Phase: r.Phase}
		if err != nil {
			a.Err = fmt.Sprintf("%s: %v", m.cfg.Name, err)
			m.log.Error("rescale phase failed", "phase", PhaseName(r.Phase), "err", err)
		}
		c.send(KindRescaleAck, a.Encode())
	}
	switch r.Phase {
	case PhasePrepare:
		m.mu.Lock()
		formed := m.workers != nil
		m.mu.Unlock()
		if !formed { // a joiner: this is its cluster
			m.rs.mu.Lock()
			m.rs.pending = &r
			m.rs.frozen, m.rs.committed, m.rs.releasing = false, false, false
			m.rs.fenced = map[string]bool{}
			m.rs.mu.Unlock()
			m.setTopology(ctx, r.Topo)
			return // it says Ready once its sinks and links are up
		}
		m.rs.mu.Lock()
		m.rs.prepared++
		n := m.rs.prepared
		m.rs.mu.Unlock()
		go func() {
			err := m.prepareAs(ctx, ctx, r, n)
			if m.beforePrepareAck != nil {
				m.beforePrepareAck()
			}
			ack(err)
		}()
	case PhaseFreeze:
		m.rs.mu.Lock()
		p := m.rs.pending
		if p != nil && p.ID == r.ID {
			m.rs.frozen = true
		}
		m.rs.mu.Unlock()
		if p == nil || p.ID != r.ID {
			ack(fmt.Errorf("freeze for rescale %d, which this worker was not prepared for", r.ID))
			return
		}
		// (Set here, in the control link's order: an Undo after this
		// Freeze finds it.)
		fctx, stop := context.WithCancel(ctx)
		freezing := make(chan struct{})
		m.rs.mu.Lock()
		m.rs.freezing, m.rs.stopFreeze = freezing, stop
		m.rs.mu.Unlock()
		go func() {
			defer stop()
			plan, err := m.planOf(*p)
			if err == nil {
				err = m.freezeHere(fctx, fctx, r.ID, plan)
			}
			close(freezing)
			ack(err)
		}()
	case PhaseCommit:
		// On the reader's goroutine: every State before this Commit has
		// been imported.
		err := m.commitHere()
		if err == nil {
			m.rs.mu.Lock()
			if p := m.rs.pending; p != nil && p.ID == r.ID {
				m.rs.committed = true
			}
			m.rs.mu.Unlock()
		}
		ack(err)
	case PhaseRelease:
		m.rs.mu.Lock()
		p := m.rs.pending
		m.rs.mu.Unlock()
		m.rs.mu.Lock()
		settled := p == nil && r.ID == m.rs.settled
		if p != nil && p.ID == r.ID {
			m.rs.releasing = true // (settleOrphaned leaves it to this run)
		}
		m.rs.mu.Unlock()
		if settled {
			ack(nil) // completed when this worker came back (settleOrphaned)
			return
		}
		if p == nil || p.ID != r.ID {
			ack(fmt.Errorf("release for rescale %d, which this worker was not prepared for", r.ID))
			return
		}
		go func() {
			err := m.releaseHere(ctx, *p)
			if err == nil && m.cfg.OnRescaleStep != nil {
				m.cfg.OnRescaleStep("rescale-released")
			}
			ack(err)
			if err == nil {
				m.afterRelease()
			}
		}()
	case PhaseUndo:
		go func() { ack(m.undoOnce(ctx, r, func() error { return m.undoHere(ctx, r.ID) })) }()
	case PhaseUndoRelease:
		go func() { ack(m.undoOnce(ctx, r, func() error { return m.undoReleaseHere(ctx) })) }()
	case PhaseAbort:
		m.rs.mu.Lock()
		m.rs.aborted = m.rs.prepared
		if p := m.rs.pending; p != nil && m.rs.frozen && p.ID != r.ID {
			// Another rescale, refused here for the one this worker
			// is still frozen in (prepareAs): that one stays, for
			// its Topology to settle (settleOrphaned).
			m.rs.mu.Unlock()
			return
		}
		m.rs.pending = nil
		m.rs.frozen = false
		m.rs.committed = false
		m.rs.releasing = false
		m.rs.mu.Unlock()
		m.mu.Lock()
		formed := m.workers != nil
		m.mu.Unlock()
		if formed && m.Started() {
			m.dropJoinerLinks(ctx) // a later rescale would wait for them
		}
		if !m.Started() && m.cfg.Joining > 0 && !m.restarted {
			// (A joiner told before its Prepare came has no
			// topology yet: it goes all the same. A worker back
			// from a restart, not started until the rescale ends,
			// stays.)
			select {
			case m.rs.joinFailed <- &JoinError{Reason: "the cluster could not take this worker (the grow was aborted; see the initializer's log)"}:
			default:
			}
		}
	}
}

// afterRelease (a worker other than the initializer) goes on once its
// release of a rescale has ended: a joiner starts processing, a leaver
// stops, the others record the rescale (OnRescaled).
func (m *Member) afterRelease() {
	if !m.Started() {
		m.markStarted() // a joiner: the cluster processes with it now
	}
	if m.rs.isLeaving() {
		m.log.Info("left the cluster: stopping")
		if m.cfg.OnLeave != nil {
			m.cfg.OnLeave()
		}
	} else if m.cfg.OnRescaled != nil {
		m.cfg.OnRescaled()
	}
}

// orphaned (a worker whose control link to the initializer is gone)
// reports what it holds of the rescale under way: frozen, its moving
// partitions are parked and their states may have left; committed, it
// has every state it takes in (the initializer may have recorded the new
// cluster: commitRescale).
func (s *rescaleState) orphaned() (frozen, committed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending != nil && s.frozen, s.pending != nil && s.frozen && s.committed
}

// frozenIn is the rescale this worker is frozen in and its table's
// epoch (0, 0: none, or its release has begun), for its Join when it
// dials the initializer again.
func (s *rescaleState) frozenIn() (id, epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil || !s.frozen || s.releasing {
		return 0, 0
	}
	return s.pending.ID, s.pending.Topo.Epoch
}

// settleOrphaned (a worker back at the initializer, on its control
// reader before anything else the initializer says) completes a rescale
// left frozen here when its control link to the initializer was lost
// (the initializer crashed and was started again, or the link dropped)
// if t, the cluster the initializer has now, is that rescale's or a
// later one: the initializer records it (commitRescale) only once every
// worker has all its states, and then nothing undoes it. An older t
// leaves the rescale to the initializer: a live one goes on with it (it
// undoes it, the link having changed), one started again undoes it
// (undoOrphans; this worker's Join said it is frozen).
func (m *Member) settleOrphaned(ctx context.Context, t Topology) {
	m.settle(ctx, func(p *Rescale) bool { return t.Epoch >= p.Topo.Epoch })
}

// leftWhileOrphaned (a worker the initializer it dials again refuses as
// not a member) reports whether it was leaving by a committed shrink,
// and then completes that shrink here: the initializer recorded the
// cluster without it (commitRescale). It hands over what it parked and
// stops.
func (m *Member) leftWhileOrphaned(ctx context.Context) bool {
	m.rs.mu.Lock()
	p := m.rs.pending
	leaver := p != nil && m.rs.frozen && m.rs.committed && slices.Contains(p.Leaving, m.cfg.Name)
	m.rs.mu.Unlock()
	if !leaver {
		return false
	}
	m.settle(ctx, func(*Rescale) bool { return true })
	return true
}

// settle completes the rescale this worker is frozen in, if complete
// says so and no release of it has begun.
func (m *Member) settle(ctx context.Context, complete func(p *Rescale) bool) {
	m.rs.mu.Lock()
	p := m.rs.pending
	done := p != nil && m.rs.frozen && !m.rs.releasing && complete(p)
	if done {
		m.rs.releasing = true
	}
	m.rs.mu.Unlock()
	if !done {
		return
	}
	m.log.Warn("the initializer is back with the cluster of the grow or shrink this worker was in: completing it here", "id", p.ID, "workers", strings.Join(p.Topo.Workers, ","))
	if err := m.releaseHere(ctx, *p); err != nil {
		m.log.Error("the grow or shrink this worker was in did not complete here; stop the cluster (cluster_shutdown) and start it again", "id", p.ID, "err", err)
		return
	}
	m.rs.mu.Lock()
	m.rs.settled = p.ID
	m.rs.mu.Unlock()
	m.afterRelease()
}

// planOf rebuilds the plan of a prepared rescale on a worker: the moves
// from this worker's table to the new one.
func (m *Member) planOf(r Rescale) (rescale.Plan, error) {
	next, err := tableOf(r.Topo, m.cfg.Partitions)
	if err != nil {
		return rescale.Plan{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return rescale.Plan{Old: m.table, New: next, Workers: r.Topo.Workers, Data: r.Topo.Data, Leaving: r.Leaving}, nil
}
