// Command bench measures machida3 against two baselines, side by side, on
// the word count and market spread examples (issue #5). Run it with
// `make bench` (or `go run ./bench` from the repository root after
// `make build`).
//
// For every workload it measures, each several times (median reported):
//
//  1. ceiling: the application's own user functions in a plain Python loop
//     over the same messages, in one process, with the interpreter that
//     machida3 embeds (bench/ceiling.py);
//  2. machida3 at saturation, one worker: every input byte written as fast
//     as the sockets take it, timed from the first byte sent to the last
//     output byte received;
//  3. asyncio: a hand-written asyncio TCP server running the same
//     functions (bench/asyncio_app.py), measured exactly like machida3.
//
// Then latency (p50/p99/p99.9, send to receive on loopback, at a fixed
// rate of half of the system's own saturation throughput) for machida3 and
// asyncio, and a memory check: machida3 at saturation for a while,
// sampling its RSS every second.
//
// This program is the sender and the receiver (in-process, on loopback
// ports it picks), starts every process it measures and stops each by its
// PID. It prints a table and writes it as JSON to bench/out/.
//
// Settings come from flags, or from the environment when the flag is not
// given: BENCH_QUICK=1 (a run of about two minutes), BENCH_DURATION
// (seconds of the memory check), BENCH_REPS, BENCH_WORKLOADS
// (word_count,market_spread), BENCH_PERF=1 (perf record machida3 during
// the memory check).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	root      string // repository root
	machida   string // bin/machida3
	outDir    string // bench/out
	countThis string // Wallaroo's count_this.txt
	quick     bool
	reps      int
	satSec    float64 // a saturation run lasts about this long at the ceiling's rate
	latSec    float64 // one latency window
	latWins   int     // latency windows (the median of each percentile is reported)
	warmSec   float64 // warm-up before the latency windows
	memWarm   float64 // warm-up before the memory check (the queues fill, the heaps settle)
	memSec    float64 // memory check duration
	workloads []string
	perf      bool
	latFrac   float64 // latency rate as a fraction of the saturation rate
	latDump   bool    // write every latency sample to bench/out/latency-*.csv
	latTick   time.Duration
	phases    map[string]bool
	systems   map[string]bool // the throughput systems to run (ceiling and machida3 always)
	// baseline is another machida3 (-baseline-bin DIR/machida3) measured
	// at saturation alternately with this one, on the same input; empty
	// when not comparing.
	baseline string
	// clusterSecurity: the security variants of the 2-worker cluster
	// (security.go).
	clusterSecurity []string
}

func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envBool(name string) bool {
	v := strings.ToLower(os.Getenv(name))
	return v == "1" || v == "true" || v == "yes" || v == "on"
}

func envFloat(name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		if f, err := strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64); err == nil {
			return f
		}
		fatalf("%s=%q is not a number of seconds", name, v)
	}
	return def
}

func parseConfig() *config {
	c := &config{}
	quick := flag.Bool("quick", envBool("BENCH_QUICK"), "short run (about 2 minutes); env BENCH_QUICK=1")
	reps := flag.Int("reps", 0, "runs of each throughput measurement (default 3); env BENCH_REPS")
	mem := flag.Float64("duration", 0, "seconds of the memory check at saturation (default 60, quick 10); env BENCH_DURATION")
	sat := flag.Float64("sat-seconds", 0, "target length of one saturation run at the ceiling's rate (default 4, quick 1)")
	lat := flag.Float64("lat-seconds", 0, "length of one latency window (default 6, quick 1.5)")
	wins := flag.Int("lat-windows", 3, "latency windows per system (median of each percentile)")
	wl := flag.String("workloads", envString("BENCH_WORKLOADS", "word_count,market_spread"), "comma-separated workloads; env BENCH_WORKLOADS")
	perf := flag.Bool("perf", envBool("BENCH_PERF"), "perf record machida3 during the memory check (needs perf); env BENCH_PERF=1")
	latFrac := flag.Float64("lat-fraction", 0.5, "latency runs at this fraction of each system's saturation rate")
	latTick := flag.Duration("lat-tick", 200*time.Microsecond, "the latency pacer writes the due messages this often (shorter: smoother load, more driver CPU)")
	latDump := flag.Bool("lat-dump", false, "write every latency sample (send time, latency) to bench/out/latency-<workload>-<system>-<window>.csv")
	phases := flag.String("phases", "throughput,latency,memory,cluster,rescale,checkpoint", "what to measure (latency needs throughput); cluster: word count on 1 and 2 workers and the machine's 2-process limit (runs with the word_count workload); rescale: a grow from 1 to 2 workers and a shrink back under load (100 000 keys); checkpoint: throughput with checkpoints every second as a ratio to without (100 000 keys, 10 000 or all changing per second) and the recovery time after kill -9")
	countThis := flag.String("count-this", envString("BENCH_COUNT_THIS", ""), "Wallaroo's count_this.txt (default ../shared/data/count_this.txt from the repository root)")
	curBin := flag.String("bin", envString("BENCH_BIN", ""), "the directory of the machida3 under test (default bin/ of this checkout); env BENCH_BIN")
	baseBin := flag.String("baseline-bin", envString("BENCH_BASELINE_BIN", ""), "A/B mode: a directory holding another machida3 (e.g. built from an older commit), run at saturation alternately with bin/machida3 in every throughput rep (default 5 reps then); env BENCH_BASELINE_BIN")
	clusterSec := flag.String("cluster-security", envString("BENCH_CLUSTER_SECURITY", "secret,tls"), "the cluster phase also runs the 2-worker cluster with these protections of its links: secret, tls (comma-separated; \"none\" for neither); env BENCH_CLUSTER_SECURITY")
	systems := flag.String("systems", "ceiling,runner,machida3,asyncio,metrics", "the systems of the throughput phase (ceiling and machida3 always run; metrics: machida3 with --metrics and --prometheus consumed)")
	flag.Parse()

	c.quick = *quick
	c.reps = *reps
	defReps := 3.0
	if *baseBin != "" {
		defReps = 5 // the A/B comparison takes the median of 5
	}
	if c.reps <= 0 {
		c.reps = int(envFloat("BENCH_REPS", defReps))
	}
	if c.reps <= 0 {
		c.reps = 1
	}
	c.memSec, c.satSec, c.latSec, c.warmSec, c.memWarm = 60, 4, 6, 3, 10
	if c.quick {
		c.memSec, c.satSec, c.latSec, c.warmSec, c.memWarm = 10, 1, 1.5, 1, 3
	}
	c.memSec = envFloat("BENCH_DURATION", c.memSec)
	if *mem > 0 {
		c.memSec = *mem
	}
	if *sat > 0 {
		c.satSec = *sat
	}
	if *lat > 0 {
		c.latSec = *lat
	}
	c.latWins = max(*wins, 1)
	c.perf = *perf
	c.latFrac = *latFrac
	c.latDump = *latDump
	c.latTick = max(*latTick, 10*time.Microsecond)
	if c.latFrac <= 0 || c.latFrac > 1 {
		fatalf("-lat-fraction must be in (0, 1]")
	}
	c.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "throughput", "latency", "memory", "cluster", "rescale", "checkpoint":
			c.phases[p] = true
		case "":
		default:
			fatalf("unknown phase %q (have throughput, latency, memory, cluster, rescale)", p)
		}
	}
	for _, s := range strings.Split(*clusterSec, ",") {
		switch s = strings.TrimSpace(s); s {
		case "secret", "tls":
			c.clusterSecurity = append(c.clusterSecurity, s)
		case "", "none":
		default:
			fatalf("unknown -cluster-security %q (have secret, tls, none)", s)
		}
	}
	c.systems = map[string]bool{"ceiling": true, "machida3": true}
	for _, sy := range strings.Split(*systems, ",") {
		switch sy = strings.TrimSpace(sy); sy {
		case "ceiling", "runner", "machida3", "asyncio", "metrics":
			c.systems[sy] = true
		case "":
		default:
			fatalf("unknown system %q (have ceiling, runner, machida3, asyncio, metrics)", sy)
		}
	}
	if c.phases["latency"] && !c.phases["throughput"] {
		fatalf("-phases: latency needs throughput (it runs at a fraction of the saturation rate)")
	}
	for _, w := range strings.Split(*wl, ",") {
		if w = strings.TrimSpace(w); w == "word_count_cluster" {
			// The cluster phase alone: word count's calibration, then
			// the cluster runs, no other phase.
			c.phases = map[string]bool{"cluster": true}
			w = "word_count"
		}
		if w != "" {
			if _, ok := workloadSpecs[w]; !ok {
				fatalf("unknown workload %q (have word_count, market_spread, word_count_cluster)", w)
			}
			if !slicesContains(c.workloads, w) {
				c.workloads = append(c.workloads, w)
			}
		}
	}

	root, err := findRoot()
	if err != nil {
		fatalf("%v", err)
	}
	c.root = root
	c.machida = filepath.Join(root, "bin", "machida3")
	if *curBin != "" {
		dir, err := filepath.Abs(*curBin)
		if err != nil {
			fatalf("%v", err)
		}
		c.machida = filepath.Join(dir, "machida3")
	}
	if _, err := os.Stat(c.machida); err != nil {
		fatalf("%s not found: run make build first (make bench does)", c.machida)
	}
	if *baseBin != "" {
		dir, err := filepath.Abs(*baseBin)
		if err != nil {
			fatalf("%v", err)
		}
		c.baseline = filepath.Join(dir, "machida3")
		if st, err := os.Stat(c.baseline); err != nil || st.IsDir() {
			fatalf("-baseline-bin %s: no machida3 there (%v)", *baseBin, err)
		}
		if !c.phases["throughput"] {
			fatalf("-baseline-bin compares the throughput phase: add throughput to -phases")
		}
	}
	c.outDir = filepath.Join(root, "bench", "out")
	c.countThis = *countThis
	if c.countThis == "" {
		c.countThis = filepath.Join(root, "..", "shared", "data", "count_this.txt")
	}
	return c
}

// findRoot walks up from the working directory to the directory holding
// this module's go.mod.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/wallaroo-go/machida") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the repository (no go.mod of github.com/wallaroo-go/machida above %s)", dir)
		}
		dir = parent
	}
}

func fatalf(format string, args ...any) {
	stopAll()
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// logf prints progress on stderr, so the table on stdout stays clean.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func main() {
	cfg := parseConfig()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		stopAll()
		fmt.Fprintf(os.Stderr, "bench: stopped by %v\n", s)
		os.Exit(130)
	}()

	began := time.Now()
	py, err := detectPython(cfg, cfg.machida)
	if err != nil {
		fatalf("finding the embedded Python: %v", err)
	}
	logf("machida3 embeds Python %s; baselines run with %s", py.Short, py.Path)
	if cfg.baseline != "" {
		bpy, err := detectPython(cfg, cfg.baseline)
		if err != nil {
			fatalf("finding the Python the baseline embeds: %v", err)
		}
		if bpy.Version != py.Version {
			fatalf("the baseline %s embeds Python %s, bin/machida3 %s: not comparable", cfg.baseline, bpy.Version, py.Version)
		}
		logf("A/B: baseline %s (same Python), %d reps alternating baseline and current", cfg.baseline, cfg.reps)
	}

	tmp, err := os.MkdirTemp("", "machida-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(tmp)

	res := &results{
		StartedAt: began.UTC().Format(time.RFC3339),
		CPUs:      runtime.NumCPU(),
		Machida3:  binInfo(cfg.machida),
		Baseline:  binInfo(cfg.baseline),
		Python:    py,
		LoadStart: loadAvg(),
		Settings: settings{
			Quick: cfg.quick, Reps: cfg.reps, SaturationSeconds: cfg.satSec,
			LatencyWindowSeconds: cfg.latSec, LatencyWindows: cfg.latWins,
			WarmupSeconds: cfg.warmSec, MemorySeconds: cfg.memSec, MemoryWarmupSeconds: cfg.memWarm,
			LatencyFraction: cfg.latFrac, LatencyTickMicros: cfg.latTick.Microseconds(),
		},
		Targets: defaultTargets,
	}
	if h, err := os.Hostname(); err == nil {
		res.Host = h
	}
	workloadPhases := cfg.phases["throughput"] || cfg.phases["latency"] || cfg.phases["memory"] || cfg.phases["cluster"]
	for _, name := range cfg.workloads {
		if !workloadPhases {
			break
		}
		spec := workloadSpecs[name]
		logf("=== %s ===", name)
		wr := runWorkload(cfg, py, spec, filepath.Join(tmp, name))
		res.Workloads = append(res.Workloads, wr)
		stopAll()
	}
	if cfg.phases["rescale"] {
		logf("=== rescale ===")
		res.Rescale = runRescale(cfg)
		stopAll()
	}
	if cfg.phases["checkpoint"] {
		logf("=== checkpoint ===")
		res.Checkpoint = runCheckpoint(cfg)
		stopAll()
	}
	res.Seconds = time.Since(began).Seconds()
	res.LoadEnd = loadAvg()

	table := renderTable(res)
	fmt.Print(table)
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		fatalf("%v", err)
	}
	res.Table = table
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		fatalf("%v", err)
	}
	name := filepath.Join(cfg.outDir, "bench-"+began.Format("20060102-150405")+".json")
	for _, p := range []string{name, filepath.Join(cfg.outDir, "latest.json")} {
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			fatalf("%v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(cfg.outDir, "latest.txt"), []byte(table), 0o644); err != nil {
		fatalf("%v", err)
	}
	fmt.Printf("\nwritten: %s (also latest.json, latest.txt); %.0f s in all\n", relPath(cfg.root, name), res.Seconds)
}

// binInfo names a binary with its modification time and size ("" for
// none), so that a result file tells which build it measured.
func binInfo(path string) string {
	if path == "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil {
		return path
	}
	return fmt.Sprintf("%s (%s, %d bytes)", path, st.ModTime().UTC().Format(time.RFC3339), st.Size())
}

func relPath(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}
