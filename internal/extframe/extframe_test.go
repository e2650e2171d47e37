package extframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// rawFrame returns a frame with an explicit length field.
func rawFrame(length uint32, body ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, length), body...)
}

func TestRead(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		want    []Frame
		wantErr error
	}{
		{"empty input", nil, nil, io.EOF},
		{"one frame", Append(nil, MsgPrint, []byte("hi")), []Frame{{MsgPrint, []byte("hi")}}, io.EOF},
		{"empty payload", Append(nil, MsgPartitionQuery, nil), []Frame{{MsgPartitionQuery, []byte{}}}, io.EOF},
		{"zero-length frames skipped",
			bytes.Join([][]byte{rawFrame(0), rawFrame(0), Append(nil, MsgPrint, []byte("a")), rawFrame(0)}, nil),
			[]Frame{{MsgPrint, []byte("a")}}, io.EOF},
		{"two frames",
			Append(Append(nil, MsgClusterStatusQuery, nil), MsgRotateLog, []byte("w1")),
			[]Frame{{MsgClusterStatusQuery, []byte{}}, {MsgRotateLog, []byte("w1")}}, io.EOF},
		{"length 1", rawFrame(1, 0), nil, ErrMalformed},
		{"length above limit", rawFrame(MaxRequestLen + 1), nil, ErrMalformed},
		{"length at limit, truncated", rawFrame(MaxRequestLen, 0, 1), nil, io.ErrUnexpectedEOF},
		{"truncated header", []byte{0, 0}, nil, io.ErrUnexpectedEOF},
		{"truncated body", rawFrame(5, 0, 1, 'a'), nil, io.ErrUnexpectedEOF},
		{"truncated id", rawFrame(2, 0), nil, io.ErrUnexpectedEOF},
	}
	// What the error says, where it says more than its kind.
	says := map[string]string{
		"truncated header": "a frame header cut short after 2 of its 4 bytes",
		"truncated body":   "a 5-byte message cut short after 3 bytes",
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time as well: frames cut at every offset.
			for _, r := range []io.Reader{bytes.NewReader(tc.in), iotest.OneByteReader(bytes.NewReader(tc.in))} {
				var got []Frame
				var err error
				for {
					var f Frame
					if f, err = Read(r, MaxRequestLen); err != nil {
						break
					}
					got = append(got, f)
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), says[tc.name]) {
					t.Fatalf("error %q, want it to say %q", err, says[tc.name])
				}
				if len(got) != len(tc.want) {
					t.Fatalf("frames %v, want %v", got, tc.want)
				}
				for i := range got {
					if got[i].ID != tc.want[i].ID || !bytes.Equal(got[i].Payload, tc.want[i].Payload) {
						t.Fatalf("frame %d = %v, want %v", i, got[i], tc.want[i])
					}
				}
			}
		})
	}
}

func TestAppend_Bytes(t *testing.T) {
	got := Append([]byte{9}, MsgShrinkErrorResponse, []byte("ok"))
	want := []byte{9, 0, 0, 0, 4, 0, 6, 'o', 'k'}
	if !bytes.Equal(got, want) {
		t.Fatalf("Append = % x, want % x", got, want)
	}
}

func TestMsgID_String(t *testing.T) {
	for id, want := range map[MsgID]string{
		MsgPrint: "Print", MsgSourceIDsQuery: "SourceIdsQuery",
		MsgStatelessPartitionCountQueryResponse: "StatelessPartitionCountQueryResponse",
		0:                                       "MsgID(0)", 25: "MsgID(25)", 65535: "MsgID(65535)",
	} {
		if got := id.String(); got != want {
			t.Errorf("MsgID(%d).String() = %q, want %q", uint16(id), got, want)
		}
	}
}

// FuzzReadFrame checks that Read never panics, never returns a frame
// above the limit, reads the same frames whatever the read sizes, and that
// re-encoding what it read reads back the same.
func FuzzReadFrame(f *testing.F) {
	f.Add(Append(rawFrame(0), MsgPrint, []byte("hello")))
	f.Add(rawFrame(1, 0))
	f.Add(rawFrame(MaxRequestLen + 1))
	f.Add(Append(Append(nil, MsgShrinkRequest, []byte(`{"query":true}`)), 99, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		readAll := func(r io.Reader) ([]Frame, error) {
			var fs []Frame
			for {
				fr, err := Read(r, MaxRequestLen)
				if err != nil {
					return fs, err
				}
				if len(fr.Payload)+2 > MaxRequestLen {
					t.Fatalf("payload of %d bytes is above the limit", len(fr.Payload))
				}
				fs = append(fs, fr)
			}
		}
		whole, errWhole := readAll(bytes.NewReader(in))
		bytewise, errBytewise := readAll(iotest.OneByteReader(bytes.NewReader(in)))
		if errWhole.Error() != errBytewise.Error() || len(whole) != len(bytewise) {
			t.Fatalf("whole: %d frames, %v; byte-wise: %d frames, %v", len(whole), errWhole, len(bytewise), errBytewise)
		}
		var again []byte
		for i, fr := range whole {
			if fr.ID != bytewise[i].ID || !bytes.Equal(fr.Payload, bytewise[i].Payload) {
				t.Fatalf("frame %d differs: %v vs %v", i, fr, bytewise[i])
			}
			again = Append(again, fr.ID, fr.Payload)
		}
		round, err := readAll(bytes.NewReader(again))
		if err != io.EOF || len(round) != len(whole) {
			t.Fatalf("re-encoded: %d frames, %v; want %d, EOF", len(round), err, len(whole))
		}
		for i := range round {
			if round[i].ID != whole[i].ID || !bytes.Equal(round[i].Payload, whole[i].Payload) {
				t.Fatalf("re-encoded frame %d = %v, want %v", i, round[i], whole[i])
			}
		}
	})
}
