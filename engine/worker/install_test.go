package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/cluster"
	"github.com/wallaroo-go/machida/engine/work"
)

// A table queued for a processor loop that then ends without taking it
// (a stop during a grow) is not waited for for ever: install gives up
// with cluster.ErrLoopEnded, so the grow fails and lets the stop go on.
func TestInstall_GivesUpWhenTheLoopHasEnded(t *testing.T) {
	q := work.NewQueue(16, 1<<20)
	ended := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- install(context.Background(), q, ended, work.Ownership{Epoch: 7}, nil) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, peer := q.Depth(); peer == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the table was never queued")
		}
	}
	close(ended)
	wantLoopEnded(t, errc, "install still waits for a loop that has ended")
}

// wantLoopEnded waits for install's result on errc: ErrLoopEnded.
func wantLoopEnded(t *testing.T, errc chan error, stuck string) {
	t.Helper()
	select {
	case err := <-errc:
		if !errors.Is(err, cluster.ErrLoopEnded) {
			t.Fatalf("install returned %v, want ErrLoopEnded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal(stuck)
	}
}

// The same when the loop's lane is full: the wait for room gives up too
// (the queue is emptied only later in a stop).
func TestInstall_GivesUpWaitingForRoomWhenTheLoopHasEnded(t *testing.T) {
	q := work.NewQueue(1, 1<<20)
	if err := q.Put(context.Background(), work.CallItem(work.ControlInput, nil)); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- install(context.Background(), q, ended, work.Ownership{Epoch: 7}, nil) }()
	close(ended)
	wantLoopEnded(t, errc, "install still waits for room in the queue of a loop that has ended")
	if _, peer := q.Depth(); peer != 1 {
		t.Errorf("%d items queued, want the first only", peer)
	}
}
