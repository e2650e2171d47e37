package checkpoint

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// delta builds a StepDelta in the runner's layout.
func delta(step string, kv ...string) StepDelta {
	d := StepDelta{Step: step}
	n := len(kv) / 2
	d.Lens = make([]byte, 8*n)
	for i := 0; i < n; i++ {
		d.Keys = append(d.Keys, kv[2*i]...)
		d.States = append(d.States, kv[2*i+1]...)
		binary.NativeEndian.PutUint32(d.Lens[4*i:], uint32(len(kv[2*i])))
		binary.NativeEndian.PutUint32(d.Lens[4*(n+i):], uint32(len(kv[2*i+1])))
	}
	return d
}

func states(im *Image, step string) map[string]string {
	out := map[string]string{}
	for k, v := range im.Steps[step] {
		out[k] = string(v)
	}
	return out
}

func TestImage_PartialDeltasMergeAndFullReplaces(t *testing.T) {
	im := NewImage()
	require.NoError(t, im.Apply(Delta{Full: true, Steps: []StepDelta{delta("1.2", "a", "A1", "b", "B1")}, Gens: map[int][]byte{0: []byte("g1")}}))
	buf := delta("1.2", "b", "B2", "c", "C1")
	require.NoError(t, im.Apply(Delta{Steps: []StepDelta{buf}, Gens: map[int][]byte{0: []byte("g2")}}))
	buf.States[0] = 'X' // the image kept its own copy
	require.Equal(t, map[string]string{"a": "A1", "b": "B2", "c": "C1"}, states(im, "1.2"))
	require.Equal(t, 4, im.Entries())
	require.NoError(t, im.Apply(Delta{Full: true, Steps: []StepDelta{delta("1.2", "z", "Z")}}))
	require.Equal(t, map[string]string{"z": "Z"}, states(im, "1.2"))
}

func TestImage_SnapshotRoundTrip(t *testing.T) {
	im := NewImage()
	require.NoError(t, im.Apply(Delta{Full: true, Steps: []StepDelta{
		delta("1.2", "a", "A", "", "empty key", "ü", ""),
		delta("3.4", "k", "K"),
	}, Gens: map[int][]byte{2: []byte("pos")}}))
	id, secs, err := Decode(Encode(7, im.Sections()))
	require.NoError(t, err)
	require.EqualValues(t, 7, id)
	back, err := ImageOf(secs)
	require.NoError(t, err)
	require.Equal(t, states(im, "1.2"), states(back, "1.2"))
	require.Equal(t, states(im, "3.4"), states(back, "3.4"))
	require.Equal(t, "pos", string(back.Gens[2]))
	// And back to the runner's layout.
	again := NewImage()
	require.NoError(t, again.Apply(Delta{Full: true, Steps: back.Deltas()}))
	require.Equal(t, states(im, "1.2"), states(again, "1.2"))
}

func TestImage_MalformedIsCorrupt(t *testing.T) {
	bad := delta("1.2", "a", "A")
	bad.States = append(bad.States, 'x')
	err := NewImage().Apply(Delta{Steps: []StepDelta{bad}})
	require.True(t, errors.Is(err, ErrCorrupt), "%v", err)
	bad = delta("1.2", "a", "A")
	bad.Lens = bad.Lens[:5]
	require.True(t, errors.Is(NewImage().Apply(Delta{Steps: []StepDelta{bad}}), ErrCorrupt))
	for _, data := range [][]byte{nil, {0, 0, 0, 9}, {0, 0, 0, 1, 0, 0, 0, 5, 'a'}, {0, 0, 0, 0, 1}} {
		_, err := ImageOf([]Section{{Name: "state 1.2", Data: data}})
		require.True(t, errors.Is(err, ErrCorrupt), "%v: %v", data, err)
	}
	_, err = ImageOf([]Section{{Name: "generator x"}})
	require.True(t, errors.Is(err, ErrCorrupt))
}

func TestImage_MetaTravelsWithItsStep(t *testing.T) {
	d := delta("1.2", "a", "A")
	d.Meta = []byte("class")
	im := NewImage()
	require.NoError(t, im.Apply(Delta{Full: true, Steps: []StepDelta{d}}))
	// A partial delta without meta keeps the step's.
	require.NoError(t, im.Apply(Delta{Steps: []StepDelta{delta("1.2", "b", "B")}}))
	_, secs, err := Decode(Encode(1, im.Sections()))
	require.NoError(t, err)
	back, err := ImageOf(secs)
	require.NoError(t, err)
	require.Equal(t, "class", string(back.Meta["1.2"]))
	ds := back.Deltas()
	require.Len(t, ds, 1)
	require.Equal(t, "class", string(ds[0].Meta))
}

// What was in flight at a checkpoint is the checkpoint's own: it is
// written with its link and read back with it, and a later link of the
// chain does not inherit an earlier one's.
func TestImage_InFlightIsEachCheckpointsOwn(t *testing.T) {
	s := Open(t.TempDir(), "app", "w")
	part := func(inflight map[string][]Batch, kv ...string) []Section {
		im := NewImage()
		require.NoError(t, im.Apply(Delta{Full: true, Steps: []StepDelta{delta("1.1", kv...)}, InFlight: inflight}))
		return im.Sections()
	}
	two := map[string][]Batch{"worker1": {{Count: 2, Data: []byte("ab")}, {Count: 1, Data: []byte("c")}}, "worker2": {{Count: 1, Data: []byte("z")}}}
	require.NoError(t, s.WriteLink(1, 1, part(nil, "a", "1")))
	require.NoError(t, s.WriteLink(2, 1, part(two, "a", "2")))
	require.NoError(t, s.WriteLink(3, 1, part(nil, "b", "3")))
	im, _, err := s.Load(2)
	require.NoError(t, err)
	require.Equal(t, two, im.InFlight)
	im, _, err = s.Load(3)
	require.NoError(t, err)
	require.Empty(t, im.InFlight, "checkpoint 3 had nothing in flight")
	require.Equal(t, map[string]string{"a": "2", "b": "3"}, states(im, "1.1"))

	// A damaged in-flight section is a damaged checkpoint.
	for _, bad := range [][]byte{{0, 0, 0, 1}, {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1}} {
		_, err := ImageOf([]Section{{Name: inFlightSection + "worker1", Data: bad}})
		require.True(t, errors.Is(err, ErrCorrupt), "%v: %v", bad, err)
	}
}
