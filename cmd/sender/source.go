package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// source produces the messages of one run, in order. It is not safe for
// concurrent use.
type source interface {
	// next appends the wire bytes of the next message to wire and returns
	// the extended slice and the offsets [logStart, len(out)) of the message
	// as logged in sent.txt. ok is false, and wire is returned unchanged,
	// when the input is exhausted. next does not allocate once wire has
	// enough capacity.
	next(wire []byte) (out []byte, logStart int, ok bool)
}

// newSource builds the source described by cfg. File input is read and
// framed completely here, before any connection is made.
func newSource(cfg *config) (source, error) {
	switch {
	case len(cfg.files) > 0:
		recs := &recordSource{repeat: cfg.repeat}
		for _, name := range cfg.files {
			data, err := os.ReadFile(name)
			if err != nil {
				return nil, fmt.Errorf("read --file: %w", err)
			}
			switch {
			case !cfg.binary:
				recs.addLines(data)
			case cfg.variableSize:
				err = recs.addFramed(data)
			default:
				err = recs.addChunks(data, int(cfg.msgSize))
			}
			if err != nil {
				return nil, fmt.Errorf("file %q: %w", name, err)
			}
		}
		if cfg.repeat && len(recs.recs) == 0 && cfg.messages > 0 {
			return nil, errors.New("--repeat: the files contain no messages")
		}
		return recs, nil
	case cfg.u64:
		return &u64Source{n: cfg.startFrom, partition: []byte(cfg.partition), framed: !cfg.binary}, nil
	default:
		return &counterSource{n: cfg.startFrom, framed: !cfg.binary}, nil
	}
}

// appendHeader appends a big-endian uint32 length placeholder and returns
// the extended slice; fillHeader later stores the length of what follows.
func appendHeader(b []byte) []byte { return append(b, 0, 0, 0, 0) }

// fillHeader stores len(b)-at-4 at b[at:at+4].
func fillHeader(b []byte, at int) { binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4)) }

// counterSource generates decimal text "n+1", "n+2", ... forever.
type counterSource struct {
	n      uint64
	framed bool // add a uint32 length header
}

func (s *counterSource) next(wire []byte) ([]byte, int, bool) {
	s.n++
	start := len(wire)
	if s.framed {
		wire = appendHeader(wire)
	}
	logStart := len(wire)
	wire = strconv.AppendUint(wire, s.n, 10)
	if s.framed {
		fillHeader(wire, start)
	}
	return wire, logStart, true
}

// u64Source generates records uint32(8+len(p)) · uint64(n) · p forever.
type u64Source struct {
	n         uint64
	partition []byte
	framed    bool // add a second uint32 length header (Giles quirk)
}

func (s *u64Source) next(wire []byte) ([]byte, int, bool) {
	s.n++
	start := len(wire)
	if s.framed {
		wire = appendHeader(wire)
	}
	logStart := len(wire)
	wire = binary.BigEndian.AppendUint32(wire, uint32(8+len(s.partition)))
	wire = binary.BigEndian.AppendUint64(wire, s.n)
	wire = append(wire, s.partition...)
	if s.framed {
		fillHeader(wire, start)
	}
	return wire, logStart, true
}

// record locates one pre-built message in recordSource.wire.
type record struct {
	start    int // first wire byte
	logStart int // first byte logged in sent.txt
	end      int // one past the last wire byte (and logged byte)
}

// recordSource replays messages read from files, whose wire frames were
// built once when the files were loaded.
type recordSource struct {
	wire   []byte
	recs   []record
	pos    int
	repeat bool
}

func (s *recordSource) next(wire []byte) ([]byte, int, bool) {
	if s.pos == len(s.recs) {
		if !s.repeat || len(s.recs) == 0 {
			return wire, len(wire), false
		}
		s.pos = 0
	}
	r := s.recs[s.pos]
	s.pos++
	base := len(wire) - r.start
	wire = append(wire, s.wire[r.start:r.end]...)
	return wire, base + r.logStart, true
}

// addLines adds every non-empty line of a text file, without its "\n" or
// "\r\n" terminator, framed with a uint32 length header.
func (s *recordSource) addLines(data []byte) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		start := len(s.wire)
		s.wire = appendHeader(s.wire)
		s.wire = append(s.wire, line...)
		fillHeader(s.wire, start)
		s.recs = append(s.recs, record{start: start, logStart: start + 4, end: len(s.wire)})
	}
}

// addFramed adds every uint32-framed record of a binary file unchanged.
// Zero-length records are skipped, as Giles did: Wallaroo 0.6 sources lose
// their framing on them (spec Appendix A item 8).
func (s *recordSource) addFramed(data []byte) error {
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return fmt.Errorf("truncated length header at offset %d", off)
		}
		n := int(binary.BigEndian.Uint32(data[off:]))
		if len(data)-off-4 < n {
			return fmt.Errorf("record at offset %d needs %d bytes, only %d left", off, n, len(data)-off-4)
		}
		if n > 0 {
			start := len(s.wire)
			s.wire = append(s.wire, data[off:off+4+n]...)
			s.recs = append(s.recs, record{start: start, logStart: start + 4, end: len(s.wire)})
		}
		off += 4 + n
	}
	return nil
}

// addChunks adds consecutive size-byte chunks of a binary file unchanged.
func (s *recordSource) addChunks(data []byte, size int) error {
	if len(data)%size != 0 {
		return fmt.Errorf("size %d is not a multiple of --msg-size %d", len(data), size)
	}
	for off := 0; off < len(data); off += size {
		start := len(s.wire)
		s.wire = append(s.wire, data[off:off+size]...)
		s.recs = append(s.recs, record{start: start, logStart: start, end: len(s.wire)})
	}
	return nil
}
