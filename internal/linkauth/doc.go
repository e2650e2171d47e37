// Package linkauth protects the links of a cluster: the control and data
// links between workers and the external channel that operator tools use.
// Wallaroo 0.6 had no protection at all; a data link carries pickles, so
// whoever can speak to a data port can run code in the worker. With a
// cluster secret or TLS, nothing a peer sends reaches the cluster codec,
// the external channel's parser or the interpreter before that peer has
// proved it belongs to the cluster.
//
// # The secret handshake
//
// With a cluster secret, every connection starts with three fixed-size
// messages, before any other byte is read or written (Handshake is the
// I/O-free state machine; Guard runs it on a connection):
//
//	server → client  challenge: magic "wlauth1\n", channel kind (1 byte), server nonce Ns (32 bytes)
//	client → server  response:  magic, kind, client nonce Nc (32 bytes), HMAC-SHA-256(secret, "client proof" | kind | Nc | Ns)
//	server → client  confirm:   HMAC-SHA-256(secret, "server proof" | kind | Nc | Ns)
//
// The server speaks first so that a client that does not know the
// protocol (a 0.6 tool, a worker without the secret) fails at once on
// bytes it cannot parse, instead of waiting for an answer. The server
// proves itself only after the client has.
//
// The nonces are fresh random values from crypto/rand, so a proof
// recorded from an earlier connection is useless on the next one
// (replay); the proofs are labelled by role, so a client's proof sent
// back to it is not a server's proof (reflection); the channel kind is in
// every proof, so a data-link proof does not open a control link; the
// messages have fixed sizes and an order, so a reordered or truncated
// exchange fails. No secret, and nothing derived from it but the
// proofs, is ever sent. Proofs are compared in constant time.
//
// # Frames after the handshake
//
// Both ends derive two 32-byte keys from the secret and both nonces (HKDF
// with HMAC-SHA-256: extract with Nc|Ns as the salt, then one expand per
// direction, labelled "client to server" and "server to client" plus the
// kind). Every write then becomes one record:
//
//	u32 big-endian payload length (1 to MaxRecord) | payload | 16-byte tag
//
// The tag is GMAC: AES-256-GCM under the direction's key, with the
// record's counter (records of that direction from 0) as the nonce, the
// payload as the authenticated data and nothing encrypted. A record that
// was tampered with, replayed, reordered, dropped or moved to the other
// direction fails its check; the connection is then closed and every
// later Read returns the same error. Only verified payload bytes are
// returned by Read. One MAC per record, and data links write a batch of
// thousands of envelopes per record.
//
// Why GMAC for records and not HMAC-SHA-256 as in the handshake: the
// records carry every byte between workers, and with AES and carry-less
// multiplication in hardware GMAC runs at about 7 GB/s here, HMAC-SHA-256
// at about 1 GB/s; with HMAC the MAC of both ends cost a 2-worker word
// count more than the 5 % of CPU per message allowed (make bench). GMAC
// is safe as long as a nonce never repeats under a key: the keys are new
// for every connection (fresh nonces on both sides) and each direction
// has its own key and counter, which cannot wrap (2^64 records).
//
// # TLS
//
// With --tls-cert, --tls-key and --tls-ca, every link is TLS 1.3 with
// mutual authentication: each side presents a certificate signed by the
// CA, and the standard library checks it (chain, validity dates, and the
// server's name or IP against the address dialled). In TLS 1.3 a client
// is done with its handshake before the server has checked its
// certificate, so with TLS alone the server then sends one byte (0x01)
// that the client waits for: a refused client gets the server's alert
// (an expired certificate, an unknown CA) at once, as its error. With
// TLS, records are not MACed again (TLS protects them); with both TLS
// and a secret, the secret handshake runs inside TLS (its challenge
// plays the part of that byte), so a certificate alone is not enough to
// join a cluster.
//
// # Without either
//
// A nil *Guard passes connections through untouched: the links are those
// of 0.6, unauthenticated and byte-compatible with 0.6 tools. Exposed
// tells the caller when that is dangerous (a listener not on loopback),
// for the one warning line the worker prints.
//
// # The secret file
//
// ReadSecretFile reads the secret once, at start-up. It refuses (an error,
// not a warning: a worker must not silently run less protected than its
// operator thinks) a file that is empty or shorter than MinSecret bytes
// after trailing white space is removed, and a file that group or others
// may read or write: the secret is as good as its file's mode (0600).
//
// # Operator tools
//
// ToolOptions and DialTool give external_sender, cluster_shutdown and
// cluster_shrinker the worker's options (--cluster-secret-file, or
// SecretFileEnv, and --tls-cert, --tls-key, --tls-ca) and run the same
// handshakes on the external channel. The package lives under internal/
// because both the engine and the tools use it (the import rules of
// tests/archtest: tools import only internal packages).
//
// # Ownership and goroutines
//
// Handshake and the record sealer and opener are plain values owned by
// one goroutine each. A *Conn may be read by one goroutine and written
// by others at the same time (writes are serialised). Guard is immutable
// after New and safe for concurrent use; Server and Client block for the
// handshake (bounded by Guard's timeout) on the caller's goroutine.
package linkauth
