package main

import (
	"fmt"
	"math"
	"sort"

	"github.com/wallaroo-go/machida/internal/hubproto"
)

// Percentile estimates the q-quantile (0 < q ≤ 1) of the values in bins
// (bin i holds [2^(i-1), 2^i) ns, bin 0 holds 0): the upper end of the bin
// holding the value of rank ⌈q·n⌉, capped at maxSeen. It returns 0 for an
// empty histogram.
func Percentile(bins *[hubproto.Bins]uint64, q float64, maxSeen uint64) uint64 {
	var n uint64
	for _, c := range bins {
		n = addSat(n, c)
	}
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var cum uint64
	for i, c := range bins {
		cum = addSat(cum, c)
		if cum >= rank {
			return min(binUpper(i), maxSeen)
		}
	}
	return maxSeen // not reached: cum ends at n ≥ rank
}

// binUpper is the largest value bin i holds.
func binUpper(i int) uint64 {
	if i >= 64 {
		return math.MaxUint64
	}
	return 1<<uint(i) - 1
}

// Latency holds estimated percentiles and the exact extremes, in ns.
type Latency struct {
	P50   uint64 `json:"p50"`
	P90   uint64 `json:"p90"`
	P95   uint64 `json:"p95"`
	P99   uint64 `json:"p99"`
	P999  uint64 `json:"p99_9"`
	P9999 uint64 `json:"p99_99"`
	Min   uint64 `json:"min"`
	Max   uint64 `json:"max"`
}

func latencyOf(h *hist) *Latency {
	if h.count() == 0 {
		return nil
	}
	p := func(q float64) uint64 { return Percentile(&h.bins, q, h.max) }
	return &Latency{P50: p(0.50), P90: p(0.90), P95: p(0.95), P99: p(0.99), P999: p(0.999), P9999: p(0.9999),
		Min: h.min, Max: h.max}
}

// Throughput is messages per second over the periods of a window.
type Throughput struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func throughputOf(rates []float64) Throughput {
	if len(rates) == 0 {
		return Throughput{}
	}
	s := append([]float64(nil), rates...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Throughput{Min: s[0], Median: med, Max: s[len(s)-1]}
}

// LatencyBins are the bars of a detail view's "percent by latency bin"
// chart: bar j (j < 11) counts values up to 2^(10+2j) − 1 ns not counted by
// an earlier bar (≤1 µs is everything below 1024 ns, ≤4 µs below 4096 ns,
// …); the last counts everything from 2^30 ns (about 1.07 s) up.
var LatencyBins = []string{"≤1 µs", "≤4 µs", "≤16 µs", "≤66 µs", "≤260 µs", "≤1 ms", "≤4 ms", "≤16 ms", "≤66 ms", "≤260 ms", "≤1 s", ">1 s"}

// BinShare is one bar of the latency bin chart.
type BinShare struct {
	Label   string  `json:"label"`
	Count   uint64  `json:"count"`
	Percent float64 `json:"percent"`
}

func binShares(h *hist) []BinShare {
	out := make([]BinShare, len(LatencyBins))
	for j := range out {
		out[j].Label = LatencyBins[j]
	}
	for i, c := range h.bins {
		j := len(LatencyBins) - 1
		if i <= 30 {
			j = max(0, (i-9)/2) // bins 0–10 → 0, 11–12 → 1, …, 29–30 → 10
		}
		out[j].Count = addSat(out[j].Count, c)
	}
	if n := h.count(); n > 0 {
		for j := range out {
			out[j].Percent = 100 * float64(out[j].Count) / float64(n)
		}
	}
	return out
}

// Element is one stats line: a pipeline, worker or computation, overall
// or on one worker (pipeline) or pipeline (worker).
type Element struct {
	Name string `json:"name"`
	Sub  string `json:"sub,omitempty"`
	Key  string `json:"key"` // the monitoring hub's key, e.g. "P@worker1"
	// Count is the number of values in the window: completions for a
	// pipeline, messages for a worker or computation.
	Count      uint64     `json:"count"`
	Latency    *Latency   `json:"latency"` // nil when Count is 0
	Throughput Throughput `json:"throughput"`
	Rate       []float64  `json:"rate"` // per period of the window, msgs/s
	// Pipelines only: messages ingested by the pipeline's source.
	Ingested   uint64      `json:"ingested,omitempty"`
	Ingestion  *Throughput `json:"ingestion,omitempty"`
	IngestRate []float64   `json:"ingest_rate,omitempty"`
}

func hubKey(k seriesKey) string {
	switch {
	case k.Sub == "":
		return k.Name
	case k.Kind == KindPipeline:
		return k.Name + "@" + k.Sub
	case k.Kind == KindWorker:
		return k.Sub + "*" + k.Name
	default:
		return k.Sub + ":" + k.Name
	}
}

// window is the list of period ends shown, oldest first.
type window struct{ ends []uint64 }

func newWindow(end uint64) window {
	w := window{ends: make([]uint64, 0, periods)}
	for e := windowStart(end); e <= end; e += hubproto.Period {
		w.ends = append(w.ends, e)
	}
	return w
}

// element computes the stats line of one series over w; with perPeriod it
// also returns the p50 and p99 of each period (nil where empty) and the
// merged histogram.
func (w window) element(k seriesKey, sr *series) (Element, *hist) {
	el := Element{Name: k.Name, Sub: k.Sub, Key: hubKey(k), Rate: make([]float64, len(w.ends))}
	merged := newHist()
	secs := float64(hubproto.Period) / 1e9
	var active []float64
	for i, e := range w.ends {
		if p := sr.lat[e]; p != nil {
			merged.merge(p)
			el.Rate[i] = float64(p.count()) / secs
		}
		if e >= sr.first {
			active = append(active, el.Rate[i])
		}
	}
	el.Count = merged.count()
	el.Latency = latencyOf(merged)
	el.Throughput = throughputOf(active)
	if k.Kind == KindPipeline {
		el.IngestRate = make([]float64, len(w.ends))
		active = active[:0]
		for i, e := range w.ends {
			n := sr.ing[e]
			el.Ingested = addSat(el.Ingested, n)
			el.IngestRate[i] = float64(n) / secs
			if e >= sr.first {
				active = append(active, el.IngestRate[i])
			}
		}
		t := throughputOf(active)
		el.Ingestion = &t
	}
	return el, merged
}

// Dashboard is an application's page: every element of each section over
// the window ending at the last completed period.
type Dashboard struct {
	App          string    `json:"app"`
	Now          int64     `json:"now_ms"`
	PeriodMS     int64     `json:"period_ms"`
	Ends         []int64   `json:"ends_ms"` // period ends of the window, Unix ms
	Connected    []string  `json:"connected"`
	Pipelines    []Element `json:"pipelines"`
	Workers      []Element `json:"workers"`
	Computations []Element `json:"computations"`
}

func endsMS(w window) []int64 {
	out := make([]int64, len(w.ends))
	for i, e := range w.ends {
		out[i] = int64(e / 1e6)
	}
	return out
}

// ErrNotFound is returned for an unknown application or element.
var ErrNotFound = fmt.Errorf("not found")

// Dashboard returns the dashboard of application name.
func (s *Store) Dashboard(name string) (*Dashboard, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	end := windowEnd(now)
	s.pruneLocked(windowStart(end))
	a := s.apps[name]
	if a == nil {
		return nil, fmt.Errorf("application %q: %w", name, ErrNotFound)
	}
	w := newWindow(end)
	d := &Dashboard{App: name, Now: now.UnixMilli(), PeriodMS: int64(hubproto.Period / 1e6), Ends: endsMS(w),
		Connected: sortedKeys(a.workers), Pipelines: []Element{}, Workers: []Element{}, Computations: []Element{}}
	for k, sr := range a.series {
		if k.Sub != "" {
			continue
		}
		el, _ := w.element(k, sr)
		switch k.Kind {
		case KindPipeline:
			d.Pipelines = append(d.Pipelines, el)
		case KindWorker:
			d.Workers = append(d.Workers, el)
		case KindComputation:
			d.Computations = append(d.Computations, el)
		}
	}
	for _, l := range [][]Element{d.Pipelines, d.Workers, d.Computations} {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	return d, nil
}

// Detail is the page of one element: its stats line, the latency bin
// shares, per-period percentiles and the same element per worker (or per
// pipeline, for a worker).
type Detail struct {
	App      string     `json:"app"`
	Kind     Kind       `json:"kind"`
	Now      int64      `json:"now_ms"`
	PeriodMS int64      `json:"period_ms"`
	Ends     []int64    `json:"ends_ms"`
	Element  Element    `json:"element"`
	Bins     []BinShare `json:"bins"`
	P50      []*uint64  `json:"p50"` // per period, null where empty
	P99      []*uint64  `json:"p99"`
	ByLabel  string     `json:"by_label"` // what Sub of By means
	By       []Element  `json:"by"`
}

// Detail returns the detail view of element name of the given kind.
func (s *Store) Detail(appName string, kind Kind, name string) (*Detail, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	end := windowEnd(now)
	s.pruneLocked(windowStart(end))
	a := s.apps[appName]
	if a == nil {
		return nil, fmt.Errorf("application %q: %w", appName, ErrNotFound)
	}
	sr := a.series[seriesKey{kind, name, ""}]
	if sr == nil {
		return nil, fmt.Errorf("%s %q of application %q: %w", kind, name, appName, ErrNotFound)
	}
	w := newWindow(end)
	el, merged := w.element(seriesKey{kind, name, ""}, sr)
	d := &Detail{App: appName, Kind: kind, Now: now.UnixMilli(), PeriodMS: int64(hubproto.Period / 1e6), Ends: endsMS(w),
		Element: el, Bins: binShares(merged), P50: make([]*uint64, len(w.ends)), P99: make([]*uint64, len(w.ends)), By: []Element{}}
	for i, e := range w.ends {
		if p := sr.lat[e]; p != nil && p.count() > 0 {
			p50, p99 := Percentile(&p.bins, 0.50, p.max), Percentile(&p.bins, 0.99, p.max)
			d.P50[i], d.P99[i] = &p50, &p99
		}
	}
	d.ByLabel = map[Kind]string{KindPipeline: "worker", KindWorker: "pipeline", KindComputation: "pipeline@worker"}[kind]
	for k, sub := range a.series {
		if k.Kind == kind && k.Name == name && k.Sub != "" {
			el, _ := w.element(k, sub)
			d.By = append(d.By, el)
		}
	}
	sort.Slice(d.By, func(i, j int) bool { return d.By[i].Sub < d.By[j].Sub })
	return d, nil
}
