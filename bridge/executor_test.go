package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startRetryChild runs in a child test binary (see TestMain): a Start
// whose setup fails, then a retry, which must run Python on the thread
// that initialised it. Before the fix the retry ran on a new OS thread
// with no Python thread state and crashed the process.
func startRetryChild() int {
	injected := errors.New("injected setup failure")
	if _, err := Start(Config{Path: []string{"testdata"}, fault: injected}); !errors.Is(err, injected) {
		fmt.Printf("first Start: err = %v, want the injected failure\n", err)
		return 1
	}
	in, err := Start(Config{Path: []string{"testdata"}})
	if err != nil {
		fmt.Printf("retried Start: %v\n", err)
		return 1
	}
	err = in.Do(func(py *Py) error {
		m, err := py.Exec("probe_retry", "import sys, threading\npath = sys.path[:3]\nname = threading.current_thread().name\n")
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		path, err := py.GetAttr(m, "path")
		if err != nil {
			return err
		}
		defer py.DecRef(path)
		if r := py.Repr(path); !strings.HasPrefix(r, "['', 'testdata', ") || strings.Count(r, "testdata") != 1 {
			return fmt.Errorf("sys.path starts %s, want '', 'testdata' once", r)
		}
		return nil
	})
	if err != nil {
		fmt.Printf("Do after the retried Start: %v\n", err)
		return 1
	}
	fmt.Println("start retry: ok")
	return 0
}

func TestStart_RetryAfterFailedSetup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), retryEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "start retry: ok") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// A panic in the function given to Do is an engine bug: it reaches Do's
// caller as a panic that carries the value and the executor's stack, and
// the executor, with no exception left set, serves the next Do.
func TestDo_PanicReachesCallerAndExecutorSurvives(t *testing.T) {
	cause := errors.New("boom")
	got := make(chan any, 1)
	go func() {
		defer func() { got <- recover() }()
		_ = testInterp.Do(func(py *Py) error {
			if _, err := py.importNoFetch("no_such_module_before_panic"); err == nil {
				return nil // no exception pending: the test below would not notice
			}
			panic(cause)
		})
	}()
	var v any
	select {
	case v = <-got:
	case <-time.After(deadline):
		t.Fatalf("Do did not return within %v after a panic", deadline)
	}
	err, ok := v.(error)
	if !ok {
		t.Fatalf("Do panicked with %T %v, want an error", v, v)
	}
	if !errors.Is(err, cause) {
		t.Errorf("the panic does not wrap the original value: %v", err)
	}
	for _, want := range []string{"engine bug", "boom", "executor goroutine", "TestDo_PanicReachesCallerAndExecutorSurvives"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("panic message lacks %q:\n%v", want, err)
		}
	}
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_after_panic", "x = [i for i in range(10)]\n")
		py.DecRef(m)
		return err
	})
}

// runtime.Goexit in the function (what t.Fatal does) cannot be stopped:
// Do returns an error, and a new executor on a new OS thread, with its
// own Python thread state, serves the next Do. Before the fix the test
// binary hung: the goroutine died holding the GIL.
func TestDo_GoexitReturnsErrorAndExecutorIsReplaced(t *testing.T) {
	err := doErr(t, func(py *Py) error {
		runtime.Goexit()
		return nil
	})
	if !errors.Is(err, errGoexit) {
		t.Fatalf("Do after Goexit = %v, want errGoexit", err)
	}
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_after_goexit", "import threading\nname = threading.current_thread().name\nx = sum(range(10))\n")
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		x, err := py.GetAttr(m, "x")
		if err != nil {
			return err
		}
		defer py.DecRef(x)
		if n, err := py.GoInt(x); err != nil || n != 45 {
			t.Errorf("x = %d, %v", n, err)
		}
		py.Unlocked(func() {})
		return nil
	})
	// Interrupt finds the new executor's thread.
	interruptSpin(t, "spin after Goexit")
}

// Unlocked must release the GIL: a Python thread blocked in os.read (GIL
// released) is woken only inside Unlocked, and must take the GIL to write
// its answer. If Unlocked kept the GIL, no answer would come.
func TestUnlocked_ReleasesTheGIL(t *testing.T) {
	gate, answer := newPipe(t), newPipe(t)
	answerR := goFile(t, answer.r)
	var th Object
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_unlocked", `
import os, threading
def start(gate_fd, answer_fd):
    def run():
        os.read(gate_fd, 1)        # waits without the GIL
        os.write(answer_fd, b"x")  # runs only once it has the GIL
    t = threading.Thread(target=run)
    t.daemon = True
    t.start()
    return t
`)
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		g, a := py.Int(int64(gate.r)), py.Int(int64(answer.w))
		defer py.DecRef(g)
		defer py.DecRef(a)
		th, err = py.CallMethod(m, "start", g, a)
		if err != nil {
			return err
		}
		var readErr error
		py.Unlocked(func() {
			if _, err := syscall.Write(gate.w, []byte{1}); err != nil {
				readErr = err
				return
			}
			// Shorter than doErr's deadline, so a failure says why.
			answerR.SetReadDeadline(time.Now().Add(deadline / 2))
			_, readErr = answerR.Read(make([]byte, 1))
		})
		if readErr != nil {
			t.Errorf("the Python thread made no progress while Unlocked ran: %v", readErr)
		}
		return nil
	})
	do(t, func(py *Py) error {
		defer py.DecRef(th)
		timeout := py.Int(int64(deadline / time.Second))
		defer py.DecRef(timeout)
		return py.CallMethodDiscard(th, "join", timeout)
	})
}

// interruptSpin interrupts a Do running a Python busy loop, which must
// return the WorkerStopping exception.
func interruptSpin(t *testing.T, label string) {
	t.Helper()
	var spin Object
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_spin", "def spin():\n    while True:\n        pass\n")
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		spin, err = py.GetAttr(m, "spin")
		return err
	})
	defer do(t, func(py *Py) error { py.DecRef(spin); return nil })
	done := make(chan error, 1)
	go func() {
		done <- testInterp.DoAs(label, func(py *Py) error {
			r, err := py.Call(spin)
			py.DecRef(r)
			return err
		})
	}()
	waitFor(t, "Busy to report "+label, func() bool {
		what, _, ok := testInterp.Busy()
		return ok && what == label
	})
	msg := "the worker is stopping: " + label
	if !testInterp.Interrupt(msg) {
		t.Fatal("Interrupt found no Do running")
	}
	err := awaitChan(t, "the interrupted Do", done)
	var pe *PyError
	if !errors.As(err, &pe) {
		t.Fatalf("interrupted Do returned %v, want *PyError", err)
	}
	if !pe.Interrupted || pe.Type != "WorkerStopping" || pe.Message != msg || !strings.Contains(pe.Traceback, "in spin") {
		t.Errorf("interrupted Do returned %#v", pe)
	}
	if what, _, ok := testInterp.Busy(); ok {
		t.Errorf("Busy after the Do returned: %q", what)
	}
}

func TestInterrupt_StopsBusyPythonLoop(t *testing.T) {
	interruptSpin(t, "spin loop")
	// Nothing is left pending: the next Do runs Python loops unharmed.
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_after_interrupt", "n = 0\nfor i in range(100000):\n    n += i\n")
		py.DecRef(m)
		return err
	})
}

func TestInterrupt_WithNoDoRunning(t *testing.T) {
	if testInterp.Interrupt("nothing to stop") {
		t.Error("Interrupt reported a Do running while the executor was idle")
	}
	if what, _, ok := testInterp.Busy(); ok {
		t.Errorf("Busy while idle: %q", what)
	}
}

// An interrupt scheduled after the Do's last bytecode must not fire in the
// next Do.
func TestInterrupt_DroppedWhenTheDoEndsFirst(t *testing.T) {
	before := appliedInterrupts()
	err := doErr(t, func(py *Py) error {
		var scheduled bool
		py.Unlocked(func() {
			scheduled = testInterp.Interrupt("too late") &&
				eventually(func() bool { return appliedInterrupts() > before })
		})
		if !scheduled {
			return errors.New("the interrupt was not scheduled")
		}
		return nil // no bytecode ran since: the exception is still pending
	})
	if err != nil {
		t.Fatal(err)
	}
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_after_dropped", "n = 0\nfor i in range(100000):\n    n += i\n")
		py.DecRef(m)
		if err != nil {
			return fmt.Errorf("a later Do got the dropped interrupt: %w", err)
		}
		return nil
	})
}

// A Do blocked in C (here os.read; time.sleep behaves the same) is seen by
// Busy, named after Do's caller. Interrupt is scheduled (os.read released
// the GIL) but Python raises it only when the Do runs bytecode again,
// once the read returns.
func TestBusy_ReportsADoBlockedInC(t *testing.T) {
	p := newPipe(t)
	var blocked, fd Object
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_blocked", `
import os
def blocked(fd):
    data = os.read(fd, 1)
    n = 0
    for i in range(10000):
        n += i
    return data
`)
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		fd = py.Int(int64(p.r))
		blocked, err = py.GetAttr(m, "blocked")
		return err
	})
	defer do(t, func(py *Py) error { py.DecRef(blocked); py.DecRef(fd); return nil })
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- testInterp.Do(func(py *Py) error {
			r, err := py.Call(blocked, fd)
			py.DecRef(r)
			return err
		})
	}()
	var what string
	var since time.Time
	waitFor(t, "Busy to report the blocked Do", func() bool {
		var ok bool
		what, since, ok = testInterp.Busy()
		return ok
	})
	if !strings.HasPrefix(what, "Do from ") || !strings.Contains(what, "TestBusy_ReportsADoBlockedInC") {
		t.Errorf("Busy says %q, want Do from this test", what)
	}
	if since.Before(start) || since.After(time.Now()) {
		t.Errorf("Busy says since %v, want between %v and now", since, start)
	}
	// The blocked Do released the GIL (os.read does): its Python stack
	// can be read from here and shows where it is stuck.
	var stack string
	waitFor(t, "Stack to read the blocked Do's stack", func() bool {
		var ok bool
		stack, ok = testInterp.Stack(5 * time.Second)
		return ok && strings.Contains(stack, "in blocked")
	})
	if !strings.Contains(stack, `File "<probe_blocked>", line 4, in blocked`) {
		t.Errorf("stack of the blocked Do:\n%s", stack)
	}
	before := appliedInterrupts()
	if !testInterp.Interrupt("stop while blocked") {
		t.Fatal("Interrupt found no Do running")
	}
	waitFor(t, "the interrupt to be scheduled", func() bool { return appliedInterrupts() > before })
	select {
	case err := <-done:
		t.Fatalf("the Do returned while blocked in os.read: %v", err)
	default: // still blocked, as it must be: nothing was written yet
	}
	if _, err := syscall.Write(p.w, []byte{1}); err != nil {
		t.Fatal(err)
	}
	err := awaitChan(t, "the unblocked Do", done)
	var pe *PyError
	if !errors.As(err, &pe) || !pe.Interrupted || !strings.Contains(pe.Traceback, "in blocked") {
		t.Errorf("the unblocked Do returned %v, want WorkerStopping raised in blocked", err)
	}
}
