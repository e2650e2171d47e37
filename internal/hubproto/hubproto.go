// Package hubproto is the wire format Wallaroo 0.6 workers use to send
// metrics to a monitoring hub (runtime spec 5.2): Connect, Join and Payload
// messages, each framed by a big-endian uint32 size, and the metrics record
// a Payload carries. The worker's metrics sender builds messages with the
// Append functions; the Metrics UI (cmd/metrics_ui) reads them with
// ReadMessage or Decode.
//
// Everything is big-endian. The package does no I/O of its own except
// ReadMessage, which reads from the reader it is given; all functions are
// safe for concurrent use. Decoding never panics: a malformed frame gives a
// *FormatError naming what was wrong and where.
package hubproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// Message types (the byte after the size).
const (
	TypeConnect byte = 1
	TypeJoin    byte = 2
	TypePayload byte = 3
)

// Bins is the number of histogram bins in a record: bin i counts values
// v with bits.Len64(v) == i, so bin 0 holds 0, bin i (i ≥ 1) holds
// [2^(i-1), 2^i), and bin 64 holds everything from 2^63 up.
const Bins = 65

// Period is the length of one reporting period in nanoseconds; 0.6
// workers report every 2 s, aligned to multiples of 2 s of wall-clock time.
const Period uint64 = 2_000_000_000

// MetricsEvent is the event name of a Payload carrying a metrics record.
const MetricsEvent = "metrics"

// TopicPrefix starts the topic of a worker's metrics: "metrics:<app>".
const TopicPrefix = "metrics:"

// Categories of 0.6 metrics records (spec 5.3).
const (
	CategoryComputation       = "computation"
	CategoryStartToEnd        = "start-to-end"
	CategoryNodeIngressEgress = "node-ingress-egress"
	CategoryPipelineIngestion = "pipeline-ingestion"
)

// innerSizeQuirk is what 0.6 adds to the four string lengths for a
// record's inner_size field (18 + strings + 704); the real length of what
// follows that field is 18 + strings + fixedTail. Receivers ignore it.
const innerSizeQuirk = 18 + 704

// fixedTail is the size of a record after its id: the bins, min, max,
// period and period end.
const fixedTail = Bins*8 + 4*8

// Record is one metrics record: a latency histogram (nanoseconds) of one
// (category, name) reporter on one worker for one period.
type Record struct {
	Name, Category, Worker, Pipeline string
	ID                               uint16
	Bins                             [Bins]uint64
	Min, Max                         uint64 // ns; an empty histogram has Min = math.MaxUint64, Max = 0
	Period                           uint64 // ns
	PeriodEnd                        uint64 // wall-clock ns since the Unix epoch
}

// Bin returns the histogram bin of value v: bits.Len64(v), so 0 for 0, 1
// for 1, 2 for 2–3, 3 for 4–7, …, 64 for v ≥ 2^63.
func Bin(v uint64) int { return bits.Len64(v) }

// Observe counts v (ns) in r's histogram and updates Min and Max. A
// Record's zero value has Min = 0: call Reset before the first Observe.
func (r *Record) Observe(v uint64) {
	r.Bins[Bin(v)]++
	if v < r.Min {
		r.Min = v
	}
	if v > r.Max {
		r.Max = v
	}
}

// Reset empties r's histogram: all bins 0, Min = math.MaxUint64, Max = 0.
// Names, id and period fields are kept.
func (r *Record) Reset() {
	r.Bins = [Bins]uint64{}
	r.Min, r.Max = math.MaxUint64, 0
}

// Count returns the number of values in r's histogram (saturating at
// math.MaxUint64 for hostile input).
func (r *Record) Count() uint64 {
	var n uint64
	for _, c := range r.Bins {
		s, carry := bits.Add64(n, c, 0)
		if carry != 0 {
			return math.MaxUint64
		}
		n = s
	}
	return n
}

// AppendConnect appends a Connect message: 00 00 00 01 01.
func AppendConnect(b []byte) []byte {
	return append(b, 0, 0, 0, 1, TypeConnect)
}

// AppendJoin appends a Join message for topic ("metrics:<app>") carrying
// the worker's name.
func AppendJoin(b []byte, topic, worker string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+4+len(topic)+4+len(worker)))
	b = append(b, TypeJoin)
	b = appendString(b, topic)
	return appendString(b, worker)
}

// RecordSize returns the encoded size of r as a Payload's data: what the
// data_len field says.
func RecordSize(r *Record) int {
	return 4 + 4*4 + len(r.Name) + len(r.Category) + len(r.Worker) + len(r.Pipeline) + 2 + fixedTail
}

// AppendPayload appends a Payload message with event "metrics" on topic
// carrying r. The record's inner_size field is written as 0.6 wrote it
// (18 + the four string lengths + 704), not its real length.
func AppendPayload(b []byte, topic string, r *Record) []byte {
	data := RecordSize(r)
	b = binary.BigEndian.AppendUint32(b, uint32(1+4+len(MetricsEvent)+4+len(topic)+4+data))
	b = append(b, TypePayload)
	b = appendString(b, MetricsEvent)
	b = appendString(b, topic)
	b = binary.BigEndian.AppendUint32(b, uint32(data))
	strs := len(r.Name) + len(r.Category) + len(r.Worker) + len(r.Pipeline)
	b = binary.BigEndian.AppendUint32(b, uint32(innerSizeQuirk+strs))
	b = appendString(b, r.Name)
	b = appendString(b, r.Category)
	b = appendString(b, r.Worker)
	b = appendString(b, r.Pipeline)
	b = binary.BigEndian.AppendUint16(b, r.ID)
	for _, c := range r.Bins {
		b = binary.BigEndian.AppendUint64(b, c)
	}
	b = binary.BigEndian.AppendUint64(b, r.Min)
	b = binary.BigEndian.AppendUint64(b, r.Max)
	b = binary.BigEndian.AppendUint64(b, r.Period)
	return binary.BigEndian.AppendUint64(b, r.PeriodEnd)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Message is one decoded hub message. Topic is set for Join and Payload,
// Worker for Join, Event for Payload; Record is set for a Payload whose
// event is "metrics" and nil otherwise (the hub protocol carries other
// events, which a metrics receiver may ignore).
type Message struct {
	Type   byte
	Topic  string
	Worker string
	Event  string
	Record *Record
}

// ErrMalformed is wrapped by every *FormatError, for errors.Is.
var ErrMalformed = errors.New("malformed hub protocol message")

// FormatError says what was wrong with a frame and at which offset,
// counted from the type byte (the first byte after the U32 size).
type FormatError struct {
	Offset int
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("hub protocol: %s at frame offset %d", e.Reason, e.Offset)
}

func (e *FormatError) Unwrap() error { return ErrMalformed }

// decoder reads fields from a frame, remembering the first error.
type decoder struct {
	b   []byte
	off int
	end int // fields may not be read past end (≤ len(b))
	err error
}

func (d *decoder) fail(off int, format string, args ...any) {
	if d.err == nil {
		d.err = &FormatError{Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) need(n int, what string) bool {
	if d.err != nil {
		return false
	}
	if n > d.end-d.off {
		d.fail(d.off, "%s needs %d bytes, only %d left", what, n, d.end-d.off)
		return false
	}
	return true
}

func (d *decoder) u16(what string) uint16 {
	if !d.need(2, what) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32(what string) uint32 {
	if !d.need(4, what) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64(what string) uint64 {
	if !d.need(8, what) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) str(what string) string {
	at := d.off
	n := d.u32(what + " length")
	if d.err != nil {
		return ""
	}
	if uint64(n) > uint64(d.end-d.off) {
		d.fail(at, "%s length %d exceeds the %d bytes left", what, n, d.end-d.off)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

// Decode decodes one frame: the bytes after a message's U32 size,
// starting with the type byte. The whole frame must be used: trailing
// bytes are an error, as is a Payload whose data_len does not match the
// bytes that follow or a metrics record that does not fill its data.
func Decode(frame []byte) (Message, error) {
	d := &decoder{b: frame, end: len(frame)}
	if len(frame) == 0 {
		return Message{}, &FormatError{Offset: 0, Reason: "empty frame, no message type"}
	}
	m := Message{Type: frame[0]}
	d.off = 1
	switch m.Type {
	case TypeConnect:
	case TypeJoin:
		m.Topic = d.str("join topic")
		m.Worker = d.str("join worker name")
	case TypePayload:
		m.Event = d.str("payload event")
		m.Topic = d.str("payload topic")
		at := d.off
		n := d.u32("payload data length")
		if d.err == nil && uint64(n) != uint64(len(frame)-d.off) {
			d.fail(at, "payload data length %d does not match the %d bytes left", n, len(frame)-d.off)
		}
		if d.err == nil && m.Event == MetricsEvent {
			m.Record = d.record()
		} else {
			d.off = len(frame)
		}
	default:
		return Message{}, &FormatError{Offset: 0, Reason: fmt.Sprintf("unknown message type %d", m.Type)}
	}
	if d.err == nil && d.off != len(frame) {
		d.fail(d.off, "%d unexpected trailing bytes after a type %d message", len(frame)-d.off, m.Type)
	}
	if d.err != nil {
		return Message{}, d.err
	}
	return m, nil
}

// record decodes a metrics record filling the rest of the frame.
func (d *decoder) record() *Record {
	r := &Record{}
	d.u32("record inner size") // 0.6 writes a wrong value; ignored
	r.Name = d.str("metric name")
	r.Category = d.str("metric category")
	r.Worker = d.str("record worker name")
	r.Pipeline = d.str("record pipeline name")
	r.ID = d.u16("record id")
	if !d.need(fixedTail, "histogram bins, min, max, period and period end") {
		return nil
	}
	for i := range r.Bins {
		r.Bins[i] = d.u64("histogram bin")
	}
	r.Min = d.u64("min")
	r.Max = d.u64("max")
	r.Period = d.u64("period")
	r.PeriodEnd = d.u64("period end")
	return r
}

// ReadMessage reads one message (U32 size, then that many bytes) and
// decodes it. A size above maxSize, or of 0, is an error before anything
// more is read. At a clean end of stream it returns io.EOF; a stream that
// ends inside a message gives an error wrapping io.ErrUnexpectedEOF.
func ReadMessage(r *bufio.Reader, maxSize int) (Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return Message{}, io.EOF
		}
		return Message{}, fmt.Errorf("hub protocol: reading message size: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size == 0 {
		return Message{}, fmt.Errorf("hub protocol: message size 0 (no type byte): %w", ErrMalformed)
	}
	if uint64(size) > uint64(maxSize) {
		return Message{}, fmt.Errorf("hub protocol: message size %d above the limit of %d: %w", size, maxSize, ErrMalformed)
	}
	frame := make([]byte, size)
	if _, err := io.ReadFull(r, frame); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Message{}, fmt.Errorf("hub protocol: reading a %d-byte message: %w", size, err)
	}
	return Decode(frame)
}
