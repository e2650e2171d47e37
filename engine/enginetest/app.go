package enginetest

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/source"
	"github.com/wallaroo-go/machida/engine/topology"
	"github.com/wallaroo-go/machida/engine/work"
)

// Stage is one Go stage of a fake application. Exactly one of Map, Key
// and State is set.
type Stage struct {
	Name string
	// Map is a stateless computation: zero, one or many outputs.
	Map func(v string) []string
	// Key is a key extractor (key_by).
	Key func(v string) string
	// State is a state computation on the state of the message's key
	// (created as 0 the first time a key is seen).
	State func(v string, state *int) []string
}

func (s Stage) kind() topology.StageKind {
	switch {
	case s.Map != nil:
		return topology.Computation
	case s.Key != nil:
		return topology.KeyBy
	case s.State != nil:
		return topology.StateComputation
	}
	panic(fmt.Sprintf("enginetest: stage %q sets none of Map, Key, State", s.Name))
}

// Path is the pipeline of one source: its decoder (frames are strings),
// its stages and one encoder per sink. The stages are cut into segments
// by the engine's own planner (topology.Path.Segments), so the fake runs
// the cuts the Python runner runs. Node gives each stage the node it
// belongs to (a merge point is where it changes); nil puts them all on
// node 0.
type Path struct {
	Stages []Stage
	Node   []int
	// Encode makes the bytes of one output for each sink; nil writes the
	// output and a newline to every sink.
	Encode func(sink int, v string) []byte
	// Generate, for a generator source, returns the i-th message (from
	// 0) and false once there are no more.
	Generate func(i int) (string, bool)
}

// Processor is a Go stand-in for the Python runner: it implements
// work.Processor with the same segment cuts, ownership table, envelopes
// (encoded with encoding/gob) and state per step, partition and key. Process and
// Generate are called by one goroutine (the loop); the inspection
// methods may be called from others.
type Processor struct {
	Paths      []Path
	Sinks      int
	Partitions int
	// FailOn, if set, is asked before every stage call; an error stops
	// processing there, as an exception in user code does.
	FailOn func(stage, value string) error

	mu     sync.Mutex
	plans  [][]topology.Segment
	own    work.Ownership
	spread int
	// states[step][partition][key]
	states   map[string]map[routing.PartitionID]map[string]*int
	genNext  []int
	calls    []string // "process", "generate" in call order
	resumed  int
	epochs   []uint64
	prepared bool
}

// envelope is one message outside the processor.
type envelope struct {
	Path, Segment int
	Partition     int
	Key           string
	Ingest        int64
	Value         string
}

func (p *Processor) prepare() {
	if p.prepared {
		return
	}
	p.prepared = true
	if p.Partitions == 0 {
		p.Partitions = 16
	}
	p.states = map[string]map[routing.PartitionID]map[string]*int{}
	p.own = work.Ownership{Owner: make([]work.Dest, p.Partitions)}
	p.genNext = make([]int, len(p.Paths))
	for pi, path := range p.Paths {
		tp := topology.Path{}
		for i, st := range path.Stages {
			node := 0
			if path.Node != nil {
				node = path.Node[i]
			}
			ps := topology.PathStage{Stage: topology.Stage{Kind: st.kind(), Name: st.Name}, ID: topology.StepID{Node: node, Index: i}}
			ps.Keyed = st.State != nil && i > 0 && path.Stages[i-1].Key != nil
			tp.Stages = append(tp.Stages, ps)
		}
		_ = pi
		p.plans = append(p.plans, tp.Segments())
	}
}

// SetOwnership implements work.Processor.
func (p *Processor) SetOwnership(o work.Ownership) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prepare()
	if len(o.Owner) != p.Partitions {
		return fmt.Errorf("enginetest: ownership of %d partitions for %d", len(o.Owner), p.Partitions)
	}
	p.own = o
	p.epochs = append(p.epochs, o.Epoch)
	return nil
}

// Process implements work.Processor.
func (p *Processor) Process(items []work.Item, out *work.Output) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prepare()
	p.calls = append(p.calls, "process")
	envs := map[work.Dest][]envelope{}
	defer p.flushEnvelopes(envs, out)
	for _, it := range items {
		switch it.Kind {
		case work.KindBatch:
			b := it.Batch
			for i := 0; i < b.Len(); i++ {
				if err := p.run(b.Source, 0, false, "", string(b.Frame(i)), 0, envs, out); err != nil {
					return err
				}
			}
		case work.KindEnvelopes:
			var recs []envelope
			if err := gob.NewDecoder(bytes.NewReader(it.Envelopes.Data)).Decode(&recs); err != nil {
				return fmt.Errorf("enginetest: envelope batch: %w", err)
			}
			for _, r := range recs {
				p.resumed++
				if err := p.run(r.Path, r.Segment, it.Envelopes.Reroute, r.Key, r.Value, r.Ingest, envs, out); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("enginetest: Process given a %v item", it.Kind)
		}
	}
	return nil
}

func (p *Processor) flushEnvelopes(envs map[work.Dest][]envelope, out *work.Output) {
	dests := make([]int, 0, len(envs))
	for d := range envs {
		dests = append(dests, int(d))
	}
	sort.Ints(dests)
	for _, d := range dests {
		recs := envs[work.Dest(d)]
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(recs); err != nil {
			panic(err) // a []envelope always encodes
		}
		out.Envelopes = append(out.Envelopes, work.Envelopes{Dest: work.Dest(d), Count: len(recs), Data: buf.Bytes()})
	}
}

// Generate implements work.Processor.
func (p *Processor) Generate(src int, max int, out *work.Output) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prepare()
	p.calls = append(p.calls, "generate")
	envs := map[work.Dest][]envelope{}
	defer p.flushEnvelopes(envs, out)
	gen := p.Paths[src].Generate
	for n := 0; n < max; n++ {
		v, ok := gen(p.genNext[src])
		if !ok {
			return true, nil
		}
		p.genNext[src]++
		if err := p.run(src, 0, false, "", v, 0, envs, out); err != nil {
			return false, err
		}
	}
	return false, nil
}

// run takes one message from segment seg of path pi to the sinks (or out
// of the processor at a boundary whose owner is elsewhere); rerouted, it
// is routed at seg's own boundary first (it may leave again).
func (p *Processor) run(pi, seg int, reroute bool, key, v string, ts int64, envs map[work.Dest][]envelope, out *work.Output) error {
	path := p.Paths[pi]
	plan := p.plans[pi]
	if seg < 0 || seg >= len(plan) {
		return fmt.Errorf("enginetest: envelope for segment %d of path %d", seg, pi)
	}
	starts := map[int]int{}
	for i, s := range plan {
		if i > 0 {
			starts[s.Start] = i
		}
	}
	entry := seg
	if reroute {
		entry-- // from checks the boundaries of the segments after entry
	}
	return p.from(pi, path, plan, starts, plan[seg].Start, entry, key, v, ts, envs, out)
}

func (p *Processor) from(pi int, path Path, plan []topology.Segment, starts map[int]int, first, entry int, key, v string, ts int64, envs map[work.Dest][]envelope, out *work.Output) error {
	for i := first; i < len(path.Stages); i++ {
		st := path.Stages[i]
		if s, ok := starts[i]; ok && s > entry {
			if d, part := p.owner(plan[s], key); d != work.Here {
				envs[d] = append(envs[d], envelope{Path: pi, Segment: s, Partition: part, Key: key, Ingest: ts, Value: v})
				return nil
			}
		}
		if p.FailOn != nil {
			if err := p.FailOn(st.Name, v); err != nil {
				return fmt.Errorf("stage %s on %q: %w", st.Name, v, err)
			}
		}
		var outs []string
		switch {
		case st.Key != nil:
			key = st.Key(v)
			continue
		case st.Map != nil:
			outs = st.Map(v)
		case st.State != nil:
			k := key
			if !(i > 0 && path.Stages[i-1].Key != nil) {
				k = topology.SinglePartitionKey
			}
			outs = st.State(v, p.state(st.Name, k))
		}
		for _, o := range outs {
			if err := p.from(pi, path, plan, starts, i+1, entry, key, o, ts, envs, out); err != nil {
				return err
			}
		}
		return nil
	}
	for s := range out.Sinks {
		if path.Encode != nil {
			out.Sinks[s] = append(out.Sinks[s], path.Encode(s, v)...)
		} else {
			out.Sinks[s] = append(out.Sinks[s], v+"\n"...)
		}
	}
	return nil
}

// owner returns where a segment runs for a message with key.
func (p *Processor) owner(seg topology.Segment, key string) (work.Dest, int) {
	switch seg.Kind {
	case topology.SegSpread:
		if len(p.own.Spread) == 0 {
			return work.Here, work.AnyPartition
		}
		d := p.own.Spread[p.spread%len(p.own.Spread)]
		p.spread++
		return d, work.AnyPartition
	case topology.SegSingle:
		key = topology.SinglePartitionKey
	}
	part := routing.PartitionOf([]byte(key), p.Partitions)
	return p.own.Owner[part], int(part)
}

func (p *Processor) state(step, key string) *int {
	byPart := p.states[step]
	if byPart == nil {
		byPart = map[routing.PartitionID]map[string]*int{}
		p.states[step] = byPart
	}
	part := routing.PartitionOf([]byte(key), p.Partitions)
	keys := byPart[part]
	if keys == nil {
		keys = map[string]*int{}
		byPart[part] = keys
	}
	s := keys[key]
	if s == nil {
		s = new(int)
		keys[key] = s
	}
	return s
}

// ExportPartition returns the state of one partition of a step as bytes.
func (p *Processor) ExportPartition(step string, part routing.PartitionID) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prepare()
	m := map[string]int{}
	for k, v := range p.states[step][part] {
		m[k] = *v
	}
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(m)
	return buf.Bytes(), err
}

// ImportPartition adds exported state; keys of another partition are refused.
func (p *Processor) ImportPartition(step string, part routing.PartitionID, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prepare()
	var m map[string]int
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&m); err != nil {
		return fmt.Errorf("enginetest: partition %d of step %s: %w", part, step, err)
	}
	for k, v := range m {
		if routing.PartitionOf([]byte(k), p.Partitions) != part {
			return errors.New("enginetest: key " + k + " imported into the wrong partition")
		}
		*p.state(step, k) = v
	}
	return nil
}

// DropPartition forgets the state of one partition of a step.
func (p *Processor) DropPartition(step string, part routing.PartitionID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.states[step], part)
}

// States returns key -> state of a step, over every partition.
func (p *Processor) States(step string) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string]int{}
	for _, keys := range p.states[step] {
		for k, v := range keys {
			m[k] = *v
		}
	}
	return m
}

// Calls returns the processor calls so far ("process", "generate").
func (p *Processor) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// Resumed returns how many envelopes were run from their segment.
func (p *Processor) Resumed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resumed
}

// Epochs returns the ownership epochs applied, in order.
func (p *Processor) Epochs() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.epochs...)
}

// Frames returns a batch of frames for source src.
func Frames(src int, frames ...string) source.Batch {
	b := source.Batch{Source: src}
	for _, f := range frames {
		b.Buf = append(b.Buf, f...)
		b.Ends = append(b.Ends, int32(len(b.Buf)))
	}
	return b
}
