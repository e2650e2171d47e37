// Package bridge is the only package of this module that talks to CPython
// (import "C"). It knows nothing about streams: it starts one interpreter,
// runs Go functions on the interpreter's own OS thread with the GIL held,
// and offers imports, attribute access, calls, conversions and Python
// exceptions as Go errors with their tracebacks.
//
// Threading. Start creates an executor goroutine, locks it to its OS thread
// (runtime.LockOSThread), initialises Python there and then releases the
// GIL. Every Python operation is a method of *Py, a capability that only
// exists inside a function passed to Interp.Do, which runs on that
// executor with the GIL held. So:
//
//  1. Call Interp.Do from any goroutine; it blocks until the function has
//     run on the executor. Do must not be called from inside Do (it would
//     deadlock); use the *Py you were given instead.
//  2. A long-running loop (the engine's processor) may live inside one Do
//     call and give the GIL back while it waits for work with Py.Unlocked,
//     so Python threads started by user code can run. The GIL is taken per
//     batch, never per message.
//  3. Never keep a *Py after Do returns, and never use it from another
//     goroutine.
//
// References. Object holds one strong reference to a Python object. Every
// function that returns an Object returns a NEW reference owned by the
// caller, who must release it with Py.DecRef (on the executor; finalizers
// never touch Python). Arguments are borrowed: a function never steals a
// reference passed to it. The C helpers in shim.c follow the same rule and
// mark each borrowed, new or stolen reference where it occurs.
//
// Errors. A failed Python operation returns *PyError carrying the exception
// type, message and formatted traceback, and leaves no exception set in the
// interpreter. SystemExit is reported as *PyError with IsSystemExit set and
// the exit code, so the host can exit the way CPython would.
//
// Shutdown. The interpreter is never finalised: Py_Finalize must run on the
// thread that initialised Python and would wait for user threads and run
// user atexit code while the engine is stopping; process exit is enough.
package bridge
