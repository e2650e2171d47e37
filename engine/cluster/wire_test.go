package cluster

import (
	"bytes"
	"errors"
	"github.com/wallaroo-go/machida/engine/barrier"
	"github.com/wallaroo-go/machida/engine/work"
	"io"
	"reflect"
	"slices"
	"testing"
)

// A state is cut into pieces of at most the given size, each saying
// where it lies in the whole; a state that fits is one piece.
func TestState_Pieces(t *testing.T) {
	whole := State{ID: 2, To: "j1", Step: "s", Partition: 5, Data: []byte("0123456789")}
	for _, c := range []struct {
		size int
		want []string
	}{{10, []string{"0123456789"}}, {64, []string{"0123456789"}}, {4, []string{"0123", "4567", "89"}}, {5, []string{"01234", "56789"}}} {
		var got []string
		at := uint64(0)
		for _, p := range whole.Pieces(c.size) {
			if p.Offset != at || p.Total != 10 || p.ID != 2 || p.To != "j1" || p.Partition != 5 {
				t.Errorf("size %d: piece %+v (want offset %d of 10)", c.size, p, at)
			}
			at += uint64(len(p.Data))
			got = append(got, string(p.Data))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("size %d: pieces %q, want %q", c.size, got, c.want)
		}
	}
	if ps := (State{Step: "s"}).Pieces(4); len(ps) != 1 || ps[0].Total != 0 {
		t.Errorf("an empty state: %+v", ps)
	}
}

func TestWire_RoundTrips(t *testing.T) {
	h := Hello{Version: WireVersion, App: "Word Count", Digest: "ab12", PyMajor: 3, Worker: "worker1",
		Channel: DataChannel, Restart: true, Incarnation: 99, Resilient: true}
	if got, err := DecodeHello(h.Encode()); err != nil || got != h {
		t.Errorf("hello: %+v %v", got, err)
	}
	j := Join{Worker: "w", Control: "127.0.0.1:1", Data: "0.0.0.0:2", Joining: 4, Sinks: 2, Afresh: true, NoCheckpoints: true, Frozen: 7, FrozenEpoch: 3}
	if got, err := DecodeJoin(j.Encode()); err != nil || got != j {
		t.Errorf("join: %+v %v", got, err)
	}
	tp := Topology{Workers: []string{"initializer", "w1"}, Data: []string{"a:1", "b:2"},
		Owners: []uint16{0, 1, 1, 0}, Epoch: 3, Metrics: "m:5001", Sinks: []string{"s:7002", "s:7003"}}
	if got, err := DecodeTopology(tp.Encode()); err != nil || !reflect.DeepEqual(got, tp) {
		t.Errorf("topology: %+v %v", got, err)
	}
	rs := Rescale{ID: 9, Phase: PhasePrepare, Topo: tp, Leaving: []string{"w1"}}
	if got, err := DecodeRescale(rs.Encode()); err != nil || !reflect.DeepEqual(got, rs) {
		t.Errorf("rescale: %+v %v", got, err)
	}
	ra := RescaleAck{ID: 9, Phase: PhaseCommit, Err: "no"}
	if got, err := DecodeRescaleAck(ra.Encode()); err != nil || got != ra {
		t.Errorf("rescale ack: %+v %v", got, err)
	}
	ck := Checkpoint{Op: OpRolledBack, ID: 12, Rollback: 3, N: 40, Attempt: 7, Seen: 99, Text: "ok"}
	if got, err := DecodeCheckpoint(ck.Encode()); err != nil || got != ck {
		t.Errorf("checkpoint: %+v %v", got, err)
	}
	if _, err := DecodeCheckpoint(Checkpoint{Op: opEnd}.Encode()); err == nil {
		t.Errorf("checkpoint: an unknown op was taken")
	}
	st := State{ID: 9, To: "w1", Step: "0.2", Partition: 17, Offset: 3, Total: 8, Data: []byte("state")}
	if got, err := DecodeState(st.Encode()); err != nil || !reflect.DeepEqual(got, st) {
		t.Errorf("state: %+v %v", got, err)
	}
	for _, bad := range []State{{Offset: 4, Total: 8, Data: []byte("state")}, {Offset: 9, Total: 8}} {
		if _, err := DecodeState(bad.Encode()); !errors.Is(err, ErrMalformed) {
			t.Errorf("state of %d bytes at %d of %d: %v", len(bad.Data), bad.Offset, bad.Total, err)
		}
	}
	sr := ShrinkRequest{From: "w2", Leaving: []string{"w1", "w3"}}
	if got, err := DecodeShrinkRequest(sr.Encode()); err != nil || !reflect.DeepEqual(got, sr) {
		t.Errorf("shrink request: %+v %v", got, err)
	}
	fence := EnvelopeBatch{Seq: 8, Data: FenceMarker(5)}
	if got, err := DecodeEnvelopeBatch(fence.Encode()); err != nil || !reflect.DeepEqual(got, fence) {
		t.Errorf("fence: %+v %v", got, err)
	}
	b := EnvelopeBatch{Seq: 7, Count: 3, Data: []byte("xyz")}
	if got, err := DecodeEnvelopeBatch(b.Encode()); err != nil || !reflect.DeepEqual(got, b) {
		t.Errorf("batch: %+v %v", got, err)
	}
	r := IdleReply{Round: 2, Idle: true, Sent: 5, Processed: 4}
	if got, err := DecodeIdleReply(r.Encode()); err != nil || got != r {
		t.Errorf("idle reply: %+v %v", got, err)
	}
	var buf bytes.Buffer
	buf.Write(AppendFrame(nil, KindAck, Seq(42)))
	f, err := ReadFrame(&buf)
	if err != nil || f.Kind != KindAck {
		t.Fatalf("frame %+v %v", f, err)
	}
	if n, err := DecodeSeq(f.Payload); err != nil || n != 42 {
		t.Errorf("seq %d %v", n, err)
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Errorf("at the end: %v, want EOF", err)
	}
}

func TestWire_Malformed(t *testing.T) {
	for name, raw := range map[string][]byte{
		"zero length":  {0, 0, 0, 0},
		"huge length":  {0xff, 0xff, 0xff, 0xff},
		"unknown kind": {0, 0, 0, 1, 200},
		"kind zero":    {0, 0, 0, 1, 0},
	} {
		if _, err := ReadFrame(bytes.NewReader(raw)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// A first frame (a hello) claiming 16 MiB is refused before anything
	// is allocated for it.
	if _, err := readFrameMax(bytes.NewReader([]byte{0, 0xff, 0, 0, byte(KindHello)}), maxHandshakeFrame); !errors.Is(err, ErrMalformed) {
		t.Errorf("a 16 MiB hello: %v, want ErrMalformed", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 9, 1, 2})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut short: %v", err)
	}
	if _, err := DecodeHello([]byte{0, 1, 0, 0, 0, 9}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short hello: %v", err)
	}
	if _, err := DecodeSeq(append(Seq(1), 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	if _, err := DecodeEnvelopeBatch(EnvelopeBatch{Seq: 0, Count: 1}.Encode()); !errors.Is(err, ErrMalformed) {
		t.Errorf("sequence 0: %v", err)
	}
	if _, err := DecodeTopology([]byte{0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("topology of 4 billion workers: %v", err)
	}
	bad := Topology{Workers: []string{"i"}, Data: []string{"x:1"}, Owners: []uint16{1}, Epoch: 2}
	if _, err := DecodeTopology(bad.Encode()); !errors.Is(err, ErrMalformed) {
		t.Errorf("a partition owned by worker 1 of 1: %v", err)
	}
	for _, p := range []uint8{0, PhaseUndoRelease + 1, 99} {
		if _, err := DecodeRescale(Rescale{ID: 1, Phase: p}.Encode()); !errors.Is(err, ErrMalformed) {
			t.Errorf("rescale phase %d: %v", p, err)
		}
	}
	for p := PhasePrepare; p <= PhaseUndoRelease; p++ {
		if r, err := DecodeRescale(Rescale{ID: 1, Phase: p}.Encode()); err != nil || r.Phase != p {
			t.Errorf("rescale phase %s: %+v, %v", PhaseName(p), r, err)
		}
	}
	for _, data := range [][]byte{[]byte("x"), nil, []byte("F"), FenceMarker(0), append(FenceMarker(3), 0)} {
		if _, err := DecodeEnvelopeBatch(EnvelopeBatch{Seq: 1, Count: 0, Data: data}.Encode()); !errors.Is(err, ErrMalformed) {
			t.Errorf("a batch of 0 envelopes with data %q (neither a barrier nor a fence): %v", data, err)
		}
	}
	if b, err := DecodeEnvelopeBatch(EnvelopeBatch{Seq: 1, Count: 0, Data: FenceMarker(7)}.Encode()); err != nil {
		t.Errorf("a fence: %v", err)
	} else if _, fence, err := DecodeMarker(b.Data); fence != 7 || err != nil {
		t.Errorf("a fence of rescale 7 read as %d, %v", fence, err)
	}
	if _, fence, err := DecodeMarker(BarrierMarker(barrier.Barrier{ID: 4, Kind: barrier.Checkpoint, Checkpoint: 2})); fence != 0 || err != nil {
		t.Errorf("a barrier marker read as fence %d, %v", fence, err)
	}
}

// FuzzWire feeds arbitrary bytes to the frame reader and every payload
// decoder: none may panic, and whatever decodes must encode back to the
// same bytes.
func FuzzWire(f *testing.F) {
	f.Add(AppendFrame(nil, KindHello, Hello{App: "a", Worker: "w"}.Encode()))
	f.Add(AppendFrame(nil, KindTopology, Topology{Workers: []string{"i"}, Data: []string{"x:1"}}.Encode()))
	f.Add(AppendFrame(nil, KindEnvelopes, EnvelopeBatch{Seq: 1, Count: 1, Data: []byte("d")}.Encode()))
	f.Add(AppendFrame(nil, KindEnvelopes, EnvelopeBatch{Seq: 2, Data: FenceMarker(1)}.Encode()))
	f.Add(AppendFrame(nil, KindEnvelopes, EnvelopeBatch{Seq: 3, Data: BarrierMarker(barrier.Barrier{ID: 1, Kind: barrier.Checkpoint, Checkpoint: 1})}.Encode()))
	f.Add(AppendFrame(nil, KindRescale, Rescale{ID: 1, Phase: PhasePrepare, Topo: Topology{Workers: []string{"i", "j"}, Data: []string{"x:1", "y:2"}, Owners: []uint16{0, 1}, Epoch: 2}, Leaving: []string{"j"}}.Encode()))
	f.Add(AppendFrame(nil, KindState, State{ID: 1, To: "j", Step: "0.1", Partition: 3, Data: []byte("s")}.Encode()))
	f.Add(AppendFrame(nil, KindPeerBack, PeerBack{Worker: "w", Data: "x:1"}.Encode()))
	f.Add([]byte{0, 0, 0, 1, 1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr, err := ReadFrame(bytes.NewReader(raw))
		if err != nil {
			return
		}
		p := fr.Payload
		if h, err := DecodeHello(p); err == nil && !bytes.Equal(h.Encode(), p) {
			t.Errorf("hello does not round-trip")
		}
		if j, err := DecodeJoin(p); err == nil && !bytes.Equal(j.Encode(), p) {
			t.Errorf("join does not round-trip")
		}
		if tp, err := DecodeTopology(p); err == nil && !bytes.Equal(tp.Encode(), p) {
			t.Errorf("topology does not round-trip")
		}
		if b, err := DecodeEnvelopeBatch(p); err == nil && !bytes.Equal(b.Encode(), p) {
			t.Errorf("batch does not round-trip")
		}
		if r, err := DecodeIdleReply(p); err == nil && !bytes.Equal(r.Encode(), p) {
			t.Errorf("idle reply does not round-trip")
		}
		if r, err := DecodeRescale(p); err == nil && !bytes.Equal(r.Encode(), p) {
			t.Errorf("rescale does not round-trip")
		}
		if a, err := DecodeRescaleAck(p); err == nil && !bytes.Equal(a.Encode(), p) {
			t.Errorf("rescale ack does not round-trip")
		}
		if c, err := DecodeCheckpoint(p); err == nil && !bytes.Equal(c.Encode(), p) {
			t.Errorf("checkpoint does not round-trip")
		}
		if pb, err := DecodePeerBack(p); err == nil && !bytes.Equal(pb.Encode(), p) {
			t.Errorf("peer back does not round-trip")
		}
		if s, err := DecodeState(p); err == nil && !bytes.Equal(s.Encode(), p) {
			t.Errorf("state does not round-trip")
		}
		if r, err := DecodeShrinkRequest(p); err == nil && !bytes.Equal(r.Encode(), p) {
			t.Errorf("shrink request does not round-trip")
		}
		DecodeText(p)
		DecodeSeq(p)
	})
}

func TestLoad_RoundTripAndBounds(t *testing.T) {
	for _, u := range []float64{0, 0.25, 1} {
		got, err := DecodeLoad(Load(u))
		if err != nil || got != u {
			t.Fatalf("load %v came back as %v, %v", u, got, err)
		}
	}
	if got, _ := DecodeLoad(Load(3)); got != 1 {
		t.Fatalf("a load over 1 is sent as 1, got %v", got)
	}
	if _, err := DecodeLoad(Seq(1001)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("1001 thousandths: %v, want ErrMalformed", err)
	}
	if _, err := DecodeLoad([]byte{1, 2}); err == nil {
		t.Fatal("a short payload was accepted")
	}
}

// A barrier crosses a data link as an envelope batch of count 0 with a
// marker; a fence carries its rescale's id (FenceMarker); anything else
// with count 0 is malformed.
func TestWire_BarrierMarkers(t *testing.T) {
	b := barrier.Barrier{ID: 1 << 40, Kind: barrier.Checkpoint, Checkpoint: 7}
	got, err := DecodeEnvelopeBatch(EnvelopeBatch{Seq: 3, Data: BarrierMarker(b)}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if back, err := DecodeBarrierMarker(got.Data); err != nil || back != b {
		t.Fatalf("marker round trip: %v, %v; want %v", back, err, b)
	}
	if _, err := DecodeEnvelopeBatch(EnvelopeBatch{Seq: 3, Data: FenceMarker(1)}.Encode()); err != nil {
		t.Errorf("a fence: %v", err)
	}
	for name, data := range map[string][]byte{
		"not a marker": {'X', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7},
		"cut short":    BarrierMarker(b)[:10],
		"trailing":     append(BarrierMarker(b), 0),
		"barrier 0":    BarrierMarker(barrier.Barrier{ID: 0, Checkpoint: 7}),
	} {
		if _, err := DecodeEnvelopeBatch(EnvelopeBatch{Seq: 3, Data: data}.Encode()); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// The largest batch of envelopes fits one frame exactly, and Route
// refuses a larger one (no link could carry it: the peer would refuse
// the frame and the link would send it again for ever).
func TestWire_LargestEnvelopeBatchFitsAFrame(t *testing.T) {
	p := EnvelopeBatch{Seq: 1, Count: 1, Data: make([]byte, MaxEnvelopeData)}.Encode()
	f, err := ReadFrame(bytes.NewReader(AppendFrame(nil, KindEnvelopes, p)))
	if err != nil {
		t.Fatalf("the largest batch: %v", err)
	}
	if b, err := DecodeEnvelopeBatch(f.Payload); err != nil || len(b.Data) != MaxEnvelopeData {
		t.Fatalf("decoded %d bytes, %v", len(b.Data), err)
	}
	p = EnvelopeBatch{Seq: 1, Count: 1, Data: make([]byte, MaxEnvelopeData+1)}.Encode()
	if _, err := ReadFrame(bytes.NewReader(AppendFrame(nil, KindEnvelopes, p))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("one byte more: %v, want ErrMalformed", err)
	}
	var m Member
	err = m.Route(t.Context(), work.Envelopes{Dest: 1, Count: 3, Data: make([]byte, MaxEnvelopeData+1)})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("cannot go to another worker")) {
		t.Fatalf("Route of a batch too large = %v", err)
	}
}
