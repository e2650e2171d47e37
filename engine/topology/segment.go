package topology

import "fmt"

// SegmentKind says why a path is cut where a segment starts: what decides
// which worker or interpreter runs the segment.
type SegmentKind int

const (
	// SegSource is the first segment of a path: the decoder (or
	// generator), and whatever follows it up to the first cut. It runs
	// where the source is.
	SegSource SegmentKind = iota + 1
	// SegSpread starts with the first stateless computation after a
	// source, or after a merge of pipelines that do not end in key_by.
	// 0.6 gives each such message a random key, so the chain may run on
	// any worker ("any" partition).
	SegSpread
	// SegKeyed starts with a state or stateless computation directly
	// after key_by: it runs where the partition of the message's key is
	// owned (0.6 routes both by the key; spec 2.2, 2.4).
	SegKeyed
	// SegSingle starts with a state computation with no key_by directly
	// before it: every message has the key SinglePartitionKey, so one
	// partition (and one owner) holds its whole state.
	SegSingle
)

func (k SegmentKind) String() string {
	switch k {
	case SegSource:
		return "source"
	case SegSpread:
		return "spread"
	case SegKeyed:
		return "keyed"
	case SegSingle:
		return "single-partition"
	}
	return fmt.Sprintf("SegmentKind(%d)", int(k))
}

// Segment is a run of a path's stages that always runs in one place, as
// one fused loop. Start is the index in Path.Stages of its first stage;
// the segment ends where the next begins (the last one at the path's
// end). The source segment starts at 0 and may be empty of stages (a
// source followed directly by a state computation: then only the decoder
// runs there).
type Segment struct {
	Kind  SegmentKind
	Start int
}

// Segments cuts the path where a message may change owner (see the
// SegmentKind constants): before every state computation, before every
// stateless computation directly after key_by, and before the first
// stateless computation after the source or after a merge (a stage whose
// node differs from the one before it) of pipelines that do not end in
// key_by. key_by never starts a segment: the key is computed at the end
// of the segment before the cut and travels with the message, as 0.6
// folds key_by into the output of the stage before it. So a stateless
// chain after key_by, also after a merge of keyed pipelines (0.6 passes
// their keys through the merge), runs on the owner of the key's
// partition, in per-key order; one after a state computation runs where
// that state is, with the key it had there.
func (p Path) Segments() []Segment {
	segs := []Segment{{Kind: SegSource, Start: 0}}
	// spreadDue is true while the stages since the source or the last
	// merge point have been no stateless computation yet.
	spreadDue := true
	for i, st := range p.Stages {
		if i > 0 && st.ID.Node != p.Stages[i-1].ID.Node {
			// A merge point: the merge node's stages begin. Its inputs
			// all end in key_by or none do (Spec.Validate).
			spreadDue = p.Stages[i-1].Kind != KeyBy
		}
		switch st.Kind {
		case StateComputation:
			kind := SegSingle
			if st.Keyed {
				kind = SegKeyed
			}
			segs = append(segs, Segment{Kind: kind, Start: i})
			spreadDue = false
		case Computation:
			switch {
			case i > 0 && p.Stages[i-1].Kind == KeyBy:
				segs = append(segs, Segment{Kind: SegKeyed, Start: i})
			case spreadDue:
				segs = append(segs, Segment{Kind: SegSpread, Start: i})
			}
			spreadDue = false
		case KeyBy:
			spreadDue = false
		}
	}
	return segs
}
