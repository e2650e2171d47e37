package cluster

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// repliesOf is an initializer of the cluster init, w1, w2 whose control
// links to w1 and w2 are up, awaiting the "taken" replies to checkpoint 7.
func repliesOf(t *testing.T) (*Member, *Replies) {
	t.Helper()
	m := &Member{cfg: Config{Name: "init"}, workers: []string{"init", "w1", "w2"},
		ctl: map[string]*ctlConn{"w1": {name: "w1"}, "w2": {name: "w2"}}}
	return m, m.Expect(7, 3, OpTaken)
}

func reply(r *Replies, from, text string) {
	r.w.ch <- ckReply{from: from, c: Checkpoint{Op: OpTaken, ID: 7, Attempt: 3, Text: text}}
}

func TestReplies_WaitForAllOrFailFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Every reply is awaited, a failed one included.
	_, r := repliesOf(t)
	reply(r, "w1", "cannot take: waiting for a rollback")
	done := make(chan error, 1)
	go func() { _, err := r.Wait(ctx); done <- err }()
	reply(r, "w1", "") // a duplicate counts once
	reply(r, "w9", "") // not a worker it waits for
	reply(r, "w2", "")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "w1: cannot take") {
		t.Errorf("Wait = %v, want w1's failure", err)
	}

	// FailFast returns at the first failure, without w2's reply (which
	// never comes: its step waits for w1).
	_, r = repliesOf(t)
	r.FailFast()
	reply(r, "w1", "cannot take: waiting for a rollback")
	got, err := r.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), "w1: cannot take") || ctx.Err() != nil {
		t.Errorf("FailFast Wait = %v (ctx %v), want w1's failure at once", err, ctx.Err())
	}
	if _, ok := got["w2"]; ok || len(got) != 1 {
		t.Errorf("replies %v, want w1's alone", got)
	}

	// All well: every reply.
	_, r = repliesOf(t)
	r.FailFast()
	reply(r, "w2", "")
	reply(r, "w1", "")
	if got, err := r.Wait(ctx); err != nil || len(got) != 2 {
		t.Errorf("Wait = %v, %v; want both replies", got, err)
	}

	// A worker whose control link went (or came back anew) will not
	// reply: Wait says so instead of waiting for ctx.
	m, r := repliesOf(t)
	reply(r, "w1", "")
	m.mu.Lock()
	m.ctl["w2"] = &ctlConn{name: "w2"} // reconnected after a restart
	m.mu.Unlock()
	if _, err := r.Wait(ctx); err == nil || !strings.Contains(err.Error(), "lost the control link to [w2]") {
		t.Errorf("Wait = %v, want the lost link named", err)
	}
	if m.ckWait[OpTaken] != nil {
		t.Error("Wait left its waiter registered")
	}
}

// Every reply of a cluster of many workers is kept until Wait reads it,
// however many come before Wait starts (checkpointFrame never blocks:
// a full channel would drop one, and the step would time out).
func TestReplies_RoomForEveryWorker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	workers := []string{"init"}
	ctl := map[string]*ctlConn{}
	for i := range 100 {
		w := "w" + strconv.Itoa(i)
		workers = append(workers, w)
		ctl[w] = &ctlConn{name: w}
	}
	m := &Member{cfg: Config{Name: "init"}, workers: workers, ctl: ctl}
	r := m.Expect(7, 3, OpTaken)
	for _, w := range workers[1:] {
		m.checkpointFrame(ctl[w], Frame{Kind: KindCheckpoint, Payload: Checkpoint{Op: OpTaken, ID: 7, Attempt: 3}.Encode()})
	}
	if got, err := r.Wait(ctx); err != nil || len(got) != 100 {
		t.Errorf("Wait = %d replies, %v; want all 100", len(got), err)
	}
}
