// Package metrics keeps a worker's latency histograms and counters and
// hands them to whoever reports them: the 0.6 hub protocol (package hub)
// every 2-second period, and the Prometheus endpoint (prom.go) at every
// scrape.
//
// Ownership: one Registry per worker, made by the host and injected into
// the processor (which records), the sinks, sources and links (which
// count) and the reporters (which read). Recording takes the registry's
// mutex for a moment per batch, never per message; nothing here blocks
// on I/O.
package metrics

import (
	"math"
	"math/bits"
)

// Bins is the number of histogram bins: bin i counts the values in
// [2^(i-1), 2^i) nanoseconds, bin 0 the value 0 (spec 5.2).
const Bins = 65

// Bin is the bin of a value: its bit length.
func Bin(v uint64) int { return bits.Len64(v) }

// Histogram is a power-of-two latency histogram in nanoseconds with its
// extremes. The zero value is not empty-looking to the hub; use
// NewHistogram or Reset.
type Histogram struct {
	Bins     [Bins]uint64
	Min, Max uint64 // Min is math.MaxUint64 and Max 0 while empty
	Count    uint64
	Sum      uint64 // of the values, saturating (for Prometheus's _sum)
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.Reset()
	return h
}

// Reset empties h.
func (h *Histogram) Reset() {
	*h = Histogram{Min: math.MaxUint64}
}

// Add counts n values of v.
func (h *Histogram) Add(v, n uint64) {
	if n == 0 {
		return
	}
	h.Bins[Bin(v)] += n
	h.Count += n
	if v < h.Min {
		h.Min = v
	}
	if v > h.Max {
		h.Max = v
	}
	if s, c := bits.Mul64(v, n); s != 0 || c > math.MaxUint64-h.Sum {
		h.Sum = math.MaxUint64
	} else {
		h.Sum += c
	}
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.Count == 0 {
		return
	}
	for i, c := range o.Bins {
		h.Bins[i] += c
	}
	h.Count += o.Count
	h.Min = min(h.Min, o.Min)
	h.Max = max(h.Max, o.Max)
	if o.Sum > math.MaxUint64-h.Sum {
		h.Sum = math.MaxUint64
	} else {
		h.Sum += o.Sum
	}
}
