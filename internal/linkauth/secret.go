package linkauth

import (
	"bytes"
	"fmt"
	"os"
	"time"
)

// MinSecret is the shortest cluster secret accepted, in bytes.
const MinSecret = 16

// SecretFileEnv names the environment variable that gives the secret
// file when --cluster-secret-file does not (the secret itself is never
// on a command line, where ps shows it, nor in the environment).
const SecretFileEnv = "WALLAROO_CLUSTER_SECRET_FILE"

// SecretPath returns the secret file to use: flag if set, else the
// environment's SecretFileEnv (getenv is os.Getenv in production), else "".
func SecretPath(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	return getenv(SecretFileEnv)
}

// ReadSecretFile reads a cluster secret: the file's bytes without
// trailing white space (so a file written by echo or by head -c works
// alike). It refuses a file that group or others may access and a
// secret shorter than MinSecret bytes, saying how to fix it.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cluster secret file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cluster secret file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("cluster secret file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("cluster secret file %s: mode %04o lets group or others access it; run chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster secret file: %w", err)
	}
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) < MinSecret {
		return nil, fmt.Errorf("cluster secret file %s: %d bytes of secret, at least %d are needed (e.g. head -c 32 /dev/urandom | base64 > %s)", path, len(b), MinSecret, path)
	}
	return b, nil
}

// Files names what a worker or an operator tool reads to protect its
// links; all empty means no protection.
type Files struct {
	SecretFile    string // --cluster-secret-file (or SecretFileEnv)
	Cert, Key, CA string // --tls-cert, --tls-key, --tls-ca
	Timeout       time.Duration
}

// Load reads the files and returns the Guard they describe (nil for
// none).
func Load(f Files) (*Guard, error) {
	var secret []byte
	if f.SecretFile != "" {
		var err error
		if secret, err = ReadSecretFile(f.SecretFile); err != nil {
			return nil, err
		}
	}
	t, err := LoadTLS(f.Cert, f.Key, f.CA)
	if err != nil {
		return nil, err
	}
	return New(Config{Secret: secret, TLS: t, Timeout: f.Timeout}), nil
}
