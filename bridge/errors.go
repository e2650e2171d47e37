package bridge

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"strings"
)

// PyError is a Python exception turned into a Go error. The interpreter has
// no exception set once a PyError exists.
type PyError struct {
	Type      string // exception class name, e.g. "ValueError"
	Message   string // str(exception)
	Traceback string // the full formatted traceback, ending in "Type: message\n"
	// IsSystemExit is set for SystemExit; ExitCode is then the status
	// CPython would exit with (None → 0, an int → itself, other → 1).
	IsSystemExit bool
	ExitCode     int
	// Interrupted is set when the exception is the one Interp.Interrupt
	// raises (machida_bridge.WorkerStopping, or a subclass).
	Interrupted bool
}

func (e *PyError) Error() string {
	if e.Message == "" {
		return e.Type
	}
	return e.Type + ": " + e.Message
}

// fetchError converts the pending Python exception into *PyError and
// clears it. It must be called right after a C call reported failure.
func (py *Py) fetchError() error {
	var t, v, tb *C.PyObject
	C.wb_err_fetch(&t, &v, &tb) // three new references (v, tb may be NULL)
	if t == nil {
		return &PyError{Type: "SystemError", Message: "a Python call failed without setting an exception"}
	}
	typ, val, trace := Object{t}, Object{v}, Object{tb}
	defer py.DecRef(typ)
	defer py.DecRef(val)
	defer py.DecRef(trace)
	e := &PyError{Type: py.attrString(typ, "__name__", "Exception")}
	if !val.IsZero() {
		e.Message = py.strOf(val)
	}
	if C.wb_err_is_system_exit(t) != 0 {
		e.IsSystemExit = true
		e.ExitCode = py.exitCode(val)
	}
	e.Interrupted = C.wb_err_matches(t, py.in.stopping.p) != 0 // both borrowed
	e.Traceback = py.formatException(typ, val, trace, e)
	return e
}

// discardError clears a pending exception without reporting it.
func (py *Py) discardError() { _ = py.fetchError() }

func (py *Py) exitCode(val Object) int {
	if val.IsZero() {
		return 0
	}
	code, err := py.GetAttr(val, "code")
	if err != nil {
		return 1
	}
	defer py.DecRef(code)
	if py.IsNone(code) {
		return 0
	}
	if n, err := py.GoInt(code); err == nil {
		return int(n)
	}
	return 1
}

// formatException renders traceback.format_exception(t, v, tb), falling
// back to "Type: message" when formatting itself fails. It owns and
// releases everything it creates, and leaves no exception set: a failure
// while formatting is cleared, never reported.
func (py *Py) formatException(t, v, tb Object, e *PyError) string {
	fallback := e.Error() + "\n"
	if py.traceback.IsZero() {
		mod, err := py.importNoFetch("traceback")
		if err != nil {
			py.clearNoReport()
			return fallback
		}
		py.traceback = mod // owned by Py for the life of the process
	}
	fn, err := py.getAttrNoFetch(py.traceback, "format_exception")
	if err != nil {
		py.clearNoReport()
		return fallback
	}
	defer py.DecRef(fn)
	args := []Object{t, v, tb}
	for i := range args {
		if args[i].IsZero() {
			args[i] = py.None()
			defer py.DecRef(args[i])
		}
	}
	tuple := py.tupleNoFetch(args)
	if tuple.IsZero() {
		py.clearNoReport()
		return fallback
	}
	defer py.DecRef(tuple)
	lines := C.wb_call_tuple(fn.p, tuple.p) // new
	if lines == nil {
		py.clearNoReport()
		return fallback
	}
	res := Object{lines}
	defer py.DecRef(res)
	n, err := py.lenNoFetch(res)
	if err != nil {
		py.clearNoReport()
		return fallback
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		item := Object{C.wb_seq_item(res.p, C.Py_ssize_t(i))} // new
		if item.IsZero() {
			py.clearNoReport()
			return fallback
		}
		s, ok := py.textNoFetch(item)
		py.DecRef(item)
		if !ok {
			return fallback
		}
		b.WriteString(s)
	}
	return b.String()
}

// strOf returns str(o), or a placeholder when str() itself raises.
func (py *Py) strOf(o Object) string {
	s, err := py.StrValue(o)
	if err != nil {
		return fmt.Sprintf("<unprintable %s object>", py.TypeName(o))
	}
	return s
}

func (py *Py) attrString(o Object, name, def string) string {
	a, err := py.getAttrNoFetch(o, name)
	if err != nil {
		py.clearNoReport()
		return def
	}
	defer py.DecRef(a)
	s, ok := py.textNoFetch(a)
	if !ok {
		return def
	}
	return s
}

// clearNoReport drops the pending exception, if any, releasing it.
func (py *Py) clearNoReport() {
	var t, v, tb *C.PyObject
	C.wb_err_fetch(&t, &v, &tb) // three new references (or NULL)
	py.DecRef(Object{t})
	py.DecRef(Object{v})
	py.DecRef(Object{tb})
}
