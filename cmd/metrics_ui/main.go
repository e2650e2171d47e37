// This file is the command line: flags, the two listeners, and stopping
// on SIGINT or SIGTERM. The package doc is in doc.go.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/wallaroo-go/machida/internal/logline"
)

const usage = `Usage: metrics_ui [--listen H:P] [--http H:P]

Receives Wallaroo hub-protocol metrics from any number of workers (start
them with --metrics pointing at --listen) and serves a live page with
latency percentiles and throughput over the last 5 minutes.

Options:
  -l, --listen H:P   address for workers' metrics connections
                     (default 127.0.0.1:5001; port 0 picks one)
      --http H:P     address of the page and its JSON API
                     (default 127.0.0.1:4000; port 0 picks one)
  -h, --help         print this help and exit

Once both listen, it prints "Metrics UI: metrics on H:P, page at
http://H:P/" on stderr. SIGINT/SIGTERM stop it with exit status 0.
`

var errHelp = errors.New("help requested")

type config struct{ listen, http string }

func parseFlags(args []string) (config, error) {
	cfg := config{}
	var help bool
	fs := pflag.NewFlagSet("metrics_ui", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVarP(&cfg.listen, "listen", "l", "127.0.0.1:5001", "metrics address")
	fs.StringVar(&cfg.http, "http", "127.0.0.1:4000", "page address")
	fs.BoolVarP(&help, "help", "h", false, "print help")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if help {
		return cfg, errHelp
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, nil
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v (see --help)\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, stderr); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

// serve listens on both addresses and runs until ctx ends or a listener
// fails.
func serve(ctx context.Context, cfg config, stderr io.Writer) error {
	log := slog.New(logline.New(stderr, slog.LevelInfo))
	metricsLn, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.listen, err)
	}
	httpLn, err := net.Listen("tcp", cfg.http)
	if err != nil {
		metricsLn.Close()
		return fmt.Errorf("--http %s: %w", cfg.http, err)
	}
	store := NewStore(time.Now)
	srv := &http.Server{Handler: NewHandler(store, log), ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- NewReceiver(store, log).Serve(ctx, metricsLn) }()
	go func() {
		err := srv.Serve(httpLn)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else if err != nil {
			err = fmt.Errorf("http server: %w", err)
		}
		errs <- err
	}()
	fmt.Fprintf(stderr, "Metrics UI: metrics on %s, page at http://%s/\n", metricsLn.Addr(), httpLn.Addr())

	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
	}
	cancel()
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	for range 2 {
		if first != nil {
			break
		}
		first = <-errs
	}
	return first
}
