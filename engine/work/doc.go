// Package work is the processor loop of a worker and its queue: the one
// goroutine that hands work to the application's processor (the user
// code) and passes what comes out to the sinks and to the router.
//
//	sources ──Deliver──▶ Queue ──▶ Loop ──Process──▶ Output ─┬─▶ sinks (bytes per sink)
//	peers ─────Put────▶        ▲                            └─▶ envelopes: Route, or back into the loop
//	                           └── looped-back envelopes, released items
//
// Items are a sum type (Item, with Kind): source batches, envelopes to
// resume at a segment, barriers and ownership changes, all processed in
// order by the single consumer. A barrier is aligned per input (package
// barrier): once it arrives on one input, that input's later items are
// held until it has arrived on every input; then OnBarrier acts and the
// held items flow first. Ownership changes reach the processor between
// two Process calls, so every item after one is routed by the new table.
//
// Backpressure: the Queue is bounded in items and bytes; the loop blocks
// in a sink's Write or in Route when downstream is full, the queue fills
// and Put/Deliver block, which stops the sources reading their sockets.
// Envelopes looped back to this processor wait in a list owned by the
// loop, which it empties before it takes from the queue again: they are
// at most what one Process call can make.
//
// Ownership. The queue is safe for concurrent producers; the loop's
// state (the local list, the aligner, the generator set) belongs to the
// goroutine running Loop, and so do the processor calls.
package work
