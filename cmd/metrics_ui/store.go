package main

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/internal/hubproto"
)

// Kind is a section of an application's dashboard.
type Kind string

const (
	KindPipeline    Kind = "pipelines"    // start-to-end latency, ingestion and completion throughput
	KindWorker      Kind = "workers"      // node-ingress-egress latency
	KindComputation Kind = "computations" // time spent in one computation
)

// Kinds lists the sections in dashboard order.
var Kinds = []Kind{KindPipeline, KindWorker, KindComputation}

// Window is how much history the Store keeps and the page shows.
const Window = 5 * time.Minute

// periods is the number of 2-s periods in Window.
const periods = int(uint64(Window) / hubproto.Period)

// maxAhead is how far past now a record's period may end (clock skew
// between workers and the UI) before the record is rejected.
const maxAhead = time.Minute

// Limits that keep hostile or runaway senders from growing memory without
// bound; records beyond them are rejected.
const (
	maxApps         = 256
	maxSeriesPerApp = 20000
	maxNameBytes    = 1024
)

// seriesKey names one aggregate. Sub is "" for the element overall, and
// otherwise the other dimension: the worker of a pipeline, the pipeline of
// a worker, "<pipeline>@<worker>" for a computation.
type seriesKey struct {
	Kind      Kind
	Name, Sub string
}

// hist is a merged histogram of one period.
type hist struct {
	bins     [hubproto.Bins]uint64
	min, max uint64
}

func newHist() *hist { return &hist{min: math.MaxUint64} }

// addSat adds with saturation: hostile counts must not wrap around.
func addSat(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		return math.MaxUint64
	}
	return s
}

func (h *hist) merge(o *hist) {
	for i, c := range o.bins {
		h.bins[i] = addSat(h.bins[i], c)
	}
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

func (h *hist) count() uint64 {
	var n uint64
	for _, c := range h.bins {
		n = addSat(n, c)
	}
	return n
}

// series is the history of one aggregate: latency histograms per period
// end, and for pipelines the ingestion counts per period end.
type series struct {
	lat   map[uint64]*hist
	ing   map[uint64]uint64
	first uint64 // earliest period end with a record
	last  uint64 // latest period end with a record
}

// app is one application: its series and its connected workers.
type app struct {
	series  map[seriesKey]*series
	workers map[string]int // worker name → open connections that joined as it
}

// Store aggregates metrics records per application. Safe for concurrent
// use.
type Store struct {
	now func() time.Time

	mu   sync.Mutex
	apps map[string]*app
}

// NewStore returns an empty Store reading the clock with now (time.Now
// when nil).
func NewStore(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, apps: map[string]*app{}}
}

// AppFromTopic returns the application of a hub topic "metrics:<app>".
func AppFromTopic(topic string) (string, bool) {
	name, ok := strings.CutPrefix(topic, hubproto.TopicPrefix)
	return name, ok && name != ""
}

func (s *Store) appLocked(name string) (*app, error) {
	a := s.apps[name]
	if a == nil {
		if len(s.apps) >= maxApps {
			return nil, fmt.Errorf("too many applications (%d), %q not added", maxApps, name)
		}
		a = &app{series: map[seriesKey]*series{}, workers: map[string]int{}}
		s.apps[name] = a
	}
	return a, nil
}

// Join records that a connection joined as worker of application appName;
// the returned function undoes it when the connection ends.
func (s *Store) Join(appName, worker string) (leave func(), err error) {
	if len(appName) > maxNameBytes || len(worker) > maxNameBytes {
		return nil, fmt.Errorf("application or worker name longer than %d bytes", maxNameBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(appName)
	if err != nil {
		return nil, err
	}
	a.workers[worker]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if a.workers[worker]--; a.workers[worker] <= 0 {
				delete(a.workers, worker)
			}
		})
	}, nil
}

// windowEnd returns the end of the last completed period at t.
func windowEnd(t time.Time) uint64 {
	ns := uint64(max(t.UnixNano(), 0))
	return ns / hubproto.Period * hubproto.Period
}

// windowStart returns the end of the first period shown when the last
// completed period ends at end.
func windowStart(end uint64) uint64 {
	span := uint64(periods-1) * hubproto.Period
	if end < span {
		return 0
	}
	return end - span
}

// Add merges one record of application appName. It returns an error,
// saying why, for a record it does not keep: an unknown category, a
// period outside the window, names that are too long, or a limit reached.
func (s *Store) Add(appName string, r *hubproto.Record) error {
	for _, n := range []string{appName, r.Name, r.Worker, r.Pipeline} {
		if len(n) > maxNameBytes {
			return fmt.Errorf("%s record %q: a name is longer than %d bytes", r.Category, r.Name, maxNameBytes)
		}
	}
	// A period ends on a multiple of 2 s; 0.6 workers send exactly that,
	// anything else is counted in the period containing its end.
	end := (r.PeriodEnd + hubproto.Period - 1) / hubproto.Period * hubproto.Period
	if r.PeriodEnd > math.MaxUint64-hubproto.Period {
		return fmt.Errorf("%s record %q: period end %d is out of range", r.Category, r.Name, r.PeriodEnd)
	}
	now := s.now()
	wEnd := windowEnd(now)
	if end < windowStart(wEnd) || end > uint64(now.Add(maxAhead).UnixNano()) {
		return fmt.Errorf("%s record %q: period end %s is outside the window (now %s)",
			r.Category, r.Name, time.Unix(0, int64(min(r.PeriodEnd, math.MaxInt64))).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	h := &hist{bins: r.Bins, min: r.Min, max: r.Max}
	type target struct {
		key       seriesKey
		ingestion bool
	}
	var targets [2]target
	switch r.Category {
	case hubproto.CategoryComputation:
		targets = [2]target{{key: seriesKey{KindComputation, r.Name, ""}},
			{key: seriesKey{KindComputation, r.Name, r.Pipeline + "@" + r.Worker}}}
	case hubproto.CategoryStartToEnd:
		targets = [2]target{{key: seriesKey{KindPipeline, r.Name, ""}},
			{key: seriesKey{KindPipeline, r.Name, r.Worker}}}
	case hubproto.CategoryNodeIngressEgress:
		targets = [2]target{{key: seriesKey{KindWorker, r.Name, ""}},
			{key: seriesKey{KindWorker, r.Name, r.Pipeline}}}
	case hubproto.CategoryPipelineIngestion:
		p := r.Pipeline
		if p == "" {
			p = strings.TrimSuffix(r.Name, " source")
		}
		targets = [2]target{{key: seriesKey{KindPipeline, p, ""}, ingestion: true},
			{key: seriesKey{KindPipeline, p, r.Worker}, ingestion: true}}
	default:
		return fmt.Errorf("record %q has unknown category %q", r.Name, r.Category)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(appName)
	if err != nil {
		return err
	}
	for _, t := range targets {
		sr := a.series[t.key]
		if sr == nil {
			if len(a.series) >= maxSeriesPerApp {
				return fmt.Errorf("application %q has %d series, the limit; %s record %q dropped", appName, maxSeriesPerApp, r.Category, r.Name)
			}
			sr = &series{lat: map[uint64]*hist{}, ing: map[uint64]uint64{}, first: end, last: end}
			a.series[t.key] = sr
		}
		sr.first, sr.last = min(sr.first, end), max(sr.last, end)
		if t.ingestion {
			sr.ing[end] = addSat(sr.ing[end], h.count())
			continue
		}
		p := sr.lat[end]
		if p == nil {
			p = newHist()
			sr.lat[end] = p
		}
		p.merge(h)
	}
	return nil
}

// pruneLocked forgets periods before the window starting at start, series
// left without periods, and applications with neither series nor workers.
func (s *Store) pruneLocked(start uint64) {
	for name, a := range s.apps {
		for k, sr := range a.series {
			if sr.last < start {
				delete(a.series, k)
				continue
			}
			for e := range sr.lat {
				if e < start {
					delete(sr.lat, e)
				}
			}
			for e := range sr.ing {
				if e < start {
					delete(sr.ing, e)
				}
			}
			sr.first = max(sr.first, start)
		}
		if len(a.series) == 0 && len(a.workers) == 0 {
			delete(s.apps, name)
		}
	}
}

// AppSummary is one line of the landing page.
type AppSummary struct {
	Name         string   `json:"name"`
	Workers      []string `json:"workers"` // connected now
	Pipelines    int      `json:"pipelines"`
	WorkersSeen  int      `json:"workers_seen"` // with node metrics in the window
	Computations int      `json:"computations"`
}

// Apps lists the applications, by name.
func (s *Store) Apps() []AppSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(windowStart(windowEnd(s.now())))
	out := []AppSummary{}
	for name, a := range s.apps {
		sum := AppSummary{Name: name, Workers: sortedKeys(a.workers)}
		for k := range a.series {
			if k.Sub != "" {
				continue
			}
			switch k.Kind {
			case KindPipeline:
				sum.Pipelines++
			case KindWorker:
				sum.WorkersSeen++
			case KindComputation:
				sum.Computations++
			}
		}
		out = append(out, sum)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
