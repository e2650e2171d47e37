package bridge

/*
#include "shim.h"
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Import imports a module by its dotted name and returns it (new reference).
func (py *Py) Import(name string) (Object, error) {
	m, err := py.importNoFetch(name)
	if err != nil {
		return Object{}, py.fetchError()
	}
	return m, nil
}

func (py *Py) importNoFetch(name string) (Object, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	m := C.PyImport_ImportModule(cs) // new
	if m == nil {
		return Object{}, errPending
	}
	return Object{m}, nil
}

// errPending marks a failure whose Python exception is still set.
var errPending = fmt.Errorf("bridge: python exception pending")

// GetAttr returns o.name (new reference).
func (py *Py) GetAttr(o Object, name string) (Object, error) {
	a, err := py.getAttrNoFetch(o, name)
	if err != nil {
		return Object{}, py.fetchError()
	}
	return a, nil
}

func (py *Py) getAttrNoFetch(o Object, name string) (Object, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	a := C.PyObject_GetAttrString(o.p, cs) // new
	if a == nil {
		return Object{}, errPending
	}
	return Object{a}, nil
}

// HasAttr reports whether o has attribute name (hasattr semantics: any
// exception while looking it up counts as absent and is cleared).
func (py *Py) HasAttr(o Object, name string) bool {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	ok := C.PyObject_HasAttrString(o.p, cs) != 0
	if C.wb_err_occurred() != 0 {
		py.clearNoReport()
	}
	return ok
}

// SetAttr sets o.name = v. v is borrowed.
func (py *Py) SetAttr(o Object, name string, v Object) error {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	if C.PyObject_SetAttrString(o.p, cs, v.p) < 0 {
		return py.fetchError()
	}
	return nil
}

// Call calls fn(args...) and returns the result (new reference). The
// arguments are borrowed.
func (py *Py) Call(fn Object, args ...Object) (Object, error) {
	var r *C.PyObject
	switch len(args) {
	case 0:
		r = C.wb_call0(fn.p)
	case 1:
		r = C.wb_call1(fn.p, args[0].p)
	case 2:
		r = C.wb_call2(fn.p, args[0].p, args[1].p)
	default:
		t := py.tupleNoFetch(args)
		if t.IsZero() {
			return Object{}, py.fetchError()
		}
		r = C.wb_call_tuple(fn.p, t.p)
		py.DecRef(t)
	}
	if r == nil {
		return Object{}, py.fetchError()
	}
	return Object{r}, nil
}

// CallMethod calls o.name(args...) and returns the result (new reference).
func (py *Py) CallMethod(o Object, name string, args ...Object) (Object, error) {
	m, err := py.GetAttr(o, name)
	if err != nil {
		return Object{}, err
	}
	defer py.DecRef(m)
	return py.Call(m, args...)
}

// CallMethodDiscard calls o.name(args...) and drops the result.
func (py *Py) CallMethodDiscard(o Object, name string, args ...Object) error {
	r, err := py.CallMethod(o, name, args...)
	py.DecRef(r)
	return err
}

// CallFrames calls fn(frames, extra...) where frames is a new list of bytes
// objects, frame i being buf[ends[i-1]:ends[i]]. The list is built in C
// with one cgo crossing; it is released after the call. extra is borrowed.
// Returns fn's result (new).
func (py *Py) CallFrames(fn Object, buf []byte, ends []int32, extra ...Object) (Object, error) {
	var bp *C.char
	if len(buf) > 0 {
		bp = (*C.char)(unsafe.Pointer(&buf[0]))
	}
	var ep *C.int32_t
	if len(ends) > 0 {
		ep = (*C.int32_t)(unsafe.Pointer(&ends[0]))
	}
	list := C.wb_frames_to_list(bp, ep, C.Py_ssize_t(len(ends))) // new
	if list == nil {
		return Object{}, py.fetchError()
	}
	if len(extra) > 0 {
		args := append([]Object{{list}}, extra...)
		r, err := py.Call(fn, args...)
		C.wb_decref(list)
		return r, err
	}
	r := C.wb_call1(fn.p, list)
	C.wb_decref(list)
	if r == nil {
		return Object{}, py.fetchError()
	}
	return Object{r}, nil
}

// Exec runs Python source in the namespace of a new module called name and
// returns that module (new reference). For small host-side helpers.
func (py *Py) Exec(name, source string) (Object, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	cs := C.CString(source)
	defer C.free(unsafe.Pointer(cs))
	cf := C.CString("<" + name + ">")
	defer C.free(unsafe.Pointer(cf))
	code := C.wb_compile(cs, cf) // new
	if code == nil {
		return Object{}, py.fetchError()
	}
	defer C.wb_decref(code)
	m := C.PyImport_ExecCodeModule(cn, code) // new
	if m == nil {
		return Object{}, py.fetchError()
	}
	return Object{m}, nil
}
