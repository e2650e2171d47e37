package bridge

/*
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// Config says how to start the interpreter.
type Config struct {
	// Path entries are put at the front of sys.path, in order, after the
	// current directory ("" is always sys.path[0], as the 0.6 hosts did).
	Path []string
}

// Interp is the process's one Python interpreter and the executor
// goroutine that owns it. Safe for concurrent use.
type Interp struct {
	jobs chan job
	stop chan struct{}
	once sync.Once
	// executor-only state
	ts *C.PyThreadState
	py Py
}

type job struct {
	fn   func(*Py) error
	done chan error
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
	in *Interp
}

// Start initialises the interpreter on a new executor goroutine. It may be
// called once per process; a second call returns the same error. The
// returned Interp lives until the process exits.
func Start(cfg Config) (*Interp, error) {
	started.Lock()
	defer started.Unlock()
	if started.in != nil {
		return nil, errors.New("bridge: the Python interpreter is already started")
	}
	in := &Interp{jobs: make(chan job), stop: make(chan struct{})}
	in.py.in = in
	ready := make(chan error, 1)
	go in.run(cfg, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	started.in = in
	return in, nil
}

func (in *Interp) run(cfg Config, ready chan<- error) {
	runtime.LockOSThread() // for ever: Python's thread state belongs to this thread
	if C.wb_init() != 0 {
		ready <- errors.New("bridge: Py_InitializeEx failed")
		return
	}
	if err := in.py.setup(cfg); err != nil {
		in.ts = C.wb_save_thread()
		ready <- err
		return
	}
	in.ts = C.wb_save_thread() // releases the GIL
	ready <- nil
	for {
		select {
		case j := <-in.jobs:
			C.wb_restore_thread(in.ts)
			err := in.call(j.fn)
			in.ts = C.wb_save_thread()
			j.done <- err
		case <-in.stop:
			return
		}
	}
}

func (in *Interp) call(fn func(*Py) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if C.wb_err_occurred() != 0 {
				in.py.discardError()
			}
			err = fmt.Errorf("bridge: panic on the Python executor: %v", r)
			panic(r) // an engine bug: let it crash loudly with its stack
		}
	}()
	return fn(&in.py)
}

// Do runs fn on the executor with the GIL held and returns its error. It
// blocks until fn returns. It must not be called from inside fn.
func (in *Interp) Do(fn func(*Py) error) error {
	j := job{fn: fn, done: make(chan error, 1)}
	select {
	case in.jobs <- j:
	case <-in.stop:
		return errors.New("bridge: interpreter stopped")
	}
	return <-j.done
}

// Stop ends the executor goroutine. Python is not finalised (see doc.go).
// Pending and later Do calls fail.
func (in *Interp) Stop() {
	in.once.Do(func() { close(in.stop) })
}

// Unlocked releases the GIL, runs fn (which must not use Python), and takes
// the GIL back. Use it around blocking waits inside a long Do.
func (py *Py) Unlocked(fn func()) {
	py.in.ts = C.wb_save_thread()
	defer C.wb_restore_thread(py.in.ts)
	fn()
}

func (py *Py) setup(cfg Config) error {
	sys, err := py.Import("sys")
	if err != nil {
		return fmt.Errorf("bridge: import sys: %w", err)
	}
	defer py.DecRef(sys)
	argv, err := py.NewList([]Object{})
	if err != nil {
		return err
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
	return nil
}
