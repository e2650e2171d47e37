package cluster

import (
	"testing"
)

func TestOutQueue_AcksReplayAndBound(t *testing.T) {
	q := newOutQueue(3, 1<<20)
	for i := 0; i < 3; i++ {
		if q.Full() {
			t.Fatalf("full after %d", i)
		}
		if e := q.Push(1, []byte{byte(i)}); e.seq != uint64(i+1) {
			t.Fatalf("seq %d", e.seq)
		}
	}
	if !q.Full() {
		t.Fatal("not full at the bound")
	}
	if err := q.Ack(2); err != nil || q.Pending() != 1 || q.Full() {
		t.Fatalf("after ack 2: err=%v pending=%d", err, q.Pending())
	}
	q.Push(1, []byte{3})
	// A reconnect: the receiver has batch 3; 4 must be sent again.
	again, err := q.Resume(3)
	if err != nil || len(again) != 1 || again[0].seq != 4 {
		t.Fatalf("resume: %v %+v", err, again)
	}
	if err := q.Ack(9); err == nil {
		t.Error("ack beyond what was sent accepted")
	}
	if err := q.Ack(1); err != nil {
		t.Error("an old ack is harmless")
	}
}

func TestOutQueue_ByteBoundLetsOneLargeBatchIn(t *testing.T) {
	q := newOutQueue(100, 10)
	q.Push(1, make([]byte, 50))
	if !q.Full() {
		t.Fatal("over the byte bound but not full")
	}
	q.Ack(1)
	if q.Full() {
		t.Fatal("empty but full")
	}
}

func TestOutQueue_ReceiverThatLostAckedBatches(t *testing.T) {
	q := newOutQueue(10, 1<<20)
	q.Push(1, nil)
	q.Push(1, nil)
	q.Ack(2)
	q.Push(1, nil)
	again, err := q.Resume(0)
	if err == nil {
		t.Fatal("a receiver that lost acknowledged batches is not reported")
	}
	if len(again) != 1 || again[0].seq != 3 {
		t.Fatalf("resend %+v", again)
	}
}

func TestInSeq_DropsDuplicatesRefusesGaps(t *testing.T) {
	var s inSeq
	for _, c := range []struct {
		seq uint64
		ok  bool
		err bool
	}{{1, true, false}, {2, true, false}, {2, false, false}, {1, false, false}, {3, true, false}, {5, false, true}} {
		ok, err := s.Accept(c.seq)
		if ok != c.ok || (err != nil) != c.err {
			t.Errorf("Accept(%d) = %v, %v", c.seq, ok, err)
		}
	}
}

// A receiver that restarted while nothing was waiting for its ack is
// told to start at the next batch, not at 1: otherwise the next batch
// looks like a gap and the link never comes up again.
func TestOutQueue_FirstHeldAfterEverythingWasAcked(t *testing.T) {
	q := newOutQueue(8, 1<<20)
	if got := q.FirstHeld(); got != 1 {
		t.Fatalf("fresh queue: first held %d, want 1", got)
	}
	for i := 0; i < 3; i++ {
		q.Push(1, []byte("x"))
	}
	if got := q.FirstHeld(); got != 1 {
		t.Fatalf("three pending: first held %d, want 1", got)
	}
	if err := q.Ack(3); err != nil {
		t.Fatal(err)
	}
	first := q.FirstHeld()
	if first != 4 {
		t.Fatalf("all acked: first held %d, want 4 (the next batch)", first)
	}
	// The restarted receiver starts at first-1 and takes the next batch.
	in := inSeq{last: first - 1}
	e := q.Push(1, []byte("y"))
	if ok, err := in.Accept(e.seq); !ok || err != nil {
		t.Fatalf("batch %d after a receiver restart: ok=%v err=%v", e.seq, ok, err)
	}
}
