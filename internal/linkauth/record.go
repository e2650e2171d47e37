package linkauth

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// MaxRecord bounds the payload of one record; a longer write is cut
// into several records.
const MaxRecord = 1 << 20

// TagSize is the size of a record's MAC tag.
const TagSize = 16

// ErrRecord is wrapped by every record failure: a length out of range or
// a tag that does not verify (tampered, replayed, reordered, dropped).
var ErrRecord = errors.New("authenticated record rejected")

// recordMAC is the MAC of one direction's records: GMAC (AES-256-GCM
// with the payload as additional data and nothing encrypted), keyed by
// the direction's key, with the record's counter as the nonce. A counter
// never repeats under a key (keys are fresh per connection, counters do
// not wrap), which is what GMAC needs. See the package doc for why not
// HMAC here.
type recordMAC struct {
	aead  cipher.AEAD
	n     uint64 // records so far
	nonce [12]byte
}

func newRecordMAC(key []byte) *recordMAC {
	blk, err := aes.NewCipher(key) // 32 bytes: AES-256
	if err != nil {
		panic(fmt.Sprintf("linkauth: a derived key of %d bytes: %v", len(key), err))
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		panic(fmt.Sprintf("linkauth: GCM: %v", err))
	}
	return &recordMAC{aead: aead}
}

// tag appends the next record's tag over p to dst and counts the record.
func (m *recordMAC) tag(dst, p []byte) []byte {
	binary.BigEndian.PutUint64(m.nonce[4:], m.n)
	m.n++
	return m.aead.Seal(dst, m.nonce[:], nil, p)
}

// sealer MACs the records of one direction. Owned by the writer.
type sealer struct {
	mac *recordMAC
	hdr [4]byte
}

func newSealer(key []byte) *sealer { return &sealer{mac: newRecordMAC(key)} }

// seal returns the record's length header and tag for payload p
// (1 to MaxRecord bytes), and counts the record.
func (s *sealer) seal(p []byte, tag []byte) (hdr []byte, t []byte) {
	binary.BigEndian.PutUint32(s.hdr[:], uint32(len(p)))
	return s.hdr[:], s.mac.tag(tag[:0], p)
}

// Opener reads and verifies the records of one direction. Owned by the
// reader.
type Opener struct {
	r   io.Reader
	mac *recordMAC
	buf []byte
	err error
}

// NewOpener reads records from r, verifying them with key.
func NewOpener(r io.Reader, key []byte) *Opener {
	return &Opener{r: r, mac: newRecordMAC(key)}
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
	var hdr [4]byte
	if _, err := io.ReadFull(o.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
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
	record := o.mac.n
	var sum [TagSize]byte
	if subtle.ConstantTimeCompare(o.mac.tag(sum[:0], buf[:n]), buf[n:]) != 1 {
		return nil, fmt.Errorf("%w: record %d's tag does not verify (tampered, replayed or reordered)", ErrRecord, record)
	}
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
	// Buffered: a record's header and body come in one read, mostly.
	return &Conn{Conn: c, open: NewOpener(bufio.NewReaderSize(c, 64<<10), recv), seal: newSealer(send)}
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
