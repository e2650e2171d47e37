package bridge

/*
#include "shim.h"
*/
import "C"

// Object is one strong reference to a Python object, or the zero Object
// (no object). It is pointer-shaped, so storing it in an interface value
// does not allocate. Whoever holds an Object owns its reference and must
// release it once with Py.DecRef, on the executor.
type Object struct {
	p *C.PyObject
}

// IsZero reports whether o holds no object.
func (o Object) IsZero() bool { return o.p == nil }

// DecRef releases o's reference. A zero Object is ignored.
func (py *Py) DecRef(o Object) {
	if o.p != nil {
		C.wb_decref(o.p)
	}
}

// IncRef returns a second owned reference to the same object.
func (py *Py) IncRef(o Object) Object {
	if o.p != nil {
		C.wb_incref(o.p)
	}
	return o
}

// RefCount returns the object's reference count (for leak tests).
func (py *Py) RefCount(o Object) int { return int(C.wb_refcnt(o.p)) }

// None returns a new reference to None.
func (py *Py) None() Object { return Object{C.wb_none()} }

// IsNone reports whether o is None.
func (py *Py) IsNone(o Object) bool { return o.p != nil && C.wb_is_none(o.p) != 0 }

// Same reports whether a and b are the same Python object.
func (py *Py) Same(a, b Object) bool { return a.p == b.p }
