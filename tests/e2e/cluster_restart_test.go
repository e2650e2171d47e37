package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Restarting a worker without resilience (spec 3.9): a worker killed with
// SIGKILL and started again with the same command line binds the
// listeners recorded in --resilience-dir ("Restarting a listener at"),
// rejoins, and the stream goes on; the keys of the surviving workers lose
// and duplicate nothing, the restarted worker's keys start empty, as in
// 0.6. Alphabet routes every vote by letter straight from the source, so
// a letter's votes only ever pass through the worker that owns it.
func TestCluster_RestartAWorkerWithoutResilience(t *testing.T) {
	dir := exampleDir("alphabet")
	votes := filepath.Join(dir, "votes.msg")
	want, n := alphabetRunningTotals(t, votes)
	total := map[string]int{}
	for letter, seq := range want {
		_, v, _ := strings.Cut(seq[len(seq)-1], " => ")
		total[letter], _ = strconv.Atoi(v)
	}
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "alphabet", 3, in, recv.addr)
	send := func() {
		exSend(t, dir, in, n, "--file", votes, "--batch-size", "50", "--interval", "1_000_000", "--binary", "--msg-size", "9")
	}
	send()
	recv.waitLines(t, n, 60*time.Second)
	owners := stateKeys(t, ws)
	victim := ws[2]
	var mine []string
	for letter, w := range owners {
		if w == victim.name {
			mine = append(mine, letter)
		}
	}
	if len(mine) == 0 {
		t.Fatalf("%s owns no letter: %v", victim.name, owners)
	}
	// The recovery files of spec 4.2 that a cluster without resilience
	// writes: each worker's listeners (host and port on two lines), and
	// the initializer's topology and list of workers.
	resDir := argValue(t, ws[0], "--resilience-dir")
	for _, w := range ws {
		for _, suffix := range []string{".tcp-control", ".tcp-data"} {
			m, _ := filepath.Glob(filepath.Join(resDir, "*-"+w.name+suffix))
			if len(m) != 1 {
				t.Fatalf("%s: no %s file in %s: %v", w.name, suffix, resDir, reFiles(t, resDir))
			}
			if b, _ := os.ReadFile(m[0]); len(strings.Fields(string(b))) != 2 {
				t.Errorf("%s holds %q, want a host and a port on two lines", m[0], b)
			}
		}
	}
	if m, _ := filepath.Glob(filepath.Join(resDir, "*-initializer.workers")); len(m) != 1 {
		t.Errorf("no initializer .workers file: %v", reFiles(t, resDir))
	} else if b, _ := os.ReadFile(m[0]); !strings.HasPrefix(string(b), "initializer\n") ||
		!slices.Equal(slices.Sorted(slices.Values(strings.Fields(string(b)))), []string{"initializer", "worker1", "worker2"}) {
		// (The workers come in the order they joined.)
		t.Errorf("%s holds %q, want the three names one per line, the initializer first", m[0], b)
	}
	if m, _ := filepath.Glob(filepath.Join(resDir, "*-initializer.local-topology")); len(m) != 1 {
		t.Errorf("no initializer .local-topology file: %v", reFiles(t, resDir))
	}
	victim.kill() // SIGKILL: its recovery files stay
	restarted := &clusterWorker{proc: start(t, victim.dir, "machida3", victim.args...), name: victim.name,
		external: victim.external, dir: victim.dir, args: victim.args}
	ws[2] = restarted
	restarted.waitOutput("Restarting a listener at", 30*time.Second)
	waitStatus(t, restarted, 3)
	send()
	lines := recv.waitLines(t, 2*n, 60*time.Second)
	final := map[string]int{}
	for _, l := range lines {
		letter, v, ok := strings.Cut(l, " => ")
		if !ok {
			t.Fatalf("malformed line %q", l)
		}
		final[letter], _ = strconv.Atoi(v)
	}
	for letter, tot := range total {
		w := owners[letter]
		expect := 2 * tot // survived: both runs add up
		if w == victim.name {
			expect = tot // restarted empty: the second run only
		}
		if final[letter] != expect {
			t.Errorf("letter %s (owned by %s): final total %d, want %d", letter, w, final[letter], expect)
		}
	}
	if len(lines) != 2*n {
		t.Errorf("%d output lines, want %d: something was lost or duplicated", len(lines), 2*n)
	}
	stopCluster(t, ws, 0, false)
	// A clean stop deletes them all (spec 3.8).
	if left := reFiles(t, resDir); len(left) != 0 {
		t.Errorf("files left in the resilience directory after a clean stop: %v", left)
	}
}

// A peer that disappears: keys routed to it stall while the others flow;
// what was sent to it waits in the links' replay queues and reaches it
// once it is back (started again with the same command line).
func TestCluster_KeysOfAMissingWorkerStallThenFlow(t *testing.T) {
	dir := exampleDir("alphabet")
	votes := filepath.Join(dir, "votes.msg")
	want, n := alphabetRunningTotals(t, votes)
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "alphabet", 3, in, recv.addr)
	// Which letters does worker2 own? Send every letter once... the
	// votes file itself, then read the owners.
	exSend(t, dir, in, n, "--file", votes, "--batch-size", "50", "--interval", "1_000_000", "--binary", "--msg-size", "9")
	recv.waitLines(t, n, 60*time.Second)
	owners := stateKeys(t, ws)
	victim := ws[2]
	victim.kill()
	// While it is gone: the other workers' letters come out, its own do not.
	exSend(t, dir, in, n, "--file", votes, "--batch-size", "50", "--interval", "1_000_000", "--binary", "--msg-size", "9")
	others := 0
	for letter, seq := range want {
		if owners[letter] != victim.name {
			others += len(seq)
		}
	}
	lines := recv.waitLines(t, n+others, 60*time.Second)
	for _, l := range lines[n:] {
		letter, _, _ := strings.Cut(l, " => ")
		if owners[letter] == victim.name {
			t.Fatalf("letter %s of the missing worker came out while it was down: %q", letter, l)
		}
	}
	// Back again: what waited for it arrives (its state starts empty).
	back := &clusterWorker{proc: start(t, victim.dir, "machida3", victim.args...), name: victim.name,
		external: victim.external, dir: victim.dir, args: victim.args}
	ws[2] = back
	back.waitOutput("Restarting a listener at", 30*time.Second)
	lines = recv.waitLines(t, 2*n, 60*time.Second)
	final := map[string]int{}
	for _, l := range lines {
		letter, v, _ := strings.Cut(l, " => ")
		final[letter], _ = strconv.Atoi(v)
	}
	for letter, seq := range want {
		_, v, _ := strings.Cut(seq[len(seq)-1], " => ")
		tot, _ := strconv.Atoi(v)
		if owners[letter] != victim.name {
			tot *= 2
		}
		if final[letter] != tot {
			t.Errorf("letter %s (owned by %s): final %d, want %d", letter, owners[letter], final[letter], tot)
		}
	}
	if len(lines) != 2*n {
		t.Errorf("%d lines, want %d", len(lines), 2*n)
	}
	stopCluster(t, ws, 1, true)
}
