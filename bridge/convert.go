package bridge

/*
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrWrongType is wrapped by conversions given an object of another type.
var ErrWrongType = errors.New("unexpected type")

// Str returns a new text object (str) from UTF-8. On Python 2 it is a byte
// str, as machida handed to applications. Panics only if Python is out of
// memory.
func (py *Py) Str(s string) Object {
	var p *C.char
	if len(s) > 0 {
		p = (*C.char)(unsafe.Pointer(unsafe.StringData(s)))
	}
	o := C.wb_str(p, C.Py_ssize_t(len(s)))
	if o == nil {
		panic(fmt.Sprintf("bridge: cannot create str: %v", py.fetchError()))
	}
	return Object{o}
}

// Bytes returns a new bytes object holding a copy of b.
func (py *Py) Bytes(b []byte) Object {
	var p *C.char
	if len(b) > 0 {
		p = (*C.char)(unsafe.Pointer(&b[0]))
	}
	o := C.wb_bytes(p, C.Py_ssize_t(len(b)))
	if o == nil {
		panic(fmt.Sprintf("bridge: cannot create bytes: %v", py.fetchError()))
	}
	return Object{o}
}

// Int returns a new int object.
func (py *Py) Int(v int64) Object {
	o := C.wb_int(C.longlong(v))
	if o == nil {
		panic(fmt.Sprintf("bridge: cannot create int: %v", py.fetchError()))
	}
	return Object{o}
}

// NewList returns a new list holding new references to items (borrowed).
func (py *Py) NewList(items []Object) (Object, error) {
	l := C.PyList_New(C.Py_ssize_t(len(items)))
	if l == nil {
		return Object{}, py.fetchError()
	}
	for i, it := range items {
		C.wb_incref(it.p)
		C.PyList_SetItem(l, C.Py_ssize_t(i), it.p) // steals the new reference
	}
	return Object{l}, nil
}

// StrList returns a new list of str built from ss.
func (py *Py) StrList(ss []string) (Object, error) {
	items := make([]Object, len(ss))
	for i, s := range ss {
		items[i] = py.Str(s)
	}
	l, err := py.NewList(items)
	for _, it := range items {
		py.DecRef(it)
	}
	return l, err
}

// NewTuple returns a new tuple holding new references to items (borrowed).
func (py *Py) NewTuple(items []Object) (Object, error) {
	t := py.tupleNoFetch(items)
	if t.IsZero() {
		return Object{}, py.fetchError()
	}
	return t, nil
}

func (py *Py) tupleNoFetch(items []Object) Object {
	t := C.PyTuple_New(C.Py_ssize_t(len(items)))
	if t == nil {
		return Object{}
	}
	for i, it := range items {
		C.wb_incref(it.p)
		C.PyTuple_SetItem(t, C.Py_ssize_t(i), it.p) // steals the new reference
	}
	return Object{t}
}

// Len returns len(o).
func (py *Py) Len(o Object) (int, error) {
	n, err := py.lenNoFetch(o)
	if err != nil {
		return 0, py.fetchError()
	}
	return n, nil
}

func (py *Py) lenNoFetch(o Object) (int, error) {
	n := C.PyObject_Size(o.p)
	if n < 0 {
		return 0, errPending
	}
	return int(n), nil
}

// Item returns o[i] (new reference) for any sequence.
func (py *Py) Item(o Object, i int) (Object, error) {
	it := C.wb_seq_item(o.p, C.Py_ssize_t(i))
	if it == nil {
		return Object{}, py.fetchError()
	}
	return Object{it}, nil
}

// Items returns every element of a list or tuple as new references.
func (py *Py) Items(o Object) ([]Object, error) {
	n, err := py.Len(o)
	if err != nil {
		return nil, err
	}
	out := make([]Object, 0, n)
	for i := 0; i < n; i++ {
		it, err := py.Item(o, i)
		if err != nil {
			for _, x := range out {
				py.DecRef(x)
			}
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// Truth returns bool(o). An exception raised while testing (a __bool__ or
// __len__ that raises) is returned as *PyError: it is never read as an
// answer.
func (py *Py) Truth(o Object) (bool, error) {
	r := C.PyObject_IsTrue(o.p)
	if r < 0 {
		return false, py.fetchError()
	}
	return r == 1, nil
}

// IsList reports whether o is exactly a list (or a subclass).
func (py *Py) IsList(o Object) bool { return C.wb_is_list(o.p) != 0 }

// IsTuple reports whether o is a tuple.
func (py *Py) IsTuple(o Object) bool { return C.wb_is_tuple(o.p) != 0 }

// IsInt reports whether o is an int (or a Python 2 long).
func (py *Py) IsInt(o Object) bool { return C.wb_is_int(o.p) != 0 }

// IsText reports whether o is str (Python 2: str or unicode).
func (py *Py) IsText(o Object) bool { return C.wb_is_text(o.p) != 0 }

// IsBytes reports whether o is bytes (Python 2: str).
func (py *Py) IsBytes(o Object) bool { return C.wb_is_bytes(o.p) != 0 }

// IsCallable reports whether o can be called.
func (py *Py) IsCallable(o Object) bool { return C.wb_is_callable(o.p) != 0 }

// GoString converts str (as UTF-8) or bytes (raw) into a Go string. Other
// types give an error wrapping ErrWrongType that names the type.
func (py *Py) GoString(o Object) (string, error) {
	b, err := py.TextView(o)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// TextView returns the bytes of a str (UTF-8) or bytes object without
// copying. The slice is valid only while o is alive and unchanged; copy
// it before releasing o.
func (py *Py) TextView(o Object) ([]byte, error) {
	var p *C.char
	var n C.Py_ssize_t
	switch C.wb_text_view(o.p, &p, &n) {
	case 0:
		return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)), nil
	case -1:
		return nil, py.fetchError()
	default:
		if py.IsText(o) { // Python 2 unicode: encode it as UTF-8
			codec := py.Str("utf-8")
			enc, err := py.CallMethod(o, "encode", codec)
			py.DecRef(codec)
			if err != nil {
				return nil, err
			}
			defer py.DecRef(enc)
			v, err := py.TextView(enc)
			return append([]byte(nil), v...), err
		}
		return nil, fmt.Errorf("expected str or bytes, got %s: %w", py.TypeName(o), ErrWrongType)
	}
}

// BytesView returns the contents of a bytes object without copying; valid
// while o is alive. str is refused with ErrWrongType.
func (py *Py) BytesView(o Object) ([]byte, error) {
	var p *C.char
	var n C.Py_ssize_t
	switch C.wb_bytes_view(o.p, &p, &n) {
	case 0:
		return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)), nil
	case -1:
		return nil, py.fetchError()
	default:
		return nil, fmt.Errorf("expected bytes, got %s: %w", py.TypeName(o), ErrWrongType)
	}
}

// GoInt converts an int into int64.
func (py *Py) GoInt(o Object) (int64, error) {
	var v C.longlong
	switch C.wb_as_int64(o.p, &v) {
	case 0:
		return int64(v), nil
	case -1:
		return 0, py.fetchError()
	default:
		return 0, fmt.Errorf("expected int, got %s: %w", py.TypeName(o), ErrWrongType)
	}
}

// StrValue returns str(o) as a Go string.
func (py *Py) StrValue(o Object) (string, error) {
	s := C.PyObject_Str(o.p) // new
	if s == nil {
		return "", py.fetchError()
	}
	so := Object{s}
	defer py.DecRef(so)
	return py.GoString(so)
}

// Repr returns repr(o), or a placeholder if repr raises.
func (py *Py) Repr(o Object) string {
	r := C.PyObject_Repr(o.p) // new
	if r == nil {
		py.clearNoReport()
		return fmt.Sprintf("<%s object>", py.TypeName(o))
	}
	ro := Object{r}
	defer py.DecRef(ro)
	s, err := py.GoString(ro)
	if err != nil {
		return fmt.Sprintf("<%s object>", py.TypeName(o))
	}
	return s
}

// TypeName returns the name of o's type.
func (py *Py) TypeName(o Object) string {
	if o.p == nil {
		return "NULL"
	}
	return C.GoString(C.wb_type_name(o.p))
}

// textNoFetch converts text without raising through fetchError.
func (py *Py) textNoFetch(o Object) (string, bool) {
	var p *C.char
	var n C.Py_ssize_t
	if C.wb_text_view(o.p, &p, &n) != 0 {
		if C.wb_err_occurred() != 0 {
			py.clearNoReport()
		}
		return "", false
	}
	return C.GoStringN(p, C.int(n)), true
}
