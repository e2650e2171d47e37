package main

import (
	"errors"
	"fmt"
	"github.com/wallaroo-go/machida/internal/ponyflag"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// errHelp is returned by parseFlags when --help was given.
var errHelp = errors.New("help requested")

// config is the validated command line.
type config struct {
	listen  string
	framed  bool
	noWrite bool
	output  string        // "" means stdout
	expect  uint64        // 0 means run until signalled
	timeout time.Duration // 0 means no deadline
}

// usage is the --help text. TestUsage_ListsEveryFlag keeps it in step with
// newFlagSet.
const usage = `Usage: data_receiver --listen H:P [options]

Accepts any number of TCP connections (for example from Wallaroo TCP sinks)
and writes the received data to stdout. Compatible with the Wallaroo 0.6
utils/data_receiver.

Options:
  -l, --listen H:P     address to listen on (required; port 0 picks one)
  -f, --framed         parse big-endian uint32 length frames and write each
                       payload followed by a newline
  -n, --no-write       discard the data (still counted for --expect)
  -h, --help           print this help and exit

Additions to Wallaroo 0.6:
  -o, --output FILE    write the data to FILE (truncated) instead of stdout
      --expect N       exit 0 once N messages were written: N frames with
                       --framed, N newline-terminated lines otherwise; data
                       received after the Nth message is discarded
      --timeout D      with --expect: exit 1 if N messages have not arrived
                       within D of listening (Go duration, e.g. 30s)

"Listening on H:P" (the bound address) is printed once listening: on stderr
when the data goes to stdout, on stdout otherwise. Streaming mode writes whole
lines per connection, so concurrent connections never interleave mid-line; a
partial line (e.g. binary output) is written after 1 s without more data.
Binary records (which may hold newline bytes) from several connections at
once, such as a cluster's workers, stay whole only with --framed.
Output is flushed at least every 50ms. SIGINT/SIGTERM flush and exit 0.

Pony runtime options (--ponythreads N, --ponynoblock, any --pony*) are
accepted and ignored.
`

// newFlagSet defines the flags, storing into cfg.
func newFlagSet(cfg *config, help *bool) *pflag.FlagSet {
	fs := pflag.NewFlagSet("data_receiver", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVarP(&cfg.listen, "listen", "l", "", "address to listen on")
	fs.BoolVarP(&cfg.framed, "framed", "f", false, "parse uint32 frames")
	fs.BoolVarP(&cfg.noWrite, "no-write", "n", false, "discard the data")
	fs.BoolVarP(help, "help", "h", false, "print help")
	fs.StringVarP(&cfg.output, "output", "o", "", "write to this file")
	fs.Var(&decimalValue{&cfg.expect}, "expect", "exit after N messages")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "deadline for --expect")
	return fs
}

// parseFlags parses and validates args (without the program name).
func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	var help bool
	fs := newFlagSet(cfg, &help)
	if err := fs.Parse(ponyflag.Strip(args)); err != nil {
		return nil, err
	}
	if help {
		return nil, errHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !fs.Changed("listen") {
		return nil, errors.New("--listen is required")
	}
	if _, _, err := net.SplitHostPort(cfg.listen); err != nil {
		return nil, fmt.Errorf("--listen must be host:port: %w", err)
	}
	if fs.Changed("output") && cfg.output == "" {
		return nil, errors.New("--output needs a file name")
	}
	if cfg.noWrite && cfg.output != "" {
		return nil, errors.New("--no-write and --output can't be used together")
	}
	if fs.Changed("expect") && cfg.expect == 0 {
		return nil, errors.New("--expect must be greater than 0")
	}
	if fs.Changed("timeout") {
		if cfg.expect == 0 {
			return nil, errors.New("--timeout requires --expect")
		}
		if cfg.timeout <= 0 {
			return nil, errors.New("--timeout must be positive")
		}
	}
	return cfg, nil
}

// decimalValue is a pflag.Value for a uint64 in decimal, with optional
// single underscores between digits ("1_000_000").
type decimalValue struct{ p *uint64 }

func (v *decimalValue) Set(s string) error {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return fmt.Errorf("invalid number %q", s)
	}
	n, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		return fmt.Errorf("invalid number %q", s)
	}
	*v.p = n
	return nil
}

func (v *decimalValue) String() string { return strconv.FormatUint(*v.p, 10) }
func (v *decimalValue) Type() string   { return "uint" }
