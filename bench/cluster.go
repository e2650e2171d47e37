package main

// The cluster phase (-phases cluster, in the default run): word count on
// a cluster of one worker and on one of two (an initializer and worker1,
// both on this machine, started as tests/e2e's startCluster starts them),
// in the same reps as a measure of the machine itself: the speedup of two
// CPU-bound Python processes (ceiling.py's loop) over one. On shared
// vCPUs two processes do not run twice as fast as one, so the cluster's
// speedup is judged against that limit: speedup / limit >= 0.85.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clusterTarget: the 2-worker speedup should reach this fraction of the
// machine's own 2-process speedup.
const clusterTarget = 0.85

// clusterWorkers is the size of the larger cluster.
const clusterWorkers = 2

type clusterResult struct {
	Workers       int          `json:"workers"`
	Messages      int          `json:"lines_per_run"`
	LimitMessages int          `json:"lines_per_limit_run"`
	Reps          []clusterRep `json:"reps"`

	OneRate        float64   `json:"one_worker_lines_per_s"`  // median
	TwoRate        float64   `json:"two_workers_lines_per_s"` // median
	Speedup        float64   `json:"speedup"`                 // TwoRate / OneRate
	AloneRate      float64   `json:"machine_one_process_lines_per_s"`
	PairRate       float64   `json:"machine_two_processes_lines_per_s"` // combined
	Limit          float64   `json:"machine_limit"`                     // PairRate / AloneRate
	Efficiency     float64   `json:"speedup_over_limit"`                // Speedup / Limit
	PairedSpeedups []float64 `json:"paired_speedups"`                   // per rep
	PairedLimits   []float64 `json:"paired_limits"`
	One            runBrief  `json:"one_worker"` // medians over the reps
	Two            runBrief  `json:"two_workers"`
	// Security names the variants of the 2-worker cluster also run
	// (security.go); Secured summarises them against PlainCPUPerLine.
	Security        []string       `json:"security_variants,omitempty"`
	PlainCPUPerLine float64        `json:"two_workers_cpu_ns_per_line,omitempty"`
	Secured         []securedBrief `json:"secured,omitempty"`
	Error           string         `json:"error,omitempty"`
}

// clusterRep is one rep: the machine's limit (ceiling.py alone, then two
// at once), then the 1-worker and the 2-worker cluster at saturation.
type clusterRep struct {
	Alone        float64     `json:"machine_one_process_lines_per_s"`
	Pair         []float64   `json:"machine_two_processes_each_lines_per_s"`
	PairCombined float64     `json:"machine_two_processes_lines_per_s"` // both inputs / (last end - first start)
	PairOverlap  float64     `json:"machine_two_processes_overlap"`     // the loops' common time / that span
	One          *clusterRun `json:"one_worker,omitempty"`
	Two          *clusterRun `json:"two_workers,omitempty"`
	// Secured: the 2-worker cluster with each security variant.
	Secured map[string]*clusterRun `json:"two_workers_secured,omitempty"`
}

type clusterRun struct {
	Seconds   float64   `json:"seconds"`
	Rate      float64   `json:"lines_per_s"`
	Procs     []procCPU `json:"processes"`
	DriverCPU float64   `json:"driver_cpu_pct"`          // this program: sender + receiver
	OtherCPU  float64   `json:"rest_of_machine_cpu_pct"` // every other process
	SinkShare []float64 `json:"sink_byte_shares"`        // of the output bytes, per sink connection
}

// procCPU is where one worker process's CPU time went over a run.
type procCPU struct {
	Name     string   `json:"name"`
	PID      int      `json:"pid"`
	CPU      float64  `json:"cpu_pct"` // % of one core, every thread
	NsPerMsg float64  `json:"cpu_ns_per_line"`
	Threads  []thrCPU `json:"busiest_threads"` // up to 4, busiest first
	Source   string   `json:"thread_cpu_source"`
}

type thrCPU struct {
	Tid string  `json:"tid"`
	Pct float64 `json:"cpu_pct"`
	// Startup: the thread with the most CPU time before the run, the
	// one that ran Py_Initialize and the application's setup (the
	// interpreter's thread).
	Startup bool `json:"ran_startup"`
}

// runBrief is the median over the reps of a cluster size's figures.
type runBrief struct {
	Rate      float64     `json:"lines_per_s"`
	DriverCPU float64     `json:"driver_cpu_pct"`
	OtherCPU  float64     `json:"rest_of_machine_cpu_pct"`
	Procs     []procBrief `json:"processes"`
	SinkShare []float64   `json:"sink_byte_shares"`
}

type procBrief struct {
	Name     string    `json:"name"`
	CPU      float64   `json:"cpu_pct"`
	NsPerMsg float64   `json:"cpu_ns_per_line"`
	Threads  []float64 `json:"busiest_threads_pct"` // the median of the i-th busiest
	// StartupTop counts the runs whose busiest thread ran the start-up.
	StartupTop int `json:"busiest_ran_startup_runs"`
	Runs       int `json:"runs"`
}

// runCluster measures the cluster phase on ds (word count).
func runCluster(cfg *config, py *pyInfo, w *workloadRun, ds *dataset) *clusterResult {
	spec := w.spec
	cr := &clusterResult{Workers: clusterWorkers, Messages: ds.messages()}
	fail := func(err error) *clusterResult {
		cr.Error = err.Error()
		logf("cluster: %v", err)
		return cr
	}
	// The machine's limit runs on half the input: its rate is all it is for.
	lds, err := spec.generate(w, max(ds.messages()/2, spec.minN))
	if err != nil {
		return fail(err)
	}
	if err := lds.write(w.dir, "limit"); err != nil {
		return fail(err)
	}
	cr.LimitMessages = lds.messages()
	secDir, err := os.MkdirTemp("", "machida-bench-security-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(secDir)
	secs, err := securityVariants(cfg.clusterSecurity, secDir)
	if err != nil {
		return fail(err)
	}
	for _, s := range secs {
		cr.Security = append(cr.Security, s.Name)
	}
	logf("cluster: word count on 1 and %d workers, %d lines per run; the machine: ceiling.py alone and two at once, %d lines each", clusterWorkers, cr.Messages, cr.LimitMessages)
	for i := 0; i < cfg.reps; i++ {
		var rep clusterRep
		a, err := runCeiling(cfg, py, spec, lds, false)
		if err == nil {
			err = checkCeiling(a, lds)
		}
		if err != nil {
			return fail(fmt.Errorf("ceiling alone: %v", err))
		}
		rep.Alone = a.Rate
		pair, err := ceilingPair(cfg, py, spec, lds)
		if err != nil {
			return fail(fmt.Errorf("two ceilings at once: %v", err))
		}
		t0, t1 := pair[0].T0Wall, pair[0].T1Wall
		lo, hi := t1, t0 // the common time
		for _, p := range pair {
			rep.Pair = append(rep.Pair, p.Rate)
			t0, t1 = min(t0, p.T0Wall), max(t1, p.T1Wall)
			lo, hi = min(lo, p.T1Wall), max(hi, p.T0Wall)
		}
		if span := t1 - t0; span > 0 {
			rep.PairCombined = float64(2*lds.messages()) / span
			rep.PairOverlap = max(0, lo-hi) / span
		}
		logf("machine   %d/%d: one process %9.0f lines/s; two at once %9.0f lines/s combined (%.0f + %.0f, loops overlap %.0f%%): %.2fx",
			i+1, cfg.reps, rep.Alone, rep.PairCombined, rep.Pair[0], rep.Pair[1], 100*rep.PairOverlap, rep.PairCombined/rep.Alone)
		for _, n := range []int{1, clusterWorkers} {
			run, err := clusterSaturate(cfg, spec, ds, n, security{})
			if err != nil {
				return fail(fmt.Errorf("%d worker(s): %v", n, err))
			}
			var parts []string
			for _, p := range run.Procs {
				var thr []string
				for _, t := range p.Threads {
					thr = append(thr, fmt.Sprintf("%.0f%%", t.Pct))
				}
				parts = append(parts, fmt.Sprintf("%s %.0f%% (threads %s)", p.Name, p.CPU, strings.Join(thr, " ")))
			}
			logf("cluster/%d %d/%d: %9.0f lines/s (%.2f s; %s; driver %.0f%%, others %.0f%%)",
				n, i+1, cfg.reps, run.Rate, run.Seconds, strings.Join(parts, "; "), run.DriverCPU, run.OtherCPU)
			if n == 1 {
				rep.One = run
			} else {
				rep.Two = run
			}
		}
		for _, s := range secs {
			run, err := clusterSaturate(cfg, spec, ds, clusterWorkers, s)
			if err != nil {
				return fail(fmt.Errorf("%d workers with %s: %v", clusterWorkers, s.Name, err))
			}
			logf("cluster/%d %-6s %d/%d: %9.0f lines/s (%.2f s; workers' CPU %.0f ns/line, unprotected %.0f)",
				clusterWorkers, s.Name, i+1, cfg.reps, run.Rate, run.Seconds, cpuPerLine(run), cpuPerLine(rep.Two))
			if rep.Secured == nil {
				rep.Secured = map[string]*clusterRun{}
			}
			rep.Secured[s.Name] = run
		}
		cr.Reps = append(cr.Reps, rep)
	}
	cr.summarize()
	return cr
}

func (cr *clusterResult) summarize() {
	var one, two, alone, pair []float64
	var ones, twos []*clusterRun
	cr.PairedSpeedups, cr.PairedLimits = nil, nil
	for _, r := range cr.Reps {
		alone, pair = append(alone, r.Alone), append(pair, r.PairCombined)
		cr.PairedLimits = append(cr.PairedLimits, ratioOf(r.PairCombined, r.Alone))
		if r.One != nil && r.Two != nil {
			one, two = append(one, r.One.Rate), append(two, r.Two.Rate)
			ones, twos = append(ones, r.One), append(twos, r.Two)
			cr.PairedSpeedups = append(cr.PairedSpeedups, ratioOf(r.Two.Rate, r.One.Rate))
		}
	}
	cr.OneRate, cr.TwoRate = median(one), median(two)
	cr.AloneRate, cr.PairRate = median(alone), median(pair)
	cr.Speedup = ratioOf(cr.TwoRate, cr.OneRate)
	cr.Limit = ratioOf(cr.PairRate, cr.AloneRate)
	cr.Efficiency = ratioOf(cr.Speedup, cr.Limit)
	cr.One, cr.Two = briefOf(ones), briefOf(twos)
	cr.summarizeSecured()
}

func briefOf(runs []*clusterRun) runBrief {
	var b runBrief
	if len(runs) == 0 {
		return b
	}
	field := func(f func(r *clusterRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	b.Rate = field(func(r *clusterRun) float64 { return r.Rate })
	b.DriverCPU = field(func(r *clusterRun) float64 { return r.DriverCPU })
	b.OtherCPU = field(func(r *clusterRun) float64 { return r.OtherCPU })
	for k := range runs[0].SinkShare {
		b.SinkShare = append(b.SinkShare, field(func(r *clusterRun) float64 {
			if k < len(r.SinkShare) {
				return r.SinkShare[k]
			}
			return 0
		}))
	}
	for k, p0 := range runs[0].Procs {
		pb := procBrief{Name: p0.Name, Runs: len(runs)}
		pb.CPU = field(func(r *clusterRun) float64 { return r.Procs[k].CPU })
		pb.NsPerMsg = field(func(r *clusterRun) float64 { return r.Procs[k].NsPerMsg })
		for j := range p0.Threads {
			pb.Threads = append(pb.Threads, field(func(r *clusterRun) float64 {
				if j < len(r.Procs[k].Threads) {
					return r.Procs[k].Threads[j].Pct
				}
				return 0
			}))
		}
		for _, r := range runs {
			if th := r.Procs[k].Threads; len(th) > 0 && th[0].Startup {
				pb.StartupTop++
			}
		}
		b.Procs = append(b.Procs, pb)
	}
	return b
}

// ceilingPair runs ceiling.py twice at once on ds, both timed loops
// starting at the same moment (--start-at, once both have loaded).
func ceilingPair(cfg *config, py *pyInfo, spec *workloadSpec, ds *dataset) ([]*ceilingResult, error) {
	at := float64(time.Now().Add(1500*time.Millisecond).UnixNano()) / 1e9
	res := make([]*ceilingResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = runCeiling(cfg, py, spec, ds, false, "--start-at", strconv.FormatFloat(at, 'f', 6, 64))
			if errs[i] == nil {
				errs[i] = checkCeiling(res[i], ds)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, r := range res {
		if r.T0Wall > at+0.2 {
			logf("cluster: a ceiling.py had not loaded its input by the common start (started %.0f ms late)", 1000*(r.T0Wall-at))
		}
	}
	return res, nil
}

// clusterMember is one started worker of a cluster.
type clusterMember struct {
	p        *proc
	name     string
	external string
}

// clusterSaturate starts a cluster of n workers of word count (as
// tests/e2e's startCluster does: the initializer with
// --cluster-initializer --worker-count n --control --data, the others 50
// ms apart with --control --my-control --my-data; each with its own
// --external and --metrics, all with the same --in, --out and a
// --resilience-dir of this run's own), waits until every worker reports
// a processing cluster of n and every sink is connected, then sends all
// of ds to the initializer's source (0.6: sources live on the
// initializer) and times from the first byte sent to the last output
// byte received, on any sink connection.
func clusterSaturate(cfg *config, spec *workloadSpec, ds *dataset, n int, sec security) (*clusterRun, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		run, err := clusterAttempt(cfg, spec, ds, n, sec)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			return run, err
		}
		lastErr = err // a port was taken meanwhile: try others
	}
	return nil, lastErr
}

func clusterAttempt(cfg *config, spec *workloadSpec, ds *dataset, n int, sec security) (*clusterRun, error) {
	r, err := newClusterReceiver(ds.expBytes)
	if err != nil {
		return nil, err
	}
	go r.serve()
	defer r.close()
	addrs, err := freeAddrs(3 + 2*n + 2*(n-1))
	if err != nil {
		return nil, err
	}
	take := func() string { a := addrs[0]; addrs = addrs[1:]; return a }
	in, control, data := take(), take(), take()
	resil, err := os.MkdirTemp("", "machida-bench-resilience-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(resil)
	env := envWithout(os.Environ(), "PYTHONPATH")
	var ms []*clusterMember
	defer func() { stopMembers(ms) }()
	for i := 0; i < n; i++ {
		m := &clusterMember{name: "initializer", external: take()}
		argv := []string{cfg.machida, "--application-module", spec.module, "--in", in, "--out", r.addr(),
			"--metrics", take(), "--external", m.external, "--resilience-dir", resil}
		if i == 0 {
			argv = append(argv, "--name", "initializer", "--cluster-initializer", "--worker-count", strconv.Itoa(n),
				"--control", control, "--data", data)
		} else {
			m.name = fmt.Sprintf("worker%d", i)
			argv = append(argv, "--name", m.name, "--control", control, "--my-control", take(), "--my-data", take())
		}
		argv = append(argv, "--ponythreads=1", "--ponypinasio", "--ponynoblock")
		argv = append(argv, sec.args...)
		// Ready at its first line: a member forms the cluster with the
		// others before it initialises, so the readiness is asked below.
		p, err := startProc(m.name, argv, spec.appDir(cfg), env, "")
		if err != nil {
			return nil, err
		}
		m.p = p
		ms = append(ms, m)
		time.Sleep(50 * time.Millisecond) // as the harness staggers its workers
	}
	if err := waitCluster(cfg, ms, r, n, sec); err != nil {
		return nil, err
	}

	c, err := dial(in)
	if err != nil {
		return nil, fmt.Errorf("connect to the initializer's source %s: %v", in, err)
	}
	defer c.Close()
	if got := r.total.Load(); got != 0 {
		return nil, fmt.Errorf("%d output bytes before the run", got)
	}
	u0 := sampleCluster(ms)
	t0 := nowNs()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(ds.inputs[0])
		werr <- err
	}()
	t1, err := r.wait(ms)
	u1 := sampleCluster(ms)
	if err == nil {
		err = <-werr
	}
	if err != nil {
		return nil, err
	}
	time.Sleep(100 * time.Millisecond) // let anything extra arrive
	if err := r.check(ds); err != nil {
		return nil, err
	}
	run := &clusterRun{Seconds: float64(t1-t0) / 1e9}
	run.Rate = float64(ds.messages()) / run.Seconds
	u0.fill(u1, ms, ds.messages(), run)
	run.SinkShare = r.shares()
	return run, nil
}

// waitCluster waits until every member reports a processing cluster of n
// (the cluster-status query, as startCluster's waitStatus) and the
// receiver has one sink connection per worker.
func waitCluster(cfg *config, ms []*clusterMember, r *clusterReceiver, n int, sec security) error {
	tool := filepath.Join(filepath.Dir(cfg.machida), "external_sender")
	if _, err := os.Stat(tool); err != nil {
		tool = filepath.Join(cfg.root, "bin", "external_sender")
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, m := range ms {
		for {
			if !m.p.alive() {
				return fmt.Errorf("%s exited (%v)\n%s", m.name, m.p.waitErr(), m.p.output())
			}
			out, err := exec.Command(tool, append([]string{"--external", m.external, "--type", "cluster-status-query", "--json"}, sec.args...)...).Output()
			var st struct {
				WorkerCount int  `json:"worker_count"`
				Processing  bool `json:"processing_messages"`
			}
			if err == nil && json.Unmarshal([]byte(strings.TrimSpace(string(out))), &st) == nil && st.Processing && st.WorkerCount == n {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never reported a processing cluster of %d (last answer %q, %v)\n%s", m.name, n, out, err, m.p.output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for int(r.nconn.Load()) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d sink connections after 60 s", r.nconn.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// stopMembers sends SIGTERM to every member at once (by PID) and waits
// for each (SIGKILL after 10 s).
func stopMembers(ms []*clusterMember) {
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.p.stop()
		}()
	}
	wg.Wait()
}

// clusterUsage is the CPU time of every member, of this program and of
// the machine at one moment.
type clusterUsage struct {
	at      time.Time
	procs   []cpuSnap
	self    time.Duration
	machine time.Duration
}

func sampleCluster(ms []*clusterMember) clusterUsage {
	u := clusterUsage{at: time.Now(), self: selfCPU(), machine: machineBusy()}
	for _, m := range ms {
		u.procs = append(u.procs, snapCPU(m.p.pid))
	}
	return u
}

// fill sets the CPU figures of run from u to v, over msgs lines.
func (u clusterUsage) fill(v clusterUsage, ms []*clusterMember, msgs int, run *clusterRun) {
	wall := v.at.Sub(u.at).Seconds()
	if wall <= 0 {
		return
	}
	var procs time.Duration
	for i, m := range ms {
		a, b := u.procs[i], v.procs[i]
		pc := procCPU{Name: m.name, PID: m.p.pid}
		total := b.total - a.total
		procs += total
		pc.CPU = 100 * total.Seconds() / wall
		pc.NsPerMsg = float64(total.Nanoseconds()) / float64(msgs)
		times, src := threadTimes(a, b)
		pc.Source = src
		before := a.threadNs
		if before == nil {
			before = a.threads
		}
		startup, _, _ := busiestThreads(before)
		var tids []string
		for tid := range times {
			tids = append(tids, tid)
		}
		sort.Slice(tids, func(i, j int) bool {
			if times[tids[i]] != times[tids[j]] {
				return times[tids[i]] > times[tids[j]]
			}
			return tids[i] < tids[j]
		})
		for _, tid := range tids[:min(4, len(tids))] {
			pc.Threads = append(pc.Threads, thrCPU{Tid: tid, Pct: 100 * times[tid].Seconds() / wall, Startup: tid == startup})
		}
		run.Procs = append(run.Procs, pc)
	}
	self := v.self - u.self
	run.DriverCPU = 100 * self.Seconds() / wall
	run.OtherCPU = max(0, 100*(v.machine-u.machine-procs-self).Seconds()/wall)
}

// clusterReceiver is the sink of a cluster: it accepts every worker's
// connection and reads each into a buffer of its own (no work per byte
// during the run but the copy: this machine's cores are what is
// measured); the output is checked after the run.
type clusterReceiver struct {
	ln     net.Listener
	want   int64 // the expected output bytes: the run ends when all have arrived
	total  atomic.Int64
	doneAt atomic.Int64
	nconn  atomic.Int32
	extra  atomic.Int64 // bytes beyond a connection's buffer
	mu     sync.Mutex
	conns  []net.Conn
	bufs   [][]byte
	wg     sync.WaitGroup
}

func newClusterReceiver(want int64) (*clusterReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &clusterReceiver{ln: ln, want: want}, nil
}

func (r *clusterReceiver) addr() string { return r.ln.Addr().String() }

func (r *clusterReceiver) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		k := len(r.conns)
		r.conns = append(r.conns, c)
		r.bufs = append(r.bufs, nil)
		r.mu.Unlock()
		r.nconn.Add(1)
		r.wg.Add(1)
		go r.read(k, c)
	}
}

func (r *clusterReceiver) read(k int, c net.Conn) {
	defer r.wg.Done()
	// Untouched pages of a fresh allocation cost nothing: each connection
	// gets room for the whole output.
	buf := make([]byte, 0, r.want+1)
	scratch := make([]byte, 64<<10)
	for {
		var n int
		var err error
		if len(buf) < cap(buf) {
			n, err = c.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
		} else {
			n, err = c.Read(scratch)
			r.extra.Add(int64(n))
		}
		if n > 0 {
			if t := r.total.Add(int64(n)); t >= r.want && r.doneAt.Load() == 0 {
				r.doneAt.CompareAndSwap(0, nowNs())
			}
		}
		if err != nil {
			r.mu.Lock()
			r.bufs[k] = buf
			r.mu.Unlock()
			return
		}
	}
}

// wait waits until every expected output byte has arrived and returns when
// the last did; it fails after stall without any, or when a member exits.
func (r *clusterReceiver) wait(ms []*clusterMember) (int64, error) {
	last, lastChange := r.total.Load(), time.Now()
	for {
		if t := r.doneAt.Load(); t != 0 {
			return t, nil
		}
		time.Sleep(500 * time.Microsecond)
		if got := r.total.Load(); got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > stall {
			return 0, fmt.Errorf("no output for %v: got %d of %d bytes", stall, got, r.want)
		}
		for _, m := range ms {
			if !m.p.alive() {
				return 0, fmt.Errorf("%s exited: got %d of %d bytes (%v)\n%s", m.name, r.total.Load(), r.want, m.p.waitErr(), m.p.output())
			}
		}
	}
}

// close closes the listener and the connections and waits for the readers.
func (r *clusterReceiver) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// check compares the output with ds's: as many bytes, and the same lines
// whatever their order across the sink connections (the sum of their
// hashes; every line "word => count" of word count is unique).
func (r *clusterReceiver) check(ds *dataset) error {
	if got := r.total.Load(); got != ds.expBytes {
		return fmt.Errorf("got %d output bytes, want %d", got, ds.expBytes)
	}
	// The readers are still running: take each buffer's bytes so far
	// under the lock; all the bytes have arrived, so nothing moves.
	r.mu.Lock()
	conns := append([]net.Conn(nil), r.conns...)
	r.mu.Unlock()
	for _, c := range conns {
		c.SetReadDeadline(time.Now()) // the readers store their buffers and return
	}
	r.wg.Wait()
	var sum uint64
	lines := 0
	for k, b := range r.bufs {
		if len(b) > 0 && b[len(b)-1] != '\n' {
			return fmt.Errorf("sink connection %d ends in the middle of a line", k)
		}
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			sum += lineHash(b[:i])
			lines++
			b = b[i+1:]
		}
	}
	if lines != ds.expOutputs || sum != ds.expLineSum {
		return fmt.Errorf("the output differs from the expected one: %d lines (want %d), line-hash sum %016x (want %016x)", lines, ds.expOutputs, sum, ds.expLineSum)
	}
	return nil
}

// shares is each sink connection's share of the output bytes (after check).
func (r *clusterReceiver) shares() []float64 {
	var s []float64
	for _, b := range r.bufs {
		s = append(s, ratioOf(float64(len(b)), float64(r.want)))
	}
	return s
}

// renderCluster is the cluster phase's part of the table.
func renderCluster(b *strings.Builder, cr *clusterResult, reps int) {
	fmt.Fprintf(b, "   -- cluster (phase cluster): 1 worker vs %d (initializer + worker1, this machine; the sender and receiver in this program), %d lines per run, median of %d reps\n",
		cr.Workers, cr.Messages, len(cr.Reps))
	if cr.Error != "" {
		fmt.Fprintf(b, "      ERROR: %s\n", firstLine(cr.Error))
		if len(cr.PairedSpeedups) == 0 {
			return
		}
	}
	fmt.Fprintf(b, "      %-34s %11s   %s\n", "", "lines/s", "per rep")
	rates := func(f func(r clusterRep) float64) string {
		var parts []string
		for _, r := range cr.Reps {
			parts = append(parts, fmtRate(f(r)))
		}
		return strings.Join(parts, " ")
	}
	fmt.Fprintf(b, "      %-34s %11s   %s\n", "1 worker", fmtRate(cr.OneRate), rates(func(r clusterRep) float64 {
		if r.One == nil {
			return 0
		}
		return r.One.Rate
	}))
	fmt.Fprintf(b, "      %-34s %11s   %s\n", fmt.Sprintf("%d workers", cr.Workers), fmtRate(cr.TwoRate), rates(func(r clusterRep) float64 {
		if r.Two == nil {
			return 0
		}
		return r.Two.Rate
	}))
	fmt.Fprintf(b, "      %-34s %11.2fx  %s\n", "speedup (2 workers / 1)", cr.Speedup, fmtRatios(cr.PairedSpeedups))
	fmt.Fprintf(b, "      %-34s %11s   %s\n", "machine: ceiling.py, one process", fmtRate(cr.AloneRate), rates(func(r clusterRep) float64 { return r.Alone }))
	fmt.Fprintf(b, "      %-34s %11s   %s\n", "machine: two at once, combined", fmtRate(cr.PairRate), rates(func(r clusterRep) float64 { return r.PairCombined }))
	fmt.Fprintf(b, "      %-34s %11.2fx  %s\n", "machine limit (two / one)", cr.Limit, fmtRatios(cr.PairedLimits))
	fmt.Fprintf(b, "      speedup / limit >= %.2f: %.2f %s\n", clusterTarget, cr.Efficiency, verdict(cr.Efficiency >= clusterTarget))
	fmt.Fprintf(b, "      where the time went (medians; %% of one core over the run; CPU ns per line; the 4 busiest threads, * = the thread that ran the start-up, the interpreter's):\n")
	for _, x := range []struct {
		name string
		rb   runBrief
	}{{"1 worker", cr.One}, {fmt.Sprintf("%d workers", cr.Workers), cr.Two}} {
		sum := x.rb.DriverCPU + x.rb.OtherCPU
		for _, p := range x.rb.Procs {
			sum += p.CPU
		}
		fmt.Fprintf(b, "      %-9s driver (sender + receiver) %.0f%%, others %.0f%%; all cores busy %.0f%% of %d00%%\n", x.name, x.rb.DriverCPU, x.rb.OtherCPU, sum, runtime.NumCPU())
		for _, p := range x.rb.Procs {
			var thr []string
			for j, t := range p.Threads {
				s := fmt.Sprintf("%.0f%%", t)
				if j == 0 {
					s += fmt.Sprintf("(*%d/%d)", p.StartupTop, p.Runs)
				}
				thr = append(thr, s)
			}
			fmt.Fprintf(b, "         %-12s process %4.0f%%, %6.0f ns/line; threads %s\n", p.Name, p.CPU, p.NsPerMsg, strings.Join(thr, " "))
		}
		if len(x.rb.SinkShare) > 1 {
			var sh []string
			for _, s := range x.rb.SinkShare {
				sh = append(sh, fmt.Sprintf("%.0f%%", 100*s))
			}
			fmt.Fprintf(b, "         output bytes per sink connection: %s\n", strings.Join(sh, " / "))
		}
	}
	renderSecured(b, cr)
}
