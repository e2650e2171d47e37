package metrics

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// The categories of spec 5.3.
const (
	Computation       = "computation"
	StartToEnd        = "start-to-end"
	NodeIngressEgress = "node-ingress-egress"
	PipelineIngestion = "pipeline-ingestion"
)

// DecodeName is the computation name a source's decoding is reported
// under (0.6's TCP source).
const DecodeName = "Decode Time in TCP Source"

// Key names one histogram: a category, the metric's name in it, the
// pipeline, and the id (spec 5.3: 1 for a source's decode, then
// increasing along the path; 0 for the other categories).
type Key struct {
	Category string
	Name     string
	Pipeline string
	ID       uint16
}

// Registry holds one worker's histograms (the current 2-second period's
// and the totals since start) and its counters and gauges. Safe for
// concurrent use.
type Registry struct {
	worker atomic.Pointer[string]
	live   atomic.Int32 // consumers that want samples (On)

	mu     sync.Mutex
	period map[Key]*Histogram // since the last TakePeriod; only keys with samples
	total  map[Key]*Histogram // since start (Prometheus)

	cmu      sync.Mutex
	counters map[string]*Counter // by family + labels (counterID)
	gauges   map[string]gauge
}

type gauge struct {
	family string
	labels []string
	f      func() float64
}

// NewRegistry returns the registry of the worker named worker.
func NewRegistry(worker string) *Registry {
	r := &Registry{period: map[Key]*Histogram{}, total: map[Key]*Histogram{},
		counters: map[string]*Counter{}, gauges: map[string]gauge{}}
	r.SetWorker(worker)
	return r
}

// Worker is the worker's name as reported.
func (r *Registry) Worker() string { return *r.worker.Load() }

// SetWorker renames the worker (a joiner learns its name late).
func (r *Registry) SetWorker(name string) { r.worker.Store(&name) }

// Acquire says a consumer (a connected hub, a Prometheus endpoint) wants
// samples from now on; the returned function says it no longer does.
// Histograms are only recorded while at least one consumer is live, so
// that a worker nobody watches pays nothing for timing.
func (r *Registry) Acquire() (release func()) {
	r.live.Add(1)
	var once sync.Once
	return func() { once.Do(func() { r.live.Add(-1) }) }
}

// On reports whether anyone consumes histograms now. A nil registry is
// off.
func (r *Registry) On() bool { return r != nil && r.live.Load() > 0 }

// Recorder adds samples under the registry's lock (see Update).
type Recorder struct{ r *Registry }

// Add counts n samples of v nanoseconds in the histogram k.
func (rc Recorder) Add(k Key, v, n uint64) {
	if n == 0 {
		return
	}
	r := rc.r
	h := r.period[k]
	if h == nil {
		h = NewHistogram()
		r.period[k] = h
	}
	h.Add(v, n)
	t := r.total[k]
	if t == nil {
		t = NewHistogram()
		r.total[k] = t
	}
	t.Add(v, n)
}

// Update runs fn with the registry locked: one lock for a batch's
// samples.
func (r *Registry) Update(fn func(Recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(Recorder{r})
}

// Add counts n samples of v in histogram k (one lock per call; for
// many samples use Update).
func (r *Registry) Add(k Key, v, n uint64) {
	r.Update(func(rc Recorder) { rc.Add(k, v, n) })
}

// TakePeriod returns the histograms that had samples since the last
// call and starts a new period.
func (r *Registry) TakePeriod() map[Key]*Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.period
	r.period = map[Key]*Histogram{}
	return p
}

// Totals returns copies of every histogram's totals since start.
func (r *Registry) Totals() map[Key]Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Key]Histogram, len(r.total))
	for k, h := range r.total {
		out[k] = *h
	}
	return out
}

// Counter is a monotonically increasing count, safe for concurrent use.
type Counter struct {
	family string
	labels []string // name, value, name, value, ...
	v      atomic.Uint64
}

// Add adds n.
func (c *Counter) Add(n uint64) {
	if c != nil {
		c.v.Add(n)
	}
}

// Inc adds 1.
func (c *Counter) Inc() { c.Add(1) }

// Value is the count so far.
func (c *Counter) Value() uint64 {
	if c == nil {
		return 0
	}
	return c.v.Load()
}

func seriesID(family string, labels []string) string {
	return family + "\x00" + strings.Join(labels, "\x00")
}

// Counter returns the counter of family with labels (name, value pairs;
// the worker label is added by the reporters), made on first use. A nil
// registry returns a nil counter, which counts nothing.
func (r *Registry) Counter(family string, labels ...string) *Counter {
	if r == nil {
		return nil
	}
	id := seriesID(family, labels)
	r.cmu.Lock()
	defer r.cmu.Unlock()
	c := r.counters[id]
	if c == nil {
		c = &Counter{family: family, labels: append([]string(nil), labels...)}
		r.counters[id] = c
	}
	return c
}

// Gauge registers f as the value of the gauge family with labels, read
// at every scrape (f must be safe to call from any goroutine). A later
// registration of the same series replaces it.
func (r *Registry) Gauge(family string, f func() float64, labels ...string) {
	if r == nil {
		return
	}
	r.cmu.Lock()
	defer r.cmu.Unlock()
	r.gauges[seriesID(family, labels)] = gauge{family: family, labels: append([]string(nil), labels...), f: f}
}

// sortedIDs returns the series ids of m in order.
func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// CounterValue is one counter's series and value.
type CounterValue struct {
	Family string
	Labels []string
	Value  uint64
}

// Counters returns every counter's value, sorted by series.
func (r *Registry) Counters() []CounterValue {
	r.cmu.Lock()
	ids := sortedIDs(r.counters)
	out := make([]CounterValue, 0, len(ids))
	for _, id := range ids {
		c := r.counters[id]
		out = append(out, CounterValue{Family: c.family, Labels: c.labels, Value: c.Value()})
	}
	r.cmu.Unlock()
	return out
}

// GaugeValue is one gauge's series and value.
type GaugeValue struct {
	Family string
	Labels []string
	Value  float64
}

// Gauges reads every gauge, sorted by series.
func (r *Registry) Gauges() []GaugeValue {
	r.cmu.Lock()
	ids := sortedIDs(r.gauges)
	gs := make([]gauge, 0, len(ids))
	for _, id := range ids {
		gs = append(gs, r.gauges[id])
	}
	r.cmu.Unlock()
	out := make([]GaugeValue, 0, len(gs))
	for _, g := range gs {
		out = append(out, GaugeValue{Family: g.family, Labels: g.labels, Value: g.f()})
	}
	return out
}
