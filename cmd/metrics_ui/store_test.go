package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/hubproto"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// t0 is a period boundary.
var t0 = time.Unix(1_800_000_000, 0)

func rec(category, name, worker, pipeline string, end time.Time, values ...uint64) *hubproto.Record {
	r := &hubproto.Record{Name: name, Category: category, Worker: worker, Pipeline: pipeline,
		Period: hubproto.Period, PeriodEnd: uint64(end.UnixNano())}
	r.Reset()
	for _, v := range values {
		r.Observe(v)
	}
	return r
}

func mustAdd(t *testing.T, s *Store, app string, r *hubproto.Record) {
	t.Helper()
	if err := s.Add(app, r); err != nil {
		t.Fatal(err)
	}
}

func find(t *testing.T, els []Element, name, sub string) Element {
	t.Helper()
	for _, e := range els {
		if e.Name == name && e.Sub == sub {
			return e
		}
	}
	t.Fatalf("no element %q/%q in %+v", name, sub, els)
	return Element{}
}

func TestStore_KeysAndSums(t *testing.T) {
	c := &clock{t0.Add(500 * time.Millisecond)}
	s := NewStore(c.now)
	const P = "Split and Count"
	// Two workers, one period; w1 reports "Split" from two actors (two
	// connections), which must be summed.
	mustAdd(t, s, "wc", rec("computation", "Split", "w1", P, t0, 1000, 1000))
	mustAdd(t, s, "wc", rec("computation", "Split", "w1", P, t0, 3000))
	mustAdd(t, s, "wc", rec("computation", "Split", "w2", P, t0, 100))
	mustAdd(t, s, "wc", rec("start-to-end", P, "w1", P, t0, 50_000, 60_000))
	mustAdd(t, s, "wc", rec("node-ingress-egress", "w1", "w1", P, t0, 40_000))
	mustAdd(t, s, "wc", rec("pipeline-ingestion", P+" source", "w1", P, t0, 0, 0, 0, 0))
	mustAdd(t, s, "wc", rec("pipeline-ingestion", P+" source", "w2", P, t0, 0, 0))

	d, err := s.Dashboard("wc")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Ends) != 150 || d.Ends[149] != t0.UnixMilli() || d.Ends[1]-d.Ends[0] != 2000 {
		t.Fatalf("window: %d ends, last %d, want 150 ending at %d", len(d.Ends), d.Ends[len(d.Ends)-1], t0.UnixMilli())
	}
	split := find(t, d.Computations, "Split", "")
	if split.Count != 4 || split.Rate[149] != 2 || split.Latency.Max != 3000 || split.Latency.Min != 100 {
		t.Errorf("Split overall: %+v", split)
	}
	pipe := find(t, d.Pipelines, P, "")
	if pipe.Count != 2 || pipe.Ingested != 6 || pipe.IngestRate[149] != 3 || pipe.Rate[149] != 1 {
		t.Errorf("pipeline: count %d ingested %d rates %v %v", pipe.Count, pipe.Ingested, pipe.IngestRate[149], pipe.Rate[149])
	}
	if pipe.Latency.P50 != 60_000 || pipe.Latency.Min != 50_000 { // both in bin 16: capped at max
		t.Errorf("pipeline latency: %+v", pipe.Latency)
	}
	if w := find(t, d.Workers, "w1", ""); w.Count != 1 || w.Key != "w1" {
		t.Errorf("worker: %+v", w)
	}
	if len(d.Pipelines) != 1 || len(d.Workers) != 1 || len(d.Computations) != 1 {
		t.Errorf("dashboard has sub-elements: %d %d %d", len(d.Pipelines), len(d.Workers), len(d.Computations))
	}

	det, err := s.Detail("wc", KindComputation, "Split")
	if err != nil {
		t.Fatal(err)
	}
	if det.ByLabel != "pipeline@worker" || len(det.By) != 2 {
		t.Fatalf("Split by: %q %+v", det.ByLabel, det.By)
	}
	if b := find(t, det.By, "Split", P+"@w1"); b.Count != 3 || b.Key != P+"@w1:Split" {
		t.Errorf("Split on w1: %+v", b)
	}
	if det.P50[149] == nil || *det.P50[149] != 1023 || det.P50[0] != nil {
		t.Errorf("per-period p50: last %v, first %v", det.P50[149], det.P50[0])
	}
	if det.Bins[0].Count != 3 || det.Bins[1].Count != 1 { // 100, 1000, 1000 ≤ 1 µs; 3000 ≤ 4 µs
		t.Errorf("bins: %+v", det.Bins[:3])
	}
	pd, err := s.Detail("wc", KindPipeline, P)
	if err != nil {
		t.Fatal(err)
	}
	if b := find(t, pd.By, P, "w2"); b.Ingested != 2 || b.Count != 0 || b.Latency != nil || b.Key != P+"@w2" {
		t.Errorf("pipeline on w2: %+v", b)
	}
	wd, err := s.Detail("wc", KindWorker, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if b := find(t, wd.By, "w1", P); b.Key != P+"*w1" {
		t.Errorf("worker by pipeline: %+v", b)
	}
}

func TestStore_WindowAdvancesWithoutData(t *testing.T) {
	c := &clock{t0.Add(100 * time.Millisecond)}
	s := NewStore(c.now)
	mustAdd(t, s, "a", rec("start-to-end", "P", "w", "P", t0, 1, 2, 3, 4))
	c.t = c.t.Add(10 * time.Second) // five more periods, nothing reported
	d, _ := s.Dashboard("a")
	p := find(t, d.Pipelines, "P", "")
	if d.Ends[149] != t0.Add(10*time.Second).UnixMilli() || p.Rate[144] != 2 || p.Rate[149] != 0 {
		t.Fatalf("last end %d, rates %v", d.Ends[149], p.Rate[140:])
	}
	// Periods since the first report count, earlier ones do not: 2, 0×5.
	if p.Throughput != (Throughput{Min: 0, Median: 0, Max: 2}) {
		t.Errorf("throughput %+v", p.Throughput)
	}
	// After 5 minutes the data has left the window: the element and the
	// application (no worker connected) are gone.
	c.t = c.t.Add(Window)
	if _, err := s.Dashboard("a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the window: %v, want not found", err)
	}
	if apps := s.Apps(); len(apps) != 0 {
		t.Errorf("apps after the window: %+v", apps)
	}
}

func TestStore_Rejects(t *testing.T) {
	c := &clock{t0}
	s := NewStore(c.now)
	cases := []struct {
		r    *hubproto.Record
		want string
	}{
		{rec("bogus", "x", "w", "P", t0, 1), `unknown category "bogus"`},
		{rec("computation", "x", "w", "P", t0.Add(-Window-time.Second), 1), "outside the window"},
		{rec("computation", "x", "w", "P", t0.Add(2*time.Minute), 1), "outside the window"},
		{rec("computation", strings.Repeat("x", 2000), "w", "P", t0, 1), "longer than"},
	}
	for _, c := range cases {
		if err := s.Add("a", c.r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Add(%s %.10q) = %v, want %q", c.r.Category, c.r.Name, err, c.want)
		}
	}
}

func TestStore_JoinAndApps(t *testing.T) {
	s := NewStore((&clock{t0}).now)
	leave1, _ := s.Join("wc", "w1")
	leave2, _ := s.Join("wc", "w1")
	_, _ = s.Join("other", "x")
	mustAdd(t, s, "wc", rec("start-to-end", "P", "w1", "P", t0, 1))
	apps := s.Apps()
	if len(apps) != 2 || apps[1].Name != "wc" || apps[1].Pipelines != 1 || strings.Join(apps[1].Workers, ",") != "w1" {
		t.Fatalf("apps: %+v", apps)
	}
	leave1()
	leave1() // idempotent
	if a := s.Apps()[1]; len(a.Workers) != 1 {
		t.Fatalf("after one leave: %+v", a)
	}
	leave2()
	if a := s.Apps()[1]; len(a.Workers) != 0 {
		t.Fatalf("after both left: %+v", a)
	}
}
