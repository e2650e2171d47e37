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
	host         string
	messages     uint64
	files        []string
	batchSize    uint64
	interval     time.Duration
	repeat       bool
	binary       bool
	msgSize      uint64 // 0 when --msg-size was not given
	variableSize bool
	u64          bool
	startFrom    uint64
	partition    string
	varyBy       uint64
	noWrite      bool
}

// defaultConfig returns the Giles defaults (also stated in usage).
func defaultConfig() *config {
	return &config{batchSize: 500, interval: 5 * time.Millisecond}
}

// newFlagSet defines the Giles-compatible flags, storing into cfg. The
// usage strings are short: --help prints usage instead.
func newFlagSet(cfg *config, fileList *string, help *bool) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sender", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false

	fs.StringVarP(&cfg.host, "host", "h", "", "target `host:port` (required)")
	fs.VarP(newDecimal(&cfg.messages), "messages", "m", "number of messages to send, then exit (required)")
	fs.StringVarP(fileList, "file", "f", "", "comma-separated `files` read in order (the same file may repeat)")
	fs.VarP(newDecimal(&cfg.batchSize), "batch-size", "s", "messages per batch (one write per batch)")
	fs.VarP(&intervalValue{&cfg.interval}, "interval", "i", "nanoseconds between batches (a unit such as 5ms is also accepted); 0 sends as fast as possible")
	fs.BoolVarP(&cfg.repeat, "repeat", "r", false, "restart from the first file when all files are exhausted")
	fs.BoolVarP(&cfg.binary, "binary", "y", false, "binary input: needs --msg-size or --variable-size; no length header is added")
	fs.VarP(newDecimal(&cfg.msgSize), "msg-size", "g", "fixed record size in bytes for --binary files (includes any header in the file)")
	fs.BoolVarP(&cfg.variableSize, "variable-size", "z", false, "--binary files consist of uint32-framed records")
	fs.BoolVarP(&cfg.u64, "u64", "u", false, "generate uint64 records (use with --binary --msg-size 12)")
	fs.VarP(newDecimal(&cfg.startFrom), "start-from", "v", "first generated value is start-from+1")
	fs.StringVarP(&cfg.partition, "partition", "p", "", "string appended after each --u64 value")
	fs.VarP(newDecimal(&cfg.varyBy), "vary-by", "j", "add a random 0..vary-by-1 to the batch size, re-drawn every 1000 batches")
	fs.BoolVarP(&cfg.noWrite, "no-write", "w", false, "do not write ./sent.txt")
	fs.BoolVar(help, "help", false, "print this help and exit")
	return fs
}

// usage is the --help text. TestUsage_ListsEveryFlag keeps it in step with
// newFlagSet.
const usage = `Usage: sender --host H:P --messages N [options]

Sends messages to a Wallaroo TCP source over one connection, one batch per
interval, then closes the connection and exits 0. Compatible with the
Wallaroo 0.6 Giles sender.

Options:
  -h, --host H:P           target address (required)
  -m, --messages N         number of messages to send, then exit (required)
  -f, --file F1,F2,...     files read in order (the same file may repeat);
                           text files: each non-empty line is one message
  -s, --batch-size N       messages per batch, one write each (default 500)
  -i, --interval NS        nanoseconds between batches (default 5000000);
                           a unit such as 5ms is also accepted; 0 sends as
                           fast as the connection accepts
  -r, --repeat             restart from the first file when all are exhausted
  -y, --binary             binary files (needs --msg-size or --variable-size);
                           no length header is added to any message
  -g, --msg-size N         --binary: fixed record size in bytes, header included
  -z, --variable-size      --binary: files consist of uint32-framed records
  -u, --u64                generate records uint32(8+len(P)) uint64(value) P;
                           use with --binary --msg-size 12
  -v, --start-from N       first generated value is N+1 (default 0)
  -p, --partition P        string appended after each --u64 value
  -j, --vary-by N          add a random 0..N-1 to the batch size, re-drawn
                           every 1000 batches
  -w, --no-write           do not write ./sent.txt
      --help               print this help and exit (-h is --host)

Without --file the messages are decimal text "1", "2", ... Unless --binary,
each message is framed with a big-endian uint32 length. Unless --no-write,
./sent.txt is truncated and gets one "<wall-clock ns>, <message>" line per
message sent. Progress goes to stderr about every 2 seconds.

Numbers accept underscores between digits (100_000_000). Pony runtime
options (--ponythreads N, --ponynoblock, --ponypinasio, any --pony*) are
accepted and ignored.
`

// parseFlags parses and validates args (without the program name).
func parseFlags(args []string) (*config, error) {
	cfg := defaultConfig()
	var files string
	var help bool
	fs := newFlagSet(cfg, &files, &help)
	if err := fs.Parse(ponyflag.Strip(args)); err != nil {
		return nil, err
	}
	if help {
		return nil, errHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !fs.Changed("host") {
		return nil, errors.New("--host is required")
	}
	if _, _, err := net.SplitHostPort(cfg.host); err != nil {
		return nil, fmt.Errorf("--host must be host:port: %w", err)
	}
	if !fs.Changed("messages") {
		return nil, errors.New("--messages is required")
	}
	if cfg.batchSize == 0 {
		return nil, errors.New("--batch-size must be greater than 0")
	}
	if fs.Changed("file") {
		for _, f := range strings.Split(files, ",") {
			if f == "" {
				return nil, fmt.Errorf("--file %q contains an empty file name", files)
			}
			cfg.files = append(cfg.files, f)
		}
	}
	if fs.Changed("msg-size") && cfg.variableSize {
		return nil, errors.New("--msg-size and --variable-size can't be used together")
	}
	if fs.Changed("msg-size") && cfg.msgSize == 0 {
		return nil, errors.New("--msg-size must be greater than 0")
	}
	if cfg.binary && !fs.Changed("msg-size") && !cfg.variableSize {
		return nil, errors.New("--binary requires either --msg-size or --variable-size")
	}
	if cfg.u64 && len(cfg.files) > 0 {
		return nil, errors.New("--u64 generates its messages and can't be used with --file")
	}
	if cfg.partition != "" && !cfg.u64 {
		return nil, errors.New("--partition requires --u64")
	}
	return cfg, nil
}

// warnings lists accepted but probably unintended option combinations.
func (c *config) warnings() []string {
	var w []string
	if c.u64 && !c.binary {
		w = append(w, "--u64 without --binary adds a second length header to each record (use --binary --msg-size 12)")
	}
	if !c.binary && (c.msgSize != 0 || c.variableSize) {
		w = append(w, "--msg-size and --variable-size have no effect without --binary")
	}
	if c.binary && c.msgSize != 0 && c.u64 && c.msgSize != uint64(12+len(c.partition)) {
		w = append(w, fmt.Sprintf("--msg-size %d differs from the --u64 record size %d; records are sent whole", c.msgSize, 12+len(c.partition)))
	}
	return w
}

// parseDecimal parses a non-negative decimal integer that may contain single
// underscores between digits ("100_000_000").
func parseDecimal(s string) (uint64, error) {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	n, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	return n, nil
}

// decimalValue is a pflag.Value for a uint64 written as parseDecimal accepts.
type decimalValue struct{ p *uint64 }

func newDecimal(p *uint64) *decimalValue { return &decimalValue{p} }

func (v *decimalValue) Set(s string) error {
	n, err := parseDecimal(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (v *decimalValue) String() string { return strconv.FormatUint(*v.p, 10) }
func (v *decimalValue) Type() string   { return "uint" }

// intervalValue is a pflag.Value for the batch interval: nanoseconds as a
// decimal (Giles) or a Go duration with a unit ("5ms").
type intervalValue struct{ p *time.Duration }

func (v *intervalValue) Set(s string) error {
	if n, err := parseDecimal(s); err == nil {
		if n > uint64(1<<63-1) {
			return fmt.Errorf("interval %q too large", s)
		}
		*v.p = time.Duration(n)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("invalid interval %q: want nanoseconds or a duration such as 5ms", s)
	}
	*v.p = d
	return nil
}

func (v *intervalValue) String() string { return strconv.FormatInt(int64(*v.p), 10) }
func (v *intervalValue) Type() string   { return "ns" }
