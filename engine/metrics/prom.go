package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wallaroo-go/machida/internal/portwait"
)

// Counter and gauge families the engine reports (the names components
// pass to Registry.Counter and Registry.Gauge), with their help text.
// Every series also carries a worker label.
const (
	SinkBytes      = "wallaroo_sink_bytes_total"
	SinkReconnects = "wallaroo_sink_reconnects_total"
	FramingErrors  = "wallaroo_source_framing_errors_total"
	QueueDepth     = "wallaroo_queue_depth"
	LinkReplays    = "wallaroo_link_replayed_batches_total"
	LinkReconnects = "wallaroo_link_reconnects_total"
	Rescales       = "wallaroo_rescales_total"
	LastRescale    = "wallaroo_last_rescale_seconds"
)

var familyHelp = map[string]string{
	SinkBytes:      "Bytes written to a sink connection.",
	SinkReconnects: "Connections a sink made again after losing its receiver.",
	FramingErrors:  "Source connections closed because their bytes could not be framed.",
	QueueDepth:     "Items waiting for the worker's processor, per lane (sources, peers).",
	LinkReplays:    "Batches an inter-worker data link sent again after a reconnect.",
	LinkReconnects: "Times an inter-worker data link connected again after losing its peer.",
	Rescales:       "Grows and shrinks this worker coordinated (the initializer), by kind and outcome.",
	LastRescale:    "How long the last grow or shrink this worker coordinated took, from the request to completion, by kind.",
}

// histogram families, by category.
var histFamily = map[string]struct{ name, help string }{
	Computation:       {"wallaroo_stage_latency_seconds", "Time spent in a computation (or a source's decoder) per message; sampled (see the README)."},
	StartToEnd:        {"wallaroo_end_to_end_latency_seconds", "From ingest at the source to the sink, on the worker where the message completes."},
	NodeIngressEgress: {"wallaroo_worker_latency_seconds", "From arrival on this worker to a sink or the hand-off to another worker."},
}

// promBuckets are the upper bounds (seconds) of the exported buckets:
// the power-of-two bins from 2^10 ns (about 1 µs) to 2^36 ns (about 69 s).
const promLoBin, promHiBin = 10, 36

// collector exports a Registry to Prometheus.
type collector struct{ r *Registry }

// Describe implements prometheus.Collector: the families vary with the
// application, so the collector is unchecked.
func (c collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	w := c.r.Worker()
	ingested := prometheus.NewDesc("wallaroo_messages_ingested_total",
		"Messages taken from a pipeline's source on this worker.", []string{"pipeline", "worker"}, nil)
	descs := map[string]*prometheus.Desc{}
	for k, h := range c.r.Totals() {
		switch k.Category {
		case PipelineIngestion:
			ch <- prometheus.MustNewConstMetric(ingested, prometheus.CounterValue, float64(h.Count), k.Pipeline, w)
		case Computation:
			fam := histFamily[k.Category]
			d := descs[fam.name]
			if d == nil {
				d = prometheus.NewDesc(fam.name, fam.help, []string{"pipeline", "stage", "worker"}, nil)
				descs[fam.name] = d
			}
			ch <- constHistogram(d, &h, k.Pipeline, k.Name, w)
		case StartToEnd, NodeIngressEgress:
			fam := histFamily[k.Category]
			d := descs[fam.name]
			if d == nil {
				d = prometheus.NewDesc(fam.name, fam.help, []string{"pipeline", "worker"}, nil)
				descs[fam.name] = d
			}
			ch <- constHistogram(d, &h, k.Pipeline, w)
		}
	}
	for _, cv := range c.r.Counters() {
		names, values := splitLabels(cv.Labels, w)
		d := prometheus.NewDesc(cv.Family, helpOf(cv.Family), names, nil)
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(cv.Value), values...)
	}
	for _, gv := range c.r.Gauges() {
		names, values := splitLabels(gv.Labels, w)
		d := prometheus.NewDesc(gv.Family, helpOf(gv.Family), names, nil)
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, gv.Value, values...)
	}
}

func helpOf(family string) string {
	if h, ok := familyHelp[family]; ok {
		return h
	}
	return family
}

// splitLabels turns name, value pairs into names and values, with the
// worker label last.
func splitLabels(pairs []string, worker string) (names, values []string) {
	for i := 0; i+1 < len(pairs); i += 2 {
		names, values = append(names, pairs[i]), append(values, pairs[i+1])
	}
	return append(names, "worker"), append(values, worker)
}

// constHistogram exports h with buckets at the power-of-two bin edges:
// bin i holds values below 2^i ns, so its count is at or below that
// bucket's bound.
func constHistogram(d *prometheus.Desc, h *Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, promHiBin-promLoBin+1)
	var cum uint64
	for i := 0; i < Bins; i++ {
		cum += h.Bins[i]
		if i >= promLoBin && i <= promHiBin {
			buckets[math.Ldexp(1, i)/1e9] = cum
		}
	}
	sum := float64(h.Sum) / 1e9
	return prometheus.MustNewConstHistogram(d, h.Count, sum, buckets, labels...)
}

// Serve serves /metrics for r on addr (the Go runtime's and the
// process's collectors included) until ctx ends. The listener is bound
// before Serve returns, so a taken address is an error at start-up; the
// registry counts as consumed while serving.
func Serve(ctx context.Context, addr string, r *Registry, log *slog.Logger) error {
	ln, err := portwait.Listen(addr, "prometheus endpoint", func(line string) { log.Warn(line) })
	if err != nil {
		return fmt.Errorf("prometheus endpoint: listen on %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{r}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogAdapter{log}}))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/" {
			http.NotFound(w, req)
			return
		}
		fmt.Fprintln(w, "machida: metrics at /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	release := r.Acquire()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		defer release()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("prometheus endpoint stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("prometheus endpoint: serving /metrics", "addr", ln.Addr().String())
	return nil
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Println(v ...any) { a.log.Warn(fmt.Sprint(v...)) }
