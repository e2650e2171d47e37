// Package spread decides how a worker deals the messages of its spread
// segments over the workers of its cluster.
//
// A spread segment is the first stateless chain after a source or a
// merge: its messages carry no key, so any worker may run them. Wallaroo
// 0.6 dealt them at random, evenly. Even dealing leaves the cluster only
// as fast as its busiest worker when the keyed work behind it is skewed
// (a frequent key's partition makes its owner busier than the others),
// and the worker that holds the sources also decodes every message. A
// Balancer therefore shifts the share of spread messages each worker
// receives towards the workers that are less busy, from the utilisation
// every worker reports (the fraction of time its processor loop spent in
// user code): the stateless work evens out the skew of the keyed work.
// Dealing stays random (each message goes to a worker drawn with these
// weights), so outputs are what 0.6's random partitioner allows.
//
// A Balancer is a value owned by one goroutine (the cluster member's
// load reporter); it does no I/O and keeps no clock, so it is tested with
// plain numbers.
package spread

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// Tuning of Update. Gain is how strongly a worker's share moves per unit
// of utilisation above or below the mean; DeadBand ignores differences
// smaller than that (noise); MaxStep bounds the factor of one update;
// MinShare is the smallest share of a worker, relative to an even share
// (every worker keeps some of the work, so its utilisation stays
// meaningful and a recovered worker is seen).
const (
	Gain     = 1.0
	DeadBand = 0.02
	MaxStep  = 0.25
	MinShare = 0.125
)

// Balancer holds the current share of each worker (summing to 1).
type Balancer struct {
	workers []string
	shares  map[string]float64
}

// NewBalancer starts with even shares over workers.
func NewBalancer(workers []string) *Balancer {
	b := &Balancer{workers: append([]string(nil), workers...), shares: map[string]float64{}}
	for _, w := range workers {
		b.shares[w] = 1 / float64(len(workers))
	}
	return b
}

// Shares returns a copy of the current shares by worker.
func (b *Balancer) Shares() map[string]float64 {
	out := make(map[string]float64, len(b.shares))
	for w, s := range b.shares {
		out[w] = s
	}
	return out
}

// Update moves the shares towards equal utilisation: util maps a worker
// to the fraction of the last period its loop was busy (0 to 1). A
// worker missing from util (no report yet, or a stale one) keeps its
// share relative to the others. It returns the new shares and whether
// they changed.
func (b *Balancer) Update(util map[string]float64) (map[string]float64, bool) {
	var sum float64
	var n int
	for _, w := range b.workers {
		if u, ok := util[w]; ok {
			sum += clamp(u, 0, 1)
			n++
		}
	}
	if n < 2 {
		return b.Shares(), false
	}
	mean := sum / float64(n)
	next := make(map[string]float64, len(b.workers))
	var total float64
	changed := false
	for _, w := range b.workers {
		s := b.shares[w]
		if u, ok := util[w]; ok {
			d := mean - clamp(u, 0, 1)
			if math.Abs(d) > DeadBand {
				s *= 1 + clamp(Gain*d, -MaxStep, MaxStep)
				changed = true
			}
		}
		next[w] = s
		total += s
	}
	if !changed {
		return b.Shares(), false
	}
	// Normalise; shares under the floor are lifted to it and the others
	// scaled into what is left.
	floor := MinShare / float64(len(b.workers))
	lifted, rest := 0.0, 0.0
	for _, w := range b.workers {
		next[w] /= total
		if next[w] < floor {
			lifted += floor
		} else {
			rest += next[w]
		}
	}
	for _, w := range b.workers {
		if next[w] < floor {
			next[w] = floor
		} else {
			next[w] *= (1 - lifted) / rest
		}
	}
	b.shares = next
	return b.Shares(), true
}

// Slots deals n slots over the workers in proportion to shares (largest
// remainder), for a dealer that draws a slot uniformly per message.
// Every worker with a positive share gets at least one slot when n
// allows. The result lists the keys in sorted order, each repeated for its slots.
func Slots[K cmp.Ordered](shares map[K]float64, n int) []K {
	type rem struct {
		w    K
		frac float64
	}
	var names []K
	var total float64
	for w, s := range shares {
		if s > 0 {
			names = append(names, w)
			total += s
		}
	}
	slices.Sort(names)
	if len(names) == 0 || n <= 0 {
		return nil
	}
	count := map[K]int{}
	used := 0
	var rems []rem
	for _, w := range names {
		exact := shares[w] / total * float64(n)
		c := int(exact)
		if c == 0 && n >= len(names) {
			c = 1
		}
		count[w] = c
		used += c
		rems = append(rems, rem{w, exact - float64(int(exact))})
	}
	sort.SliceStable(rems, func(i, j int) bool { return rems[i].frac > rems[j].frac })
	for i := 0; used < n; i++ {
		count[rems[i%len(rems)].w]++
		used++
	}
	for used > n { // the at-least-one rule overshot: take from the largest
		big := names[0]
		for _, w := range names {
			if count[w] > count[big] {
				big = w
			}
		}
		count[big]--
		used--
	}
	out := make([]K, 0, n)
	for _, w := range names {
		for i := 0; i < count[w]; i++ {
			out = append(out, w)
		}
	}
	return out
}

func clamp(x, lo, hi float64) float64 { return math.Min(math.Max(x, lo), hi) }
