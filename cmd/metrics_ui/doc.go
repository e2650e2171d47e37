// Command metrics_ui is the Metrics UI, the successor of Wallaroo 0.6's
// monitoring hub: it receives the hub protocol (runtime spec 5.2, package
// internal/hubproto) from any number of workers, aggregates their metrics
// records the way the 0.6 hub did (spec 5.4), and serves a live page and
// a JSON API over net/http. Usage: metrics_ui --help.
//
// The logic lives in this package rather than under internal/ because
// internal packages are leaves that import nothing of ours
// (tests/archtest), and this one needs internal/hubproto and logline.
//
// Ownership: a Store owns every aggregate and is safe for concurrent use
// (one mutex); a Receiver owns its listener and one goroutine per worker
// connection, and feeds the Store; the HTTP handler (NewHandler) only
// reads the Store. Time is injected into the Store (its now function), so
// aggregation and statistics are tested without sleeping.
//
// Statistics. Records are kept per 2-s period for the last 5 minutes and
// merged by summing bin counts. A latency percentile is estimated from the
// merged power-of-two bins (bin i holds [2^(i-1), 2^i) ns): it is the upper
// end of the bin where the percentile's rank falls (2^i − 1 ns), capped at
// the largest value seen, so the true value is at most that and more than
// half of it. Throughput of a period is its number of values divided by
// the period (messages per second); min, median and max are taken over the
// periods from the element's first record in the window to the last
// completed period, counting periods without records as zero.
//
// The page (web/) is plain JavaScript with uPlot (MIT, web/vendor/), all
// embedded with go:embed: the UI needs no network at run time.
package main
