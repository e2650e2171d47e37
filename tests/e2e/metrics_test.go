package e2e

// Worker metrics (runtime spec 5): the 0.6 hub protocol on --metrics,
// decoded by the independent decoder of metrics_hub_helpers_test.go; the
// Prometheus endpoint of --prometheus; --log-format and --log-level.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	wcApp      = "Word Count Application"
	wcPipeline = "Split and Count"
	wcTopic    = "metrics:" + wcApp
)

// wcComputations are the computations word_count reports (the key
// extractor is not timed).
var wcComputations = []string{"Decode Time in TCP Source", "split into words", "count word"}

// metricsWorker starts word_count on one worker named initializer with
// --metrics hub (extra: more options) and waits until it is ready.
func metricsWorker(t *testing.T, in, out, hub string, extra ...string) *proc {
	t.Helper()
	args := []string{"--application-module", "word_count", "--in", in, "--out", out,
		"--metrics", hub, "--control", freePort(t), "--data", freePort(t),
		"--name", "initializer", "--external", freePort(t), "--cluster-initializer",
		"--ponythreads=1", "--ponynoblock"}
	args = append(args, extra...)
	m := start(t, exampleDir("word_count"), "machida3", args...)
	m.waitOutput("Application has successfully initialized", 60*time.Second)
	return m
}

// waitStderrCount waits until the worker's stderr holds s at least n
// times (the worker logs "metrics: connected" once it has joined and
// started a fresh period: data sent after that is reported).
func waitStderrCount(t *testing.T, p *proc, s string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(p.stderr.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("worker stderr has %q %d times within %v, want %d\nstderr:\n%s",
				s, strings.Count(p.stderr.String(), s), timeout, n, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHubCounts waits until the records of recs() count exactly
// ingested pipeline-ingestion samples and completed start-to-end
// samples, and a computation record for each of names; it fails at
// once if either count goes past what is expected.
func waitHubCounts(t *testing.T, h *hubListener, recs func() []*hubRecord, ingested, completed uint64, names []string, timeout time.Duration) hubSums {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h.check(t)
		s := sumRecords(recs())
		gi, gc := s.byCategory["pipeline-ingestion"], s.byCategory["start-to-end"]
		if gi > ingested || gc > completed {
			t.Fatalf("metrics hub: pipeline-ingestion counts %d (want %d), start-to-end counts %d (want %d): too many", gi, ingested, gc, completed)
		}
		missing := []string{}
		for _, n := range names {
			if s.byName[[2]string{"computation", n}] == 0 {
				missing = append(missing, n)
			}
		}
		if gi == ingested && gc == completed && len(missing) == 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics hub after %v: pipeline-ingestion counts %d (want %d), start-to-end counts %d (want %d), no computation records for %q; by name: %v",
				timeout, gi, ingested, gc, completed, missing, s.byName)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkComputationIDs checks that word_count's computations keep one id
// each, increasing along the path from the decoder's 1, and that no
// other computation is reported.
func checkComputationIDs(t *testing.T, s hubSums) {
	t.Helper()
	prev := uint16(0)
	for _, n := range wcComputations {
		k := [2]string{"computation", n}
		if len(s.ids[k]) != 1 {
			t.Errorf("computation %q reported with ids %v, want one id", n, s.ids[k])
			continue
		}
		for id := range s.ids[k] {
			if id <= prev {
				t.Errorf("computation %q has id %d, want more than the previous stage's %d", n, id, prev)
			}
			prev = id
		}
		if len(s.pipelines[k]) != 1 || !s.pipelines[k][wcPipeline] {
			t.Errorf("computation %q reported for pipelines %v, want only %q", n, s.pipelines[k], wcPipeline)
		}
	}
	for k := range s.byName {
		if k[0] != "computation" {
			continue
		}
		known := false
		for _, n := range wcComputations {
			known = known || k[1] == n
		}
		if !known {
			t.Errorf("unexpected computation record %q", k[1])
		}
	}
	for k, ps := range s.pipelines {
		if len(ps) != 1 || !ps[wcPipeline] {
			t.Errorf("%s %q reported for pipelines %v, want only %q", k[0], k[1], ps, wcPipeline)
		}
	}
}

// TestMetricsHubDecoderSelfCheck checks the test's own decoder on bytes
// built by hand from spec 5.2, and that it reports malformed input.
func TestMetricsHubDecoderSelfCheck(t *testing.T) {
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	msg := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	join := msg(str(str([]byte{2}, "metrics:App"), "w1"))
	var rec []byte
	rec = binary.BigEndian.AppendUint32(rec, 18+4+11+2+1+704)
	rec = str(rec, "comp")
	rec = str(rec, "computation")
	rec = str(rec, "w1")
	rec = str(rec, "P")
	rec = binary.BigEndian.AppendUint16(rec, 2)
	for i := 0; i < hubBins; i++ {
		var n uint64
		if i == 3 || i == 5 {
			n = 7
		}
		rec = binary.BigEndian.AppendUint64(rec, n)
	}
	for _, v := range []uint64{5, 20, hubPeriod, uint64(time.Now().UnixNano()) / hubPeriod * hubPeriod} {
		rec = binary.BigEndian.AppendUint64(rec, v)
	}
	payload := str(str([]byte{3}, "metrics"), "metrics:App")
	payload = binary.BigEndian.AppendUint32(payload, uint32(len(rec)))
	payload = msg(append(payload, rec...))

	h := newHubListener(t)
	c, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(append(append([]byte{0, 0, 0, 1, 1}, join...), payload...)); err != nil {
		t.Fatal(err)
	}
	conns := h.waitJoined(t, 1, 10*time.Second)
	if conns[0].topic != "metrics:App" || conns[0].worker != "w1" {
		t.Fatalf("join decoded as %q %q", conns[0].topic, conns[0].worker)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(h.records()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	recs := h.records()
	if len(recs) != 1 {
		t.Fatalf("%d records decoded, want 1", len(recs))
	}
	r := recs[0]
	if r.name != "comp" || r.category != "computation" || r.worker != "w1" || r.pipeline != "P" || r.id != 2 ||
		r.count() != 14 || r.min != 5 || r.max != 20 || r.period != hubPeriod {
		t.Fatalf("decoded %v", r)
	}
	conn := conns[0]
	checkRecord(t, &conn, r)
	if t.Failed() {
		t.Fatal("checkRecord rejects a well-formed record")
	}

	// One byte too many in a Payload, and a first message that is not
	// Connect: both reported.
	bad := append([]byte(nil), payload...)
	binary.BigEndian.PutUint32(bad, binary.BigEndian.Uint32(bad)+1)
	bad = append(bad, 0)
	if _, err := c.Write(bad); err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write(join); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.errs)
		errs := strings.Join(h.errs, "\n")
		h.mu.Unlock()
		if n == 2 && strings.Contains(errs, "left over") && strings.Contains(errs, "not Connect") {
			t.Logf("malformed input reported:\n%s", errs)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("malformed input: errors %q", errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	h.errs = nil
	h.mu.Unlock()
}

// TestMetricsWordCountHubAndPrometheus runs word count on one worker with
// --metrics at a test hub and --prometheus, and checks both against what
// was sent and received.
func TestMetricsWordCountHubAndPrometheus(t *testing.T) {
	dir := exampleDir("word_count")
	hub := newHubListener(t)
	out := newSink(t)
	in, prom := freePort(t), freePort(t)
	m := metricsWorker(t, in, out.addr(), hub.addr(), "--prometheus", prom)

	joined := hub.waitJoined(t, 1, 30*time.Second)
	c := joined[0]
	if !c.connect {
		t.Fatal("no Connect (00 00 00 01 01) first")
	}
	if c.topic != wcTopic || c.worker != "initializer" {
		t.Fatalf("Join: topic %q worker %q, want %q and %q", c.topic, c.worker, wcTopic, "initializer")
	}
	waitStderrCount(t, m, "metrics: connected", 1, 30*time.Second)

	input, lines := metricsWordInput(t, 480, "m")
	words := total(referenceCounts(lines))
	if words != 3*len(lines) {
		t.Fatalf("generated input has %d words, want %d", words, 3*len(lines))
	}
	exSend(t, dir, in, len(lines), "--file", input, "--batch-size", "4", "--interval", "20ms")
	out.waitLines(t, words, 90*time.Second)

	s := waitHubCounts(t, hub, hub.records, uint64(len(lines)), uint64(words), wcComputations, 60*time.Second)
	t.Logf("hub: %d records; counts by name: %v", len(hub.records()), s.byName)
	if got := s.byName[[2]string{"pipeline-ingestion", wcPipeline + " source"}]; got != uint64(len(lines)) {
		t.Errorf("pipeline-ingestion %q counts %d, want %d", wcPipeline+" source", got, len(lines))
	}
	if got := s.byName[[2]string{"start-to-end", wcPipeline}]; got != uint64(words) {
		t.Errorf("start-to-end %q counts %d, want %d", wcPipeline, got, words)
	}
	if got := s.byName[[2]string{"node-ingress-egress", "initializer"}]; got != uint64(words) {
		// Single worker: every message completes here.
		t.Errorf("node-ingress-egress %q counts %d, want %d (every word completes on this worker)", "initializer", got, words)
	}
	checkComputationIDs(t, s)
	// Computation counts are sampled (one message of each run of a
	// call's messages is timed and counts for the run): with every line
	// decoded and split into 3 words, the estimate is exact.
	for _, c := range []struct {
		name string
		want int
	}{{"Decode Time in TCP Source", len(lines)}, {"split into words", len(lines)}, {"count word", words}} {
		if got := s.byName[[2]string{"computation", c.name}]; got != uint64(c.want) {
			t.Errorf("computation %q counts %d, want %d (sampled, but every line is alike)", c.name, got, c.want)
		}
	}
	for _, conn := range hub.conns() {
		checkConnRecords(t, &conn)
	}

	// The Prometheus endpoint: totals since start.
	var (
		ss   []promSample
		body string
	)
	wantIngest := map[string]string{"pipeline": wcPipeline, "worker": "initializer"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		ss, body, err = scrapeProm(prom)
		if err == nil {
			ing, _ := promSum(ss, "wallaroo_messages_ingested_total", wantIngest)
			e2e, _ := promSum(ss, "wallaroo_end_to_end_latency_seconds_count", wantIngest)
			sb, _ := promSum(ss, "wallaroo_sink_bytes_total", map[string]string{"worker": "initializer"})
			if ing == float64(len(lines)) && e2e == float64(words) && sb == float64(len(out.bytes())) {
				break
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("scrape %s: %v\n%s", prom, err, body)
			}
			break // the checks below say what differs
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := promFind(ss, "wallaroo_messages_ingested_total", wantIngest); len(got) != 1 || got[0].value != float64(len(lines)) {
		t.Errorf("wallaroo_messages_ingested_total{pipeline=%q,worker=\"initializer\"}: %v, want one series of %d", wcPipeline, got, len(lines))
	}
	if got := promFind(ss, "wallaroo_end_to_end_latency_seconds_count", wantIngest); len(got) != 1 || got[0].value != float64(words) {
		t.Errorf("wallaroo_end_to_end_latency_seconds_count: %v, want one series of %d", got, words)
	}
	if got := promFind(ss, "wallaroo_end_to_end_latency_seconds_bucket", map[string]string{"pipeline": wcPipeline, "worker": "initializer", "le": "+Inf"}); len(got) != 1 || got[0].value != float64(words) {
		t.Errorf("wallaroo_end_to_end_latency_seconds_bucket{le=\"+Inf\"}: %v, want %d", got, words)
	}
	if got := promFind(ss, "wallaroo_worker_latency_seconds_count", wantIngest); len(got) != 1 || got[0].value != float64(words) {
		t.Errorf("wallaroo_worker_latency_seconds_count: %v, want one series of %d", got, words)
	}
	sinkBytes, series := promSum(ss, "wallaroo_sink_bytes_total", map[string]string{"worker": "initializer"})
	if series == 0 || sinkBytes != float64(len(out.bytes())) {
		t.Errorf("wallaroo_sink_bytes_total (worker initializer): %v over %d series, want the %d bytes the receiver got",
			sinkBytes, series, len(out.bytes()))
	}
	for _, stage := range wcComputations {
		got := promFind(ss, "wallaroo_stage_latency_seconds_count", map[string]string{"pipeline": wcPipeline, "stage": stage, "worker": "initializer"})
		if len(got) != 1 || got[0].value <= 0 {
			t.Errorf("wallaroo_stage_latency_seconds_count{stage=%q}: %v, want one series with samples", stage, got)
		}
	}
	if fe, n := promSum(ss, "wallaroo_source_framing_errors_total", nil); fe != 0 {
		t.Errorf("wallaroo_source_framing_errors_total: %v over %d series, want 0", fe, n)
	}
	for _, fam := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if len(promFind(ss, fam, nil)) == 0 {
			t.Errorf("no %s: the Go and process collectors are missing", fam)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}

	// A clean stop closes the hub connection at a message boundary.
	exStop(t, m)
	hub.waitAllClosed(t, 30*time.Second)
	hub.check(t)
	if n := len(hub.conns()); n != 1 {
		t.Errorf("%d hub connections, want 1 (no reconnect in a normal run)", n)
	}
}

// TestMetricsClusterTwoWorkers runs word count on two workers, both
// reporting to one hub.
func TestMetricsClusterTwoWorkers(t *testing.T) {
	dir := exampleDir("word_count")
	hub := newHubListener(t)
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	// The later --metrics overrides startCluster's own; port 0 lets each
	// worker's Prometheus endpoint take a port of its own, which it logs.
	ws := startCluster(t, dir, "word_count", 2, in, recv.addr, "--metrics", hub.addr(), "--prometheus", "127.0.0.1:0")
	joined := hub.waitJoined(t, 2, 60*time.Second)
	names := []string{}
	for _, c := range joined {
		if !c.connect || c.topic != wcTopic {
			t.Errorf("worker %q: Connect %v, topic %q, want %q", c.worker, c.connect, c.topic, wcTopic)
		}
		names = append(names, c.worker)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "initializer,worker1" {
		t.Fatalf("workers joined as %q, want initializer and worker1", names)
	}
	for _, w := range ws {
		waitStderrCount(t, w.proc, "metrics: connected", 1, 30*time.Second)
	}

	input, lines := metricsWordInput(t, 400, "c")
	words := total(referenceCounts(lines))
	exSend(t, dir, in, len(lines), "--file", input, "--batch-size", "4", "--interval", "20ms")
	recv.waitLines(t, words, 90*time.Second)
	s := waitHubCounts(t, hub, hub.records, uint64(len(lines)), uint64(words), nil, 60*time.Second)
	t.Logf("hub: counts by (category, worker): %v", s.byWorker)

	if got := s.byWorker[[2]string{"pipeline-ingestion", "initializer"}]; got != uint64(len(lines)) {
		t.Errorf("initializer: pipeline-ingestion counts %d, want %d", got, len(lines))
	}
	if got := s.byWorker[[2]string{"pipeline-ingestion", "worker1"}]; got != 0 {
		t.Errorf("worker1: pipeline-ingestion counts %d, want 0 (the source is on the initializer)", got)
	}
	for _, w := range []string{"initializer", "worker1"} {
		if got := s.byWorker[[2]string{"start-to-end", w}]; got == 0 {
			t.Errorf("%s: no start-to-end counts (the words are spread over both workers)", w)
		}
		// Every message completed on a worker left it there.
		if got, done := s.byWorker[[2]string{"node-ingress-egress", w}], s.byWorker[[2]string{"start-to-end", w}]; got < done {
			t.Errorf("%s: node-ingress-egress counts %d, fewer than the %d messages completed there", w, got, done)
		}
	}
	for _, conn := range hub.conns() {
		checkConnRecords(t, &conn)
	}
	checkComputationIDs(t, s)

	// Each worker's Prometheus endpoint agrees with its hub records.
	served := regexp.MustCompile(`prometheus endpoint: serving /metrics addr=(\S+)`)
	others := map[string]string{"initializer": "worker1", "worker1": "initializer"}
	for _, w := range ws {
		g := served.FindStringSubmatch(w.stderr.String())
		if g == nil {
			t.Errorf("%s: no \"prometheus endpoint: serving /metrics addr=...\" on stderr", w.name)
			continue
		}
		ss, body, err := scrapeProm(g[1])
		if err != nil {
			t.Errorf("%s: scrape %s: %v", w.name, g[1], err)
			continue
		}
		lbl := map[string]string{"pipeline": wcPipeline, "worker": w.name}
		ing, _ := promSum(ss, "wallaroo_messages_ingested_total", lbl)
		if want := s.byWorker[[2]string{"pipeline-ingestion", w.name}]; ing != float64(want) {
			t.Errorf("%s: wallaroo_messages_ingested_total %v, want %d (as the hub got)", w.name, ing, want)
		}
		e2e, _ := promSum(ss, "wallaroo_end_to_end_latency_seconds_count", lbl)
		if want := s.byWorker[[2]string{"start-to-end", w.name}]; e2e != float64(want) {
			t.Errorf("%s: wallaroo_end_to_end_latency_seconds_count %v, want %d (as the hub got)", w.name, e2e, want)
		}
		if got := promFind(ss, "wallaroo_link_replayed_batches_total", map[string]string{"peer": others[w.name], "worker": w.name}); len(got) != 1 || got[0].value != 0 {
			t.Errorf("%s: wallaroo_link_replayed_batches_total{peer=%q}: %v, want one series of 0", w.name, others[w.name], got)
		}
		if got := promFind(ss, "wallaroo_link_reconnects_total", map[string]string{"peer": others[w.name], "worker": w.name}); len(got) != 1 || got[0].value != 0 {
			t.Errorf("%s: wallaroo_link_reconnects_total{peer=%q}: %v, want one series of 0 (there from the link's first connection)", w.name, others[w.name], got)
		}
		for _, lane := range []string{"sources", "peers"} {
			if got := promFind(ss, "wallaroo_queue_depth", map[string]string{"lane": lane, "worker": w.name}); len(got) != 1 {
				t.Errorf("%s: wallaroo_queue_depth{lane=%q}: %v, want one series", w.name, lane, got)
			}
		}
		if t.Failed() {
			t.Logf("%s /metrics:\n%s", w.name, body)
		}
	}

	stopCluster(t, ws, 0, true)
	hub.waitAllClosed(t, 30*time.Second)
	hub.check(t)
	if n := len(hub.conns()); n != 2 {
		t.Errorf("%d hub connections, want 2", n)
	}
}

// TestMetricsHubReconnect starts the worker with --metrics at an address
// nobody listens on, runs data, then starts the hub there: the worker
// connects on its 10-second retry and reports what is sent after (not
// what went before). Then the hub drops the connection, and the worker
// connects again.
func TestMetricsHubReconnect(t *testing.T) {
	dir := exampleDir("word_count")
	hubAddr := freePort(t)
	out := newSink(t)
	in := freePort(t)
	m := metricsWorker(t, in, out.addr(), hubAddr)

	input1, lines1 := metricsWordInput(t, 60, "early")
	words1 := total(referenceCounts(lines1))
	exSend(t, dir, in, len(lines1), "--file", input1, "--batch-size", "4", "--interval", "10ms")
	out.waitLines(t, words1, 90*time.Second)

	hub := newHubListenerAt(t, hubAddr)
	started := time.Now()
	joined := hub.waitJoined(t, 1, 40*time.Second)
	t.Logf("the worker joined %v after the hub started", time.Since(started))
	if joined[0].topic != wcTopic || joined[0].worker != "initializer" {
		t.Fatalf("Join: topic %q worker %q", joined[0].topic, joined[0].worker)
	}
	waitStderrCount(t, m, "metrics: connected", 1, 30*time.Second)

	input2, lines2 := metricsWordInput(t, 200, "late")
	words2 := total(referenceCounts(lines2))
	exSend(t, dir, in, len(lines2), "--file", input2, "--batch-size", "4", "--interval", "10ms")
	out.waitLines(t, words1+words2, 90*time.Second)
	// Exactly the second run's messages: the first run's were discarded.
	waitHubCounts(t, hub, hub.records, uint64(len(lines2)), uint64(words2), nil, 60*time.Second)

	// The hub hangs up: the worker connects again (Connect and Join
	// again) and reports on the new connection.
	hub.dropAll()
	dropped := time.Now()
	joined = hub.waitJoined(t, 2, 40*time.Second)
	t.Logf("the worker joined again %v after the hub dropped it", time.Since(dropped))
	waitStderrCount(t, m, "metrics: connected", 2, 30*time.Second)
	second := func() []*hubRecord {
		cs := hub.conns()
		if len(cs) < 2 {
			return nil
		}
		return cs[len(cs)-1].records
	}
	input3, lines3 := metricsWordInput(t, 100, "again")
	words3 := total(referenceCounts(lines3))
	exSend(t, dir, in, len(lines3), "--file", input3, "--batch-size", "4", "--interval", "10ms")
	out.waitLines(t, words1+words2+words3, 90*time.Second)
	waitHubCounts(t, hub, second, uint64(len(lines3)), uint64(words3), nil, 60*time.Second)

	cs := hub.conns()
	if len(cs) != 2 {
		t.Errorf("%d hub connections, want 2", len(cs))
	}
	for i, c := range cs {
		if !c.connect || c.topic != wcTopic || c.worker != "initializer" {
			t.Errorf("connection %d: Connect %v, topic %q, worker %q", i, c.connect, c.topic, c.worker)
		}
		checkConnRecords(t, &c)
	}
	exStop(t, m)
	hub.waitAllClosed(t, 30*time.Second)
	hub.check(t)
}

// TestMetricsLogFormatJSON checks that --log-format json turns every
// diagnostic line on stderr into a JSON object, leaving the console lines
// on stdout as they are.
func TestMetricsLogFormatJSON(t *testing.T) {
	dir := exampleDir("word_count")
	out := newSink(t)
	in := freePort(t)
	// Nobody listens on the metrics address: the worker has something
	// to log about it.
	m := metricsWorker(t, in, out.addr(), freePort(t), "--log-format", "json", "--log-level", "debug",
		"--prometheus", freePort(t))
	input, lines := metricsWordInput(t, 40, "j")
	exSend(t, dir, in, len(lines), "--file", input, "--batch-size", "4", "--interval", "10ms")
	out.waitLines(t, 3*len(lines), 90*time.Second)
	exStop(t, m)

	stderr := m.stderr.String()
	n := 0
	for i, line := range strings.Split(stderr, "\n") {
		if line == "" {
			continue
		}
		n++
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Errorf("stderr line %d is not a JSON object: %q (%v)", i+1, line, err)
			continue
		}
		level, ok1 := obj["level"].(string)
		msg, ok2 := obj["msg"].(string)
		if !ok1 || !ok2 || level == "" || msg == "" {
			t.Errorf("stderr line %d lacks a level or msg string: %q", i+1, line)
		}
	}
	if n == 0 {
		t.Errorf("nothing on stderr: want at least the metrics connection diagnostic")
	}
	found := false
	for _, line := range strings.Split(m.stdout.String(), "\n") {
		if strings.TrimSpace(line) == "Application has successfully initialized" {
			found = true
		}
		if strings.HasPrefix(line, "{") {
			t.Errorf("stdout line is JSON, want the console lines verbatim: %q", line)
		}
	}
	if !found {
		t.Errorf("stdout has no line \"Application has successfully initialized\":\n%s", m.stdout.String())
	}
	t.Logf("%d JSON lines on stderr:\n%s", n, stderr)
}

// TestMetricsLogLevelWarn checks that --log-level warn (text format)
// leaves out the info lines the same run writes at the default level
// (the metrics connection and the Prometheus endpoint), and that every
// line left is a text line at WARN or ERROR.
func TestMetricsLogLevelWarn(t *testing.T) {
	dir := exampleDir("word_count")
	line := regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARN|ERROR) `)
	for _, level := range []string{"info", "warn"} {
		t.Run(level, func(t *testing.T) {
			out := newSink(t)
			in := freePort(t)
			m := metricsWorker(t, in, out.addr(), freePort(t), "--log-format", "text", "--log-level", level,
				"--prometheus", freePort(t))
			input, lines := metricsWordInput(t, 20, "w")
			exSend(t, dir, in, len(lines), "--file", input, "--batch-size", "4", "--interval", "10ms")
			out.waitLines(t, 3*len(lines), 90*time.Second)
			exStop(t, m)
			infos := 0
			for _, l := range strings.Split(m.stderr.String(), "\n") {
				if l == "" {
					continue
				}
				g := line.FindStringSubmatch(l)
				if g == nil {
					t.Errorf("stderr line is not a text log line: %q", l)
					continue
				}
				if g[1] == "INFO" || g[1] == "DEBUG" {
					infos++
					if level == "warn" {
						t.Errorf("--log-level warn, but stderr has: %q", l)
					}
				}
			}
			if level == "info" && infos == 0 {
				t.Errorf("--log-level info: no INFO line on stderr (the comparison with warn means nothing)")
			}
			if !strings.Contains(m.stdout.String(), "Application has successfully initialized") {
				t.Errorf("stdout lacks \"Application has successfully initialized\"")
			}
			t.Logf("stderr:\n%s", m.stderr.String())
		})
	}
}

// TestMetricsBadLogOptions checks that an unknown --log-format value
// stops the worker with exit 1 and an Error: line, while a --log-level
// the engine has no level for is the application's: the worker starts,
// logs at info and says so.
func TestMetricsBadLogOptions(t *testing.T) {
	dir := exampleDir("word_count")
	t.Run("log-level of the application's", func(t *testing.T) {
		recv := exStartReceiver(t, dir)
		p := start(t, dir, "machida3", "--application-module", "word_count",
			"--in", freePort(t), "--out", recv.addr, "--metrics", freePort(t),
			"--control", freePort(t), "--data", freePort(t), "--name", "initializer",
			"--external", freePort(t), "--cluster-initializer", "--ponythreads=1", "--ponynoblock",
			"--log-level", "loud")
		p.waitOutput("Application has successfully initialized", 60*time.Second)
		line := waitLog(t, p, 30*time.Second, "is not one of the engine's levels")
		if !strings.Contains(line, "WARN") || !strings.Contains(line, "loud") {
			t.Errorf("the warning does not name the value: %q", line)
		}
	})
	for _, tc := range []struct{ flag, value string }{{"--log-format", "xml"}} {
		t.Run(strings.TrimPrefix(tc.flag, "--"), func(t *testing.T) {
			p := start(t, dir, "machida3", "--application-module", "word_count",
				"--in", freePort(t), "--out", freePort(t), "--metrics", freePort(t),
				"--control", freePort(t), "--data", freePort(t), "--name", "initializer",
				"--external", freePort(t), "--cluster-initializer", "--ponythreads=1", "--ponynoblock",
				tc.flag, tc.value)
			if code := p.wait(60 * time.Second); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			var errLine string
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				if strings.HasPrefix(l, "Error: ") {
					errLine = l
				}
			}
			if errLine == "" || !strings.Contains(errLine, tc.flag) || !strings.Contains(errLine, fmt.Sprintf("%q", tc.value)) {
				t.Errorf("want an Error: line naming %s and %q; stderr:\n%s", tc.flag, tc.value, p.stderr.String())
			} else {
				t.Logf("%s", errLine)
			}
			if strings.Contains(p.stdout.String(), "Application has successfully initialized") {
				t.Errorf("the application started despite %s %s", tc.flag, tc.value)
			}
		})
	}
}
