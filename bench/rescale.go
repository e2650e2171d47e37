package main

// The rescale phase (-phases rescale, in the default run): a keyed app
// (bench/rescaleapp) with 100 000 keys of small state, under a steady
// sender that touches every key about once a second, on a cluster of
// one worker that grows to two (a joiner started with --join) and
// shrinks back (cluster_shrinker --workers). Every message carries its
// send time and comes back with it, so the phase sees how long each one
// took: for the keys whose partition moves, and for the others, around
// each rescale; and how long each rescale took from the request to the
// initializer's "AUTOSCALE: ... complete" line. It also checks that no
// message was lost or repeated (each key's count runs 1, 2, 3, ...).

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/engine/routing"
)

// Rescale targets (issue 13): the longest wait of a message of a key
// that moves, and of one that does not, during a rescale.
const (
	rescaleMovingTarget = 250 * time.Millisecond
	rescaleStayTarget   = 50 * time.Millisecond
)

type rescaleResult struct {
	Keys      int           `json:"keys"`
	Rate      int           `json:"msgs_per_s"`
	Sent      int64         `json:"sent"`
	Received  int64         `json:"received"`
	Lost      int64         `json:"lost"`
	Repeated  int64         `json:"repeated"`
	Baseline  latStats      `json:"baseline_latency"`
	Ops       []rescaleOp   `json:"ops"`
	Error     string        `json:"error,omitempty"`
	MovedKeys int           `json:"keys_that_move"`
	Duration  time.Duration `json:"-"`
}

type latStats struct {
	P50ms, P99ms, MaxMs float64
	N                   int
}

type rescaleOp struct {
	Kind       string   `json:"kind"`
	RequestMs  float64  `json:"request_to_complete_ms"`
	Moving     latStats `json:"moving_keys_latency"`
	Staying    latStats `json:"other_keys_latency"`
	MovingOK   bool     `json:"moving_within_target"`
	StayingOK  bool     `json:"others_within_target"`
	reqAt, end int64    // wall ns
}

// rescaleRecord is one output: its key, when it was sent and received.
type rescaleRecord struct {
	key       uint32
	sent, got int64
	count     uint64
}

type rescaleSink struct {
	ln   net.Listener
	mu   sync.Mutex
	recs []rescaleRecord
	errs []error
	wg   sync.WaitGroup
}

func (s *rescaleSink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			r := bufio.NewReaderSize(c, 1<<20)
			var buf [28]byte
			var local []rescaleRecord
			flush := func() {
				s.mu.Lock()
				s.recs = append(s.recs, local...)
				s.mu.Unlock()
				local = local[:0]
			}
			for {
				if _, err := io.ReadFull(r, buf[:]); err != nil {
					if err != io.EOF {
						s.mu.Lock()
						s.errs = append(s.errs, err)
						s.mu.Unlock()
					}
					flush()
					return
				}
				if n := binary.BigEndian.Uint32(buf[:4]); n != 24 {
					s.mu.Lock()
					s.errs = append(s.errs, fmt.Errorf("output frame of %d bytes, want 24", n))
					s.mu.Unlock()
					flush()
					return
				}
				local = append(local, rescaleRecord{
					key: uint32(binary.BigEndian.Uint64(buf[4:])), sent: int64(binary.BigEndian.Uint64(buf[12:])),
					got: time.Now().UnixNano(), count: binary.BigEndian.Uint64(buf[20:]),
				})
				if len(local) >= 4096 || r.Buffered() == 0 {
					flush()
				}
			}
		}()
	}
}

func (s *rescaleSink) count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.recs))
}

// runRescale measures a grow from 1 to 2 workers and a shrink back.
func runRescale(cfg *config) *rescaleResult {
	const keys, rate = 100_000, 100_000
	res := &rescaleResult{Keys: keys, Rate: rate}
	fail := func(err error) *rescaleResult {
		res.Error = err.Error()
		logf("rescale: %v", err)
		return res
	}
	appDir := filepath.Join(cfg.root, "bench", "rescaleapp")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	sink := &rescaleSink{ln: ln}
	go sink.serve()
	defer func() { ln.Close(); sink.wg.Wait() }()
	addrs, err := freeAddrs(10)
	if err != nil {
		return fail(err)
	}
	in, ctl, data, ext, met := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	resil, err := os.MkdirTemp("", "machida-bench-rescale-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(resil)
	env := envWithout(os.Environ(), "PYTHONPATH")
	common := []string{cfg.machida, "--application-module", "rescale_keys", "--in", in, "--out", ln.Addr().String(),
		"--metrics", met, "--resilience-dir", resil, "--ponythreads=1", "--ponynoblock"}
	init, err := startProc("initializer", append(slices.Clone(common), "--name", "initializer", "--cluster-initializer",
		"--worker-count", "1", "--control", ctl, "--data", data, "--external", ext), appDir, env, "Application has successfully initialized")
	if err != nil {
		return fail(err)
	}
	defer init.stop()

	// The steady sender.
	conn, err := dial(in)
	if err != nil {
		return fail(err)
	}
	stopSend := make(chan struct{})
	sentDone := make(chan int64, 1)
	go func() {
		w := bufio.NewWriterSize(conn, 1<<20)
		perTick := rate / 100
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var sent int64
		key := 0
		var frame [20]byte
		binary.BigEndian.PutUint32(frame[:4], 16)
		for {
			select {
			case <-stopSend:
				w.Flush()
				sentDone <- sent
				return
			case <-tick.C:
			}
			now := uint64(time.Now().UnixNano())
			for i := 0; i < perTick; i++ {
				binary.BigEndian.PutUint64(frame[4:], uint64(key))
				binary.BigEndian.PutUint64(frame[12:], now)
				w.Write(frame[:])
				key++
				if key == keys {
					key = 0
				}
			}
			sent += int64(perTick)
			if err := w.Flush(); err != nil {
				sentDone <- sent
				return
			}
		}
	}()
	defer conn.Close()

	waitLine := func(p *proc, line string, n int, limit time.Duration) error {
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			if strings.Count(p.output(), line) >= n {
				return nil
			}
			if !p.alive() {
				return fmt.Errorf("%s exited:\n%s", p.name, p.output())
			}
			time.Sleep(2 * time.Millisecond)
		}
		return fmt.Errorf("no %q from %s within %v", line, p.name, limit)
	}
	logf("rescale: %d keys, %d messages/s (every key about once a second); warming up", keys, rate)
	time.Sleep(4 * time.Second)
	res.Baseline = latencyOf(sink, func(r rescaleRecord) bool { return r.sent > time.Now().Add(-2500*time.Millisecond).UnixNano() })

	// Grow to two.
	op := rescaleOp{Kind: "grow 1 -> 2", reqAt: time.Now().UnixNano()}
	joiner, err := startProc("w1", append(slices.Clone(common), "--name", "w1", "--join", ctl, "--my-control", addrs[5],
		"--my-data", addrs[6], "--external", addrs[7]), appDir, env, "")
	if err != nil {
		return fail(err)
	}
	defer joiner.stop()
	if err := waitLine(init, "AUTOSCALE: grow complete", 1, 60*time.Second); err != nil {
		return fail(err)
	}
	op.end = time.Now().UnixNano()
	res.Ops = append(res.Ops, op)
	time.Sleep(3 * time.Second)

	// Shrink back.
	op = rescaleOp{Kind: "shrink 2 -> 1", reqAt: time.Now().UnixNano()}
	out, err := exec.Command(filepath.Join(filepath.Dir(cfg.machida), "cluster_shrinker"), "--external", ext, "--workers", "w1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Shrinking by 1 workers!") {
		return fail(fmt.Errorf("cluster_shrinker: %v: %s", err, out))
	}
	if err := waitLine(init, "AUTOSCALE: shrink complete", 1, 60*time.Second); err != nil {
		return fail(err)
	}
	op.end = time.Now().UnixNano()
	res.Ops = append(res.Ops, op)
	time.Sleep(2 * time.Second)
	close(stopSend)
	res.Sent = <-sentDone
	deadline := time.Now().Add(30 * time.Second)
	for sink.count() < res.Sent && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	// Which keys move: the partitions whose owner changes from one worker
	// to two (the same ones come back).
	t1, err := routing.NewTable(routing.DefaultPartitions, []routing.WorkerName{"initializer"})
	if err != nil {
		return fail(err)
	}
	t2, err := t1.Rebalance([]routing.WorkerName{"initializer", "w1"})
	if err != nil {
		return fail(err)
	}
	moved := map[routing.PartitionID]bool{}
	for _, m := range routing.Moves(t1, t2) {
		moved[m.Partition] = true
	}
	moves := make([]bool, keys)
	for k := range moves {
		moves[k] = moved[routing.PartitionOf([]byte(strconv.Itoa(k)), t1.Partitions())]
		if moves[k] {
			res.MovedKeys++
		}
	}
	sink.mu.Lock()
	recs := sink.recs
	errs := sink.errs
	sink.mu.Unlock()
	if len(errs) > 0 {
		return fail(fmt.Errorf("sink: %v", errs[0]))
	}
	res.Received = int64(len(recs))
	// Exactly once: per key, counts 1..n with n the messages sent to it.
	seen := make([]uint64, keys)
	dup := int64(0)
	for _, r := range recs {
		if int(r.key) >= keys {
			return fail(fmt.Errorf("output for key %d of %d", r.key, keys))
		}
		if r.count <= seen[r.key] {
			dup++
		}
		seen[r.key] = max(seen[r.key], r.count)
	}
	res.Repeated = dup
	res.Lost = res.Sent - (res.Received - dup)
	for i := range res.Ops {
		op := &res.Ops[i]
		from, to := op.reqAt-200*int64(time.Millisecond), op.end+200*int64(time.Millisecond)
		in := func(r rescaleRecord) bool { return r.sent >= from && r.sent <= to }
		op.Moving = latencyOfRecs(recs, func(r rescaleRecord) bool { return in(r) && moves[r.key] })
		op.Staying = latencyOfRecs(recs, func(r rescaleRecord) bool { return in(r) && !moves[r.key] })
		op.RequestMs = float64(op.end-op.reqAt) / 1e6
		op.MovingOK = op.Moving.MaxMs < float64(rescaleMovingTarget.Milliseconds())
		op.StayingOK = op.Staying.MaxMs < float64(rescaleStayTarget.Milliseconds())
		logf("rescale: %s: request to complete %.0f ms; keys that move: max %.1f ms (p99 %.1f); others: max %.1f ms (p99 %.1f); baseline p99 %.1f ms",
			op.Kind, op.RequestMs, op.Moving.MaxMs, op.Moving.P99ms, op.Staying.MaxMs, op.Staying.P99ms, res.Baseline.P99ms)
	}
	logf("rescale: sent %d, received %d, lost %d, repeated %d", res.Sent, res.Received, res.Lost, res.Repeated)
	for _, p := range []*proc{init, joiner} {
		for _, l := range strings.Split(p.output(), "\n") {
			if strings.Contains(l, "rescale complete") || strings.Contains(l, "state sent") || strings.Contains(l, "parked envelopes released") {
				logf("rescale: %s: %s", p.name, l)
			}
		}
	}
	return res
}

func latencyOf(s *rescaleSink, keep func(rescaleRecord) bool) latStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return latencyOfRecs(s.recs, keep)
}

func latencyOfRecs(recs []rescaleRecord, keep func(rescaleRecord) bool) latStats {
	var lat []float64
	for _, r := range recs {
		if keep(r) {
			lat = append(lat, float64(r.got-r.sent)/1e6)
		}
	}
	if len(lat) == 0 {
		return latStats{}
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return latStats{P50ms: q(0.5), P99ms: q(0.99), MaxMs: lat[len(lat)-1], N: len(lat)}
}

func (r *rescaleResult) lines() []string {
	if r.Error != "" {
		return []string{"rescale: ERROR " + firstLine(r.Error)}
	}
	out := []string{fmt.Sprintf("rescale (%d keys of small pickled state, %d messages/s; %d keys move): sent %d, received %d, lost %d, repeated %d; baseline latency p50 %.1f ms, p99 %.1f ms",
		r.Keys, r.Rate, r.MovedKeys, r.Sent, r.Received, r.Lost, r.Repeated, r.Baseline.P50ms, r.Baseline.P99ms)}
	for _, op := range r.Ops {
		out = append(out, fmt.Sprintf("   %-14s request to complete %6.0f ms; longest wait: keys that move %7.1f ms (< %v: %s), others %7.1f ms (< %v: %s)",
			op.Kind, op.RequestMs, op.Moving.MaxMs, rescaleMovingTarget, verdict(op.MovingOK), op.Staying.MaxMs, rescaleStayTarget, verdict(op.StayingOK)))
	}
	return out
}
