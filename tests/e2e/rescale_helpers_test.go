package e2e

// Helpers of the live grow/shrink (rescale) tests, rescale_test.go: the
// multi_partition_detector output receiver and its exactly-once
// validator, a steady keyed sender, and a cluster that can grow (joiners
// started with --join) and shrink (cluster_shrinker) while checking the
// migration invariants of runtime spec 3.6 through the external channel.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/childproc"
)

// Generous deadlines: the machine has two cores, is shared, and runs
// several Python interpreters per cluster.
const (
	rsToolTimeout      = 30 * time.Second  // one external_sender / cluster_shrinker run
	rsJoinTimeout      = 120 * time.Second // joiners taken in, the cluster reporting its new size
	rsMigrationTimeout = 90 * time.Second  // the queries agreeing with the invariants of 3.6
	rsLeaveTimeout     = 90 * time.Second  // a leaving worker exiting 0
	rsProgressTimeout  = 90 * time.Second  // the stream flowing again after an operation
	rsFinalTimeout     = 180 * time.Second // every key's final window at the sink
)

// ---------------------------------------------------------------------
// Receiver and validator

// rsRecord is one output of multi_partition_detector:
// "(<key>.TraceID.TraceWindow,[a,b,c,d])", as received on connection conn.
type rsRecord struct {
	conn   int
	raw    string
	key    string
	window []uint64
	err    string // why raw does not parse; empty when it does
}

// (Or testdata/spread_counts.py's "(<key>.Count,[n,s,q])".)
var rsOutputRE = regexp.MustCompile(`^\((.*?)\.(?:TraceID\.TraceWindow|Count),\[([0-9,]*)\]\)$`)

func rsParse(conn int, payload []byte) rsRecord {
	r := rsRecord{conn: conn, raw: string(payload)}
	m := rsOutputRE.FindStringSubmatch(r.raw)
	if m == nil {
		r.err = "not (<key>.TraceID.TraceWindow,[values])"
		return r
	}
	r.key = m[1]
	if m[2] == "" {
		r.err = "empty window"
		return r
	}
	for _, f := range strings.Split(m[2], ",") {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			r.err = fmt.Sprintf("value %q: %v", f, err)
			return r
		}
		r.window = append(r.window, v)
	}
	return r
}

// last is the value the record's window ends with (the message it is
// the output of).
func (r rsRecord) last() uint64 { return r.window[len(r.window)-1] }

// rsReceiver is the sink of the rescale tests: it accepts any number of
// connections (one per worker, runtime spec 2.3), splits each into
// U32-framed records, and keeps them all, in arrival order, tagged with
// the connection they came on (like the harness's TCPReceiver).
type rsReceiver struct {
	l       net.Listener
	mu      sync.Mutex
	records []rsRecord
	maxLast map[string]uint64
	conns   int
	live    []net.Conn // accepted, for drop
}

func rsStartReceiver(t *testing.T) *rsReceiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rsReceiver{l: l, maxLast: map[string]uint64{}}
	go r.accept(l)
	t.Cleanup(func() { l.Close() })
	return r
}

func (r *rsReceiver) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		id := r.conns
		r.conns++
		r.live = append(r.live, c)
		r.mu.Unlock()
		go r.read(id, c)
	}
}

// refuse stops listening: the connections accepted so far go on, a new
// one is refused until reopen.
func (r *rsReceiver) refuse() { r.l.Close() }

// drop is a receiver that goes away: it stops listening and closes every
// connection it accepted, until reopen.
func (r *rsReceiver) drop() {
	r.l.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.live {
		c.Close()
	}
	r.live = nil
}

// reopen listens on the receiver's address again.
func (r *rsReceiver) reopen(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", r.l.Addr().String())
	if err != nil {
		t.Fatalf("listen on the sink address %s again: %v", r.l.Addr(), err)
	}
	r.l = l
	go r.accept(l)
	t.Cleanup(func() { l.Close() })
}

func (r *rsReceiver) read(id int, c net.Conn) {
	defer c.Close()
	var pending []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		pending = append(pending, buf[:n]...)
		for len(pending) >= 4 {
			size := int(binary.BigEndian.Uint32(pending))
			if len(pending) < 4+size {
				break
			}
			rec := rsParse(id, pending[4:4+size])
			pending = pending[4+size:]
			r.mu.Lock()
			r.records = append(r.records, rec)
			if rec.err == "" && rec.last() > r.maxLast[rec.key] {
				r.maxLast[rec.key] = rec.last()
			}
			r.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (r *rsReceiver) addr() string { return r.l.Addr().String() }

func (r *rsReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.records)
}

func (r *rsReceiver) snapshot() []rsRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.records)
}

// missingFinal returns the keys whose final value has not been seen yet,
// sorted.
func (r *rsReceiver) missingFinal(final map[string]uint64) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k, v := range final {
		if r.maxLast[k] < v {
			out = append(out, fmt.Sprintf("%s (at %d of %d)", k, r.maxLast[k], v))
		}
	}
	sort.Strings(out)
	return out
}

// seenKeys returns how many of keys have produced at least one output.
func (r *rsReceiver) seenKeys(keys []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range keys {
		if r.maxLast[k] > 0 {
			n++
		}
	}
	return n
}

// waitFinal waits until every key's final value has come out.
func (r *rsReceiver) waitFinal(t *testing.T, final map[string]uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := r.missingFinal(final)
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the sender stopped, %d of %d keys never showed their final value at the sink within %v (%d records received): %s",
				len(missing), len(final), timeout, r.count(), rsHead(missing, 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRecords waits until at least n records have been received.
func (r *rsReceiver) waitRecords(t *testing.T, n int, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for r.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the sink has %d records, want at least %d within %v: the stream does not flow", what, r.count(), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rsValidate checks the output of multi_partition_detector for keys sent
// 1..final[key] each, exactly once (runtime spec 7.3 validator in
// exactly-once mode, made independent of the interleaving of the
// per-worker sink connections):
//
//   - every record parses and names a key that was sent;
//   - each window holds consecutive values (+1 each), and the window
//     ending at v is exactly [max(1,v-3) .. v]: the state saw every value
//     before v, in order, even when it moved to another worker;
//   - the windows of a key, ordered by their last value, advance by
//     exactly 1 from 1 to the key's final value: no gap (loss) and no
//     repeat (duplicate);
//   - on any one sink connection a key's windows arrive in increasing
//     order.
//
// Keys in partial are only required to reach their final value (their
// state may have been lost, as a restarted worker's is). It returns the
// problems found, empty when the output is right.
func rsValidate(records []rsRecord, final map[string]uint64, partial map[string]bool) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	seen := map[string]map[uint64]int{}
	lastOnConn := map[string]uint64{}
	for i, r := range records {
		if r.err != "" {
			add("record %d %q: %s", i, r.raw, r.err)
			continue
		}
		if _, ok := final[r.key]; !ok {
			add("record %d %q: key %q was never sent", i, r.raw, r.key)
			continue
		}
		v := r.last()
		if seen[r.key] == nil {
			seen[r.key] = map[uint64]int{}
		}
		seen[r.key][v]++
		if partial[r.key] {
			continue
		}
		for j := 1; j < len(r.window); j++ {
			if r.window[j] != r.window[j-1]+1 {
				add("key %s: window %v does not increase by 1 (gap or reorder inside the state; record %d, from sink connection %d)", r.key, r.window, i, r.conn)
				break
			}
		}
		wantLen := uint64(4)
		if v < 4 {
			wantLen = v
		}
		if uint64(len(r.window)) != wantLen || r.window[0] == 0 {
			add("key %s: window %v ending at %d, want [%d..%d] (state lost or wrong)", r.key, r.window, v, v-wantLen+1, v)
		}
		ck := fmt.Sprintf("%s@%d", r.key, r.conn)
		if prev, ok := lastOnConn[ck]; ok && v <= prev {
			add("key %s: on sink connection %d, window ending at %d arrived after one ending at %d", r.key, r.conn, v, prev)
		}
		lastOnConn[ck] = v
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range final {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		n := final[k]
		got := seen[k]
		if got[n] == 0 {
			add("key %s: no window ends at its final value %d", k, n)
		}
		if partial[k] {
			continue
		}
		var missing, dups []string
		for v := uint64(1); v <= n; v++ {
			switch c := got[v]; {
			case c == 0:
				missing = append(missing, strconv.FormatUint(v, 10))
			case c > 1:
				dups = append(dups, fmt.Sprintf("%d(x%d)", v, c))
			}
		}
		for v := range got {
			if v > n || v == 0 {
				add("key %s: a window ends at %d, never sent (final %d)", k, v, n)
			}
		}
		if len(missing) > 0 {
			add("key %s: %d of %d values lost (no window ends at them): %s", k, len(missing), n, rsHead(missing, 12))
		}
		if len(dups) > 0 {
			add("key %s: %d values duplicated: %s", k, len(dups), rsHead(dups, 12))
		}
	}
	return problems
}

// rsCheckOutput fails the test with the validator's problems.
func rsCheckOutput(t *testing.T, recv *rsReceiver, final map[string]uint64, partial map[string]bool) {
	t.Helper()
	records := recv.snapshot()
	problems := rsValidate(records, final, partial)
	var total uint64
	for _, v := range final {
		total += v
	}
	if len(problems) > 0 {
		t.Fatalf("output is not exactly once (%d records for %d messages sent over %d keys): %d problems:\n  %s",
			len(records), total, len(final), len(problems), strings.Join(rsFirst(problems, 30), "\n  "))
	}
	t.Logf("exactly once: %d records for %d keys (final values %s)", len(records), len(final), rsFinalSummary(final))
}

func rsFinalSummary(final map[string]uint64) string {
	lo, hi := uint64(1<<63), uint64(0)
	for _, v := range final {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo == hi {
		return strconv.FormatUint(lo, 10)
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

func rsFirst(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clone(s[:n]), fmt.Sprintf("... and %d more", len(s)-n))
	}
	return s
}

func rsHead(s []string, n int) string { return strings.Join(rsFirst(s, n), ", ") }

// ---------------------------------------------------------------------
// Steady sender

// rsSender feeds multi_partition_detector: keys "0000000", "0000001", ...
// each counting up from 1, round robin (the harness's
// MultiSequenceGenerator), in batches of 10 messages every 10 ms over
// one TCP connection to the initializer's source (~1000 messages/s, as
// the 0.6 autoscale suite sends).
type rsSender struct {
	t    *testing.T
	addr string
	keys []string

	mu      sync.Mutex
	conn    net.Conn
	sent    []uint64 // last value sent, per key index
	cursor  int      // next key index
	err     error
	running bool
	stop    chan struct{}
	done    chan struct{}
}

func rsKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%07d", i)
	}
	return keys
}

// rsStartSender connects to addr and starts sending.
func rsStartSender(t *testing.T, addr string, keys int) *rsSender {
	t.Helper()
	s := &rsSender{t: t, addr: addr, keys: rsKeys(keys), sent: make([]uint64, keys)}
	s.conn = dial(t, addr)
	t.Cleanup(func() {
		s.conn.Close() // first: unblocks a write the cluster holds up
		s.halt()
	})
	s.resume()
	return s
}

func rsMessage(value uint64, key string) []byte {
	b := make([]byte, 4+8+len(key))
	binary.BigEndian.PutUint32(b, uint32(8+len(key)))
	binary.BigEndian.PutUint64(b[4:], value)
	copy(b[12:], key)
	return b
}

// write sends the messages of count key indexes starting at the cursor.
func (s *rsSender) write(count int) error {
	var batch []byte
	for i := 0; i < count; i++ {
		k := s.cursor
		s.sent[k]++
		batch = append(batch, rsMessage(s.sent[k], s.keys[k])...)
		s.cursor = (s.cursor + 1) % len(s.keys)
	}
	s.conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
	_, err := s.conn.Write(batch)
	return err
}

func (s *rsSender) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running || s.err != nil {
		return
	}
	s.running = true
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.loop(s.stop, s.done)
}

func (s *rsSender) loop(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		// Only this goroutine touches sent, cursor and conn while it
		// runs (pause halts it first), so the write, which may block
		// while the cluster pushes back, holds no lock.
		if err := s.write(10); err != nil {
			s.mu.Lock()
			s.err = fmt.Errorf("sender: writing to the source %s after %d messages: %w", s.addr, s.total(), err)
			s.mu.Unlock()
			return
		}
	}
}

// total is the number of messages sent (by the goroutine that sends).
func (s *rsSender) total() uint64 {
	var n uint64
	for _, v := range s.sent {
		n += v
	}
	return n
}

// halt stops the loop after the batch in progress.
func (s *rsSender) halt() {
	s.mu.Lock()
	running, stop, done := s.running, s.stop, s.done
	s.running = false
	s.mu.Unlock()
	if running {
		close(stop)
		<-done
	}
}

// pause stops sending after the current batch, then brings every key up
// to the same final value (as MultiSequenceGenerator.stop does) and
// returns the final value of each key. resume continues from there.
func (s *rsSender) pause(t *testing.T) map[string]uint64 {
	t.Helper()
	s.halt()
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err == nil && s.cursor != 0 {
		if werr := s.write(len(s.keys) - s.cursor); werr != nil {
			err = fmt.Errorf("sender: catching up: %w", werr)
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]uint64{}
	for i, k := range s.keys {
		final[k] = s.sent[i]
	}
	return final
}

// check fails the test if sending failed.
func (s *rsSender) check(t *testing.T) {
	if s == nil {
		return // a cluster fed by its own generator source
	}
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatal(s.err)
	}
}

// ---------------------------------------------------------------------
// Tools with deadlines

// rsRun runs a tool from binDir with a deadline and returns its stdout,
// stderr and exit code (-1 when it could not run or timed out).
func rsRun(timeout time.Duration, name string, args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(name), args...)
	var o, e syncBuf
	cmd.Stdout, cmd.Stderr = &o, &e
	err = childproc.Run(cmd)
	code = 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %v", timeout)
		}
	}
	return o.String(), e.String(), code, err
}

// rsStatus is a cluster-status-query answer.
type rsStatus struct {
	WorkerCount int      `json:"worker_count"`
	WorkerNames []string `json:"worker_names"`
	Processing  bool     `json:"processing_messages"`
}

func rsQueryStatus(w *clusterWorker) (rsStatus, error) {
	var st rsStatus
	out, errOut, _, err := rsRun(rsToolTimeout, "external_sender", append([]string{"--external", w.external, "--type", "cluster-status-query", "--json"}, w.toolFlags()...)...)
	if err != nil {
		return st, fmt.Errorf("cluster-status-query to %s: %v %s", w.name, err, strings.TrimSpace(errOut))
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &st); err != nil {
		return st, fmt.Errorf("cluster-status-query to %s printed %q: %v", w.name, out, err)
	}
	return st, nil
}

// rsQueryKeys asks w for its state keys (state-entity-query): the keys of
// every state stage it lists.
func rsQueryKeys(w *clusterWorker) ([]string, error) {
	out, errOut, _, err := rsRun(rsToolTimeout, "external_sender", append([]string{"--external", w.external, "--type", "state-entity-query", "--json"}, w.toolFlags()...)...)
	if err != nil {
		return nil, fmt.Errorf("state-entity-query to %s: %v %s", w.name, err, strings.TrimSpace(errOut))
	}
	var byStage map[string][]string
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &byStage); err != nil {
		return nil, fmt.Errorf("state-entity-query to %s printed %q: %v", w.name, out, err)
	}
	var keys []string
	for _, ks := range byStage {
		keys = append(keys, ks...)
	}
	return keys, nil
}

// rsOwnership is key -> the workers that report it (state-entity-query).
type rsOwnership map[string][]string

func (o rsOwnership) owner(k string) string {
	if len(o[k]) == 0 {
		return ""
	}
	return o[k][0]
}

func (o rsOwnership) keysOf(worker string) []string {
	var out []string
	for k, ws := range o {
		if slices.Contains(ws, worker) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (o rsOwnership) duplicates() []string {
	var out []string
	for k, ws := range o {
		if len(ws) > 1 {
			out = append(out, fmt.Sprintf("%s on %v", k, ws))
		}
	}
	sort.Strings(out)
	return out
}

func (o rsOwnership) perWorker() map[string]int {
	m := map[string]int{}
	for _, ws := range o {
		for _, w := range ws {
			m[w]++
		}
	}
	return m
}

// ---------------------------------------------------------------------
// A cluster that grows and shrinks

// rsCluster is a running multi_partition_detector cluster with its sink
// and steady sender. members is the cluster as the test believes it is,
// in cluster order.
type rsCluster struct {
	t          *testing.T
	dir        string
	module     string
	in, out    string
	control    string // the initializer's control address
	resilience string
	members    []*clusterWorker
	next       int // index of the next joiner's name (worker<next>)
	recv       *rsReceiver
	sender     *rsSender
	keys       int
	extra      []string // more options for joiners (the cluster's own)
}

// rsStart forms a cluster of n multi_partition_detector workers as the
// harness does (startCluster), connects the sink and starts a steady
// sender with keys keys (0: max(5n-1, 40)); it returns once every key
// has produced output.
func rsStart(t *testing.T, n, keys int) *rsCluster {
	t.Helper()
	return rsStartEach(t, n, keys, nil)
}

// rsStartEach is rsStart with more options for worker i alone from
// each(i) (nil: none).
func rsStartEach(t *testing.T, n, keys int, each func(i int) []string) *rsCluster {
	t.Helper()
	return rsStartModule(t, "multi_partition_detector", n, keys, each)
}

// rsStartModule is rsStartEach with another application module of the
// same input and output (testdata/mpd_two_states.py).
func rsStartModule(t *testing.T, module string, n, keys int, each func(i int) []string) *rsCluster {
	t.Helper()
	tool(t, "external_sender")
	tool(t, "cluster_shrinker")
	tool(t, "cluster_shutdown")
	if keys == 0 {
		keys = max(5*n-1, 40)
	}
	c := &rsCluster{t: t, dir: testdataDir(), module: module, next: n, keys: keys}
	c.recv = rsStartReceiver(t)
	c.in, c.out = freePort(t), c.recv.addr()
	c.members = startClusterEach(t, c.dir, c.module, n, c.in, func(int) string { return c.out }, each, "--depth", "1")
	c.control = argValue(t, c.members[0], "--control")
	c.resilience = argValue(t, c.members[0], "--resilience-dir")
	c.sender = rsStartSender(t, c.in, keys)
	deadline := time.Now().Add(rsProgressTimeout)
	all := rsKeys(keys)
	for c.recv.seenKeys(all) < keys {
		c.checkAlive()
		c.sender.check(t)
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d keys produced output within %v of the sender starting", c.recv.seenKeys(all), keys, rsProgressTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("cluster of %d running, %d keys flowing", n, keys)
	return c
}

func (c *rsCluster) names() []string {
	var out []string
	for _, w := range c.members {
		out = append(out, w.name)
	}
	return out
}

func (c *rsCluster) member(name string) *clusterWorker {
	for _, w := range c.members {
		if w.name == name {
			return w
		}
	}
	c.t.Fatalf("%s is not a member (members %v)", name, c.names())
	return nil
}

// exited reports whether w's process has ended, and how.
func rsExited(w *clusterWorker) (bool, string) {
	select {
	case <-w.done:
		return true, fmt.Sprintf("%s exited (%v); its output ends:\n%s", w.name, w.err, rsTail(w.proc, 30))
	default:
		return false, ""
	}
}

func rsTail(p *proc, n int) string {
	lines := strings.Split(strings.TrimRight(p.stdout.String()+p.stderr.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// checkAlive fails the test when a member has exited (a crash: members
// only leave through a shrink, which takes them out of members first).
func (c *rsCluster) checkAlive() {
	c.t.Helper()
	for _, w := range c.members {
		if gone, how := rsExited(w); gone {
			c.t.Fatalf("member %s is gone: %s", w.name, how)
		}
	}
}

// snapshot queries state-entity-query on every member.
func (c *rsCluster) snapshot() (rsOwnership, error) {
	own := rsOwnership{}
	for _, w := range c.members {
		keys, err := rsQueryKeys(w)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			// (A key of two state steps is listed twice by its worker.)
			if !slices.Contains(own[k], w.name) {
				own[k] = append(own[k], w.name)
			}
		}
	}
	return own, nil
}

// mustSnapshot is snapshot that also requires each key to be owned by
// exactly one worker and every key sent so far to be owned.
func (c *rsCluster) mustSnapshot(what string) rsOwnership {
	c.t.Helper()
	own, err := c.snapshot()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	if d := own.duplicates(); len(d) > 0 {
		c.t.Fatalf("%s: keys owned by more than one worker: %s", what, rsHead(d, 10))
	}
	for _, k := range rsKeys(c.keys) {
		if len(own[k]) == 0 {
			c.t.Fatalf("%s: key %s, which has produced output, is owned by no worker (state-entity-query of %v)", what, k, c.names())
		}
	}
	c.t.Logf("%s: keys per worker %v", what, own.perWorker())
	return own
}

// settledSnapshot is mustSnapshot once every key sent so far is owned,
// waited for up to timeout: a worker started again after a crash has its
// keys back only as their next messages reach it. A key owned twice
// fails at once (mustSnapshot), not waited out.
func (c *rsCluster) settledSnapshot(what string, timeout time.Duration) rsOwnership {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.checkAlive()
		own, err := c.snapshot()
		unowned := func(k string) bool { return len(own[k]) == 0 }
		if err == nil && (len(own.duplicates()) > 0 || !slices.ContainsFunc(rsKeys(c.keys), unowned)) {
			break // settled, or owned twice: mustSnapshot says which
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c.mustSnapshot(what)
}

// waitMembers waits until every member answers cluster-status-query with
// processing_messages true and exactly the members' names (initializer
// first), failing at once if a member exits.
func (c *rsCluster) waitMembers(what string, timeout time.Duration) {
	c.t.Helper()
	want := slices.Sorted(slices.Values(c.names()))
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		c.checkAlive()
		c.sender.check(c.t)
		ok := true
		for _, w := range c.members {
			st, err := rsQueryStatus(w)
			switch {
			case err != nil:
				last, ok = err.Error(), false
			case !st.Processing || st.WorkerCount != len(want) || len(st.WorkerNames) == 0 ||
				st.WorkerNames[0] != "initializer" || !slices.Equal(slices.Sorted(slices.Values(st.WorkerNames)), want):
				last, ok = fmt.Sprintf("%s answers %+v", w.name, st), false
			}
			if !ok {
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: the members %v never all reported a processing cluster of exactly them (worker_count %d, initializer first) within %v; last: %s",
				what, c.names(), len(want), timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitProgress waits until the sink has received n more records than now
// (the stream goes on), failing at once if a member exits.
func (c *rsCluster) waitProgress(what string, n int) {
	c.t.Helper()
	target := c.recv.count() + n
	deadline := time.Now().Add(rsProgressTimeout)
	for c.recv.count() < target {
		c.checkAlive()
		c.sender.check(c.t)
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: the sink received %d of %d more records within %v: the stream does not flow", what, c.recv.count()-(target-n), n, rsProgressTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// joinArgs is the command line of a joiner named name contacting the
// control address via, one of k joining together.
func (c *rsCluster) joinArgs(name, via string, k int, ext string) []string {
	args := []string{"--application-module", c.module, "--in", c.in, "--out", c.out,
		"--metrics", freePort(c.t), "--external", ext, "--resilience-dir", c.resilience,
		"--name", name, "--join", via, "--worker-count", strconv.Itoa(k),
		"--my-control", freePort(c.t), "--my-data", freePort(c.t),
		"--ponythreads=1", "--ponypinasio", "--ponynoblock", "--depth", "1"}
	return append(args, c.extra...)
}

// startJoiner starts one joiner with args (from joinArgs or a variation).
func (c *rsCluster) startJoiner(name string, args []string) *clusterWorker {
	c.t.Helper()
	ext := ""
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--external" {
			ext = args[i+1]
		}
	}
	return &clusterWorker{proc: start(c.t, c.dir, "machida3", args...), name: name, external: ext, dir: c.dir, args: args}
}

// controlOf returns the control address other workers reach w at.
func (c *rsCluster) controlOf(w *clusterWorker) string {
	if w.name == "initializer" {
		return c.control
	}
	return argValue(c.t, w, "--my-control")
}

// grow starts by joiners (worker<next>, ...) with --join <control of via>
// --worker-count by, waits for the cluster to report them, and checks
// the migration invariants (spec 3.6). It returns the joiners.
func (c *rsCluster) grow(by int, via *clusterWorker) []*clusterWorker {
	c.t.Helper()
	c.checkAlive()
	pre := c.mustSnapshot(fmt.Sprintf("before growing by %d", by))
	var joiners []*clusterWorker
	for i := 0; i < by; i++ {
		name := fmt.Sprintf("worker%d", c.next)
		c.next++
		j := c.startJoiner(name, c.joinArgs(name, c.controlOf(via), by, freePort(c.t)))
		joiners = append(joiners, j)
	}
	for _, j := range joiners {
		if len(pre.keysOf(j.name)) > 0 {
			c.t.Fatalf("joiner %s owned keys before it joined: %v", j.name, pre.keysOf(j.name))
		}
	}
	c.members = append(c.members, joiners...)
	c.waitMembers(fmt.Sprintf("grow by %d via %s", by, via.name), rsJoinTimeout)
	c.confirmMigration(fmt.Sprintf("grow by %d", by), pre, nil)
	return joiners
}

// shrinkReply runs cluster_shrinker against w with args and returns what
// it printed, failing on a non-zero exit.
func (c *rsCluster) shrinkReply(w *clusterWorker, args ...string) string {
	c.t.Helper()
	full := append([]string{"--external", w.external}, args...)
	full = append(full, w.toolFlags()...)
	out, errOut, code, err := rsRun(rsToolTimeout+5*time.Second, "cluster_shrinker", full...)
	if code != 0 || err != nil {
		c.t.Fatalf("cluster_shrinker %s: exit %d (%v): %s%s", strings.Join(full, " "), code, err, out, errOut)
	}
	return out
}

// eligible returns the workers eligible for shrinking, in cluster order
// as the initializer reports it: every one but the initializer.
func (c *rsCluster) eligible() []string {
	c.t.Helper()
	st, err := rsQueryStatus(c.members[0])
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, n := range st.WorkerNames {
		if n != "initializer" {
			out = append(out, n)
		}
	}
	return out
}

// coordinatorFor picks a member that is not leaving to send the shrink
// request to: the last staying non-initializer if any (any staying worker
// may coordinate, spec 3.5), else the initializer.
func (c *rsCluster) coordinatorFor(leaving []string) *clusterWorker {
	for i := len(c.members) - 1; i > 0; i-- {
		if !slices.Contains(leaving, c.members[i].name) {
			return c.members[i]
		}
	}
	return c.members[0]
}

// shrinkNames asks a staying worker to shrink the named workers
// (cluster_shrinker --workers a,b) and checks the whole operation.
func (c *rsCluster) shrinkNames(names []string) {
	c.t.Helper()
	via := c.coordinatorFor(names)
	c.shrink(via, names, "--workers", strings.Join(names, ","))
}

// shrinkCount asks the initializer to shrink by n (cluster_shrinker
// --count n): the first n eligible workers in cluster order leave.
func (c *rsCluster) shrinkCount(n int) {
	c.t.Helper()
	el := c.eligible()
	if len(el) < n {
		c.t.Fatalf("shrink by %d: only %d workers are eligible (%v)", n, len(el), el)
	}
	c.shrink(c.members[0], el[:n], "--count", strconv.Itoa(n))
}

func (c *rsCluster) shrink(via *clusterWorker, leaving []string, args ...string) {
	c.t.Helper()
	c.checkAlive()
	what := fmt.Sprintf("shrink (cluster_shrinker %s via %s; leaving %v)", strings.Join(args, " "), via.name, leaving)
	pre := c.mustSnapshot("before " + what)
	got := c.shrinkReply(via, args...)
	want := fmt.Sprintf("Cluster shrink response: Shrinking by %d workers!\n", len(leaving))
	if got != want {
		c.t.Fatalf("%s: cluster_shrinker printed %q, want %q", what, got, want)
	}
	var leavers, staying []*clusterWorker
	for _, w := range c.members {
		if slices.Contains(leaving, w.name) {
			leavers = append(leavers, w)
		} else {
			staying = append(staying, w)
		}
	}
	// Leaving workers hand over their keys and exit 0; the others stay.
	deadline := time.Now().Add(rsLeaveTimeout)
	for {
		for _, w := range staying {
			if gone, how := rsExited(w); gone {
				c.t.Fatalf("%s: %s, which was to stay, is gone (the leavers should be %v): %s", what, w.name, leaving, how)
			}
		}
		running := ""
		for _, w := range leavers {
			if gone, _ := rsExited(w); !gone {
				running = w.name
			}
		}
		if running == "" {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: leaving worker %s still runs %v after the shrink reply; its output ends:\n%s", what, running, rsLeaveTimeout, rsTail(c.member(running).proc, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, w := range leavers {
		if w.err != nil {
			c.t.Fatalf("%s: leaving worker %s exited with %v, want 0; its output ends:\n%s", what, w.name, w.err, rsTail(w.proc, 30))
		}
	}
	c.members = staying
	c.waitMembers(what, rsJoinTimeout)
	c.confirmMigration(what, pre, leaving)
}

// confirmMigration polls state-entity-query on every member until the
// invariants of spec 3.6 hold: every key owned before is owned after by
// exactly one member; leavers own none (they are gone; their keys are on
// members); the key->worker map changed.
func (c *rsCluster) confirmMigration(what string, pre rsOwnership, leavers []string) {
	c.t.Helper()
	leaversOwned := 0
	for _, l := range leavers {
		leaversOwned += len(pre.keysOf(l))
	}
	deadline := time.Now().Add(rsMigrationTimeout)
	last := ""
	for {
		c.checkAlive()
		post, err := c.snapshot()
		if err == nil {
			last = rsMigrationProblem(pre, post, leavers, leaversOwned)
			if last == "" {
				c.t.Logf("%s: migration confirmed; keys per worker before %v, after %v", what, pre.perWorker(), post.perWorker())
				return
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: the state-entity-queries never satisfied the migration invariants within %v: %s", what, rsMigrationTimeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func rsMigrationProblem(pre, post rsOwnership, leavers []string, leaversOwned int) string {
	if d := post.duplicates(); len(d) > 0 {
		return "keys owned by more than one worker: " + rsHead(d, 10)
	}
	var lost []string
	changed := false
	for k := range pre {
		if len(post[k]) == 0 {
			lost = append(lost, k)
			continue
		}
		if post.owner(k) != pre.owner(k) {
			changed = true
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		return fmt.Sprintf("%d keys owned before are owned by no member after: %s", len(lost), rsHead(lost, 10))
	}
	for _, l := range leavers {
		if ks := post.keysOf(l); len(ks) > 0 {
			return fmt.Sprintf("leaving worker %s still owns %v", l, ks)
		}
	}
	if !changed {
		// (The harness asserts it after every grow and shrink: joiners
		// and members are listed in the order of their names, so which
		// keys a worker gets does not depend on who registered first.)
		return fmt.Sprintf("the key->worker map did not change (%v; the leavers owned %d keys)", post.perWorker(), leaversOwned)
	}
	return ""
}

// finish stops the sender, waits for every key's final value at the sink,
// validates the whole output exactly once (keys in partial: final value
// only), and stops the cluster (every member exits 0).
func (c *rsCluster) finish(partial map[string]bool) {
	c.t.Helper()
	c.checkAlive()
	final := c.sender.pause(c.t)
	c.recv.waitFinal(c.t, final, rsFinalTimeout)
	c.checkAlive()
	rsCheckOutput(c.t, c.recv, final, partial)
	stopCluster(c.t, c.members, 0, false)
}

// rsOp is one operation of the rescale tests.
type rsOp struct {
	name  string
	delta int // change in the number of workers
	run   func(c *rsCluster)
}

var (
	rsGrow1 = rsOp{"Grow1", 1, func(c *rsCluster) {
		// One joiner contacts the last member (any worker may be
		// contacted, spec 3.4).
		c.grow(1, c.members[len(c.members)-1])
	}}
	rsGrow4 = rsOp{"Grow4", 4, func(c *rsCluster) {
		// Four joiners together, all contacting the initializer, as the
		// 0.6 harness does.
		c.grow(4, c.members[0])
	}}
	rsShrink1 = rsOp{"Shrink1", -1, func(c *rsCluster) {
		// By name: the last worker, as the harness's shrink(1) does.
		c.shrinkNames([]string{c.members[len(c.members)-1].name})
	}}
	rsShrink4 = rsOp{"Shrink4", -4, func(c *rsCluster) {
		c.shrinkCount(4)
	}}
)

// rsInitialSize is the smallest cluster that never drops below one
// worker through ops.
func rsInitialSize(ops ...rsOp) int {
	for n := 1; ; n++ {
		size, ok := n, true
		for _, op := range ops {
			if size += op.delta; size < 1 {
				ok = false
			}
		}
		if ok {
			return n
		}
	}
}

// rsRunOps runs ops from the smallest cluster that never drops below
// one worker through them, with the keys of 0.6's autoscale suite
// (5 x initial workers - 1: 4 keys from one worker; after a grow by 4
// the last joiner owns some of them in the order of the names, while in
// a quarter of the orders the joiners may ask in it owns none, and the
// shrink of it that follows, which the harness requires to move keys,
// would move nothing).
func rsRunOps(t *testing.T, ops ...rsOp) {
	n := rsInitialSize(ops...)
	rsRunModuleOpsFrom(t, "multi_partition_detector", n, 5*n-1, ops...)
}
