package source

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// be32 is the framing every shipped Wallaroo test uses: ">I".
func be32(t testing.TB) Framer {
	t.Helper()
	n, fn, err := ParseLengthFormat(">I")
	if err != nil {
		t.Fatal(err)
	}
	return Framer{HeaderLen: n, Length: fn, MaxPayload: 1 << 20}
}

// frame32 encodes payloads with 4-byte big-endian length headers.
func frame32(payloads ...string) []byte {
	var out []byte
	for _, p := range payloads {
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

// frames returns the payloads of b as strings, checking Ends is sane.
func frames(t testing.TB, b Batch) []string {
	t.Helper()
	var out []string
	prev := int32(0)
	for i, end := range b.Ends {
		if end < prev || int(end) > len(b.Buf) {
			t.Fatalf("batch end %d = %d after %d with %d bytes", i, end, prev, len(b.Buf))
		}
		out = append(out, string(b.Frame(i)))
		prev = end
	}
	if int(prev) != len(b.Buf) {
		t.Fatalf("batch has %d bytes but frames end at %d", len(b.Buf), prev)
	}
	return out
}

// feedAll feeds the pieces in order into one stream, delivering after each
// piece, and returns every frame seen and the first error.
func feedAll(t testing.TB, f Framer, maxFrames int, pieces ...[]byte) ([]string, error) {
	t.Helper()
	s := f.NewStream()
	var got []string
	for _, p := range pieces {
		for {
			var b Batch
			n, err := s.Feed(&b, p, maxFrames)
			got = append(got, frames(t, b)...)
			if err != nil {
				return got, err
			}
			if maxFrames > 0 && b.Len() > maxFrames {
				t.Fatalf("batch of %d frames, max %d", b.Len(), maxFrames)
			}
			p = p[n:]
			if len(p) == 0 {
				break
			}
			if maxFrames <= 0 || b.Len() != maxFrames {
				t.Fatalf("Feed stopped after %d frames with %d bytes left", b.Len(), len(p))
			}
		}
	}
	return got, s.Finish()
}

func TestStream_SplitAtEveryOffset(t *testing.T) {
	f := be32(t)
	want := []string{"hello", "", "a", strings.Repeat("x", 300), "", "world"}
	stream := frame32(want...)

	// Whole, one byte at a time, and cut once at every offset.
	got, err := feedAll(t, f, 0, stream)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("whole: got %q, %v", got, err)
	}
	var bytewise [][]byte
	for i := range stream {
		bytewise = append(bytewise, stream[i:i+1])
	}
	got, err = feedAll(t, f, 0, bytewise...)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("bytewise: got %q, %v", got, err)
	}
	for cut := 0; cut <= len(stream); cut++ {
		for _, maxFrames := range []int{0, 1, 2} {
			got, err := feedAll(t, f, maxFrames, stream[:cut], stream[cut:])
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("cut at %d, max %d: got %q, %v", cut, maxFrames, got, err)
			}
		}
	}
}

// TestStream_StateAfterEachFragment follows one frame through the states
// it passes, as nats' split_test does with its parser.
func TestStream_StateAfterEachFragment(t *testing.T) {
	f := be32(t)
	stream := frame32("abcdefghi")
	s := f.NewStream()
	wantState := []string{
		"truncated frame: got 1 of 4 header bytes",
		"truncated frame: got 2 of 4 header bytes",
		"truncated frame: got 3 of 4 header bytes",
		"truncated frame: got 0 of 9 payload bytes",
	}
	for i := 1; i <= 9; i++ {
		wantState = append(wantState, fmt.Sprintf("truncated frame: got %d of 9 payload bytes", i))
	}
	wantState[len(wantState)-1] = "" // complete
	for i, c := range stream {
		var b Batch
		if n, err := s.Feed(&b, []byte{c}, 0); n != 1 || err != nil {
			t.Fatalf("byte %d: Feed = %d, %v", i, n, err)
		}
		state := ""
		if err := s.Finish(); err != nil {
			state = err.Error()
		}
		if state != wantState[i] {
			t.Fatalf("after byte %d: state %q, want %q", i, state, wantState[i])
		}
		if complete := i == len(stream)-1; complete != (b.Len() == 1) {
			t.Fatalf("after byte %d: %d frames", i, b.Len())
		}
	}
}

func TestStream_AllocatesExactly(t *testing.T) {
	f := be32(t)
	s := f.NewStream()
	stream := frame32("one", "two", "three", "four")
	var b Batch
	if _, err := s.Feed(&b, stream[:20], 0); err != nil { // "one", "two", part of "three"
		t.Fatal(err)
	}
	if len(b.Buf) != 6 || cap(b.Buf) != 6 || cap(b.Ends) != 2 {
		t.Fatalf("first batch: len %d cap %d ends cap %d", len(b.Buf), cap(b.Buf), cap(b.Ends))
	}
	b = Batch{}
	if _, err := s.Feed(&b, stream[20:], 0); err != nil {
		t.Fatal(err)
	}
	if got := frames(t, b); !slices.Equal(got, []string{"three", "four"}) || cap(b.Buf) != 9 || cap(b.Ends) != 2 {
		t.Fatalf("second batch %q: cap %d, ends cap %d", got, cap(b.Buf), cap(b.Ends))
	}
	// Appending to a batch that has frames keeps them.
	s = f.NewStream()
	if _, err := s.Feed(&b, frame32("five"), 0); err != nil {
		t.Fatal(err)
	}
	if got := frames(t, b); !slices.Equal(got, []string{"three", "four", "five"}) {
		t.Fatalf("appended batch %q", got)
	}
}

func TestStream_Errors(t *testing.T) {
	errBad := errors.New("bad header")
	picky := Framer{HeaderLen: 1, MaxPayload: 10, Length: func(h []byte) (int, error) {
		switch h[0] {
		case 0xEE:
			return 0, errBad
		case 0xFF:
			return -1, nil
		}
		return int(h[0]), nil
	}}
	tests := []struct {
		name    string
		stream  []byte
		want    []string // frames delivered before the error
		wantErr string
	}{
		{"oversize", []byte{2, 'o', 'k', 11, 'x'}, []string{"ok"}, "frame of 11 bytes exceeds the limit of 10 bytes"},
		{"length func error", []byte{1, 'a', 0xEE, 'x'}, []string{"a"}, "bad frame header ee: bad header"},
		{"negative length", []byte{0xFF}, nil, "bad frame header ff: negative payload length -1"},
		{"at the limit", []byte{10, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}, []string{"0123456789"}, ""},
		{"truncated payload", []byte{1, 'a', 9, 'x', 'y', 'z'}, []string{"a"}, "truncated frame: got 3 of 9 payload bytes"},
		{"zero-length frames", []byte{0, 0, 1, 'z', 0}, []string{"", "", "z", ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for cut := 0; cut <= len(tt.stream); cut++ {
				got, err := feedAll(t, picky, 0, tt.stream[:cut], tt.stream[cut:])
				if !slices.Equal(got, tt.want) {
					t.Fatalf("cut %d: frames %q, want %q", cut, got, tt.want)
				}
				if errText(err) != tt.wantErr {
					t.Fatalf("cut %d: error %q, want %q", cut, errText(err), tt.wantErr)
				}
				if tt.name == "length func error" && !errors.Is(err, errBad) {
					t.Fatalf("error %v does not wrap the LengthFunc error", err)
				}
			}
		})
	}

	t.Run("sticky", func(t *testing.T) {
		s := picky.NewStream()
		var b Batch
		_, err := s.Feed(&b, []byte{0xEE}, 0)
		if err == nil {
			t.Fatal("no error")
		}
		if n, err2 := s.Feed(&b, []byte{1, 'a'}, 0); n != 0 || err2 != err || b.Len() != 0 {
			t.Fatalf("Feed after error = %d, %v with %d frames", n, err2, b.Len())
		}
		if s.Finish() != err {
			t.Fatalf("Finish after error = %v", s.Finish())
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fuzzFramer is a framer with a header of 1 to 4 big-endian bytes, a small
// limit, and a LengthFunc that fails on some values, so fuzzing reaches
// every error path.
func fuzzFramer(headerLen int) Framer {
	return Framer{HeaderLen: headerLen, MaxPayload: 64, Length: func(h []byte) (int, error) {
		var v int
		for _, c := range h {
			v = v<<8 | int(c)
		}
		if v%97 == 96 {
			return 0, fmt.Errorf("unlucky %d", v)
		}
		return v, nil
	}}
}

// naiveFrames is the reference: walk the whole stream at once.
func naiveFrames(f Framer, stream []byte) ([]string, string) {
	var got []string
	for len(stream) > 0 {
		if len(stream) < f.HeaderLen {
			return got, fmt.Sprintf("truncated frame: got %d of %d header bytes", len(stream), f.HeaderLen)
		}
		h := stream[:f.HeaderLen]
		n, err := f.Length(h)
		if err != nil {
			return got, fmt.Sprintf("bad frame header %x: %v", h, err)
		}
		if n > f.MaxPayload {
			return got, fmt.Sprintf("frame of %d bytes exceeds the limit of %d bytes", n, f.MaxPayload)
		}
		stream = stream[f.HeaderLen:]
		if len(stream) < n {
			return got, fmt.Sprintf("truncated frame: got %d of %d payload bytes", len(stream), n)
		}
		got = append(got, string(stream[:n]))
		stream = stream[n:]
	}
	return got, ""
}

func FuzzFramer(f *testing.F) {
	f.Add(uint8(1), uint8(0), []byte{3, 'a', 'b', 'c', 0, 1, 'z'}, []byte{1, 2, 3})
	f.Add(uint8(2), uint8(1), []byte{0, 2, 'h', 'i', 0, 0, 0}, []byte{5})
	f.Add(uint8(4), uint8(2), frame32("hello", "", "world"), []byte{3, 4, 1, 1, 9})
	f.Add(uint8(1), uint8(0), []byte{65, 'x'}, []byte{})          // oversize
	f.Add(uint8(1), uint8(0), []byte{1, 'a', 96, 'x'}, []byte{2}) // LengthFunc error
	f.Fuzz(func(t *testing.T, hdr, maxFrames uint8, stream, cuts []byte) {
		fr := fuzzFramer(int(hdr%4) + 1)
		want, wantErr := naiveFrames(fr, stream)

		// Cut the stream into pieces whose sizes come from cuts.
		var pieces [][]byte
		rest := stream
		for _, c := range cuts {
			k := min(int(c), len(rest))
			pieces = append(pieces, rest[:k])
			rest = rest[k:]
		}
		pieces = append(pieces, rest)

		whole, err := feedAll(t, fr, 0, stream)
		if !slices.Equal(whole, want) || errText(err) != wantErr {
			t.Fatalf("whole: %q, %q; reference %q, %q", whole, errText(err), want, wantErr)
		}
		split, err := feedAll(t, fr, int(maxFrames%4), pieces...)
		if !slices.Equal(split, want) || errText(err) != wantErr {
			t.Fatalf("split: %q, %q; reference %q, %q", split, errText(err), want, wantErr)
		}
		if !bytes.Equal(bytes.Join(pieces, nil), stream) {
			t.Fatal("pieces do not add up to the stream")
		}
	})
}
