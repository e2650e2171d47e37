package main

import (
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// primeWait is how long the priming market data gets to be processed
// before a run starts (1001 messages; they take a few milliseconds).
const primeWait = 300 * time.Millisecond

// stall is how long a run may go without any output before it fails.
const stall = 20 * time.Second

func runWorkload(cfg *config, py *pyInfo, spec *workloadSpec, dir string) workloadResult {
	w := &workloadRun{spec: spec, cfg: cfg, dir: dir}
	wr := workloadResult{Name: spec.name, Module: spec.module, Unit: spec.unit}
	fail := func(err error) workloadResult {
		wr.Error = err.Error()
		logf("%s: %v", spec.name, err)
		return wr
	}

	// Calibration: the ceiling's rate on a small input sizes the runs.
	cal, err := spec.generate(w, spec.calN)
	if err != nil {
		return fail(err)
	}
	if err := cal.write(dir, "cal"); err != nil {
		return fail(err)
	}
	cr, err := runCeiling(cfg, py, spec, cal, false)
	if err != nil {
		return fail(err)
	}
	if err := checkCeiling(cr, cal); err != nil {
		return fail(fmt.Errorf("calibration: %v", err))
	}
	n := max(int(cr.Rate*cfg.satSec), spec.minN)
	logf("calibration: ceiling %.0f %ss/s; %d %ss per run", cr.Rate, spec.unit, n, spec.unit)

	ds, err := spec.generate(w, n)
	if err != nil {
		return fail(err)
	}
	if err := ds.write(dir, "sat"); err != nil {
		return fail(err)
	}
	wr.Input = ds.note
	wr.Messages = ds.messages()
	wr.Outputs = ds.expOutputs
	wr.OutBytes = ds.expBytes

	if !cfg.phases["throughput"] {
		if cfg.phases["memory"] {
			wr.Memory = memoryCheck(cfg, w, ds, machidaSystem(cfg, spec))
		}
		if cfg.phases["cluster"] && spec.name == "word_count" {
			wr.Cluster = runCluster(cfg, py, w, ds)
		}
		return wr
	}

	// The four throughput measurements, one run of each in turn, so that
	// the noise of a shared machine falls on all of them alike:
	// 1. the ceiling, and the diagnostic "runner" (machida3's Python layer
	// without the Go side); 2. machida3 and 3. asyncio at saturation.
	// In A/B mode the baseline machida3 runs right before this one in
	// every rep (baseline, current, baseline, current, ...), started the
	// same way on the same input.
	systems := []system{machidaSystem(cfg, spec), asyncioSystem(cfg, py, spec)}
	baseSys := machidaBinSystem(cfg, spec, "baseline", cfg.baseline)
	type measured struct {
		name string
		sum  *satSummary
		run  func() (satRun, error)
	}
	ceiling := func(via bool) func() (satRun, error) {
		return func() (satRun, error) {
			cr, err := runCeiling(cfg, py, spec, ds, via)
			if err == nil {
				err = checkCeiling(cr, ds)
			}
			if err != nil {
				return satRun{}, err
			}
			return satRun{Seconds: cr.Seconds, Rate: cr.Rate, OutRate: float64(ds.expOutputs) / cr.Seconds,
				PeakRSSKB: cr.MaxRSSKB, OtherCPU: cr.otherCPU}, nil
		}
	}
	var all []measured
	all = append(all, measured{"ceiling", &wr.Ceiling, ceiling(false)})
	if cfg.systems["runner"] {
		all = append(all, measured{"runner", &wr.Runner, ceiling(true)})
	}
	if cfg.baseline != "" {
		wr.Baseline = &satSummary{}
		all = append(all, measured{"baseline", wr.Baseline, func() (satRun, error) { return saturate(baseSys, spec, ds) }})
	}
	all = append(all, measured{"machida3", &wr.Engine, func() (satRun, error) { return saturate(systems[0], spec, ds) }})
	if cfg.systems["asyncio"] {
		all = append(all, measured{"asyncio", &wr.Asyncio, func() (satRun, error) { return saturate(systems[1], spec, ds) }})
	}
	if cfg.systems["metrics"] {
		msys := metricsSystem(cfg, spec)
		wr.Metrics = &satSummary{}
		all = append(all, measured{"metrics", wr.Metrics, func() (satRun, error) { return saturate(msys, spec, ds) }})
	}
	for i := 0; i < cfg.reps; i++ {
		for _, m := range all {
			if m.sum.Error != "" {
				continue
			}
			run, err := m.run()
			if err != nil {
				m.sum.Error = err.Error()
				logf("%s: %v", m.name, err)
				continue
			}
			if run.InterpNsPerMsg > 0 {
				logf("%-9s %d/%d: %9.0f %ss/s (%.2f s; CPU %.0f%%, busiest thread %.0f%%, driver %.0f%%, others %.0f%%; CPU/msg: busiest thread %.0f ns, process %.0f ns)",
					m.name, i+1, cfg.reps, run.Rate, spec.unit, run.Seconds, run.CPU, run.BusiestThr, run.DriverCPU, run.OtherCPU,
					run.InterpNsPerMsg, run.ProcNsPerMsg)
			} else if run.DriverCPU > 0 {
				logf("%-9s %d/%d: %9.0f %ss/s (%.2f s; CPU %.0f%%, busiest thread %.0f%%, driver %.0f%%, others %.0f%%)",
					m.name, i+1, cfg.reps, run.Rate, spec.unit, run.Seconds, run.CPU, run.BusiestThr, run.DriverCPU, run.OtherCPU)
			} else {
				logf("%-9s %d/%d: %9.0f %ss/s (%.2f s; others %.0f%%)", m.name, i+1, cfg.reps, run.Rate, spec.unit, run.Seconds, run.OtherCPU)
			}
			m.sum.Runs = append(m.sum.Runs, run)
		}
	}
	for _, m := range all {
		m.sum.summarize()
	}
	sums := []*satSummary{&wr.Engine, &wr.Asyncio}
	wr.ratios()
	if wr.Metrics != nil {
		wr.MetricsCost = metricsCostOf(&wr.Engine, wr.Metrics)
	}
	if wr.Baseline != nil {
		wr.AB = compareAB(cfg, &wr.Ceiling, wr.Baseline, &wr.Engine)
	}

	// Latency at half of each system's own saturation rate.
	lats := []*latSummary{&wr.EngineLatency, &wr.AsyncioLatency}
	for k, sys := range systems {
		if !cfg.phases["latency"] {
			break
		}
		if k == 1 && !cfg.systems["asyncio"] {
			break
		}
		rate := sums[k].Median.Rate * cfg.latFrac
		if rate <= 0 {
			lats[k].Error = "no saturation rate"
			continue
		}
		*lats[k] = measureLatency(cfg, w, ds, sys, rate)
		if lats[k].Error != "" {
			logf("%s latency: %s", sys.name, lats[k].Error)
		}
	}

	// Memory: machida3 at saturation for a while.
	if cfg.phases["memory"] {
		wr.Memory = memoryCheck(cfg, w, ds, systems[0])
	}

	// The cluster phase: word count on 1 and 2 workers, and the machine's
	// own 2-process limit.
	if cfg.phases["cluster"] && spec.name == "word_count" {
		wr.Cluster = runCluster(cfg, py, w, ds)
	}
	return wr
}

func checkCeiling(cr *ceilingResult, ds *dataset) error {
	outputs := cr.Outputs
	if outputs == -1 { // --via-runner counts bytes only
		outputs = ds.expOutputs
	}
	if cr.Messages != ds.messages() || outputs != ds.expOutputs || cr.OutBytes != ds.expBytes {
		return fmt.Errorf("ceiling.py processed %d messages into %d outputs (%d bytes); the generator expects %d, %d, %d",
			cr.Messages, cr.Outputs, cr.OutBytes, ds.messages(), ds.expOutputs, ds.expBytes)
	}
	return nil
}

// session is a running system under test with its sink and sources
// connected (and market data primed).
type session struct {
	p     *proc
	r     *receiver
	conns []net.Conn
}

func startSession(sys system, spec *workloadSpec, ds *dataset, setup func(r *receiver)) (*session, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := newReceiver()
		if err != nil {
			return nil, err
		}
		if setup != nil {
			setup(r)
		}
		go r.serve()
		ins, err := freeAddrs(spec.sources)
		if err != nil {
			r.close()
			return nil, err
		}
		p, err := sys.start(ins, r.addr())
		if err != nil {
			r.close()
			lastErr = err
			if strings.Contains(err.Error(), "address already in use") {
				continue // a port was taken meanwhile: try others
			}
			return nil, err
		}
		s := &session{p: p, r: r}
		for _, a := range ins {
			c, err := dial(a)
			if err != nil {
				s.close()
				return nil, fmt.Errorf("connect to %s %s: %v", sys.name, a, err)
			}
			s.conns = append(s.conns, c)
		}
		if ds.prime != nil {
			if _, err := s.conns[ds.primeSrc].Write(ds.prime); err != nil {
				s.close()
				return nil, err
			}
			time.Sleep(primeWait)
		}
		return s, nil
	}
	return nil, lastErr
}

func (s *session) close() {
	for _, c := range s.conns {
		c.Close()
	}
	s.p.stop()
	s.r.close()
	<-s.r.closed
}

// saturate runs one saturation measurement: every input byte written as
// fast as the connections take it, timed from the first byte sent to the
// last output received.
func saturate(sys system, spec *workloadSpec, ds *dataset) (satRun, error) {
	var end *msEnd
	s, err := startSession(sys, spec, ds, func(r *receiver) {
		r.hash = ds.checkCRC
		if ds.endProbe != nil {
			end = newMSEnd()
			r.parser = end
		}
	})
	if err != nil {
		return satRun{}, err
	}
	defer s.close()
	if got := s.r.bytes.Load(); got != 0 {
		return satRun{}, fmt.Errorf("%d output bytes before the run", got)
	}

	u0 := sampleUsage(s.p.pid)
	t0 := nowNs()
	var wg sync.WaitGroup
	werr := make([]error, len(s.conns))
	for i, c := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, werr[i] = c.Write(ds.inputs[i])
		}()
	}
	var t1 int64
	if ds.endProbe == nil {
		t1, err = s.r.waitBytes(ds.expBytes, stall, s.p)
	} else {
		wg.Wait()
		t1, err = waitProbe(s, ds, end)
	}
	var run satRun
	u0.since(s.p.pid, &run)
	wg.Wait()
	for _, e := range werr {
		if e != nil && err == nil {
			err = fmt.Errorf("send: %v", e)
		}
	}
	if err != nil {
		return satRun{}, err
	}
	// Let anything extra arrive, then check the output.
	time.Sleep(100 * time.Millisecond)
	if ds.endProbe == nil {
		if got := s.r.bytes.Load(); got != ds.expBytes {
			return satRun{}, fmt.Errorf("got %d output bytes, want %d", got, ds.expBytes)
		}
		if ds.checkCRC && s.r.sum() != ds.expCRC {
			return satRun{}, fmt.Errorf("the output differs from the expected one (CRC-32 %08x, want %08x)", s.r.sum(), ds.expCRC)
		}
	} else if got, bad := end.results.Load(), end.bad.Load(); got != int64(ds.expOutputs) || bad != 0 {
		return satRun{}, fmt.Errorf("got %d results (%d malformed), want %d", got, bad, ds.expOutputs)
	}

	secs := float64(t1-t0) / 1e9
	run.Seconds, run.Rate, run.OutRate = secs, float64(ds.messages())/secs, float64(ds.expOutputs)/secs
	run.perMessage(ds.messages())
	run.PeakRSSKB = statusKB(s.p.pid, "VmHWM")
	return run, nil
}

// waitProbe sends the end probe every millisecond until its output
// arrives; all the regular results must have arrived before it.
func waitProbe(s *session, ds *dataset, end *msEnd) (int64, error) {
	lastChange := time.Now()
	last := s.r.bytes.Load()
	for {
		if t := end.probeAt.Load(); t != 0 {
			return t, nil
		}
		if _, err := s.conns[0].Write(ds.endProbe); err != nil {
			return 0, fmt.Errorf("send probe: %v", err)
		}
		time.Sleep(time.Millisecond)
		if !s.p.alive() {
			return 0, fmt.Errorf("%s exited (%v)\n%s", s.p.name, s.p.waitErr(), s.p.output())
		}
		if got := s.r.bytes.Load(); got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > stall {
			return 0, fmt.Errorf("no output for %v: %d results, no probe result", stall, end.results.Load())
		}
	}
}

// measureLatency drives sys at a fixed rate with id-carrying messages and
// reports send-to-receive latency percentiles per window (after a warm-up).
func measureLatency(cfg *config, w *workloadRun, ds *dataset, sys system, rate float64) latSummary {
	spec := w.spec
	ls := latSummary{Rate: rate}
	total := cfg.warmSec + float64(cfg.latWins)*cfg.latSec
	sess := newLatSession(int(rate*total*1.1) + 10000)
	s, err := startSession(sys, spec, ds, func(r *receiver) { r.parser = spec.latParser(sess) })
	if err != nil {
		ls.Error = err.Error()
		return ls
	}
	defer s.close()
	pc := &pacer{tick: cfg.latTick, gen: spec.latGen(w), conns: s.conns, s: sess}
	expected := 0
	wait := func() error {
		last, lastChange := sess.matched.Load(), time.Now()
		for sess.matched.Load() < int64(expected) {
			time.Sleep(time.Millisecond)
			if !s.p.alive() {
				return fmt.Errorf("%s exited (%v)\n%s", sys.name, s.p.waitErr(), s.p.output())
			}
			if m := sess.matched.Load(); m != last {
				last, lastChange = m, time.Now()
			} else if time.Since(lastChange) > stall {
				return fmt.Errorf("%d of %d outputs after %v without progress (%d unknown)", m, expected, stall, sess.unknown.Load())
			}
		}
		return nil
	}
	res, err := pc.run(rate, time.Duration(cfg.warmSec*float64(time.Second)))
	expected += res.expected
	if err == nil {
		err = wait()
	}
	if err != nil {
		ls.Error = err.Error()
		return ls
	}
	var p50s, p99s, p999s []float64
	for win := 0; win < cfg.latWins; win++ {
		u0 := sampleUsage(s.p.pid)
		res, err := pc.run(rate, time.Duration(cfg.latSec*float64(time.Second)))
		var use satRun
		u0.since(s.p.pid, &use)
		expected += res.expected
		if err == nil {
			err = wait()
		}
		if err != nil {
			ls.Error = err.Error()
			return ls
		}
		var lat []int64
		var dump strings.Builder
		for id := res.firstID; id < res.lastID; id++ {
			if sent := sess.sendNs[id].Load(); sent != 0 && sess.latNs[id] > 0 {
				lat = append(lat, sess.latNs[id])
				if cfg.latDump {
					fmt.Fprintf(&dump, "%d,%d,%d\n", id, sent/1000, sess.latNs[id]/1000)
				}
			}
		}
		if cfg.latDump {
			_ = os.MkdirAll(cfg.outDir, 0o755)
			p := filepath.Join(cfg.outDir, fmt.Sprintf("latency-%s-%s-%d.csv", spec.name, sys.name, win+1))
			if err := os.WriteFile(p, []byte("id,send_us,latency_us\n"+dump.String()), 0o644); err != nil {
				logf("%v", err)
			}
		}
		lw := windowStats(lat)
		lw.Missing = res.expected - len(lat)
		lw.Messages = res.messages
		lw.MaxLagUs = float64(res.maxLagNs) / 1e3
		lw.CPU, lw.BusiestThr, lw.DriverCPU, lw.OtherCPU = use.CPU, use.BusiestThr, use.DriverCPU, use.OtherCPU
		logf("%-9s latency %d/%d at %.0f %ss/s: p50 %s p99 %s p99.9 %s max %s (%d samples; CPU %.0f%%, driver %.0f%%, rest of the machine %.0f%%)",
			sys.name, win+1, cfg.latWins, rate, spec.unit, fmtUs(lw.P50us), fmtUs(lw.P99us), fmtUs(lw.P999us), fmtUs(lw.MaxUs), lw.Samples,
			lw.CPU, lw.DriverCPU, lw.OtherCPU)
		ls.Windows = append(ls.Windows, lw)
		p50s, p99s, p999s = append(p50s, lw.P50us), append(p99s, lw.P99us), append(p999s, lw.P999us)
		ls.MaxUs = max(ls.MaxUs, lw.MaxUs)
		ls.Samples += lw.Samples
	}
	ls.P50us, ls.P99us, ls.P999us = median(p50s), median(p99s), median(p999s)
	if d, u := sess.dup.Load(), sess.unknown.Load(); d+u > 0 {
		ls.Error = fmt.Sprintf("%d duplicate and %d unknown outputs", d, u)
	}
	return ls
}

func windowStats(lat []int64) latWindow {
	lw := latWindow{Samples: len(lat)}
	if len(lat) == 0 {
		return lw
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		return float64(lat[max(0, min(i, len(lat)-1))]) / 1e3
	}
	var sum float64
	for _, v := range lat {
		sum += float64(v)
	}
	lw.P50us, lw.P99us, lw.P999us, lw.MaxUs = q(0.50), q(0.99), q(0.999), float64(lat[len(lat)-1])/1e3
	lw.MeanUs = sum / float64(len(lat)) / 1e3
	return lw
}

// memoryCheck runs sys at saturation (the input repeated on every source)
// for the warm-up, then samples its RSS every second for cfg.memSec.
func memoryCheck(cfg *config, w *workloadRun, ds *dataset, sys system) memResult {
	spec := w.spec
	mr := memResult{Seconds: cfg.memSec, WarmupSeconds: cfg.memWarm}
	s, err := startSession(sys, spec, ds, func(r *receiver) { r.sep = spec.outputSep })
	if err != nil {
		mr.Error = err.Error()
		return mr
	}
	defer s.close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Write(ds.inputs[i]); err != nil {
					return
				}
			}
		}()
	}
	defer func() {
		close(stop)
		for _, c := range s.conns {
			c.SetWriteDeadline(time.Now())
		}
		wg.Wait()
	}()

	outputs := func() int64 {
		if spec.recordLen > 0 {
			return s.r.bytes.Load() / int64(spec.recordLen)
		}
		return s.r.seps.Load()
	}
	time.Sleep(time.Duration(cfg.memWarm * float64(time.Second)))
	if !s.p.alive() {
		mr.Error = fmt.Sprintf("%s exited during the warm-up (%v)\n%s", sys.name, s.p.waitErr(), s.p.output())
		return mr
	}
	logf("%-9s memory check: %.0f s at saturation", sys.name, cfg.memSec)

	var perfCmd *exec.Cmd
	var perfDone chan error
	if cfg.perf {
		perfCmd, perfDone, mr.Perf = startPerf(cfg, spec, s.p.pid, min(cfg.memSec, 15))
	}

	u0 := sampleUsage(s.p.pid)
	o0 := outputs()
	start := time.Now()
	for k := 0; ; k++ {
		next := start.Add(time.Duration(k) * time.Second)
		time.Sleep(time.Until(next))
		if !s.p.alive() {
			mr.Error = fmt.Sprintf("%s exited during the memory check (%v)\n%s", sys.name, s.p.waitErr(), s.p.output())
			return mr
		}
		mr.RSSKB = append(mr.RSSKB, statusKB(s.p.pid, "VmRSS"))
		if float64(k) >= cfg.memSec {
			break
		}
	}
	var use satRun
	u0.since(s.p.pid, &use)
	o1 := outputs()
	secs := time.Since(start).Seconds()
	mr.CPU, mr.BusiestThr, mr.OtherCPU = use.CPU, use.BusiestThr, use.OtherCPU
	mr.SustainedRate = float64(o1-o0) / secs * float64(ds.messages()) / float64(ds.expOutputs)
	mr.PeakRSSKB = statusKB(s.p.pid, "VmHWM")
	mr.summarize()
	logf("%-9s memory: RSS %.1f -> %.1f MiB (max %.1f), slope %+.2f MiB/min (Theil-Sen), %.0f %ss/s sustained",
		sys.name, kbToMiB(mr.StartKB), kbToMiB(mr.EndKB), kbToMiB(mr.MaxKB), mr.SlopeKBPerMin/1024, mr.SustainedRate, spec.unit)
	if perfCmd != nil {
		if err := <-perfDone; err != nil {
			mr.Perf = "perf record failed: " + err.Error()
		} else {
			mr.Perf = perfReport(cfg, mr.Perf)
		}
	}
	return mr
}

// startPerf records machida3's call graphs for secs seconds.
func startPerf(cfg *config, spec *workloadSpec, pid int, secs float64) (*exec.Cmd, chan error, string) {
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return nil, nil, err.Error()
	}
	data := filepath.Join(cfg.outDir, "perf-"+spec.name+".data")
	cmd := exec.Command("perf", "record", "-F", "999", "-g", "-p", fmt.Sprint(pid), "-o", data,
		"--", "sleep", fmt.Sprintf("%.0f", secs))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return nil, nil, "perf: " + err.Error()
	}
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out.String())
		}
		done <- err
	}()
	return cmd, done, data
}

// perfReport writes the perf profile as text next to the data and returns
// its path.
func perfReport(cfg *config, data string) string {
	txt := strings.TrimSuffix(data, ".data") + ".txt"
	var b strings.Builder
	for _, args := range [][]string{
		{"report", "-i", data, "--stdio", "--no-children", "--sort", "dso", "-g", "none"},
		{"report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none", "--percent-limit", "0.5"},
	} {
		out, err := exec.Command("perf", args...).CombinedOutput()
		fmt.Fprintf(&b, "$ perf %s\n%s\n", strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
		}
	}
	if err := os.WriteFile(txt, []byte(b.String()), 0o644); err != nil {
		return err.Error()
	}
	return relPath(cfg.root, txt)
}
