package barrier

import "testing"

func TestAligner_HoldsEachInputUntilAllHaveArrived(t *testing.T) {
	a := NewAligner(3)
	b := Barrier{ID: 1, Kind: Checkpoint}
	if a.Held(0) {
		t.Fatal("held before any barrier")
	}
	for i, in := range []int{1, 0} {
		done, err := a.Arrive(in, b)
		if err != nil || done {
			t.Fatalf("arrival %d: done=%v err=%v", i, done, err)
		}
		if !a.Held(in) {
			t.Fatalf("input %d not held after its barrier", in)
		}
	}
	if a.Held(2) {
		t.Fatal("input 2 held before its barrier")
	}
	done, err := a.Arrive(2, b)
	if err != nil || !done {
		t.Fatalf("last arrival: done=%v err=%v", done, err)
	}
	if p, ok := a.Pending(); !ok || p != b {
		t.Fatalf("pending = %v %v", p, ok)
	}
	a.Done()
	for in := 0; in < 3; in++ {
		if a.Held(in) {
			t.Fatalf("input %d still held after Done", in)
		}
	}
	if _, ok := a.Pending(); ok {
		t.Fatal("still pending after Done")
	}
	// The next barrier aligns afresh.
	if done, err := a.Arrive(0, Barrier{ID: 2, Kind: Rescale}); err != nil || done {
		t.Fatalf("next barrier: %v %v", done, err)
	}
}

func TestAligner_ProtocolFaults(t *testing.T) {
	a := NewAligner(2)
	b := Barrier{ID: 7, Kind: Rollback}
	if _, err := a.Arrive(2, b); err == nil {
		t.Error("input out of range accepted")
	}
	if _, err := a.Arrive(0, b); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Arrive(0, b); err == nil {
		t.Error("same barrier twice on one input accepted")
	}
	if _, err := a.Arrive(1, Barrier{ID: 8, Kind: Rollback}); err == nil {
		t.Error("a second barrier overtaking the first accepted")
	}
}

func TestAligner_OneInputCompletesAtOnce(t *testing.T) {
	a := NewAligner(1)
	done, err := a.Arrive(0, Barrier{ID: 1, Kind: Checkpoint})
	if err != nil || !done {
		t.Fatalf("done=%v err=%v", done, err)
	}
}
