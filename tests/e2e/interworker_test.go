package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
)

// A black-box rendering of the inter-worker wire format, written from its
// description (engine/cluster's doc comments) rather than imported, so the
// fault tests check the format the workers really speak: a frame is a u32
// big-endian length of what follows, a kind byte, the payload; strings
// are a u32 length and the bytes.
type wireKind uint8

const (
	wireHello     wireKind = 1
	wireRefuse    wireKind = 2
	wireEnvelopes wireKind = 12
)

// wireVersion is the version the workers of this build speak.
const wireVersion = 18

type wireChannel uint8

const (
	wireControl wireChannel = 1
	wireData    wireChannel = 2
)

type wireHelloMsg struct {
	Version     uint16
	App         string
	Digest      string
	PyMajor     uint8
	Worker      string
	Channel     wireChannel
	Restart     bool
	Incarnation uint64
	Resilient   bool
}

func wireStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func (h wireHelloMsg) encode() []byte {
	b := binary.BigEndian.AppendUint16(nil, h.Version)
	b = wireStr(b, h.App)
	b = wireStr(b, h.Digest)
	b = append(b, h.PyMajor)
	b = wireStr(b, h.Worker)
	b = append(b, byte(h.Channel))
	if h.Restart {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, h.Incarnation)
	if h.Resilient {
		return append(b, 1)
	}
	return append(b, 0)
}

// wireEnvelopeBatch encodes an envelope batch payload: seq, count, data.
func wireEnvelopeBatch(seq uint64, count uint32, data []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, seq)
	b = binary.BigEndian.AppendUint32(b, count)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func wireFrame(k wireKind, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)))
	b = append(b, byte(k))
	return append(b, payload...)
}

// wireRead reads one frame.
func wireRead(r io.Reader) (wireKind, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > 64<<20 {
		return 0, nil, fmt.Errorf("frame length %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return wireKind(buf[0]), buf[1:], nil
}

// wireText decodes a payload holding one string.
func wireText(p []byte) (string, error) {
	if len(p) < 4 || int(binary.BigEndian.Uint32(p)) != len(p)-4 {
		return "", fmt.Errorf("not a text payload: % x", p)
	}
	return string(p[4:]), nil
}
