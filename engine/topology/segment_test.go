package topology

import (
	"reflect"
	"testing"
)

func stagesOf(kinds ...StageKind) []PathStage {
	var out []PathStage
	for i, k := range kinds {
		out = append(out, PathStage{Stage: Stage{Kind: k}, ID: StepID{Node: 0, Index: i}})
	}
	markKeyed(out)
	return out
}

func TestSegments_CutsWhereOwnersMayChange(t *testing.T) {
	cases := []struct {
		name   string
		stages []PathStage
		want   []Segment
	}{
		{"word count: split, key_by, count, sink", stagesOf(Computation, KeyBy, StateComputation, ToSink),
			[]Segment{{SegSource, 0}, {SegSpread, 0}, {SegKeyed, 2}}},
		{"key_by straight after the source", stagesOf(KeyBy, StateComputation, Computation, ToSink),
			[]Segment{{SegSource, 0}, {SegKeyed, 1}}},
		{"unkeyed state, then a stateless chain after it stays", stagesOf(StateComputation, Computation, Computation, ToSink),
			[]Segment{{SegSource, 0}, {SegSingle, 0}}},
		{"stateless after key_by is routed by key, not spread", stagesOf(KeyBy, Computation, StateComputation, ToSink),
			[]Segment{{SegSource, 0}, {SegKeyed, 1}, {SegSingle, 2}}},
		{"multi_partition_detector, depth 2", stagesOf(KeyBy, Computation, KeyBy, StateComputation, KeyBy, Computation, KeyBy, StateComputation, ToSink),
			[]Segment{{SegSource, 0}, {SegKeyed, 1}, {SegKeyed, 3}, {SegKeyed, 5}, {SegKeyed, 7}}},
		{"a stateless chain after keyed state stays with it", stagesOf(KeyBy, StateComputation, Computation, Computation, ToSink),
			[]Segment{{SegSource, 0}, {SegKeyed, 1}}},
		{"two state stages", stagesOf(Computation, KeyBy, StateComputation, KeyBy, StateComputation, ToSink),
			[]Segment{{SegSource, 0}, {SegSpread, 0}, {SegKeyed, 2}, {SegKeyed, 4}}},
		{"only a sink", stagesOf(ToSink), []Segment{{SegSource, 0}}},
	}
	for _, c := range cases {
		got := Path{Stages: c.stages}.Segments()
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: segments %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSegments_SpreadAgainAfterAMerge(t *testing.T) {
	// Leaf node 1: one computation; merge node 0: computation, key_by,
	// state, sink. The merge point starts a new spread segment.
	stages := []PathStage{
		{Stage: Stage{Kind: Computation}, ID: StepID{1, 0}},
		{Stage: Stage{Kind: Computation}, ID: StepID{0, 0}},
		{Stage: Stage{Kind: KeyBy}, ID: StepID{0, 1}},
		{Stage: Stage{Kind: StateComputation}, ID: StepID{0, 2}},
		{Stage: Stage{Kind: ToSink}, ID: StepID{0, 3}},
	}
	markKeyed(stages)
	got := Path{Stages: stages}.Segments()
	want := []Segment{{SegSource, 0}, {SegSpread, 0}, {SegSpread, 1}, {SegKeyed, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("segments %v, want %v", got, want)
	}
}

// wantEverySegments compiles spec and checks that every path is cut as
// want.
func wantEverySegments(t *testing.T, spec Spec, want []Segment) {
	t.Helper()
	paths, err := spec.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if got := p.Segments(); !reflect.DeepEqual(got, want) {
			t.Errorf("path %s: segments %v, want %v", p.Source.Name, got, want)
		}
	}
}

func TestSegments_KeyedMergeIsNotSpread(t *testing.T) {
	// a.key_by(k).merge(b.key_by(k)).to(tag).to_sink(tcp): the messages
	// keep their keys through the merge (0.6's pass-through), so the
	// stateless chain after it runs on the owner of the key, in per-key
	// order, and is not dealt out.
	wantEverySegments(t, Spec{AppName: "keyed merge", Root: 1, Nodes: []Node{
		leaf("A", keyBy),
		{Stages: []Stage{comp, sink}, Left: 0, Right: 2},
		leaf("B", keyBy),
	}}, []Segment{{SegSource, 0}, {SegKeyed, 1}})
}

func TestSegments_MarketSpreadShape(t *testing.T) {
	// orders.merge(market_data).key_by(symbol).to(check).to_sink(tcp)
	wantEverySegments(t, Spec{AppName: "market", Root: 1, Nodes: []Node{
		leaf("Orders"),
		{Stages: []Stage{keyBy, state, sink}, Left: 0, Right: 2},
		leaf("Market Data"),
	}}, []Segment{{SegSource, 0}, {SegKeyed, 1}})
}

func TestParseStepID(t *testing.T) {
	for _, id := range []StepID{{0, 0}, {3, 12}} {
		got, err := ParseStepID(id.String())
		if err != nil || got != id {
			t.Errorf("ParseStepID(%q) = %v, %v", id.String(), got, err)
		}
	}
	for _, bad := range []string{"", "1", "1.", "a.b", "1.2.3", "-1.0", "1.2x"} {
		if _, err := ParseStepID(bad); err == nil {
			t.Errorf("ParseStepID(%q) accepted", bad)
		}
	}
}
