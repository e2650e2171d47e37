package main

import (
	"bytes"
	"errors"
	"testing"
)

func TestIndexNth(t *testing.T) {
	b := []byte("a\nb\nc\n")
	for n, want := range []int{-1, 1, 3, 5, -1} {
		if n == 0 {
			continue
		}
		if got := indexNth(b, '\n', n); got != want {
			t.Errorf("indexNth(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestOutput_LimitCutsChunks(t *testing.T) {
	var buf bytes.Buffer
	o := newOutput(&buf, nil, 4)
	o.writeLines([]byte("1\n2\npart"))                     // 2 lines and a partial one
	o.writeRecords([]byte("r3\nr4\nr5\n"), []int{3, 6, 9}) // cut after r4
	o.writeLines([]byte("6\n"))                            // past the limit: dropped
	select {
	case <-o.reached:
	default:
		t.Fatal("limit reached but not signalled")
	}
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "1\n2\npartr3\nr4\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	if n := o.received(); n != 4 {
		t.Errorf("received %d, want 4", n)
	}
}

func TestOutput_DiscardCounts(t *testing.T) {
	o := newOutput(nil, nil, 0)
	o.writeLines([]byte("a\nb\n"))
	o.writeRecords([]byte("c\n"), []int{2})
	if n := o.received(); n != 3 {
		t.Errorf("received %d, want 3", n)
	}
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestOutput_WriteErrorIsReported(t *testing.T) {
	o := newOutput(failingWriter{}, nil, 0)
	o.writeLines([]byte("a\n"))
	o.flush()
	select {
	case <-o.failed:
	default:
		t.Fatal("write error not signalled")
	}
	if err := o.close(); err == nil || err.Error() != "write output: disk full" {
		t.Errorf("close() = %v, want write output: disk full", err)
	}
}
