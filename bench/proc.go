package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wallaroo-go/machida/internal/childproc"
)

// proc is a process this program started. It is stopped by its PID only.
type proc struct {
	name   string
	cmd    *exec.Cmd
	pid    int
	ready  chan struct{} // closed when the ready line was printed
	exited chan struct{} // closed when the process has been reaped

	mu   sync.Mutex
	tail []byte // the last output lines (stdout and stderr)
	err  error  // from Wait
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

// startProc runs argv in dir and waits until it prints a line containing
// readyLine (or exits, or 60 s pass).
func startProc(name string, argv []string, dir string, env []string, readyLine string) (*proc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = w
	cmd.Stderr = w
	p := &proc{name: name, cmd: cmd, ready: make(chan struct{}), exited: make(chan struct{})}
	// (It dies with the bench, also one killed: childproc.)
	if err := childproc.Start(cmd); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	w.Close()
	p.pid = cmd.Process.Pid
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()

	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.tail = append(p.tail, line...)
			p.tail = append(p.tail, '\n')
			if len(p.tail) > 32<<10 {
				p.tail = append([]byte(nil), p.tail[len(p.tail)-16<<10:]...)
			}
			p.mu.Unlock()
			if !seen && strings.Contains(line, readyLine) {
				seen = true
				close(p.ready)
			}
		}
	}()
	go func() {
		<-outDone
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		procsMu.Lock()
		delete(procs, p)
		procsMu.Unlock()
		close(p.exited)
	}()

	select {
	case <-p.ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before it was ready (%v):\n%s", name, p.waitErr(), p.output())
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s was not ready after 60 s:\n%s", name, p.output())
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.tail)
}

func (p *proc) waitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process (by PID), and SIGKILL if it has not
// exited 10 s later.
func (p *proc) stop() {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	<-p.exited
}

// stopAll stops every process this program started that is still running.
func stopAll() {
	procsMu.Lock()
	var list []*proc
	for p := range procs {
		list = append(list, p)
	}
	procsMu.Unlock()
	for _, p := range list {
		p.stop()
	}
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// statCPU reads utime+stime from a /proc/.../stat file.
func statCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	return time.Duration(u+s) * clockTick, nil
}

// schedCPU reads the first field of a /proc/.../schedstat file: the time
// the task has run on a CPU, in nanoseconds (exact, unlike the clock ticks
// of stat).
func schedCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	return time.Duration(n), nil
}

// cpuSnap is the CPU time of a process and of each of its threads.
type cpuSnap struct {
	at      time.Time
	total   time.Duration            // utime+stime of the process (exited threads included)
	threads map[string]time.Duration // per thread id: utime+stime (clock ticks)
	// threadNs is each thread's run time from schedstat (nanoseconds);
	// nil when the kernel has no schedstat.
	threadNs map[string]time.Duration
	comm     map[string]string // thread names
}

func snapCPU(pid int) cpuSnap {
	s := cpuSnap{at: time.Now(), threads: map[string]time.Duration{}, threadNs: map[string]time.Duration{}, comm: map[string]string{}}
	s.total, _ = statCPU(fmt.Sprintf("/proc/%d/stat", pid))
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if d, err := statCPU(filepath.Join(dir, e.Name(), "stat")); err == nil {
			s.threads[e.Name()] = d
		}
		if s.threadNs != nil {
			if d, err := schedCPU(filepath.Join(dir, e.Name(), "schedstat")); err == nil {
				s.threadNs[e.Name()] = d
			} else {
				s.threadNs = nil
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, e.Name(), "comm")); err == nil {
			s.comm[e.Name()] = strings.TrimSpace(string(b))
		}
	}
	if len(s.threads) == 0 {
		s.threadNs = nil
	}
	return s
}

// threadTimes is the CPU time of each thread between two snapshots, from
// schedstat when both have it (else clock ticks); threads that started
// meanwhile count from zero.
func threadTimes(a, b cpuSnap) (map[string]time.Duration, string) {
	src, ta, tb := "schedstat", a.threadNs, b.threadNs
	if ta == nil || tb == nil {
		src, ta, tb = "stat", a.threads, b.threads
	}
	d := map[string]time.Duration{}
	for tid, t := range tb {
		d[tid] = t - ta[tid]
	}
	return d, src
}

// busiestThreads returns the thread with the most CPU time in times and
// that time, and the runner-up's time.
func busiestThreads(times map[string]time.Duration) (tid string, first, second time.Duration) {
	for id, t := range times {
		switch {
		case t > first || (t == first && id < tid):
			tid, first, second = id, t, first
		case t > second:
			second = t
		}
	}
	return tid, first, second
}

// cpuUse is the CPU use between two snapshots, in percent of one CPU: the
// whole process and its busiest thread.
func cpuUse(a, b cpuSnap) (total, busiest float64) {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0, 0
	}
	total = 100 * (b.total - a.total).Seconds() / wall
	for tid, t := range b.threads {
		busiest = max(busiest, 100*(t-a.threads[tid]).Seconds()/wall)
	}
	return total, busiest
}

// machineBusy is the CPU time all CPUs spent busy since boot (from
// /proc/stat: everything but idle and iowait).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest time is in user
			busy += n
		}
	}
	return time.Duration(busy) * clockTick
}

// usage samples the CPU time of a process under test, of this program and
// of the whole machine; the difference between two samples tells how
// much CPU everything else on the machine took meanwhile.
type usage struct {
	proc    cpuSnap
	self    time.Duration
	machine time.Duration
}

func sampleUsage(pid int) usage {
	return usage{proc: snapCPU(pid), self: selfCPU(), machine: machineBusy()}
}

// since fills the CPU fields of r (percent of one core) from u to now.
func (u usage) since(pid int, r *satRun) {
	v := sampleUsage(pid)
	wall := v.proc.at.Sub(u.proc.at).Seconds()
	if wall <= 0 {
		return
	}
	r.CPU, r.BusiestThr = cpuUse(u.proc, v.proc)
	r.cpuTotal = v.proc.total - u.proc.total
	times, src := threadTimes(u.proc, v.proc)
	tid, first, second := busiestThreads(times)
	r.busiest = threadCPU{tid: tid, comm: v.proc.comm[tid], cpu: first, second: second, source: src}
	// The interpreter's thread runs Py_Initialize, the import of the
	// application and its setup before any input: it is also the thread
	// with the most CPU time before the run.
	before := map[string]time.Duration{}
	for id, t := range u.proc.threads {
		before[id] = t
	}
	if u.proc.threadNs != nil {
		before = u.proc.threadNs
	}
	r.busiest.startupTid, _, _ = busiestThreads(before)
	r.DriverCPU = 100 * (v.self - u.self).Seconds() / wall
	proc := (v.proc.total - u.proc.total).Seconds()
	other := (v.machine - u.machine).Seconds() - proc - (v.self - u.self).Seconds()
	r.OtherCPU = max(0, 100*other/wall)
}

// loadAvg is the first three fields of /proc/loadavg ("" if unreadable).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// selfCPU is this program's CPU time (the sender and the receiver).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// statusKB reads a "Vm...:  N kB" field of /proc/PID/status.
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// pyInfo is the interpreter machida3 embeds and the executable that runs
// the same version for the baselines.
type pyInfo struct {
	Version  string `json:"version"` // sys.version inside machida3
	Short    string `json:"short"`   // "3.11.2"
	Prefix   string `json:"prefix"`
	Path     string `json:"path"`                // the executable used for the baselines
	Reported string `json:"embedded_executable"` // what sys.executable said (often wrong)
}

// detectPython runs machida3 with bench/probe/bench_probe.py, which prints
// sys.version and sys.prefix and exits at import, then finds the python3.X
// executable of that prefix and checks it reports the same sys.version.
func detectPython(cfg *config, machida string) (*pyInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, machida, "--application-module", "bench_probe",
		"--in", "127.0.0.1:9", "--out", "127.0.0.1:9")
	cmd.Dir = filepath.Join(cfg.root, "bench", "probe")
	cmd.Env = envWithout(os.Environ(), "PYTHONPATH")
	out, _ := cmd.CombinedOutput()
	var probe struct {
		Version    string `json:"version"`
		Major      int    `json:"major"`
		Minor      int    `json:"minor"`
		Prefix     string `json:"prefix"`
		BasePrefix string `json:"base_prefix"`
		Executable string `json:"executable"`
	}
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "BENCH_PROBE "); ok {
			if err := json.Unmarshal([]byte(rest), &probe); err != nil {
				return nil, fmt.Errorf("probe output %q: %v", rest, err)
			}
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("machida3 did not run the probe module:\n%s", out)
	}
	exe := fmt.Sprintf("python%d.%d", probe.Major, probe.Minor)
	var tried []string
	for _, dir := range []string{probe.Prefix, probe.BasePrefix, "/usr", "/usr/local"} {
		cand := filepath.Join(dir, "bin", exe)
		if slicesContains(tried, cand) {
			continue
		}
		tried = append(tried, cand)
		got, err := exec.Command(cand, "-c", "import sys; sys.stdout.write(sys.version)").Output()
		if err == nil && string(got) == probe.Version {
			return &pyInfo{
				Version: probe.Version, Short: strings.Fields(probe.Version)[0],
				Prefix: probe.Prefix, Path: cand, Reported: probe.Executable,
			}, nil
		}
	}
	return nil, fmt.Errorf("machida3 embeds Python %q (prefix %s) but none of %v runs that version", probe.Version, probe.Prefix, tried)
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func envWithout(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slicesContains(names, k) {
			out = append(out, kv)
		}
	}
	return out
}

// system is one of the two servers measured over TCP.
type system struct {
	name  string
	start func(ins []string, out string) (*proc, error)
}

func machidaSystem(cfg *config, spec *workloadSpec) system {
	return machidaBinSystem(cfg, spec, "machida3", cfg.machida)
}

// machidaBinSystem is the machida3 binary bin, started exactly as
// machidaSystem starts bin/machida3 (the A/B baseline is another binary).
func machidaBinSystem(cfg *config, spec *workloadSpec, name, bin string) system {
	return system{name: name, start: func(ins []string, out string) (*proc, error) {
		argv := []string{bin, "--application-module", spec.module,
			"--in", strings.Join(ins, ","), "--out", out, "--name", "bench"}
		env := envWithout(os.Environ(), "PYTHONPATH")
		return startProc(name, argv, spec.appDir(cfg), env, "Application has successfully initialized")
	}}
}

func asyncioSystem(cfg *config, py *pyInfo, spec *workloadSpec) system {
	return system{name: "asyncio", start: func(ins []string, out string) (*proc, error) {
		argv := []string{py.Path, filepath.Join(cfg.root, "bench", "asyncio_app.py"),
			"--module", spec.module, "--in", strings.Join(ins, ","), "--out", out}
		return startProc("asyncio", argv, spec.appDir(cfg), pythonEnv(cfg, spec), "asyncio app ready")
	}}
}

// pythonEnv lets the baselines import the app, the wallaroo package from
// pyapi/ and bench/apps.py.
func pythonEnv(cfg *config, spec *workloadSpec) []string {
	path := strings.Join([]string{
		filepath.Join(cfg.root, "bench"),
		spec.appDir(cfg),
		filepath.Join(cfg.root, "pyapi"),
	}, string(os.PathListSeparator))
	return append(envWithout(os.Environ(), "PYTHONPATH", "PYTHONHOME"), "PYTHONPATH="+path)
}

// ceilingResult is what bench/ceiling.py prints.
type ceilingResult struct {
	Messages int     `json:"messages"`
	Outputs  int     `json:"outputs"`
	OutBytes int64   `json:"out_bytes"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"`
	T0Wall   float64 `json:"t0_wall"` // the timed loop's start and end (Unix time)
	T1Wall   float64 `json:"t1_wall"`
	Python   string  `json:"python"`
	MaxRSSKB int64   `json:"max_rss_kb"`
	// otherCPU is the CPU every other process took while ceiling.py ran
	// (% of one core).
	otherCPU float64
}

// runCeiling runs bench/ceiling.py on ds; viaRunner runs its diagnostic
// mode (machida3's Python layer instead of the plain loop); extra are more
// arguments of ceiling.py (--start-at).
func runCeiling(cfg *config, py *pyInfo, spec *workloadSpec, ds *dataset, viaRunner bool, extra ...string) (*ceilingResult, error) {
	argv := []string{filepath.Join(cfg.root, "bench", "ceiling.py"), "--module", spec.module}
	argv = append(argv, extra...)
	if viaRunner {
		argv = append(argv, "--via-runner")
	}
	for _, f := range ds.files {
		argv = append(argv, "--input", f)
	}
	if ds.primeFile != "" {
		argv = append(argv, "--prime", fmt.Sprintf("%d:%s", ds.primeSrc, ds.primeFile))
	}
	cmd := exec.Command(py.Path, argv...)
	cmd.Dir = spec.appDir(cfg)
	cmd.Env = pythonEnv(cfg, spec)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0, m0, s0 := time.Now(), machineBusy(), selfCPU()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ceiling.py: %v\n%s", err, stderr.String())
	}
	wall := time.Since(t0).Seconds()
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	other := (machineBusy() - m0 - child - (selfCPU() - s0)).Seconds()
	var r ceilingResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		return nil, fmt.Errorf("ceiling.py printed %q: %v", out, err)
	}
	r.otherCPU = max(0, 100*other/wall)
	if r.Python != py.Version {
		return nil, errors.New("ceiling.py ran Python " + r.Python + ", not " + py.Version)
	}
	return &r, nil
}

// kill ends the process with SIGKILL (by PID), as a crash would.
func (p *proc) kill() {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	<-p.exited
}
