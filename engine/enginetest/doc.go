// Package enginetest runs the engine's processor loop (package work) in
// memory, with Go fakes in place of Python: a Processor that runs Go
// stage functions with the same segment cuts (topology.Path.Segments),
// ownership table, envelopes and per-partition state as the Python
// runner; list inputs that put items on the loop's queue from their own
// goroutines; list sinks; and fault hooks (a stage that fails, a sink
// that fails). Routing, envelopes, ownership changes, barriers and queue
// ordering are tested with `go test ./engine/...` and no interpreter.
//
// A Run owns the goroutines it starts and returns once the loop has
// ended; a deadlock ends in an error after Run.Timeout, never a hang.
package enginetest
