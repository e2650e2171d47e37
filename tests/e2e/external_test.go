package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// query runs external_sender --json and decodes its output.
func query(t *testing.T, ext, typ string, v any) {
	t.Helper()
	p := start(t, testdataDir(), "external_sender", "--external", ext, "--type", typ, "--json")
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
	var parts map[string]map[string]map[string][]string
	query(t, ext, "partition-query", &parts)
	if len(parts["state_partitions"]) != 2 || len(parts["stateless_partitions"]) != 1 {
		t.Errorf("partition-query = %v", parts)
	}
	var srcs struct {
		IDs []string `json:"source_ids"`
	}
	query(t, ext, "source-ids-query", &srcs)
	if len(srcs.IDs) != 10 {
		t.Errorf("source-ids-query = %v, want 10 ids (one per connection slot)", srcs.IDs)
	}

	sd := start(t, testdataDir(), "cluster_shutdown", ext)
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
