package e2e

// Faults on a cluster's links (runtime spec 3.1-3.3): garbage and foreign
// handshakes on a worker's data and control listeners, a data link broken
// while data flows, a worker that cannot reach its initializer, an
// initializer that waits for workers that do not come.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// argValue returns the value after flag in a worker's command line.
func argValue(t *testing.T, w *clusterWorker, flag string) string {
	t.Helper()
	for i := 0; i+1 < len(w.args); i++ {
		if w.args[i] == flag {
			return w.args[i+1]
		}
	}
	t.Fatalf("%s was started without %s: %q", w.name, flag, w.args)
	return ""
}

// logLines returns p's output lines, with the log's quoting of quotes
// (\") undone, so that a test can look for the message as written.
func logLines(p *proc) []string {
	return strings.Split(strings.ReplaceAll(p.stdout.String()+"\n"+p.stderr.String(), `\"`, `"`), "\n")
}

// logCount counts the lines of a worker's output containing every one of
// parts.
func logCount(p *proc, parts ...string) int {
	n := 0
	for _, l := range logLines(p) {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}

// waitLog waits (up to timeout) until a line of p's output contains every
// one of parts and returns that line.
func waitLog(t *testing.T, p *proc, timeout time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range logLines(p) {
			all := true
			for _, s := range parts {
				all = all && strings.Contains(l, s)
			}
			if all {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q within %v\nstderr:\n%s", parts, timeout, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peerClosed reads from c until the peer closes it (EOF or reset) and
// returns what it read; it fails if the link stays open for 30 s.
func peerClosed(t *testing.T, c net.Conn, what string) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: the worker kept the link open 30 s after the bad frame", what)
	}
	return b
}

// refusal decodes the frames a worker wrote before closing a link and
// returns the text of its refuse frame ("" if none).
func refusal(t *testing.T, b []byte) string {
	t.Helper()
	r := bufio.NewReader(strings.NewReader(string(b)))
	for {
		kind, payload, err := wireRead(r)
		if err != nil {
			return ""
		}
		if kind == wireRefuse {
			s, err := wireText(payload)
			if err != nil {
				t.Fatalf("refuse frame: %v", err)
			}
			return s
		}
	}
}

// wordCountHello is a hello as a word count worker of this suite sends it.
func wordCountHello(t *testing.T, worker string, ch wireChannel) wireHelloMsg {
	t.Helper()
	src := exReadFile(t, filepath.Join(exampleDir("word_count"), "word_count.py"))
	sum := sha256.Sum256(src)
	major := uint8(3)
	if py2() {
		major = 2
	}
	return wireHelloMsg{Version: wireVersion, App: "Word Count Application", Digest: hex.EncodeToString(sum[:8]),
		PyMajor: major, Worker: worker, Channel: ch, Incarnation: 42}
}

// wordCountThrough sends the word count example's input through the
// cluster's initializer and expects exact counts at recv, beyond what it
// already holds (base lines).
func wordCountThrough(t *testing.T, recv *exReceiver, in string, base int) {
	t.Helper()
	dir := exampleDir("word_count")
	input := filepath.Join(dir, "input.txt")
	lines := readLines(t, input)
	want := referenceCounts(lines)
	exSend(t, dir, in, len(lines), "--file", input, "--batch-size", "5", "--interval", "1_000_000")
	got := recv.waitLines(t, base+total(want), 60*time.Second)
	exSameSequences(t, "counts per word", byWord(t, got[base:]), perKeyCounts(want))
}

func TestClusterFault_MalformedFramesAndForeignHellos(t *testing.T) {
	dir := exampleDir("word_count")
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "word_count", 2, in, recv.addr)
	data := argValue(t, ws[1], "--my-data") // worker1's data listener
	control := argValue(t, ws[0], "--control")
	mine := wordCountHello(t, "initializer", wireData)
	other := 2
	if py2() {
		other = 3
	}

	cases := []struct {
		name    string
		target  *clusterWorker
		addr    string
		bytes   func() []byte
		log     []string // the worker logs one line with all of these
		refused string   // the refuse frame's text contains this
	}{
		{"data: length 0", ws[1], data,
			func() []byte { return []byte{0, 0, 0, 0, 1, 2, 3} },
			[]string{"data link from a peer closed", "length 0"}, ""},
		{"data: length over the limit", ws[1], data,
			func() []byte { return []byte{0xff, 0xff, 0xff, 0xff, 9} },
			[]string{"data link from a peer closed", "length 4294967295"}, ""},
		{"data: unknown kind", ws[1], data,
			func() []byte { return wireFrame(wireKind(0xee), []byte("junk")) },
			[]string{"data link from a peer closed", "unknown kind 238"}, ""},
		{"data: envelopes before any hello", ws[1], data,
			func() []byte {
				return wireFrame(wireEnvelopes, wireEnvelopeBatch(1, 1, []byte("x")))
			},
			[]string{"data link from a peer closed", "envelopes where hello was expected"}, ""},
		{"data: hello for another application", ws[1], data,
			func() []byte {
				h := mine
				h.App = "Another Application"
				return wireFrame(wireHello, h.encode())
			},
			[]string{`application "Another Application", this worker runs "Word Count Application"`},
			`application "Another Application", this worker runs "Word Count Application"`},
		{"data: hello with another module digest", ws[1], data,
			func() []byte {
				h := mine
				h.Digest = "0123456789abcdef"
				return wireFrame(wireHello, h.encode())
			},
			[]string{"application module digest 0123456789abcdef, this worker's is " + mine.Digest},
			"application module digest 0123456789abcdef"},
		{"data: hello with another Python major version", ws[1], data,
			func() []byte {
				h := mine
				h.PyMajor = uint8(other)
				return wireFrame(wireHello, h.encode())
			},
			[]string{fmt.Sprintf("Python %d, this worker runs Python %d", other, mine.PyMajor)},
			fmt.Sprintf("Python %d, this worker runs Python %d", other, mine.PyMajor)},
		{"data: hello from a worker the cluster does not have", ws[1], data,
			func() []byte {
				h := mine
				h.Worker = "worker9"
				return wireFrame(wireHello, h.encode())
			},
			[]string{"data link from a peer closed", `"worker9"`, "not a worker of this cluster"},
			`"worker9"`},
		{"control: length over the limit", ws[0], control,
			func() []byte { return []byte{0x7f, 0, 0, 0, 1} },
			[]string{"control link refused", "length 2130706432"}, ""},
		{"control: unknown kind", ws[0], control,
			func() []byte { return wireFrame(wireKind(0), nil) },
			[]string{"control link refused", "unknown kind 0"}, ""},
		{"control: hello with another Python major version", ws[0], control,
			func() []byte {
				h := wordCountHello(t, "worker7", wireControl)
				h.PyMajor = uint8(other)
				return wireFrame(wireHello, h.encode())
			},
			[]string{"control link refused", fmt.Sprintf("Python %d, this worker runs Python %d", other, mine.PyMajor)},
			fmt.Sprintf("Python %d, this worker runs Python %d", other, mine.PyMajor)},
		{"control: hello for another application", ws[0], control,
			func() []byte {
				h := wordCountHello(t, "worker7", wireControl)
				h.App = "Another Application"
				return wireFrame(wireHello, h.encode())
			},
			[]string{"control link refused", `application "Another Application"`}, `application "Another Application"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := logCount(tc.target.proc, tc.log...)
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.bytes()); err != nil {
				t.Fatal(err)
			}
			got := peerClosed(t, c, tc.name)
			line := waitLog(t, tc.target.proc, 30*time.Second, tc.log...)
			t.Logf("%s logged: %s", tc.target.name, line)
			// One clear line per bad link, not a cascade.
			if n := logCount(tc.target.proc, tc.log...); n != before+1 {
				t.Errorf("%s logged %d lines with %q for one bad link, want 1", tc.target.name, n-before, tc.log)
			}
			if tc.refused != "" {
				if r := refusal(t, got); !strings.Contains(r, tc.refused) {
					t.Errorf("the worker's refuse frame says %q, want it to name %q (bytes %q)", r, tc.refused, got)
				}
			}
		})
	}
	// Every worker is still in the cluster and processing, and the
	// cluster counts exactly.
	for _, w := range ws {
		waitStatus(t, w, 2)
	}
	wordCountThrough(t, recv, in, 0)
	stopCluster(t, ws, 0, false)
	recv.stopWhenDrained(t)
}

// killLinks breaks, with `ss -K`, every established TCP connection to the
// loopback port (both its ends: the dialler's, whose destination port it
// is, and the listener's accepted socket, whose source port it is) and
// returns how many sockets it closed. ss -K needs root and a kernel with
// CONFIG_INET_DIAG_DESTROY.
func killLinks(t *testing.T, port string) (int, error) {
	t.Helper()
	out, err := exec.Command("ss", "-K", "-t", "-n", "state", "established",
		"(", "dst", "127.0.0.1:"+port, "or", "src", "127.0.0.1:"+port, ")").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ss -K: %v: %s", err, out)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "127.0.0.1:"+port+" ") || strings.HasSuffix(l, "127.0.0.1:"+port) {
			n++
		}
	}
	return n, nil
}

// requireSocketKill skips the test unless `ss -K` can close a loopback
// connection of this test's own here.
func requireSocketKill(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("breaking a link needs root (ss -K); not root")
	}
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("breaking a link needs ss (iproute2): not found")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	if n, err := killLinks(t, port); err != nil || n == 0 {
		t.Skipf("ss -K cannot close sockets here (kernel without CONFIG_INET_DIAG_DESTROY?): closed %d, %v", n, err)
	}
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Skip("ss -K reported closing the test socket, but it still reads")
	}
}

func TestClusterFault_DataLinkBrokenMidStream(t *testing.T) {
	requireSocketKill(t)
	dir := exampleDir("word_count")
	// count_this.txt 100 times over: 2900 lines, 48 200 words, sent at a
	// paced rate (10 lines every 10 ms, about 3 s) so that the links are
	// broken while data flows over them.
	one := readLines(t, sharedData(t, "count_this.txt"))
	var lines []string
	for i := 0; i < 100; i++ {
		lines = append(lines, one...)
	}
	input := filepath.Join(t.TempDir(), "count_this_x100.txt")
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := referenceCounts(lines)
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "word_count", 3, in, recv.addr)
	sender := start(t, dir, "sender", "--host", in, "--messages", fmt.Sprint(len(lines)), "--file", input,
		"--batch-size", "10", "--interval", "10_000_000", "--ponythreads=1", "--ponynoblock", "--no-write")

	// Break links at 10%, 35% and 60% of the output: the data links into
	// worker1, into the initializer, into worker2, in turn (each kill
	// closes every link into that worker's data listener).
	targets := []struct {
		w    *clusterWorker
		flag string
	}{{ws[1], "--my-data"}, {ws[0], "--data"}, {ws[2], "--my-data"}}
	for i, at := range []int{10, 35, 60} {
		target := targets[i]
		addr := argValue(t, target.w, target.flag)
		_, port, _ := net.SplitHostPort(addr)
		got := recv.waitLines(t, total(want)*at/100, 60*time.Second)
		// The worker logs each inbound link that ends; count them to see
		// this break's.
		before := logCount(target.w.proc, "data link from a peer closed")
		n, err := killLinks(t, port)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("no established link into %s's data listener %s to break", target.w.name, addr)
		}
		t.Logf("at %d of %d output lines: closed %d sockets (ss -K; the peer end of a loopback link goes with it) of the links into %s (%s)", len(got), total(want), n, target.w.name, addr)
		if len(got) >= total(want) {
			t.Fatalf("the stream had ended when the link was broken")
		}
		deadline := time.Now().Add(60 * time.Second)
		for logCount(target.w.proc, "data link from a peer closed") <= before {
			if time.Now().After(deadline) {
				t.Fatalf("%s never logged the end of the broken link", target.w.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if code := sender.wait(120 * time.Second); code != 0 {
		t.Fatalf("sender exited %d: %s", code, sender.stderr.String())
	}
	recv.waitLines(t, total(want), 60*time.Second)
	// Each worker's outbound links came up again after the breaks.
	for _, w := range ws {
		if n := logCount(w.proc, "data link up"); n < 3 {
			t.Errorf("%s logged %d data links up, want its 2 plus at least one reconnect", w.name, n)
		}
	}
	stopCluster(t, ws, 0, false)
	recv.stopWhenDrained(t)
	got := recv.lines()
	if len(got) != total(want) {
		t.Errorf("%d output lines, want one per word occurrence: %d", len(got), total(want))
	}
	// No update lost or repeated: every word's counts are 1, 2, ... n.
	exSameSequences(t, "counts per word", byWord(t, got), perKeyCounts(want))
}

func TestClusterFault_WorkerCannotReachInitializer(t *testing.T) {
	dir := exampleDir("word_count")
	control := freePort(t) // nobody listens there
	recv := exStartReceiver(t, dir)
	res := t.TempDir()
	began := time.Now()
	w := start(t, dir, "machida3", "--application-module", "word_count", "--in", freePort(t), "--out", recv.addr,
		"--metrics", freePort(t), "--external", freePort(t), "--name", "worker1", "--control", control,
		"--my-control", freePort(t), "--my-data", freePort(t), "--resilience-dir", res, "--ponythreads=1", "--ponynoblock")
	// 30 s of retries, then exit 1; the deadline leaves room for a slow
	// machine.
	code := w.wait(75 * time.Second)
	took := time.Since(began)
	if code != 1 {
		t.Errorf("worker exited %d, want 1", code)
	}
	msg := "cannot reach the initializer's control channel at " + control
	if !strings.Contains(w.stderr.String(), msg) {
		t.Errorf("stderr does not say %q:\n%s", msg, w.stderr.String())
	}
	if took < 25*time.Second {
		t.Errorf("gave up after %v: want about 30 s of retries", took.Round(time.Millisecond))
	}
	t.Logf("exited %d after %v", code, took.Round(time.Millisecond))
	// Never a member: no recovery file is left to make the same command
	// line a restart.
	if left := reFiles(t, res); len(left) > 0 {
		t.Errorf("files left in --resilience-dir by a worker that never joined: %v", left)
	}
}

func TestClusterFault_InitializerWaitsForMissingWorkers(t *testing.T) {
	dir := exampleDir("word_count")
	recv := exStartReceiver(t, dir)
	control, ext0, ext1 := freePort(t), freePort(t), freePort(t)
	in := freePort(t)
	res0, res1 := t.TempDir(), t.TempDir()
	init := start(t, dir, "machida3", "--application-module", "word_count", "--in", in, "--out", recv.addr,
		"--metrics", freePort(t), "--external", ext0, "--resilience-dir", res0, "--name", "initializer",
		"--cluster-initializer", "--worker-count", "3", "--control", control, "--data", freePort(t),
		"--ponythreads=1", "--ponynoblock")
	w1 := start(t, dir, "machida3", "--application-module", "word_count", "--in", in, "--out", recv.addr,
		"--metrics", freePort(t), "--external", ext1, "--resilience-dir", res1, "--name", "worker1",
		"--control", control, "--my-control", freePort(t), "--my-data", freePort(t),
		"--ponythreads=1", "--ponynoblock")
	line := waitLog(t, init, 30*time.Second, "waiting for 1 more of 2 workers to join")
	if !strings.Contains(line, "worker1") {
		t.Errorf("the waiting line does not name the worker that joined: %q", line)
	}
	t.Logf("initializer: %s", line)
	// Meanwhile both answer the cluster-status query "not initialized".
	for _, ext := range []string{ext0, ext1} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := execOutput(bin("external_sender"), "--external", ext, "--type", "cluster-status-query", "--json")
			if err == nil {
				if got := strings.TrimSpace(out); got != `{"processing_messages": false}` {
					t.Errorf("cluster-status-query on %s printed %q, want {\"processing_messages\": false}", ext, got)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster-status-query on %s: %v", ext, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The source port is bound but refuses clients until the cluster is
	// ready (spec 1.5), as 0.6's did.
	if c, err := net.DialTimeout("tcp", in, 10*time.Second); err == nil {
		c.Close()
		t.Errorf("a client connected to the source at %s while the cluster waits for a worker", in)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial the source while the cluster waits: %v, want connection refused", err)
	}
	for _, p := range []*proc{init, w1} {
		select {
		case <-p.done:
			t.Errorf("a worker exited while waiting: %v\n%s", p.err, p.stderr.String())
		default:
		}
	}
	// SIGTERM to the waiting initializer is a clean stop of both (spec
	// 3.8): each exits 0 and leaves no recovery files, so the same
	// command lines start afresh rather than as restarts.
	stopBeforeStart(t, "while the cluster forms", init, w1, res0, res1)
}

// A worker killed while the cluster forms and started again with the
// same command line takes its old place: the initializer waits for it
// again, then forms the cluster with it and the others.
func TestClusterFault_AWorkerRestartedWhileTheClusterForms(t *testing.T) {
	dir := exampleDir("word_count")
	recv := exStartReceiver(t, dir)
	control, in := freePort(t), freePort(t)
	resilience := t.TempDir()
	var ws []*clusterWorker
	for i := 0; i < 3; i++ {
		ext := freePort(t)
		args := []string{"--application-module", "word_count", "--in", in, "--out", recv.addr,
			"--metrics", freePort(t), "--external", ext, "--resilience-dir", resilience}
		name := "initializer"
		if i == 0 {
			args = append(args, "--name", name, "--cluster-initializer", "--worker-count", "3", "--control", control, "--data", freePort(t))
		} else {
			name = fmt.Sprintf("worker%d", i)
			args = append(args, "--name", name, "--control", control, "--my-control", freePort(t), "--my-data", freePort(t))
		}
		args = append(args, "--ponythreads=1", "--ponynoblock")
		ws = append(ws, &clusterWorker{name: name, external: ext, dir: dir, args: args})
	}
	ws[0].proc = start(t, dir, "machida3", ws[0].args...)
	ws[1].proc = start(t, dir, "machida3", ws[1].args...)
	waitLog(t, ws[0].proc, 60*time.Second, "waiting for 1 more of 2 workers to join", "worker1")
	ws[1].proc.kill()
	waitLog(t, ws[0].proc, 60*time.Second, "a worker left before the cluster formed", "worker1")
	waitLog(t, ws[0].proc, 60*time.Second, "waiting for 2 more of 2 workers to join")
	ws[1].proc = start(t, dir, "machida3", ws[1].args...)
	ws[2].proc = start(t, dir, "machida3", ws[2].args...)
	for _, w := range ws {
		waitStatus(t, w, 3)
	}
	if strings.Contains(ws[0].stderr.String(), "listed twice") {
		t.Errorf("the initializer listed a worker twice:\n%s", ws[0].stderr.String())
	}
	input := filepath.Join(dir, "input.txt")
	want := referenceCounts(readLines(t, input))
	exSend(t, dir, in, len(readLines(t, input)), "--file", input, "--batch-size", "5", "--interval", "1_000_000")
	compareCounts(t, lastCounts(t, recv.waitLines(t, total(want), 60*time.Second)), want)
	stopCluster(t, ws, 0, false)
}

// Every worker of a cluster runs with --run-with-resilience or none
// does: a worker that differs is refused when it joins, with one line
// that says so on both sides, and exits 1.
func TestClusterFault_ResilienceMismatchRefused(t *testing.T) {
	dir := exampleDir("word_count")
	recv := exStartReceiver(t, dir)
	control, in := freePort(t), freePort(t)
	init := start(t, dir, "machida3", "--application-module", "word_count", "--in", in, "--out", recv.addr,
		"--metrics", freePort(t), "--external", freePort(t), "--resilience-dir", t.TempDir(), "--name", "initializer",
		"--cluster-initializer", "--worker-count", "2", "--control", control, "--data", freePort(t),
		"--run-with-resilience", "--ponythreads=1", "--ponynoblock")
	w1 := start(t, dir, "machida3", "--application-module", "word_count", "--in", in, "--out", recv.addr,
		"--metrics", freePort(t), "--external", freePort(t), "--resilience-dir", t.TempDir(), "--name", "worker1",
		"--control", control, "--my-control", freePort(t), "--my-data", freePort(t),
		"--ponythreads=1", "--ponynoblock")
	if code := w1.wait(90 * time.Second); code != 1 {
		t.Errorf("worker1 without --run-with-resilience exited %d, want 1\n%s", code, w1.stderr.String())
	}
	if want := "refuses a control link from worker worker1, which has no --run-with-resilience, this worker runs with it"; !strings.Contains(w1.stderr.String(), want) {
		t.Errorf("worker1's output does not say %q:\n%s", want, w1.stderr.String())
	}
	waitLog(t, init, 30*time.Second, "refused worker", "worker1", "no --run-with-resilience, this worker runs with it")
	select {
	case <-init.done:
		t.Errorf("the initializer exited: %v\n%s", init.err, init.stderr.String())
	default:
	}
}

// stopBeforeStart sends SIGTERM to init, the initializer of a cluster of
// init and w1 that has not started, and checks that both exit 0 and
// leave nothing in their resilience directories res0 and res1 (when).
func stopBeforeStart(t *testing.T, when string, init, w1 *proc, res0, res1 string) {
	t.Helper()
	if err := init.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*proc{"initializer": init, "worker1": w1} {
		if code := p.wait(60 * time.Second); code != 0 {
			t.Errorf("%s exited %d after SIGTERM to the initializer %s, want 0\n%s", name, code, when, p.stderr.String())
		}
	}
	for _, d := range []string{res0, res1} {
		left, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range left {
			t.Errorf("recovery file left after a clean stop %s: %s", when, filepath.Join(d, e.Name()))
		}
	}
}

// A cluster that has formed but not started (its sink is down, so no
// worker gets past INIT PHASE I): SIGTERM to the initializer still stops
// both cleanly, each exits 0, and no recovery file is left.
func TestClusterFault_StopWhileASinkIsDown(t *testing.T) {
	dir := exampleDir("word_count")
	control, in, out := freePort(t), freePort(t), freePort(t) // nobody listens on out
	res0, res1 := t.TempDir(), t.TempDir()
	init := start(t, dir, "machida3", "--application-module", "word_count", "--in", in, "--out", out,
		"--metrics", freePort(t), "--external", freePort(t), "--resilience-dir", res0, "--name", "initializer",
		"--cluster-initializer", "--worker-count", "2", "--control", control, "--data", freePort(t),
		"--ponythreads=1", "--ponynoblock")
	w1 := start(t, dir, "machida3", "--application-module", "word_count", "--in", in, "--out", out,
		"--metrics", freePort(t), "--external", freePort(t), "--resilience-dir", res1, "--name", "worker1",
		"--control", control, "--my-control", freePort(t), "--my-data", freePort(t),
		"--ponythreads=1", "--ponynoblock")
	for _, p := range []*proc{init, w1} {
		waitLog(t, p, 60*time.Second, "cluster formed")
	}
	stopBeforeStart(t, "while a sink is down", init, w1, res0, res1)
}
