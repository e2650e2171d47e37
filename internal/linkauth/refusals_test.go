package linkauth

import (
	"fmt"
	"testing"
	"time"
)

// Refused connections are logged per host: the first RefusalBurst of a
// period, then none until the next period, whose first line says how
// many went unlogged.
func TestRefusals_LoggedInBurstsPerHost(t *testing.T) {
	var r RefusalLog
	t0 := time.Unix(1000, 0)
	logged := 0
	for i := 0; i < RefusalBurst+3; i++ {
		if unlogged, log := r.Note(fmt.Sprintf("10.0.0.1:%d", 5000+i), t0.Add(time.Duration(i)*time.Millisecond)); log {
			logged++
			if unlogged != 0 {
				t.Errorf("refusal %d logged with %d unlogged before it", i, unlogged)
			}
		}
	}
	if logged != RefusalBurst {
		t.Errorf("%d of %d refusals in one period logged, want %d", logged, RefusalBurst+3, RefusalBurst)
	}
	if _, log := r.Note("10.0.0.2:5000", t0.Add(time.Second)); !log {
		t.Error("the first refusal from another host was not logged")
	}
	if unlogged, log := r.Note("10.0.0.1:6000", t0.Add(RefusalEvery+time.Second)); !log || unlogged != 3 {
		t.Errorf("the first refusal of the next period: log %v with %d unlogged, want true with 3", log, unlogged)
	}
}

// Past maxRefusingHosts hosts, those whose period ended are forgotten;
// while all are recent, new hosts share one count, so a sweep from many
// addresses stays bounded too.
func TestRefusals_ManyHostsStayBounded(t *testing.T) {
	var r RefusalLog
	t0 := time.Unix(1000, 0)
	logged := 0
	for i := 0; i < 3*maxRefusingHosts; i++ {
		if _, log := r.Note(fmt.Sprintf("10.%d.%d.1:5000", i/256, i%256), t0); log {
			logged++
		}
	}
	if want := maxRefusingHosts - 1 + RefusalBurst; logged != want {
		t.Errorf("%d refusals from %d hosts at once logged, want %d (one each for the first hosts kept apart, then a burst for the rest together)", logged, 3*maxRefusingHosts, want)
	}
	if len(r.byHost) > maxRefusingHosts {
		t.Errorf("%d hosts kept, want at most %d", len(r.byHost), maxRefusingHosts)
	}
	// A period later the old hosts are forgotten and a new one is its own.
	if _, log := r.Note("192.168.0.1:1", t0.Add(RefusalEvery)); !log {
		t.Error("a new host a period later was not logged")
	}
	if _, ok := r.byHost["192.168.0.1"]; !ok {
		t.Error("a new host a period later was not kept apart")
	}
}
