package linkauth

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Record keys are 32 bytes (AES-256), as the handshake derives them.
var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
)

func sealAll(key []byte, recs ...[]byte) []byte {
	s := newSealer(key)
	var out []byte
	var tag [TagSize]byte
	for _, p := range recs {
		h, t := s.seal(p, tag[:])
		out = append(append(append(out, h...), p...), t...)
	}
	return out
}

func TestRecords_RoundTripAndRejectTampering(t *testing.T) {
	key := testKey
	recs := [][]byte{[]byte("one"), []byte("two"), bytes.Repeat([]byte("x"), 1000)}
	wire := sealAll(key, recs...)
	o := NewOpener(bytes.NewReader(wire), key)
	for _, want := range recs {
		got, err := o.Next()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	if _, err := o.Next(); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	first := len(sealAll(key, recs[0]))
	second := len(sealAll(key, recs[0], recs[1]))
	cases := map[string][]byte{
		"flipped payload bit": func() []byte { w := bytes.Clone(wire); w[5] ^= 1; return w }(),
		"reordered":           append(append([]byte(nil), wire[first:second]...), wire[:first]...),
		"replayed":            append(append([]byte(nil), wire[:first]...), wire[:first]...),
		"dropped":             append([]byte(nil), wire[first:]...),
		"other key":           sealAll(otherKey, recs...),
		"zero length":         {0, 0, 0, 0},
		"too long":            {0xff, 0xff, 0xff, 0xff},
	}
	for name, w := range cases {
		o := NewOpener(bytes.NewReader(w), key)
		var err error
		for i := 0; i < len(recs) && err == nil; i++ {
			_, err = o.Next()
		}
		if !errors.Is(err, ErrRecord) {
			t.Errorf("%s: %v", name, err)
		}
		if _, again := o.Next(); again != err {
			t.Errorf("%s: the error is not final: %v", name, again)
		}
	}
}

// FuzzLinkAuth feeds arbitrary bytes to a server's handshake and to a
// record opener: neither may panic, and the opener returns nothing that
// was not sealed with its key.
func FuzzLinkAuth(f *testing.F) {
	c := NewHandshake(Client, Data, testSecret, nonce(1))
	c.Start()
	resp, _ := c.Receive(NewHandshake(Server, Data, testSecret, nonce(2)).Start())
	f.Add(resp, []byte{})
	f.Add(make([]byte, ResponseSize), sealAll(testKey, []byte("hello")))
	f.Add([]byte("\x80\x02cos\nsystem\n"), []byte{0, 0, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, hs, recs []byte) {
		orig := hs
		s := NewHandshake(Server, Data, testSecret, nonce(2))
		s.Start()
		for n := s.Expect(); n > 0 && len(hs) >= n; n = s.Expect() {
			if _, err := s.Receive(hs[:n]); err != nil {
				break
			}
			hs = hs[n:]
		}
		if s.Done() && !bytes.HasPrefix(orig, resp) {
			t.Fatalf("bytes that are not the client's response proved the secret: %q", orig)
		}
		o := NewOpener(bytes.NewReader(recs), testKey)
		for {
			p, err := o.Next()
			if err != nil {
				break
			}
			// Only a correctly sealed stream gets here: re-seal and compare.
			if !bytes.HasPrefix(recs, sealAll(testKey, p)) && o.mac.n == 1 {
				t.Fatalf("accepted a record that was not sealed with the key: %q", p)
			}
		}
	})
}
