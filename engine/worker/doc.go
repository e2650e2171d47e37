// Package worker is the composition root of one worker process: it wires
// the application's sources, its processor (the user code, behind the
// Processor interface) and its sinks together, and owns every goroutine it
// starts.
//
// The data path:
//
//	TCP source connections ──Deliver──▶ bounded queue ──▶ processor loop ──Write──▶ sinks
//
// One goroutine (the processor loop) takes the batches queued by all
// sources, hands as many as are waiting (never waiting for more) to
// Processor.Process in one call, and writes what comes out to the sinks.
// The queue and the sinks' buffers are bounded: when a sink cannot keep up,
// the loop blocks in Write, the queue fills, Deliver blocks and the source
// connections stop reading their sockets.
//
// Run's order of start-up matches Wallaroo 0.6, whose tools wait for its
// console lines: connect every sink, bind every source listener, print
// the ready lines, then serve. On shutdown (context cancelled) the sources
// stop reading, the batches already queued are processed and the sinks are
// flushed before Run returns.
package worker
