package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// toolsBuilt guards the operator tools built on demand (see tool).
var toolsBuilt struct {
	sync.Mutex
	done map[string]error
}

// tool makes sure the operator tool cmd/<name> is in binDir. TestMain
// builds only machida3, sender and data_receiver when WALLAROO_BIN is not
// set; the external channel tools are then built here, once, into the
// same temporary directory. With WALLAROO_BIN set the tool must be there
// (make build puts it there); if it is not, the test is skipped, saying
// why.
func tool(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Stat(bin(name)); err == nil {
		return
	}
	if dir := os.Getenv("WALLAROO_BIN"); dir != "" {
		t.Skipf("%s is not in WALLAROO_BIN=%s (make build puts it there)", name, dir)
	}
	toolsBuilt.Lock()
	defer toolsBuilt.Unlock()
	if toolsBuilt.done == nil {
		toolsBuilt.done = map[string]error{}
	}
	err, tried := toolsBuilt.done[name]
	if !tried {
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/"+name)
		cmd.Dir = repoRoot()
		out, berr := cmd.CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build ./cmd/%s: %v\n%s", name, berr, out)
		}
		toolsBuilt.done[name] = err
	}
	if err != nil {
		t.Fatalf("building %s: %v (build with `make build` and set WALLAROO_BIN)", name, err)
	}
}

// startTool runs an operator tool, building it first if need be.
func startTool(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	tool(t, name)
	return start(t, testdataDir(), name, args...)
}

// query runs external_sender --json and decodes its output.
func query(t *testing.T, ext, typ string, v any) {
	t.Helper()
	p := startTool(t, "external_sender", "--external", ext, "--type", typ, "--json")
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("external_sender --type %s exited %d: %s", typ, code, p.stderr.String())
	}
	if err := json.Unmarshal([]byte(p.stdout.String()), v); err != nil {
		t.Fatalf("external_sender --type %s printed %q: %v", typ, p.stdout.String(), err)
	}
}

func TestExternalChannel_QueriesAndShutdown(t *testing.T) {
	s := newSink(t)
	in, ext := freePort(t), freePort(t)
	m := start(t, testdataDir(), "machida3", "--application-module", "keyed_and_single",
		"--in", in, "--out", s.addr(), "--external", ext, "--metrics", freePort(t),
		"--control", freePort(t), "--data", freePort(t), "--name", "some-name",
		"--cluster-initializer", "--ponythreads=1", "--ponynoblock")
	m.waitOutput("Application has successfully initialized", 20*time.Second)

	var status struct {
		WorkerCount int      `json:"worker_count"`
		WorkerNames []string `json:"worker_names"`
		Processing  bool     `json:"processing_messages"`
	}
	query(t, ext, "cluster-status-query", &status)
	if !status.Processing || status.WorkerCount != 1 || !slices.Equal(status.WorkerNames, []string{"initializer"}) {
		t.Errorf("cluster-status-query = %+v", status)
	}

	c := dial(t, in)
	defer c.Close()
	for _, w := range []string{"A", "B", "C", "A"} {
		send(t, c, w)
	}
	s.waitLines(t, 4, 10*time.Second)

	var ents map[string][]string
	query(t, ext, "state-entity-query", &ents)
	var keyed, single []string
	for id, keys := range ents {
		if strings.Trim(id, "0123456789") != "" {
			t.Errorf("stage id %q is not an integer", id)
		}
		if slices.Contains(keys, "single-partition-key") {
			single = keys
		} else {
			keyed = keys
		}
	}
	if len(ents) != 2 || !slices.Equal(keyed, []string{"A", "B", "C"}) || !slices.Equal(single, []string{"single-partition-key"}) {
		t.Errorf("state-entity-query = %v; want one keyed stage with A, B, C and one with single-partition-key", ents)
	}
	var counts map[string]int
	query(t, ext, "state-entity-count-query", &counts)
	var got []int
	for _, n := range counts {
		got = append(got, n)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 3}) {
		t.Errorf("state-entity-count-query = %v", counts)
	}
	checkPartitionQueries(t, ext, "initializer", 2, 1)
	checkSourceIDs(t, ext, 10)

	sd := startTool(t, "cluster_shutdown", ext)
	if code := sd.wait(10 * time.Second); code != 0 {
		t.Errorf("cluster_shutdown exited %d", code)
	}
	if code := m.wait(20 * time.Second); code != 0 {
		t.Errorf("machida3 exited %d after cluster_shutdown, want 0", code)
	}
}

func TestSignals_StopCleanly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			m, s, in := echoWorker(t)
			c := dial(t, in)
			send(t, c, "one", "two")
			s.waitLines(t, 2, 10*time.Second)
			c.Close()
			m.cmd.Process.Signal(sig)
			if code := m.wait(20 * time.Second); code != 0 {
				t.Errorf("exit code %d after %v, want 0", code, sig)
			}
		})
	}
}

func TestExternalChannel_NotInitializedBeforeSinksConnect(t *testing.T) {
	ext := freePort(t)
	out := freePort(t) // nobody listens: the worker waits for its sink
	m := machida(t, testdataDir(), "echo_lines", freePort(t), out, "--external", ext)
	m.waitOutput("TCPSink initializing connection", 20*time.Second)
	var status map[string]any
	query(t, ext, "cluster-status-query", &status)
	if status["processing_messages"] != false {
		t.Errorf("cluster-status-query before ready = %v", status)
	}
}

// isDecimal reports whether s is a non-empty run of decimal digits, as
// the tools expect of stage and step ids.
func isDecimal(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// exactKeys decodes a JSON object, failing unless its keys are exactly
// want (in any order), and returns its members.
func exactKeys(t *testing.T, what string, raw json.RawMessage, want ...string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %s is not a JSON object: %v", what, raw, err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(keys, want) {
		t.Fatalf("%s: keys %q, want %q in %s", what, keys, want, raw)
	}
	return m
}

// stageSteps checks {<stage id>: {<worker>: [10 step ids]}} with stages
// decimal stage ids, and returns the step ids per stage.
func stageSteps(t *testing.T, what string, raw json.RawMessage, worker string, stages int) map[string][]string {
	t.Helper()
	var byStage map[string]map[string][]string
	if err := json.Unmarshal(raw, &byStage); err != nil {
		t.Fatalf("%s: %s: %v, want {stage: {worker: [step ids]}}", what, raw, err)
	}
	if len(byStage) != stages {
		t.Fatalf("%s: %d stages in %s, want %d", what, len(byStage), raw, stages)
	}
	out := map[string][]string{}
	for stage, byWorker := range byStage {
		if !isDecimal(stage) {
			t.Errorf("%s: stage id %q is not a decimal integer", what, stage)
		}
		if len(byWorker) != 1 || byWorker[worker] == nil {
			t.Fatalf("%s: stage %s lists %v, want only this worker %q", what, stage, byWorker, worker)
		}
		steps := byWorker[worker]
		if len(steps) != 10 {
			t.Errorf("%s: stage %s has %d steps on %s, want 10 (0.6's default parallelism)", what, stage, len(steps), worker)
		}
		for _, id := range steps {
			if !isDecimal(id) {
				t.Errorf("%s: step id %q of stage %s is not a decimal integer", what, id, stage)
			}
		}
		if u := slices.Compact(slices.Sorted(slices.Values(steps))); len(u) != len(steps) {
			t.Errorf("%s: stage %s has repeated step ids %q", what, stage, steps)
		}
		out[stage] = steps
	}
	return out
}

// stageCounts checks {<stage id>: {<worker>: 10}} for exactly stages.
func stageCounts(t *testing.T, what string, raw json.RawMessage, worker string, stages []string) {
	t.Helper()
	m := exactKeys(t, what, raw, stages...)
	for stage, v := range m {
		var byWorker map[string]int
		if err := json.Unmarshal(v, &byWorker); err != nil {
			t.Fatalf("%s: stage %s: %s: %v", what, stage, v, err)
		}
		if len(byWorker) != 1 || byWorker[worker] != 10 {
			t.Errorf("%s: stage %s = %s, want {%q: 10}", what, stage, v, worker)
		}
	}
}

// checkPartitionQueries checks the four partition queries of a worker
// with the given numbers of state and stateless stages: shapes, 10 steps
// per stage, and that they agree with each other.
func checkPartitionQueries(t *testing.T, ext, worker string, stateStages, statelessStages int) {
	t.Helper()
	var parts json.RawMessage
	query(t, ext, "partition-query", &parts)
	top := exactKeys(t, "partition-query", parts, "state_partitions", "stateless_partitions")
	state := stageSteps(t, "partition-query state_partitions", top["state_partitions"], worker, stateStages)
	stateless := stageSteps(t, "partition-query stateless_partitions", top["stateless_partitions"], worker, statelessStages)
	stateIDs := slices.Collect(func(yield func(string) bool) {
		for k := range state {
			if !yield(k) {
				return
			}
		}
	})
	statelessIDs := slices.Collect(func(yield func(string) bool) {
		for k := range stateless {
			if !yield(k) {
				return
			}
		}
	})

	var counts json.RawMessage
	query(t, ext, "partition-count-query", &counts)
	top = exactKeys(t, "partition-count-query", counts, "state_partitions", "stateless_partitions")
	stageCounts(t, "partition-count-query state_partitions", top["state_partitions"], worker, stateIDs)
	stageCounts(t, "partition-count-query stateless_partitions", top["stateless_partitions"], worker, statelessIDs)

	var sp json.RawMessage
	query(t, ext, "stateless-partition-query", &sp)
	got := stageSteps(t, "stateless-partition-query", sp, worker, statelessStages)
	for stage, steps := range stateless {
		if !slices.Equal(got[stage], steps) {
			t.Errorf("stateless-partition-query stage %s = %q; partition-query said %q", stage, got[stage], steps)
		}
	}
	var spc json.RawMessage
	query(t, ext, "stateless-partition-count-query", &spc)
	stageCounts(t, "stateless-partition-count-query", spc, worker, statelessIDs)
}

// checkSourceIDs checks {"source_ids": [n distinct decimal ids]}.
func checkSourceIDs(t *testing.T, ext string, n int) {
	t.Helper()
	var raw json.RawMessage
	query(t, ext, "source-ids-query", &raw)
	top := exactKeys(t, "source-ids-query", raw, "source_ids")
	var ids []string
	if err := json.Unmarshal(top["source_ids"], &ids); err != nil {
		t.Fatalf("source-ids-query: %s: %v", raw, err)
	}
	if len(ids) != n {
		t.Errorf("source-ids-query = %q, want %d ids (one per connection slot)", ids, n)
	}
	for _, id := range ids {
		if !isDecimal(id) {
			t.Errorf("source id %q is not a decimal integer", id)
		}
	}
	if u := slices.Compact(slices.Sorted(slices.Values(ids))); len(u) != len(ids) {
		t.Errorf("source-ids-query has repeated ids: %q", ids)
	}
}

// keyedWorker starts the keyed_and_single app (two state stages and one
// stateless stage) and returns it with its external channel address.
func keyedWorker(t *testing.T) (*proc, string) {
	t.Helper()
	s := newSink(t)
	in, ext := freePort(t), freePort(t)
	m := start(t, testdataDir(), "machida3", "--application-module", "keyed_and_single",
		"--in", in, "--out", s.addr(), "--external", ext, "--metrics", freePort(t),
		"--control", freePort(t), "--data", freePort(t), "--name", "some-name",
		"--cluster-initializer", "--ponythreads=1", "--ponynoblock")
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	return m, ext
}

// runTool runs an operator tool to completion and returns its stdout.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	p := startTool(t, name, args...)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("%s %s exited %d: %s", name, strings.Join(args, " "), code, p.stderr.String())
	}
	return p.stdout.String()
}

// The stateless and partition queries against a real worker: 10 steps per
// stage (spec 2.3, 3.7), in the exact JSON shapes the tools read.
func TestExternalChannel_PartitionQueriesOnARealWorker(t *testing.T) {
	_, ext := keyedWorker(t)
	checkPartitionQueries(t, ext, "initializer", 2, 1)
	checkSourceIDs(t, ext, 10)
	// Without --json external_sender prints the 0.6 header line first.
	out := runTool(t, "external_sender", "--external", ext, "--type", "stateless-partition-count-query")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "Stateless partition count query response:" {
		t.Fatalf("external_sender printed %q", out)
	}
	var m map[string]map[string]int
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || len(m) != 1 {
		t.Fatalf("stateless-partition-count-query printed %q: %v", lines[1], err)
	}
}

// Print, rotate-log and boundary-count-status (ReportStatus) reach a real
// worker: it logs them, has no reply to send, and keeps serving.
func TestExternalChannel_PrintRotateLogReportStatusOnARealWorker(t *testing.T) {
	m, ext := keyedWorker(t)
	if out := runTool(t, "external_sender", "--external", ext, "--type", "print", "--message", "hello from e2e"); out != "" {
		t.Errorf("print: external_sender printed %q, want nothing (no reply)", out)
	}
	m.waitOutput("$$$ ExternalPrint: hello from e2e $$$", 20*time.Second)

	if out := runTool(t, "external_sender", "--external", ext, "--type", "rotate-log", "--message", "initializer"); out != "" {
		t.Errorf("rotate-log: external_sender printed %q, want nothing", out)
	}
	m.waitOutput(`RotateLog for worker "initializer"`, 20*time.Second)
	m.waitOutput(`RotateLog for worker "initializer" not done: this worker runs without --run-with-resilience`, 20*time.Second)

	if out := runTool(t, "external_sender", "--external", ext, "--type", "boundary-count-status"); out != "" {
		t.Errorf("boundary-count-status: external_sender printed %q, want nothing", out)
	}
	m.waitOutput(`ReportStatus "boundary-count-status"`, 20*time.Second)

	// Still answering queries afterwards.
	var status map[string]any
	query(t, ext, "cluster-status-query", &status)
	if status["processing_messages"] != true {
		t.Errorf("cluster-status-query after the commands = %v", status)
	}
}

// Shrink requests to a real single worker: the initializer hosts the
// sources and cannot leave, so no worker is eligible and every shrink is
// refused with 0.6's texts (a count picks the first n eligible workers:
// none here, so it shrinks by 0).
func TestExternalChannel_ShrinkOnARealWorker(t *testing.T) {
	_, ext := keyedWorker(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--query"}, "Eligible for shrink: Node count: 0, Nodes: ||\n"},
		{[]string{"--count", "1"}, "Cluster shrink response: Cannot shrink 0 workers!\n"},
		{[]string{"--workers", "initializer"}, "Cluster shrink response: Invalid shrink targets!\n"},
	} {
		if got := runTool(t, "cluster_shrinker", append([]string{"--external", ext}, tc.args...)...); got != tc.want {
			t.Errorf("cluster_shrinker %s printed %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	// The worker is still up and processing.
	var status map[string]any
	query(t, ext, "cluster-status-query", &status)
	if status["processing_messages"] != true || status["worker_count"] != float64(1) {
		t.Errorf("cluster-status-query after the shrink requests = %v", status)
	}
}
