package main

import (
	"bytes"
	"slices"
	"testing"
)

// drain takes up to n messages from src and returns the wire bytes and the
// logged messages.
func drain(src source, n int) ([]byte, []string) {
	var wire []byte
	var logged []string
	for range n {
		var start int
		var ok bool
		if wire, start, ok = src.next(wire); !ok {
			break
		}
		logged = append(logged, string(wire[start:]))
	}
	return wire, logged
}

func TestRecordSource_Logged(t *testing.T) {
	s := &recordSource{}
	s.addLines([]byte("a\nbb\n"))
	if err := s.addFramed(frame("ccc")); err != nil {
		t.Fatal(err)
	}
	if err := s.addChunks([]byte("dddd"), 2); err != nil {
		t.Fatal(err)
	}
	wire, logged := drain(s, 10)
	if want := cat(frame("a", "bb", "ccc"), []byte("dddd")); !bytes.Equal(wire, want) {
		t.Errorf("wire %q, want %q", wire, want)
	}
	if want := []string{"a", "bb", "ccc", "dd", "dd"}; !slices.Equal(logged, want) {
		t.Errorf("logged %q, want %q", logged, want)
	}
}

func TestGenerators_Logged(t *testing.T) {
	_, logged := drain(&counterSource{n: 9, framed: true}, 2)
	if want := []string{"10", "11"}; !slices.Equal(logged, want) {
		t.Errorf("counter logged %q, want %q", logged, want)
	}
	_, logged = drain(&u64Source{partition: []byte("p"), framed: true}, 1)
	if want := []string{string(u64rec(1, "p"))}; !slices.Equal(logged, want) {
		t.Errorf("u64 logged %q, want %q", logged, want)
	}
}
