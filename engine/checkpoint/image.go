package checkpoint

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Image is one worker's checkpointed state as the engine keeps it between
// checkpoints: for every state step, each key's serialised state, and for
// every generator source its serialised next value. A checkpoint asks
// the interpreter only for what changed since the last one (a Delta) and
// merges it here, so every snapshot file still holds the whole state
// while the processor pays only for the keys that changed.
//
// An Image is owned by one goroutine (the worker's checkpoint driver);
// the byte slices it holds are its own.
type Image struct {
	Steps map[string]map[string][]byte // step id → key → state
	Meta  map[string][]byte            // step id → what its states need to be read (the runner's)
	Gens  map[int][]byte               // path index → next value
	// InFlight is what this worker sent to each other worker (by name)
	// between forwarding the checkpoint's barrier and taking its part:
	// messages of work done before the checkpoint that the receiver
	// takes after its own part. A rollback sends them again. Each
	// checkpoint has its own (a link of a chain does not inherit them).
	InFlight map[string][]Batch
}

// Batch is one batch of envelopes as it went on a link: how many, and
// the processor's serialisation of them.
type Batch struct {
	Count uint32
	Data  []byte
}

// NewImage returns an empty image.
func NewImage() *Image {
	return &Image{Steps: map[string]map[string][]byte{}, Meta: map[string][]byte{}, Gens: map[int][]byte{}}
}

// StepDelta is one state step's part of a Delta, in the layout the
// Python runner makes (checkpoint_take): the keys' bytes run together,
// the states' bytes run together, and Lens packs, as native-order
// uint32s, the length of each key and then of each state. Meta is opaque
// to the engine (the runner's description of the step's states, such as
// their class); empty keeps the image's.
type StepDelta struct {
	Step                     string
	Keys, States, Lens, Meta []byte
}

// Delta is what the processor hands over at a checkpoint: the states of
// the keys changed since the last checkpoint (all of them if Full), and
// every generator's position.
type Delta struct {
	Full     bool
	Steps    []StepDelta
	Gens     map[int][]byte
	InFlight map[string][]Batch // see Image.InFlight
}

// Count is the number of keys d carries.
func (d Delta) Count() int {
	n := 0
	for _, s := range d.Steps {
		n += len(s.Lens) / 8
	}
	return n
}

// Split checks a StepDelta's layout and calls f with each key and state
// (aliasing the delta's buffers).
func (s StepDelta) Split(f func(key string, state []byte)) error {
	if len(s.Lens)%8 != 0 {
		return fmt.Errorf("%w: step %s: %d bytes of lengths, not pairs of uint32", ErrCorrupt, s.Step, len(s.Lens))
	}
	n := len(s.Lens) / 8
	kp, sp := 0, 0
	for i := 0; i < n; i++ {
		kl := int(binary.NativeEndian.Uint32(s.Lens[4*i:]))
		sl := int(binary.NativeEndian.Uint32(s.Lens[4*(n+i):]))
		if kp+kl > len(s.Keys) || sp+sl > len(s.States) {
			return fmt.Errorf("%w: step %s: entry %d of %d runs past the data", ErrCorrupt, s.Step, i+1, n)
		}
		f(string(s.Keys[kp:kp+kl]), s.States[sp:sp+sl:sp+sl])
		kp += kl
		sp += sl
	}
	if kp != len(s.Keys) || sp != len(s.States) {
		return fmt.Errorf("%w: step %s: %d bytes of keys and %d of states left over", ErrCorrupt, s.Step, len(s.Keys)-kp, len(s.States)-sp)
	}
	return nil
}

// Apply merges d: a full delta replaces the image, any other updates the
// keys it carries. The image keeps its own copies of a partial delta's
// states (a few changed keys must not pin a whole delta's buffer).
func (im *Image) Apply(d Delta) error {
	if d.Full {
		im.Steps = map[string]map[string][]byte{}
		im.Meta = map[string][]byte{}
	}
	for _, s := range d.Steps {
		if len(s.Meta) > 0 {
			im.Meta[s.Step] = s.Meta
		}
		m := im.Steps[s.Step]
		if m == nil {
			m = map[string][]byte{}
			im.Steps[s.Step] = m
		}
		err := s.Split(func(k string, st []byte) {
			if !d.Full {
				st = append([]byte(nil), st...)
			}
			m[k] = st
		})
		if err != nil {
			return err
		}
	}
	for pi, v := range d.Gens {
		im.Gens[pi] = v
	}
	im.InFlight = d.InFlight
	return nil
}

// Entries is the number of keys and generator positions in the image.
func (im *Image) Entries() int {
	n := len(im.Gens)
	for _, m := range im.Steps {
		n += len(m)
	}
	return n
}

// Section names: "state <step id>" and "generator <path index>".
const (
	stateSection    = "state "
	metaSection     = "meta "
	genSection      = "generator "
	inFlightSection = "in flight to "
)

// Sections lays the image out for a snapshot file: one section per state
// step (u32 count, then per key: u32 key length, key, u32 state length,
// state, in no particular order), the step's meta if any, and one
// section per generator.
func (im *Image) Sections() []Section {
	steps := make([]string, 0, len(im.Steps))
	for s := range im.Steps {
		steps = append(steps, s)
	}
	sort.Strings(steps)
	var out []Section
	for _, s := range steps {
		m := im.Steps[s]
		size := 4
		for k, st := range m {
			size += 8 + len(k) + len(st)
		}
		b := make([]byte, 0, size)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		for k, st := range m {
			b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
			b = append(b, k...)
			b = binary.BigEndian.AppendUint32(b, uint32(len(st)))
			b = append(b, st...)
		}
		out = append(out, Section{Name: stateSection + s, Data: b})
		if meta := im.Meta[s]; len(meta) > 0 {
			out = append(out, Section{Name: metaSection + s, Data: meta})
		}
	}
	gens := make([]int, 0, len(im.Gens))
	for pi := range im.Gens {
		gens = append(gens, pi)
	}
	sort.Ints(gens)
	for _, pi := range gens {
		out = append(out, Section{Name: genSection + strconv.Itoa(pi), Data: im.Gens[pi]})
	}
	peers := make([]string, 0, len(im.InFlight))
	for w := range im.InFlight {
		peers = append(peers, w)
	}
	sort.Strings(peers)
	for _, w := range peers {
		bs := im.InFlight[w]
		if len(bs) == 0 {
			continue
		}
		// u32 batches, then per batch: u32 count, u32 length, data.
		b := binary.BigEndian.AppendUint32(nil, uint32(len(bs)))
		for _, x := range bs {
			b = binary.BigEndian.AppendUint32(b, x.Count)
			b = binary.BigEndian.AppendUint32(b, uint32(len(x.Data)))
			b = append(b, x.Data...)
		}
		out = append(out, Section{Name: inFlightSection + w, Data: b})
	}
	return out
}

// decodeInFlight reads an in-flight section.
func decodeInFlight(b []byte) ([]Batch, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%d bytes, no count", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n)*8 > uint64(len(b)) {
		return nil, fmt.Errorf("%d batches cannot fit in %d bytes", n, len(b))
	}
	out := make([]Batch, 0, n)
	for i := uint32(0); i < n; i++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("batch %d of %d cut short", i+1, n)
		}
		c, l := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
		if c == 0 || uint64(l) > uint64(len(b)-8) {
			return nil, fmt.Errorf("batch %d of %d: %d envelopes in %d bytes, %d left", i+1, n, c, l, len(b)-8)
		}
		out = append(out, Batch{Count: c, Data: b[8 : 8+l : 8+l]})
		b = b[8+l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the last batch", len(b))
	}
	return out, nil
}

// ImageOf reads the sections Sections made (other sections are left
// alone, for later versions); anything malformed wraps ErrCorrupt.
func ImageOf(secs []Section) (*Image, error) {
	im := NewImage()
	for _, sec := range secs {
		switch {
		case strings.HasPrefix(sec.Name, stateSection):
			step := sec.Name[len(stateSection):]
			m, err := decodeStates(sec.Data)
			if err != nil {
				return nil, fmt.Errorf("%w: section %q: %v", ErrCorrupt, sec.Name, err)
			}
			im.Steps[step] = m
		case strings.HasPrefix(sec.Name, metaSection):
			im.Meta[sec.Name[len(metaSection):]] = sec.Data
		case strings.HasPrefix(sec.Name, genSection):
			pi, err := strconv.Atoi(sec.Name[len(genSection):])
			if err != nil || pi < 0 {
				return nil, fmt.Errorf("%w: section %q: not a generator's number", ErrCorrupt, sec.Name)
			}
			im.Gens[pi] = sec.Data
		case strings.HasPrefix(sec.Name, inFlightSection):
			w := sec.Name[len(inFlightSection):]
			bs, err := decodeInFlight(sec.Data)
			if err != nil || w == "" {
				return nil, fmt.Errorf("%w: section %q: %v", ErrCorrupt, sec.Name, err)
			}
			if im.InFlight == nil {
				im.InFlight = map[string][]Batch{}
			}
			im.InFlight[w] = bs
		}
	}
	return im, nil
}

func decodeStates(b []byte) (map[string][]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%d bytes, no count", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n)*8 > uint64(len(b)) {
		return nil, fmt.Errorf("%d entries cannot fit in %d bytes", n, len(b))
	}
	m := make(map[string][]byte, n)
	field := func() ([]byte, bool) {
		if len(b) < 4 {
			return nil, false
		}
		l := binary.BigEndian.Uint32(b)
		if uint64(l) > uint64(len(b)-4) {
			return nil, false
		}
		f := b[4 : 4+l : 4+l]
		b = b[4+l:]
		return f, true
	}
	for i := uint32(0); i < n; i++ {
		k, ok1 := field()
		st, ok2 := field()
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("entry %d of %d cut short", i+1, n)
		}
		m[string(k)] = st
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the last entry", len(b))
	}
	return m, nil
}

// Deltas lays the image out the way the runner's checkpoint_restore
// reads it: one StepDelta per step, with every key.
func (im *Image) Deltas() []StepDelta {
	steps := make([]string, 0, len(im.Steps))
	for s := range im.Steps {
		steps = append(steps, s)
	}
	sort.Strings(steps)
	out := make([]StepDelta, 0, len(steps))
	for _, s := range steps {
		m := im.Steps[s]
		var ks, ss int
		for k, st := range m {
			ks += len(k)
			ss += len(st)
		}
		d := StepDelta{Step: s, Keys: make([]byte, 0, ks), States: make([]byte, 0, ss), Lens: make([]byte, 8*len(m)), Meta: im.Meta[s]}
		i := 0
		for k, st := range m {
			d.Keys = append(d.Keys, k...)
			d.States = append(d.States, st...)
			binary.NativeEndian.PutUint32(d.Lens[4*i:], uint32(len(k)))
			binary.NativeEndian.PutUint32(d.Lens[4*(len(m)+i):], uint32(len(st)))
			i++
		}
		out = append(out, d)
	}
	return out
}

// Merge applies the image read from one link of a chain onto im: a whole
// snapshot (whole) replaces it, a link updates the keys it holds; the
// messages in flight are always the part's own.
func (im *Image) Merge(part *Image, whole bool) {
	if whole {
		*im = *part
		return
	}
	im.InFlight = part.InFlight
	for step, m := range part.Steps {
		dst := im.Steps[step]
		if dst == nil {
			im.Steps[step] = m
			continue
		}
		for k, v := range m {
			dst[k] = v
		}
	}
	for step, meta := range part.Meta {
		im.Meta[step] = meta
	}
	for pi, v := range part.Gens {
		im.Gens[pi] = v
	}
}
