package host

import (
	"context"
	"io"
	"log/slog"
	"strings"

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
func startMetrics(ctx context.Context, opts *Options, cfg *worker.Config, log *slog.Logger) error {
	reg := metrics.NewRegistry(cfg.Name)
	cfg.Metrics = reg
	if p, ok := cfg.Processor.(*processor); ok {
		p.UseMetrics(reg)
	}
	if opts.Prometheus != "" {
		if err := metrics.Serve(ctx, opts.Prometheus, reg, log); err != nil {
			return err
		}
	}
	if opts.Metrics != "" {
		go metrics.RunHub(ctx, metrics.HubConfig{Addr: opts.Metrics, App: cfg.App, Registry: reg, Log: log})
	} else if opts.Join != "" {
		// A joiner reports where the cluster does (0.6: the address
		// comes from the worker it joins through).
		cfg.OnFormed = func(addr string) {
			if addr != "" {
				go metrics.RunHub(ctx, metrics.HubConfig{Addr: addr, App: cfg.App, Registry: reg, Log: log})
			}
		}
	}
	return nil
}
