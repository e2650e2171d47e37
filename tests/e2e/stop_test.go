package e2e

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A stop is bounded even when user code never returns: at the shutdown
// deadline the engine raises an exception in the interpreter's thread; a
// Python loop stops there, and the worker names the stage and exits 1.
func TestStop_InterruptsUserCodeThatNeverReturns(t *testing.T) {
	m, s, c := stuckWorker(t)
	send(t, c, "before")
	s.waitLines(t, 1, 20*time.Second)
	send(t, c, "spin", "after")
	m.waitOutput("SPINNING", 20*time.Second)
	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(60 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	errs := m.stderr.String()
	for _, want := range []string{
		"user code has not returned; interrupting it",
		"WorkerStopping",
		"in never_returns",
		`error: stopped computation 'never returns' of pipeline "Stuck" at the shutdown deadline`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if got := string(s.bytes()); got != "before\n" {
		t.Errorf("sink got %q, want only the message before the stuck one", got)
	}
}

// Code blocked in C (a lock's wait) cannot take the exception: a second
// later the worker prints where the interpreter is stuck and exits 1
// without finalising Python.
func TestStop_ExitsWhenUserCodeIsBlockedInC(t *testing.T) {
	m, _, c := stuckWorker(t)
	send(t, c, "block")
	m.waitOutput("BLOCKING", 20*time.Second)
	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(60 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	errs := m.stderr.String()
	for _, want := range []string{
		"Where the interpreter is stuck",
		"in never_returns",
		"_never.acquire()",
		"did not return within 1s of being interrupted at the shutdown deadline",
		`the stages of pipelines ["Stuck"]`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

// stuckWorker starts the stuck app and connects to its source.
func stuckWorker(t *testing.T) (*proc, *sink, net.Conn) {
	t.Helper()
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "stuck", in, s.addr())
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return m, s, c
}
