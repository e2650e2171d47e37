package host

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/metrics"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/source"
	"github.com/wallaroo-go/machida/engine/spread"
	"github.com/wallaroo-go/machida/engine/topology"
	"github.com/wallaroo-go/machida/engine/work"
	"github.com/wallaroo-go/machida/engine/worker"
)

// processor implements work.Processor with the private runner module
// wallaroo._runner: one runner Path per source, cut into the segments of
// topology.Path.Segments, whose process(frames, ts) runs a whole batch
// through the application in one call. It holds owned references (the
// runner, paths, bound methods) for the life of the process; they are
// only touched inside Interp.Do, i.e. on the executor with the GIL held.
// The loop goroutine calls Process/Generate/SetOwnership one at a time;
// StateEntities and the partition methods may come from other goroutines
// (each is one Do).
type processor struct {
	in      *bridge.Interp
	log     *slog.Logger
	paths   []bridge.Object // runner Path objects, by source index
	process []bridge.Object // their bound process methods
	names   []string        // source names
	runner  bridge.Object   // the wallaroo._runner.Runner (owned)
	resume  bridge.Object   // runner.resume (owned)
	take    bridge.Object   // runner.take_envelopes (owned)
	// allLocal is true while every partition and spread segment is
	// owned here: then no envelope can be made and take_envelopes is
	// not called. Written by SetOwnership, read by Process (one
	// goroutine).
	allLocal bool
	// label names the processor's Do calls for Interp.Busy.
	label string
	// headerLen and maxPayload frame raw batches, by source index.
	headerLen  []int
	maxPayload []int
	// spreadNext holds the spread weights SetSpread asked for (any
	// goroutine), until the next Process call installs them; nil when
	// none are pending.
	spreadMu   sync.Mutex
	spreadNext map[work.Dest]float64
	// spreadDests are the spread destinations of the ownership table
	// installed last (SetOwnership; read and written inside Do only).
	spreadDests []work.Dest
	// m: metrics (metrics.go).
	m procMetrics
}

// spreadSlots is how many slots a spread boundary deals from (the
// runner's _SPREAD_SLOTS): weights are kept to 1/64.
const spreadSlots = 64

// SetSpread implements work.SpreadSetter: the runner deals its spread
// segments' messages over the destinations in proportion to weights,
// from the next Process call on. Weights are measured on a timer and
// may name a destination the table installed since has taken out of
// the dealing (a worker leaving in a shrink): the others share its part.
func (p *processor) SetSpread(weights map[work.Dest]float64) {
	if len(weights) == 0 {
		return
	}
	p.spreadMu.Lock()
	p.spreadNext = maps.Clone(weights)
	p.spreadMu.Unlock()
}

// destList returns a new Python list of the destinations as ints (a new
// reference); inside Do.
func destList(py *bridge.Py, ds []work.Dest) (bridge.Object, error) {
	objs := make([]bridge.Object, len(ds))
	for i, d := range ds {
		objs[i] = py.Int(int64(d))
	}
	l, err := py.NewList(objs)
	for _, o := range objs {
		py.DecRef(o)
	}
	return l, err
}

// installSpread deals the pending spread weights, cut to the spread
// destinations of the table installed now, into slots and hands them to
// the runner; inside Do. Only a failure to build the list is an error.
func (p *processor) installSpread(py *bridge.Py) error {
	p.spreadMu.Lock()
	weights := p.spreadNext
	p.spreadNext = nil
	p.spreadMu.Unlock()
	if weights == nil {
		return nil
	}
	dests := p.spreadDests
	if len(dests) == 0 {
		dests = []work.Dest{work.Here} // (the runner's default)
	}
	maps.DeleteFunc(weights, func(d work.Dest, _ float64) bool { return !slices.Contains(dests, d) })
	slots := spread.Slots(weights, spreadSlots)
	if len(slots) == 0 {
		return nil // weights for none of today's destinations: the deal stays
	}
	l, err := destList(py, slots)
	if err != nil {
		return err
	}
	defer py.DecRef(l)
	if err := py.CallMethodDiscard(p.runner, "set_spread_slots", l); err != nil {
		// (Not expected: the weights were cut to the runner's spread
		// destinations above.) The deal stays as it was; dealing is
		// never worth stopping the worker.
		p.log.Warn("spread weights not installed", "err", err)
	}
	return nil
}

// UserCodeError is an exception raised by user code while processing.
type UserCodeError struct {
	Source string // pipeline (source) name
	Stage  string // e.g. "computation 'split into words'"
	Input  string // repr of the message being processed, if known
	Err    error  // *bridge.PyError, or a conversion error
	// Summary, when set, is 0.6's one-line report of the failure
	// ("Serialization failed"), printed as "Error: <Summary>".
	Summary string
}

func (e *UserCodeError) Error() string {
	msg := fmt.Sprintf("user code failed in %s of pipeline %q", e.Stage, e.Source)
	if e.Input != "" {
		msg += " while processing " + e.Input
	}
	return msg + ": " + e.Err.Error()
}

func (e *UserCodeError) Unwrap() error { return e.Err }

// runnerKinds are the constants of wallaroo._runner that must equal the
// engine's values: the typed contract between the two sides.
var runnerKinds = map[string]int{
	"COMPUTATION": int(topology.Computation),
	"STATE":       int(topology.StateComputation),
	"KEY_BY":      int(topology.KeyBy),
	"SEG_SOURCE":  int(topology.SegSource),
	"SEG_SPREAD":  int(topology.SegSpread),
	"SEG_KEYED":   int(topology.SegKeyed),
	"SEG_SINGLE":  int(topology.SegSingle),
}

// newProcessor builds the runner paths, every partition local. Must run
// inside Do.
func newProcessor(in *bridge.Interp, py *bridge.Py, paths []topology.Path, partitions int, hooks bridge.Object, logger *slog.Logger) (*processor, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	mod, err := py.Import("wallaroo._runner")
	if err != nil {
		return nil, fmt.Errorf("import wallaroo._runner: %w", err)
	}
	defer py.DecRef(mod)
	var tmp []bridge.Object
	defer func() {
		for _, o := range tmp {
			py.DecRef(o)
		}
	}()
	keep := func(o bridge.Object) bridge.Object { tmp = append(tmp, o); return o }
	// Envelope columns of native strings are packed by the bridge's C
	// twins of wallaroo._columns' reference functions.
	pack, unpack, err := py.TextColumnCodec()
	if err != nil {
		return nil, fmt.Errorf("make the text column codec: %w", err)
	}
	keep(pack)
	keep(unpack)
	if err := py.SetAttr(mod, "_pack_text", pack); err != nil {
		return nil, fmt.Errorf("install the text column codec: %w", err)
	}
	if err := py.SetAttr(mod, "_unpack_text", unpack); err != nil {
		return nil, fmt.Errorf("install the text column codec: %w", err)
	}
	// Stage timing (metrics) reads the bridge's monotonic nanosecond
	// clock: Python 2's fallback, time.time() as a double, keeps only
	// about 256 ns.
	clock, err := py.MonotonicClock()
	if err != nil {
		return nil, fmt.Errorf("make the stage-timing clock: %w", err)
	}
	if err := py.SetAttr(mod, "_clock_ns", keep(clock)); err != nil {
		return nil, fmt.Errorf("install the stage-timing clock: %w", err)
	}
	for name, want := range runnerKinds {
		o, err := py.GetAttr(mod, name)
		if err != nil {
			return nil, fmt.Errorf("wallaroo._runner does not match this engine: %w", err)
		}
		got, err := py.GoInt(keep(o))
		if err != nil || int(got) != want {
			return nil, fmt.Errorf("wallaroo._runner does not match this engine: %s is %d, the engine's is %d", name, got, want)
		}
	}
	cls := func(name string) (bridge.Object, error) {
		o, err := py.GetAttr(mod, name)
		if err != nil {
			return bridge.Object{}, err
		}
		return keep(o), nil
	}
	runnerCls, err := cls("Runner")
	if err != nil {
		return nil, err
	}
	stageCls, err := cls("Stage")
	if err != nil {
		return nil, err
	}
	segCls, err := cls("Segment")
	if err != nil {
		return nil, err
	}
	if hooks.IsZero() {
		hooks = keep(py.None())
	}
	runner, err := py.Call(runnerCls, keep(py.Int(int64(partitions))), hooks)
	if err != nil {
		return nil, fmt.Errorf("create the runner: %w", err)
	}
	keep(runner)

	p := &processor{in: in, log: logger, runner: py.IncRef(runner), allLocal: true}
	if p.resume, err = py.GetAttr(runner, "resume"); err != nil {
		return nil, err
	}
	if p.take, err = py.GetAttr(runner, "take_envelopes"); err != nil {
		return nil, err
	}
	if p.m.take, err = py.GetAttr(runner, "take_metrics"); err != nil {
		return nil, err
	}
	flag := func(b bool) bridge.Object {
		if b {
			return keep(py.Int(1))
		}
		return keep(py.Int(0))
	}
	for _, path := range paths {
		var stages []bridge.Object
		timed := []string{metrics.DecodeName} // n 0: the decoder
		if path.Source.Kind == "gen" {
			timed[0] = ""
		}
		for _, st := range path.Stages {
			if st.Kind == topology.ToSink {
				continue
			}
			switch st.Kind {
			case topology.Computation, topology.StateComputation:
				timed = append(timed, st.Name)
			default:
				timed = append(timed, "")
			}
			so, err := py.Call(stageCls, keep(py.Int(int64(st.Kind))), st.Component.(bridge.Object),
				keep(py.Str(st.Name)), keep(py.Str(st.ID.String())), flag(st.Multi), flag(st.Keyed))
			if err != nil {
				return nil, fmt.Errorf("stage %q of pipeline %q: %w", st.Name, path.Source.Name, err)
			}
			stages = append(stages, keep(so))
		}
		var segs []bridge.Object
		for _, sg := range path.Segments() {
			so, err := py.Call(segCls, keep(py.Int(int64(sg.Kind))), keep(py.Int(int64(sg.Start))))
			if err != nil {
				return nil, fmt.Errorf("segment of pipeline %q: %w", path.Source.Name, err)
			}
			segs = append(segs, keep(so))
		}
		stageList, err := py.NewList(stages)
		if err != nil {
			return nil, err
		}
		keep(stageList)
		segList, err := py.NewList(segs)
		if err != nil {
			return nil, err
		}
		keep(segList)
		var encoders []bridge.Object
		for _, sk := range path.Sinks() {
			encoders = append(encoders, sk.Encoder.(bridge.Object))
		}
		encList, err := py.NewList(encoders)
		if err != nil {
			return nil, err
		}
		keep(encList)
		method := "path"
		if path.Source.Kind == "gen" {
			method = "gen_path" // calls the generator's initial_value()
		}
		po, err := py.CallMethod(runner, method, keep(py.Str(path.Source.Name)), path.Source.Decoder.(bridge.Object), stageList, encList, segList)
		if err != nil {
			return nil, fmt.Errorf("prepare pipeline %q: %w", path.Source.Name, err)
		}
		proc, err := py.GetAttr(po, "process")
		if err != nil {
			py.DecRef(po)
			return nil, err
		}
		p.paths = append(p.paths, po)
		p.process = append(p.process, proc)
		p.names = append(p.names, path.Source.Name)
		p.m.names = append(p.m.names, timed)
	}
	p.label = fmt.Sprintf("the stages of pipelines %q", p.names)
	return p, nil
}

// Process implements work.Processor: one Do (one GIL acquisition) for
// all the items, one runner call per item, then one take_envelopes if
// any partition is owned elsewhere.
func (p *processor) Process(items []work.Item, out *work.Output) error {
	return p.in.DoAs(p.label, func(py *bridge.Py) error {
		if err := p.installSpread(py); err != nil {
			return err
		}
		p.syncMetrics(py)
		err := p.processItems(py, items, out)
		if !p.allLocal {
			// Envelopes made before a failure are routed too.
			if terr := p.takeEnvelopes(py, out); terr != nil && err == nil {
				err = terr
			}
		}
		if p.m.on && err == nil {
			err = p.flushMetrics(py, nowNs(), firstArrival(items))
		}
		return err
	})
}

func (p *processor) processItems(py *bridge.Py, items []work.Item, out *work.Output) error {
	for i := range items {
		it := &items[i]
		switch it.Kind {
		case work.KindBatch:
			b := &it.Batch
			if b.Raw {
				if err := p.frameRaw(py, b, out); err != nil {
					return err
				}
				continue
			}
			ts := py.Int(b.Ingest)
			r, err := py.CallFrames(p.process[b.Source], b.Buf, b.Ends, ts)
			py.DecRef(ts)
			if err != nil {
				p.salvage(py, b.Source, out.Sinks)
				return p.userError(py, b.Source, err)
			}
			if p.m.on {
				p.ingested(b.Source, int64(len(b.Ends)))
				p.completed(b.Source, p.count(py, r, len(out.Sinks)), nowNs(), b.Ingest, b.Ingest)
			}
			err = p.collect(py, r, out.Sinks)
			py.DecRef(r)
			if err != nil {
				return err
			}
		case work.KindEnvelopes:
			if err := p.resumeEnvelopes(py, it.Envelopes, out); err != nil {
				var bad badBatch
				if !errors.As(err, &bad) {
					return err
				}
				out.Rejected = append(out.Rejected, work.Rejected{Input: it.Input, Count: it.Envelopes.Count, Reason: string(bad)})
			}
		default:
			return fmt.Errorf("host: Process given a %v item", it.Kind)
		}
	}
	return nil
}

// frameRaw frames and runs a raw batch (a source whose decoder has its own
// payload_length) in the runner; a stream that cannot be framed is
// rejected (its connection closed with the reason), not a user error.
func (p *processor) frameRaw(py *bridge.Py, b *source.Batch, out *work.Output) error {
	src := b.Source
	args := []bridge.Object{
		py.Int(int64(b.Conn)), py.Bytes(b.Buf), py.Int(b.Ingest), py.Int(0),
		py.Int(int64(p.headerLen[src])), py.Int(int64(p.maxPayload[src])),
	}
	if b.Closed {
		args[3] = py.Int(1)
	}
	defer func() {
		for _, a := range args {
			py.DecRef(a)
		}
	}()
	reason, err := p.callPair(py, src, "frame_raw", out, b.Ingest, args...)
	if err != nil {
		return err
	}
	defer py.DecRef(reason)
	if !py.IsNone(reason) {
		msg, _ := py.GoString(reason)
		if b.Reject != nil {
			b.Reject(msg)
		} else {
			p.log.Warn("a stream cannot be framed", "pipeline", p.names[src], "reason", msg)
		}
	}
	return nil
}

// resumeEnvelopes runs a batch of envelopes from the segments they name.
func (p *processor) resumeEnvelopes(py *bridge.Py, e work.Envelopes, out *work.Output) error {
	data := py.Bytes(e.Data)
	var r bridge.Object
	var err error
	if e.Reroute {
		routed := py.Int(1)
		r, err = py.Call(p.resume, data, routed)
		py.DecRef(routed)
	} else {
		r, err = py.Call(p.resume, data)
	}
	py.DecRef(data)
	if err != nil {
		if he := p.hookError(py, err); he != nil {
			return he
		}
		if why, ok := p.badBatch(py); ok {
			return badBatch(why)
		}
		fp, ferr := py.GetAttr(p.runner, "failed_path")
		if ferr == nil {
			defer py.DecRef(fp)
			if !py.IsNone(fp) {
				if pi, gerr := py.GoInt(fp); gerr == nil && int(pi) < len(p.paths) {
					p.salvage(py, int(pi), out.Sinks)
					return p.userError(py, int(pi), err)
				}
			}
		}
		return fmt.Errorf("resume %d envelopes: %w", e.Count, err)
	}
	defer py.DecRef(r)
	runs, err := py.Items(r)
	if err != nil {
		return fmt.Errorf("runner resume result: %w", err)
	}
	var first error
	for _, run := range runs {
		if first == nil {
			outs, err := py.Item(run, 1)
			if err == nil {
				err = p.collect(py, outs, out.Sinks)
				if p.m.on && err == nil {
					p.resumed(py, run, outs, len(out.Sinks), e.Arrived)
				}
				py.DecRef(outs)
			}
			if err != nil {
				first = fmt.Errorf("runner resume result: %w", err)
			}
		}
		py.DecRef(run)
	}
	return first
}

// badBatch is the runner's reason for refusing an envelope batch that is
// not a batch of this application (none of it ran).
type badBatch string

func (b badBatch) Error() string { return "envelope batch refused: " + string(b) }

// badBatch returns the runner's bad_batch note of its last resume (why
// it refused the batch), if it has one.
func (p *processor) badBatch(py *bridge.Py) (string, bool) {
	note, err := py.GetAttr(p.runner, "bad_batch")
	if err != nil {
		return "", false
	}
	defer py.DecRef(note)
	if py.IsNone(note) {
		return "", false
	}
	why, err := py.GoString(note)
	if err != nil {
		return "", false
	}
	return why, true
}

// takeEnvelopes moves the runner's outbox into out.Envelopes.
func (p *processor) takeEnvelopes(py *bridge.Py, out *work.Output) error {
	r, err := py.Call(p.take)
	if err != nil {
		if he := p.hookError(py, err); he != nil {
			return he
		}
		return fmt.Errorf("serialise envelopes: %w", err)
	}
	defer py.DecRef(r)
	batches, err := py.Items(r)
	if err != nil {
		return fmt.Errorf("serialise envelopes: %w", err)
	}
	var first error
	for _, b := range batches {
		if first == nil {
			first = p.envelopeBatch(py, b, out)
		}
		py.DecRef(b)
	}
	return first
}

func (p *processor) envelopeBatch(py *bridge.Py, b bridge.Object, out *work.Output) error {
	var vals [3]bridge.Object
	for i := range vals {
		o, err := py.Item(b, i)
		if err != nil {
			return fmt.Errorf("envelope batch: %w", err)
		}
		defer py.DecRef(o)
		vals[i] = o
	}
	dest, err := py.GoInt(vals[0])
	if err != nil {
		return fmt.Errorf("envelope batch destination: %w", err)
	}
	n, err := py.GoInt(vals[1])
	if err != nil {
		return fmt.Errorf("envelope batch count: %w", err)
	}
	data, err := py.BytesView(vals[2])
	if err != nil {
		return fmt.Errorf("envelope batch data: %w", err)
	}
	out.Envelopes = append(out.Envelopes, work.Envelopes{Dest: work.Dest(dest), Count: int(n), Data: append([]byte(nil), data...)})
	return nil
}

// SetOwnership implements work.Processor: the runner compiles its loops
// again for the new table.
func (p *processor) SetOwnership(o work.Ownership) error {
	return p.in.Do(func(py *bridge.Py) error {
		owner, err := destList(py, o.Owner)
		if err != nil {
			return err
		}
		defer py.DecRef(owner)
		spread, err := destList(py, o.Spread)
		if err != nil {
			return err
		}
		defer py.DecRef(spread)
		epoch := py.Int(int64(o.Epoch))
		defer py.DecRef(epoch)
		if err := py.CallMethodDiscard(p.runner, "set_ownership", owner, epoch, spread); err != nil {
			return fmt.Errorf("ownership epoch %d: %w", o.Epoch, err)
		}
		p.allLocal = o.AllLocal()
		p.spreadDests = slices.Clone(o.Spread)
		return nil
	})
}

// ExportPartition returns the state of one partition of a state stage as
// bytes (the module's serialize per state object, or one pickle).
func (p *processor) ExportPartition(step topology.StepID, part routing.PartitionID) ([]byte, error) {
	var data []byte
	err := p.in.Do(func(py *bridge.Py) error {
		id := py.Str(step.String())
		defer py.DecRef(id)
		n := py.Int(int64(part))
		defer py.DecRef(n)
		r, err := py.CallMethod(p.runner, "export_partition", id, n)
		if err != nil {
			return err
		}
		defer py.DecRef(r)
		v, err := py.BytesView(r)
		data = append([]byte(nil), v...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("export partition %d of step %s: %w", part, step, err)
	}
	return data, nil
}

// ImportPartition adds state exported by ExportPartition (on this worker
// or another); it refuses keys that belong to another partition.
func (p *processor) ImportPartition(step topology.StepID, part routing.PartitionID, data []byte) error {
	err := p.in.Do(func(py *bridge.Py) error {
		id := py.Str(step.String())
		defer py.DecRef(id)
		n := py.Int(int64(part))
		defer py.DecRef(n)
		b := py.Bytes(data)
		defer py.DecRef(b)
		return py.CallMethodDiscard(p.runner, "import_partition", id, n, b)
	})
	if err != nil {
		return fmt.Errorf("import partition %d of step %s: %w", part, step, err)
	}
	return nil
}

// ExportPartitions exports and drops partitions of a state stage from
// the front of ps for about budget (at least one), in one call: the bytes
// of the first len(result) of them.
func (p *processor) ExportPartitions(step topology.StepID, ps []routing.PartitionID, budget time.Duration) ([][]byte, error) {
	var out [][]byte
	err := p.in.Do(func(py *bridge.Py) error {
		objs := make([]bridge.Object, len(ps))
		for i, part := range ps {
			objs[i] = py.Int(int64(part))
		}
		list, err := py.NewList(objs)
		for _, o := range objs {
			py.DecRef(o)
		}
		if err != nil {
			return err
		}
		defer py.DecRef(list)
		id := py.Str(step.String())
		defer py.DecRef(id)
		b := py.Int(budget.Nanoseconds())
		defer py.DecRef(b)
		r, err := py.CallMethod(p.runner, "export_partitions", id, list, b)
		if err != nil {
			return err
		}
		defer py.DecRef(r)
		items, err := py.Items(r)
		if err != nil {
			return err
		}
		for _, it := range items {
			v, err := py.BytesView(it)
			if err == nil {
				out = append(out, append([]byte(nil), v...))
			}
			py.DecRef(it)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export partitions of step %s: %w", step, err)
	}
	return out, nil
}

// The engine moves state through the processor (a type assertion in
// engine/worker): keep it a Migrator.
var _ worker.Migrator = (*processor)(nil)

// DropPartitions forgets the state of partitions of one state step here
// (what a rescale that was undone had brought), without serialising it.
func (p *processor) DropPartitions(step topology.StepID, ps []routing.PartitionID) error {
	err := p.in.Do(func(py *bridge.Py) error {
		id := py.Str(step.String())
		defer py.DecRef(id)
		for _, part := range ps {
			n := py.Int(int64(part))
			err := py.CallMethodDiscard(p.runner, "drop_partition", id, n)
			py.DecRef(n)
			if err != nil {
				return fmt.Errorf("partition %d: %w", part, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop partitions of step %s: %w", step, err)
	}
	return nil
}

// ImportPartitions imports the states of partitions from the front of
// the lists for about budget (at least one) in one call, and says how
// many.
func (p *processor) ImportPartitions(steps []topology.StepID, ps []routing.PartitionID, datas [][]byte, budget time.Duration) (int, error) {
	n := 0
	err := p.in.Do(func(py *bridge.Py) error {
		list := func(n int, f func(i int) bridge.Object) (bridge.Object, error) {
			objs := make([]bridge.Object, n)
			for i := range objs {
				objs[i] = f(i)
			}
			l, err := py.NewList(objs)
			for _, o := range objs {
				py.DecRef(o)
			}
			return l, err
		}
		sl, err := list(len(steps), func(i int) bridge.Object { return py.Str(steps[i].String()) })
		if err != nil {
			return err
		}
		defer py.DecRef(sl)
		pl, err := list(len(ps), func(i int) bridge.Object { return py.Int(int64(ps[i])) })
		if err != nil {
			return err
		}
		defer py.DecRef(pl)
		dl, err := list(len(datas), func(i int) bridge.Object { return py.Bytes(datas[i]) })
		if err != nil {
			return err
		}
		defer py.DecRef(dl)
		b := py.Int(budget.Nanoseconds())
		defer py.DecRef(b)
		r, err := py.CallMethod(p.runner, "import_partitions", sl, pl, dl, b)
		if err != nil {
			return err
		}
		defer py.DecRef(r)
		k, err := py.GoInt(r)
		n = int(k)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("import %d partition states: %w", len(ps), err)
	}
	return n, nil
}

// StateEntities implements worker.Queries: the keys of every state object
// this interpreter holds, per state stage id. Keys are shown as text
// (UTF-8, invalid bytes replaced).
func (p *processor) StateEntities() (map[topology.StepID][]string, error) {
	out := map[topology.StepID][]string{}
	err := p.in.Do(func(py *bridge.Py) error {
		pairs, err := py.CallMethod(p.runner, "state_entity_pairs")
		if err != nil {
			return err
		}
		defer py.DecRef(pairs)
		list, err := py.Items(pairs)
		if err != nil {
			return err
		}
		for _, pair := range list {
			err := func() error {
				defer py.DecRef(pair)
				step, err := py.Item(pair, 0)
				if err != nil {
					return err
				}
				defer py.DecRef(step)
				keys, err := py.Item(pair, 1)
				if err != nil {
					return err
				}
				defer py.DecRef(keys)
				name, err := py.GoString(step)
				if err != nil {
					return err
				}
				id, err := topology.ParseStepID(name)
				if err != nil {
					return fmt.Errorf("the runner's state steps: %w", err)
				}
				ks, err := py.Items(keys)
				if err != nil {
					return err
				}
				names := make([]string, 0, len(ks))
				for _, k := range ks {
					b, err := py.TextView(k)
					if err == nil {
						names = append(names, strings.ToValidUTF8(string(b), "\uFFFD"))
					}
					py.DecRef(k)
				}
				out[id] = names
				return nil
			}()
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Generate implements work.Processor for generator sources.
func (p *processor) Generate(src int, max int, out *work.Output) (stopped bool, err error) {
	err = p.in.DoAs(p.label, func(py *bridge.Py) error {
		p.syncMetrics(py)
		t0 := nowNs()
		err := p.generate(py, src, max, out, &stopped)
		if !p.allLocal {
			if terr := p.takeEnvelopes(py, out); terr != nil && err == nil {
				err = terr
			}
		}
		if p.m.on && err == nil {
			err = p.flushMetrics(py, nowNs(), t0)
		}
		return err
	})
	return stopped, err
}

func (p *processor) generate(py *bridge.Py, src int, max int, out *work.Output, stopped *bool) error {
	n := py.Int(int64(max))
	defer py.DecRef(n)
	now := time.Now().UnixNano()
	ts := py.Int(now)
	defer py.DecRef(ts)
	done, err := p.callPair(py, src, "generate", out, now, n, ts)
	if err != nil {
		return err
	}
	defer py.DecRef(done)
	*stopped, err = py.Truth(done)
	if err != nil {
		return &UserCodeError{Source: p.names[src], Stage: "the generator's stop test", Err: err}
	}
	return nil
}

// callPair calls a runner path method that returns (per-sink outputs,
// second): it collects the outputs into out and returns second (a new
// reference). A user-code error is reported as one, after salvaging what
// was produced before it.
func (p *processor) callPair(py *bridge.Py, src int, method string, out *work.Output, ingest int64, args ...bridge.Object) (bridge.Object, error) {
	r, err := py.CallMethod(p.paths[src], method, args...)
	if err != nil {
		p.salvage(py, src, out.Sinks)
		return bridge.Object{}, p.userError(py, src, err)
	}
	defer py.DecRef(r)
	outs, err := py.Item(r, 0)
	if err != nil {
		return bridge.Object{}, fmt.Errorf("runner result: %w", err)
	}
	err = p.collect(py, outs, out.Sinks)
	if p.m.on && err == nil {
		now := nowNs()
		p.completed(src, p.count(py, outs, len(out.Sinks)), now, ingest, ingest)
	}
	py.DecRef(outs)
	if err != nil {
		return bridge.Object{}, err
	}
	second, err := py.Item(r, 1)
	if err != nil {
		return bridge.Object{}, fmt.Errorf("runner result: %w", err)
	}
	return second, nil
}

func (p *processor) collect(py *bridge.Py, r bridge.Object, out [][]byte) error {
	for s := range out {
		item, err := py.Item(r, s)
		if err != nil {
			return fmt.Errorf("runner result: %w", err)
		}
		v, err := py.BytesView(item)
		if err == nil && len(v) > 0 {
			out[s] = append(out[s], v...)
		}
		py.DecRef(item)
		if err != nil {
			return fmt.Errorf("runner result: %w", err)
		}
	}
	return nil
}

// salvage adds to out what the failed batch produced before the failure.
func (p *processor) salvage(py *bridge.Py, src int, out [][]byte) {
	sv, err := py.GetAttr(p.paths[src], "salvage")
	if err != nil {
		return
	}
	defer py.DecRef(sv)
	if !py.IsNone(sv) {
		if err := p.collect(py, sv, out); err != nil {
			// Not fatal on its own: the user error being reported is.
			p.log.Warn("output produced before the failure could not be read", "pipeline", p.names[src], "err", err)
		}
	}
}

// hookError is the UserCodeError of a failure of the module's serialize
// or deserialize hook in the runner's last take_envelopes or resume (its
// failed_hook note), or nil if the failure was something else.
func (p *processor) hookError(py *bridge.Py, err error) error {
	note, gerr := py.GetAttr(p.runner, "failed_hook")
	if gerr != nil {
		return nil
	}
	defer py.DecRef(note)
	if py.IsNone(note) {
		return nil
	}
	parts, ierr := py.Items(note)
	defer func() {
		for _, o := range parts {
			py.DecRef(o)
		}
	}()
	if ierr != nil || len(parts) != 3 {
		return nil
	}
	hook, _ := py.GoString(parts[0])
	ue := &UserCodeError{Err: err, Summary: "Serialization failed",
		Stage: "the module's serialize hook (a message for another worker)"}
	switch hook {
	case "deserialize":
		ue.Summary = "Deserialization failed"
		ue.Stage = "the module's deserialize hook (a message from another worker)"
	case "unpickle":
		ue.Summary = "Deserialization failed"
		ue.Stage = "unpickling messages from another worker (a class's __setstate__ or __reduce__)"
	}
	if pi, ierr := py.GoInt(parts[1]); ierr == nil && pi >= 0 && int(pi) < len(p.names) {
		ue.Source = p.names[pi]
	}
	if !py.IsNone(parts[2]) {
		ue.Input, _ = py.GoString(parts[2])
	}
	return ue
}

// userError adds the runner's note of the failing stage and message.
func (p *processor) userError(py *bridge.Py, src int, err error) error {
	ue := &UserCodeError{Source: p.names[src], Stage: "a stage", Err: err}
	failed, ferr := py.GetAttr(p.paths[src], "failed")
	if ferr != nil {
		return ue
	}
	defer py.DecRef(failed)
	if py.IsNone(failed) {
		return ue
	}
	if st, err := py.Item(failed, 0); err == nil {
		ue.Stage, _ = py.GoString(st)
		py.DecRef(st)
	}
	if in, err := py.Item(failed, 1); err == nil {
		if !py.IsNone(in) {
			ue.Input, _ = py.GoString(in)
		}
		py.DecRef(in)
	}
	return ue
}

// framing says how a source's frames are found: in Go when the decoder
// uses the stock payload_length with a plain integer format (Length set),
// else by the runner inside the interpreter, per chunk of bytes read
// (Raw: the decoder's own payload_length is called there, with no round
// trip per frame).
type framing struct {
	HeaderLen int
	Length    source.LengthFunc
	Raw       bool
}

// framingOf inspects a source's decoder. Must run inside Do.
func framingOf(py *bridge.Py, decoder bridge.Object, srcName string) (framing, error) {
	hlo, err := py.CallMethod(decoder, "header_length")
	if err != nil {
		return framing{}, fmt.Errorf("the decoder of source %q: header_length() failed: %w", srcName, err)
	}
	hl, err := py.GoInt(hlo)
	py.DecRef(hlo)
	if err != nil || hl < 1 || hl > 8 {
		return framing{}, bad("the decoder of source %q: header_length() must return an int from 1 to 8, got %v", srcName, hl)
	}
	mod, err := py.Import("wallaroo._runner")
	if err != nil {
		return framing{}, err
	}
	defer py.DecRef(mod)
	fn, err := py.GetAttr(mod, "stock_length_fmt")
	if err != nil {
		return framing{}, err
	}
	defer py.DecRef(fn)
	fo, err := py.Call(fn, decoder)
	if err != nil {
		return framing{}, fmt.Errorf("the decoder of source %q: %w", srcName, err)
	}
	defer py.DecRef(fo)
	if !py.IsNone(fo) {
		format, err := py.GoString(fo)
		if err == nil {
			n, f, perr := source.ParseLengthFormat(format)
			if perr == nil {
				if n != int(hl) {
					return framing{}, bad("the decoder of source %q: header_length %d does not match length_fmt %q, which reads %d bytes", srcName, hl, format, n)
				}
				return framing{HeaderLen: n, Length: f}, nil
			}
		}
	}
	return framing{HeaderLen: int(hl), Raw: true}, nil
}
