package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the whole command: it parses args, receives until done and returns
// the exit status. SIGINT and SIGTERM end a run normally.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run with an explicit context; cancelling ctx ends the run
// like a signal does (exit 0).
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v (see --help)\n", err)
		return 1
	}
	if err := receive(ctx, cfg, stdout, &lockedWriter{w: stderr}); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

// receive listens, serves connections and returns nil when the run ended
// normally: signalled, or --expect reached.
func receive(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	var out *output
	notice := stdout
	switch {
	case cfg.noWrite:
		out = newOutput(nil, nil, cfg.expect)
	case cfg.output != "":
		f, err := os.Create(cfg.output)
		if err != nil {
			return fmt.Errorf("create --output: %w", err)
		}
		out = newOutput(f, f, cfg.expect)
	default:
		out = newOutput(stdout, nil, cfg.expect)
		notice = stderr
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return errors.Join(fmt.Errorf("listen on %s: %w", cfg.listen, err), out.close())
	}
	fmt.Fprintf(notice, "Listening on %s\n", ln.Addr())

	r := newReceiver(cfg.framed, out, stderr)
	r.start(ln)

	var deadline <-chan time.Time
	if cfg.timeout > 0 {
		t := time.NewTimer(cfg.timeout)
		defer t.Stop()
		deadline = t.C
	}
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()

	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-out.reached:
			break wait
		case <-out.failed:
			break wait
		case <-deadline:
			if n := out.received(); n < cfg.expect {
				runErr = fmt.Errorf("timeout after %s: received %d of %d messages", cfg.timeout, n, cfg.expect)
			}
			break wait
		case <-flush.C:
			out.flush()
		}
	}
	r.shutdown(ln)
	return errors.Join(runErr, out.close())
}

// lockedWriter serialises writes to w, so that lines from concurrent
// connections do not mix on stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
