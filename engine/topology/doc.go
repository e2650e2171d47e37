// Package topology is the logical graph of one application, as the Python
// API describes it: sources, stages (computations, state computations,
// key_by) and sinks, arranged as the tree of merges that
// wallaroo.build_application returns. It validates the engine-side
// pipeline rules of Wallaroo 0.6 and compiles the tree into one linear
// Path per source.
//
// The components (decoders, computations, encoders, ...) are opaque values
// owned by whoever built the Spec (the host keeps the Python references);
// this package never looks inside them. It does no I/O.
package topology
