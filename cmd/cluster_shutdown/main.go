package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"
	"github.com/wallaroo-go/machida/internal/extframe"
	"github.com/wallaroo-go/machida/internal/linkauth"
	"github.com/wallaroo-go/machida/internal/ponyflag"
)

// usage is printed for --help (stdout) and a bad command line (stderr).
const usage = `Usage: cluster_shutdown [options] HOST:PORT

Sends CleanShutdown to the external channel (--external) of any worker of
a Wallaroo cluster; the whole cluster shuts down and deletes its recovery
files. Pony runtime options (--pony*) are accepted and ignored.

Options:
  --keep-state      a cluster run with --run-with-resilience takes a last
                    checkpoint and keeps its files: starting the same
                    command lines again resumes from it (ours, not 0.6's)
` + linkauth.ToolUsage

// dialTimeout bounds the connect.
const dialTimeout = 10 * time.Second

// answerWait is how long a tool with no security option listens after
// its CleanShutdown for a protected worker's refusal (see unanswered).
const answerWait = time.Second

// unanswered checks, for up to answerWait, that the worker answers
// CleanShutdown with nothing, as 0.6's workers do. A worker started with
// a cluster secret speaks first (its challenge); one running TLS answers
// a plain frame with a TLS alert: either way the request was not taken,
// and a tool that said nothing would leave the operator believing the
// cluster stops. A close or a reset (the worker stopping: its listener
// or its connections closed) or silence is the request taken; so is a
// protected worker too slow to answer within answerWait.
func unanswered(conn net.Conn) error {
	if err := conn.SetReadDeadline(time.Now().Add(answerWait)); err != nil {
		return nil // (the connection is gone: nothing can come back)
	}
	var b [64]byte
	if n, _ := conn.Read(b[:]); n > 0 {
		return fmt.Errorf("it answered %d bytes, where a worker that takes it answers nothing", n)
	}
	return nil
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the whole command: it parses args, sends CleanShutdown and
// returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	addr, sec, keep, err := parseArgs(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n\n%s", err, usage)
		return 1
	}
	if err := shutdown(addr, sec, keep); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// parseArgs returns the HOST:PORT argument and the security options, or
// pflag.ErrHelp for --help.
func parseArgs(args []string) (string, linkauth.ToolOptions, bool, error) {
	var sec linkauth.ToolOptions
	fs := pflag.NewFlagSet("cluster_shutdown", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	sec.Register(fs)
	keep := fs.Bool("keep-state", false, "")
	if err := fs.Parse(ponyflag.Strip(args)); err != nil {
		return "", sec, false, err
	}
	if err := sec.RefuseEmpty(fs); err != nil {
		return "", sec, false, err
	}
	switch fs.NArg() {
	case 0:
		return "", sec, false, errors.New("missing HOST:PORT")
	case 1:
		return fs.Arg(0), sec, *keep, nil
	default:
		return "", sec, false, fmt.Errorf("unexpected argument %q", fs.Arg(1))
	}
}

// shutdown connects to addr and writes one CleanShutdown frame with an
// empty payload (keep: "keep-state"). Its errors are capitalised because
// run prints them after "Error: ", reproducing the 0.6 tool's "Error:
// Unable to connect to ...".
func shutdown(addr string, sec linkauth.ToolOptions, keep bool) error {
	g, err := sec.Guard(dialTimeout)
	if err != nil {
		return err
	}
	conn, err := linkauth.DialTool(g, addr, dialTimeout)
	if err != nil {
		return fmt.Errorf("Unable to connect to %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(dialTimeout))
	var payload []byte
	if keep {
		payload = []byte(extframe.KeepStatePayload)
	}
	if _, err := conn.Write(extframe.Append(nil, extframe.MsgCleanShutdown, payload)); err != nil {
		return fmt.Errorf("Unable to send CleanShutdown to %s: %w", addr, err)
	}
	if !sec.Set() {
		if err := unanswered(conn); err != nil {
			return fmt.Errorf("%s did not take CleanShutdown: %w%s", addr, err, linkauth.Hint)
		}
	}
	if err := conn.Close(); err != nil {
		return fmt.Errorf("Unable to send CleanShutdown to %s: close: %w", addr, err)
	}
	return nil
}
