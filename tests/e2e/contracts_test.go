package e2e

import (
	"slices"
	"strings"
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
