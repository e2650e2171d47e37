package extframe

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestRoundTripSkipsEmptyFrames(t *testing.T) {
	var b []byte
	b = append(b, 0, 0, 0, 0) // a length-0 frame is ignored
	b = Append(b, 10, []byte(`{"worker_count":1}`))
	b = Append(b, 11, nil)
	r := bytes.NewReader(b)
	id, p, err := Read(r)
	if err != nil || id != 10 || string(p) != `{"worker_count":1}` {
		t.Fatalf("first = %d %q %v", id, p, err)
	}
	id, p, err = Read(r)
	if err != nil || id != 11 || len(p) != 0 {
		t.Fatalf("second = %d %q %v", id, p, err)
	}
	if _, _, err := Read(r); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
}

func TestMalformedAndTruncated(t *testing.T) {
	if _, _, err := Read(bytes.NewReader([]byte{0, 0, 0, 1, 9})); err == nil {
		t.Error("length 1 accepted")
	}
	frame := Append(nil, 3, []byte("abc"))
	if _, _, err := Read(bytes.NewReader(frame[:len(frame)-1])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
}
