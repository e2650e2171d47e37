// Package toolconn is how the operator tools (cmd/external_sender,
// cmd/cluster_shutdown, cmd/cluster_shrinker) reach a worker's external
// channel: their security options (--cluster-secret-file, --tls-cert,
// --tls-key, --tls-ca, matching the worker's) and the dial that runs
// the handshakes of package linkauth. Without any of them the tools
// speak 0.6's plain protocol. Dial blocks on the caller's goroutine; the
// caller owns the connection it returns.
package toolconn

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"
	"github.com/wallaroo-go/machida/engine/linkauth"
)

// Options are the tools' security options.
type Options struct {
	SecretFile, Cert, Key, CA string
}

// Register adds the options to fs.
func (o *Options) Register(fs *pflag.FlagSet) {
	fs.StringVar(&o.SecretFile, "cluster-secret-file", "", "")
	fs.StringVar(&o.Cert, "tls-cert", "", "")
	fs.StringVar(&o.Key, "tls-key", "", "")
	fs.StringVar(&o.CA, "tls-ca", "", "")
}

// Usage is the options' lines for a tool's --help.
const Usage = `      --cluster-secret-file F  the cluster's secret file (default: $` + linkauth.SecretFileEnv + `),
                               for a cluster started with one
      --tls-cert F, --tls-key F, --tls-ca F
                               certificate, key and CA for a cluster that
                               runs mutual TLS
`

// Guard loads what the options name (the secret file from the
// environment when the option is not given); nil means none.
func (o Options) Guard(timeout time.Duration) (*linkauth.Guard, error) {
	return linkauth.Load(linkauth.Files{SecretFile: linkauth.SecretPath(o.SecretFile, os.Getenv),
		Cert: o.Cert, Key: o.Key, CA: o.CA, Timeout: timeout})
}

// Dial connects to addr within timeout and authenticates with g (nil:
// none).
func Dial(g *linkauth.Guard, addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	sc, err := g.Client(context.Background(), conn, linkauth.External, addr)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w (is the worker started with the same --cluster-secret-file and TLS options as this tool?)", err)
	}
	return sc, nil
}
