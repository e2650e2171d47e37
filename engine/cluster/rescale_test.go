package cluster

import "testing"

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
