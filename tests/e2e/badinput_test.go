package e2e

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// echoWorker starts the echo app with an in-test sink.
func echoWorker(t *testing.T, extra ...string) (*proc, *sink, string) {
	t.Helper()
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "echo_lines", in, s.addr(), extra...)
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	return m, s, in
}

func send(t *testing.T, c net.Conn, msgs ...string) {
	t.Helper()
	for _, msg := range msgs {
		if _, err := c.Write(frame([]byte(msg))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestArgs_EngineAndPonyOptionsRemoved(t *testing.T) {
	// --log-level is the engine's too, but not 0.6's: it stays for the
	// application, and a level the engine lacks ("none", which a harness
	// may pass to its app) neither stops the worker nor leaves the args.
	m, _, in := echoWorker(t, "--my-app-flag", "7", "--ponypinasio", "--ponythreads", "1", "-u", "5", "--stop-pause=9", "--file=x",
		"--log-level", "none")
	line := ""
	for _, l := range strings.Split(m.stdout.String(), "\n") {
		if strings.HasPrefix(l, "ARGS ") {
			line = strings.TrimPrefix(l, "ARGS ")
		}
	}
	var args []string
	if err := json.Unmarshal([]byte(line), &args); err != nil {
		t.Fatalf("app did not print its args: %q", m.stdout.String())
	}
	if !strings.HasSuffix(args[0], hostBinary) {
		t.Errorf("args[0] = %q, want the program path", args[0])
	}
	for _, want := range []string{"--in", in, "--out", "--my-app-flag", "7", "--log-level", "none"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	for _, gone := range []string{"--metrics", "--control", "--data", "--name", "worker-name", "--external",
		"--cluster-initializer", "--application-module", "echo_lines", "--ponythreads", "--ponynoblock",
		"--ponypinasio", "1", "-u", "5", "--stop-pause=9", "--file=x"} {
		if slices.Contains(args, gone) {
			t.Errorf("args %q still contain %q", args, gone)
		}
	}
}

func TestBadFrames_CloseOnlyThatConnection(t *testing.T) {
	m, s, in := echoWorker(t)

	good := dial(t, in)
	defer good.Close()
	send(t, good, "first")
	s.waitLines(t, 1, 10*time.Second)

	// A header announcing 1 GiB: over the frame limit.
	huge := dial(t, in)
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, 1<<30)
	if _, err := huge.Write(hdr); err != nil {
		t.Fatal(err)
	}
	huge.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := huge.Read(make([]byte, 1)); err == nil {
		t.Errorf("the engine did not close the connection that sent an oversized frame")
	}
	huge.Close()
	m.waitOutput("WARN Echo source: connection from", 10*time.Second) // (a warning, not info)
	m.waitOutput("exceeds the limit", 10*time.Second)

	// A frame cut short by the peer closing.
	trunc := dial(t, in)
	binary.BigEndian.PutUint32(hdr, 10)
	trunc.Write(append(hdr, "abc"...))
	trunc.Close()
	m.waitOutput("truncated", 10*time.Second)

	// The worker still serves the good connection, and new ones.
	send(t, good, "drop", "second")
	other := dial(t, in)
	defer other.Close()
	send(t, other, "third")
	lines := s.waitLines(t, 3, 10*time.Second)
	slices.Sort(lines)
	if !slices.Equal(lines, []string{"first", "second", "third"}) {
		t.Errorf("sink lines = %q", lines)
	}
}

// textRepr is repr() of a text string on the host's Python.
func textRepr(s string) string {
	if py2() {
		return "u'" + s + "'"
	}
	return "'" + s + "'"
}

// TestUserException_TracebackStageAndExit1: an exception raised by user
// code while processing a message, in any kind of callback, stops the
// worker with exit status 1 (not a crash), prints the Python traceback
// and one error line naming the stage and the message, and what was
// produced before the failure still reaches the sink (and nothing after).
// Wallaroo 0.6 printed the traceback, then "This should never happen:
// failure in ..." (runtime spec 1.3); the error line is ours.
func TestUserException_TracebackStageAndExit1(t *testing.T) {
	cases := []struct {
		stage string // raise_in.py --raise-in
		in    string // the function the traceback shows raising
		line  string // in the error line: the stage and the message
		out   []string
	}{
		{"decoder", "in decode", "in decoder of source 'Raise' of pipeline \"Raise\" while processing " + bytesRepr("boom"), []string{"fine 1"}},
		{"computation", "in check", "in computation 'check' of pipeline \"Raise\" while processing " + textRepr("boom"), []string{"fine 1"}},
		{"key", "in key", "in key_by 'KeyExtractor_1__key' of pipeline \"Raise\" while processing " + textRepr("boom"), []string{"fine 1"}},
		{"state", "in __init__", "in state 'tally' of pipeline \"Raise\" while processing " + textRepr("boom"), []string{"fine 1"}},
		{"state_computation", "in tally", "in state 'tally' of pipeline \"Raise\" while processing " + textRepr("boom"), []string{"fine 1"}},
		{"encoder", "in encode", "in encoder OctetEncoder_1__encode of pipeline \"Raise\" while processing " + textRepr("boom 1"), []string{"fine 1"}},
		{"generator", "in apply", "in generator of source 'Gen' (apply) of pipeline \"Gen\" while processing 'fine2'", []string{"fine0 1", "fine1 1"}},
	}
	for _, c := range cases {
		t.Run(c.stage, func(t *testing.T) {
			s := newSink(t)
			in := ""
			if c.stage != "generator" {
				in = freePort(t)
			}
			m := machida(t, testdataDir(), "raise_in", in, s.addr(), "--raise-in", c.stage)
			if in != "" {
				m.waitOutput("Application has successfully initialized", 20*time.Second)
				conn := dial(t, in)
				defer conn.Close()
				send(t, conn, "fine")
				s.waitLines(t, 1, 10*time.Second) // "fine" is out before "boom" goes in
				send(t, conn, "boom")
			}
			if code := m.wait(20 * time.Second); code != 1 {
				t.Errorf("exit code %d, want 1 (an exception in user code is not a crash)", code)
			}
			errOut := m.stderr.String()
			for _, want := range []string{
				"Traceback (most recent call last)",
				"raise_in.py",
				c.in,
				"ValueError: " + c.stage + " was told to raise",
			} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			var errLine string
			for _, l := range strings.Split(errOut, "\n") {
				if strings.HasPrefix(l, "error: ") {
					errLine = l
				}
			}
			want := "error: user code failed " + c.line + ": ValueError: " + c.stage + " was told to raise; stopping the worker"
			if errLine != want {
				t.Errorf("error line\n %q\nwant\n %q", errLine, want)
			}
			if strings.Index(errOut, "Traceback") > strings.Index(errOut, errLine) {
				t.Errorf("the error line comes before the traceback:\n%s", errOut)
			}
			// The output made before the failure was delivered, and
			// nothing more: the sink has it all once the worker's
			// connection is closed.
			if n := s.waitClosed(t, 10*time.Second); n != 1 {
				t.Errorf("the worker connected to its sink %d times, want once", n)
			}
			if got := strings.Split(strings.TrimSuffix(string(s.bytes()), "\n"), "\n"); !slices.Equal(got, c.out) {
				t.Errorf("sink got %q, want %q", got, c.out)
			}
		})
	}
}

func TestEncoderContractViolation(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "bad_encoder", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c := dial(t, in)
	defer c.Close()
	send(t, c, "x")
	if code := m.wait(20 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(m.stderr.String(), "encoder") || !strings.Contains(m.stderr.String(), "must return bytes") {
		t.Errorf("stderr does not explain the encoder's mistake:\n%s", m.stderr.String())
	}
}

// A 2-byte header decoder, and an encoder returning str: the text is
// written as UTF-8, non-ASCII included (2-, 3- and 4-byte sequences).
func TestShortHeaderDecoderAndStrEncoder(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "short_header", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c := dial(t, in)
	defer c.Close()
	inputs := []string{"alpha", "", "héllo wörld", "Ωmega", "日本語", "smile 😀", "gamma"}
	want := []string{"ALPHA", "", "HÉLLO WÖRLD", "ΩMEGA", "日本語", "SMILE 😀", "GAMMA"}
	for _, w := range inputs {
		hdr := []byte{0, 0}
		binary.BigEndian.PutUint16(hdr, uint16(len(w))) // bytes of UTF-8
		if _, err := c.Write(append(hdr, w...)); err != nil {
			t.Fatal(err)
		}
	}
	lines := s.waitLines(t, len(want), 10*time.Second)
	if !slices.Equal(lines, want) {
		t.Errorf("sink lines = %q, want %q", lines, want)
	}
	if got := string(s.bytes()); got != strings.Join(want, "\n")+"\n" {
		t.Errorf("sink bytes = % x\nwant the UTF-8 of %q", got, want)
	}
}

// TestStartupErrors: a configuration error prints one clear line and
// exits with its status before anything listens or connects. Every case
// is given a source address (--in), an external channel (--external) and
// a sink (--out) that a worker going too far would bind, log ("... is
// listening on ...", on stderr) or connect to.
func TestStartupErrors(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr []string
		stdout []string
	}{
		{name: "no module", args: nil, code: 1,
			stderr: []string{"Error: You must provide Machida with --application-module"}},
		{name: "module not found", args: []string{"--application-module", "no_such_app_module"}, code: 1,
			stderr: []string{"No module named", "no_such_app_module", "could not import", "PYTHONPATH"},
			stdout: []string{"Could not load module 'no_such_app_module'"}},
		{name: "syntax error", args: []string{"--application-module", "syntax_error"}, code: 1,
			stderr: []string{"SyntaxError", "syntax_error.py"},
			stdout: []string{"Could not load module 'syntax_error'"}},
		{name: "no application_setup", args: []string{"--application-module", "no_setup"}, code: 1,
			stderr: []string{"has no application_setup"}},
		{name: "setup raises", args: []string{"--application-module", "setup_raises"}, code: 1,
			stderr: []string{"Traceback", "RuntimeError: no configuration for this application"},
			stdout: []string{"Something went wrong while building the application"}},
		{name: "setup exits via argparse", args: []string{"--application-module", "setup_argparse"}, code: 2,
			stderr: []string{"--required-thing"}},
		{name: "no sink", args: []string{"--application-module", "no_sink"}, code: 1,
			stderr: []string{"WallarooParameterError", "to_sink"},
			stdout: []string{"Something went wrong while building the application"}},
		{name: "bad option value", args: []string{"--application-module", "echo_lines", "--worker-count", "many"}, code: 1,
			stderr: []string{"Error:", "worker-count"}},
		{name: "data on a non-initializer", args: []string{"--application-module", "echo_lines", "--data", "127.0.0.1:1"}, code: 1,
			stderr: []string{"Error: only the cluster initializer takes --data"}},
		{name: "resilience dir missing", args: []string{"--application-module", "echo_lines", "--resilience-dir", "/nonexistent/machida-e2e"}, code: 1,
			stderr: []string{"Error: --resilience-dir /nonexistent/machida-e2e: not a directory this worker can use"}},
		{name: "initializer without data", args: []string{"--application-module", "echo_lines", "--cluster-initializer", "--worker-count", "2"}, code: 1,
			stderr: []string{"Error: the cluster initializer needs --data"}},
		// A cluster member needs a name of its own (spec 1.3).
		{name: "cluster member without a name", args: []string{"--application-module", "echo_lines", "--control", "127.0.0.1:6000"}, code: 1,
			stderr: []string{"Error: --control 127.0.0.1:6000: a worker that is not the --cluster-initializer needs --name"}},
		{name: "cluster member named initializer", args: []string{"--application-module", "echo_lines", "-n", "initializer", "-c=127.0.0.1:6000"}, code: 1,
			stderr: []string{"Error: --name initializer: that name is the cluster initializer's"}},
		{name: "joiner without a name", args: []string{"--application-module", "echo_lines", "--join", "127.0.0.1:6000"}, code: 1,
			stderr: []string{"Error: --join 127.0.0.1:6000: a joining worker needs --name"}},
		{name: "joiner of zero workers", args: []string{"--application-module", "echo_lines", "--join", "127.0.0.1:6000", "-n", "w9", "-w", "0"}, code: 1,
			stderr: []string{"Join Error: --worker-count must be at least 1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSink(t)
			// The case's own options last: they win over these.
			args := append([]string{"--in", freePort(t), "--out", s.addr(), "--external", freePort(t),
				"--metrics", freePort(t), "--resilience-dir", t.TempDir(), "--ponythreads=1"}, c.args...)
			p := start(t, testdataDir(), "machida3", args...)
			if code := p.wait(20 * time.Second); code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			for _, want := range c.stderr {
				if !strings.Contains(p.stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, p.stderr.String())
				}
			}
			for _, want := range c.stdout {
				if !strings.Contains(p.stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, p.stdout.String())
				}
			}
			// Listener lines ("Echo source is listening on ...",
			// "external channel: listening on ...") go to stderr.
			for stream, out := range map[string]string{"stdout": p.stdout.String(), "stderr": p.stderr.String()} {
				if strings.Contains(out, "listening") {
					t.Errorf("something started listening (%s):\n%s", stream, out)
				}
			}
			for _, banner := range []string{"INIT PHASE", "Application has successfully initialized"} {
				if strings.Contains(p.stdout.String(), banner) {
					t.Errorf("the worker began initializing (%q):\n%s", banner, p.stdout.String())
				}
			}
			if accepted := s.waitClosed(t, 10*time.Second); accepted != 0 {
				t.Errorf("the worker connected to its sink %d times before failing", accepted)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	p := start(t, testdataDir(), "machida3", "--help", "--application-module", "syntax_error")
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("--help exit code %d", code)
	}
	for _, want := range []string{"--application-module", "--cluster-initializer", "--resilience-dir", "--ponythreads"} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if strings.Contains(p.stderr.String(), "SyntaxError") {
		t.Errorf("--help imported the module")
	}
}

func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newSink(t)
	m := machida(t, testdataDir(), "echo_lines", l.Addr().String(), s.addr())
	if code := m.wait(20 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(m.stderr.String(), "unable to listen") {
		t.Errorf("stderr:\n%s", m.stderr.String())
	}
	// A taken port is a configuration error: reported before anything
	// else listens or connects (no INIT phases, no sink connection, no
	// external channel).
	if strings.Contains(m.stdout.String(), "INIT PHASE") {
		t.Errorf("the worker started its init phases before failing:\n%s", m.stdout.String())
	}
	if strings.Contains(m.stderr.String(), "external channel: listening") {
		t.Errorf("the external channel listened before the failure:\n%s", m.stderr.String())
	}
	if accepted, _ := s.connections(); accepted != 0 {
		t.Errorf("the worker connected %d times to its sink before failing", accepted)
	}
}

// The external channel's port is bound before the interpreter starts: a
// taken one stops the worker at once with a line naming the channel and
// the address, exit 1.
func TestExternalPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newSink(t)
	m := machida(t, testdataDir(), "echo_lines", freePort(t), s.addr(), "--external", l.Addr().String())
	if code := m.wait(20 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	want := "Error: listener: external channel: unable to listen on " + l.Addr().String()
	if !strings.Contains(m.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, m.stderr.String())
	}
	if strings.Contains(m.stdout.String(), "INIT PHASE") {
		t.Errorf("the worker started before failing:\n%s", m.stdout.String())
	}
}
