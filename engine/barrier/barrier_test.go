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

// A barrier opened over a set of inputs (the peers of the moment, not
// 0..n-1) waits for exactly those; inputs outside the set are never held.
func TestAligner_OpenOverASet(t *testing.T) {
	a := NewAligner(1)
	b := Barrier{ID: 9, Kind: Checkpoint}
	if err := a.Open(b, nil); err == nil {
		t.Fatal("opened over no input")
	}
	if err := a.Open(b, []int{0, 3, 5}); err != nil {
		t.Fatal(err)
	}
	if err := a.Open(b, []int{1}); err == nil {
		t.Fatal("a second Open while one is under way")
	}
	for _, in := range []int{5, 0} {
		if done, err := a.Arrive(in, b); err != nil || done {
			t.Fatalf("input %d: %v %v", in, done, err)
		}
	}
	if a.Held(-1) || a.Held(1) || !a.Held(5) {
		t.Fatal("held the wrong inputs")
	}
	if m := a.Missing(); len(m) != 1 || m[0] != 3 {
		t.Fatalf("missing %v, want [3]", m)
	}
	if _, err := a.Arrive(4, b); err == nil {
		t.Fatal("a barrier on an input outside the set")
	}
	if done, err := a.Arrive(3, b); err != nil || !done {
		t.Fatalf("last: %v %v", done, err)
	}
	a.Done()
	if a.Held(5) {
		t.Fatal("held after Done")
	}
}
