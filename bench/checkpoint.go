package main

// The checkpoint phase (-phases checkpoint, in the default run): what
// --run-with-resilience costs and how fast a worker comes back. A single
// worker runs bench/checkpointapp (100 000 keys of small pickled state,
// fed by an internal generator as fast as the worker goes) with and
// without checkpoints every second, in two shapes: about 10 000 of the
// keys changing per second (the case) and every key changing
// every second. Throughput is read at the sink (the app writes its
// message count every 64 messages), each pair run back to back, and
// reported as the ratio with/without. Then the recovery: the worker is
// killed with SIGKILL while it runs and started again with the same
// command line; recovery time is from the restart to the first output of
// the new process (interpreter start, module import and state restore
// included), and to the "RESILIENCE: Replayed" line.

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoint targets (issue 14).
const (
	checkpointRatioTarget = 0.90
	recoveryTarget        = time.Second
)

type checkpointResult struct {
	Keys          int       `json:"keys"`
	Changing      int       `json:"keys_changing_per_s"`
	Without       []float64 `json:"msgs_per_s_without"`
	With          []float64 `json:"msgs_per_s_with"`
	EveryWithout  []float64 `json:"every_key_msgs_per_s_without"`
	EveryWith     []float64 `json:"every_key_msgs_per_s_with"`
	Ratio         float64   `json:"ratio"`
	EveryRatio    float64   `json:"every_key_ratio"`
	RatioOK       bool      `json:"ratio_within_target"`
	RecoveryMs    []float64 `json:"recovery_to_first_output_ms"`
	ReplayedMs    []float64 `json:"recovery_to_replayed_line_ms"`
	RecoveryOK    bool      `json:"recovery_within_target"`
	Error         string    `json:"error,omitempty"`
	SecondsPerRun float64   `json:"seconds_per_run"`
}

// ckSink counts what the app writes: each 8 bytes is the number of the
// message that made it.
type ckSink struct {
	ln    net.Listener
	last  atomic.Int64 // the latest message number seen
	conns atomic.Int64
	first sync.Map // connection number -> time.Time of its first output
	wg    sync.WaitGroup
}

func (s *ckSink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		n := s.conns.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			var b [8]byte
			for {
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				s.first.LoadOrStore(n, time.Now())
				v := int64(binary.BigEndian.Uint64(b[:]))
				for {
					old := s.last.Load()
					if v <= old || s.last.CompareAndSwap(old, v) {
						break
					}
				}
			}
		}()
	}
}

func runCheckpoint(cfg *config) *checkpointResult {
	const keys, changing = 100_000, 10_000
	res := &checkpointResult{Keys: keys, Changing: changing}
	fail := func(err error) *checkpointResult {
		res.Error = err.Error()
		logf("checkpoint: %v", err)
		return res
	}
	appDir := filepath.Join(cfg.root, "bench", "checkpointapp")
	env := envWithout(os.Environ(), "PYTHONPATH")
	warm, measure := 4*time.Second, 8*time.Second
	reps := 3
	if cfg.quick {
		warm, measure, reps = 3*time.Second, 4*time.Second, 1
	}
	res.SecondsPerRun = measure.Seconds()
	// run measures one configuration: messages per second at the sink
	// over measure, after warm (which covers the first message of every
	// key).
	run := func(resilient bool, changing int) (float64, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		sink := &ckSink{ln: ln}
		go sink.serve()
		defer func() { ln.Close(); sink.wg.Wait() }()
		dir, err := os.MkdirTemp("", "machida-bench-checkpoint-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		argv := ckArgv(cfg, ln.Addr().String(), dir, changing, resilient)
		if argv == nil {
			return 0, fmt.Errorf("no free ports")
		}
		p, err := startProc("checkpoint_keys", argv, appDir, env, "Application has successfully initialized")
		if err != nil {
			return 0, err
		}
		defer p.stop()
		time.Sleep(warm)
		n0, t0 := sink.last.Load(), time.Now()
		time.Sleep(measure)
		n1, t1 := sink.last.Load(), time.Now()
		if !p.alive() {
			return 0, fmt.Errorf("the worker exited:\n%s", p.output())
		}
		if n1 <= n0 {
			return 0, fmt.Errorf("no progress at the sink in %v:\n%s", measure, p.output())
		}
		return float64(n1-n0) / t1.Sub(t0).Seconds(), nil
	}
	for rep := 0; rep < reps; rep++ {
		for _, c := range []struct {
			resilient bool
			changing  int
			into      *[]float64
		}{
			{false, changing, &res.Without}, {true, changing, &res.With},
			{false, 0, &res.EveryWithout}, {true, 0, &res.EveryWith},
		} {
			r, err := run(c.resilient, c.changing)
			if err != nil {
				return fail(err)
			}
			logf("checkpoint: resilience %v, keys changing per second %s: %.0f msgs/s", c.resilient, ckChanging(c.changing), r)
			*c.into = append(*c.into, r)
		}
	}
	// Each ratio is the median over the reps of with/without, each pair
	// run back to back: slow drifts of the machine's other load (the
	// noise of shared vCPUs) fall mostly on both runs of a pair.
	res.Ratio = pairRatio(res.With, res.Without)
	res.EveryRatio = pairRatio(res.EveryWith, res.EveryWithout)
	res.RatioOK = res.Ratio >= checkpointRatioTarget

	// Recovery: kill -9 while it runs, start the same command line again.
	for rep := 0; rep < max(reps, 2); rep++ {
		first, replayed, err := ckRecover(cfg, appDir, env, changing)
		if err != nil {
			return fail(err)
		}
		res.RecoveryMs = append(res.RecoveryMs, float64(first.Microseconds())/1000)
		res.ReplayedMs = append(res.ReplayedMs, float64(replayed.Microseconds())/1000)
		logf("checkpoint: recovery %v to the first output, %v to the Replayed line", first.Round(time.Millisecond), replayed.Round(time.Millisecond))
	}
	res.RecoveryOK = slices.Max(res.RecoveryMs) < float64(recoveryTarget.Milliseconds())
	return res
}

// pairRatio is the median of with[i]/without[i].
func pairRatio(with, without []float64) float64 {
	var rs []float64
	for i := range min(len(with), len(without)) {
		if without[i] > 0 {
			rs = append(rs, with[i]/without[i])
		}
	}
	if len(rs) == 0 {
		return 0
	}
	return median(rs)
}

func ckChanging(n int) string {
	if n == 0 {
		return "all"
	}
	return strconv.Itoa(n)
}

// ckArgv is one worker's command line (a one-worker cluster, as the
// harness starts it).
func ckArgv(cfg *config, out, dir string, changing int, resilient bool) []string {
	addrs, err := freeAddrs(4)
	if err != nil {
		return nil
	}
	argv := []string{cfg.machida, "--application-module", "checkpoint_keys", "--out", out,
		"--metrics", addrs[0], "--control", addrs[1], "--data", addrs[2], "--external", addrs[3],
		"--cluster-initializer", "--name", "initializer", "--resilience-dir", dir,
		"--changing", strconv.Itoa(changing), "--ponythreads=1", "--ponynoblock"}
	if resilient {
		argv = append(argv, "--run-with-resilience", "--time-between-checkpoints", "1000000000")
	}
	return argv
}

// ckRecover runs the app with checkpoints, kills it, restarts it and
// says how long the restart took to produce output again and to print
// its Replayed line.
func ckRecover(cfg *config, appDir string, env []string, changing int) (first, replayed time.Duration, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	sink := &ckSink{ln: ln}
	go sink.serve()
	defer func() { ln.Close(); sink.wg.Wait() }()
	dir, err := os.MkdirTemp("", "machida-bench-recovery-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	argv := ckArgv(cfg, ln.Addr().String(), dir, changing, true)
	if argv == nil {
		return 0, 0, fmt.Errorf("no free ports")
	}
	p, err := startProc("checkpoint_keys", argv, appDir, env, "Application has successfully initialized")
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(4 * time.Second) // every key has state; a few checkpoints
	p.kill()
	before := sink.conns.Load()
	t0 := time.Now()
	q, err := startProc("checkpoint_keys (restarted)", argv, appDir, env, "RESILIENCE: Replayed")
	if err != nil {
		return 0, 0, err
	}
	defer q.stop()
	replayed = time.Since(t0)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if v, ok := sink.first.Load(before + 1); ok {
			return v.(time.Time).Sub(t0), replayed, nil
		}
		if time.Now().After(deadline) || !q.alive() {
			return 0, 0, fmt.Errorf("no output after the restart:\n%s", q.output())
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *checkpointResult) lines() []string {
	if r.Error != "" {
		return []string{"checkpoint: ERROR " + firstLine(r.Error)}
	}
	return []string{
		fmt.Sprintf("checkpoint (%d keys of small pickled state, one worker, a checkpoint every second, %.0f s runs):", r.Keys, r.SecondsPerRun),
		fmt.Sprintf("   %d keys changing per second: %.0f msgs/s with, %.0f without (medians): ratio %.3f (median of pairs %s; >= %.2f: %s)",
			r.Changing, median(r.With), median(r.Without), r.Ratio, ckPairs(r.With, r.Without), checkpointRatioTarget, verdict(r.RatioOK)),
		fmt.Sprintf("   every key changing every second: %.0f msgs/s with, %.0f without: ratio %.3f (pairs %s)",
			median(r.EveryWith), median(r.EveryWithout), r.EveryRatio, ckPairs(r.EveryWith, r.EveryWithout)),
		fmt.Sprintf("   recovery after kill -9, restart to first output: %s ms (< %v: %s); to the Replayed line: %s ms",
			ckList(r.RecoveryMs), recoveryTarget, verdict(r.RecoveryOK), ckList(r.ReplayedMs)),
	}
}

// ckPairs lists with[i]/without[i].
func ckPairs(with, without []float64) string {
	var out []string
	for i := range min(len(with), len(without)) {
		if without[i] > 0 {
			out = append(out, fmt.Sprintf("%.2f", with[i]/without[i]))
		}
	}
	return strings.Join(out, " ")
}

func ckList(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += ", "
		}
		s += strconv.FormatFloat(x, 'f', 0, 64)
	}
	return s
}
