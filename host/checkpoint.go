package host

import (
	"fmt"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/checkpoint"
)

// The processor's part of checkpoints (worker.Checkpointer). Each method
// takes the interpreter (and so the GIL) for its call; the worker calls
// them on its loop goroutine, or before the loop runs.

// SetTracking turns on the runner's record of the keys whose state a
// state computation was handed, so checkpoints export only those.
func (p *processor) SetTracking(on bool) error {
	return p.in.Do(func(py *bridge.Py) error {
		v := py.Int(0)
		if on {
			py.DecRef(v)
			v = py.Int(1)
		}
		defer py.DecRef(v)
		if err := py.CallMethodDiscard(p.runner, "set_tracking", v); err != nil {
			return fmt.Errorf("turn change tracking on: %w", err)
		}
		return nil
	})
}

// TakeCheckpoint returns the states of the keys changed since the last
// call (every key if full) and every generator's position, copied out of
// the interpreter.
func (p *processor) TakeCheckpoint(full bool) (checkpoint.Delta, error) {
	d := checkpoint.Delta{Full: full, Gens: map[int][]byte{}}
	err := p.in.Do(func(py *bridge.Py) error {
		f := py.Int(0)
		if full {
			py.DecRef(f)
			f = py.Int(1)
		}
		defer py.DecRef(f)
		r, err := py.CallMethod(p.runner, "checkpoint_take", f)
		if err != nil {
			return err
		}
		defer py.DecRef(r)
		parts, err := py.Items(r)
		if err != nil {
			return err
		}
		defer func() {
			for _, o := range parts {
				py.DecRef(o)
			}
		}()
		if len(parts) != 2 {
			return fmt.Errorf("checkpoint_take returned %d items, not (steps, gens)", len(parts))
		}
		steps, err := py.Items(parts[0])
		if err != nil {
			return err
		}
		for _, s := range steps {
			err := tupleBytes(py, s, 5, func(f [][]byte) error {
				d.Steps = append(d.Steps, checkpoint.StepDelta{Step: string(f[0]),
					Keys: clone(f[1]), States: clone(f[2]), Lens: clone(f[3]), Meta: clone(f[4])})
				return nil
			})
			py.DecRef(s)
			if err != nil {
				return err
			}
		}
		gens, err := py.Items(parts[1])
		if err != nil {
			return err
		}
		for _, g := range gens {
			err := func() error {
				defer py.DecRef(g)
				io, err := py.Item(g, 0)
				if err != nil {
					return err
				}
				defer py.DecRef(io)
				pi, err := py.GoInt(io)
				if err != nil {
					return err
				}
				vo, err := py.Item(g, 1)
				if err != nil {
					return err
				}
				defer py.DecRef(vo)
				v, err := py.BytesView(vo)
				if err != nil {
					return err
				}
				d.Gens[int(pi)] = clone(v)
				return nil
			}()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return checkpoint.Delta{}, fmt.Errorf("take this worker's checkpoint: %w", err)
	}
	return d, nil
}

// RestoreCheckpoint replaces every state step's keys by the image's and
// moves each generator back to its position; it says how many entries
// it read.
func (p *processor) RestoreCheckpoint(im *checkpoint.Image) (int, error) {
	n := 0
	err := p.in.Do(func(py *bridge.Py) error {
		var steps []bridge.Object
		defer func() {
			for _, o := range steps {
				py.DecRef(o)
			}
		}()
		for _, d := range im.Deltas() {
			fs := []bridge.Object{py.Str(d.Step), py.Bytes(d.Keys), py.Bytes(d.States), py.Bytes(d.Lens), py.Bytes(d.Meta)}
			t, err := py.NewTuple(fs)
			for _, o := range fs {
				py.DecRef(o)
			}
			if err != nil {
				return err
			}
			steps = append(steps, t)
		}
		var gens []bridge.Object
		defer func() {
			for _, o := range gens {
				py.DecRef(o)
			}
		}()
		for pi, v := range im.Gens {
			fs := []bridge.Object{py.Int(int64(pi)), py.Bytes(v)}
			t, err := py.NewTuple(fs)
			for _, o := range fs {
				py.DecRef(o)
			}
			if err != nil {
				return err
			}
			gens = append(gens, t)
		}
		sl, err := py.NewList(steps)
		if err != nil {
			return err
		}
		defer py.DecRef(sl)
		gl, err := py.NewList(gens)
		if err != nil {
			return err
		}
		defer py.DecRef(gl)
		r, err := py.CallMethod(p.runner, "checkpoint_restore", sl, gl)
		if err != nil {
			return err
		}
		defer py.DecRef(r)
		v, err := py.GoInt(r)
		n = int(v)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("restore the checkpoint: %w", err)
	}
	return n, nil
}

// tupleBytes calls f with the n bytes (or str, as UTF-8) items of tuple t,
// aliasing the interpreter's objects (valid only inside f).
func tupleBytes(py *bridge.Py, t bridge.Object, n int, f func([][]byte) error) error {
	items, err := py.Items(t)
	if err != nil {
		return err
	}
	defer func() {
		for _, o := range items {
			py.DecRef(o)
		}
	}()
	if len(items) != n {
		return fmt.Errorf("expected %d items, got %d", n, len(items))
	}
	out := make([][]byte, n)
	for i, o := range items {
		var b []byte
		if py.IsBytes(o) {
			b, err = py.BytesView(o)
		} else {
			b, err = py.TextView(o)
		}
		if err != nil {
			return err
		}
		out[i] = b
	}
	return f(out)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// setDeadLetter makes the runner skip messages whose user code raises,
// appending each with its traceback to the file at path (--on-error
// skip).
func (p *processor) setDeadLetter(path string) error {
	return p.in.Do(func(py *bridge.Py) error {
		s := py.Str(path)
		defer py.DecRef(s)
		if err := py.CallMethodDiscard(p.runner, "set_dead_letter", s); err != nil {
			return fmt.Errorf("--on-error skip: %w", err)
		}
		return nil
	})
}
