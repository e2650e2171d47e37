package work

import (
	"context"
	"errors"
	"testing"
	"time"
)

// After the loop has ended (an error in user code, the shutdown
// deadline), a peer's link may still be putting into a full lane with a
// context that lives on. Discard must make it give up, so that Close
// (which waits for Puts under way) and Discard both return and the
// worker can exit.
func TestQueue_DiscardReleasesAPutBlockedOnAFullLane(t *testing.T) {
	q := NewQueue(4, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 4; i++ {
		if err := q.Put(ctx, EnvelopesItem(1, Envelopes{Count: 1, Data: []byte("x")})); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan struct{})
	putDone := make(chan error, 1)
	go func() {
		close(started)
		putDone <- q.Put(ctx, EnvelopesItem(1, Envelopes{Count: 1, Data: []byte("y")}))
	}()
	<-started
	dropped := make(chan int, 1)
	go func() { n, _ := q.Discard(); dropped <- n }()
	closed := make(chan struct{})
	go func() { q.Close(); close(closed) }()

	deadline := time.After(30 * time.Second)
	select {
	case <-closed:
	case <-deadline:
		t.Fatal("Close did not return: it waits for a Put nobody will make room for")
	}
	select {
	case n := <-dropped:
		if n < 4 || n > 5 {
			t.Errorf("Discard dropped %d items, want the 4 queued (5 if the Put got in first)", n)
		}
	case <-deadline:
		t.Fatal("Discard did not return")
	}
	select {
	case err := <-putDone:
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("the blocked Put = %v, want nil or ErrClosed", err)
		}
	case <-deadline:
		t.Fatal("the blocked Put never returned")
	}
	if err := q.Put(ctx, EnvelopesItem(1, Envelopes{Count: 1, Data: []byte("z")})); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Discard = %v, want ErrClosed", err)
	}
}
