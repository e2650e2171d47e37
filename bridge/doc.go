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
//  1. Call Interp.Do (or DoAs, which adds a label for Busy) from any
//     goroutine; it blocks until the function has run on the executor.
//     Calls from several goroutines run one at a time, in no promised
//     order. Do must not be called from inside Do (it would deadlock); use
//     the *Py you were given instead.
//  2. The executor takes the GIL when it starts a function and releases it
//     when the function returns; between two Do calls Python threads
//     started by user code run. The engine calls Do once per batch (the
//     per-message loop runs inside the interpreter), so the GIL is taken
//     per batch, never per message. A function that must block inside Do
//     wraps the wait in Py.Unlocked, which releases the GIL meanwhile.
//  3. Never keep a *Py after Do returns, and never use it from another
//     goroutine.
//  4. A panic in the function is an engine bug: Do re-panics in its caller
//     with the panic value and the executor's stack. A runtime.Goexit in
//     it (t.Fatal inside Do) makes Do return an error. Either way the
//     executor goes on (after a Goexit, on a new OS thread with a new
//     Python thread state).
//  5. Interp.Busy and Interp.Interrupt are the two calls made without the
//     GIL from any goroutine, to bound a stop: Busy tells what Do is
//     running and since when; Interrupt raises an exception asynchronously
//     in the running Python code (it takes the GIL on its own locked
//     thread, the one Python call made off the executor). Python raises it
//     only when that code runs bytecode again, so a Do blocked in C stays
//     blocked: the caller's last resort is to exit the process.
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
// the exit code, so the host can exit the way CPython would; the exception
// raised by Interrupt, with Interrupted set. Only HasAttr (hasattr's
// semantics) and Repr (a placeholder) clear an exception by design; Truth
// and the other calls return it rather than a guess.
//
// Shutdown. The interpreter is never finalised: Py_Finalize must run on the
// thread that initialised Python and would wait for user threads and run
// user atexit code while the engine is stopping; process exit is enough.
package bridge
