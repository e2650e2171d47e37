package topology

import (
	"errors"
	"strings"
	"testing"
)

func src(name string) *SourceSpec {
	return &SourceSpec{Name: name, Kind: "tcp", Host: "127.0.0.1", Port: "7010"}
}

var (
	comp  = Stage{Kind: Computation, Name: "c"}
	state = Stage{Kind: StateComputation, Name: "s"}
	keyBy = Stage{Kind: KeyBy, Name: "k"}
	sink  = Stage{Kind: ToSink, Sinks: []SinkSpec{{Kind: "tcp", Host: "h", Port: "1"}}}
)

func leaf(name string, stages ...Stage) Node {
	return Node{Source: src(name), Stages: stages, Left: -1, Right: -1}
}

func TestCompile_MarketSpreadShape(t *testing.T) {
	// orders.merge(market_data).key_by(symbol).to(check).to_sink(tcp)
	spec := Spec{AppName: "market", Root: 1, Nodes: []Node{
		leaf("Orders"),
		{Stages: []Stage{keyBy, state, sink}, Left: 0, Right: 2},
		leaf("Market Data"),
	}}
	paths, err := spec.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || paths[0].Source.Name != "Orders" || paths[1].Source.Name != "Market Data" {
		t.Fatalf("paths = %+v", paths)
	}
	for _, p := range paths {
		if len(p.Stages) != 3 || !p.Stages[1].Keyed || p.Stages[1].ID != (StepID{1, 1}) {
			t.Errorf("path %s stages = %+v", p.Source.Name, p.Stages)
		}
		if len(p.Sinks()) != 1 {
			t.Errorf("sinks = %v", p.Sinks())
		}
	}
}

func TestCompile_KeyedOnlyWhenKeyByDirectlyPrecedes(t *testing.T) {
	spec := Spec{Root: 0, Nodes: []Node{leaf("s", keyBy, comp, state, keyBy, state, state, sink)}}
	paths, err := spec.Compile()
	if err != nil {
		t.Fatal(err)
	}
	var keyed []bool
	for _, st := range paths[0].Stages {
		if st.Kind == StateComputation {
			keyed = append(keyed, st.Keyed)
		}
	}
	if want := []bool{false, true, false}; len(keyed) != 3 || keyed[0] != want[0] || keyed[1] != want[1] || keyed[2] != want[2] {
		t.Errorf("keyed = %v, want %v", keyed, want)
	}
}

func TestCompile_Errors(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"no sink", Spec{Nodes: []Node{leaf("s", comp)}}, "A pipeline must terminate in a sink!"},
		{"stage after sink", Spec{Nodes: []Node{leaf("s", sink, comp)}}, "You can't add further stages after a sink!"},
		{"empty to_sinks", Spec{Nodes: []Node{leaf("s", Stage{Kind: ToSink, ManySink: true})}}, "You must specify at least one sink when using to_sinks()"},
		{"merge closed", Spec{Root: 1, Nodes: []Node{leaf("a", sink), {Stages: []Stage{sink}, Left: 0, Right: 2}, leaf("b")}}, "You can't merge with a terminated pipeline!"},
		{"key_by mismatch", Spec{Root: 1, Nodes: []Node{leaf("a", keyBy), {Stages: []Stage{state, sink}, Left: 0, Right: 2}, leaf("b")}}, "A pipeline ending with key_by can only be merged with another!"},
		{"bad child", Spec{Root: 0, Nodes: []Node{{Stages: []Stage{sink}, Left: 0, Right: 5}}}, "node"},
		{"empty", Spec{}, "no pipeline"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.spec.Compile()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}
