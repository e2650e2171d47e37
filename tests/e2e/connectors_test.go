package e2e

// The connector scripts (connectors/*) end to end: each test starts the
// sink script(s), machida3 with a connector application, then the source
// script, pushes data into the real service and checks that every message
// comes out converted, in the real service or at a TCP sink.
//
// Services: Redis on 127.0.0.1:6379, RabbitMQ on 127.0.0.1:5672
// (guest/guest), PostgreSQL on 127.0.0.1:5432 (trust, database test), and
// Kafka from tests/kafkabroker (built and started by the test). A test is
// skipped only when its service does not answer; .ci/run starts them.
// Names (channels, hash keys, queues, tables, topics) are unique per run
// and removed afterwards; every port is a free one.
//
// The scripts run on Debian's /usr/bin/python3 when it exists, because
// that is the interpreter that sees the python3-redis, python3-pika,
// python3-psycopg2 and python3-kafka packages (a pyenv python3 on PATH
// does not); elsewhere on the python3 on PATH. The application's module is
// found in the working directory (testdata), the wallaroo package through
// PYTHONPATH=<repo>/pyapi, as the scripts' documentation says.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wallaroo-go/machida/internal/childproc"
)

// connectorScripts are the scripts of connectors/, all runnable on Python 3.
var connectorScripts = []string{
	"udp_source", "udp_sink",
	"redis_subscriber_source", "redis_hash_sink",
	"rabbitmq_source",
	"postgres_notify_source", "postgres_insert_sink",
	"kafka_source", "kafka_sink",
}

const debianPython = "/usr/bin/python3"

// connectorPython is the interpreter that runs the connector scripts.
func connectorPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(debianPython); err == nil {
		return debianPython
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("no Python 3 to run the connector scripts: %v", err)
	}
	return p
}

// scriptEnv is the environment of a connector script: ours, with PYTHONPATH
// set to the wallaroo package when withWallaroo (else without PYTHONPATH,
// so the scripts must find ../pyapi themselves), plus extra.
func scriptEnv(withWallaroo bool, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONPATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	if withWallaroo {
		env = append(env, "PYTHONPATH="+filepath.Join(repoRoot(), "pyapi"))
	}
	return append(env, extra...)
}

// startProcess runs path in dir with env, like the harness's start.
func startProcess(t *testing.T, dir string, env []string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	t.Logf("run (in %s): %s %s", dir, path, strings.Join(args, " "))
	if err := childproc.Start(p.cmd); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	name := filepath.Base(path)
	if strings.HasPrefix(name, "python") && len(args) > 0 {
		name = filepath.Base(args[0]) // the script
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.stdout.String(), name, p.stderr.String())
		}
	})
	return p
}

// startScript runs connectors/<script> with the connector Python, in the
// testdata directory, with the wallaroo package on PYTHONPATH.
func startScript(t *testing.T, script string, args ...string) *proc {
	t.Helper()
	return startScriptIn(t, testdataDir(), scriptEnv(true), script, args...)
}

func startScriptIn(t *testing.T, dir string, env []string, script string, args ...string) *proc {
	t.Helper()
	path := filepath.Join(repoRoot(), "connectors", script)
	return startProcess(t, dir, env, connectorPython(t), append([]string{path}, args...)...)
}

// stopScript sends SIGTERM and expects a clean exit (status 0).
func stopScript(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("%s exited with status %d after SIGTERM, want 0\nstderr:\n%s", p.cmd.Args[1], code, p.stderr.String())
	}
	if s := p.stderr.String(); !strings.Contains(s, "stopping (SIGTERM)") || strings.Contains(s, "Traceback") {
		t.Errorf("%s did not stop cleanly; stderr:\n%s", p.cmd.Args[1], s)
	}
}

// requireService skips the test when nothing answers on addr.
func requireService(t *testing.T, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("%s does not answer on %s (%v); .ci/run starts it", name, addr, err)
	}
	c.Close()
}

// uniqueName returns prefix_<random>, a lower-case name no other run uses.
func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s_%d_%s", prefix, os.Getpid(), hex.EncodeToString(b))
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// eventually polls check until it returns true, or fails the test with
// what check last reported.
func eventually(t *testing.T, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done within %v: %s", timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// words returns n distinct test inputs and, for each, the pair the
// connector_pairs application makes of it.
func pairWords(prefix string, n int) ([]string, map[string]string) {
	in := make([]string, n)
	want := make(map[string]string, n)
	for i := range in {
		in[i] = fmt.Sprintf("%s-%03d", prefix, i)
		want[in[i]] = strings.ToUpper(in[i])
	}
	return in, want
}

// comparePairs reports the difference between two key → value maps.
func comparePairs(got, want map[string]string) string {
	var missing, wrong []string
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case g != v:
			wrong = append(wrong, fmt.Sprintf("%s=%q (want %q)", k, g, v))
		}
	}
	var extra []string
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(wrong)+len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(wrong)
	sort.Strings(extra)
	short := func(s []string) []string {
		if len(s) > 5 {
			return append(s[:5:5], fmt.Sprintf("... (%d in all)", len(s)))
		}
		return s
	}
	return fmt.Sprintf("got %d of %d pairs; missing %v, wrong %v, unexpected %v",
		len(got)-len(extra), len(want), short(missing), short(wrong), short(extra))
}

const machidaReady = "Application has successfully initialized"

// --- the scripts themselves ---------------------------------------------------

func TestConnectorScripts_AreExecutablePython3(t *testing.T) {
	for _, s := range connectorScripts {
		path := filepath.Join(repoRoot(), "connectors", s)
		info, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if mode := info.Mode().Perm(); mode != 0o755 {
			t.Errorf("%s has mode %o, want 755", s, mode)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if first != "#!/usr/bin/env python3\n" {
			t.Errorf("%s starts with %q, want #!/usr/bin/env python3", s, first)
		}
	}
}

// TestConnectorScripts_Errors runs the scripts with wrong command lines and
// environments; each must stop with one clear message and the right status.
func TestConnectorScripts_Errors(t *testing.T) {
	app := []string{"--application-module", "connector_pairs", "--source-port", "1", "--sink-port", "2"}
	fakeRedis := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fakeRedis, "redis"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fakeRedis, "redis", "__init__.py"),
		[]byte("raise ImportError('simulated: no redis here')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		script  string
		args    []string
		env     []string
		status  int
		stderr  []string // all must appear in stderr
		stdout  []string
		dir     string
		noWallp bool // run without PYTHONPATH: the script finds ../pyapi
	}{
		{
			name: "unknown source connector", script: "udp_source",
			args:   append([]string{"--connector", "nope", "--nope-host", "127.0.0.1", "--nope-port", "0"}, app...),
			status: 1,
			stderr: []string{"udp_source: error: Unable to find a source connector with the name 'nope' in application module 'connector_pairs' (its source connectors: 'feed')"},
		},
		{
			name: "source name given to a sink script", script: "udp_sink",
			args:   append([]string{"--connector", "feed", "--feed-host", "127.0.0.1", "--feed-port", "9"}, app...),
			status: 1,
			stderr: []string{"Unable to find a sink connector with the name 'feed'", "(its sink connectors: 'pairs')"},
		},
		{
			name: "wallaroo found from the checkout without PYTHONPATH", script: "redis_hash_sink",
			args:    append([]string{"--connector", "nothing", "--nothing-key", "k"}, app...),
			status:  1,
			stderr:  []string{"Unable to find a sink connector with the name 'nothing'"},
			noWallp: true,
		},
		{
			name: "missing required option", script: "udp_source",
			args:   append([]string{"--connector", "feed", "--feed-port", "0"}, app...),
			status: 2,
			stderr: []string{"the following arguments are required: --feed-host"},
		},
		{
			name: "kafka_sink max_block_ms not a number", script: "kafka_sink",
			args:   append([]string{"--connector", "pairs", "--pairs-topic", "t", "--pairs-max_block_ms", "soon"}, app...),
			status: 1,
			stderr: []string{"kafka_sink: error: --pairs-max_block_ms must be a number of milliseconds above 0, got 'soon'"},
		},
		{
			name: "missing --application-module", script: "kafka_sink",
			args:   []string{"--connector", "pairs", "--pairs-topic", "t"},
			status: 2,
			stderr: []string{"--application-module"},
		},
		{
			name: "application refuses the command line", script: "udp_source",
			args:   []string{"--application-module", "connector_pairs", "--connector", "feed", "--feed-host", "127.0.0.1", "--feed-port", "0"},
			status: 2,
			stderr: []string{"the following arguments are required: --source-port", "application_setup of 'connector_pairs' refused this command line"},
		},
		{
			name: "application module not found", script: "udp_sink",
			args:   []string{"--application-module", "no_such_app", "--connector", "pairs", "--pairs-host", "127.0.0.1", "--pairs-port", "9"},
			status: 1,
			stderr: []string{"udp_sink: error: cannot import application module 'no_such_app'", "current directory or on PYTHONPATH"},
		},
		{
			name: "bad port", script: "udp_source",
			args:   append([]string{"--connector", "feed", "--feed-host", "127.0.0.1", "--feed-port", "eighty"}, app...),
			status: 1,
			stderr: []string{"udp_source: error: --feed-port must be a port number, got 'eighty'"},
		},
		{
			name: "client library missing", script: "redis_subscriber_source",
			args:   append([]string{"--connector", "feed", "--feed-topic", "t"}, app...),
			env:    []string{"PYTHONPATH=" + fakeRedis + string(os.PathListSeparator) + filepath.Join(repoRoot(), "pyapi")},
			status: 1,
			stderr: []string{"redis_subscriber_source needs the Python module 'redis'", "simulated: no redis here", "apt-get install python3-redis", "pip install redis"},
		},
		{
			name: "service not there", script: "redis_hash_sink",
			args:   append([]string{"--connector", "pairs", "--pairs-key", "k", "--pairs-port", portOf(t, freePort(t))}, app...),
			status: 1,
			stderr: []string{"redis_hash_sink: error: cannot reach Redis at 127.0.0.1:"},
		},
		{
			name: "help", script: "postgres_insert_sink",
			args:   []string{"--help"},
			status: 0,
			stdout: []string{"postgres_insert_sink --application-module MODULE --connector NAME", "--NAME-connection DSN"},
		},
		{
			name: "help for a connector lists its options", script: "kafka_source",
			args:   append([]string{"--connector", "feed", "--help"}, app...),
			status: 0,
			stdout: []string{"--feed-topics", "--feed-bootstrap_brokers", "--feed-consumer_group"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := scriptEnv(!c.noWallp, c.env...)
			p := startScriptIn(t, testdataDir(), env, c.script, c.args...)
			if code := p.wait(20 * time.Second); code != c.status {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.status, p.stdout.String(), p.stderr.String())
			}
			for _, s := range c.stderr {
				if !strings.Contains(p.stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, p.stderr.String())
				}
			}
			for _, s := range c.stdout {
				if !strings.Contains(p.stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, p.stdout.String())
				}
			}
			if c.status == 1 && strings.Contains(p.stderr.String(), "Traceback") {
				t.Errorf("a user error printed a traceback:\n%s", p.stderr.String())
			}
		})
	}
}

// TestConnectorScripts_SourceReconnects: when Wallaroo stops and starts
// again, a source script reconnects and nothing it was given is lost
// (udp_source keeps the datagrams that arrive meanwhile).
func TestConnectorScripts_SourceReconnects(t *testing.T) {
	t.Parallel()
	out := newSink(t)
	udpIn := freeUDPPort(t)
	app := []string{"--source-port", portOf(t, freePort(t)), "--out", out.addr()}
	m := machida(t, testdataDir(), "connector_pairs", "", "", app...)
	m.waitOutput(machidaReady, 30*time.Second)
	source := startScript(t, "udp_source", append([]string{
		"--application-module", "connector_pairs", "--connector", "feed",
		"--feed-host", "127.0.0.1", "--feed-port", portOf(t, udpIn)}, app...)...)
	source.waitOutput("ready:", 20*time.Second)

	conn, err := net.Dial("udp", udpIn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in, want := pairWords("again", 30)
	// UDP has no flow control: a datagram that finds the receiving
	// socket's buffer full is dropped. While Wallaroo runs, each datagram
	// is sent once the one before has come out of the worker, so there is
	// never more than one in flight and no buffer can fill up, however
	// slow a loaded machine makes the script (no pacing by time).
	sendEach := func(words []string, before int) {
		t.Helper()
		for i, w := range words {
			if _, err := conn.Write([]byte(w)); err != nil {
				t.Fatal(err)
			}
			out.waitLines(t, before+i+1, 60*time.Second)
		}
	}
	sendEach(in[:10], 0)
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := m.wait(60 * time.Second); code != 0 {
		t.Fatalf("machida3 exited with %d after SIGTERM", code)
	}
	// Wallaroo is down: these ten wait, in udp_source and its socket's
	// receive buffer (ten datagrams of a few bytes take a few KiB of its
	// ~200 KiB), until it has reconnected.
	for _, w := range in[10:20] {
		if _, err := conn.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	m2 := machida(t, testdataDir(), "connector_pairs", "", "", app...)
	m2.waitOutput(machidaReady, 30*time.Second)
	sendEach(in[20:], 20)
	lines := out.waitLines(t, len(in), 60*time.Second)
	got := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, " => ")
		got[k] = v
	}
	if diff := comparePairs(got, want); diff != "" || len(lines) != len(in) {
		t.Errorf("%d lines: %s", len(lines), diff)
	}
	if !strings.Contains(source.stderr.String(), "lost the connection to Wallaroo") {
		t.Errorf("udp_source did not report the lost connection:\n%s", source.stderr.String())
	}
	stopScript(t, source)
}

// TestConnectorSink_ReconnectStartsAtAFrame: a sink connector's script
// need not be listening when the worker starts (the worker retries, and is
// not ready until it connects); when the connection to it breaks in the
// middle of a frame, the next connection starts with that frame again,
// whole (a chunk the failure cut is resent whole: nothing is lost, and the
// script's decoder never reads payload bytes as a length header), then
// the frames after it. Every frame carries event time 0 (the worker calls
// encode(data), runtime spec 4.5), whatever the source's frame carried.
// The listener here plays the script: its tiny receive buffer makes
// Wallaroo's write of an 8 MiB frame stop part way, and it resets the
// connection after reading the frame's first bytes.
func TestConnectorSink_ReconnectStartsAtAFrame(t *testing.T) {
	t.Parallel()
	sinkAddr := freePort(t) // nobody listens there yet
	sourceAddr := freePort(t)
	app := []string{"--source-port", portOf(t, sourceAddr), "--sink-port", portOf(t, sinkAddr)}
	m := machida(t, testdataDir(), "connector_bytes", "", "", app...)
	m.waitOutput("connection to "+sinkAddr+" failed", 30*time.Second)
	if strings.Contains(m.stdout.String(), machidaReady) {
		t.Errorf("the worker is ready while its sink connector is not listening:\n%s", m.stdout.String())
	}

	l, err := listenWithSockopt(sinkAddr, syscall.SO_RCVBUF, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			t.Cleanup(func() { c.Close() })
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("Wallaroo did not connect to the sink connector")
			return nil
		}
	}

	first := next()
	m.waitOutput(machidaReady, 30*time.Second)
	src := dial(t, sourceAddr)
	defer src.Close()
	const sourceEventTime = 1_234_567_890_123 // the source's frames carry one; the sink's do not
	connectorFrame := func(payload []byte) []byte {
		f := make([]byte, 12, 12+len(payload))
		binary.LittleEndian.PutUint32(f, uint32(8+len(payload)))
		binary.LittleEndian.PutUint64(f[4:], sourceEventTime)
		return append(f, payload...)
	}
	big := bytes.Repeat([]byte("abcdefgh"), 1<<20)
	if _, err := src.Write(connectorFrame(big)); err != nil {
		t.Fatal(err)
	}

	// The frame has begun on the first connection: read its start, then
	// reset the connection with the rest of the frame unread.
	start := make([]byte, 12+64)
	first.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(first, start); err != nil {
		t.Fatalf("reading the start of the big frame: %v", err)
	}
	if got := binary.LittleEndian.Uint32(start); got != uint32(8+len(big)) {
		t.Fatalf("first frame header %d, want %d", got, 8+len(big))
	}
	if et := int64(binary.LittleEndian.Uint64(start[4:])); et != 0 {
		t.Errorf("first frame event time %d, want 0", et)
	}
	if !bytes.Equal(start[12:], big[:64]) {
		t.Errorf("first frame starts with %q, want %q", start[12:], big[:64])
	}
	first.(*net.TCPConn).SetLinger(0)
	first.Close()

	second := next()
	if _, err := src.Write(connectorFrame([]byte("after"))); err != nil {
		t.Fatal(err)
	}
	second.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(second)
	readFrame := func(what string) (eventTime int64, payload []byte) {
		t.Helper()
		header := make([]byte, 12)
		if _, err := io.ReadFull(r, header); err != nil {
			t.Fatalf("reading the header of %s on the new connection: %v", what, err)
		}
		size := binary.LittleEndian.Uint32(header)
		if size < 8 || size > uint32(8+len(big)) {
			t.Fatalf("engine bug: after the reconnect the sink connection starts in the middle of a frame: "+
				"header %q (length %d); want a frame of length %d (the big frame again)", header, size, 8+len(big))
		}
		body := make([]byte, size-8)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("reading the %d bytes of %s: %v", size-8, what, err)
		}
		return int64(binary.LittleEndian.Uint64(header[4:])), body
	}
	et, body := readFrame("the first frame")
	if !bytes.Equal(body, big) {
		t.Fatalf("the first frame on the new connection is %d bytes starting %q; want the cut frame again, whole (%d bytes)",
			len(body), body[:min(len(body), 16)], len(big))
	}
	if et != 0 {
		t.Errorf("event time of the resent frame %d, want 0", et)
	}
	et, body = readFrame("the second frame")
	if string(body) != "after" {
		t.Fatalf("the frame after the resent one is %q, want \"after\"", body[:min(len(body), 16)])
	}
	if et != 0 {
		t.Errorf("event time of the frame after %d, want 0", et)
	}
}

// --- Redis ------------------------------------------------------------------

const redisAddr = "127.0.0.1:6379"

// redisConn speaks just enough RESP for the tests.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRedis(t *testing.T) *redisConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", redisAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &redisConn{c: c, r: bufio.NewReader(c)}
}

// do sends one command and returns its reply: string, int64, nil,
// []any, or an error for a Redis error reply.
func (r *redisConn) do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	r.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return r.reply()
}

func (r *redisConn) reply() (any, error) {
	line, err := r.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redis: empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, errors.New("redis: " + body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = r.reply(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", line)
}

// TestConnector_Redis: PUBLISH on a channel → redis_subscriber_source →
// machida3 → redis_hash_sink → HSET into a hash.
func TestConnector_Redis(t *testing.T) {
	t.Parallel()
	requireService(t, "Redis", redisAddr)
	channel := uniqueName(t, "wallaroo_e2e_channel")
	key := uniqueName(t, "wallaroo_e2e_hash")
	r := dialRedis(t)
	t.Cleanup(func() {
		if _, err := r.do("DEL", key); err != nil {
			t.Errorf("DEL %s: %v", key, err)
		}
	})

	app := []string{"--source-port", portOf(t, freePort(t)), "--sink-port", portOf(t, freePort(t))}
	sink := startScript(t, "redis_hash_sink", append([]string{
		"--application-module", "connector_pairs", "--connector", "pairs",
		"--pairs-key", key}, app...)...)
	sink.waitOutput("ready:", 20*time.Second)
	m := machida(t, testdataDir(), "connector_pairs", "", "", app...)
	m.waitOutput(machidaReady, 30*time.Second)
	// Host and port default to 127.0.0.1:6379 (0.6 needed the port).
	source := startScript(t, "redis_subscriber_source", append([]string{
		"--application-module", "connector_pairs", "--connector", "feed",
		"--feed-topic", channel}, app...)...)
	source.waitOutput("ready:", 20*time.Second)

	in, want := pairWords("redis", 100)
	for _, w := range in {
		n, err := r.do("PUBLISH", channel, w)
		if err != nil {
			t.Fatalf("PUBLISH: %v", err)
		}
		if n != int64(1) {
			t.Fatalf("PUBLISH %s reached %v subscribers, want 1", channel, n)
		}
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		reply, err := r.do("HGETALL", key)
		if err != nil {
			return false, err.Error()
		}
		items, _ := reply.([]any)
		got := map[string]string{}
		for i := 0; i+1 < len(items); i += 2 {
			got[fmt.Sprint(items[i])] = fmt.Sprint(items[i+1])
		}
		diff := comparePairs(got, want)
		return diff == "", diff
	})
	stopScript(t, source)
	stopScript(t, sink)
}

// --- RabbitMQ ---------------------------------------------------------------

const (
	rabbitAddr = "127.0.0.1:5672"
	rabbitURL  = "amqp://guest:guest@127.0.0.1:5672/%2F"
)

// rabbitClient declares a queue, publishes the lines of its standard input
// to it, or deletes it, with pika (the library rabbitmq_source uses, from
// the same interpreter).
const rabbitClient = `
import sys, pika
url, action, queue = sys.argv[1:4]
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
if action == "publish":
    channel.queue_declare(queue, durable=True)
    for line in sys.stdin.read().split():
        channel.basic_publish("", queue, line.encode("utf-8"))
elif action == "delete":
    channel.queue_delete(queue)
connection.close()
`

func rabbit(t *testing.T, action, queue string, lines []string) {
	t.Helper()
	cmd := exec.Command(connectorPython(t), "-c", rabbitClient, rabbitURL, action, queue)
	cmd.Env = scriptEnv(false)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rabbitmq %s %s: %v\n%s", action, queue, err, out)
	}
}

// TestConnector_RabbitMQ: messages in a queue (some published before the
// script starts, some while it runs) → rabbitmq_source → machida3 → TCP
// sink.
func TestConnector_RabbitMQ(t *testing.T) {
	t.Parallel()
	requireService(t, "RabbitMQ", rabbitAddr)
	queue := uniqueName(t, "wallaroo_e2e_queue")
	in, want := pairWords("rabbit", 100)
	rabbit(t, "publish", queue, in[:50])
	t.Cleanup(func() { rabbit(t, "delete", queue, nil) })

	out := newSink(t)
	app := []string{"--source-port", portOf(t, freePort(t)), "--out", out.addr()}
	m := machida(t, testdataDir(), "connector_pairs", "", "", app...)
	m.waitOutput(machidaReady, 30*time.Second)
	source := startScript(t, "rabbitmq_source", append([]string{
		"--application-module", "connector_pairs", "--connector", "feed",
		"--feed-amqpurl", rabbitURL, "--feed-queue", queue}, app...)...)
	source.waitOutput("ready:", 20*time.Second)
	rabbit(t, "publish", queue, in[50:])

	lines := out.waitLines(t, len(in), 60*time.Second)
	got := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, " => ")
		got[k] = v
	}
	if diff := comparePairs(got, want); diff != "" || len(lines) != len(in) {
		t.Errorf("%d lines: %s", len(lines), diff)
	}
	stopScript(t, source)
}

// --- PostgreSQL -------------------------------------------------------------

const (
	postgresAddr = "127.0.0.1:5432"
	postgresDSN  = "host=127.0.0.1 port=5432 dbname=test user=postgres"
)

// psql runs SQL in the test database and returns the unaligned rows. The
// statements run as a script: each one commits on its own.
func psql(t *testing.T, sql string) string {
	t.Helper()
	cmd := exec.Command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "test", "-f", "-")
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return string(out)
}

// TestConnector_Postgres: INSERT into a table → trigger → NOTIFY →
// postgres_notify_source → machida3 → postgres_insert_sink → INSERT into
// another table.
func TestConnector_Postgres(t *testing.T) {
	t.Parallel()
	requireService(t, "PostgreSQL", postgresAddr)
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatalf("PostgreSQL answers but psql is missing (Debian package postgresql-client): %v", err)
	}
	name := uniqueName(t, "wallaroo_e2e")
	src, dst, channel := name+"_src", name+"_dst", name
	psql(t, fmt.Sprintf("CREATE TABLE %s (id serial PRIMARY KEY, content text NOT NULL); "+
		"CREATE TABLE %s (key text PRIMARY KEY, value text NOT NULL)", src, dst))
	t.Cleanup(func() {
		psql(t, fmt.Sprintf("DROP TABLE IF EXISTS %s, %s; DROP FUNCTION IF EXISTS %q()",
			src, dst, "wallaroo_notify_"+channel))
	})

	app := []string{"--source-port", portOf(t, freePort(t)), "--sink-port", portOf(t, freePort(t))}
	sink := startScript(t, "postgres_insert_sink", append([]string{
		"--application-module", "connector_pairs", "--connector", "pairs",
		"--pairs-connection", postgresDSN, "--pairs-table", dst}, app...)...)
	sink.waitOutput("ready:", 20*time.Second)
	m := machida(t, testdataDir(), "connector_pairs", "", "", app...)
	m.waitOutput(machidaReady, 30*time.Second)
	source := startScript(t, "postgres_notify_source", append([]string{
		"--application-module", "connector_pairs", "--connector", "feed",
		"--feed-connection", postgresDSN, "--feed-channel", channel,
		"--feed-table", src, "--feed-field", "content"}, app...)...)
	source.waitOutput("ready:", 20*time.Second)

	in, want := pairWords("row", 100)
	// Half in one transaction (50 notifications at its commit), half in
	// a transaction each.
	inserts := fmt.Sprintf("INSERT INTO %s (content) SELECT unnest(string_to_array('%s', ','));\n",
		src, strings.Join(in[:50], ","))
	for _, w := range in[50:] {
		inserts += fmt.Sprintf("INSERT INTO %s (content) VALUES ('%s');\n", src, w)
	}
	psql(t, inserts)
	eventually(t, 20*time.Second, func() (bool, string) {
		got := map[string]string{}
		for _, row := range strings.Split(strings.TrimSpace(psql(t, "SELECT key, value FROM "+dst)), "\n") {
			if k, v, ok := strings.Cut(row, "|"); ok {
				got[k] = v
			}
		}
		diff := comparePairs(got, want)
		return diff == "", diff
	})
	stopScript(t, source)
	stopScript(t, sink)
}

// --- Kafka ------------------------------------------------------------------

// startKafkaBroker builds tests/kafkabroker, starts it with the topics and
// returns its address.
func startKafkaBroker(t *testing.T, topics ...string) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./tests/kafkabroker")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./tests/kafkabroker: %v\n%s", err, out)
	}
	p := startProcess(t, dir, os.Environ(), filepath.Join(dir, "kafkabroker"), "-topics", strings.Join(topics, ","))
	var addr string
	eventually(t, 20*time.Second, func() (bool, string) {
		first, _, ok := strings.Cut(p.stdout.String(), "\n")
		if ok {
			addr = first
		}
		select {
		case <-p.done:
			t.Fatalf("kafkabroker exited: %v\n%s", p.err, p.stderr.String())
		default:
		}
		return ok, "kafkabroker printed no address"
	})
	return addr
}

// TestConnector_Kafka: records in a topic → kafka_source → machida3 →
// kafka_sink → records in another topic, keyed by the input.
func TestConnector_Kafka(t *testing.T) {
	t.Parallel()
	topicIn, topicOut := uniqueName(t, "wallaroo-in"), uniqueName(t, "wallaroo-out")
	broker := startKafkaBroker(t, topicIn, topicOut)
	client, err := kgo.NewClient(kgo.SeedBrokers(broker),
		kgo.ConsumeTopics(topicOut), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		// kafka-python reads snappy only with python3-snappy installed.
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	in, want := pairWords("record", 100)
	produce := func(words []string) {
		var records []*kgo.Record
		for _, w := range words {
			records = append(records, &kgo.Record{Topic: topicIn, Value: []byte(w)})
		}
		if err := client.ProduceSync(ctx, records...).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topicIn, err)
		}
	}
	// Half before the source script joins its (new) group: it starts at
	// the beginning with auto_offset_reset earliest.
	produce(in[:50])

	app := []string{"--source-port", portOf(t, freePort(t)), "--sink-port", portOf(t, freePort(t))}
	sink := startScript(t, "kafka_sink", append([]string{
		"--application-module", "connector_pairs", "--connector", "pairs",
		"--pairs-topic", topicOut, "--pairs-bootstrap_brokers", broker}, app...)...)
	sink.waitOutput("ready:", 20*time.Second)
	m := machida(t, testdataDir(), "connector_pairs", "", "", app...)
	m.waitOutput(machidaReady, 30*time.Second)
	source := startScript(t, "kafka_source", append([]string{
		"--application-module", "connector_pairs", "--connector", "feed",
		"--feed-topics", topicIn, "--feed-bootstrap_brokers", broker,
		"--feed-consumer_group", uniqueName(t, "wallaroo-group"),
		"--feed-auto_offset_reset", "earliest"}, app...)...)
	source.waitOutput("ready:", 30*time.Second)
	produce(in[50:])

	got := map[string]string{}
	count := 0
	for count < len(in) && ctx.Err() == nil {
		fetches := client.PollFetches(ctx)
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("fetch %s/%d: %v", topic, p, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			got[string(r.Key)] = string(r.Value)
			count++
		})
	}
	if diff := comparePairs(got, want); diff != "" || count != len(in) {
		t.Errorf("%d records in %s: %s", count, topicOut, diff)
	}
	stopScript(t, source)
	stopScript(t, sink)
}

// kafka_sink asks for its topic before it takes anything from Wallaroo:
// a topic the broker does not have stops it with one line (exit 1), not
// a traceback after a minute with the records it took lost.
func TestConnector_KafkaSinkMissingTopic(t *testing.T) {
	t.Parallel()
	broker := startKafkaBroker(t, uniqueName(t, "wallaroo-there"))
	missing := uniqueName(t, "wallaroo-missing")
	sink := startScript(t, "kafka_sink", "--application-module", "connector_pairs", "--connector", "pairs",
		"--pairs-topic", missing, "--pairs-bootstrap_brokers", broker, "--pairs-max_block_ms", "2000",
		"--source-port", portOf(t, freePort(t)), "--sink-port", portOf(t, freePort(t)))
	if code := sink.wait(60 * time.Second); code != 1 {
		t.Errorf("kafka_sink exited %d for a missing topic, want 1\n%s", code, sink.stderr.String())
	}
	stderr := sink.stderr.String()
	for _, want := range []string{"kafka_sink: error: Kafka at " + broker + " has no topic '" + missing + "'", "create the topic"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("kafka_sink's stderr does not say %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "Traceback") || strings.Contains(stderr, "ready:") {
		t.Errorf("kafka_sink printed a traceback or became ready:\n%s", stderr)
	}
}

// --- celsius_connectors -----------------------------------------------------

// fahrenheitText is str(c * 1.8 + 32) as the host's Python prints it:
// Python 3's shortest repr, Python 2's 12 significant digits.
func fahrenheitText(c float64) string {
	f := c*1.8 + 32
	var s string
	if py2() {
		s = strconv.FormatFloat(f, 'g', 12, 64)
	} else {
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

func celsiusReadings(n int) (payloads [][]byte, want map[string]int) {
	want = map[string]int{}
	for i := 0; i < n; i++ {
		bits := math.Float32bits(float32(i))
		payloads = append(payloads, []byte{byte(bits >> 24), byte(bits >> 16), byte(bits >> 8), byte(bits)})
		want[fahrenheitText(float64(float32(i)))]++
	}
	return payloads, want
}

// TestExample_CelsiusConnectors runs the example as its README does, by
// hand: UDP datagrams → udp_source → machida3 → udp_sink → UDP.
func TestExample_CelsiusConnectors(t *testing.T) {
	t.Parallel()
	dir := exampleDir("celsius_connectors")
	printer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { printer.Close() })
	udpOut := portOf(t, printer.LocalAddr().String())
	udpIn := portOf(t, freeUDPPort(t))

	app := []string{"--feed-port", portOf(t, freePort(t)), "--conversion-port", portOf(t, freePort(t))}
	sink := startScriptIn(t, dir, scriptEnv(true), "udp_sink", append([]string{
		"--application-module", "celsius", "--connector", "fahrenheit_conversion",
		"--fahrenheit_conversion-host", "127.0.0.1", "--fahrenheit_conversion-port", udpOut}, app...)...)
	sink.waitOutput("ready:", 20*time.Second)
	m := machida(t, dir, "celsius", "", "", app...)
	m.waitOutput(machidaReady, 30*time.Second)
	source := startScriptIn(t, dir, scriptEnv(true), "udp_source", append([]string{
		"--application-module", "celsius", "--connector", "celsius_feed",
		"--celsius_feed-host", "127.0.0.1", "--celsius_feed-port", udpIn}, app...)...)
	source.waitOutput("listening on host: 127.0.0.1 port: "+udpIn, 20*time.Second)
	source.waitOutput("ready:", 20*time.Second)

	payloads, want := celsiusReadings(100)
	conn, err := net.Dial("udp", "127.0.0.1:"+udpIn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// UDP has no flow control: a datagram that finds the receiving
	// socket's buffer full is dropped. Each reading is sent once the
	// conversion of the one before has come out, so there is never more
	// than one datagram in flight and no buffer on the way can fill up,
	// however slow a loaded machine makes the scripts (no pacing by time).
	got := map[string]int{}
	buf := make([]byte, 2048)
	for n, p := range payloads {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
		printer.SetReadDeadline(time.Now().Add(60 * time.Second))
		k, _, err := printer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", n, len(payloads), err)
		}
		got[string(buf[:k])]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("converted readings differ:\n got %v\nwant %v", got, want)
	}
	if want["32.0"] != 1 || want["33.8"] != 1 {
		t.Errorf("expected values are off: %v", want)
	}
	stopScript(t, source)
	stopScript(t, sink)
}

// TestExample_CelsiusConnectorsRunSample runs the example's run_sample.
func TestExample_CelsiusConnectorsRunSample(t *testing.T) {
	t.Parallel()
	dir := exampleDir("celsius_connectors")
	p := startProcess(t, dir, scriptEnv(false), connectorPython(t), "run_sample",
		"--free-ports", "--command", bin(hostBinary))
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("run_sample exited with %d\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
	_, want := celsiusReadings(100)
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(p.stdout.String()), "\n") {
		got[l]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("run_sample printed other values:\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(p.stderr.String(), "received all 100 converted readings") {
		t.Errorf("run_sample did not report success:\n%s", p.stderr.String())
	}
}

// freeUDPPort returns a loopback UDP address nobody uses right now.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}
