// Package worker is the composition root of one worker process: it wires
// the application's sources, its processor (the user code, behind the
// work.Processor interface) and its sinks together, and owns every
// goroutine it starts.
//
// The data path:
//
//	TCP source connections ──Deliver──▶ work.Queue ──▶ work.Loop ──Write──▶ sinks
//	                                                    │  ▲
//	                                        envelopes ──┘  └── looped back (one worker)
//
// One goroutine runs work.Loop: it takes the items queued by all sources
// (batches, and later envelopes from peers, barriers and ownership
// changes), hands runs of them (never waiting for more) to
// Processor.Process in one call, and writes what comes out to the sinks.
// Envelopes (messages whose partition is owned elsewhere) go to
// Config.Route, or, with no Route, back into the same processor: one
// worker, or the test hook Config.Ownership that marks partitions as
// owned by another destination. The queue and the sinks' buffers are
// bounded: when a sink cannot keep up, the loop blocks in Write, the queue
// fills, Deliver blocks and the source connections stop reading their
// sockets.
//
// Run's order of start-up matches Wallaroo 0.6, whose tools wait for its
// console lines: connect every sink, bind every source listener, print
// the ready lines, then serve. On shutdown (context cancelled) the sources
// stop reading, the items already queued are processed and the sinks are
// flushed before Run returns, all within Config.ShutdownTimeout.
//
// Diagnostics go to the injected *slog.Logger (Config.Log); the console
// lines tools wait for go to Config.Console, verbatim.
package worker
