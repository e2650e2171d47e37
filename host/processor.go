package host

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/source"
	"github.com/wallaroo-go/machida/engine/topology"
)

// processor implements worker.Processor with the private runner module
// wallaroo._runner: one runner Path per source, whose process(frames) runs
// a whole batch through the application in one call. It holds owned
// references (paths, bound methods) for the life of the process; they are
// only touched inside Interp.Do.
type processor struct {
	in      *bridge.Interp
	paths   []bridge.Object // runner Path objects, by source index
	process []bridge.Object // their bound process methods
	names   []string        // source names
	runner  bridge.Object   // the wallaroo._runner.Runner (owned)
	// stageNumbers maps the runner's step ids ("node.index") to the
	// stage ids the external channel reports.
	stageNumbers map[string]string
}

// UserCodeError is an exception raised by user code while processing.
type UserCodeError struct {
	Source string // pipeline (source) name
	Stage  string // e.g. "computation 'split into words'"
	Input  string // repr of the message being processed, if known
	Err    error  // *bridge.PyError, or a conversion error
}

func (e *UserCodeError) Error() string {
	msg := fmt.Sprintf("user code failed in %s of pipeline %q", e.Stage, e.Source)
	if e.Input != "" {
		msg += " while processing " + e.Input
	}
	return msg + ": " + e.Err.Error()
}

func (e *UserCodeError) Unwrap() error { return e.Err }

const (
	kindComputation = "computation"
	kindState       = "state"
	kindKeyBy       = "key_by"
)

// newProcessor builds the runner paths. Must run inside Do.
func newProcessor(in *bridge.Interp, py *bridge.Py, paths []topology.Path, table routing.Table, me routing.WorkerName, hooks bridge.Object) (*processor, error) {
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

	local := make([]bridge.Object, 0, table.Partitions())
	for _, l := range table.Local(me) {
		v := int64(0)
		if l {
			v = 1
		}
		local = append(local, keep(py.Int(v)))
	}
	localList, err := py.NewList(local)
	if err != nil {
		return nil, err
	}
	keep(localList)
	runnerCls, err := py.GetAttr(mod, "Runner")
	if err != nil {
		return nil, err
	}
	keep(runnerCls)
	if hooks.IsZero() {
		hooks = keep(py.None())
	}
	runner, err := py.Call(runnerCls, keep(py.Int(int64(table.Partitions()))), localList, hooks)
	if err != nil {
		return nil, fmt.Errorf("create the runner: %w", err)
	}
	keep(runner)

	p := &processor{in: in, runner: py.IncRef(runner), stageNumbers: map[string]string{}}
	for _, path := range paths {
		var stages []bridge.Object
		for _, st := range path.Stages {
			var kind string
			switch st.Kind {
			case topology.Computation:
				kind = kindComputation
			case topology.StateComputation:
				kind = kindState
			case topology.KeyBy:
				kind = kindKeyBy
			case topology.ToSink:
				continue
			}
			flag := func(b bool) bridge.Object {
				if b {
					return keep(py.Int(1))
				}
				return keep(py.Int(0))
			}
			tup, err := py.NewTuple([]bridge.Object{
				keep(py.Str(kind)), st.Component.(bridge.Object), keep(py.Str(st.Name)),
				keep(py.Str(st.ID.String())), flag(st.Multi), flag(st.Keyed),
			})
			if err != nil {
				return nil, err
			}
			stages = append(stages, keep(tup))
		}
		stageList, err := py.NewList(stages)
		if err != nil {
			return nil, err
		}
		keep(stageList)
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
		po, err := py.CallMethod(runner, method, keep(py.Str(path.Source.Name)), path.Source.Decoder.(bridge.Object), stageList, encList)
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
	}
	return p, nil
}

// Process implements worker.Processor: one Do (one GIL acquisition) for
// all the batches, one runner call per batch.
func (p *processor) Process(batches []source.Batch, out [][]byte) error {
	return p.in.Do(func(py *bridge.Py) error {
		for i := range batches {
			b := &batches[i]
			r, err := py.CallFrames(p.process[b.Source], b.Buf, b.Ends)
			if err != nil {
				p.salvage(py, b.Source, out)
				return p.userError(py, b.Source, err)
			}
			err = p.collect(py, r, out)
			py.DecRef(r)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// StateEntities implements worker.Queries: the keys of every state object
// this interpreter holds, per state stage id. Keys are shown as text
// (UTF-8, invalid bytes replaced).
func (p *processor) StateEntities() (map[string][]string, error) {
	out := map[string][]string{}
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
				id, err := py.GoString(step)
				if err != nil {
					return err
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
				if n, ok := p.stageNumbers[id]; ok {
					id = n
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

// Generate implements worker.Processor for generator sources.
func (p *processor) Generate(src int, max int, out [][]byte) (stopped bool, err error) {
	err = p.in.Do(func(py *bridge.Py) error {
		n := py.Int(int64(max))
		defer py.DecRef(n)
		r, err := py.CallMethod(p.paths[src], "generate", n)
		if err != nil {
			p.salvage(py, src, out)
			return p.userError(py, src, err)
		}
		defer py.DecRef(r)
		outs, err := py.Item(r, 0)
		if err != nil {
			return fmt.Errorf("runner result: %w", err)
		}
		err = p.collect(py, outs, out)
		py.DecRef(outs)
		if err != nil {
			return err
		}
		done, err := py.Item(r, 1)
		if err != nil {
			return fmt.Errorf("runner result: %w", err)
		}
		defer py.DecRef(done)
		stopped, err = py.Truth(done)
		if err != nil {
			return &UserCodeError{Source: p.names[src], Stage: "the generator's stop test", Err: err}
		}
		return nil
	})
	return stopped, err
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
			fmt.Fprintf(os.Stderr, "warning: output produced before the failure could not be read: %v\n", err)
		}
	}
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

// lengthFunc returns how the source frames this decoder: in Go when the
// decoder uses the stock payload_length with a plain integer format, else
// by calling its payload_length on the executor for every header.
func lengthFunc(in *bridge.Interp, py *bridge.Py, decoder bridge.Object, srcName string) (int, source.LengthFunc, error) {
	hlo, err := py.CallMethod(decoder, "header_length")
	if err != nil {
		return 0, nil, fmt.Errorf("the decoder of source %q: header_length() failed: %w", srcName, err)
	}
	hl, err := py.GoInt(hlo)
	py.DecRef(hlo)
	if err != nil || hl < 1 || hl > 8 {
		return 0, nil, bad("the decoder of source %q: header_length() must return an int from 1 to 8, got %v", srcName, hl)
	}
	mod, err := py.Import("wallaroo._runner")
	if err != nil {
		return 0, nil, err
	}
	defer py.DecRef(mod)
	fn, err := py.GetAttr(mod, "stock_length_fmt")
	if err != nil {
		return 0, nil, err
	}
	defer py.DecRef(fn)
	fo, err := py.Call(fn, decoder)
	if err != nil {
		return 0, nil, fmt.Errorf("the decoder of source %q: %w", srcName, err)
	}
	defer py.DecRef(fo)
	if !py.IsNone(fo) {
		format, err := py.GoString(fo)
		if err == nil {
			n, f, perr := source.ParseLengthFormat(format)
			if perr == nil {
				if n != int(hl) {
					return 0, nil, bad("the decoder of source %q: header_length %d does not match length_fmt %q, which reads %d bytes", srcName, hl, format, n)
				}
				return n, f, nil
			}
		}
	}
	// Custom payload_length: call Python per header.
	dec := py.IncRef(decoder)
	return int(hl), func(header []byte) (int, error) {
		var n int64
		err := in.Do(func(py *bridge.Py) error {
			h := py.Bytes(header)
			defer py.DecRef(h)
			r, err := py.CallMethod(dec, "payload_length", h)
			if err != nil {
				return err
			}
			defer py.DecRef(r)
			n, err = py.GoInt(r)
			return err
		})
		if err != nil {
			var pe *bridge.PyError
			if errors.As(err, &pe) {
				return 0, fmt.Errorf("payload_length() raised %s", pe.Error())
			}
			return 0, fmt.Errorf("payload_length(): %w", err)
		}
		if n < 0 {
			return 0, fmt.Errorf("payload_length() returned %d", n)
		}
		return int(n), nil
	}, nil
}
