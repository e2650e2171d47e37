package host

import (
	"fmt"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/topology"
)

// translator turns the application tuple that build_application returned
// into a topology.Spec. Every Python object it stores in the Spec (as a
// bridge.Object in a Component, Decoder or Encoder field) is an owned
// reference kept for the life of the process; keep lists them all.
type translator struct {
	py   *bridge.Py
	keep []bridge.Object
}

// buildError is a user error found while reading the tuple.
type buildError struct{ msg string }

func (e *buildError) Error() string { return e.msg }

func bad(format string, args ...any) error { return &buildError{fmt.Sprintf(format, args...)} }

func (t *translator) own(o bridge.Object) bridge.Object {
	t.keep = append(t.keep, o)
	return o
}

// items returns the elements of a list or tuple, owned by t.
func (t *translator) items(o bridge.Object, what string) ([]bridge.Object, error) {
	if !t.py.IsList(o) && !t.py.IsTuple(o) {
		return nil, bad("%s must be a list or tuple, got %s %s", what, t.py.TypeName(o), t.py.Repr(o))
	}
	its, err := t.py.Items(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	for _, it := range its {
		t.own(it)
	}
	return its, nil
}

func (t *translator) str(o bridge.Object, what string) (string, error) {
	s, err := t.py.GoString(o)
	if err != nil {
		return "", bad("%s must be a string, got %s %s", what, t.py.TypeName(o), t.py.Repr(o))
	}
	return s, nil
}

// spec translates app, the value returned by application_setup.
func (t *translator) spec(app bridge.Object) (*topology.Spec, error) {
	parts, err := t.items(app, "the value returned by application_setup")
	if err != nil {
		return nil, err
	}
	if len(parts) != 4 {
		return nil, bad("application_setup must return the value of wallaroo.build_application(name, pipeline), a 4-tuple; got %d elements: %s", len(parts), t.py.Repr(app))
	}
	spec := &topology.Spec{}
	if spec.AppName, err = t.str(parts[0], "the application name"); err != nil {
		return nil, err
	}
	root, err := t.py.GoInt(parts[1])
	if err != nil {
		return nil, bad("the root index of the application tuple must be an int, got %s", t.py.TypeName(parts[1]))
	}
	spec.Root = int(root)
	vs, err := t.items(parts[2], "the node list of the application tuple")
	if err != nil {
		return nil, err
	}
	es, err := t.items(parts[3], "the edge list of the application tuple")
	if err != nil {
		return nil, err
	}
	if len(vs) != len(es) {
		return nil, bad("the application tuple has %d nodes but %d edge lists", len(vs), len(es))
	}
	for i := range vs {
		node, err := t.node(i, vs[i], es[i])
		if err != nil {
			return nil, err
		}
		spec.Nodes = append(spec.Nodes, node)
	}
	return spec, nil
}

func (t *translator) node(i int, v, e bridge.Object) (topology.Node, error) {
	node := topology.Node{Left: -1, Right: -1}
	edges, err := t.items(e, fmt.Sprintf("edges of node %d", i))
	if err != nil {
		return node, err
	}
	stages, err := t.items(v, fmt.Sprintf("stages of node %d", i))
	if err != nil {
		return node, err
	}
	switch len(edges) {
	case 0:
		if len(stages) == 0 {
			return node, bad("node %d of the pipeline tree has neither a source nor children", i)
		}
		src, err := t.sourceStage(stages[0])
		if err != nil {
			return node, err
		}
		node.Source = src
		stages = stages[1:]
	case 2:
		l, errL := t.py.GoInt(edges[0])
		r, errR := t.py.GoInt(edges[1])
		if errL != nil || errR != nil {
			return node, bad("the children of node %d must be ints: %s", i, t.py.Repr(e))
		}
		node.Left, node.Right = int(l), int(r)
	default:
		return node, bad("Each node in the Machida pipeline tree should have either 0 or 2 children, but one node had %d", len(edges))
	}
	for j, st := range stages {
		stage, err := t.stage(st)
		if err != nil {
			where := fmt.Sprintf("node %d", i)
			if node.Source != nil {
				where = fmt.Sprintf("pipeline %q", node.Source.Name)
			}
			return node, fmt.Errorf("stage %d of %s: %w", j+1, where, err)
		}
		node.Stages = append(node.Stages, stage)
	}
	return node, nil
}

func (t *translator) command(st bridge.Object) (string, []bridge.Object, error) {
	parts, err := t.items(st, "a stage")
	if err != nil {
		return "", nil, err
	}
	if len(parts) == 0 {
		return "", nil, bad("empty stage tuple")
	}
	cmd, err := t.str(parts[0], "a stage command")
	if err != nil {
		return "", nil, err
	}
	return cmd, parts[1:], nil
}

func (t *translator) sourceStage(st bridge.Object) (*topology.SourceSpec, error) {
	cmd, args, err := t.command(st)
	if err != nil {
		return nil, err
	}
	if cmd != "source" || len(args) != 2 {
		return nil, bad("a pipeline must start with a source (wallaroo.source(name, config)), got %s", t.py.Repr(st))
	}
	name, err := t.str(args[0], "the source name")
	if err != nil {
		return nil, err
	}
	cfg, err := t.items(args[1], fmt.Sprintf("the config of source %q", name))
	if err != nil {
		return nil, err
	}
	if len(cfg) == 0 {
		return nil, bad("source %q has an empty config", name)
	}
	kind, err := t.str(cfg[0], "the source kind")
	if err != nil {
		return nil, err
	}
	src := &topology.SourceSpec{Name: name, Kind: kind}
	switch kind {
	case "tcp":
		if len(cfg) != 4 {
			return nil, bad("TCP source %q: config must be (\"tcp\", host, port, decoder), got %s", name, t.py.Repr(args[1]))
		}
		if src.Host, err = t.str(cfg[1], fmt.Sprintf("the host of source %q", name)); err != nil {
			return nil, err
		}
		if src.Port, err = t.portString(cfg[2], fmt.Sprintf("the port of source %q", name)); err != nil {
			return nil, err
		}
		if err := t.need(cfg[3], fmt.Sprintf("the decoder of source %q", name), "@wallaroo.decoder(header_length, length_fmt)", "header_length", "decode"); err != nil {
			return nil, err
		}
		src.Decoder = cfg[3]
	case "source_connector":
		// ("source_connector", name, host, port, encoder, decoder): the
		// engine listens like a TCP source; the connector script connects
		// and streams frames that the (connector) decoder frames and
		// decodes. The encoder is the script's, not the engine's.
		if len(cfg) != 6 {
			return nil, bad("source connector %q: config must be (\"source_connector\", name, host, port, encoder, decoder), got %s", name, t.py.Repr(args[1]))
		}
		if src.Host, err = t.str(cfg[2], fmt.Sprintf("the host of source connector %q", name)); err != nil {
			return nil, err
		}
		if src.Port, err = t.portString(cfg[3], fmt.Sprintf("the port of source connector %q", name)); err != nil {
			return nil, err
		}
		if err := t.need(cfg[5], fmt.Sprintf("the decoder of source connector %q", name), "@wallaroo.experimental.stream_message_decoder", "header_length", "decode"); err != nil {
			return nil, err
		}
		src.Decoder = cfg[5]
	case "gen":
		if len(cfg) != 2 {
			return nil, bad("generator source %q: config must be (\"gen\", generator), got %s", name, t.py.Repr(args[1]))
		}
		if err := t.need(cfg[1], fmt.Sprintf("the generator of source %q", name), "an object with initial_value() and apply(value) in wallaroo.GenSourceConfig", "initial_value", "apply"); err != nil {
			return nil, err
		}
		src.Decoder = cfg[1]
	default:
		return nil, bad("source %q: source kind %q is not supported by this engine yet (supported: tcp, gen, source_connector)", name, kind)
	}
	return src, nil
}

// portString accepts a port given as str, bytes or int.
func (t *translator) portString(o bridge.Object, what string) (string, error) {
	if t.py.IsInt(o) {
		n, err := t.py.GoInt(o)
		if err != nil {
			return "", err
		}
		return fmt.Sprint(n), nil
	}
	return t.str(o, what)
}

func (t *translator) need(o bridge.Object, what, hint string, methods ...string) error {
	for _, m := range methods {
		if !t.py.HasAttr(o, m) {
			return bad("%s is %s, which has no %s() method; use %s", what, t.py.Repr(o), m, hint)
		}
	}
	return nil
}

func (t *translator) stage(st bridge.Object) (topology.Stage, error) {
	cmd, args, err := t.command(st)
	if err != nil {
		return topology.Stage{}, err
	}
	if len(args) != 1 {
		return topology.Stage{}, bad("stage %s must have one argument, got %d", t.py.Repr(st), len(args))
	}
	arg := args[0]
	switch cmd {
	case "to", "to_state":
		s := topology.Stage{Kind: topology.Computation, Component: arg}
		hint := "@wallaroo.computation(name) or @wallaroo.computation_multi(name)"
		if cmd == "to_state" {
			s.Kind = topology.StateComputation
			hint = "@wallaroo.state_computation(name, state) or @wallaroo.state_computation_multi(name, state)"
			if err := t.need(arg, "the state computation", hint, "initial_state"); err != nil {
				return s, err
			}
		}
		s.Multi = t.py.HasAttr(arg, "compute_multi")
		if !s.Multi {
			if err := t.need(arg, "the computation given to to()", hint, "compute"); err != nil {
				return s, err
			}
		}
		s.Name, err = t.componentName(arg)
		return s, err
	case "key_by":
		if err := t.need(arg, "the key extractor given to key_by()", "@wallaroo.key_extractor", "extract_key"); err != nil {
			return topology.Stage{}, err
		}
		return topology.Stage{Kind: topology.KeyBy, Name: t.typeLabel(arg), Component: arg}, nil
	case "to_sink":
		sk, err := t.sink(arg)
		if err != nil {
			return topology.Stage{}, err
		}
		return topology.Stage{Kind: topology.ToSink, Sinks: []topology.SinkSpec{sk}}, nil
	case "to_sinks":
		cfgs, err := t.items(arg, "the list given to to_sinks()")
		if err != nil {
			return topology.Stage{}, err
		}
		s := topology.Stage{Kind: topology.ToSink, ManySink: true}
		for _, c := range cfgs {
			sk, err := t.sink(c)
			if err != nil {
				return s, err
			}
			s.Sinks = append(s.Sinks, sk)
		}
		return s, nil
	default:
		return topology.Stage{}, bad("unknown stage command %q (Wallaroo 0.6 has to, to_state, key_by, to_sink and to_sinks)", cmd)
	}
}

// componentName calls name() once, as 0.6 did when building the step.
func (t *translator) componentName(o bridge.Object) (string, error) {
	if !t.py.HasAttr(o, "name") {
		return "undefined-name", nil
	}
	n, err := t.py.CallMethod(o, "name")
	if err != nil {
		return "", fmt.Errorf("calling name() of %s: %w", t.py.Repr(o), err)
	}
	defer t.py.DecRef(n)
	if s, err := t.py.GoString(n); err == nil {
		return s, nil
	}
	return t.py.StrValue(n)
}

func (t *translator) typeLabel(o bridge.Object) string {
	tp, err := t.py.GetAttr(o, "__class__")
	if err != nil {
		return t.py.TypeName(o)
	}
	defer t.py.DecRef(tp)
	n, err := t.py.GetAttr(tp, "__name__")
	if err != nil {
		return t.py.TypeName(o)
	}
	defer t.py.DecRef(n)
	s, err := t.py.GoString(n)
	if err != nil {
		return t.py.TypeName(o)
	}
	return s
}

func (t *translator) sink(c bridge.Object) (topology.SinkSpec, error) {
	cfg, err := t.items(c, "a sink config")
	if err != nil {
		return topology.SinkSpec{}, err
	}
	if len(cfg) == 0 {
		return topology.SinkSpec{}, bad("empty sink config")
	}
	kind, err := t.str(cfg[0], "the sink kind")
	if err != nil {
		return topology.SinkSpec{}, err
	}
	sk := topology.SinkSpec{Kind: kind}
	switch kind {
	case "tcp":
		if len(cfg) != 4 {
			return sk, bad("TCP sink: config must be (\"tcp\", host, port, encoder), got %s", t.py.Repr(c))
		}
		if sk.Host, err = t.str(cfg[1], "the host of a TCP sink"); err != nil {
			return sk, err
		}
		if sk.Port, err = t.portString(cfg[2], "the port of a TCP sink"); err != nil {
			return sk, err
		}
		if err := t.need(cfg[3], "the encoder of TCP sink "+sk.Addr(), "@wallaroo.encoder", "encode"); err != nil {
			return sk, err
		}
		sk.Encoder = cfg[3]
	case "sink_connector":
		// ("sink_connector", name, host, port, encoder, decoder): every
		// worker connects to the sink script's port and writes the
		// (connector) encoder's frames verbatim, like a TCP sink.
		if len(cfg) != 6 {
			return sk, bad("sink connector: config must be (\"sink_connector\", name, host, port, encoder, decoder), got %s", t.py.Repr(c))
		}
		if sk.Name, err = t.str(cfg[1], "the name of a sink connector"); err != nil {
			return sk, err
		}
		if sk.Host, err = t.str(cfg[2], "the host of sink connector "+sk.Name); err != nil {
			return sk, err
		}
		if sk.Port, err = t.portString(cfg[3], "the port of sink connector "+sk.Name); err != nil {
			return sk, err
		}
		if err := t.need(cfg[4], "the encoder of sink connector "+sk.Name, "@wallaroo.experimental.stream_message_encoder", "encode"); err != nil {
			return sk, err
		}
		sk.Encoder = cfg[4]
	default:
		return sk, bad("sink kind %q is not supported by this engine yet (supported: tcp, sink_connector)", kind)
	}
	return sk, nil
}
