package e2e

import (
	"encoding/binary"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// header packs n as a struct format of one integer would.
func header(format string, n int) []byte {
	var order binary.AppendByteOrder = binary.BigEndian
	switch format[0] {
	case '<', '=', '@':
		order = binary.LittleEndian
	}
	switch strings.TrimLeft(format, "<>!=@") {
	case "b", "B":
		return []byte{byte(n)}
	case "h", "H":
		return order.AppendUint16(nil, uint16(n))
	case "i", "I", "l", "L":
		if format[0] == '@' && strings.ContainsAny(format, "lL") {
			return order.AppendUint64(nil, uint64(n))
		}
		return order.AppendUint32(nil, uint32(n))
	case "q", "Q":
		return order.AppendUint64(nil, uint64(n))
	}
	panic("unknown format " + format)
}

// Every struct integer format a decoder may give as length_fmt frames the
// stream the same way: 1-, 2-, 4- and 8-byte headers, both byte orders.
func TestDecoder_EveryLengthFormat(t *testing.T) {
	formats := []string{"b", "B", ">h", ">H", "<H", "!H", ">i", ">I", "<I", "=I", "!I",
		"@I", ">l", "<L", ">q", ">Q", "<Q", "@Q", "@L"}
	for _, f := range formats {
		t.Run(f, func(t *testing.T) {
			s := newSink(t)
			in := freePort(t)
			m := machida(t, testdataDir(), "header_formats", in, s.addr(), "--length-fmt", f)
			m.waitOutput("Application has successfully initialized", 20*time.Second)
			c := dial(t, in)
			defer c.Close()
			var stream []byte
			var want []string
			for _, p := range []string{"first", "drop", "", "x", strings.Repeat("y", 100)} {
				stream = append(stream, header(f, len(p))...)
				stream = append(stream, p...)
				if p != "drop" {
					want = append(want, p)
				}
			}
			// Send it one byte at a time: headers split across reads too.
			for i := range stream {
				if _, err := c.Write(stream[i : i+1]); err != nil {
					t.Fatal(err)
				}
			}
			got := s.waitLines(t, len(want), 10*time.Second)
			if !slices.Equal(got, want) {
				t.Errorf("format %q: got %q, want %q", f, got, want)
			}
		})
	}
}

// A decoder class with its own payload_length (here a 3-byte header) is
// called for every header; when it raises, the worker logs why and closes
// that connection (and only that one): the connection that was open
// before, and a new one, keep working.
func TestDecoder_CustomPayloadLength(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	m := machida(t, testdataDir(), "header_formats", in, s.addr(), "--custom-header", "3")
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	c := dial(t, in)
	defer c.Close()
	for _, p := range []string{"abc", "drop", "hello"} {
		c.Write(append([]byte{0, 0, byte(len(p))}, p...))
	}
	if got := s.waitLines(t, 2, 10*time.Second); !slices.Equal(got, []string{"abc", "hello"}) {
		t.Errorf("got %q", got)
	}
	bad := dial(t, in)
	defer bad.Close()
	if _, err := bad.Write([]byte{0xff, 0, 1, 'z'}); err != nil {
		t.Fatal(err)
	}
	// The reason is logged with the connection it closed.
	m.waitOutput("connection from "+bad.LocalAddr().String()+" closed: bad frame header ff0001: "+
		"payload_length() raised ValueError: header starts with 0xff", 10*time.Second)
	// The worker closes the bad connection: reading it ends (EOF or a
	// reset) instead of waiting for data that never comes.
	bad.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := bad.Read(make([]byte, 64)); err == nil {
		t.Errorf("read %d bytes from the bad connection; want it closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the worker did not close the connection whose payload_length raised")
	}
	c.Write(append([]byte{0, 0, 4}, "more"...))
	other := dial(t, in)
	defer other.Close()
	other.Write(append([]byte{0, 0, 5}, "other"...))
	got := s.waitLines(t, 4, 10*time.Second)
	slices.Sort(got[2:]) // two connections: either order
	if !slices.Equal(got, []string{"abc", "hello", "more", "other"}) {
		t.Errorf("after a bad connection: %q, want abc, hello, then more and other", got)
	}
}

// The clear errors of user code, each with its stage and exit 1.
func TestUserErrors(t *testing.T) {
	cases := []struct {
		name, module string
		extra        []string
		send         []string
		want         []string
	}{
		{"decoder raises", "header_formats", nil, []string{"raise"},
			[]string{"ValueError: the decoder was told to raise", "decoder", bytesRepr("raise")}},
		{"key extractor returns a float", "bad_key", nil, []string{"k"},
			[]string{"key extractor", "returned float", "must be str or bytes"}},
		{"encoder returns a list", "bad_encoder", nil, []string{"k"},
			[]string{"encoder", "returned list", "must return bytes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSink(t)
			in := freePort(t)
			m := machida(t, testdataDir(), c.module, in, s.addr(), c.extra...)
			m.waitOutput("Application has successfully initialized", 20*time.Second)
			conn := dial(t, in)
			defer conn.Close()
			send(t, conn, c.send...)
			if code := m.wait(20 * time.Second); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			for _, w := range c.want {
				if !strings.Contains(m.stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, m.stderr.String())
				}
			}
			for _, stage := range []string{"decoder", "key extractor", "encoder"} {
				if strings.Contains(m.stderr.String(), stage+" "+stage) {
					t.Errorf("stderr says %q twice:\n%s", stage, m.stderr.String())
				}
			}
		})
	}
	t.Run("wrong arity", func(t *testing.T) {
		p := start(t, testdataDir(), "machida3", "--application-module", "bad_arity")
		if code := p.wait(20 * time.Second); code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		for _, w := range []string{"WallarooParameterError", "two arguments", "1 parameter", "Could not load module 'bad_arity'"} {
			if !strings.Contains(p.stderr.String()+p.stdout.String(), w) {
				t.Errorf("output lacks %q:\n%s%s", w, p.stdout.String(), p.stderr.String())
			}
		}
	})
}
