package linkauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS is a loaded certificate, key and CA: the configurations of both
// ends of a mutually authenticated TLS 1.3 link.
type TLS struct {
	server, client *tls.Config
}

// LoadTLS reads a PEM certificate (chain) and key, and the PEM CA
// certificate(s) that every peer's certificate must be signed by. All
// three are needed: links are mutually authenticated. All empty: nil,
// no TLS.
func LoadTLS(certFile, keyFile, caFile string) (*TLS, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("TLS needs all three of --tls-cert, --tls-key and --tls-ca")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", caFile)
	}
	return &TLS{
		server: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool},
		client: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool},
	}, nil
}

// KeyFileWarning is the one line a worker prints when its TLS key file
// (--tls-key) lets group or others read it, or "". It is not refused, as
// the cluster secret file is: key files are often mounted 0644 by
// orchestrators (Kubernetes secrets) into a directory only the worker's
// user can enter, which this check cannot see.
func KeyFileWarning(path string) string {
	if path == "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o044 == 0 {
		return ""
	}
	return fmt.Sprintf("warning: --tls-key %s: mode %04o lets group or others read the private key; run chmod 600 %s unless its directory keeps them out",
		path, st.Mode().Perm(), path)
}
