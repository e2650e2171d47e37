package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/wallaroo-go/machida/engine/barrier"
	"io"
)

// WireVersion is the version of the inter-worker wire format. Both ends
// of a link check it in the first exchange; any change to a message's
// layout increments it, the layout of the runner's envelope batches
// (opaque here, read by the peer's runner) included.
const WireVersion = 18

// MaxFrame bounds one inter-worker frame (a batch of envelopes is cut well
// below it).
const MaxFrame = 64 << 20

// MaxEnvelopeData is the most bytes of envelopes one batch may carry: a
// KindEnvelopes frame holds its kind, sequence number, count and length
// besides.
const MaxEnvelopeData = MaxFrame - 1 - 8 - 4 - 4

// Kind is the type of an inter-worker message.
type Kind uint8

const (
	// KindHello opens every link, in both directions: who is calling,
	// for which application, on which channel.
	KindHello Kind = iota + 1
	// KindRefuse closes a link at the handshake with the reason.
	KindRefuse
	// KindJoin (worker → initializer, control): my listeners.
	KindJoin
	// KindTopology (initializer → worker, control): the cluster's
	// workers in order and their data listeners (at formation; again
	// to a worker that rejoins, which takes only the listeners from it).
	KindTopology
	// KindReady (worker → initializer, control): my links and sinks are up.
	KindReady
	// KindStart (initializer → worker, control): the cluster is formed.
	KindStart
	// KindShutdown (any direction, control): stop the cluster.
	KindShutdown
	// KindHeartbeat and KindHeartbeatAck (control): liveness.
	KindHeartbeat
	KindHeartbeatAck
	// KindDataConnect (data, sender → receiver after Hello): the first
	// sequence number the sender still holds.
	KindDataConnect
	// KindDataAccept (data, receiver → sender): the last sequence number
	// received; the sender replays what follows it.
	KindDataAccept
	// KindEnvelopes (data): one batch of envelopes with its sequence
	// number.
	KindEnvelopes
	// KindAck (data, receiver → sender): every batch up to Seq arrived.
	KindAck
	// KindIdle and KindIdleReply (control): the shutdown's quiescence
	// check (see Member.Shutdown).
	KindIdle
	KindIdleReply
	// KindLoad (control, both directions): the sender's utilisation over
	// its last load period, in thousandths (Seq payload); dealers of
	// spread segments weigh workers by it (package spread).
	KindLoad
	// KindRedirect (control, a worker → a joiner that called it): join
	// through the initializer at this control address (Text).
	KindRedirect
	// KindRescale (initializer → workers, control): one phase of a grow
	// or shrink (Rescale); KindRescaleAck (workers → initializer): done.
	KindRescale
	KindRescaleAck
	// KindState (control, through the initializer): the state of one
	// partition of one state step, moving to its new owner.
	KindState
	// KindShrink (worker → initializer, control): a shrink request that
	// came in on the worker's external channel; KindShrinkReply: the
	// reply for it (Text).
	KindShrink
	KindShrinkReply
	// KindCheckpoint (control, both directions): one step of the
	// checkpoint and rollback protocol (Checkpoint).
	KindCheckpoint
	// KindPeerBack (initializer → workers, control): a worker restarted
	// and listens again (PeerBack: its name and data listener, which
	// may have changed); links to it redial at once, there, instead of
	// at their next retry.
	KindPeerBack
	// KindCongestion (worker → initializer, control): whether a replay
	// queue of the sender's data links is full (Seq payload, 0 or 1),
	// sent when that changes and repeated while it lasts. The initializer
	// holds its sources while any worker is congested: a worker with no
	// sources of its own passes its peers' work on whatever its links'
	// state, so backpressure must reach the sources through it.
	KindCongestion
	kindEnd
)

var kindNames = [...]string{"", "hello", "refuse", "join", "topology", "ready", "start", "shutdown",
	"heartbeat", "heartbeat-ack", "data-connect", "data-accept", "envelopes", "ack", "idle", "idle-reply", "load",
	"redirect", "rescale", "rescale-ack", "state", "shrink", "shrink-reply", "checkpoint", "peer-back",
	"congestion"}

func (k Kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Channel says what a link carries.
type Channel uint8

const (
	ControlChannel Channel = 1
	DataChannel    Channel = 2
)

func (c Channel) String() string {
	switch c {
	case ControlChannel:
		return "control"
	case DataChannel:
		return "data"
	}
	return fmt.Sprintf("Channel(%d)", int(c))
}

// ErrMalformed is wrapped by every decoding error: the peer sent bytes
// that are not a valid message; the link is closed.
var ErrMalformed = errors.New("malformed inter-worker frame")

// Frame is one decoded frame: its kind and payload (aliasing the read
// buffer).
type Frame struct {
	Kind    Kind
	Payload []byte
}

// A frame on the wire: u32 big-endian length of what follows (kind byte
// plus payload), the kind byte, the payload.

// AppendFrame appends one frame to b.
func AppendFrame(b []byte, k Kind, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(payload)))
	b = append(b, byte(k))
	return append(b, payload...)
}

// ReadFrame reads one frame. io.EOF means the peer closed between frames;
// anything malformed (a length of 0 or over MaxFrame, an unknown kind, a
// frame cut short) wraps ErrMalformed or io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader) (Frame, error) { return readFrameMax(r, MaxFrame) }

// maxHandshakeFrame bounds the first frame read from a connection (a
// Hello, a Refuse, a Redirect), before anything says who is calling: a
// stranger cannot make a worker allocate MaxFrame per connection.
const maxHandshakeFrame = 64 << 10

// readFrameMax is ReadFrame with a smaller bound on the length.
func readFrameMax(r io.Reader, max uint32) (Frame, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || n > max {
		return Frame{}, fmt.Errorf("%w: length %d (want 1 to %d)", ErrMalformed, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("frame of %d bytes cut short: %w", n, err)
	}
	k := Kind(buf[0])
	if k == 0 || k >= kindEnd {
		return Frame{}, fmt.Errorf("%w: unknown kind %d", ErrMalformed, buf[0])
	}
	return Frame{Kind: k, Payload: buf[1:]}, nil
}

// enc builds a payload; dec reads one, remembering the first error.
type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) bytes(v []byte) {
	e.u32(uint32(len(v)))
	e.b = append(e.b, v...)
}
func (e *enc) str(v string) { e.bytes([]byte(v)) }

// strs writes a list of strings: a count, then each.
func (e *enc) strs(vs []string) {
	e.u32(uint32(len(vs)))
	for _, v := range vs {
		e.str(v)
	}
}
func (e *enc) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s cut short or invalid", ErrMalformed, what)
	}
}

func (d *dec) take(n int, what string) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.fail(what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u8(what string) uint8 {
	if v := d.take(1, what); v != nil {
		return v[0]
	}
	return 0
}
func (d *dec) u16(what string) uint16 {
	if v := d.take(2, what); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}
func (d *dec) u32(what string) uint32 {
	if v := d.take(4, what); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}
func (d *dec) u64(what string) uint64 {
	if v := d.take(8, what); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
func (d *dec) bytes(what string) []byte {
	n := d.u32(what)
	if d.err != nil || uint64(n) > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	return d.take(int(n), what)
}
func (d *dec) str(what string) string { return string(d.bytes(what)) }

// strs reads a list written by enc.strs (a count that the bytes left
// cannot hold is malformed).
func (d *dec) strs(what string) []string {
	n := d.u32(what + " count")
	if d.err == nil && uint64(n)*4 > uint64(len(d.b)) {
		d.fail(what + " count")
	}
	var out []string
	for i := uint32(0); d.err == nil && i < n; i++ {
		out = append(out, d.str(what))
	}
	return out
}
func (d *dec) bool(what string) bool {
	switch d.u8(what) {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(what)
	return false
}

// end reports an error if bytes are left over or one was met.
func (d *dec) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d bytes after the %s", ErrMalformed, len(d.b), what)
	}
	return d.err
}

// Hello is the first message on every link, in both directions.
type Hello struct {
	Version uint16
	App     string // application name
	Digest  string // digest of the application module (hex)
	PyMajor uint8  // 2 or 3: pickles do not cross major versions
	Worker  string // the sender's name
	Channel Channel
	Restart bool // the sender restarted from its recovery files (spec 3.9)
	// Incarnation tells the runs of one worker apart (random per
	// process): a receiver starts a sender's sequence numbers afresh
	// when it changes.
	Incarnation uint64
	// Resilient: the sender runs with --run-with-resilience. A cluster
	// is resilient on every worker or on none (a worker without it
	// cannot take part in checkpoints, and the sources wait for the
	// first one).
	Resilient bool
}

// Encode returns h's payload.
func (h Hello) Encode() []byte {
	var e enc
	e.u16(h.Version)
	e.str(h.App)
	e.str(h.Digest)
	e.u8(h.PyMajor)
	e.str(h.Worker)
	e.u8(uint8(h.Channel))
	e.bool(h.Restart)
	e.u64(h.Incarnation)
	e.bool(h.Resilient)
	return e.b
}

// DecodeHello reads a Hello payload.
func DecodeHello(p []byte) (Hello, error) {
	d := dec{b: p}
	h := Hello{Version: d.u16("version"), App: d.str("app"), Digest: d.str("digest"), PyMajor: d.u8("python"),
		Worker: d.str("worker"), Channel: Channel(d.u8("channel")), Restart: d.bool("restart"), Incarnation: d.u64("incarnation"),
		Resilient: d.bool("resilient")}
	return h, d.end("hello")
}

// Mismatch says why two ends of a link cannot work together, or "" if
// they can: they must speak the same wire version, run the same
// application module and the same Python major version, all with
// --run-with-resilience or all without.
func (h Hello) Mismatch(mine Hello) string {
	switch {
	case h.Version != mine.Version:
		return fmt.Sprintf("wire version %d, this worker speaks %d: run the same machida build on every worker", h.Version, mine.Version)
	case h.App != mine.App:
		return fmt.Sprintf("application %q, this worker runs %q", h.App, mine.App)
	case h.Digest != mine.Digest:
		return fmt.Sprintf("application module digest %s, this worker's is %s: every worker must run the same module", h.Digest, mine.Digest)
	case h.PyMajor != mine.PyMajor:
		return fmt.Sprintf("Python %d, this worker runs Python %d: values pickled by one cannot be read by the other", h.PyMajor, mine.PyMajor)
	case h.Resilient != mine.Resilient:
		theirs := "--run-with-resilience, this worker runs without it"
		if !h.Resilient {
			theirs = "no --run-with-resilience, this worker runs with it"
		}
		return theirs + ": start every worker of the cluster with --run-with-resilience or every worker without it"
	}
	return ""
}

// PeerBack is KindPeerBack's payload: Worker restarted and its data
// listener is at Data.
type PeerBack struct {
	Worker, Data string
}

// Encode returns p's payload.
func (p PeerBack) Encode() []byte {
	var e enc
	e.str(p.Worker)
	e.str(p.Data)
	return e.b
}

// DecodePeerBack reads a PeerBack payload.
func DecodePeerBack(b []byte) (PeerBack, error) {
	d := dec{b: b}
	p := PeerBack{Worker: d.str("worker"), Data: d.str("data listener")}
	return p, d.end("peer back")
}

// Join is a worker's request to be part of the cluster: its listeners,
// and for a worker joining a running cluster (--join), the number of
// workers joining with it (its --worker-count; 0 at formation). Sinks is
// the number of sinks its application has: a worker whose pipeline has
// another number than the initializer's is refused (it runs another
// pipeline; the addresses themselves come from the initializer).
type Join struct {
	Worker  string
	Control string // host:port of its control listener
	Data    string // host:port of its data listener
	Joining uint32
	Sinks   uint32
	// Only on the first join of a worker's process (not when a running
	// worker dials a restarted initializer again): Afresh, it did not
	// start from recovery files; NoCheckpoints (with resilience), it
	// restarted from files that hold no checkpoint, neither a committed
	// one nor one in its event log.
	Afresh        bool
	NoCheckpoints bool
	// Frozen (a worker that dials the initializer again): the rescale
	// this worker is frozen in and that rescale's table epoch (0, 0:
	// none). An initializer started again that recorded an older cluster
	// undoes it (undoOrphans).
	Frozen, FrozenEpoch uint64
}

// Encode returns j's payload.
func (j Join) Encode() []byte {
	var e enc
	e.str(j.Worker)
	e.str(j.Control)
	e.str(j.Data)
	e.u32(j.Joining)
	e.u32(j.Sinks)
	e.bool(j.Afresh)
	e.bool(j.NoCheckpoints)
	e.u64(j.Frozen)
	e.u64(j.FrozenEpoch)
	return e.b
}

// DecodeJoin reads a Join payload.
func DecodeJoin(p []byte) (Join, error) {
	d := dec{b: p}
	j := Join{Worker: d.str("worker"), Control: d.str("control"), Data: d.str("data"), Joining: d.u32("joining")}
	j.Sinks = d.u32("sinks")
	j.Afresh = d.bool("afresh")
	j.NoCheckpoints = d.bool("no checkpoints")
	j.Frozen = d.u64("frozen rescale")
	j.FrozenEpoch = d.u64("frozen rescale's epoch")
	return j, d.end("join")
}

// Topology is the cluster: the workers in order (the initializer first)
// with their data listeners, and, once the cluster has been rescaled,
// its partition table (Owners[p] indexes Workers; empty: the table of a
// newly formed cluster) and that table's epoch. Metrics is the
// cluster's metrics address (joiners report there); Sinks are the
// addresses of the application's sinks as the initializer's application
// has them, which every worker connects to (0.6 took the whole topology
// from the initializer).
type Topology struct {
	Workers []string
	Data    []string // Data[i] is Workers[i]'s data listener
	Owners  []uint16
	Epoch   uint64
	Metrics string
	Sinks   []string
}

// Encode returns t's payload.
func (t Topology) Encode() []byte {
	var e enc
	e.u32(uint32(len(t.Workers)))
	for i := range t.Workers {
		e.str(t.Workers[i])
		e.str(t.Data[i])
	}
	e.u32(uint32(len(t.Owners)))
	for _, o := range t.Owners {
		e.u16(o)
	}
	e.u64(t.Epoch)
	e.str(t.Metrics)
	e.strs(t.Sinks)
	return e.b
}

// DecodeTopology reads a Topology payload.
func DecodeTopology(p []byte) (Topology, error) {
	d := dec{b: p}
	n := d.u32("worker count")
	if d.err == nil && (n == 0 || uint64(n)*8 > uint64(len(d.b))) {
		d.fail("worker count")
	}
	var t Topology
	for i := uint32(0); d.err == nil && i < n; i++ {
		t.Workers = append(t.Workers, d.str("worker"))
		t.Data = append(t.Data, d.str("data address"))
	}
	no := d.u32("partition count")
	if d.err == nil && uint64(no)*2 > uint64(len(d.b)) {
		d.fail("partition count")
	}
	for i := uint32(0); d.err == nil && i < no; i++ {
		o := d.u16("owner")
		if d.err == nil && uint32(o) >= n {
			d.fail("owner index")
		}
		t.Owners = append(t.Owners, o)
	}
	t.Epoch = d.u64("epoch")
	t.Metrics = d.str("metrics address")
	t.Sinks = d.strs("sink address")
	return t, d.end("topology")
}

// Rescale phases (KindRescale), in order.
const (
	// PhasePrepare: here is the new cluster (Topology): connect to the
	// workers you do not know yet; joiners also build, connect their
	// sinks and say Ready.
	PhasePrepare uint8 = iota + 1
	// PhaseFreeze: park what is bound for the partitions that move
	// (they wait; the others flow), send a fence on every data link,
	// and once every peer's fence has been processed here, send the
	// state of every partition you lose to its new owner; then ack.
	PhaseFreeze
	// PhaseCommit: every state has been sent; ack once yours arrived
	// (they come before this on the same link).
	PhaseCommit
	// PhaseRelease: install the new table, send what was parked to the
	// new owners; leavers stop, joiners start.
	PhaseRelease
	// PhaseAbort: the rescale failed before Freeze: keep the old
	// cluster (forget the joiners). A joiner told it after the Freeze
	// leaves too.
	PhaseAbort
	// PhaseUndo: the rescale failed after its Freeze, before any
	// Release: once your freeze has ended, import again the states you
	// sent and drop those you imported; then ack.
	PhaseUndo
	// PhaseUndoRelease: every old worker has its states back: install
	// the old table and send what was parked to the partitions' old
	// owners (routed again, key by key); then ack.
	PhaseUndoRelease
)

// PhaseName names a rescale phase for messages ("freeze").
func PhaseName(p uint8) string {
	switch p {
	case PhasePrepare:
		return "prepare"
	case PhaseFreeze:
		return "freeze"
	case PhaseCommit:
		return "commit"
	case PhaseRelease:
		return "release"
	case PhaseAbort:
		return "abort"
	case PhaseUndo:
		return "undo"
	case PhaseUndoRelease:
		return "undo release"
	}
	return fmt.Sprintf("phase %d", p)
}

// Rescale is the payload of KindRescale: the rescale's id and phase, the
// new cluster (at Prepare), and the leaving workers.
type Rescale struct {
	ID      uint64
	Phase   uint8
	Topo    Topology // Prepare only (empty Workers otherwise)
	Leaving []string
}

// Encode returns r's payload.
func (r Rescale) Encode() []byte {
	var e enc
	e.u64(r.ID)
	e.u8(r.Phase)
	if len(r.Topo.Workers) > 0 {
		e.bytes(r.Topo.Encode())
	} else {
		e.bytes(nil)
	}
	e.strs(r.Leaving)
	return e.b
}

// DecodeRescale reads a Rescale payload.
func DecodeRescale(p []byte) (Rescale, error) {
	d := dec{b: p}
	r := Rescale{ID: d.u64("rescale id"), Phase: d.u8("phase")}
	if d.err == nil && (r.Phase < PhasePrepare || r.Phase > PhaseUndoRelease) {
		d.fail("phase")
	}
	if tp := d.bytes("topology"); d.err == nil && len(tp) > 0 {
		t, err := DecodeTopology(tp)
		if err != nil {
			return r, err
		}
		r.Topo = t
	}
	r.Leaving = d.strs("leaving worker")
	return r, d.end("rescale")
}

// RescaleAck is the payload of KindRescaleAck: a worker has done a phase
// (Err empty) or could not (Err says why).
type RescaleAck struct {
	ID    uint64
	Phase uint8
	Err   string
	from  string // the worker whose link it came on (not on the wire)
}

// Encode returns a's payload.
func (a RescaleAck) Encode() []byte {
	var e enc
	e.u64(a.ID)
	e.u8(a.Phase)
	e.str(a.Err)
	return e.b
}

// DecodeRescaleAck reads a RescaleAck payload.
func DecodeRescaleAck(p []byte) (RescaleAck, error) {
	d := dec{b: p}
	a := RescaleAck{ID: d.u64("rescale id"), Phase: d.u8("phase"), Err: d.str("error")}
	return a, d.end("rescale ack")
}

// State is the payload of KindState: one partition of one state step on
// its way to its new owner To, or a piece of it. A partition's state
// larger than StateChunk travels in pieces (a frame has a limit), in
// order on one path: Data is the bytes at Offset of Total.
type State struct {
	ID        uint64 // the rescale's
	To        string
	Step      string
	Partition uint32
	Offset    uint64
	Total     uint64
	Data      []byte
}

// StateChunk is the most bytes of state one KindState frame carries.
const StateChunk = 16 << 20

// Encode returns s's payload.
func (s State) Encode() []byte {
	e := enc{b: make([]byte, 0, 48+len(s.To)+len(s.Step)+len(s.Data))}
	e.u64(s.ID)
	e.str(s.To)
	e.str(s.Step)
	e.u32(s.Partition)
	e.u64(s.Offset)
	e.u64(s.Total)
	e.bytes(s.Data)
	return e.b
}

// DecodeState reads a State payload (Data aliases p); a piece that does
// not lie within its total is refused.
func DecodeState(p []byte) (State, error) {
	d := dec{b: p}
	s := State{ID: d.u64("rescale id"), To: d.str("destination"), Step: d.str("step"), Partition: d.u32("partition"),
		Offset: d.u64("offset"), Total: d.u64("total"), Data: d.bytes("state")}
	if err := d.end("state"); err != nil {
		return s, err
	}
	if s.Offset > s.Total || uint64(len(s.Data)) > s.Total-s.Offset {
		return s, fmt.Errorf("%w: state of partition %d of %s: %d bytes at %d of %d", ErrMalformed, s.Partition, s.Step, len(s.Data), s.Offset, s.Total)
	}
	return s, nil
}

// Pieces cuts the whole state s (Offset 0, Data all of it) into the
// States that carry it, each at most size bytes (one, if it fits).
func (s State) Pieces(size int) []State {
	s.Offset, s.Total = 0, uint64(len(s.Data))
	if len(s.Data) <= size {
		return []State{s}
	}
	var out []State
	for off := 0; off < len(s.Data); off += size {
		p := s
		p.Offset = uint64(off)
		p.Data = s.Data[off:min(off+size, len(s.Data))]
		out = append(out, p)
	}
	return out
}

// ShrinkRequest is the payload of KindShrink: the leaving workers the
// asked worker chose (by name or count) and its name.
type ShrinkRequest struct {
	From    string
	Leaving []string
}

// Encode returns r's payload.
func (r ShrinkRequest) Encode() []byte {
	var e enc
	e.str(r.From)
	e.strs(r.Leaving)
	return e.b
}

// DecodeShrinkRequest reads a ShrinkRequest payload.
func DecodeShrinkRequest(p []byte) (ShrinkRequest, error) {
	d := dec{b: p}
	r := ShrinkRequest{From: d.str("from")}
	r.Leaving = d.strs("leaving worker")
	return r, d.end("shrink request")
}

// Text is the payload of messages that carry one string (Refuse, Ready,
// Shutdown).
func Text(s string) []byte { var e enc; e.str(s); return e.b }

// DecodeText reads a Text payload.
func DecodeText(p []byte) (string, error) {
	d := dec{b: p}
	s := d.str("text")
	return s, d.end("text")
}

// Seq is the payload of DataConnect, DataAccept, Ack, Heartbeat(Ack) and
// Idle: one number.
func Seq(n uint64) []byte { var e enc; e.u64(n); return e.b }

// DecodeSeq reads a Seq payload.
func DecodeSeq(p []byte) (uint64, error) {
	d := dec{b: p}
	n := d.u64("number")
	return n, d.end("number")
}

// Load is the payload of KindLoad: a utilisation from 0 to 1, sent in
// thousandths.
func Load(util float64) []byte { return Seq(uint64(min(1, max(0, util)) * 1000)) }

// DecodeLoad reads a Load payload; more than 1000 thousandths is
// malformed.
func DecodeLoad(p []byte) (float64, error) {
	n, err := DecodeSeq(p)
	if err != nil {
		return 0, err
	}
	if n > 1000 {
		return 0, fmt.Errorf("%w: load of %d thousandths (at most 1000)", ErrMalformed, n)
	}
	return float64(n) / 1000, nil
}

// EnvelopeBatch is the payload of KindEnvelopes: a batch of envelopes (as
// the processor serialised them) with the link's sequence number.
type EnvelopeBatch struct {
	Seq   uint64
	Count uint32
	Data  []byte
}

// Encode returns b's payload.
func (b EnvelopeBatch) Encode() []byte {
	e := enc{b: make([]byte, 0, 16+len(b.Data))}
	e.u64(b.Seq)
	e.u32(b.Count)
	e.bytes(b.Data)
	return e.b
}

// DecodeEnvelopeBatch reads a KindEnvelopes payload (Data aliases p).
func DecodeEnvelopeBatch(p []byte) (EnvelopeBatch, error) {
	d := dec{b: p}
	b := EnvelopeBatch{Seq: d.u64("sequence number"), Count: d.u32("count"), Data: d.bytes("envelopes")}
	// Count 0 is a marker in band with the data: a barrier
	// (BarrierMarker) or a rescale's fence (FenceMarker).
	if d.err == nil && b.Seq == 0 {
		d.fail("sequence number")
	}
	if d.err == nil && b.Count == 0 {
		if _, _, err := DecodeMarker(b.Data); err != nil {
			return b, err
		}
	}
	return b, d.end("envelope batch")
}

// BarrierMarker is the data of an envelope batch of count 0 that carries
// a barrier on a data link, in order with the envelopes: 'B', the
// barrier's id (u64) and its checkpoint (u64).
func BarrierMarker(b barrier.Barrier) []byte {
	e := enc{b: make([]byte, 0, 17)}
	e.u8('B')
	e.u64(uint64(b.ID))
	e.u64(b.Checkpoint)
	return e.b
}

// DecodeBarrierMarker reads what BarrierMarker wrote (a checkpoint
// barrier: the only kind that crosses workers).
func DecodeBarrierMarker(p []byte) (barrier.Barrier, error) {
	d := dec{b: p}
	if d.u8("marker") != 'B' && d.err == nil {
		d.fail("marker")
	}
	b := barrier.Barrier{ID: barrier.ID(d.u64("barrier id")), Kind: barrier.Checkpoint, Checkpoint: d.u64("checkpoint id")}
	if d.err == nil && b.ID == 0 {
		d.fail("barrier id")
	}
	return b, d.end("barrier marker")
}

// FenceMarker is the data of an envelope batch of count 0 that carries a
// rescale's fence on a data link (rescale.go): 'F' and the rescale's id,
// so that a fence of a rescale that was undone is not taken for the
// next one's.
func FenceMarker(rescale uint64) []byte {
	e := enc{b: make([]byte, 0, 9)}
	e.u8('F')
	e.u64(rescale)
	return e.b
}

// DecodeMarker reads the data of an envelope batch of count 0: a barrier
// (ok, with the fence id 0) or a fence (its rescale id, not 0).
func DecodeMarker(p []byte) (b barrier.Barrier, fence uint64, err error) {
	if len(p) > 0 && p[0] == 'F' {
		d := dec{b: p[1:]}
		fence = d.u64("rescale id")
		if d.err == nil && fence == 0 {
			d.fail("rescale id")
		}
		return b, fence, d.end("fence marker")
	}
	b, err = DecodeBarrierMarker(p)
	return b, 0, err
}

// IdleReply answers Idle: whether the worker has nothing to do, and how
// many envelope batches it has sent to peers and processed from them.
type IdleReply struct {
	Round           uint64
	Idle            bool
	Sent, Processed uint64
}

// Encode returns r's payload.
func (r IdleReply) Encode() []byte {
	var e enc
	e.u64(r.Round)
	e.bool(r.Idle)
	e.u64(r.Sent)
	e.u64(r.Processed)
	return e.b
}

// DecodeIdleReply reads an IdleReply payload.
func DecodeIdleReply(p []byte) (IdleReply, error) {
	d := dec{b: p}
	r := IdleReply{Round: d.u64("round"), Idle: d.bool("idle"), Sent: d.u64("sent"), Processed: d.u64("processed")}
	return r, d.end("idle reply")
}

// CheckpointOp says which step of the checkpoint and rollback protocol a
// Checkpoint message is (see package worker's resilience driver).
type CheckpointOp uint8

const (
	// OpTake (initializer → worker): checkpoint ID's barrier (number
	// Attempt) is on its way through the data links; say when your part
	// is taken (it is taken once the barrier has arrived on every input).
	OpTake CheckpointOp = iota + 1
	// OpTaken (worker → initializer): my part of ID is taken (Text: why
	// not).
	OpTaken
	// OpWritten (worker → initializer): my part of ID is on disk (Text:
	// why not).
	OpWritten
	// OpCommit (initializer → worker): every worker wrote ID; record it
	// as committed under rollback id Rollback.
	OpCommit
	// OpRollback (initializer → worker): return to checkpoint ID; the
	// cluster's rollback id is now Rollback.
	OpRollback
	// OpRolledBack (worker → initializer): I am back at ID, N entries
	// read (Text: why not).
	OpRolledBack
	// OpRecover (worker → initializer): I restarted from my checkpoint
	// files (my newest committed checkpoint is ID): roll the cluster back.
	OpRecover
	// OpKeepState (either way, just before a shutdown on the same link):
	// the stop that follows keeps the checkpoint files (cluster_shutdown
	// --keep-state).
	OpKeepState
	// OpCancel (initializer → worker): checkpoint ID's barrier (number
	// Attempt) is given up: stop aligning it.
	OpCancel
	// OpResend (initializer → worker): every worker is back at
	// checkpoint ID; send again what was in flight from you at ID.
	OpResend
	// OpResent (worker → initializer): done, N batches sent again (Text:
	// why not).
	OpResent
	// OpRotate (either way): the external channel asked for a rotation
	// of the event log of worker Text (--log-rotation); the initializer
	// passes on one that is not its own.
	OpRotate
	// OpRecovering (worker → initializer): I restarted and rejoined, and
	// read my checkpoint files now; OpRecover follows once they are read.
	// Until then the initializer's sources wait (what they would send me
	// meanwhile could only pile up here).
	OpRecovering
	opEnd
)

var opNames = [...]string{"", "take", "taken", "written", "commit", "rollback", "rolled-back", "recover", "keep-state", "cancel", "resend", "resent", "rotate", "recovering"}

func (o CheckpointOp) String() string {
	if o > 0 && o < opEnd {
		return opNames[o]
	}
	return fmt.Sprintf("CheckpointOp(%d)", int(o))
}

// Checkpoint is the payload of KindCheckpoint.
type Checkpoint struct {
	Op       CheckpointOp
	ID       uint64
	Rollback uint64
	N        uint64
	// Attempt numbers the initializer's requests; a reply carries its
	// request's, so a late reply to an attempt that failed never counts
	// for the next one (which may have the same ID).
	Attempt uint64
	// Seen (OpRolledBack) is the highest attempt the worker has been
	// asked for: an initializer restarted with its clock behind numbers
	// its next barriers above it (a worker's loop drops older ones).
	Seen uint64
	Text string
	// Received numbers the OpRollback requests this process received,
	// in the order its control link read them (set on receipt; not on
	// the wire): a rollback that waited behind a later one is not made.
	Received uint64
}

// Encode returns c's payload.
func (c Checkpoint) Encode() []byte {
	e := enc{b: make([]byte, 0, 32+len(c.Text))}
	e.u8(uint8(c.Op))
	e.u64(c.ID)
	e.u64(c.Rollback)
	e.u64(c.N)
	e.u64(c.Attempt)
	e.u64(c.Seen)
	e.str(c.Text)
	return e.b
}

// DecodeCheckpoint reads a KindCheckpoint payload.
func DecodeCheckpoint(p []byte) (Checkpoint, error) {
	d := dec{b: p}
	c := Checkpoint{Op: CheckpointOp(d.u8("checkpoint op"))}
	if d.err == nil && (c.Op == 0 || c.Op >= opEnd) {
		d.fail("checkpoint op")
	}
	c.ID = d.u64("checkpoint id")
	c.Rollback = d.u64("rollback id")
	c.N = d.u64("entries")
	c.Attempt = d.u64("attempt")
	c.Seen = d.u64("attempt seen")
	c.Text = d.str("text")
	return c, d.end("checkpoint")
}
