package topology

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// StageKind says what a stage does.
type StageKind int

const (
	// Computation is a stateless computation (one output or none).
	Computation StageKind = iota + 1
	// StateComputation runs with the state object of the message's key.
	StateComputation
	// KeyBy computes the key that routes the message into the next stage.
	KeyBy
	// ToSink ends a pipeline in one sink or, with to_sinks, several.
	ToSink
)

func (k StageKind) String() string {
	switch k {
	case Computation:
		return "computation"
	case StateComputation:
		return "state computation"
	case KeyBy:
		return "key_by"
	case ToSink:
		return "sink"
	}
	return fmt.Sprintf("StageKind(%d)", int(k))
}

// Stage is one element of a pipeline.
type Stage struct {
	Kind  StageKind
	Name  string // computation name (name()), or a description for key_by
	Multi bool   // computation_multi / state_computation_multi
	// Component is the user object (computation, key extractor); opaque.
	Component any
	// Sinks are the targets of a ToSink stage (more than one for to_sinks).
	Sinks    []SinkSpec
	ManySink bool // to_sinks rather than to_sink
}

// SourceSpec describes one source.
type SourceSpec struct {
	Name    string // the pipeline name, used in logs and metrics
	Kind    string // "tcp", "gen", "kafka", "kafka-internal", "source_connector"
	Host    string
	Port    string
	Decoder any // opaque user decoder (or generator for "gen")
	// Extra holds kind-specific configuration, opaque here.
	Extra any
}

// Addr returns host:port.
func (s SourceSpec) Addr() string { return s.Host + ":" + s.Port }

// SinkSpec describes one sink.
type SinkSpec struct {
	Kind    string // "tcp", "kafka", "kafka-internal", "sink_connector"
	Name    string // the connector's name (sink connectors)
	Host    string
	Port    string
	Encoder any // opaque user encoder
	Extra   any
}

// Addr returns host:port.
func (s SinkSpec) Addr() string { return s.Host + ":" + s.Port }

// Node is one node of the merge tree: a leaf has a Source and its stages; a
// merge node has Left and Right children and the stages after the merge.
type Node struct {
	Source      *SourceSpec
	Stages      []Stage
	Left, Right int // child node indices for a merge node; -1 for a leaf
}

// IsLeaf reports whether n starts with a source.
func (n Node) IsLeaf() bool { return n.Source != nil }

// Spec is a whole application.
type Spec struct {
	AppName string
	Root    int
	Nodes   []Node
}

// ErrInvalid is wrapped by every validation error. The messages are the
// ones Wallaroo 0.6 printed after "Error: ".
var ErrInvalid = errors.New("invalid application")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// StepID identifies a stage of the spec: the node and the stage's index in
// it. State computations keep their state per StepID, so the same stage
// reached from several sources shares one state table.
type StepID struct {
	Node, Index int
}

func (id StepID) String() string { return fmt.Sprintf("%d.%d", id.Node, id.Index) }

// ParseStepID reads the form String writes ("node.index").
func ParseStepID(s string) (StepID, error) {
	node, index, ok := strings.Cut(s, ".")
	n, err1 := strconv.Atoi(node)
	i, err2 := strconv.Atoi(index)
	if !ok || err1 != nil || err2 != nil || n < 0 || i < 0 {
		return StepID{}, fmt.Errorf("topology: %q is not a step id (node.index)", s)
	}
	return StepID{Node: n, Index: i}, nil
}

// Number is the stage's id as the external channel reports it: a decimal
// integer (Wallaroo 0.6 used routing ids; tools only parse them as
// integers).
func (id StepID) Number() string { return fmt.Sprint(uint64(id.Node+1)<<16 | uint64(id.Index+1)) }

// PathStage is a stage placed on a path.
type PathStage struct {
	Stage
	ID StepID
	// Keyed is true for a state computation that directly follows a key_by
	// (possibly across a merge). Otherwise every message of a state
	// computation uses the single key SinglePartitionKey.
	Keyed bool
}

// SinglePartitionKey is the key of a state computation not directly
// preceded by key_by (one state object for the whole cluster).
const SinglePartitionKey = "single-partition-key"

// Path is the linear route of one source's messages through the stages, up
// to and including the final ToSink stage.
type Path struct {
	Source SourceSpec
	Stages []PathStage
}

// Sinks returns the sinks at the end of the path.
func (p Path) Sinks() []SinkSpec { return p.Stages[len(p.Stages)-1].Sinks }

// Compile validates the spec and returns one path per source, in the order
// the sources appear in a left-to-right walk of the tree (the order in
// which the application enumerated them, e.g. market_spread's Orders
// before Market Data).
func (s *Spec) Compile() ([]Path, error) {
	if len(s.Nodes) == 0 {
		return nil, invalid("the application has no pipeline")
	}
	if s.Root < 0 || s.Root >= len(s.Nodes) {
		return nil, invalid("root node %d is outside the %d nodes of the pipeline tree", s.Root, len(s.Nodes))
	}
	seen := make([]bool, len(s.Nodes))
	var paths []Path
	ends, err := s.walk(s.Root, seen, nil, &paths)
	if err != nil {
		return nil, err
	}
	if !ends.closed {
		return nil, invalid("A pipeline must terminate in a sink!")
	}
	return paths, nil
}

type nodeEnd struct {
	closed  bool
	keyedBy bool // the node's last stage is key_by
}

// walk validates node n and its subtree and appends the paths of its
// sources. suffix is the list of stages that follow this node (from the
// ancestors), which completes each path.
func (s *Spec) walk(n int, seen []bool, suffix []PathStage, paths *[]Path) (nodeEnd, error) {
	if n < 0 || n >= len(s.Nodes) {
		return nodeEnd{}, invalid("the pipeline tree refers to node %d, but it has %d nodes", n, len(s.Nodes))
	}
	if seen[n] {
		return nodeEnd{}, invalid("the pipeline tree is not a tree: node %d is reached twice", n)
	}
	seen[n] = true
	node := s.Nodes[n]
	own := make([]PathStage, 0, len(node.Stages))
	for i, st := range node.Stages {
		own = append(own, PathStage{Stage: st, ID: StepID{n, i}})
	}
	var end nodeEnd
	if node.IsLeaf() {
		if node.Source.Name == "" {
			return end, invalid("a source has an empty name")
		}
	} else {
		left, err := s.walk(node.Left, seen, append(append([]PathStage{}, own...), suffix...), paths)
		if err != nil {
			return end, err
		}
		right, err := s.walk(node.Right, seen, append(append([]PathStage{}, own...), suffix...), paths)
		if err != nil {
			return end, err
		}
		if left.closed || right.closed {
			return end, invalid("You can't merge with a terminated pipeline!")
		}
		if left.keyedBy != right.keyedBy {
			return end, invalid("A pipeline ending with key_by can only be merged with another!")
		}
		end.keyedBy = left.keyedBy
	}
	for i, st := range node.Stages {
		if end.closed {
			return end, invalid("You can't add further stages after a sink!")
		}
		switch st.Kind {
		case Computation, StateComputation:
			end.keyedBy = false
		case KeyBy:
			end.keyedBy = true
		case ToSink:
			if len(st.Sinks) == 0 {
				return end, invalid("You must specify at least one sink when using to_sinks()")
			}
			end.closed = true
			end.keyedBy = false
		default:
			return end, invalid("stage %d of node %d has unknown kind %v", i, n, st.Kind)
		}
	}
	if node.IsLeaf() {
		stages := append(append([]PathStage{}, own...), suffix...)
		markKeyed(stages)
		*paths = append(*paths, Path{Source: *node.Source, Stages: stages})
	}
	return end, nil
}

// markKeyed sets Keyed on state computations directly after a key_by.
func markKeyed(stages []PathStage) {
	for i := range stages {
		if stages[i].Kind == StateComputation && i > 0 && stages[i-1].Kind == KeyBy {
			stages[i].Keyed = true
		}
	}
}
