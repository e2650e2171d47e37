package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// targets are shown next to the figures; they are not assertions.
type targets struct {
	VsCeiling  float64 `json:"engine_vs_ceiling_min"`
	VsAsyncio  float64 `json:"engine_vs_asyncio_min"`
	P99us      float64 `json:"p99_max_us"`
	P999us     float64 `json:"p999_max_us"`
	FlatMiB    float64 `json:"memory_growth_max_mib"`
	FlatFrac   float64 `json:"memory_growth_max_fraction"`
	MemoryNote string  `json:"memory_note"`
}

var defaultTargets = targets{
	VsCeiling: 0.85, VsAsyncio: 1.5, P99us: 1000, P999us: 5000,
	FlatMiB: 2, FlatFrac: 0.03,
	MemoryNote: "flat: the RSS growth over the check (Theil-Sen slope x duration) is below max(2 MiB, 3% of the starting RSS)",
}

type results struct {
	StartedAt string           `json:"started_at"`
	Seconds   float64          `json:"seconds"`
	Host      string           `json:"host"`
	CPUs      int              `json:"cpus"`
	Machida3  string           `json:"machida3"`
	Baseline  string           `json:"baseline_machida3,omitempty"` // A/B mode
	Python    *pyInfo          `json:"python"`
	LoadStart string           `json:"loadavg_start"` // /proc/loadavg (1, 5, 15 min)
	LoadEnd   string           `json:"loadavg_end"`
	Settings  settings         `json:"settings"`
	Targets   targets          `json:"targets"`
	Workloads []workloadResult `json:"workloads"`
	// Rescale is the rescale phase (a grow and a shrink under load).
	Rescale *rescaleResult `json:"rescale,omitempty"`
	// Checkpoint is the checkpoint phase (cost of checkpoints, recovery).
	Checkpoint *checkpointResult `json:"checkpoint,omitempty"`
	Table      string            `json:"table"`
}

type settings struct {
	Quick                bool    `json:"quick"`
	Reps                 int     `json:"reps"`
	SaturationSeconds    float64 `json:"saturation_seconds_at_ceiling_rate"`
	LatencyWindowSeconds float64 `json:"latency_window_seconds"`
	LatencyWindows       int     `json:"latency_windows"`
	WarmupSeconds        float64 `json:"warmup_seconds"`
	MemorySeconds        float64 `json:"memory_seconds"`
	MemoryWarmupSeconds  float64 `json:"memory_warmup_seconds"`
	LatencyFraction      float64 `json:"latency_rate_fraction_of_saturation"`
	LatencyTickMicros    int64   `json:"latency_pacer_tick_us"`
}

type workloadResult struct {
	Name     string `json:"name"`
	Module   string `json:"module"`
	Unit     string `json:"unit"`
	Input    string `json:"input"`
	Messages int    `json:"messages_per_run"`
	Outputs  int    `json:"outputs_per_run"`
	OutBytes int64  `json:"output_bytes_per_run"`

	Ceiling satSummary `json:"ceiling"`
	// Runner is a diagnostic: the ceiling's loop replaced by machida3's own
	// Python layer (wallaroo._runner), no I/O.
	Runner  satSummary `json:"runner_diagnostic"`
	Engine  satSummary `json:"machida3"`
	Asyncio satSummary `json:"asyncio"`
	// Baseline is the A/B mode's other machida3, run alternately with
	// Engine; AB compares the two.
	Baseline *satSummary `json:"baseline,omitempty"`
	AB       *abResult   `json:"ab,omitempty"`
	// Metrics is machida3 with its metrics consumed (hub and Prometheus),
	// run in the same reps; MetricsCost compares it with Engine.
	Metrics     *satSummary  `json:"machida3_metrics_on,omitempty"`
	MetricsCost *metricsCost `json:"metrics_cost,omitempty"`

	EngineVsCeiling  float64 `json:"machida3_vs_ceiling"`
	AsyncioVsCeiling float64 `json:"asyncio_vs_ceiling"`
	EngineVsAsyncio  float64 `json:"machida3_vs_asyncio"`

	EngineLatency  latSummary `json:"machida3_latency"`
	AsyncioLatency latSummary `json:"asyncio_latency"`
	Memory         memResult  `json:"machida3_memory"`

	// Cluster is the cluster phase (word count): 1 worker vs 2.
	Cluster *clusterResult `json:"cluster,omitempty"`

	Error string `json:"error,omitempty"`
}

type satRun struct {
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"msgs_per_s"`
	OutRate    float64 `json:"outputs_per_s"`
	CPU        float64 `json:"cpu_pct"`                      // % of one CPU, whole process
	BusiestThr float64 `json:"busiest_thread_pct,omitempty"` // its busiest thread
	DriverCPU  float64 `json:"driver_cpu_pct,omitempty"`     // this program: sender + receiver
	OtherCPU   float64 `json:"rest_of_machine_cpu_pct"`      // every other process: the noise
	PeakRSSKB  int64   `json:"peak_rss_kb,omitempty"`

	// CPU time per input message over a saturation run of a server
	// (snapshots right before the first byte sent and right after the last
	// output received). The interpreter's thread is taken to be the
	// busiest thread over the run; InterpRanStartup tells whether it is
	// also the thread with the most CPU time before the run (the one that
	// initialised Python and imported the application), which confirms it.
	InterpNsPerMsg   float64 `json:"interp_thread_cpu_ns_per_msg,omitempty"`
	ProcNsPerMsg     float64 `json:"process_cpu_ns_per_msg,omitempty"`
	InterpThread     string  `json:"interp_thread,omitempty"` // "tid (name)"
	InterpRanStartup bool    `json:"interp_thread_ran_startup,omitempty"`
	RunnerUpThrPct   float64 `json:"runner_up_thread_pct,omitempty"` // the second busiest thread, % of one CPU
	ThreadCPUSource  string  `json:"thread_cpu_source,omitempty"`    // schedstat (ns) or stat (clock ticks)

	cpuTotal time.Duration // the process's CPU time over the run
	busiest  threadCPU
}

// threadCPU is the busiest thread of a process over a run.
type threadCPU struct {
	tid, comm  string
	cpu        time.Duration // its CPU time over the run
	second     time.Duration // the runner-up's
	source     string        // schedstat or stat
	startupTid string        // the thread with the most CPU time before the run
}

// perMessage fills the CPU-per-message fields of r for a run of n
// messages.
func (r *satRun) perMessage(n int) {
	if n <= 0 || r.busiest.tid == "" {
		return
	}
	r.InterpNsPerMsg = float64(r.busiest.cpu.Nanoseconds()) / float64(n)
	r.ProcNsPerMsg = float64(r.cpuTotal.Nanoseconds()) / float64(n)
	r.InterpThread = r.busiest.tid
	if r.busiest.comm != "" {
		r.InterpThread += " (" + r.busiest.comm + ")"
	}
	r.InterpRanStartup = r.busiest.tid == r.busiest.startupTid
	if r.Seconds > 0 {
		r.RunnerUpThrPct = 100 * r.busiest.second.Seconds() / r.Seconds
	}
	r.ThreadCPUSource = r.busiest.source
}

type satSummary struct {
	Runs    []satRun `json:"runs"`
	Median  satRun   `json:"median"` // the median of every field; peak RSS is the maximum
	MinRate float64  `json:"min_msgs_per_s"`
	MaxRate float64  `json:"max_msgs_per_s"`
	Error   string   `json:"error,omitempty"`
	// InterpRanStartup counts the runs whose busiest thread was also the
	// busiest before the run (see satRun).
	InterpRanStartup int `json:"interp_thread_ran_startup_runs,omitempty"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (s *satSummary) summarize() {
	if len(s.Runs) == 0 {
		return
	}
	field := func(f func(r satRun) float64) float64 {
		var xs []float64
		for _, r := range s.Runs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	s.Median = satRun{
		Seconds:    field(func(r satRun) float64 { return r.Seconds }),
		Rate:       field(func(r satRun) float64 { return r.Rate }),
		OutRate:    field(func(r satRun) float64 { return r.OutRate }),
		CPU:        field(func(r satRun) float64 { return r.CPU }),
		BusiestThr: field(func(r satRun) float64 { return r.BusiestThr }),
		DriverCPU:  field(func(r satRun) float64 { return r.DriverCPU }),
		OtherCPU:   field(func(r satRun) float64 { return r.OtherCPU }),
	}
	s.Median.InterpNsPerMsg = field(func(r satRun) float64 { return r.InterpNsPerMsg })
	s.Median.ProcNsPerMsg = field(func(r satRun) float64 { return r.ProcNsPerMsg })
	s.Median.RunnerUpThrPct = field(func(r satRun) float64 { return r.RunnerUpThrPct })
	s.MinRate, s.MaxRate = math.Inf(1), 0
	s.InterpRanStartup = 0
	for _, r := range s.Runs {
		if r.InterpRanStartup {
			s.InterpRanStartup++
		}
		if r.ThreadCPUSource != "" {
			s.Median.ThreadCPUSource = r.ThreadCPUSource
		}
		s.Median.PeakRSSKB = max(s.Median.PeakRSSKB, r.PeakRSSKB)
		s.MinRate, s.MaxRate = min(s.MinRate, r.Rate), max(s.MaxRate, r.Rate)
	}
}

func (w *workloadResult) ratios() {
	c, e, a := w.Ceiling.Median.Rate, w.Engine.Median.Rate, w.Asyncio.Median.Rate
	if c > 0 {
		w.EngineVsCeiling, w.AsyncioVsCeiling = e/c, a/c
	}
	if a > 0 {
		w.EngineVsAsyncio = e / a
	}
}

// abTarget: the interpreter thread's CPU time per message may be at most
// this much above the baseline's.
const abTarget = 1.03

// abResult compares the baseline machida3 with this one (current), from
// the runs of the same command, taken alternately.
type abResult struct {
	Baseline string `json:"baseline_machida3"`
	Runs     int    `json:"runs_each"`
	// Medians over the runs of each binary.
	InterpNsBaseline float64 `json:"interp_thread_cpu_ns_per_msg_baseline"`
	InterpNsCurrent  float64 `json:"interp_thread_cpu_ns_per_msg_current"`
	InterpRatio      float64 `json:"interp_thread_cpu_ratio"` // current / baseline
	// The least over the runs (the least disturbed run of each).
	InterpMinBaseline float64 `json:"interp_thread_cpu_ns_per_msg_min_baseline"`
	InterpMinCurrent  float64 `json:"interp_thread_cpu_ns_per_msg_min_current"`
	ProcNsBaseline    float64 `json:"process_cpu_ns_per_msg_baseline"`
	ProcNsCurrent     float64 `json:"process_cpu_ns_per_msg_current"`
	ProcRatio         float64 `json:"process_cpu_ratio"`
	RateBaseline      float64 `json:"msgs_per_s_baseline"`
	RateCurrent       float64 `json:"msgs_per_s_current"`
	RateRatio         float64 `json:"throughput_ratio"` // current / baseline
	Ceiling           float64 `json:"ceiling_msgs_per_s"`
	BaseVsCeiling     float64 `json:"baseline_vs_ceiling"`
	CurVsCeiling      float64 `json:"current_vs_ceiling"`
	// Per rep: current / the baseline run just before it.
	PairedInterpRatios []float64 `json:"paired_interp_thread_cpu_ratios"`
	PairedRateRatios   []float64 `json:"paired_throughput_ratios"`
	// RateNoise is the relative half-range of the baseline's own rates
	// ((max - min) / 2 / median): a run-to-run noise figure.
	RateNoise       float64 `json:"baseline_rate_noise"`
	InterpOK        bool    `json:"interp_thread_cpu_within_target"`
	ThroughputOK    bool    `json:"throughput_not_lower_beyond_noise"`
	OthersBaseline  float64 `json:"rest_of_machine_cpu_pct_baseline"`
	OthersCurrent   float64 `json:"rest_of_machine_cpu_pct_current"`
	StartupBaseline int     `json:"interp_thread_ran_startup_runs_baseline"`
	StartupCurrent  int     `json:"interp_thread_ran_startup_runs_current"`
}

func compareAB(cfg *config, ceiling, base, cur *satSummary) *abResult {
	b, c := base.Median, cur.Median
	ab := &abResult{
		Baseline: cfg.baseline, Runs: min(len(base.Runs), len(cur.Runs)),
		InterpNsBaseline: b.InterpNsPerMsg, InterpNsCurrent: c.InterpNsPerMsg,
		ProcNsBaseline: b.ProcNsPerMsg, ProcNsCurrent: c.ProcNsPerMsg,
		RateBaseline: b.Rate, RateCurrent: c.Rate, Ceiling: ceiling.Median.Rate,
		OthersBaseline: b.OtherCPU, OthersCurrent: c.OtherCPU,
		StartupBaseline: base.InterpRanStartup, StartupCurrent: cur.InterpRanStartup,
	}
	ratio := ratioOf
	ab.InterpRatio, ab.ProcRatio, ab.RateRatio = ratio(c.InterpNsPerMsg, b.InterpNsPerMsg), ratio(c.ProcNsPerMsg, b.ProcNsPerMsg), ratio(c.Rate, b.Rate)
	ab.BaseVsCeiling, ab.CurVsCeiling = ratio(b.Rate, ab.Ceiling), ratio(c.Rate, ab.Ceiling)
	least := func(runs []satRun) float64 {
		m := 0.0
		for _, r := range runs {
			if r.InterpNsPerMsg > 0 && (m == 0 || r.InterpNsPerMsg < m) {
				m = r.InterpNsPerMsg
			}
		}
		return m
	}
	ab.InterpMinBaseline, ab.InterpMinCurrent = least(base.Runs), least(cur.Runs)
	if len(base.Runs) == len(cur.Runs) {
		for i := range base.Runs {
			ab.PairedInterpRatios = append(ab.PairedInterpRatios, ratio(cur.Runs[i].InterpNsPerMsg, base.Runs[i].InterpNsPerMsg))
			ab.PairedRateRatios = append(ab.PairedRateRatios, ratio(cur.Runs[i].Rate, base.Runs[i].Rate))
		}
	}
	if b.Rate > 0 {
		ab.RateNoise = (base.MaxRate - base.MinRate) / 2 / b.Rate
	}
	ab.InterpOK = ab.InterpRatio > 0 && ab.InterpRatio <= abTarget
	ab.ThroughputOK = ab.RateRatio > 0 && ab.RateRatio >= 1-ab.RateNoise
	return ab
}

type latWindow struct {
	Messages   int     `json:"messages"`
	Samples    int     `json:"samples"`
	Missing    int     `json:"missing"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	P999us     float64 `json:"p999_us"`
	MaxUs      float64 `json:"max_us"`
	MeanUs     float64 `json:"mean_us"`
	MaxLagUs   float64 `json:"pacer_max_lag_us"`
	CPU        float64 `json:"cpu_pct"`
	BusiestThr float64 `json:"busiest_thread_pct"`
	DriverCPU  float64 `json:"driver_cpu_pct"`
	OtherCPU   float64 `json:"rest_of_machine_cpu_pct"`
}

type latSummary struct {
	Rate    float64     `json:"rate_msgs_per_s"`
	Windows []latWindow `json:"windows"`
	P50us   float64     `json:"p50_us"` // medians over the windows
	P99us   float64     `json:"p99_us"`
	P999us  float64     `json:"p999_us"`
	MaxUs   float64     `json:"max_us"`
	Samples int         `json:"samples"`
	Error   string      `json:"error,omitempty"`
}

type memResult struct {
	Seconds       float64 `json:"seconds"`
	WarmupSeconds float64 `json:"warmup_seconds"`
	RSSKB         []int64 `json:"rss_kb_per_second"`
	StartKB       int64   `json:"start_kb"`
	EndKB         int64   `json:"end_kb"`
	MaxKB         int64   `json:"max_kb"`
	PeakRSSKB     int64   `json:"peak_rss_kb"`      // VmHWM, start-up and warm-up included
	SlopeKBPerMin float64 `json:"slope_kb_per_min"` // Theil-Sen
	GrowthKB      float64 `json:"fitted_growth_kb"` // slope x duration
	// LSQSlopeKBPerMin is the least-squares slope, for comparison.
	LSQSlopeKBPerMin float64 `json:"lsq_slope_kb_per_min"`
	Flat             bool    `json:"flat"`
	SustainedRate    float64 `json:"sustained_msgs_per_s"`
	CPU              float64 `json:"cpu_pct"`
	BusiestThr       float64 `json:"busiest_thread_pct"`
	OtherCPU         float64 `json:"rest_of_machine_cpu_pct"`
	Perf             string  `json:"perf,omitempty"`
	Error            string  `json:"error,omitempty"`
}

// summarize fits the RSS samples. The Go heap and pymalloc make RSS swing
// by a few MiB from one second to the next, so the figures are robust
// ones: start and end are the medians of the first and last quarter of
// the samples, the slope is the Theil-Sen estimate (the median of the
// slopes between every two samples); the least-squares slope is kept too.
func (m *memResult) summarize() {
	n := len(m.RSSKB)
	if n == 0 {
		return
	}
	q := max(1, n/4)
	var first, last, slopes []float64
	var sx, sy, sxx, sxy float64
	for i, v := range m.RSSKB {
		m.MaxKB = max(m.MaxKB, v)
		if i < q {
			first = append(first, float64(v))
		}
		if i >= n-q {
			last = append(last, float64(v))
		}
		for j := i + 1; j < n; j++ {
			slopes = append(slopes, float64(m.RSSKB[j]-v)/float64(j-i))
		}
		x, y := float64(i), float64(v)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	m.StartKB, m.EndKB = int64(median(first)), int64(median(last))
	if n > 1 {
		slope := median(slopes) // KB per second (one sample a second)
		m.SlopeKBPerMin = slope * 60
		m.GrowthKB = slope * float64(n-1)
		m.LSQSlopeKBPerMin = 60 * (float64(n)*sxy - sx*sy) / (float64(n)*sxx - sx*sx)
	}
	limit := max(defaultTargets.FlatMiB*1024, defaultTargets.FlatFrac*float64(m.StartKB))
	m.Flat = m.GrowthKB < limit
}

func kbToMiB(kb int64) float64 { return float64(kb) / 1024 }

func fmtUs(us float64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0fus", us)
	case us < 10000:
		return fmt.Sprintf("%.2fms", us/1000)
	default:
		return fmt.Sprintf("%.1fms", us/1000)
	}
}

func fmtRate(r float64) string {
	if r <= 0 {
		return "-"
	}
	s := fmt.Sprintf("%.0f", r)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtPct(p float64) string {
	if p <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", p)
}

func fmtMiB(kb int64) string {
	if kb <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", kbToMiB(kb))
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

func renderTable(res *results) string {
	var b strings.Builder
	mode := "full run"
	if res.Settings.Quick {
		mode = "quick run"
	}
	fmt.Fprintf(&b, "\nmachida3 benchmark (%s, %.0f s): %d CPUs; Python %s embedded in machida3, baselines run with %s\n",
		mode, res.Seconds, res.CPUs, res.Python.Short, res.Python.Path)
	fmt.Fprintf(&b, "load average (1/5/15 min): %s at the start, %s at the end\n", res.LoadStart, res.LoadEnd)
	fmt.Fprintf(&b, "machida3 (current) = %s\n", res.Machida3)
	if res.Baseline != "" {
		fmt.Fprintf(&b, "A/B mode: baseline = %s,\n   run right before the current machida3 in every rep (baseline, current, baseline, ...)\n", res.Baseline)
	}
	frac := "half"
	if f := res.Settings.LatencyFraction; f != 0.5 {
		frac = fmt.Sprintf("%.2f", f)
	}
	fmt.Fprintf(&b, "throughput: median of %d runs, end to end (first byte sent -> last output received); latency: send -> receive at "+frac+" of the system's own\n"+
		"saturation rate, %d windows of %.1f s after %.1f s warm-up (median of each percentile); CPU in %% of one core (busiest = its busiest thread); driver = this\n"+
		"program (sender + receiver); others = every other process on the machine meanwhile (the noise);\n"+
		"(runner) = diagnostic, not a baseline: the ceiling's loop replaced by machida3's own Python layer (wallaroo._runner, batches of 1024, no I/O)\n",
		res.Settings.Reps, res.Settings.LatencyWindows, res.Settings.LatencyWindowSeconds, res.Settings.WarmupSeconds)
	t := res.Targets
	for _, w := range res.Workloads {
		fmt.Fprintf(&b, "\n== %s: %s\n", w.Name, w.Input)
		if w.Error != "" {
			fmt.Fprintf(&b, "   ERROR: %s\n", w.Error)
			continue
		}
		fmt.Fprintf(&b, "   %d %ss -> %d outputs (%d bytes) per run\n", w.Messages, w.Unit, w.Outputs, w.OutBytes)
		if len(w.Ceiling.Runs) == 0 && w.Ceiling.Error == "" && w.Cluster != nil {
			renderCluster(&b, w.Cluster, res.Settings.Reps) // the cluster phase alone
			continue
		}
		unit := w.Unit + "s/s"
		fmt.Fprintf(&b, "   %-9s %11s %11s %9s %6s %7s %6s %6s %8s | %10s %7s %7s %7s %7s\n",
			"system", unit, "outputs/s", "x ceiling", "CPU", "busiest", "driver", "others", "peak RSS",
			"lat. rate", "p50", "p99", "p99.9", "max")
		row := func(name string, s satSummary, ratio float64, l *latSummary) {
			if s.Error != "" && len(s.Runs) == 0 {
				fmt.Fprintf(&b, "   %-9s ERROR: %s\n", name, firstLine(s.Error))
				return
			}
			m := s.Median
			lat := ""
			if l != nil {
				if l.Error != "" && len(l.Windows) == 0 {
					lat = " latency ERROR: " + firstLine(l.Error)
				} else {
					lat = fmt.Sprintf(" %10s %7s %7s %7s %7s", fmtRate(l.Rate), fmtUs(l.P50us), fmtUs(l.P99us), fmtUs(l.P999us), fmtUs(l.MaxUs))
				}
			}
			rss := "-" // the baselines without I/O hold all their input in memory
			if l != nil {
				rss = fmtMiB(m.PeakRSSKB)
			}
			fmt.Fprintf(&b, "   %-9s %11s %11s %9.2f %6s %7s %6s %6s %8s |%s\n",
				name, fmtRate(m.Rate), fmtRate(m.OutRate), ratio, fmtPct(m.CPU), fmtPct(m.BusiestThr), fmtPct(m.DriverCPU),
				fmt.Sprintf("%.0f%%", m.OtherCPU), rss, lat)
		}
		row("ceiling", w.Ceiling, 1, nil)
		row("machida3", w.Engine, w.EngineVsCeiling, &w.EngineLatency)
		if w.Baseline != nil {
			bl := latSummary{} // the baseline runs the throughput phase only: "-"
			ratio := 0.0
			if c := w.Ceiling.Median.Rate; c > 0 {
				ratio = w.Baseline.Median.Rate / c
			}
			row("baseline", *w.Baseline, ratio, &bl)
		}
		if len(w.Asyncio.Runs) > 0 || w.Asyncio.Error != "" {
			row("asyncio", w.Asyncio, w.AsyncioVsCeiling, &w.AsyncioLatency)
		}
		if c := w.Ceiling.Median.Rate; c > 0 && (len(w.Runner.Runs) > 0 || w.Runner.Error != "") {
			row("(runner)", w.Runner, w.Runner.Median.Rate/c, nil)
		}
		cpuLine := func(name string, s satSummary) {
			m := s.Median
			if m.InterpNsPerMsg <= 0 {
				return
			}
			fmt.Fprintf(&b, "   %s CPU per %s (median): interpreter thread %.0f ns, process %.0f ns; runner-up thread %.0f%% of a core; the busiest thread ran the start-up in %d/%d runs (%s)\n",
				name, w.Unit, m.InterpNsPerMsg, m.ProcNsPerMsg, m.RunnerUpThrPct, s.InterpRanStartup, len(s.Runs), m.ThreadCPUSource)
		}
		cpuLine("machida3", w.Engine)
		if w.Baseline != nil {
			cpuLine("baseline", *w.Baseline)
		}
		named := []struct {
			name string
			sum  satSummary
		}{{"ceiling", w.Ceiling}, {"runner", w.Runner}, {"machida3", w.Engine}, {"asyncio", w.Asyncio}}
		if w.Baseline != nil {
			named = append(named, struct {
				name string
				sum  satSummary
			}{"baseline", *w.Baseline})
		}
		for _, s := range named {
			if s.sum.Error != "" && len(s.sum.Runs) > 0 {
				fmt.Fprintf(&b, "   %s: ERROR after %d runs: %s\n", s.name, len(s.sum.Runs), firstLine(s.sum.Error))
			}
		}
		var spread []string
		for _, s := range named {
			if s.name != "runner" && len(s.sum.Runs) > 0 {
				spread = append(spread, fmt.Sprintf("%s %s..%s", s.name, fmtRate(s.sum.MinRate), fmtRate(s.sum.MaxRate)))
			}
		}
		fmt.Fprintf(&b, "   spread of runs (%s): %s\n", unit, strings.Join(spread, ", "))
		if ab := w.AB; ab != nil {
			fmt.Fprintf(&b, "   A/B, median of %d runs each (current = the machida3 under test, baseline = -baseline-bin):\n", ab.Runs)
			fmt.Fprintf(&b, "      %-33s %12s %12s %9s   %s\n", "", "baseline", "current", "cur/base", "paired per rep (cur/base)")
			fmt.Fprintf(&b, "      %-33s %12.0f %12.0f %9.3f   %s\n", "interp. thread CPU ns/"+w.Unit, ab.InterpNsBaseline, ab.InterpNsCurrent, ab.InterpRatio, fmtRatios(ab.PairedInterpRatios))
			fmt.Fprintf(&b, "      %-33s %12.0f %12.0f %9.3f\n", "  least of the runs", ab.InterpMinBaseline, ab.InterpMinCurrent, ratioOf(ab.InterpMinCurrent, ab.InterpMinBaseline))
			fmt.Fprintf(&b, "      %-33s %12.0f %12.0f %9.3f\n", "process CPU ns/"+w.Unit, ab.ProcNsBaseline, ab.ProcNsCurrent, ab.ProcRatio)
			fmt.Fprintf(&b, "      %-33s %12s %12s %9.3f   %s\n", unit, fmtRate(ab.RateBaseline), fmtRate(ab.RateCurrent), ab.RateRatio, fmtRatios(ab.PairedRateRatios))
			fmt.Fprintf(&b, "      %-33s %12.2f %12.2f   (ceiling %s %s)\n", "x ceiling", ab.BaseVsCeiling, ab.CurVsCeiling, fmtRate(ab.Ceiling), unit)
			fmt.Fprintf(&b, "      %-33s %11.0f%% %11.0f%%\n", "others (rest of the machine)", ab.OthersBaseline, ab.OthersCurrent)
			fmt.Fprintf(&b, "      interpreter thread CPU/msg <= %.2f x baseline: %.3f %s; throughput not lower beyond noise (ratio >= 1 - %.3f, the baseline's half-range): %.3f %s\n",
				abTarget, ab.InterpRatio, verdict(ab.InterpOK), ab.RateNoise, ab.RateRatio, verdict(ab.ThroughputOK))
		}

		el := w.EngineLatency
		var tg []string
		if w.EngineVsCeiling > 0 {
			tg = append(tg, fmt.Sprintf("machida3 >= %.2f x ceiling: %.2f %s", t.VsCeiling, w.EngineVsCeiling, verdict(w.EngineVsCeiling >= t.VsCeiling)))
		}
		if w.EngineVsAsyncio > 0 {
			tg = append(tg, fmt.Sprintf(">= %.1f x asyncio: %.2f %s", t.VsAsyncio, w.EngineVsAsyncio, verdict(w.EngineVsAsyncio >= t.VsAsyncio)))
		}
		if el.Samples > 0 {
			tg = append(tg, fmt.Sprintf("p99 < %s: %s %s", fmtUs(t.P99us), fmtUs(el.P99us), verdict(el.P99us < t.P99us)))
			tg = append(tg, fmt.Sprintf("p99.9 < %s: %s %s", fmtUs(t.P999us), fmtUs(el.P999us), verdict(el.P999us < t.P999us)))
		}
		m := w.Memory
		if len(m.RSSKB) > 0 {
			tg = append(tg, "memory flat: "+verdict(m.Flat))
		}
		fmt.Fprintf(&b, "   targets (machida3): %s\n", strings.Join(tg, "; "))
		if w.MetricsCost != nil {
			fmt.Fprintf(&b, "   %s\n", w.MetricsCost.line())
		}
		for _, l := range []struct {
			name string
			l    latSummary
		}{{"machida3", w.EngineLatency}, {"asyncio", w.AsyncioLatency}} {
			if l.l.Error != "" && len(l.l.Windows) > 0 {
				fmt.Fprintf(&b, "   %s latency: %s\n", l.name, firstLine(l.l.Error))
			}
			missing := 0
			lag := 0.0
			for _, win := range l.l.Windows {
				missing += win.Missing
				lag = max(lag, win.MaxLagUs)
			}
			if missing > 0 {
				fmt.Fprintf(&b, "   %s latency: %d outputs never matched\n", l.name, missing)
			}
			if len(l.l.Windows) > 0 {
				var cpu, thr, drv, oth []float64
				for _, win := range l.l.Windows {
					cpu, thr = append(cpu, win.CPU), append(thr, win.BusiestThr)
					drv, oth = append(drv, win.DriverCPU), append(oth, win.OtherCPU)
				}
				fmt.Fprintf(&b, "   %s latency windows: CPU %.0f%% (busiest thread %.0f%%), driver %.0f%%, others %.0f%% (medians); p99 per window:",
					l.name, median(cpu), median(thr), median(drv), median(oth))
				for _, win := range l.l.Windows {
					fmt.Fprintf(&b, " %s", fmtUs(win.P99us))
				}
				b.WriteString("\n")
			}
			if lag > 2000 {
				fmt.Fprintf(&b, "   %s latency: the pacer fell up to %s behind schedule (send times are actual, not scheduled)\n", l.name, fmtUs(lag))
			}
		}
		switch {
		case m.Error != "":
			fmt.Fprintf(&b, "   memory: ERROR: %s\n", firstLine(m.Error))
		case len(m.RSSKB) > 0:
			fmt.Fprintf(&b, "   memory (machida3, %.0f s at saturation after %.0f s warm-up, RSS every 1 s): %.1f -> %.1f MiB (first/last quarter medians;\n"+
				"      max %.1f), slope %+.2f MiB/min (Theil-Sen; least squares %+.2f) = %+.1f MiB over the check; %s %s sustained, CPU %s (busiest thread %s, others %.0f%%)\n",
				m.Seconds, m.WarmupSeconds, kbToMiB(m.StartKB), kbToMiB(m.EndKB), kbToMiB(m.MaxKB),
				m.SlopeKBPerMin/1024, m.LSQSlopeKBPerMin/1024, m.GrowthKB/1024, fmtRate(m.SustainedRate), unit, fmtPct(m.CPU), fmtPct(m.BusiestThr), m.OtherCPU)
		}
		if m.Perf != "" {
			fmt.Fprintf(&b, "   perf profile: %s\n", m.Perf)
		}
		if w.Cluster != nil {
			renderCluster(&b, w.Cluster, res.Settings.Reps)
		}
	}
	if res.Rescale != nil {
		b.WriteString("\n")
		for _, l := range res.Rescale.lines() {
			fmt.Fprintf(&b, "%s\n", l)
		}
	}
	if res.Checkpoint != nil {
		b.WriteString("\n")
		for _, l := range res.Checkpoint.lines() {
			fmt.Fprintf(&b, "%s\n", l)
		}
	}
	return b.String()
}

func ratioOf(x, y float64) float64 {
	if y <= 0 {
		return 0
	}
	return x / y
}

func fmtRatios(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.3f", x))
	}
	return strings.Join(parts, " ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
