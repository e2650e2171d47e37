package cluster

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/routing"
)

// A worker that loses its initializer forgets a grow or shrink that was
// only prepared here (nothing parked; the status goes back to processing),
// and keeps one that was frozen.
func TestRescaleState_ForgetUnfrozen(t *testing.T) {
	s := newRescaleState()
	if s.forgetUnfrozen() {
		t.Error("forgot a rescale when none was under way")
	}
	s.pending = &Rescale{ID: 3}
	if !s.forgetUnfrozen() || s.pending != nil {
		t.Error("a prepared, unfrozen rescale was kept")
	}
	s.pending, s.frozen = &Rescale{ID: 4}, true
	if s.forgetUnfrozen() || s.pending == nil {
		t.Error("a frozen rescale was forgotten")
	}
}

// Pieces of a state that come out of order are refused, and a commit
// with a state still incomplete fails, naming it.
func TestAssemble_PiecesInOrderOrAnError(t *testing.T) {
	var imported [][]byte
	m := New(Config{Name: "j1", ImportMany: func(_ []string, _ []routing.PartitionID, datas [][]byte, _ time.Duration) (int, error) {
		imported = append(imported, datas...)
		return len(datas), nil
	}})
	piece := func(off uint64, data string) State {
		return State{ID: 1, To: "j1", Step: "s", Partition: 4, Offset: off, Total: 6, Data: []byte(data)}
	}
	if err := m.assemble(piece(0, "ab")); err != nil {
		t.Fatal(err)
	}
	if err := m.assemble(piece(4, "ef")); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("a piece after a gap: %v", err)
	}
	if err := m.commitHere(); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("a commit with a state in pieces: %v", err)
	}
	if err := m.assemble(piece(2, "cd")); err != nil {
		t.Fatal(err)
	}
	if err := m.assemble(piece(4, "ef")); err != nil {
		t.Fatal(err)
	}
	if err := m.commitHere(); err != nil {
		t.Fatal(err)
	}
	if len(imported) != 1 || string(imported[0]) != "abcdef" {
		t.Errorf("imported %q", imported)
	}
}

// The shrink query never offers the initializer (by name, whatever the
// order of the worker list), nor, on a worker that is leaving, itself.
func TestMember_ShrinkQuery(t *testing.T) {
	m := New(Config{Name: "worker1", Hello: hello()})
	m.workers = []string{"worker2", "initializer", "worker1", "worker3"}
	if got := m.ShrinkQuery(); !slices.Equal(got, []string{"worker2", "worker1", "worker3"}) {
		t.Errorf("shrink query %v, want worker2, worker1 and worker3", got)
	}
	m.rs.leaving = true
	if got := m.ShrinkQuery(); !slices.Equal(got, []string{"worker2", "worker3"}) {
		t.Errorf("shrink query of a leaving worker %v, want worker2 and worker3", got)
	}
	close(m.started)
	if r := m.Shrink(context.Background(), nil, 1); !strings.Contains(r, "this worker is leaving") {
		t.Errorf("a shrink asked of a leaving worker: %q", r)
	}
}
