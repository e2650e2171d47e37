package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Keys of type int (through chr), str and bytes that spell the same key
// share one state; an encoder returning None writes nothing; user code runs
// on one thread; print() output reaches stdout while the worker runs.
func TestContracts_KeysEncoderNoneThreadAndPrint(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "contracts", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c := dial(t, in)
	defer c.Close()
	send(t, c, "ki", "ks", "kb", "nothing", "plain", "pshow")
	got := s.waitLines(t, 5, 10*time.Second)
	want := []string{"ki same 1", "ks same 2", "kb same 3", "plain same 1", "pshow same 1"}
	if !slices.Equal(got, want) {
		t.Errorf("sink got %q, want %q", got, want)
	}
	m.waitOutput("PRINTED pshow", 10*time.Second)
}

func TestContracts_MultiReturningTupleStops(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "contracts", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c := dial(t, in)
	defer c.Close()
	send(t, c, "tuple")
	if code := m.wait(20 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	for _, w := range []string{"computation_multi 'maybe tuple' must return a list or None, got tuple", "'tuple'"} {
		if !strings.Contains(m.stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, m.stderr.String())
		}
	}
}

func TestContracts_StateClassNeedingArgumentStops(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "state_needs_arg", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c := dial(t, in)
	defer c.Close()
	send(t, c, "x")
	if code := m.wait(20 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	for _, w := range []string{"TypeError", "__init__", "state 'use'"} {
		if !strings.Contains(m.stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, m.stderr.String())
		}
	}
}

func TestGenerator_StopsOnNone(t *testing.T) {
	s := newSink(t)
	m := machida(t, testdataDir(), "finite_gen", "", s.addr())
	got := s.waitLines(t, 10, 20*time.Second)
	want := []string{"2", "4", "6", "8", "10", "12", "14", "16", "18", "20"}
	if !slices.Equal(got, want) {
		t.Errorf("sink got %q, want %q", got, want)
	}
	m.waitOutput("GenSource produced a None. Stopping GenSource.", 10*time.Second)
}

func TestBuildErrors_EngineRules(t *testing.T) {
	cases := []struct{ module, want string }{
		{"merge_mismatch", "Error: A pipeline ending with key_by can only be merged with another!"},
		{"kafka_default", `source kind "kafka-internal" is not supported`},
	}
	for _, c := range cases {
		t.Run(c.module, func(t *testing.T) {
			p := start(t, testdataDir(), "machida3", "--application-module", c.module)
			if code := p.wait(20 * time.Second); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(p.stderr.String(), c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, p.stderr.String())
			}
			if !strings.Contains(p.stdout.String(), "Something went wrong while building the application") {
				t.Errorf("stdout: %s", p.stdout.String())
			}
		})
	}
}

// The module's own serialize/deserialize hooks are found at start-up (a
// non-callable one is an error) and, on one worker, never called.
func TestSerializationHooks(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "with_hooks", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c := dial(t, in)
	defer c.Close()
	send(t, c, "a", "b", "a")
	if got := s.waitLines(t, 3, 10*time.Second); !slices.Equal(got, []string{"1", "1", "2"}) {
		t.Errorf("sink got %q", got)
	}

	p := start(t, testdataDir(), "machida3", "--application-module", "broken_hooks")
	if code := p.wait(20 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(p.stderr.String(), "serialize = 'not a function', which is not callable") {
		t.Errorf("stderr:\n%s", p.stderr.String())
	}
}

// Wallaroo 0.6 runs all Python on one thread (machida needs
// --ponythreads 1): every kind of user callback, whichever source or
// connection its message came from, runs on one and the same thread, and
// no callback is entered while another is running.
func TestContracts_OneThreadForEveryCallback(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "threads", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	const conns, perConn = 4, 25
	var cs []net.Conn
	for i := 0; i < conns; i++ {
		c := dial(t, in)
		defer c.Close()
		cs = append(cs, c)
	}
	want := []string{}
	for i := 0; i < 10; i++ {
		want = append(want, fmt.Sprintf("G%d 1", i))
	}
	// Interleaved over the connections, keys repeating across them.
	for j := 0; j < perConn; j++ {
		for i, c := range cs {
			send(t, c, fmt.Sprintf("c%d-k%d", i, j%5))
			want = append(want, fmt.Sprintf("C%d-K%d %d", i, j%5, j/5+1))
		}
	}
	got := s.waitLines(t, len(want), 20*time.Second)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("sink got %d lines, want %d: %q", len(got), len(want), got)
	}
	m.waitOutput("GenSource produced a None. Stopping GenSource.", 10*time.Second)

	send(t, cs[conns-1], "report")
	var report struct {
		Threads  map[string][]string
		Overlaps int
	}
	lines := s.waitLines(t, len(want)+1, 10*time.Second)
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "REPORT ") {
		t.Fatalf("last line %q, want the REPORT", last)
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(last, "REPORT ")), &report); err != nil {
		t.Fatalf("%v: %q", err, last)
	}
	threads := map[string]bool{}
	for _, kind := range []string{"application_setup", "generator initial_value", "generator apply", "decoder",
		"computation", "key extractor", "state constructor", "state computation", "encoder"} {
		if len(report.Threads[kind]) == 0 {
			t.Errorf("no thread recorded for the %s", kind)
		}
	}
	for kind, ts := range report.Threads {
		for _, th := range ts {
			threads[th] = true
		}
		if len(ts) != 1 {
			t.Errorf("the %s ran on %d threads: %q", kind, len(ts), ts)
		}
	}
	if len(threads) != 1 {
		t.Errorf("user code ran on %d threads, want one: %v", len(threads), report.Threads)
	}
	if report.Overlaps != 0 {
		t.Errorf("%d callbacks were entered while another was running", report.Overlaps)
	}
}

// multiNoneWorker runs multi_none.py with n sinks and sends msgs over two
// connections (alternating), then stops the worker with SIGTERM once the
// first sink has want lines, and waits until every sink connection is
// closed: what the sinks hold then is all the worker ever wrote.
func multiNoneWorker(t *testing.T, n int, msgs []string, want int) []*sink {
	t.Helper()
	var sinks []*sink
	var outs []string
	for i := 0; i < n; i++ {
		s := newSink(t)
		sinks = append(sinks, s)
		outs = append(outs, s.addr())
	}
	in := freePort(t)
	m := machida(t, testdataDir(), "multi_none", in, strings.Join(outs, ","))
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	a, b := dial(t, in), dial(t, in)
	defer a.Close()
	defer b.Close()
	for i, msg := range msgs {
		send(t, []net.Conn{a, b}[i%2], msg)
	}
	for _, s := range sinks {
		s.waitLines(t, want, 20*time.Second)
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(20 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	for _, s := range sinks {
		s.waitClosed(t, 10*time.Second)
	}
	return sinks
}

// computation_multi returning [a, None, b] emits a and b; a list of only
// None, an empty list and None emit nothing.
func TestComputationMulti_NoneInTheListIsSkipped(t *testing.T) {
	sinks := multiNoneWorker(t, 1, []string{"x", "only-none", "empty", "none", "y"}, 4)
	got := strings.Split(strings.TrimSuffix(string(sinks[0].bytes()), "\n"), "\n")
	// x and y came over different connections: their order is free, the
	// order within one list is not.
	want := [][]string{{"x-a", "x-b", "y-a", "y-b"}, {"y-a", "y-b", "x-a", "x-b"}}
	if !slices.Equal(got, want[0]) && !slices.Equal(got, want[1]) {
		t.Errorf("sink got %q, want %q (or y first)", got, want[0])
	}
}

// Each sink gets one connection from the worker (runtime spec 2.3: one
// connection per sink per worker), however many source connections and
// messages there are.
func TestSinks_OneConnectionPerSink(t *testing.T) {
	var msgs []string
	for i := 0; i < 40; i++ {
		msgs = append(msgs, fmt.Sprintf("m%d", i))
	}
	sinks := multiNoneWorker(t, 3, msgs, 80)
	for i, s := range sinks {
		if accepted, _ := s.connections(); accepted != 1 {
			t.Errorf("sink %d (%s) got %d connections, want 1", i, s.addr(), accepted)
		}
		if got := strings.Count(string(s.bytes()), "\n"); got != 80 {
			t.Errorf("sink %d got %d lines, want 80", i, got)
		}
	}
}
