package main

// The metrics system of the throughput phase (-systems metrics, in the
// default run): machida3 started as the machida3 system is, plus
// --metrics at a hub listener of this program (which reads and drops
// what arrives, like 0.6's harness) and --prometheus on a free port that
// a scraper here reads every second, so both consumers are live and the
// worker times its stages. Its throughput over machida3's, taken in the
// same reps, is the cost of metrics (target: at most 5 %).

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// metricsTarget: machida3 with metrics on keeps this fraction of its
// throughput with them off.
const metricsTarget = 0.95

// metricsCost compares machida3 with metrics on (the metrics system)
// and off, from the same reps.
type metricsCost struct {
	RateOff    float64   `json:"msgs_per_s_off"`
	RateOn     float64   `json:"msgs_per_s_on"`
	Ratio      float64   `json:"throughput_ratio"` // on / off, medians
	Paired     []float64 `json:"paired_ratios"`    // per rep
	HubBytes   int64     `json:"hub_bytes_received_last_run"`
	Scrapes    int64     `json:"prometheus_scrapes_last_run"`
	ScrapeFail int64     `json:"prometheus_scrape_failures_last_run"`
}

// metricsConsumers is the hub listener and the scraper of one run.
type metricsConsumers struct {
	hub     net.Listener
	promURL string
	bytes   atomic.Int64
	scrapes atomic.Int64
	fails   atomic.Int64
	cancel  context.CancelFunc
}

var lastConsumers atomic.Pointer[metricsConsumers]

func metricsSystem(cfg *config, spec *workloadSpec) system {
	return system{name: "metrics", start: func(ins []string, out string) (*proc, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addrs, err := freeAddrs(1)
		if err != nil {
			ln.Close()
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		mc := &metricsConsumers{hub: ln, promURL: "http://" + addrs[0] + "/metrics", cancel: cancel}
		go mc.serveHub(ctx)
		argv := []string{cfg.machida, "--application-module", spec.module,
			"--in", strings.Join(ins, ","), "--out", out, "--name", "bench",
			"--metrics", ln.Addr().String(), "--prometheus", addrs[0]}
		env := envWithout(os.Environ(), "PYTHONPATH")
		p, err := startProc("metrics", argv, spec.appDir(cfg), env, "Application has successfully initialized")
		if err != nil {
			cancel()
			ln.Close()
			return nil, err
		}
		go mc.scrape(ctx, p)
		go func() {
			<-p.exited
			cancel()
			ln.Close()
		}()
		lastConsumers.Store(mc)
		return p, nil
	}}
}

// serveHub reads and drops every hub connection's bytes.
func (mc *metricsConsumers) serveHub(ctx context.Context) {
	for {
		c, err := mc.hub.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			n, _ := io.Copy(io.Discard, c)
			mc.bytes.Add(n)
		}()
	}
}

// scrape reads /metrics every second while the worker runs.
func (mc *metricsConsumers) scrape(ctx context.Context, p *proc) {
	client := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.exited:
			return
		case <-t.C:
		}
		resp, err := client.Get(mc.promURL)
		if err != nil {
			mc.fails.Add(1)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			mc.fails.Add(1)
			continue
		}
		mc.scrapes.Add(1)
	}
}

// metricsCostOf compares the metrics runs with machida3's.
func metricsCostOf(off, on *satSummary) *metricsCost {
	if len(on.Runs) == 0 || len(off.Runs) == 0 {
		return nil
	}
	mc := &metricsCost{RateOff: off.Median.Rate, RateOn: on.Median.Rate, Ratio: ratioOf(on.Median.Rate, off.Median.Rate)}
	for i := range min(len(on.Runs), len(off.Runs)) {
		mc.Paired = append(mc.Paired, ratioOf(on.Runs[i].Rate, off.Runs[i].Rate))
	}
	if c := lastConsumers.Load(); c != nil {
		mc.HubBytes, mc.Scrapes, mc.ScrapeFail = c.bytes.Load(), c.scrapes.Load(), c.fails.Load()
	}
	return mc
}

func (mc *metricsCost) line() string {
	return fmt.Sprintf("metrics on (hub + Prometheus scraped every 1 s) >= %.2f x off: %.3f %s (paired per rep %s; last run: hub %d bytes, %d scrapes, %d failed)",
		metricsTarget, mc.Ratio, verdict(mc.Ratio >= metricsTarget), fmtRatios(mc.Paired), mc.HubBytes, mc.Scrapes, mc.ScrapeFail)
}
