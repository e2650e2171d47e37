package host

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/wallaroo-go/machida/engine/metrics"
	"github.com/wallaroo-go/machida/engine/worker"
	"github.com/wallaroo-go/machida/internal/logline"
)

// logLevels are the names --log-level takes.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError,
}

// newLogger makes the diagnostics logger of --log-format and
// --log-level (validated already), writing to w (stderr). The console
// lines tools wait for go to stdout and are not affected.
func newLogger(opts *Options, w io.Writer) *slog.Logger {
	level := logLevels[strings.ToLower(opts.LogLevel)]
	if opts.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(logline.New(w, level))
}

// startMetrics makes the worker's metrics registry and starts what
// consumes it: the hub reporter to --metrics and the Prometheus
// endpoint of --prometheus, both until ctx ends. The processor records
// into the registry only while one of them is live. An error (the
// Prometheus address cannot be bound) stops the worker at start-up.
// The hub reporter sends its last period when ctx ends; wait returns
// once it has.
func startMetrics(ctx context.Context, opts *Options, cfg *worker.Config, log *slog.Logger) (wait func(), err error) {
	var hubs sync.WaitGroup
	runHub := func(addr string) {
		hubs.Add(1)
		go func() {
			defer hubs.Done()
			metrics.RunHub(ctx, metrics.HubConfig{Addr: addr, App: cfg.App, Registry: cfg.Metrics, Log: log})
		}()
	}
	reg := metrics.NewRegistry(cfg.Name)
	cfg.Metrics = reg
	if p, ok := cfg.Processor.(*processor); ok {
		p.UseMetrics(reg)
	}
	if opts.Prometheus != "" {
		if err := metrics.Serve(ctx, opts.Prometheus, reg, log); err != nil {
			return nil, err
		}
	}
	if opts.Metrics != "" {
		runHub(opts.Metrics)
	} else if opts.Join != "" {
		// A joiner reports where the cluster does (0.6: the address
		// comes from the worker it joins through).
		cfg.OnFormed = func(addr string) {
			if addr != "" && ctx.Err() == nil {
				runHub(addr)
			}
		}
	}
	return hubs.Wait, nil
}
