package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/wallaroo-go/machida/internal/linkauth"
	"github.com/wallaroo-go/machida/internal/ponyflag"
)

// errHelp is returned by parseFlags when --help was given.
var errHelp = errors.New("help requested")

// defaultTimeout bounds the connect and the wait for the reply.
const defaultTimeout = 30 * time.Second

// config is the validated command line. Exactly one of query, workers
// (non-empty) or count (when neither) selects the mode.
type config struct {
	external string
	query    bool
	count    int
	workers  []string
	timeout  time.Duration
	sec      linkauth.ToolOptions
}

// usage is the --help text. TestUsage_ListsEveryFlag keeps it in step with
// parseFlags.
const usage = `Usage: cluster_shrinker --external H:P (--query | --count N | --workers a,b,...)

Asks a Wallaroo cluster to shrink, through the external channel of a
worker that is not leaving, and prints the reply.

Options:
  -e, --external H:P     external channel address of a remaining worker (required)
  -q, --query            print the workers eligible for shrinking
  -c, --count N          remove N workers (the first eligible ones)
  -w, --workers a,b,...  remove the named workers
      --timeout D        connect and reply timeout (default 30s)
` + linkauth.ToolUsage + `      --help             print this help and exit

Exactly one of --query, --count and --workers is required. Pony runtime
options (--ponythreads N, --ponynoblock, any --pony*) are accepted and
ignored.
`

// parseFlags parses and validates args (without the program name).
func parseFlags(args []string) (*config, error) {
	cfg := &config{timeout: defaultTimeout}
	var workers string
	var help bool
	fs := pflag.NewFlagSet("cluster_shrinker", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVarP(&cfg.external, "external", "e", "", "")
	fs.BoolVarP(&cfg.query, "query", "q", false, "")
	fs.IntVarP(&cfg.count, "count", "c", 0, "")
	fs.StringVarP(&workers, "workers", "w", "", "")
	fs.DurationVar(&cfg.timeout, "timeout", defaultTimeout, "")
	fs.BoolVar(&help, "help", false, "")
	cfg.sec.Register(fs)
	if err := fs.Parse(ponyflag.Strip(args)); err != nil {
		return nil, err
	}
	if help {
		return nil, errHelp
	}
	if err := cfg.sec.RefuseEmpty(fs); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !fs.Changed("external") {
		return nil, errors.New("--external is required")
	}
	if _, _, err := net.SplitHostPort(cfg.external); err != nil {
		return nil, fmt.Errorf("--external must be host:port: %w", err)
	}
	var modes []string
	for _, m := range []string{"query", "count", "workers"} {
		if fs.Changed(m) {
			modes = append(modes, "--"+m)
		}
	}
	switch {
	case len(modes) == 0:
		return nil, errors.New("one of --query, --count or --workers is required")
	case len(modes) > 1:
		return nil, fmt.Errorf("%s can't be used together: give exactly one of --query, --count or --workers", strings.Join(modes, " and "))
	case fs.Changed("query") && !cfg.query:
		return nil, errors.New("--query=false selects no mode: give exactly one of --query, --count or --workers")
	case cfg.count < 0:
		return nil, fmt.Errorf("--count %d must not be negative", cfg.count)
	case cfg.timeout <= 0:
		return nil, errors.New("--timeout must be greater than 0")
	}
	if fs.Changed("workers") {
		for _, w := range strings.Split(workers, ",") {
			if w = strings.TrimSpace(w); w == "" {
				return nil, fmt.Errorf("--workers %q contains an empty worker name", workers)
			}
			cfg.workers = append(cfg.workers, strings.TrimSpace(w))
		}
	}
	return cfg, nil
}
