// Package extframe is the client side of the external channel's frame
// format (runtime spec 3.7): uint32 BE length (2 + payload), uint16 BE
// message id, payload. The operator tools share it; the server has its own
// in engine/external. Pure functions, safe for concurrent use.
package extframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxLen is the largest reply frame accepted. Replies can list every
// key of a worker, so the limit is generous; it only guards against
// garbage.
const MaxLen = 256 << 20

// Append appends an external channel frame: uint32 BE 2+len(payload),
// uint16 BE id, payload.
func Append(b []byte, id uint16, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(2+len(payload)))
	b = binary.BigEndian.AppendUint16(b, id)
	return append(b, payload...)
}

// Read reads the next frame, skipping frames of length 0. It returns
// io.EOF if r ends before a frame and io.ErrUnexpectedEOF inside one.
func Read(r io.Reader) (id uint16, payload []byte, err error) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return 0, nil, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		switch {
		case n == 0:
			continue
		case n == 1 || n > MaxLen:
			return 0, nil, fmt.Errorf("malformed frame: length %d", n)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
		return binary.BigEndian.Uint16(body), body[2:], nil
	}
}
