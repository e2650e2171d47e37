package e2e

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// Two sources merge into one keyed state; to_sinks sends every output to
// both sinks.
func TestMergeTwoSourcesToTwoSinks(t *testing.T) {
	s1, s2 := newSink(t), newSink(t)
	in1, in2 := freePort(t), freePort(t)
	m := machida(t, testdataDir(), "merge_sinks", in1+","+in2, s1.addr()+","+s2.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	// (Logged before that line is printed, but on stderr: the two
	// streams reach the test apart.)
	for _, s := range []string{"Left source is listening", "Right source is listening"} {
		m.waitOutput(s, 20*time.Second)
	}
	a, b := dial(t, in1), dial(t, in2)
	defer a.Close()
	defer b.Close()
	for i := 0; i < 50; i++ {
		send(t, a, "x")
		send(t, b, "x", "y")
	}
	want := []string{}
	for i := 1; i <= 100; i++ {
		want = append(want, "x "+itoa(i))
	}
	for i := 1; i <= 50; i++ {
		want = append(want, "y "+itoa(i))
	}
	slices.Sort(want)
	for _, s := range []*sink{s1, s2} {
		got := s.waitLines(t, 150, 20*time.Second)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("sink %s got %d lines, want the 150 counts of x and y; first: %q", s.addr(), len(got), got[:min(5, len(got))])
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
