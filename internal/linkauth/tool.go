package linkauth

// How the operator tools (cmd/external_sender, cmd/cluster_shutdown,
// cmd/cluster_shrinker) reach a worker's external channel: their
// security options (--cluster-secret-file, --tls-cert, --tls-key,
// --tls-ca, matching the worker's) and the dial that runs the
// handshakes. Without any of them the tools speak 0.6's plain protocol.
// DialTool blocks on the caller's goroutine; the caller owns the
// connection it returns.

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// ToolOptions are the tools' security options.
type ToolOptions struct {
	SecretFile, Cert, Key, CA string
}

// Set reports whether any option is given (or the secret file is named
// by the environment).
func (o ToolOptions) Set() bool {
	return o.SecretFile != "" || o.Cert != "" || o.Key != "" || o.CA != "" || os.Getenv(SecretFileEnv) != ""
}

// Hint is what a tool adds to a malformed reply's error when it was
// given no security option: a protected worker's first bytes (its
// challenge) read as a malformed frame.
const Hint = " (a worker started with --cluster-secret-file or TLS answers so: give this tool the same options)"

// Register adds the options to fs.
func (o *ToolOptions) Register(fs *pflag.FlagSet) {
	fs.StringVar(&o.SecretFile, "cluster-secret-file", "", "")
	fs.StringVar(&o.Cert, "tls-cert", "", "")
	fs.StringVar(&o.Key, "tls-key", "", "")
	fs.StringVar(&o.CA, "tls-ca", "", "")
}

// RefuseEmpty fails if fs (parsed, with o registered) was given one of
// the options with an empty value, such as an unset shell variable
// gives: the tool would speak unprotected to a worker that is not.
func (o ToolOptions) RefuseEmpty(fs *pflag.FlagSet) error {
	return RefuseEmptyOptions(fs.Changed, o)
}

// RefuseEmptyOptions fails, naming the first, if an option of o that
// given reports as given on the command line is empty (the workers' and
// the tools' rule alike).
func RefuseEmptyOptions(given func(name string) bool, o ToolOptions) error {
	for _, f := range []struct{ name, value string }{
		{"cluster-secret-file", o.SecretFile}, {"tls-cert", o.Cert}, {"tls-key", o.Key}, {"tls-ca", o.CA},
	} {
		if given(f.name) && strings.TrimSpace(f.value) == "" {
			return fmt.Errorf("--%s is empty: name the file", f.name)
		}
	}
	return nil
}

// ToolUsage is the options' lines for a tool's --help.
const ToolUsage = `      --cluster-secret-file F  the cluster's secret file (default: $` + SecretFileEnv + `),
                               for a cluster started with one
      --tls-cert F, --tls-key F, --tls-ca F
                               certificate, key and CA for a cluster that
                               runs mutual TLS
`

// Guard loads what the options name (the secret file from the
// environment when the option is not given); nil means none.
func (o ToolOptions) Guard(timeout time.Duration) (*Guard, error) {
	return Load(Files{SecretFile: SecretPath(o.SecretFile, os.Getenv),
		Cert: o.Cert, Key: o.Key, CA: o.CA, Timeout: timeout})
}

// DialTool connects to addr within timeout and authenticates with g (nil:
// none).
func DialTool(g *Guard, addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	sc, err := g.Client(context.Background(), conn, External, addr)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w (is the worker started with the same --cluster-secret-file and TLS options as this tool?)", err)
	}
	return sc, nil
}
