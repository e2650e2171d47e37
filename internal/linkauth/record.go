package linkauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"sync"
)

// MaxRecord bounds the payload of one record; a longer write is cut
// into several records.
const MaxRecord = 1 << 20

// TagSize is the size of a record's MAC tag.
const TagSize = sha256.Size

// ErrRecord is wrapped by every record failure: a length out of range or
// a tag that does not verify (tampered, replayed, reordered, dropped).
var ErrRecord = errors.New("authenticated record rejected")

// sealer MACs the records of one direction. Owned by the writer.
type sealer struct {
	mac hash.Hash
	n   uint64 // records sealed so far
	hdr [12]byte
}

func newSealer(key []byte) *sealer { return &sealer{mac: hmac.New(sha256.New, key)} }

// seal returns the record's length header and tag for payload p
// (1 to MaxRecord bytes), and counts the record.
func (s *sealer) seal(p []byte, tag []byte) (hdr []byte, t []byte) {
	binary.BigEndian.PutUint64(s.hdr[:8], s.n)
	binary.BigEndian.PutUint32(s.hdr[8:], uint32(len(p)))
	s.n++
	s.mac.Reset()
	s.mac.Write(s.hdr[:])
	s.mac.Write(p)
	return s.hdr[8:], s.mac.Sum(tag[:0])
}

// Opener reads and verifies the records of one direction. Owned by the
// reader.
type Opener struct {
	r   io.Reader
	mac hash.Hash
	n   uint64
	buf []byte
	err error
}

// NewOpener reads records from r, verifying them with key.
func NewOpener(r io.Reader, key []byte) *Opener {
	return &Opener{r: r, mac: hmac.New(sha256.New, key)}
}

// Next returns the next record's verified payload (valid until the next
// call). io.EOF means the peer closed between records. Any error is
// final: every later call returns it.
func (o *Opener) Next() ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	p, err := o.next()
	if err != nil {
		o.err = err
	}
	return p, err
}

func (o *Opener) next() ([]byte, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(o.r, hdr[8:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[8:])
	if n == 0 || n > MaxRecord {
		return nil, fmt.Errorf("%w: length %d (want 1 to %d)", ErrRecord, n, MaxRecord)
	}
	if cap(o.buf) < int(n)+TagSize {
		o.buf = make([]byte, int(n)+TagSize)
	}
	buf := o.buf[:int(n)+TagSize]
	if _, err := io.ReadFull(o.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("record of %d bytes cut short: %w", n, err)
	}
	binary.BigEndian.PutUint64(hdr[:8], o.n)
	o.mac.Reset()
	o.mac.Write(hdr[:])
	o.mac.Write(buf[:n])
	var sum [TagSize]byte
	if !hmac.Equal(o.mac.Sum(sum[:0]), buf[n:]) {
		return nil, fmt.Errorf("%w: record %d's tag does not verify (tampered, replayed or reordered)", ErrRecord, o.n)
	}
	o.n++
	return buf[:n], nil
}

// Conn is a connection whose bytes travel in MACed records after a
// secret handshake. Read returns only verified bytes. One goroutine may
// read while others write (writes are serialised).
type Conn struct {
	net.Conn
	open *Opener
	rest []byte // verified bytes not yet returned by Read

	wmu  sync.Mutex
	seal *sealer
	tag  [TagSize]byte
	werr error
}

// NewConn wraps c, whose handshake gave the keys send (for writes) and
// recv (for reads).
func NewConn(c net.Conn, send, recv []byte) *Conn {
	return &Conn{Conn: c, open: NewOpener(c, recv), seal: newSealer(send)}
}

// Read implements net.Conn: it returns verified bytes only.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.rest) == 0 {
		rec, err := c.open.Next()
		if err != nil {
			return 0, err
		}
		c.rest = rec
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// Write implements net.Conn: p goes out as one record, or several of at
// most MaxRecord bytes. A failed write is final.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	done := 0
	for done < len(p) {
		chunk := p[done:min(len(p), done+MaxRecord)]
		hdr, tag := c.seal.seal(chunk, c.tag[:])
		bufs := net.Buffers{hdr, chunk, tag}
		if _, err := bufs.WriteTo(c.Conn); err != nil {
			c.werr = err
			return done, err
		}
		done += len(chunk)
	}
	return done, nil
}
