package bridge

/*
#include "shim.h"
#include <stdlib.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"
)

// Config says how to start the interpreter.
type Config struct {
	// Path entries are put at the front of sys.path, in order, after the
	// current directory ("" is always sys.path[0], as the 0.6 hosts did).
	Path []string

	// fault, when set, makes setup fail with it before it changes
	// anything. Tests only: nothing else makes a Start fail on demand.
	fault error
}

// Interp is the process's one Python interpreter and the executor
// goroutine that owns it. Safe for concurrent use.
type Interp struct {
	jobs chan job
	stop chan struct{}
	once sync.Once

	// mu guards the fields up to the blank line. Whoever takes both takes
	// the GIL first, then mu; Busy and Interrupt take mu without the GIL.
	mu      sync.Mutex
	seq     uint64    // jobs started so far; identifies the running one
	running bool      // a job is running now
	what    string    // its label (DoAs), or ""
	pc      uintptr   // else the program counter of Do's caller
	since   time.Time // when it started on the executor
	ident   C.ulong   // PyThread_get_thread_ident() of the executor's thread
	pending bool      // an async exception was scheduled for the running job
	applied int       // async exceptions scheduled so far (for tests)
	// stopping is machida_bridge.WorkerStopping, created by setup; a
	// strong reference owned by the Interp for the life of the process.
	stopping Object
	// stackOf is machida_bridge.stack_of (owned, set by setup).
	stackOf Object

	// executor-only state
	ts *C.PyThreadState // the executor's thread state while the GIL is released
	py Py
}

type job struct {
	fn   func(*Py) error
	what string
	pc   uintptr
	done chan result
}

type result struct {
	err      error
	panicked *executorPanic
}

// Py is the capability to use Python: methods on it may only be called on
// the executor, inside the function given to Interp.Do.
type Py struct {
	in *Interp
	// traceback module, imported lazily for error formatting (owned)
	traceback Object
}

var started struct {
	sync.Mutex
	in *Interp // the running interpreter, once a Start has succeeded
	// boot is the executor that initialised Python when setup then failed:
	// it keeps the thread that owns Python's thread state, and a retry
	// runs setup there again.
	boot *Interp
}

// errGoexit is what Do returns when fn called runtime.Goexit.
var errGoexit = errors.New("bridge: the function given to Do called runtime.Goexit " +
	"(t.Fatal or t.FailNow inside Do?) and did not finish; the executor was replaced")

// Start initialises the interpreter on a new executor goroutine and sets up
// sys.argv and sys.path. Once it has succeeded, later calls fail: there is
// one interpreter per process, and the returned Interp lives until the
// process exits. If it fails, it may be called again: Python is
// initialised once, and the retry runs the setup again on the executor
// that initialised it (its thread owns Python's main thread state).
func Start(cfg Config) (*Interp, error) {
	started.Lock()
	defer started.Unlock()
	if started.in != nil {
		return nil, errors.New("bridge: the Python interpreter is already started")
	}
	in := started.boot
	if in == nil {
		in = &Interp{jobs: make(chan job), stop: make(chan struct{})}
		in.py.in = in
		ready := make(chan error, 1)
		go in.run(ready)
		if err := <-ready; err != nil {
			return nil, err
		}
		started.boot = in
	}
	if err := in.DoAs("bridge.Start", func(py *Py) error { return py.setup(cfg) }); err != nil {
		return nil, err
	}
	started.boot = nil
	started.in = in
	return in, nil
}

// run is the first executor: it initialises Python on its own OS thread,
// which it never leaves (Python's main thread state belongs to it).
func (in *Interp) run(ready chan<- error) {
	runtime.LockOSThread() // for ever: Python's thread state belongs to this thread
	if C.wb_init() != 0 {
		ready <- errors.New("bridge: Py_InitializeEx failed")
		return // Python is not initialised; the locked thread ends with us
	}
	in.setIdent()
	in.ts = C.wb_save_thread() // releases the GIL
	ready <- nil
	in.loop()
}

// takeOver is a replacement executor, started when the previous one ended
// in runtime.Goexit (its OS thread ends with it). It makes a new Python
// thread state for its own OS thread. The old thread state, borrowed
// here, is left alone: deleting another thread's state would unbind the
// calling thread's PyGILState slot on Python 3.12 and later, and it only
// costs one small allocation per Goexit.
func (in *Interp) takeOver(old *C.PyThreadState) {
	runtime.LockOSThread() // for ever, as in run
	C.wb_restore_thread(C.wb_new_thread_state(old))
	in.setIdent()
	in.ts = C.wb_save_thread()
	in.loop()
}

func (in *Interp) setIdent() {
	in.mu.Lock()
	in.ident = C.wb_thread_ident()
	in.mu.Unlock()
}

// loop runs jobs until Stop, taking the GIL for each job and releasing it
// between jobs, so Python threads started by user code run between them.
func (in *Interp) loop() {
	for {
		select {
		case j := <-in.jobs:
			C.wb_restore_thread(in.ts)
			in.begin(j)
			r := in.call(j) // on Goexit, call hands over and this goroutine ends inside it
			in.end()
			in.ts = C.wb_save_thread()
			j.done <- r
		case <-in.stop:
			return
		}
	}
}

// begin and end bracket a job, with the GIL held.
func (in *Interp) begin(j job) {
	now := time.Now()
	in.mu.Lock()
	in.seq++
	in.running = true
	in.what, in.pc, in.since = j.what, j.pc, now
	in.mu.Unlock()
}

func (in *Interp) end() {
	in.mu.Lock()
	if in.pending {
		// An Interrupt that arrived after the job's last bytecode must
		// not fire in the next job.
		C.wb_async_clear(in.ident)
		in.pending = false
	}
	in.running = false
	in.mu.Unlock()
}

// call runs j.fn with the GIL held. A panic in fn is recovered and handed
// to Do's caller, which panics with it (an engine bug stays loud), while
// the executor goes on. runtime.Goexit cannot be stopped: the deferred
// function releases the GIL, tells Do's caller, and starts a replacement
// executor before this goroutine and its thread end.
func (in *Interp) call(j job) (r result) {
	returned := false
	defer func() {
		if returned {
			return
		}
		p := recover()
		if C.wb_err_occurred() != 0 {
			in.py.discardError()
		}
		if p != nil {
			r = result{panicked: &executorPanic{value: p, stack: debug.Stack()}}
			return
		}
		in.end()
		in.ts = C.wb_save_thread()
		j.done <- result{err: errGoexit}
		go in.takeOver(in.ts)
	}()
	err := j.fn(&in.py)
	returned = true
	return result{err: err}
}

// executorPanic is the value Do panics with when fn panicked.
type executorPanic struct {
	value any
	stack []byte // of the executor goroutine, where fn panicked
}

func (p *executorPanic) Error() string {
	return fmt.Sprintf("bridge: panic in a function run on the Python executor (an engine bug): %v\n\nexecutor goroutine:\n%s", p.value, p.stack)
}

func (p *executorPanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

// Do runs fn on the executor with the GIL held and returns its error. It
// blocks until fn returns. It must not be called from inside fn. If fn
// panics, Do panics in the calling goroutine with an error that carries
// the panic value and the executor's stack; if fn calls runtime.Goexit,
// Do returns an error. In both cases the executor survives.
//
//go:noinline
func (in *Interp) Do(fn func(*Py) error) error {
	var pc [1]uintptr
	runtime.Callers(2, pc[:]) // Do's caller, for Busy
	return in.do(job{fn: fn, pc: pc[0]})
}

// DoAs is Do with a description of the work (e.g. a stage's name), which
// Busy reports while fn runs.
func (in *Interp) DoAs(what string, fn func(*Py) error) error {
	return in.do(job{fn: fn, what: what})
}

func (in *Interp) do(j job) error {
	j.done = make(chan result, 1)
	select {
	case in.jobs <- j:
	case <-in.stop:
		return errors.New("bridge: interpreter stopped")
	}
	r := <-j.done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// Busy reports the Do running on the executor now, if any (ok): what it is
// (the label given to DoAs, else "Do from " and the function that called
// Do) and when it started. It never waits for the GIL, so a watchdog can
// call it from any goroutine while a Do is stuck.
func (in *Interp) Busy() (what string, since time.Time, ok bool) {
	in.mu.Lock()
	what, pc, since, ok := in.what, in.pc, in.since, in.running
	in.mu.Unlock()
	if !ok {
		return "", time.Time{}, false
	}
	if what == "" {
		what = "Do from an unknown caller"
		if f, _ := runtime.CallersFrames([]uintptr{pc}).Next(); f.Function != "" {
			what = "Do from " + f.Function
		}
	}
	return what, since, true
}

// Interrupt asks the Python code of the Do running now, if any, to stop:
// it schedules machida_bridge.WorkerStopping (a KeyboardInterrupt, so
// "except Exception" does not catch it) with message msg to be raised in
// the executor thread, through PyThreadState_SetAsyncExc. It may be called
// from any goroutine and returns at once; it reports whether a Do was
// running. The function given to Do then sees a *PyError with Interrupted
// set from the Python call that was running, unless user code catches it.
//
// Python raises the exception only when the executor next runs bytecode
// of that Do: a busy Python loop stops within a few milliseconds, but a
// Do blocked in C (time.sleep, a socket read, a lock, a C extension) stays
// blocked until that call returns; on Python 3 time.sleep is cut short
// only by a signal handled on Python's main thread, and the engine
// installs none. If the Do ends first, the request is dropped: it never
// reaches a later Do. A caller that must bound a stop uses Busy to see
// whether the Do has returned, and exits the process if it has not.
//
// The request is carried out by a goroutine of its own that takes the GIL
// with PyGILState_Ensure on its locked OS thread; it waits as long as the
// executor holds the GIL without running bytecode (Go code inside Do, a C
// call that keeps the GIL), and then does nothing if that Do is over.
func (in *Interp) Interrupt(msg string) bool {
	in.mu.Lock()
	seq, ok := in.seq, in.running
	in.mu.Unlock()
	if ok {
		go in.interrupt(seq, msg)
	}
	return ok
}

func (in *Interp) interrupt(seq uint64, msg string) {
	// PyGILState ties a thread state to this OS thread from Ensure to
	// Release, which are separate cgo calls: stay on one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g := C.wb_gil_ensure()
	defer C.wb_gil_release(g)
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.running || in.seq != seq || in.stopping.IsZero() {
		return // that Do is over (or is the setup, before the class exists)
	}
	cs := C.CString(msg)
	defer C.free(unsafe.Pointer(cs))
	// in.stopping is borrowed: the Interp keeps its reference.
	if C.wb_async_raise(in.ident, in.stopping.p, cs, C.Py_ssize_t(len(msg))) == 1 {
		in.pending = true
		in.applied++
	}
}

// Stack returns the Python stack of the executor thread, formatted as a
// traceback (innermost call last), for a watchdog to show where a stuck
// Do is. It may be called from any goroutine; it needs the GIL, which a Do
// blocked in C usually releases (time.sleep, socket reads, locks) but a C
// call may keep: ok is false if the GIL was not had within wait, or the
// stack could not be read.
func (in *Interp) Stack(wait time.Duration) (stack string, ok bool) {
	done := make(chan string, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		g := C.wb_gil_ensure()
		defer C.wb_gil_release(g)
		in.mu.Lock()
		fn := in.stackOf // borrowed: the Interp keeps its reference
		in.mu.Unlock()
		if fn.IsZero() {
			done <- ""
			return
		}
		var out *C.char
		var n C.Py_ssize_t
		if C.wb_stack_of(fn.p, in.ident, &out, &n) != 0 {
			done <- ""
			return
		}
		s := C.GoStringN(out, C.int(n))
		C.free(unsafe.Pointer(out))
		done <- s
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s := <-done:
		return s, s != ""
	case <-t.C:
		return "", false // the goroutine finishes on its own once it has the GIL
	}
}

// Stop ends the executor goroutine. Python is not finalised (see doc.go).
// Pending and later Do calls fail.
func (in *Interp) Stop() {
	in.once.Do(func() { close(in.stop) })
}

// Unlocked releases the GIL, runs fn (which must not use Python), and takes
// the GIL back. Use it around blocking waits inside a long Do, so that
// Python threads started by user code can run meanwhile.
func (py *Py) Unlocked(fn func()) {
	py.in.ts = C.wb_save_thread()
	defer C.wb_restore_thread(py.in.ts)
	fn()
}

// bridgeModule is machida_bridge, the bridge's own Python module.
const bridgeModule = `
class WorkerStopping(KeyboardInterrupt):
    """Raised in the Python code running on the engine's executor when the
    worker must stop now (bridge Interp.Interrupt). Like KeyboardInterrupt,
    "except Exception" does not catch it."""
    stop_message = "the worker is stopping"

    def __init__(self, *args):
        KeyboardInterrupt.__init__(self, *(args or (type(self).stop_message,)))


def stack_of(ident):
    """The Python stack of thread ident, formatted (bridge Interp.Stack)."""
    import sys
    import traceback
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame))
`

func (py *Py) setup(cfg Config) error {
	if cfg.fault != nil {
		return fmt.Errorf("bridge: setup: %w", cfg.fault)
	}
	sys, err := py.Import("sys")
	if err != nil {
		return fmt.Errorf("bridge: import sys: %w", err)
	}
	defer py.DecRef(sys)
	argv, err := py.NewList([]Object{})
	if err != nil {
		return fmt.Errorf("bridge: sys.argv: %w", err)
	}
	empty := py.Str("")
	err = py.CallMethodDiscard(argv, "append", empty)
	py.DecRef(empty)
	if err == nil {
		err = py.SetAttr(sys, "argv", argv)
	}
	py.DecRef(argv)
	if err != nil {
		return fmt.Errorf("bridge: set sys.argv: %w", err)
	}
	path, err := py.GetAttr(sys, "path")
	if err != nil {
		return fmt.Errorf("bridge: sys.path: %w", err)
	}
	defer py.DecRef(path)
	entries := append([]string{""}, cfg.Path...)
	for i := len(entries) - 1; i >= 0; i-- {
		idx := py.Int(0)
		s := py.Str(entries[i])
		err := py.CallMethodDiscard(path, "insert", idx, s)
		py.DecRef(idx)
		py.DecRef(s)
		if err != nil {
			return fmt.Errorf("bridge: sys.path.insert(%q): %w", entries[i], err)
		}
	}
	mod, err := py.Exec("machida_bridge", bridgeModule)
	if err != nil {
		return fmt.Errorf("bridge: create module machida_bridge: %w", err)
	}
	defer py.DecRef(mod)
	cls, err := py.GetAttr(mod, "WorkerStopping")
	if err != nil {
		return fmt.Errorf("bridge: machida_bridge.WorkerStopping: %w", err)
	}
	stack, err := py.GetAttr(mod, "stack_of")
	if err != nil {
		py.DecRef(cls)
		return fmt.Errorf("bridge: machida_bridge.stack_of: %w", err)
	}
	in := py.in
	in.mu.Lock()
	old, oldStack := in.stopping, in.stackOf
	in.stopping = cls  // owned by the Interp from here on
	in.stackOf = stack // likewise
	in.mu.Unlock()
	py.DecRef(old)
	py.DecRef(oldStack)
	return nil
}
