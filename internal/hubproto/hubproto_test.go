package hubproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

// unhex decodes hex written with spaces between groups.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBin(t *testing.T) {
	cases := []struct {
		v    uint64
		want int
	}{
		{0, 0}, {1, 1}, {2, 2}, {3, 2}, {4, 3}, {7, 3}, {8, 4},
		{1000, 10}, {1023, 10}, {1024, 11},
		{1 << 62, 63}, {1<<63 - 1, 63}, {1 << 63, 64}, {math.MaxUint64, 64},
	}
	for _, c := range cases {
		if got := Bin(c.v); got != c.want {
			t.Errorf("Bin(%d) = %d, want %d", c.v, got, c.want)
		}
	}
}

func TestAppendConnect(t *testing.T) {
	if got, want := AppendConnect([]byte{9}), []byte{9, 0, 0, 0, 1, 1}; !bytes.Equal(got, want) {
		t.Fatalf("AppendConnect = % x, want % x", got, want)
	}
}

func TestAppendJoin(t *testing.T) {
	got := AppendJoin(nil, "metrics:wc", "w1")
	want := unhex(t, `00000015 02
		0000000a 6d6574726963733a7763
		00000002 7731`)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendJoin =\n% x\nwant\n% x", got, want)
	}
}

// sampleRecord has strings of 5 + 11 + 2 + 1 = 19 bytes.
func sampleRecord() *Record {
	r := &Record{Name: "Split", Category: "computation", Worker: "w1", Pipeline: "P", ID: 0x0102,
		Period: Period, PeriodEnd: 0x1122334455667788}
	r.Reset()
	r.Observe(0)
	r.Observe(5)
	r.Observe(6)
	r.Observe(1 << 63)
	return r
}

func TestAppendPayload_ExactBytes(t *testing.T) {
	got := AppendPayload(nil, "metrics:wc", sampleRecord())
	// size 623 = 1 + (4+7) + (4+10) + 4 + data 593;
	// data = inner_size + 4 strings (16+19) + id 2 + 65*8 bins + 4*8.
	head := unhex(t, `0000026f 03
		00000007 6d657472696373
		0000000a 6d6574726963733a7763
		00000251
		000002e5
		00000005 53706c6974
		0000000b 636f6d7075746174696f6e
		00000002 7731
		00000001 50
		0102`)
	var bins []byte
	for i := 0; i < Bins; i++ {
		var c uint64
		switch i {
		case 0, 64:
			c = 1
		case 3:
			c = 2
		}
		bins = binary.BigEndian.AppendUint64(bins, c)
	}
	tail := unhex(t, `0000000000000000 8000000000000000 0000000077359400 1122334455667788`)
	want := append(append(head, bins...), tail...)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendPayload =\n% x\nwant\n% x", got, want)
	}
	if int(binary.BigEndian.Uint32(got)) != len(got)-4 {
		t.Fatalf("size field %d, frame has %d bytes", binary.BigEndian.Uint32(got), len(got)-4)
	}
}

func TestDecode_RoundTrip(t *testing.T) {
	r := sampleRecord()
	var stream []byte
	stream = AppendConnect(stream)
	stream = AppendJoin(stream, "metrics:wc", "w1")
	stream = AppendPayload(stream, "metrics:wc", r)
	empty := &Record{Name: "n", Category: CategoryStartToEnd, Period: Period}
	empty.Reset()
	stream = AppendPayload(stream, "metrics:wc", empty)

	want := []Message{
		{Type: TypeConnect},
		{Type: TypeJoin, Topic: "metrics:wc", Worker: "w1"},
		{Type: TypePayload, Event: "metrics", Topic: "metrics:wc", Record: r},
		{Type: TypePayload, Event: "metrics", Topic: "metrics:wc", Record: empty},
	}
	for name, rd := range map[string]io.Reader{
		"whole":    bytes.NewReader(stream),
		"bytewise": iotest.OneByteReader(bytes.NewReader(stream)),
	} {
		br := bufio.NewReader(rd)
		for i, w := range want {
			m, err := ReadMessage(br, 1<<16)
			if err != nil {
				t.Fatalf("%s: message %d: %v", name, i, err)
			}
			if m.Type != w.Type || m.Topic != w.Topic || m.Worker != w.Worker || m.Event != w.Event ||
				(m.Record == nil) != (w.Record == nil) || (m.Record != nil && *m.Record != *w.Record) {
				t.Fatalf("%s: message %d = %+v, want %+v", name, i, m, w)
			}
		}
		if _, err := ReadMessage(br, 1<<16); err != io.EOF {
			t.Fatalf("%s: after the last message: %v, want io.EOF", name, err)
		}
	}
	if empty.Count() != 0 || empty.Min != math.MaxUint64 || r.Count() != 4 || r.Min != 0 || r.Max != 1<<63 {
		t.Fatalf("Count/Min/Max: empty %d %d, sample %d %d %d", empty.Count(), empty.Min, r.Count(), r.Min, r.Max)
	}
}

func TestDecode_OtherEventHasNoRecord(t *testing.T) {
	frame := unhex(t, `03 00000001 78 00000001 74 00000003 010203`)
	m, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if m.Event != "x" || m.Topic != "t" || m.Record != nil {
		t.Fatalf("Decode = %+v", m)
	}
}

func TestDecode_Errors(t *testing.T) {
	payload := AppendPayload(nil, "metrics:wc", sampleRecord())[4:]
	cases := []struct {
		name   string
		frame  []byte
		offset int
		reason string
	}{
		{"empty", nil, 0, "empty frame"},
		{"unknown type", []byte{7}, 0, "unknown message type 7"},
		{"connect with a body", []byte{1, 0}, 1, "1 unexpected trailing bytes"},
		{"join topic length cut", unhex(t, `02 0000`), 1, "join topic length needs 4 bytes, only 2 left"},
		{"join topic too long", unhex(t, `02 000000ff 61`), 1, "join topic length 255 exceeds the 1 bytes left"},
		{"join without worker", unhex(t, `02 00000001 61`), 6, "join worker name length needs 4 bytes"},
		{"join trailing", unhex(t, `02 00000001 61 00000000 ff`), 10, "1 unexpected trailing bytes"},
		{"payload data length too big", unhex(t, `03 00000001 78 00000001 74 00000004 010203`), 11,
			"payload data length 4 does not match the 3 bytes left"},
		{"payload data length too small", unhex(t, `03 00000001 78 00000001 74 00000002 010203`), 11,
			"payload data length 2 does not match the 3 bytes left"},
		{"record cut in the bins", cutPayload(payload, 100), 71, "histogram bins, min, max, period and period end needs 552 bytes, only 59 left"},
		{"record string too long", setU32(payload, 34, 1000), 34, "metric name length 1000 exceeds"},
		{"record longer than its fields", growPayload(payload, 1), len(payload), "1 unexpected trailing bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.frame)
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error = %v, want a *FormatError", err)
			}
			if fe.Offset != c.offset || !strings.Contains(fe.Reason, c.reason) {
				t.Fatalf("Decode error = %q (offset %d), want offset %d and %q", err, fe.Offset, c.offset, c.reason)
			}
		})
	}
}

// cutPayload returns payload (a frame without its size) with its record
// cut to n bytes after the record's first byte, data_len adjusted.
func cutPayload(frame []byte, n int) []byte {
	const dataAt = 1 + 4 + 7 + 4 + 10 // offset of data_len
	out := append([]byte(nil), frame[:dataAt+4+n]...)
	binary.BigEndian.PutUint32(out[dataAt:], uint32(n))
	return out
}

// growPayload appends extra zero bytes to the record, data_len adjusted.
func growPayload(frame []byte, extra int) []byte {
	const dataAt = 1 + 4 + 7 + 4 + 10
	out := append(append([]byte(nil), frame...), make([]byte, extra)...)
	binary.BigEndian.PutUint32(out[dataAt:], uint32(len(out)-dataAt-4))
	return out
}

func setU32(frame []byte, at int, v uint32) []byte {
	out := append([]byte(nil), frame...)
	binary.BigEndian.PutUint32(out[at:], v)
	return out
}

func TestReadMessage_Errors(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want string
		is   error
	}{
		{"size cut", []byte{0, 0}, "reading message size", io.ErrUnexpectedEOF},
		{"zero size", []byte{0, 0, 0, 0}, "message size 0", ErrMalformed},
		{"too big", []byte{0, 1, 0, 0, 2}, "message size 65536 above the limit of 1000", ErrMalformed},
		{"body cut", []byte{0, 0, 0, 5, 2, 0}, "reading a 5-byte message", io.ErrUnexpectedEOF},
		{"bad body", []byte{0, 0, 0, 1, 9}, "unknown message type 9 at frame offset 0", ErrMalformed},
	}
	for _, c := range cases {
		_, err := ReadMessage(bufio.NewReader(bytes.NewReader(c.in)), 1000)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.is) {
			t.Errorf("%s: ReadMessage error = %v, want %q wrapping %v", c.name, err, c.want, c.is)
		}
	}
}

// FuzzDecode checks that Decode never panics, that whatever it accepts
// encodes back to the same bytes (for Connect, Join and metrics
// Payloads, apart from the ignored inner_size), and that ReadMessage
// reads a framed copy the same way.
func FuzzDecode(f *testing.F) {
	f.Add(AppendConnect(nil)[4:])
	f.Add(AppendJoin(nil, "metrics:wc", "w1")[4:])
	f.Add(AppendPayload(nil, "metrics:wc", sampleRecord())[4:])
	f.Add([]byte{3, 0, 0, 0, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Decode(frame)
		framed := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
		framed = append(framed, frame...)
		m2, err2 := ReadMessage(bufio.NewReader(bytes.NewReader(framed)), 1<<20)
		if len(frame) > 0 && (err == nil) != (err2 == nil) {
			t.Fatalf("Decode: %v; ReadMessage: %v", err, err2)
		}
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > len(frame) {
				t.Fatalf("Decode error %v is not a *FormatError within the frame", err)
			}
			return
		}
		if m.Type != m2.Type || m.Topic != m2.Topic || (m.Record == nil) != (m2.Record == nil) {
			t.Fatalf("Decode %+v, ReadMessage %+v", m, m2)
		}
		var again []byte
		switch {
		case m.Type == TypeConnect:
			again = AppendConnect(nil)
		case m.Type == TypeJoin:
			again = AppendJoin(nil, m.Topic, m.Worker)
		case m.Record != nil:
			again = AppendPayload(nil, m.Topic, m.Record)
			const innerAt = 4 + 1 + 4 + len(MetricsEvent) // plus topic below
			at := innerAt + 4 + len(m.Topic) + 4
			copy(again[at:at+4], frame[at-4:at]) // inner_size is not checked
		default:
			return
		}
		if !bytes.Equal(again[4:], frame) {
			t.Fatalf("re-encoded\n% x\nwant\n% x", again[4:], frame)
		}
	})
}
