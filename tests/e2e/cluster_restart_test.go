package e2e

import (
	"encoding/binary"
	"fmt"
	"maps"
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
	ws, recv, send, want, n, owners := alphabetSentOnce(t)
	total := map[string]int{}
	for letter, seq := range want {
		_, v, _ := strings.Cut(seq[len(seq)-1], " => ")
		total[letter], _ = strconv.Atoi(v)
	}
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
	// writes: each worker's listeners (host and port on two lines), the
	// cluster as it knows it (.local-topology, .workers, .local-keys) and,
	// on the other workers, .connection-addresses.
	resDir := argValue(t, ws[0], "--resilience-dir")
	for _, w := range ws {
		suffixes := []string{".tcp-control", ".tcp-data", ".local-topology", ".workers", ".local-keys"}
		if w.name != "initializer" {
			suffixes = append(suffixes, ".connection-addresses")
		}
		for _, suffix := range suffixes {
			m, _ := filepath.Glob(filepath.Join(resDir, "*-"+w.name+suffix))
			if len(m) != 1 {
				t.Fatalf("%s: no %s file in %s: %v", w.name, suffix, resDir, reFiles(t, resDir))
			}
			b, _ := os.ReadFile(m[0])
			switch suffix {
			case ".tcp-control", ".tcp-data":
				if len(strings.Fields(string(b))) != 2 {
					t.Errorf("%s holds %q, want a host and a port on two lines", m[0], b)
				}
			case ".workers":
				if !slices.Equal(strings.Fields(string(b)), []string{"initializer", "worker1", "worker2"}) {
					t.Errorf("%s holds %q, want the three names one per line, the initializer first", m[0], b)
				}
			}
		}
	}
	final := alphabetRestartAndResend(t, ws, 2, recv, send, 2*n) // SIGKILL: its recovery files stay
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
	stopCluster(t, ws, 0, false)
	if got := len(recv.lines()); got != 2*n {
		t.Errorf("%d output lines, want %d: something was lost or duplicated", got, 2*n)
	}
	// A clean stop deletes them all (spec 3.8).
	if left := reFiles(t, resDir); len(left) != 0 {
		t.Errorf("files left in the resilience directory after a clean stop: %v", left)
	}
}

// A worker killed and started again on other ports (--my-control and
// --my-data changed, no resilience) starts afresh and rejoins under its
// name: the others send to its new data listener, what they had not
// had acknowledged included, so its letters restart empty and the
// others' lose and duplicate nothing.
func TestCluster_RestartAWorkerOnOtherPorts(t *testing.T) {
	ws, recv, send, want, n, owners := alphabetSentOnce(t)
	victim := ws[2]
	victim.kill()
	args := slices.Clone(victim.args)
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--my-control" || args[i] == "--my-data" {
			args[i+1] = freePort(t)
		}
	}
	ws[2] = &clusterWorker{proc: start(t, victim.dir, "machida3", args...), name: victim.name,
		external: victim.external, dir: victim.dir, args: args}
	ws[2].waitOutput("starting afresh", 30*time.Second)
	for _, w := range ws {
		waitStatus(t, w, len(ws))
	}
	send()
	final := map[string]int{}
	for _, l := range recv.waitLines(t, 2*n, 60*time.Second) {
		letter, v, ok := strings.Cut(l, " => ")
		if !ok {
			t.Fatalf("malformed line %q", l)
		}
		final[letter], _ = strconv.Atoi(v)
	}
	for letter, seq := range want {
		_, v, _ := strings.Cut(seq[len(seq)-1], " => ")
		tot, _ := strconv.Atoi(v)
		expect := 2 * tot
		if owners[letter] == victim.name {
			expect = tot
		}
		if final[letter] != expect {
			t.Errorf("letter %s (owned by %s): final total %d, want %d", letter, owners[letter], final[letter], expect)
		}
	}
	stopCluster(t, ws, 0, false)
	if got := len(recv.lines()); got != 2*n {
		t.Errorf("%d output lines, want %d: something was lost or duplicated", got, 2*n)
	}
}

// alphabetSentOnce starts a 3-worker alphabet cluster and sends it the
// example's votes once (send sends them again): it returns the workers,
// the receiver, send, each letter's running totals, the number of votes
// and each letter's owner.
func alphabetSentOnce(t *testing.T) ([]*clusterWorker, *exReceiver, func(), map[string][]string, int, map[string]string) {
	t.Helper()
	dir := exampleDir("alphabet")
	votes := filepath.Join(dir, "votes.msg")
	want, n := alphabetRunningTotals(t, votes)
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "alphabet", 3, in, recv.addr)
	send := func() {
		exSend(t, dir, in, n, "--file", votes, "--batch-size", "50", "--interval", "1_000_000", "--binary", "--msg-size", "9")
	}
	send()
	recv.waitLines(t, n, 60*time.Second)
	return ws, recv, send, want, n, stateKeys(t, ws)
}

// alphabetRestartAndResend kills worker i of an alphabet cluster with
// SIGKILL, starts it again with the same command line (it says
// "Restarting a listener at"), waits until every worker is in the
// cluster again, sends the votes again and waits for want lines in all;
// it returns each letter's last total.
func alphabetRestartAndResend(t *testing.T, ws []*clusterWorker, i int, recv *exReceiver, send func(), want int) map[string]int {
	t.Helper()
	victim := ws[i]
	victim.kill()
	restarted := &clusterWorker{proc: start(t, victim.dir, "machida3", victim.args...), name: victim.name,
		external: victim.external, dir: victim.dir, args: victim.args}
	ws[i] = restarted
	restarted.waitOutput("Restarting a listener at", 30*time.Second)
	for _, w := range ws {
		waitStatus(t, w, len(ws))
	}
	send()
	final := map[string]int{}
	for _, l := range recv.waitLines(t, want, 60*time.Second) {
		letter, v, ok := strings.Cut(l, " => ")
		if !ok {
			t.Fatalf("malformed line %q", l)
		}
		final[letter], _ = strconv.Atoi(v)
	}
	return final
}

// The initializer restarted the same way (spec 3.9: "the initializer can
// also be restarted this way"): it binds its recorded listeners and its
// source port again, the other workers reconnect to it, and the stream
// goes on; its own letters start empty, the others' lose and duplicate
// nothing.
func TestCluster_RestartTheInitializerWithoutResilience(t *testing.T) {
	ws, recv, send, want, n, owners := alphabetSentOnce(t)
	victim := ws[0]
	if !slices.Contains(slices.Collect(maps.Values(owners)), victim.name) {
		t.Fatalf("the initializer owns no letter: %v", owners)
	}
	final := alphabetRestartAndResend(t, ws, 0, recv, send, 2*n)
	for letter, seq := range want {
		_, v, _ := strings.Cut(seq[len(seq)-1], " => ")
		tot, _ := strconv.Atoi(v)
		if owners[letter] != victim.name {
			tot *= 2 // survived: both runs add up
		}
		if final[letter] != tot {
			t.Errorf("letter %s (owned by %s): final total %d, want %d", letter, owners[letter], final[letter], tot)
		}
	}
	stopCluster(t, ws, 1, false)
	// (Counted once every worker has stopped: a duplicate cannot come
	// later.)
	if got := len(recv.lines()); got != 2*n {
		t.Errorf("%d output lines, want %d: something was lost or duplicated", got, 2*n)
	}
}

// A peer that disappears: keys routed to it stall while the others flow;
// what was sent to it waits in the links' replay queues and reaches it
// once it is back (started again with the same command line).
func TestCluster_KeysOfAMissingWorkerStallThenFlow(t *testing.T) {
	// Which letters does worker2 own? Every letter is sent once (the
	// votes file itself), then the owners are read.
	ws, recv, send, want, n, owners := alphabetSentOnce(t)
	victim := ws[2]
	victim.kill()
	// While it is gone: the other workers' letters come out, its own do not.
	send()
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

// Wallaroo 0.6's restart_without_resilience test: sequence_window on 2
// workers, a client sending 1..200 one at a time; once worker1 has
// written windows of its parity, it is killed with SIGKILL and started
// again with the same command line while the client goes on (the client
// holds back its second hundred until the kill, so some input always
// reaches the restarted worker). The restarted worker says "Restarting a
// listener", and the sink receives the final windows of both parities,
// [194,196,198,200] and [193,195,197,199]. No parity's numbers go back
// within one run of its owner (the restarted worker may write again a
// window its first run wrote before the kill: a batch it had not
// acknowledged comes again); worker1's parity starts again empty (as in
// 0.6), the initializer's does not.
func TestCluster_RestartWithoutResilienceWhileSending(t *testing.T) {
	dir := exampleDir("sequence_window")
	recv := exStartReceiver(t, dir, "--framed")
	in := freePort(t)
	ws := startCluster(t, dir, "sequence_window", 2, in, recv.addr)
	victim := ws[1]
	conn := dial(t, in)
	defer conn.Close()
	killed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for v := uint64(1); v <= 200; v++ {
			if v == 101 {
				<-killed
			}
			if _, err := conn.Write(frame(binary.BigEndian.AppendUint64(nil, v))); err != nil {
				done <- fmt.Errorf("sending %d: %w", v, err)
				return
			}
			time.Sleep(10 * time.Millisecond) // a client's pace, not a wait for the cluster
		}
		done <- nil
	}()
	// The parity worker1 holds, once it has written 4 windows of it.
	var mine string
	deadline := time.Now().Add(60 * time.Second)
	for mine == "" {
		if got := byWindowParity(t, recv.lines()); len(got["0"]) >= 4 && len(got["1"]) >= 4 {
			for p, w := range stateKeys(t, ws) {
				if w == victim.name {
					mine = p
				}
			}
			if mine == "" {
				t.Fatalf("worker1 holds neither parity: %v", stateKeys(t, ws))
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("4 windows of each parity did not come out within 60 s: %v", recv.lines())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	victim.kill()
	close(killed)
	restarted := &clusterWorker{proc: start(t, victim.dir, "machida3", victim.args...), name: victim.name,
		external: victim.external, dir: victim.dir, args: victim.args}
	ws[1] = restarted
	restarted.waitOutput("Restarting a listener", 30*time.Second)
	waitStatus(t, restarted, 2)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the client did not finish sending within 60 s of the restart")
	}
	finals := []string{"[194,196,198,200]", "[193,195,197,199]"}
	deadline = time.Now().Add(60 * time.Second)
	for {
		lines := recv.lines()
		if slices.Contains(lines, finals[0]) && slices.Contains(lines, finals[1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the final windows %v never came out; last of %d: %v", finals, len(lines), lines[max(0, len(lines)-4):])
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := byWindowParity(t, recv.lines())
	for _, p := range []string{"0", "1"} {
		var last uint64
		restartedEmpty := false
		for i, w := range got[p] {
			vals := strings.Split(strings.Trim(w, "[]"), ",")
			d, _ := strconv.ParseUint(vals[3], 10, 64)
			if i >= 4 && vals[0] == "0" && !restartedEmpty {
				restartedEmpty = true // the restarted worker's first window
				last = 0
			}
			if d <= last {
				t.Errorf("parity %s: window %s after one ending in %d: a number repeated or out of order", p, w, last)
			}
			last = d
		}
		if p == mine && !restartedEmpty {
			t.Errorf("parity %s is worker1's, restarted without resilience, but no window shows its state starting empty: %v", p, got[p])
		}
		if p != mine && restartedEmpty {
			t.Errorf("parity %s is the initializer's, yet its state started again: %v", p, got[p])
		}
	}
	t.Logf("worker1's parity: %s; windows per parity: %d and %d", mine, len(got["0"]), len(got["1"]))
	stopCluster(t, ws, 0, false)
}
