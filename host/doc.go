// Package host hosts one Wallaroo 0.6 Python application in this process.
// It parses the 0.6 command line, starts the interpreter through bridge,
// imports the application module, calls application_setup(args), turns the
// application tuple into an engine topology, and runs the engine's worker
// with a processor that calls the user's Python objects.
//
// Ownership: every Python reference the host keeps (the module, the
// components of the topology, the runner's paths) is created inside
// Interp.Do and lives until the process exits; none is released from a
// finalizer. Main is the only function that exits the process.
//
// Errors: a user configuration error (bad flags, the module cannot be
// imported, application_setup fails, the application is invalid, a port
// is taken) prints a clear message and exits 1 before anything listens.
// An exception in user code while processing prints the Python traceback
// with the stage and message that failed, and exits 1. SystemExit raised
// by user code exits with its code, as CPython would.
package host
