package e2e

// Resilience (runtime spec 4): checkpoints in --resilience-dir, recovery
// of a worker killed with SIGKILL while data flows, a damaged checkpoint
// file, a clean stop that removes the files or (--keep-state-on-stop)
// keeps them to resume from. The application is multi_partition_detector
// with its internal generator source (--gen-source, as 0.6's resilience
// suite runs it): the generator's position is checkpointed with the
// state, so after a rollback it gives the values after the checkpoint
// again and every key's output must still be at least once.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	reKeys        = 8
	reRecoverWait = 90 * time.Second
)

// reArgs is the command line of a single worker of the detector with
// resilience on, writing its files in dir; the same line starts it again.
func reArgs(t *testing.T, dir, out string, limit, rate int, extra ...string) []string {
	args := []string{"--application-module", "multi_partition_detector",
		"--gen-source", "--partitions", strconv.Itoa(reKeys),
		"--gen-limit", strconv.Itoa(limit), "--gen-rate", strconv.Itoa(rate),
		"--out", out, "--metrics", freePort(t),
		"--control", freePort(t), "--data", freePort(t), "--external", freePort(t),
		"--cluster-initializer", "--name", "initializer",
		"--run-with-resilience", "--resilience-dir", dir,
		"--time-between-checkpoints", "100000000",
		"--ponythreads=1", "--ponynoblock"}
	return append(args, extra...)
}

func reFinal(limit int) map[string]uint64 {
	final := map[string]uint64{}
	for _, k := range rsKeys(reKeys) {
		final[k] = uint64(limit)
	}
	return final
}

// reValidateAtLeastOnce checks the detector's output the way 0.6's
// validator does in at-least-once mode (-a), independent of how the
// per-worker sink connections interleave:
//
//   - every window is whole: the window ending at v is [max(1,v-3)..v],
//     so each key's state saw every value before v, in order, also after
//     a rollback (its state is the checkpoint's, consistent with the
//     generator's position);
//   - every value 1..final of every key is the end of some window.
//
// A skip (0.6's "advances by more than one") shows as a window with a
// hole in it, or a value no window ends at; a rollback repeats values,
// which at least once allows. (Order across sink connections is not
// checked: a key's outputs move between connections with its owner.)
func reValidateAtLeastOnce(records []rsRecord, final map[string]uint64) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	seen := map[string]map[uint64]bool{}
	for i, r := range records {
		if r.err != "" {
			add("record %d %q: %s", i, r.raw, r.err)
			continue
		}
		if _, ok := final[r.key]; !ok {
			add("record %d %q: key %q was never generated", i, r.raw, r.key)
			continue
		}
		v := r.last()
		want := min(v, 4)
		ok := uint64(len(r.window)) == want
		for j := range r.window {
			if ok && r.window[j] != v-want+1+uint64(j) {
				ok = false
			}
		}
		if !ok {
			add("key %s: window %v, want [%d..%d] (state lost or not consistent with the generator)", r.key, r.window, v-want+1, v)
		}
		if seen[r.key] == nil {
			seen[r.key] = map[uint64]bool{}
		}
		seen[r.key][v] = true
	}
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var missing []string
		for v := uint64(1); v <= final[k]; v++ {
			if !seen[k][v] {
				missing = append(missing, strconv.FormatUint(v, 10))
			}
		}
		if len(missing) > 0 {
			add("key %s: %d of %d values lost: %s", k, len(missing), final[k], rsHead(missing, 12))
		}
	}
	return problems
}

func reCheck(t *testing.T, recv *rsReceiver, final map[string]uint64) {
	t.Helper()
	records := recv.snapshot()
	if problems := reValidateAtLeastOnce(records, final); len(problems) > 0 {
		t.Fatalf("output is not at least once (%d records): %d problems:\n  %s", len(records), len(problems),
			strings.Join(rsFirst(problems, 30), "\n  "))
	}
	t.Logf("at least once: %d records for %d keys up to %d", len(records), len(final), final[rsKeys(1)[0]])
}

// reResumed checks that every run after the first went on from a
// checkpoint rather than from the start: on each later sink connection,
// no key starts over at 1.
func reResumed(t *testing.T, recv *rsReceiver) {
	t.Helper()
	first := map[string]uint64{}
	for _, r := range recv.snapshot() {
		if r.err != "" || r.conn == 0 {
			continue
		}
		ck := fmt.Sprintf("%s@%d", r.key, r.conn)
		if _, ok := first[ck]; !ok {
			first[ck] = r.last()
		}
	}
	if len(first) == 0 {
		t.Fatal("no output after the restarts")
	}
	for ck, v := range first {
		if v == 1 {
			t.Errorf("key@connection %s started over at 1: the restart did not resume from a checkpoint", ck)
		}
	}
}

// reFiles lists the checkpoint files of dir.
func reFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// reWaitCheckpoints waits until the checkpoint_ids file of app's worker
// holds at least n committed checkpoints.
func reWaitCheckpoints(t *testing.T, dir, app, worker string, n int) {
	t.Helper()
	path := filepath.Join(dir, app+"-"+worker+".checkpoint_ids")
	deadline := time.Now().Add(reRecoverWait)
	for {
		if st, err := os.Stat(path); err == nil && st.Size() >= int64(16*n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: fewer than %d committed checkpoints in %v; files: %v", worker, n, reRecoverWait, reFiles(t, dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reStartCluster starts a 3-worker cluster of the detector with its
// generator (limit values per key, rate messages a second) and
// resilience on, checkpointing every 100 ms; it returns the workers and
// their --resilience-dir.
func reStartCluster(t *testing.T, recv *rsReceiver, limit, rate int, extra ...string) ([]*clusterWorker, string) {
	t.Helper()
	ws := startCluster(t, testdataDir(), "multi_partition_detector", 3, freePort(t), recv.addr(),
		append([]string{"--gen-source", "--partitions", strconv.Itoa(reKeys), "--gen-limit", strconv.Itoa(limit), "--gen-rate", strconv.Itoa(rate),
			"--run-with-resilience", "--time-between-checkpoints", "100000000"}, extra...)...)
	for i, a := range ws[0].args {
		if a == "--resilience-dir" {
			return ws, ws[0].args[i+1]
		}
	}
	t.Fatal("the cluster's command lines have no --resilience-dir")
	return nil, ""
}

// reFinishCluster waits for every key's last value (limit), checks the
// output is at least once, stops the cluster cleanly and checks that
// the stop removed the files.
func reFinishCluster(t *testing.T, recv *rsReceiver, ws []*clusterWorker, dir string, limit int) {
	t.Helper()
	final := reFinal(limit)
	recv.waitFinal(t, final, rsFinalTimeout)
	reCheck(t, recv, final)
	stopCluster(t, ws, 1, false)
	if left := reFiles(t, dir); len(left) > 0 {
		t.Errorf("a clean stop left files in --resilience-dir: %v", left)
	}
}

// reStopCleanly stops a worker alone with SIGTERM: it exits 0 and leaves
// no file in its --resilience-dir.
func reStopCleanly(t *testing.T, w *proc, dir string) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	if code := w.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	if left := reFiles(t, dir); len(left) > 0 {
		t.Errorf("a clean stop left files in --resilience-dir: %v", left)
	}
}

// A worker killed with SIGKILL while the generator runs, twice, comes
// back from its files: the generator resumes at the checkpoint's
// position with the checkpoint's state, so nothing is lost and windows
// stay whole; a clean stop then removes every file.
func TestResilience_KilledWhileDataFlowsRecovers(t *testing.T) {
	dir := t.TempDir()
	recv := rsStartReceiver(t)
	const limit = 1500
	args := reArgs(t, dir, recv.addr(), limit, 4000)
	w := start(t, testdataDir(), "machida3", args...)
	for round := 1; round <= 2; round++ {
		reWaitCheckpoints(t, dir, "Multi Partition Detector", "initializer", 2)
		recv.waitRecords(t, round*1500, reRecoverWait, fmt.Sprintf("before kill %d", round))
		w.cmd.Process.Signal(syscall.SIGKILL)
		w.wait(30 * time.Second)
		w = start(t, testdataDir(), "machida3", args...)
		w.waitOutput("RESILIENCE: Replayed", reRecoverWait)
		if !strings.Contains(w.stdout.String(), "Recovering from recovery files!") {
			t.Errorf("restart %d: no \"Recovering from recovery files!\" line", round)
		}
	}
	final := reFinal(limit)
	recv.waitFinal(t, final, rsFinalTimeout)
	reCheck(t, recv, final)
	reResumed(t, recv)
	reStopCleanly(t, w, dir)
}

// A damaged newest checkpoint (a flipped byte) is detected by its
// checksum and the one before it is used; a half-written snapshot of a
// checkpoint that never committed (a crash while writing) is ignored.
//
// The worker kills itself right after committing its 8th checkpoint
// (reCrashAtEnv), so the newest checkpoint in its event log is a
// committed one: killed at any other moment, the newest could be one
// written and not yet committed, which recovery never reads (and so
// never finds damaged).
func TestResilience_DamagedCheckpointFallsBackToThePreviousOne(t *testing.T) {
	dir := t.TempDir()
	recv := rsStartReceiver(t)
	const limit = 1200
	args := reArgs(t, dir, recv.addr(), limit, 3000)
	t.Setenv(reCrashAtEnv, "initializer:commit:8")
	w := start(t, testdataDir(), "machida3", args...)
	if code := w.wait(reRecoverWait); !strings.Contains(w.stderr.String(), "killing this worker at step") {
		t.Fatalf("the worker did not kill itself after its 8th commit (exit %d)\nstderr:\n%s", code, w.stderr.String())
	}
	t.Setenv(reCrashAtEnv, "")
	// The event log (0.6's name) holds the checkpoints kept, the newest
	// last: damage a byte of the newest one.
	evlog := filepath.Join(dir, "Multi Partition Detector-initializer.evlog")
	b, err := os.ReadFile(evlog)
	if err != nil {
		t.Fatalf("the event log: %v; files: %v", err, reFiles(t, dir))
	}
	b[len(b)-10] ^= 0xff
	if err := os.WriteFile(evlog, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of writing the next one: a torn temporary
	// file and no commit record.
	if err := os.WriteFile(evlog+".tmp", b[:len(b)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	w = start(t, testdataDir(), "machida3", args...)
	w.waitOutput("RESILIENCE: Replayed", reRecoverWait)
	w.waitOutput("damaged", 10*time.Second)
	final := reFinal(limit)
	recv.waitFinal(t, final, rsFinalTimeout)
	reCheck(t, recv, final)
}

// --keep-state-on-stop: SIGTERM takes a last checkpoint and keeps the
// files; the same command line resumes from it, so the output across
// both runs is exactly once.
func TestResilience_KeepStateOnStopResumesExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	recv := rsStartReceiver(t)
	const limit = 1000
	args := reArgs(t, dir, recv.addr(), limit, 3000, "--keep-state-on-stop")
	w := start(t, testdataDir(), "machida3", args...)
	recv.waitRecords(t, 2000, reRecoverWait, "before the stop")
	w.cmd.Process.Signal(syscall.SIGTERM)
	if code := w.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(w.stdout.String(), "taken at the stop") {
		t.Errorf("no last checkpoint at the stop")
	}
	w = start(t, testdataDir(), "machida3", args...)
	w.waitOutput("RESILIENCE: Replayed", reRecoverWait)
	final := reFinal(limit)
	recv.waitFinal(t, final, rsFinalTimeout)
	rsCheckOutput(t, recv, final, nil)
}

// Wrong resilience options are refused with a clear line.
func TestResilience_OptionsAreChecked(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--keep-state-on-stop"}, "needs --run-with-resilience"},
		{[]string{"--run-with-resilience", "--on-error", "retry"}, "--on-error must be stop or skip"},
		{[]string{"--run-with-resilience", "--time-between-checkpoints", "0"}, "--time-between-checkpoints must be"},
		{[]string{"--run-with-resilience", "--log-rotation", "--event-log-file-size", "-5"}, "--event-log-file-size must be a number of bytes, 0 or more, got -5"},
		{[]string{"--run-with-resilience", "--resilience-dir", "/nonexistent/dir"}, "--resilience-dir /nonexistent/dir"},
		{[]string{"--run-with-resilience", "--name", "w-00000000000000aa"}, `its event log would be taken for a rotated event log of the worker named "w"`},
	}
	for _, c := range cases {
		args := append([]string{"--application-module", "multi_partition_detector", "--gen-source",
			"--out", "127.0.0.1:1"}, c.args...)
		p := start(t, testdataDir(), "machida3", args...)
		if code := p.wait(30 * time.Second); code == 0 {
			t.Errorf("%v: exit 0, want an error", c.args)
		}
		if !strings.Contains(p.stderr.String(), c.want) {
			t.Errorf("%v: stderr %q does not say %q", c.args, p.stderr.String(), c.want)
		}
	}
}

// As in 0.6, a resilient worker's sources start once its first
// checkpoint is committed: the first output comes after the checkpoint
// list names a checkpoint, so a crash at any time after can return to it.
func TestResilience_SourcesStartAfterTheFirstCheckpoint(t *testing.T) {
	dir := exampleDir("word_count")
	// The sink is this test's own listener: the checkpoint list is
	// looked at the moment the first output arrives.
	sink, err := net.Listen("tcp", freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	in, res := freePort(t), t.TempDir()
	ids := filepath.Join(res, "Word Count Application-initializer.checkpoint_ids")
	type first struct {
		line      string
		committed bool
		err       error
	}
	arrived := make(chan first, 1)
	go func() {
		c, err := sink.Accept()
		if err != nil {
			arrived <- first{err: err}
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		st, serr := os.Stat(ids)
		arrived <- first{line: line, committed: serr == nil && st.Size() >= 16, err: err}
	}()
	w := start(t, dir, "machida3", "--application-module", "word_count", "--in", in, "--out", sink.Addr().String(),
		"--metrics", freePort(t), "--control", freePort(t), "--data", freePort(t), "--external", freePort(t),
		"--cluster-initializer", "--run-with-resilience", "--resilience-dir", res,
		"--time-between-checkpoints", "600000000000", "--ponythreads=1", "--ponynoblock")
	// Connect as soon as the source accepts and send one line at once.
	var c net.Conn
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err = net.DialTimeout("tcp", in, time.Second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the source at %s never accepted: %v\n%s", in, err, w.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	defer c.Close()
	if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, 5), "hello"...)); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-arrived:
		if f.err != nil {
			t.Fatalf("the first output: %v", f.err)
		}
		if f.line != "hello => 1\n" {
			t.Errorf("the first output is %q, want %q", f.line, "hello => 1\n")
		}
		if !f.committed {
			t.Errorf("the first output came before the first checkpoint was committed (%s)", ids)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no output within 60 s\n%s", w.stderr.String())
	}
	reStopCleanly(t, w, res)
}

// A 3-worker cluster with resilience: each worker, the initializer
// included, is killed with SIGKILL while the generator runs and started
// again with its command line; it recovers (the others reconnect to a
// restarted initializer), the whole cluster rolls back to the last
// complete checkpoint, and every key's output is at least once with
// whole windows.
func TestResilience_ClusterWorkersKilledInTurnRecover(t *testing.T) {
	recv := rsStartReceiver(t)
	const limit = 2500
	ws, dir := reStartCluster(t, recv, limit, 3000)
	reKillInTurn(t, recv, ws, dir, "Multi Partition Detector", 1500, 1, 2, 0, 1)
	reFinishCluster(t, recv, ws, dir, limit)
}

// reKillInTurn kills each victim of a 3-worker cluster of app in turn
// with SIGKILL, once every records more outputs have come and it has
// committed a checkpoint, starts it again with the same command line,
// waits until it has recovered and then until it has committed two
// more checkpoints. The initializer (victim 0) comes back as if its
// clock had gone back (its checkpoint attempts, which number the
// barriers, start from 1: below those the others saw).
func reKillInTurn(t *testing.T, recv *rsReceiver, ws []*clusterWorker, dir, app string, every int, victims ...int) {
	t.Helper()
	got := 0
	for _, victim := range victims {
		got += every
		recv.waitRecords(t, got, reRecoverWait, fmt.Sprintf("before killing %s", ws[victim].name))
		reWaitCheckpoints(t, dir, app, ws[victim].name, 1)
		v := ws[victim]
		v.cmd.Process.Signal(syscall.SIGKILL)
		v.wait(30 * time.Second)
		if victim == 0 {
			t.Setenv("MACHIDA_TEST_ATTEMPT_SEED", "1")
		}
		r := &clusterWorker{proc: start(t, v.dir, "machida3", v.args...), name: v.name, external: v.external, dir: v.dir, args: v.args}
		t.Setenv("MACHIDA_TEST_ATTEMPT_SEED", "")
		ws[victim] = r
		r.waitOutput("RESILIENCE: Replayed", reRecoverWait)
		waitStatus(t, r, 3)
		ids := filepath.Join(dir, app+"-"+v.name+".checkpoint_ids")
		st, err := os.Stat(ids)
		if err != nil {
			t.Fatalf("%s after its recovery: %v", v.name, err)
		}
		eventually(t, reRecoverWait, func() (bool, string) {
			now, err := os.Stat(ids)
			if err != nil {
				return false, fmt.Sprintf("%s after its recovery: %v", v.name, err)
			}
			return now.Size() >= st.Size()+32, fmt.Sprintf("%s committed %d checkpoints after its recovery, want 2", v.name, (now.Size()-st.Size())/16)
		})
	}
}

// A stateless step first (spread: 0.6 runs it on any worker), so that
// messages cross between the workers in every direction and checkpoint
// barriers meet work in flight both ways (testdata/spread_counts.py):
// worker2, then the initializer, is killed while data flows and comes
// back. Each key's state adds up its values (count, sum, sum of squares),
// which arrive in no fixed order: at the end every key shows exactly the
// totals of 1..limit, so no value was lost or counted twice in the state.
//
// worker1 reads its link from the initializer slowly (SlowLinkEnv), so
// that worker2's barrier usually reaches it first: then what it routes
// until the initializer's arrives is in flight at the checkpoint, and a
// rollback to it must send that again (most checkpoints have some; the
// test says how many batches each rollback sent again).
func TestResilience_SpreadStageKilledRecovers(t *testing.T) {
	t.Setenv("MACHIDA_TEST_SLOW_LINK", "worker1:initializer")
	recv := rsStartReceiver(t)
	const limit = 2500
	ws := startCluster(t, testdataDir(), "spread_counts", 3, freePort(t), recv.addr(),
		"--partitions", strconv.Itoa(reKeys), "--gen-limit", strconv.Itoa(limit), "--gen-rate", "4000",
		"--run-with-resilience", "--time-between-checkpoints", "100000000")
	dir := argValue(t, ws[0], "--resilience-dir")
	first := ws[0]
	reKillInTurn(t, recv, ws, dir, "Spread Counts", 2000, 2, 2, 0)
	for _, w := range []*clusterWorker{first, ws[0]} {
		for _, line := range strings.Split(w.stderr.String(), "\n") {
			if strings.Contains(line, "in flight") || strings.Contains(line, "rolled back") {
				t.Logf("%s: %s", w.name, line)
			}
		}
	}
	n := uint64(limit)
	want := []uint64{n, n * (n + 1) / 2, n * (n + 1) * (2*n + 1) / 6}
	final := map[string]uint64{}
	for _, k := range rsKeys(reKeys) {
		final[k] = want[2]
	}
	recv.waitFinal(t, final, rsFinalTimeout)
	stopCluster(t, ws, 1, false)
	done := map[string]bool{}
	for _, r := range recv.snapshot() {
		if r.err != "" {
			t.Fatalf("record %q: %s", r.key, r.err)
		}
		if len(r.window) != 3 || r.window[0] > n || r.window[1] > want[1] || r.window[2] > want[2] {
			t.Errorf("key %s: totals %v beyond those of 1..%d %v: a value counted twice", r.key, r.window, limit, want)
		}
		if slices.Equal(r.window, want) {
			done[r.key] = true
		}
	}
	for k := range final {
		if !done[k] {
			t.Errorf("key %s never showed the totals of 1..%d %v", k, limit, want)
		}
	}
}

// --on-error skip: a message whose user code raises is written with its
// traceback to the dead-letter file and the worker goes on; by default
// (stop) the worker stops with exit 1 even with resilience on, and its
// checkpoint files stay for a restart after the fix.
func TestResilience_OnErrorSkipWritesDeadLetters(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "raise_in", in, s.addr(), "--raise-in", "state_computation",
		"--run-with-resilience", "--resilience-dir", dir, "--on-error", "skip")
	m.waitOutput("Application has successfully initialized", 30*time.Second)
	conn := dial(t, in)
	defer conn.Close()
	for _, msg := range []string{"fine", "boom", "fine", "boom", "fine"} {
		send(t, conn, msg)
	}
	lines := s.waitLines(t, 3, 30*time.Second)
	if strings.Join(lines, "|") != "fine 1|fine 2|fine 3" {
		t.Errorf("sink got %q, want the three fine messages", lines)
	}
	dead := filepath.Join(dir, "Raise in-initializer.dead-letter")
	deadline := time.Now().Add(30 * time.Second)
	var recs []map[string]any
	for {
		b, _ := os.ReadFile(dead)
		recs = recs[:0]
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r map[string]any
			if json.Unmarshal([]byte(l), &r) == nil {
				recs = append(recs, r)
			}
		}
		if len(recs) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(recs) != 2 {
		t.Fatalf("dead-letter file %s holds %d records, want 2", dead, len(recs))
	}
	for _, r := range recs {
		if !strings.Contains(fmt.Sprint(r["stage"]), "tally") || !strings.Contains(fmt.Sprint(r["message"]), "boom") ||
			!strings.Contains(fmt.Sprint(r["traceback"]), "ValueError: state_computation was told to raise") {
			t.Errorf("dead letter %v does not name the stage, the message and the traceback", r)
		}
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	if st, err := os.Stat(dead); err != nil {
		t.Errorf("the dead-letter file is gone after a clean stop: %v", err)
	} else if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("the dead-letter file (message contents) is mode %04o, want 0600", st.Mode().Perm())
	}

	// The default: stop, exit 1, keep the files.
	dir2 := t.TempDir()
	s2 := newSink(t)
	in2 := freePort(t)
	m2 := machida(t, testdataDir(), "raise_in", in2, s2.addr(), "--raise-in", "state_computation",
		"--run-with-resilience", "--resilience-dir", dir2)
	m2.waitOutput("Application has successfully initialized", 30*time.Second)
	c2 := dial(t, in2)
	defer c2.Close()
	send(t, c2, "boom")
	if code := m2.wait(30 * time.Second); code != 1 {
		t.Errorf("exit %d on an exception with --on-error stop, want 1", code)
	}
	if !strings.Contains(m2.stderr.String(), "ValueError: state_computation was told to raise") {
		t.Errorf("no traceback on stderr:\n%s", m2.stderr.String())
	}
	if len(reFiles(t, dir2)) == 0 {
		t.Errorf("the checkpoint files are gone after a failure; a restart could not resume")
	}
}

// 0.6's resilience suite, scenario (a) (runtime spec 7.4): a 3-worker
// cluster with resilience grows by one, shrinks by one, then its last two
// workers crash (SIGKILL) and are started again; every grow, shrink and
// recovery happens while the generator runs, and the output is at least
// once with whole windows.
// reGenCluster starts a 3-worker multi_partition_detector cluster with
// resilience whose generator makes limit values for each of reKeys keys
// (2000 a second), output to recv; joiners get the same options.
func reGenCluster(t *testing.T, recv *rsReceiver, limit int) *rsCluster {
	t.Helper()
	gen := []string{"--gen-source", "--partitions", strconv.Itoa(reKeys), "--gen-limit", strconv.Itoa(limit),
		"--gen-rate", "2000", "--run-with-resilience", "--time-between-checkpoints", "200000000"}
	c := &rsCluster{t: t, dir: testdataDir(), module: "multi_partition_detector", next: 3, keys: reKeys,
		recv: recv, extra: gen}
	c.in, c.out = freePort(t), recv.addr()
	c.members = startCluster(t, c.dir, c.module, 3, c.in, c.out, append([]string{"--depth", "1"}, gen...)...)
	c.control = argValue(t, c.members[0], "--control")
	c.resilience = argValue(t, c.members[0], "--resilience-dir")
	return c
}

func TestResilience_GrowShrinkCrashRecover(t *testing.T) {
	tool(t, "external_sender")
	tool(t, "cluster_shrinker")
	recv := rsStartReceiver(t)
	const limit = 6000
	c := reGenCluster(t, recv, limit)
	progress := func(what string) {
		recv.waitRecords(t, recv.count()+1000, reRecoverWait, what)
	}
	progress("at the start")
	c.grow(1, c.members[0])
	progress("after the grow")
	c.shrinkNames([]string{c.members[len(c.members)-1].name})
	progress("after the shrink")
	// Crash the last two workers, then start them again.
	n := len(c.members)
	victims := c.members[n-2:]
	for _, v := range victims {
		v.cmd.Process.Signal(syscall.SIGKILL)
		v.wait(30 * time.Second)
	}
	for i, v := range victims {
		r := &clusterWorker{proc: start(t, v.dir, "machida3", v.args...), name: v.name, external: v.external, dir: v.dir, args: v.args}
		c.members[n-2+i] = r
	}
	for _, w := range c.members[n-2:] {
		w.waitOutput("RESILIENCE: Replayed", reRecoverWait)
		waitStatus(t, w, n)
	}
	final := reFinal(limit)
	recv.waitFinal(t, final, rsFinalTimeout)
	reCheck(t, recv, final)
	stopCluster(t, c.members, 0, false)
}

// With resilience, a worker that crashes while a shrink moves state
// (worker2 takes in one of the leaver's states: --die-importing-state)
// and is started again with its command line: the shrink is undone with
// it (the leaver takes back what it sent and stays), worker2 recovers
// from its checkpoint, the cluster rolls back to it, and the output is
// at least once with whole windows for every key.
//
// worker2 stays down until more of the moving keys' messages are parked
// than one processor call takes: the undo then resumes them over several
// calls, and no generator round may come in between (its new messages
// would overtake the parked ones of the same keys: windows such as
// [105 106 107 112], as this test showed now and then under load before
// the loop kept its own resumed work ahead of the generators).
func TestResilience_ShrinkUndoneWhenAWorkerCrashesAndComesBack(t *testing.T) {
	tool(t, "external_sender")
	tool(t, "cluster_shrinker")
	recv := rsStartReceiver(t)
	const limit, keys = 1000, 60
	gen := []string{"--depth", "1", "--gen-source", "--partitions", strconv.Itoa(keys), "--gen-limit", strconv.Itoa(limit),
		"--gen-rate", "4000", "--run-with-resilience", "--time-between-checkpoints", "200000000"}
	c := &rsCluster{t: t, dir: testdataDir(), module: "multi_partition_detector", next: 4, keys: keys, recv: recv, extra: gen}
	c.in, c.out = freePort(t), recv.addr()
	c.members = startClusterEach(t, c.dir, c.module, 4, c.in, func(int) string { return c.out }, func(i int) []string {
		if i == 2 {
			return []string{"--die-importing-state"}
		}
		return nil
	}, gen...)
	recv.waitRecords(t, 2000, reRecoverWait, "before the shrink")
	victim := c.members[2]
	if r := c.shrinkReply(c.members[0], "--workers", "worker3"); !strings.Contains(r, "Shrinking by 1 workers!") {
		t.Fatalf("cluster_shrinker --workers worker3: %q", r)
	}
	// While worker2 is down the undo waits, and the messages of the
	// moving keys (worker3's) wait parked: let more of them pile up than
	// one processor call takes (1024 messages), so that the undo resumes
	// them over several calls, with the generator running on.
	c.rsWaitLog(c.members[0], "to come back, to undo the failed grow or shrink", rsJoinTimeout, c.members[0])
	recv.waitRecords(t, recv.count()+6000, reRecoverWait, "while worker2 is down")
	back := c.restartCrashed(victim, "--die-importing-state")
	c.rsWaitLog(c.members[0], "and was undone", rsJoinTimeout, c.members[0])
	back.waitOutput("RESILIENCE: Replayed", reRecoverWait)
	for _, w := range c.members {
		waitStatus(t, w, 4)
	}
	final := map[string]uint64{}
	for _, k := range rsKeys(keys) {
		final[k] = limit
	}
	recv.waitFinal(t, final, rsFinalTimeout)
	reCheck(t, recv, final)
	stopCluster(t, c.members, 0, false)
}

// cluster_shutdown --keep-state: the cluster takes a last checkpoint and
// every worker keeps its files; the same command lines started again
// resume from it, so the output of both runs together is exactly once.
func TestResilience_ClusterShutdownKeepStateResumes(t *testing.T) {
	tool(t, "cluster_shutdown")
	reKeepStateResumes(t, nil, func(ws []*clusterWorker) {
		if out, err := execOutput(bin("cluster_shutdown"), "--keep-state", ws[1].external); err != nil {
			t.Fatalf("cluster_shutdown --keep-state: %v\n%s", err, out)
		}
	})
}

// The same with worker1 alone started with --keep-state-on-stop and
// SIGTERM sent to it: the initializer, started without the flag,
// coordinates the stop, and the whole cluster keeps its state.
func TestResilience_KeepStateOnStopOfAWorkerKeepsTheCluster(t *testing.T) {
	reKeepStateResumes(t, func(i int) []string {
		if i == 1 {
			return []string{"--keep-state-on-stop"}
		}
		return nil
	}, func(ws []*clusterWorker) {
		ws[1].cmd.Process.Signal(syscall.SIGTERM)
	})
}

// reKeepStateResumes runs a 3-worker cluster of the detector with
// resilience (and worker i's own arguments from each, nil for none),
// stops it with stop while the generator runs, checks that every worker
// exited 0 leaving its files and the initializer took a last
// checkpoint, then starts the same workers again: they resume, exactly
// once.
func reKeepStateResumes(t *testing.T, each func(i int) []string, stop func([]*clusterWorker)) {
	t.Helper()
	recv := rsStartReceiver(t)
	const limit = 3000
	ws := startClusterEach(t, testdataDir(), "multi_partition_detector", 3, freePort(t), func(int) string { return recv.addr() }, each,
		"--gen-source", "--partitions", strconv.Itoa(reKeys), "--gen-limit", strconv.Itoa(limit), "--gen-rate", "2000",
		"--run-with-resilience", "--time-between-checkpoints", "300000000")
	dir := argValue(t, ws[0], "--resilience-dir")
	recv.waitRecords(t, 3000, reRecoverWait, "before the stop")
	stop(ws)
	for _, w := range ws {
		if code := w.wait(60 * time.Second); code != 0 {
			t.Fatalf("%s exited %d, want 0", w.name, code)
		}
	}
	if !strings.Contains(ws[0].stdout.String(), "taken at the stop") {
		t.Errorf("the initializer took no last checkpoint")
	}
	for _, w := range ws {
		found := false
		for _, f := range reFiles(t, dir) {
			if strings.Contains(f, "-"+w.name+".checkpoint_ids") {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s left no checkpoint files: %v", w.name, reFiles(t, dir))
		}
	}
	if recv.count() >= limit*reKeys {
		t.Fatalf("the generator had finished before the stop; the test proves nothing")
	}
	again := reRestartAll(t, ws)
	final := reFinal(limit)
	recv.waitFinal(t, final, rsFinalTimeout)
	rsCheckOutput(t, recv, final, nil)
	stopCluster(t, again, 0, false)
}

// reRestartAll starts every worker of ws again with its command line
// (staggered as the harness starts them) and waits until each has
// replayed its files.
func reRestartAll(t *testing.T, ws []*clusterWorker) []*clusterWorker {
	t.Helper()
	var again []*clusterWorker
	for _, w := range ws {
		again = append(again, &clusterWorker{proc: start(t, w.dir, "machida3", w.args...), name: w.name, external: w.external, dir: w.dir, args: w.args})
		time.Sleep(50 * time.Millisecond) // as the harness staggers its workers
	}
	for _, w := range again {
		w.waitOutput("RESILIENCE: Replayed", reRecoverWait)
	}
	return again
}

// reCrashAtEnv is the variable with which a worker kills itself at a
// chosen step of the checkpoint protocol (engine/worker.CrashAtEnv).
const reCrashAtEnv = "MACHIDA_TEST_CRASH_AT"

// reStallStartEnv holds a worker before it reads its checkpoint files
// until a file exists (worker:path; StallStartEnv in engine/worker).
const reStallStartEnv = "MACHIDA_TEST_STALL_START"

// A crash at each step of a checkpoint: workers of a 3-worker cluster
// kill themselves (SIGKILL) at chosen steps while the generator runs,
// each started again with the same command line at once:
//
//   - worker1 after writing its part, before telling the initializer
//     (the checkpoint never completes);
//   - the initializer after committing in its own files, before telling
//     the others (the newest checkpoint is committed only there);
//   - worker2 when the commit arrives, before recording it (its part is
//     written but not committed in its files; the rollback must take it);
//   - worker1 again (its second process) after taking its part, before
//     writing it.
//
// Every value of every key arrives, windows stay whole (state consistent
// with the generator), and a clean stop removes the files.
func TestResilience_CrashAtEachCheckpointStep(t *testing.T) {
	plans := map[string][]string{
		"worker1":     {"written:3", "taken:20"},
		"initializer": {"commit:8"},
		"worker2":     {"commit:14"},
	}
	env := func(names ...string) string {
		var ents []string
		for _, n := range names {
			if len(plans[n]) > 0 {
				ents = append(ents, n+":"+plans[n][0])
			}
		}
		return strings.Join(ents, ",")
	}
	t.Setenv(reCrashAtEnv, env("initializer", "worker1", "worker2"))
	recv := rsStartReceiver(t)
	const limit = 3000
	ws, dir := reStartCluster(t, recv, limit, 2000)
	crashes := 0
	for _, p := range plans {
		crashes += len(p)
	}
	for c := 0; c < crashes; c++ {
		// Whichever worker is the next to reach its step.
		victim := -1
		deadline := time.Now().Add(reRecoverWait)
		for victim < 0 {
			for i, w := range ws {
				select {
				case <-w.done:
					victim = i
				default:
				}
				if victim >= 0 {
					break
				}
			}
			if victim < 0 {
				if time.Now().After(deadline) {
					t.Fatalf("crash %d of %d: no worker reached its step in %v (left: %v)", c+1, crashes, reRecoverWait, plans)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		v := ws[victim]
		step := plans[v.name][0]
		if !strings.Contains(v.stderr.String(), "killing this worker at step") {
			t.Fatalf("%s exited, but not at its crash point %s: %v\nstderr:\n%s", v.name, step, v.err, v.stderr.String())
		}
		t.Logf("crash %d: %s at %s", c+1, v.name, step)
		plans[v.name] = plans[v.name][1:]
		// The same command line again; only a next step of this worker's
		// plan in its environment.
		t.Setenv(reCrashAtEnv, env(v.name))
		r := &clusterWorker{proc: start(t, v.dir, "machida3", v.args...), name: v.name, external: v.external, dir: v.dir, args: v.args}
		ws[victim] = r
		r.waitOutput("RESILIENCE: Replayed", reRecoverWait)
	}
	for _, w := range ws {
		waitStatus(t, w, 3)
	}
	reFinishCluster(t, recv, ws, dir, limit)
}

// Recovery files that cannot return a worker to a checkpoint refuse its
// restart, before it joins (so nothing is delivered to it and lost with
// it), with 0.6's "Cannot continue!", the file and what to do; a worker
// that comes back afresh (its files moved away) is refused by the
// initializer, since the cluster could not return its keys to the last
// checkpoint with the others'. Meanwhile the rest of the cluster goes on
// with worker1's keys stalled, and once its intact files are back the
// same command line recovers it: the output is at least once with
// whole windows for every key (before this, both restarts were let in
// with empty state: windows such as [114 115 116 1]).
func TestResilience_UnusableFilesRefuseTheRestart(t *testing.T) {
	recv := rsStartReceiver(t)
	const limit = 3000
	ws, dir := reStartCluster(t, recv, limit, 1500)
	const app = "Multi Partition Detector"
	recv.waitRecords(t, 1000, reRecoverWait, "before the kill")
	reWaitCheckpoints(t, dir, app, "worker1", 2)
	v := ws[1]
	v.cmd.Process.Signal(syscall.SIGKILL)
	v.wait(30 * time.Second)

	refused := func(what, want string) {
		t.Helper()
		p := start(t, v.dir, "machida3", v.args...)
		if code := p.wait(reRecoverWait); code != 1 {
			t.Fatalf("%s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", what, code, p.stdout.String(), p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("%s: stderr does not say %q:\n%s", what, want, p.stderr.String())
		}
		if strings.Contains(p.stdout.String(), "RESILIENCE: Replayed") {
			t.Errorf("%s: the refused worker replayed a checkpoint", what)
		}
	}
	// Its event log emptied.
	evlog := filepath.Join(dir, app+"-worker1.evlog")
	intact, err := os.ReadFile(evlog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(evlog, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused("an empty event log", "Some resilience/recovery files are missing or damaged! Cannot continue!")
	if err := os.WriteFile(evlog, intact, 0o600); err != nil {
		t.Fatal(err)
	}
	// Files moved away and back.
	away := t.TempDir()
	moveAway := func(match func(string) bool) (back func()) {
		var moved []string
		for _, name := range reFiles(t, dir) {
			if strings.HasPrefix(name, app+"-worker1.") && match(name) {
				if err := os.Rename(filepath.Join(dir, name), filepath.Join(away, name)); err != nil {
					t.Fatal(err)
				}
				moved = append(moved, name)
			}
		}
		return func() {
			for _, name := range moved {
				if err := os.Rename(filepath.Join(away, name), filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Its checkpoint files gone, its listeners' files there: a restart
	// with nothing to return to.
	back := moveAway(func(name string) bool {
		return strings.HasSuffix(name, ".evlog") || strings.HasSuffix(name, ".checkpoint_ids")
	})
	refused("no checkpoint files", "restarted from recovery files that hold no checkpoint")
	back()
	// All its files gone: it starts afresh.
	back = moveAway(func(string) bool { return true })
	refused("no recovery files", `worker "worker1" of this cluster started afresh`)
	for _, name := range reFiles(t, dir) {
		if strings.HasPrefix(name, app+"-worker1.") {
			t.Errorf("the refused fresh worker left %s behind", name)
		}
	}
	back()
	// Its files back: the same command line recovers it.
	reRecoverAndFinish(t, recv, ws, 1, dir, limit)
}

// reFlowingCluster starts a 3-worker cluster of generators that make
// limit values a key, and waits until its output flows and worker1 has
// committed a checkpoint.
func reFlowingCluster(t *testing.T, limit int) (*rsReceiver, []*clusterWorker, string) {
	t.Helper()
	recv := rsStartReceiver(t)
	ws, dir := reStartCluster(t, recv, limit, 3000)
	recv.waitRecords(t, 1000, reRecoverWait, "before the test's fault")
	reWaitCheckpoints(t, dir, "Multi Partition Detector", "worker1", 1)
	return recv, ws, dir
}

// reRecoverAndFinish starts worker i of a 3-worker cluster again with
// its command line, waits until it has recovered and reports the cluster
// processing, and then until every key has every value (reFinishCluster).
func reRecoverAndFinish(t *testing.T, recv *rsReceiver, ws []*clusterWorker, i int, dir string, limit int) {
	t.Helper()
	v := ws[i]
	r := &clusterWorker{proc: start(t, v.dir, "machida3", v.args...), name: v.name, external: v.external, dir: v.dir, args: v.args}
	ws[i] = r
	r.waitOutput("RESILIENCE: Replayed", reRecoverWait)
	waitStatus(t, r, 3)
	reFinishCluster(t, recv, ws, dir, limit)
}

// A worker alone whose list of committed checkpoints is garbage (none of
// its ids is in the event log) refuses to start rather than believe it,
// says the file is damaged, and keeps its files; with the intact list
// back it resumes from its checkpoint.
func TestResilience_GarbageCheckpointListRefusesTheStart(t *testing.T) {
	dir := t.TempDir()
	recv := rsStartReceiver(t)
	const limit = 1500
	args := reArgs(t, dir, recv.addr(), limit, 1500)
	w := start(t, testdataDir(), "machida3", args...)
	reWaitCheckpoints(t, dir, "Multi Partition Detector", "initializer", 2)
	recv.waitRecords(t, 500, reRecoverWait, "before the kill")
	w.cmd.Process.Signal(syscall.SIGKILL)
	w.wait(30 * time.Second)
	ids := filepath.Join(dir, "Multi Partition Detector-initializer.checkpoint_ids")
	intact, err := os.ReadFile(ids)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ids, []byte(strings.Repeat("garbage!", 11)+"xy"), 0o600); err != nil {
		t.Fatal(err)
	}
	w = start(t, testdataDir(), "machida3", args...)
	if code := w.wait(reRecoverWait); code != 1 {
		t.Fatalf("exit %d with a garbage checkpoint list, want 1\nstderr:\n%s", code, w.stderr.String())
	}
	for _, want := range []string{"Cannot continue!", "90 bytes, not a whole number of 16-byte records", "move them away if this worker runs alone"} {
		if !strings.Contains(w.stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, w.stderr.String())
		}
	}
	if err := os.WriteFile(ids, intact, 0o600); err != nil {
		t.Fatal(err)
	}
	reRecoverAlone(t, args, recv, dir, limit)
}

// reRecoverAlone starts a worker alone again with args: it must recover
// from its files in dir, give every key's last value (limit) at least
// once with whole windows, and stop cleanly.
func reRecoverAlone(t *testing.T, args []string, recv *rsReceiver, dir string, limit int) {
	t.Helper()
	w := start(t, testdataDir(), "machida3", args...)
	w.waitOutput("RESILIENCE: Replayed", reRecoverWait)
	final := reFinal(limit)
	recv.waitFinal(t, final, rsFinalTimeout)
	reCheck(t, recv, final)
	reStopCleanly(t, w, dir)
}

// An exception in user code on one worker of a cluster with resilience
// stops the cluster, and every worker keeps its checkpoint files, not the
// failed one alone (the others stop cleanly, which would otherwise remove
// theirs): the same command lines started again resume every key's state
// from the last checkpoint, on both workers.
func TestResilience_AnExceptionOnAWorkerKeepsEveryWorkersFiles(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	ws := startCluster(t, testdataDir(), "raise_in", 2, in, s.addr(), "--raise-in", "state_computation",
		"--run-with-resilience", "--time-between-checkpoints", "100000000")
	dir := argValue(t, ws[0], "--resilience-dir")
	conn := dial(t, in)
	var msgs []string
	for i := 0; i < 60; i++ {
		msgs = append(msgs, fmt.Sprintf("fine%d", i))
	}
	send(t, conn, msgs...)
	s.waitLines(t, len(msgs), 60*time.Second)
	// A checkpoint committed after every message was processed (the
	// count of committed ones grows by two from now).
	st, err := os.Stat(filepath.Join(dir, "Raise in-initializer.checkpoint_ids"))
	if err != nil {
		t.Fatal(err)
	}
	reWaitCheckpoints(t, dir, "Raise in", "initializer", int(st.Size()/16)+2)
	owners := stateKeys(t, ws)
	var here, there string // a key of the initializer's, one of worker1's
	for k, w := range owners {
		if w == "initializer" && (here == "" || k < here) {
			here = k
		}
		if w == "worker1" && (there == "" || k < there) {
			there = k
		}
	}
	if here == "" || there == "" {
		t.Fatalf("keys per worker: %v", owners)
	}
	send(t, conn, "boom "+there)
	if code := ws[1].wait(60 * time.Second); code != 1 {
		t.Fatalf("worker1 ran the failing code and exited %d, want 1", code)
	}
	if code := ws[0].wait(60 * time.Second); code != 0 {
		t.Fatalf("the initializer exited %d, want 0", code)
	}
	files := reFiles(t, dir)
	for _, w := range ws {
		if !slices.Contains(files, "Raise in-"+w.name+".checkpoint_ids") {
			t.Fatalf("%s left no checkpoint files: %v", w.name, files)
		}
	}
	again := reRestartAll(t, ws)
	for _, w := range again {
		waitStatus(t, w, len(again))
	}
	conn2 := dial(t, in)
	send(t, conn2, here, there)
	got := s.waitLines(t, len(msgs)+2, 60*time.Second)
	tail := got[len(msgs):]
	slices.Sort(tail)
	want := []string{here + " 2", there + " 2"}
	slices.Sort(want)
	if !slices.Equal(tail, want) {
		t.Errorf("after the restart: %q, want %q (each key's count from the checkpoint, plus one)", tail, want)
	}
	stopCluster(t, again, 0, false)
}

// The initializer crashes (SIGKILL, at a chosen step: reCrashAtEnv) in
// the middle of a grow, after every worker froze and sent its states,
// and is started again with its command line:
//
//   - before the Commit (rescale-frozen): it comes back with the cluster
//     of before and undoes the grow on the workers that are back frozen
//     in it, before the cluster starts again; the joiner exits 1 with
//     its Join Error; the cluster rolls back to its last checkpoint and
//     every value of every key arrives with whole windows;
//   - after recording the new cluster (rescale-committed): every worker
//     completes the grow when it is back, the joiner too, and the
//     cluster of 4 processes again; the generator goes on from its
//     position in the last checkpoint (before the grow), not from its
//     first value, and the initializer prints 0.6's recovery lines;
//   - the same with the old workers killed too while the initializer is
//     down, started again after it: each goes on with its checkpoint
//     from before the grow (no rollback: the cluster has none to make)
//     but without the keys the grow gave the joiner (every key on one
//     worker).
//
// Neither leaves a worker frozen for ever (they were, before: the
// rollback's drain never came to rest).
func TestResilience_InitializerCrashedDuringAGrow(t *testing.T) {
	tool(t, "external_sender")
	for _, name := range []string{"rescale-frozen", "rescale-committed", "rescale-committed-workers-too"} {
		step, workersToo := strings.CutSuffix(name, "-workers-too")
		t.Run(name, func(t *testing.T) {
			recv := rsStartReceiver(t)
			const limit = 4000
			t.Setenv(reCrashAtEnv, "initializer:"+step+":1")
			c := reGenCluster(t, recv, limit)
			t.Setenv(reCrashAtEnv, "")
			recv.waitRecords(t, 1000, reRecoverWait, "before the grow")
			j := c.startJoiner("worker3", c.joinArgs("worker3", c.control, 1, freePort(t)))
			init := c.members[0]
			if _, exited := rsWaitExit(init.proc, rsJoinTimeout); !exited {
				t.Fatalf("the initializer did not kill itself at %s; output:\n%s", step, rsTail(init.proc, 30))
			}
			if workersToo {
				// The old workers die too while it is down (frozen in
				// the grow); started again after it, each restores its
				// checkpoint from before the grow.
				for _, w := range c.members[1:] {
					w.proc.kill()
				}
			}
			back := &clusterWorker{proc: start(t, init.dir, "machida3", init.args...), name: init.name,
				external: init.external, dir: init.dir, args: init.args}
			c.members[0] = back
			if workersToo {
				back.waitOutput("Restarting a listener", reRecoverWait)
				for i, w := range c.members[1:] {
					c.members[i+1] = &clusterWorker{proc: start(t, w.dir, "machida3", w.args...), name: w.name,
						external: w.external, dir: w.dir, args: w.args}
				}
			}
			if step == "rescale-frozen" {
				c.rsWaitLog(back, "under way when the initializer stopped was undone", rsJoinTimeout, back)
				if code, exited := rsWaitExit(j.proc, rsJoinTimeout); !exited || code != 1 {
					t.Fatalf("the joiner of the undone grow: exited %v, code %d; output:\n%s", exited, code, rsTail(j.proc, 30))
				}
				if !strings.Contains(rsOutput(j.proc), "Join Error") {
					t.Errorf("the joiner did not say why it left:\n%s", rsTail(j.proc, 30))
				}
				back.waitOutput("RESILIENCE: Replayed", reRecoverWait)
				for _, w := range c.members {
					waitStatus(t, w, 3)
				}
				final := reFinal(limit)
				recv.waitFinal(t, final, rsFinalTimeout)
				reCheck(t, recv, final)
				stopCluster(t, c.members, 0, false)
				return
			}
			// rescale-committed: the grow completes everywhere. (The
			// cluster has no checkpoint after the grow to roll back
			// to: the initializer goes back to its own from before it;
			// the other workers' keys take again what its generator
			// makes again, so only progress is checked.)
			c.members = append(c.members, j)
			for _, w := range c.members {
				waitStatus(t, w, 4)
			}
			recv.waitRecords(t, recv.count()+500, reRecoverWait, "after the grow completed")
			if workersToo {
				// Each key on one worker: those a restarted worker's old
				// checkpoint held and the grow gave the joiner are gone
				// from it.
				for _, w := range c.members[1:3] {
					w.waitOutput("the cluster's recovery has ended without a rollback", reRecoverWait)
				}
				stateKeys(t, c.members)
			} else {
				for _, w := range c.members[1:] {
					if !strings.Contains(rsOutput(w.proc), "completing it here") {
						t.Errorf("%s did not complete the grow itself:\n%s", w.name, rsTail(w.proc, 30))
					}
				}
			}
			// (The generator goes on from the initializer's checkpoint
			// from before the grow: from its initial value it would make
			// the whole stream again, which the other workers' keys
			// would count a second time.)
			back.waitOutput("goes on without rolling back", reRecoverWait)
			back.waitOutput("~~~Resuming message processing.~~~", reRecoverWait)
			firsts := map[string]int{}
			for _, r := range recv.snapshot() {
				if r.err == "" && r.last() == 1 {
					firsts[r.key]++
				}
			}
			for k, n := range firsts {
				if n > 1 {
					t.Errorf("key %s took its first value %d times: the generator started over", k, n)
				}
			}
			stopCluster(t, c.members, 0, false)
		})
	}
}

// A worker killed after a shrink completed and before the checkpoint
// that follows it (crash step rescale-released: its release done, not
// acked) finds no checkpoint to return to: the cluster goes on without a
// rollback. What its peers sent it while it was down, resent when it is
// back and held until that decision, runs then (it was dropped once, as
// if a rollback would send it again). While the restarted worker reads
// its files (held up here by the test) the initializer's sources wait:
// words sent meanwhile wait there instead of piling up in the worker's
// hold. Word count with every word once: each word comes out exactly
// once, with a count of 1.
func TestResilience_WorkerCrashedAfterAShrinkRunsWhatWaitedForIt(t *testing.T) {
	tool(t, "cluster_shrinker")
	tool(t, "external_sender")
	dir := exampleDir("word_count")
	out := newSink(t)
	in := freePort(t)
	t.Setenv(reCrashAtEnv, "worker1:rescale-released:1")
	ws := startCluster(t, dir, "word_count", 3, in, out.addr(), "--run-with-resilience", "--time-between-checkpoints", "200000000", "--keep-state-on-stop")
	t.Setenv(reCrashAtEnv, "")
	conn := dial(t, in)
	defer conn.Close()
	var sent []string
	send := func(prefix string, n int) {
		t.Helper()
		var b []byte
		for i := 0; i < n; i++ {
			w := fmt.Sprintf("%s%d", prefix, i)
			sent = append(sent, w)
			b = append(b, frame([]byte(w))...)
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatalf("send the %q words: %v", prefix, err)
		}
	}
	send("a", 600)
	out.waitLines(t, len(sent), reRecoverWait)

	// Shrink worker2 away; worker1 kills itself once it has released.
	stdout, stderr, code, err := rsRun(rsToolTimeout+5*time.Second, "cluster_shrinker", "--external", ws[0].external, "--workers", "worker2")
	if code != 0 || err != nil || stdout != "Cluster shrink response: Shrinking by 1 workers!\n" {
		t.Fatalf("cluster_shrinker: exit %d (%v): %s%s", code, err, stdout, stderr)
	}
	if _, exited := rsWaitExit(ws[1].proc, rsJoinTimeout); !exited {
		t.Fatalf("worker1 did not kill itself at rescale-released; output:\n%s", rsTail(ws[1].proc, 30))
	}
	if code, exited := rsWaitExit(ws[2].proc, rsJoinTimeout); !exited || code != 0 {
		t.Fatalf("the leaver: exited %v, code %d; output:\n%s", exited, code, rsTail(ws[2].proc, 30))
	}
	ws[0].waitOutput("AUTOSCALE: shrink complete", rsJoinTimeout)
	resDir := ""
	for i, a := range ws[0].args {
		if a == "--resilience-dir" {
			resDir = ws[0].args[i+1]
		}
	}
	for _, name := range reFiles(t, resDir) {
		if strings.Contains(name, "-worker2.") {
			t.Errorf("the worker that left kept %s (with --keep-state-on-stop: its keys are the others' now)", name)
		}
	}

	// While worker1 is down: its words wait at the initializer.
	before := len(out.lines())
	send("b", 600)
	out.waitLines(t, before+1, reRecoverWait)

	victim := ws[1]
	goOn := filepath.Join(t.TempDir(), "read-the-files")
	t.Setenv(reStallStartEnv, victim.name+":"+goOn)
	back := &clusterWorker{proc: start(t, victim.dir, "machida3", victim.args...), name: victim.name,
		external: victim.external, dir: victim.dir, args: victim.args}
	t.Setenv(reStallStartEnv, "")
	ws = []*clusterWorker{ws[0], back}
	back.waitOutput(reStallStartEnv+": waiting", reRecoverWait)
	ws[0].waitOutput("the sources wait for its request for the recovery", reRecoverWait)
	send("s", 2000)
	if err := os.WriteFile(goOn, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ws[0].waitOutput("goes on without rolling back", reRecoverWait)
	back.waitOutput("running what peers sent meanwhile", reRecoverWait)
	for _, w := range ws {
		waitStatus(t, w, 2)
	}
	send("c", 600)

	deadline := time.Now().Add(reRecoverWait)
	for {
		lines := out.lines()
		got := map[string]int{}
		var problems []string
		for _, l := range lines {
			w, n, ok := strings.Cut(l, " => ")
			if !ok || n != "1" {
				problems = append(problems, fmt.Sprintf("line %q", l))
			}
			got[w]++
		}
		var missing []string
		for _, w := range sent {
			if got[w] == 0 {
				missing = append(missing, w)
			} else if got[w] > 1 {
				problems = append(problems, fmt.Sprintf("%s came out %d times", w, got[w]))
			}
		}
		if len(problems) > 0 {
			t.Fatalf("%d problems:\n  %s", len(problems), strings.Join(rsFirst(problems, 30), "\n  "))
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d words never came out, e.g. %v; worker1:\n%s", len(missing), len(sent), rsFirst(missing, 20), rsTail(back.proc, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopCluster(t, ws, 0, false)
}

// A restarted worker that dies while it reads its files (before it asks
// for the recovery) does not leave the cluster waiting for it: the
// initializer's sources, paused while it reads, go on once its control
// link is gone (the other workers' keys move again); started once more,
// it recovers, and every key ends with every value.
func TestResilience_WorkerKilledWhileReadingItsFilesLetsTheSourcesGoOn(t *testing.T) {
	const limit = 2500
	recv, ws, dir := reFlowingCluster(t, limit)
	v := ws[1]
	v.cmd.Process.Signal(syscall.SIGKILL)
	v.wait(30 * time.Second)

	goOn := filepath.Join(t.TempDir(), "read-the-files") // never made
	t.Setenv(reStallStartEnv, v.name+":"+goOn)
	reading := start(t, v.dir, "machida3", v.args...)
	t.Setenv(reStallStartEnv, "")
	reading.waitOutput(reStallStartEnv+": waiting", reRecoverWait)
	ws[0].waitOutput("the sources wait for its request for the recovery", reRecoverWait)
	reading.kill()
	ws[0].waitOutput("went before it asked for the recovery; the sources go on", reRecoverWait)
	recv.waitRecords(t, recv.count()+50, reRecoverWait, "from the other workers' keys once the sources went on")
	reRecoverAndFinish(t, recv, ws, 1, dir, limit)
}

// Output still queued in a worker's sink (its receiver gone) is not
// covered by a checkpoint: no checkpoint commits until it is written, so
// the worker killed meanwhile and started again goes back to one whose
// output was delivered, and the rollback makes the rest again. Every key
// ends with every value (none lost with the killed worker's queue).
func TestResilience_OutputQueuedInASinkIsNotLostWithItsWorker(t *testing.T) {
	const limit = 2500
	recv, ws, dir := reFlowingCluster(t, limit)
	failedBefore := strings.Count(ws[0].stderr.String(), "not written to its sink yet")
	recv.drop()
	eventually(t, reRecoverWait, func() (bool, string) {
		n := strings.Count(ws[0].stderr.String(), "not written to its sink yet")
		return n > failedBefore, "no checkpoint failed for output not yet written while the receiver was gone"
	})

	ws[1].cmd.Process.Signal(syscall.SIGKILL)
	ws[1].wait(30 * time.Second)
	recv.reopen(t) // (the restarted worker waits for its sink too)
	reRecoverAndFinish(t, recv, ws, 1, dir, limit)
}

// A worker that was down when its cluster stopped cleanly keeps its
// files (the others removed theirs). Started again with the others, in a
// cluster that starts afresh, it is refused (its state would be of the
// earlier run, everyone else's empty), says what to do, and keeps its
// files; with them moved away it joins, empty like the others.
func TestResilience_StaleFilesOfAWorkerDownAtACleanStopAreRefused(t *testing.T) {
	_, ws, dir := reFlowingCluster(t, 2500)
	ws[1].cmd.Process.Signal(syscall.SIGKILL)
	ws[1].wait(30 * time.Second)
	stopCluster(t, []*clusterWorker{ws[0], ws[2]}, 0, false)
	var stale []string
	for _, name := range reFiles(t, dir) {
		if strings.HasPrefix(name, "Multi Partition Detector-worker1.") {
			stale = append(stale, name)
		} else {
			t.Errorf("a clean stop left %s", name)
		}
	}
	if len(stale) == 0 {
		t.Fatal("the killed worker's files are gone")
	}

	again := make([]*clusterWorker, len(ws))
	for i, w := range ws {
		again[i] = &clusterWorker{proc: start(t, w.dir, "machida3", w.args...), name: w.name, external: w.external, dir: w.dir, args: w.args}
		time.Sleep(50 * time.Millisecond) // as the harness staggers its workers
	}
	if code, exited := rsWaitExit(again[1].proc, rsJoinTimeout); !exited || code != 1 {
		t.Fatalf("worker1 with the earlier run's files: exited %v, code %d, want 1; output:\n%s", exited, code, rsTail(again[1].proc, 30))
	}
	again[1].waitOutput("this cluster was started afresh", reRecoverWait)
	for _, name := range stale {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("the refused worker's file %s: %v", name, err)
		}
	}

	aside := t.TempDir()
	for _, name := range stale {
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(aside, name)); err != nil {
			t.Fatal(err)
		}
	}
	w := ws[1]
	again[1] = &clusterWorker{proc: start(t, w.dir, "machida3", w.args...), name: w.name, external: w.external, dir: w.dir, args: w.args}
	for _, w := range again {
		waitStatus(t, w, 3)
	}
	if strings.Contains(again[1].stdout.String(), "Recovering from recovery files") {
		t.Errorf("worker1 recovered from files it should not have:\n%s", rsTail(again[1].proc, 30))
	}
	stopCluster(t, again, 0, false)
}

// The same for a worker that came in by a grow, started again with its
// --join command line: refused, its files kept.
func TestResilience_StaleFilesOfAJoinerDownAtACleanStopAreRefused(t *testing.T) {
	tool(t, "external_sender")
	recv := rsStartReceiver(t)
	c := reGenCluster(t, recv, 6000)
	recv.waitRecords(t, 1000, reRecoverWait, "at the start")
	j := c.grow(1, c.members[0])[0]
	reWaitCheckpoints(t, c.resilience, "Multi Partition Detector", j.name, 1)
	j.cmd.Process.Signal(syscall.SIGKILL)
	j.wait(30 * time.Second)
	first := c.members[:len(c.members)-1]
	stopCluster(t, first, 0, false)

	var again []*clusterWorker
	for _, w := range first {
		again = append(again, &clusterWorker{proc: start(t, w.dir, "machida3", w.args...), name: w.name, external: w.external, dir: w.dir, args: w.args})
		time.Sleep(50 * time.Millisecond) // as the harness staggers its workers
	}
	for _, w := range again {
		waitStatus(t, w, len(again))
	}
	back := start(t, j.dir, "machida3", j.args...)
	if code, exited := rsWaitExit(back, rsJoinTimeout); !exited || code != 1 {
		t.Fatalf("the joiner with the earlier run's files: exited %v, code %d, want 1; output:\n%s", exited, code, rsTail(back, 30))
	}
	back.waitOutput("this cluster was started afresh", reRecoverWait)
	kept := 0
	for _, name := range reFiles(t, c.resilience) {
		if strings.HasPrefix(name, "Multi Partition Detector-"+j.name+".") {
			kept++
		}
	}
	if kept == 0 {
		t.Errorf("the refused joiner's files are gone: %v", reFiles(t, c.resilience))
	}
	stopCluster(t, again, 0, false)
}
