package linkauth

import (
	"io"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkConn measures a secured link's cost over loopback TCP against
// a plain one: 16 KiB writes (a typical batch of envelopes).
func BenchmarkConn(b *testing.B) {
	dir := b.TempDir()
	ca, err := newTestCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	ca.WriteCA(caFile)
	cert, key, err := ca.Leaf(dir, "w", false)
	if err != nil {
		b.Fatal(err)
	}
	tl, err := LoadTLS(cert, key, caFile)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		g    *Guard
	}{{"plain", nil}, {"secret", New(Config{Secret: testSecret})}, {"tls", New(Config{TLS: tl})}} {
		b.Run(tc.name, func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				raw, err := l.Accept()
				if err != nil {
					return
				}
				c, err := tc.g.Server(b.Context(), raw, Data)
				if err != nil {
					return
				}
				io.Copy(io.Discard, c)
			}()
			raw, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			c, err := tc.g.Client(b.Context(), raw, Data, l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			msg := make([]byte, 16<<10)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			<-done
		})
	}
}
