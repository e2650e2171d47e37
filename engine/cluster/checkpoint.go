package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The member's part of checkpoints and rollbacks: it carries the
// protocol's messages (KindCheckpoint) and serialises the cluster-wide
// operations; the worker's resilience driver decides what each step does
// (the barrier, taking and writing snapshots, sending again what was in
// flight after a rollback).
//
// On the initializer, Round sends one step to every other worker and
// collects their replies; Exclusive keeps a checkpoint, a rollback and a
// rescale from interleaving. On the other workers, OnCheckpoint handles
// the initializer's requests and SendCheckpoint replies.

// ckWaiter collects the replies of one Round.
type ckWaiter struct {
	id, attempt uint64
	want        CheckpointOp
	ch          chan ckReply
}

type ckReply struct {
	from string
	c    Checkpoint
}

// Exclusive (initializer) waits until no other checkpoint, rollback or
// rescale runs, and returns the function that ends this one.
func (m *Member) Exclusive() (unlock func()) {
	m.opMu.Lock()
	return m.opMu.Unlock
}

// Others returns the cluster's workers other than this one, in order.
func (m *Member) Others() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.othersLocked()
}

func (m *Member) othersLocked() []string {
	var out []string
	for _, w := range m.workers {
		if w != m.cfg.Name {
			out = append(out, w)
		}
	}
	return out
}

// othersLinked is the control link of every other worker of the cluster
// that has one now, and the names of those that have none.
func (m *Member) othersLinked() (links []*ctlConn, missing []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.othersLocked() {
		if cc := m.ctl[o]; cc != nil {
			links = append(links, cc)
		} else {
			missing = append(missing, o)
		}
	}
	return links, missing
}

// Expect (initializer) registers for the replies of op want to attempt
// of checkpoint id from every other worker of the cluster, before the
// request that causes them is sent; Wait collects them.
func (m *Member) Expect(id, attempt uint64, want CheckpointOp) *Replies {
	m.mu.Lock()
	others := m.othersLocked()
	// Room for every other worker's reply, twice (one that restarts may
	// answer again): none is dropped before Wait reads it.
	w := &ckWaiter{id: id, attempt: attempt, want: want, ch: make(chan ckReply, max(64, 2*len(others)))}
	if m.ckWait == nil {
		m.ckWait = map[CheckpointOp]*ckWaiter{}
	}
	m.ckWait[want] = w
	conns := make(map[string]*ctlConn, len(others))
	for _, o := range others {
		conns[o] = m.ctl[o]
	}
	m.mu.Unlock()
	return &Replies{m: m, w: w, others: others, conns: conns}
}

// Replies are the replies one Expect registered for.
type Replies struct {
	m      *Member
	w      *ckWaiter
	others []string
	conns  map[string]*ctlConn // each one's control link at Expect
	// failFast: Wait returns at the first reply that says why not.
	failFast bool
}

// FailFast makes Wait return at the first reply that fails, without
// waiting for the others (whose step may wait for the failed one).
func (r *Replies) FailFast() *Replies {
	r.failFast = true
	return r
}

// Close stops collecting.
func (r *Replies) Close() {
	r.m.mu.Lock()
	if r.m.ckWait[r.w.want] == r.w {
		delete(r.m.ckWait, r.w.want)
	}
	r.m.mu.Unlock()
}

// Wait returns every other worker's reply by name, once all have come;
// it fails when one replies with an error (Text), when the control link
// to one is lost (it crashed: its reply will not come), or when ctx ends.
func (r *Replies) Wait(ctx context.Context) (map[string]Checkpoint, error) {
	defer r.Close()
	got := make(map[string]Checkpoint, len(r.others))
	var errs []error
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	what := fmt.Sprintf("the %q replies to checkpoint %d", r.w.want.String(), r.w.id)
	late := func() []string {
		var out []string
		for _, o := range r.others {
			if _, ok := got[o]; !ok {
				out = append(out, o)
			}
		}
		return out
	}
	for len(got) < len(r.others) {
		select {
		case rep := <-r.w.ch:
			if _, dup := got[rep.from]; dup || !slices.Contains(r.others, rep.from) {
				continue
			}
			got[rep.from] = rep.c
			if rep.c.Text != "" {
				errs = append(errs, fmt.Errorf("%s: %s", rep.from, rep.c.Text))
				if r.failFast {
					return got, fmt.Errorf("%s: %w", what, errors.Join(errs...))
				}
			}
		case <-tick.C:
			r.m.mu.Lock()
			var gone []string
			for _, o := range late() {
				// Gone, or back on a new link after a restart: either
				// way the reply will not come.
				if c := r.m.ctl[o]; c == nil || c != r.conns[o] {
					gone = append(gone, o)
				}
			}
			r.m.mu.Unlock()
			if len(gone) > 0 {
				return got, fmt.Errorf("%s: lost the control link to %v", what, gone)
			}
		case <-ctx.Done():
			return got, fmt.Errorf("%s: none from %v: %w", what, late(), ctx.Err())
		}
	}
	if len(errs) > 0 {
		return got, fmt.Errorf("%s: %w", what, errors.Join(errs...))
	}
	return got, nil
}

// Send (initializer) sends c to every other worker of the cluster; a
// worker that is not connected fails it.
func (m *Member) Send(c Checkpoint) error {
	cs, missing := m.othersLinked()
	if len(missing) > 0 {
		return fmt.Errorf("%s of checkpoint %d: not connected to %v", c.Op, c.ID, missing)
	}
	for _, cc := range cs {
		if err := cc.send(KindCheckpoint, c.Encode()); err != nil {
			return fmt.Errorf("%s of checkpoint %d: send to %s: %w", c.Op, c.ID, cc.name, err)
		}
	}
	return nil
}

// Tell (initializer) sends c to every other worker of the cluster
// without waiting for replies (a commit). A joiner that waits for its
// grow is not one yet: it takes no part in checkpoints (it would record
// commits of checkpoints it holds nothing of).
func (m *Member) Tell(c Checkpoint) {
	p := c.Encode()
	cs, _ := m.othersLinked()
	for _, cc := range cs {
		if err := cc.send(KindCheckpoint, p); err != nil {
			m.log.Warn("control message not sent", "peer", cc.name, "kind", KindCheckpoint.String(), "err", err)
		}
	}
}

// SendCheckpoint (not the initializer) sends c to the initializer.
func (m *Member) SendCheckpoint(c Checkpoint) error {
	m.mu.Lock()
	cc := m.toInit
	m.mu.Unlock()
	if cc == nil {
		return errors.New("no control link to the initializer")
	}
	return cc.send(KindCheckpoint, c.Encode())
}

// checkpointFrame handles a KindCheckpoint frame from worker from.
func (m *Member) checkpointFrame(c *ctlConn, f Frame) error {
	ck, err := DecodeCheckpoint(f.Payload)
	if err != nil {
		return err
	}
	switch ck.Op {
	case OpTaken, OpWritten, OpRolledBack, OpResent:
		m.mu.Lock()
		w := m.ckWait[ck.Op]
		m.mu.Unlock()
		if w != nil && w.id == ck.ID && w.attempt == ck.Attempt && w.want == ck.Op {
			select {
			case w.ch <- ckReply{from: c.name, c: ck}:
			default:
			}
		} else {
			m.log.Debug("late checkpoint reply", "peer", c.name, "op", ck.Op.String(), "id", ck.ID, "attempt", ck.Attempt)
		}
	case OpKeepState:
		m.keepState.Store(true)
	case OpRotate:
		if ck.Text != m.cfg.Name {
			// (Only the initializer has a link to every worker.)
			if err := m.RotateLog(ck.Text); err != nil {
				m.log.Warn("RotateLog not passed on", "asked_by", c.name, "err", err)
			}
			return nil
		}
		if m.cfg.OnCheckpoint == nil {
			m.log.Warn("RotateLog not done: this worker runs without --run-with-resilience (it keeps no event log)", "asked_by", c.name)
			return nil
		}
		go m.cfg.OnCheckpoint(ck)
	case OpRecover:
		if m.cfg.OnRecover == nil {
			m.log.Warn("a restarted worker asks for a rollback, but this cluster runs without resilience", "peer", c.name)
			return nil
		}
		go m.cfg.OnRecover(c.name, ck.ID)
	case OpRecovering:
		if m.cfg.OnRecovering != nil {
			m.cfg.OnRecovering(c.name) // (in order: before its OnRecover)
		}
	case OpTake, OpCommit, OpRollback, OpCancel, OpResend:
		if m.cfg.OnCheckpoint != nil && (ck.Op == OpCommit || ck.Op == OpCancel) {
			// In order with what follows on the link (a stop; the next
			// checkpoint's take).
			m.cfg.OnCheckpoint(ck)
			return nil
		}
		if m.cfg.OnCheckpoint == nil {
			reply := ck // its ID and Attempt
			reply.Op = replyOp(ck.Op)
			reply.Text = "this worker runs without --run-with-resilience"
			if reply.Op != 0 {
				return c.send(KindCheckpoint, reply.Encode())
			}
			return nil
		}
		if ck.Op == OpRollback {
			ck.Received = m.rollbacksRead.Add(1)
		}
		// Its own goroutine: taking a snapshot waits for the processor
		// loop, which must not wait for this reader.
		go func() {
			if reply := m.cfg.OnCheckpoint(ck); reply.Op != 0 {
				if err := c.send(KindCheckpoint, reply.Encode()); err != nil {
					m.log.Warn("checkpoint reply not sent", "op", reply.Op.String(), "id", reply.ID, "err", err)
				}
			}
		}()
	}
	return nil
}

// RotateLog passes a RotateLog of the external channel on to worker w
// (not this one): the initializer sends it to w, any other worker to the
// initializer, which passes it on.
func (m *Member) RotateLog(w string) error {
	m.mu.Lock()
	known := slices.Contains(m.workers, w)
	cc := m.toInit
	if m.cfg.Initializer {
		cc = m.ctl[w]
	}
	m.mu.Unlock()
	switch {
	case !known:
		return fmt.Errorf("the cluster has no worker %q", w)
	case cc == nil:
		return fmt.Errorf("no control link to pass it on to %s", w)
	}
	if err := cc.send(KindCheckpoint, Checkpoint{Op: OpRotate, Text: w}.Encode()); err != nil {
		return fmt.Errorf("pass the RotateLog for %s on: %w", w, err)
	}
	return nil
}

// replyOp is the reply to a request op (0 for none).
//
// (OpCancel is handled on the reader's goroutine: it only queues the
// cancel for the loop, and must come before the next take.)
func replyOp(op CheckpointOp) CheckpointOp {
	switch op {
	case OpTake:
		return OpTaken
	case OpRollback:
		return OpRolledBack
	case OpResend:
		return OpResent
	}
	return 0
}

// SetKeepState makes the next stop of the cluster keep the checkpoint
// files: the stop request this worker sends (RequestStop, StopAll) says
// so first.
func (m *Member) SetKeepState() { m.keepState.Store(true) }

// KeepState reports whether this stop keeps the checkpoint files (asked
// here, or told by another worker).
func (m *Member) KeepState() bool { return m.keepState.Load() }

// LinkedSince (initializer) is when the current control link of worker w
// was taken in (zero if none): a restarted worker linked before a
// rollback completed took part in it.
func (m *Member) LinkedSince(w string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.ctl[w]; c != nil {
		return c.since
	}
	return time.Time{}
}
