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
	m, _, in := echoWorker(t, "--my-app-flag", "7", "--ponypinasio", "--ponythreads", "1", "-u", "5", "--stop-pause=9", "--file=x")
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
	for _, want := range []string{"--in", in, "--out", "--my-app-flag", "7"} {
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

func TestUserException_TracebackStageAndExit1(t *testing.T) {
	m, s, in := echoWorker(t)
	c := dial(t, in)
	defer c.Close()
	send(t, c, "fine", "boom")
	code := m.wait(20 * time.Second)
	if code == 0 {
		t.Fatalf("machida3 exited 0 after an exception in user code")
	}
	errOut := m.stderr.String()
	for _, want := range []string{
		"Traceback (most recent call last)",
		"in check",
		"ValueError: the message said boom",
		"check for boom",
		bytesRepr("boom"),
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// What was processed before the failure still reached the sink.
	if lines := s.waitLines(t, 1, 5*time.Second); lines[0] != "fine" {
		t.Errorf("sink = %q", lines)
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

func TestShortHeaderDecoderAndStrEncoder(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "short_header", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c := dial(t, in)
	defer c.Close()
	for _, w := range []string{"alpha", "", "gamma"} {
		hdr := []byte{0, 0}
		binary.BigEndian.PutUint16(hdr, uint16(len(w)))
		c.Write(append(hdr, w...))
	}
	lines := s.waitLines(t, 3, 10*time.Second)
	if !slices.Equal(lines, []string{"ALPHA", "", "GAMMA"}) {
		t.Errorf("sink lines = %q", lines)
	}
}

func TestStartupErrors(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		stderr   []string
		stdout   []string
		noListen bool
	}{
		{name: "no module", args: []string{"--in", "127.0.0.1:1"}, code: 1,
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
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, testdataDir(), "machida3", c.args...)
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
			if strings.Contains(p.stdout.String(), "listening") {
				t.Errorf("something started listening:\n%s", p.stdout.String())
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
}
