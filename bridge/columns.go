package bridge

/*
#include "shim.h"
*/
import "C"

// TextColumnCodec returns the C pack_text and unpack_text of shim.c (new
// references to two built-in functions): the same format as
// wallaroo._columns, several times cheaper per string than its reference
// implementation or pickle. The host installs them in wallaroo._runner,
// which packs the columns of native strings of its envelope batches with
// them.
func (py *Py) TextColumnCodec() (pack, unpack Object, err error) {
	p := C.wb_text_codec(0) // new
	if p == nil {
		return Object{}, Object{}, py.fetchError()
	}
	u := C.wb_text_codec(1) // new
	if u == nil {
		py.DecRef(Object{p})
		return Object{}, Object{}, py.fetchError()
	}
	return Object{p}, Object{u}, nil
}

// MonotonicClock returns shim.c's monotonic_ns (a new reference to a
// built-in function): integer nanoseconds of CLOCK_MONOTONIC. The host
// installs it as wallaroo._runner's stage-timing clock: Python 2 has no
// nanosecond clock of its own.
func (py *Py) MonotonicClock() (Object, error) {
	c := C.wb_clock() // new
	if c == nil {
		return Object{}, py.fetchError()
	}
	return Object{c}, nil
}
