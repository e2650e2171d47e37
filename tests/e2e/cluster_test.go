package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// clusterWorker is one worker of a test cluster.
type clusterWorker struct {
	*proc
	name     string
	external string
	dir      string
	args     []string // its command line, to start it again
}

// startCluster starts n workers of module in dir the way Wallaroo's
// harness does (runtime spec 7.1): the initializer with --cluster-initializer
// --worker-count n --control --data --external, then the others 50 ms apart
// with --control <initializer> --my-control --my-data --external --name.
// It returns once the initializer is ready and every worker answers the
// cluster-status query with processing_messages true.
func startCluster(t *testing.T, dir, module string, n int, in, out string, extra ...string) []*clusterWorker {
	t.Helper()
	return startClusterOuts(t, dir, module, n, in, func(int) string { return out }, extra...)
}

// startClusterOuts is startCluster with worker i's --out given by out(i).
func startClusterOuts(t *testing.T, dir, module string, n int, in string, out func(i int) string, extra ...string) []*clusterWorker {
	t.Helper()
	return startClusterEach(t, dir, module, n, in, out, nil, extra...)
}

// startClusterEach is startClusterOuts with more options for worker i
// alone from each(i) (nil: none).
func startClusterEach(t *testing.T, dir, module string, n int, in string, out func(i int) string, each func(i int) []string, extra ...string) []*clusterWorker {
	t.Helper()
	control := freePort(t)
	// Recovery files (spec 3.9) go to a directory of this test's own, so
	// a failed test cannot leave files that turn a later run into a
	// restart.
	resilience := t.TempDir()
	var ws []*clusterWorker
	for i := 0; i < n; i++ {
		ext := freePort(t)
		args := []string{"--application-module", module, "--in", in, "--out", out(i),
			"--metrics", freePort(t), "--external", ext, "--resilience-dir", resilience}
		name := "initializer"
		if i == 0 {
			args = append(args, "--name", "initializer", "--cluster-initializer", "--worker-count", strconv.Itoa(n),
				"--control", control, "--data", freePort(t))
		} else {
			name = fmt.Sprintf("worker%d", i)
			args = append(args, "--name", name, "--control", control,
				"--my-control", freePort(t), "--my-data", freePort(t))
		}
		args = append(args, "--ponythreads=1", "--ponypinasio", "--ponynoblock")
		args = append(args, extra...)
		if each != nil {
			args = append(args, each(i)...)
		}
		ws = append(ws, &clusterWorker{proc: start(t, dir, "machida3", args...), name: name, external: ext, dir: dir, args: args})
		time.Sleep(50 * time.Millisecond) // as the harness staggers its workers
	}
	ws[0].waitOutput("Application has successfully initialized", 60*time.Second)
	if n > 1 {
		// 0.6's initializer lines before it (spec 3.2, step 5).
		out := ws[0].stdout.String()
		done := strings.Index(out, "Application has successfully initialized")
		want := []string{fmt.Sprintf("All %d workers reporting Topology ready!", n)}
		for _, w := range ws[1:] {
			want = append(want, w.name+" reported topology ready!")
		}
		for _, line := range want {
			if i := strings.Index(out, line); i < 0 || i > done {
				t.Errorf("the initializer did not print %q before it initialized:\n%s", line, out)
			}
		}
	}
	for _, w := range ws {
		waitStatus(t, w, n)
	}
	return ws
}

// toolFlags returns the security options of w's command line
// (--cluster-secret-file, --tls-*), which the operator tools need to
// reach its external channel.
func (w *clusterWorker) toolFlags() []string {
	var out []string
	for i := 0; i+1 < len(w.args); i++ {
		switch w.args[i] {
		case "--cluster-secret-file", "--tls-cert", "--tls-key", "--tls-ca":
			out = append(out, w.args[i], w.args[i+1])
		}
	}
	return out
}

// waitStatus waits until w reports a formed, processing cluster of n.
func waitStatus(t *testing.T, w *clusterWorker, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := execOutput(bin("external_sender"), append([]string{"--external", w.external, "--type", "cluster-status-query", "--json"}, w.toolFlags()...)...)
		var st struct {
			WorkerCount int      `json:"worker_count"`
			WorkerNames []string `json:"worker_names"`
			Processing  bool     `json:"processing_messages"`
		}
		if err == nil && json.Unmarshal([]byte(strings.TrimSpace(out)), &st) == nil && st.Processing && st.WorkerCount == n {
			if st.WorkerNames[0] != "initializer" || len(st.WorkerNames) != n {
				t.Fatalf("%s: worker names %v", w.name, st.WorkerNames)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reported a processing cluster of %d: last answer %q (%v)", w.name, n, out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopCluster asks one worker to stop the cluster and expects every
// worker to exit 0.
func stopCluster(t *testing.T, ws []*clusterWorker, via int, signal bool) {
	t.Helper()
	if signal {
		if err := ws[via].cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	} else if out, err := execOutput(bin("cluster_shutdown"), append(ws[via].toolFlags(), ws[via].external)...); err != nil {
		t.Fatalf("cluster_shutdown %s: %v\n%s", ws[via].external, err, out)
	}
	for _, w := range ws {
		if code := w.wait(60 * time.Second); code != 0 {
			t.Errorf("%s exited %d after the cluster was told to stop, want 0", w.name, code)
		}
	}
}

// stateKeys asks every worker for its state keys; each key must be held
// by exactly one worker. Returns key -> worker.
func stateKeys(t *testing.T, ws []*clusterWorker) map[string]string {
	t.Helper()
	owner := map[string]string{}
	for _, w := range ws {
		out, err := execOutput(bin("external_sender"), append([]string{"--external", w.external, "--type", "state-entity-query", "--json"}, w.toolFlags()...)...)
		if err != nil {
			t.Fatalf("%s: state-entity-query: %v", w.name, err)
		}
		var byStage map[string][]string
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &byStage); err != nil {
			t.Fatalf("%s: state-entity-query answer %q: %v", w.name, out, err)
		}
		for _, keys := range byStage {
			for _, k := range keys {
				if o, dup := owner[k]; dup {
					t.Errorf("key %q is held by %s and %s", k, o, w.name)
				}
				owner[k] = w.name
			}
		}
	}
	return owner
}

// runWordCountCluster runs the word count example on a cluster of
// workers (extra: more options for every worker) and stops it through
// worker via, with SIGTERM or cluster_shutdown.
func runWordCountCluster(t *testing.T, workers int, via int, signal bool, extra ...string) []*clusterWorker {
	dir := exampleDir("word_count")
	input := filepath.Join(dir, "input.txt")
	want := referenceCounts(readLines(t, input))
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "word_count", workers, in, recv.addr, extra...)
	lines := readLines(t, input)
	exSend(t, dir, in, len(lines), "--file", input, "--batch-size", "5", "--interval", "1_000_000")
	got := recv.waitLines(t, total(want), 60*time.Second)
	compareCounts(t, lastCounts(t, got), want)
	owners := stateKeys(t, ws)
	byWorker := map[string]int{}
	for _, w := range owners {
		byWorker[w]++
	}
	if len(byWorker) != workers {
		t.Errorf("state keys spread over %d workers, want all %d: %v", len(byWorker), workers, byWorker)
	}
	stopCluster(t, ws, via, signal)
	recv.stopWhenDrained(t)
	if n := len(recv.lines()); n != total(want) {
		t.Errorf("%d output lines, want one per word: %d", n, total(want))
	}
	return ws
}

func TestCluster_WordCountTwoWorkersShutdownFromAWorker(t *testing.T) {
	runWordCountCluster(t, 2, 1, false)
}

func TestCluster_WordCountThreeWorkersSIGTERMToAWorker(t *testing.T) {
	runWordCountCluster(t, 3, 2, true)
}

func TestCluster_ExternalQueriesPerWorker(t *testing.T) {
	dir := exampleDir("word_count")
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "word_count", 3, in, recv.addr)
	for _, w := range ws {
		out, err := execOutput(bin("external_sender"), "--external", w.external, "--type", "partition-count-query", "--json")
		if err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		var pc struct {
			State     map[string]map[string]int `json:"state_partitions"`
			Stateless map[string]map[string]int `json:"stateless_partitions"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &pc); err != nil {
			t.Fatalf("%s: %q: %v", w.name, out, err)
		}
		for stage, per := range pc.State {
			if len(per) != 1 || per[w.name] != 10 {
				t.Errorf("%s: state stage %s lists %v, want only itself with 10 steps", w.name, stage, per)
			}
		}
		if len(pc.State) == 0 || len(pc.Stateless) == 0 {
			t.Errorf("%s: %s", w.name, out)
		}
	}
	// Every worker runs steps of its own, as in 0.6: no step id is
	// listed by two workers.
	owner := map[string]string{}
	for _, w := range ws {
		out, err := execOutput(bin("external_sender"), "--external", w.external, "--type", "partition-query", "--json")
		if err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		var pq map[string]map[string]map[string][]string
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &pq); err != nil {
			t.Fatalf("%s: %q: %v", w.name, out, err)
		}
		for _, stages := range pq {
			for _, per := range stages {
				for _, id := range per[w.name] {
					if o, ok := owner[id]; ok {
						t.Errorf("step id %s listed by %s and %s", id, o, w.name)
					}
					owner[id] = w.name
				}
			}
		}
	}
	stopCluster(t, ws, 0, false)
}

// Two workers that send each other a lot at once must not wait for each
// other forever (each loop blocked sending while its own inbound link
// waits for that loop): heavy input as fast as the sender can write, and
// exact counts.
func TestCluster_HeavyCrossTrafficDoesNotDeadlock(t *testing.T) {
	dir := exampleDir("word_count")
	src := readLines(t, sharedData(t, "count_this.txt"))
	var lines []string
	for len(lines) < 60000 {
		lines = append(lines, src...)
	}
	input := filepath.Join(t.TempDir(), "heavy.txt")
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := referenceCounts(lines)
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "word_count", 2, in, recv.addr)
	exSend(t, dir, in, len(lines), "--file", input, "--batch-size", "500")
	got := recv.waitLines(t, total(want), 120*time.Second)
	compareCounts(t, lastCounts(t, got), want)
	stopCluster(t, ws, 0, true)
}

// TestCluster_UserExceptionOnAWorkerStopsTheCluster: an exception in user
// code on any worker stops the whole cluster at once (0.6's behaviour
// without resilience): the worker that ran it prints the traceback and
// the error line naming the stage and the message and exits 1, the others
// stop too, and nobody waits out the shutdown deadline for a loop that
// has ended. Once on each worker of a cluster of 3: the message that
// raises ("boom KEY") has the key of one that worker holds.
func TestCluster_UserExceptionOnAWorkerStopsTheCluster(t *testing.T) {
	for target := 0; target < 3; target++ {
		t.Run(fmt.Sprintf("on_worker_%d", target), func(t *testing.T) {
			s := newSink(t)
			in := freePort(t)
			ws := startCluster(t, testdataDir(), "raise_in", 3, in, s.addr(), "--raise-in", "state_computation")
			conn := dial(t, in)
			defer conn.Close()
			var msgs []string
			for i := 0; i < 60; i++ {
				msgs = append(msgs, fmt.Sprintf("fine%d", i))
			}
			send(t, conn, msgs...)
			s.waitLines(t, len(msgs), 60*time.Second)
			key := ""
			for k, w := range stateKeys(t, ws) {
				if w == ws[target].name && (key == "" || k < key) {
					key = k
				}
			}
			if key == "" {
				t.Fatalf("%s holds none of 60 keys", ws[target].name)
			}
			send(t, conn, "boom "+key)
			for i, w := range ws {
				code := w.wait(60 * time.Second)
				errOut := w.stderr.String()
				// (The others name the error in their stop reason, with
				// no traceback of their own.)
				raised := strings.Contains(errOut, "Traceback (most recent call last)")
				switch {
				case i == target && (!raised || !strings.Contains(errOut, "ValueError: state_computation was told to raise")):
					t.Errorf("%s holds %q but does not report the exception:\n%s", w.name, key, errOut)
				case i == target:
					if code != 1 {
						t.Errorf("%s ran the failing code and exited %d, want 1", w.name, code)
					}
					if !strings.Contains(errOut, "Traceback (most recent call last)") ||
						!strings.Contains(errOut, `error: user code failed in state 'tally' of pipeline "Raise" while processing `) {
						t.Errorf("%s: no traceback or error line:\n%s", w.name, errOut)
					}
				case raised:
					t.Errorf("%s reports an exception it did not raise:\n%s", w.name, errOut)
				case !strings.Contains(errOut, "worker "+ws[target].name+" stopped on an error: user code failed in state 'tally'"):
					t.Errorf("%s does not say which worker failed, and why:\n%s", w.name, errOut)
				}
				if n := strings.Count(errOut, "WARN stop requested"); n > 1 {
					t.Errorf("%s logs the stop %d times (the others' requests echo it):\n%s", w.name, n, errOut)
				}
				if strings.Contains(errOut, "not finished in time") {
					t.Errorf("%s waited out its shutdown deadline:\n%s", w.name, errOut)
				}
			}
		})
	}
}
