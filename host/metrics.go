package host

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/metrics"
	"github.com/wallaroo-go/machida/engine/work"
)

// sampledTiming is the runner's set_metrics mode while metrics are on
// (any value above 1; 1 would time every message): each call of the
// runner's loops times every computation for one message (or envelope
// record) of each run of up to 256 of its messages, drawn at random, and
// each timed value counts as many times as its run had messages, so the
// stage histograms' counts are right on average and their shapes are
// those of a stratified sample. The cost is per run, not per message:
// a busy worker's large batches pay for a few timings each, an idle
// one's single messages are each timed. Counts of ingested, completed
// and handed-off messages are exact.
const sampledTiming = 2

// procMetrics is the processor's side of the metrics: which stages the
// runner times, and the samples of the current call. Touched only inside
// the processor's Do calls (one at a time).
type procMetrics struct {
	reg  *metrics.Registry
	on   bool          // the runner's set_metrics state
	take bridge.Object // runner.take_metrics (owned)
	// names[pi][n]: the computation name of stage n of path pi ("" for
	// stages that are not timed: key extractors); n 0 is the decoder.
	names [][]string
	pend  []sample
}

type sample struct {
	k    metrics.Key
	v, n uint64
}

// UseMetrics makes the processor record into reg (nil: never). Call
// before the first Process.
func (p *processor) UseMetrics(reg *metrics.Registry) {
	p.m.reg = reg
}

// syncMetrics turns the runner's stage timing on or off to follow the
// registry (someone consuming or not); inside Do.
func (p *processor) syncMetrics(py *bridge.Py) {
	want := p.m.reg.On()
	if want == p.m.on {
		return
	}
	every := py.Int(0)
	if want {
		py.DecRef(every)
		every = py.Int(sampledTiming)
	}
	defer py.DecRef(every)
	if err := py.CallMethodDiscard(p.runner, "set_metrics", every); err != nil {
		p.log.Warn("stage timing not switched", "on", want, "err", err)
		return
	}
	p.m.on = want
	p.m.pend = p.m.pend[:0]
}

func (p *processor) add(k metrics.Key, v int64, n int64) {
	if n <= 0 {
		return
	}
	p.m.pend = append(p.m.pend, sample{k: k, v: uint64(max(v, 0)), n: uint64(n)})
}

// ingested counts n messages taken from source src.
func (p *processor) ingested(src int, n int64) {
	name := p.names[src]
	p.add(metrics.Key{Category: metrics.PipelineIngestion, Name: name + " source", Pipeline: name}, 0, n)
}

// completed records c messages of pipeline src reaching the sinks at
// now: start-to-end from their ingest time, node-ingress-egress from
// their arrival on this worker.
func (p *processor) completed(src int, c, now, ingest, arrived int64) {
	if c <= 0 {
		return
	}
	name := p.names[src]
	if ingest > 0 {
		p.add(metrics.Key{Category: metrics.StartToEnd, Name: name, Pipeline: name}, now-ingest, c)
	}
	if arrived > 0 {
		p.add(metrics.Key{Category: metrics.NodeIngressEgress, Name: p.m.reg.Worker(), Pipeline: name}, now-arrived, c)
	}
}

// count reads the number of completions a runner call returned (the
// last item of its outputs tuple, after one bytes per sink).
func (p *processor) count(py *bridge.Py, outs bridge.Object, sinks int) int64 {
	o, err := py.Item(outs, sinks)
	if err != nil {
		return 0
	}
	defer py.DecRef(o)
	n, err := py.GoInt(o)
	if err != nil {
		return 0
	}
	return n
}

// flushMetrics takes the runner's timings and hand-offs of this call and
// records them with the call's other samples, under one lock; inside
// Do. handedAt is when the envelopes left (their node-ingress-egress
// end), arrived the earliest arrival of the call's items.
func (p *processor) flushMetrics(py *bridge.Py, handedAt, arrived int64) error {
	r, err := py.Call(p.m.take)
	if err != nil {
		return fmt.Errorf("take metrics: %w", err)
	}
	defer py.DecRef(r)
	var parts [3]bridge.Object
	for i := range parts {
		if parts[i], err = py.Item(r, i); err != nil {
			return fmt.Errorf("take metrics: %w", err)
		}
		defer py.DecRef(parts[i])
	}
	data, err := py.BytesView(parts[0])
	if err != nil {
		return fmt.Errorf("take metrics: %w", err)
	}
	weight := int64(1) // (-1, weight) pairs set it for the timings after
	for len(data) >= 16 {
		code := int64(binary.NativeEndian.Uint64(data))
		ns := int64(binary.NativeEndian.Uint64(data[8:]))
		data = data[16:]
		if code == -1 {
			weight = max(1, ns)
			continue
		}
		pi, n := int(code>>8), int(code&0xff)
		if pi < 0 || pi >= len(p.m.names) || n >= len(p.m.names[pi]) || p.m.names[pi][n] == "" {
			continue
		}
		p.add(metrics.Key{Category: metrics.Computation, Name: p.m.names[pi][n], Pipeline: p.names[pi], ID: uint16(n + 1)}, ns, weight)
	}
	pairs := func(o bridge.Object, f func(pi int, n int64)) error {
		items, err := py.Items(o)
		if err != nil {
			return err
		}
		defer func() {
			for _, it := range items {
				py.DecRef(it)
			}
		}()
		for i := 0; i+1 < len(items); i += 2 {
			pi, err1 := py.GoInt(items[i])
			n, err2 := py.GoInt(items[i+1])
			if err1 == nil && err2 == nil && pi >= 0 && int(pi) < len(p.names) {
				f(int(pi), n)
			}
		}
		return nil
	}
	if err := pairs(parts[1], func(pi int, n int64) {
		if arrived > 0 {
			p.add(metrics.Key{Category: metrics.NodeIngressEgress, Name: p.m.reg.Worker(), Pipeline: p.names[pi]}, handedAt-arrived, n)
		}
	}); err != nil {
		return fmt.Errorf("take metrics: %w", err)
	}
	if err := pairs(parts[2], func(pi int, n int64) { p.ingested(pi, n) }); err != nil {
		return fmt.Errorf("take metrics: %w", err)
	}
	if len(p.m.pend) > 0 {
		p.m.reg.Update(func(rc metrics.Recorder) {
			for _, s := range p.m.pend {
				rc.Add(s.k, s.v, s.n)
			}
		})
		p.m.pend = p.m.pend[:0]
	}
	return nil
}

// nowNs is the wall clock in Unix nanoseconds (ingest times are wall
// clock, set by the sources of whichever worker read the message).
func nowNs() int64 { return time.Now().UnixNano() }

// resumed records the completions of one group of resumed envelope
// records (a run of runner.resume: (path, outputs, mean ingest time)).
func (p *processor) resumed(py *bridge.Py, run, outs bridge.Object, sinks int, arrived int64) {
	pio, err := py.Item(run, 0)
	if err != nil {
		return
	}
	pi, err := py.GoInt(pio)
	py.DecRef(pio)
	if err != nil || pi < 0 || int(pi) >= len(p.names) {
		return
	}
	var ingest int64
	if o, err := py.Item(run, 2); err == nil {
		ingest, _ = py.GoInt(o)
		py.DecRef(o)
	}
	p.completed(int(pi), p.count(py, outs, sinks), nowNs(), ingest, arrived)
}

// firstArrival is the earliest arrival on this worker of the items of a
// call (0 if none says).
func firstArrival(items []work.Item) int64 {
	var first int64
	for i := range items {
		var t int64
		switch items[i].Kind {
		case work.KindBatch:
			t = items[i].Batch.Ingest
		case work.KindEnvelopes:
			t = items[i].Envelopes.Arrived
		}
		if t > 0 && (first == 0 || t < first) {
			first = t
		}
	}
	return first
}
