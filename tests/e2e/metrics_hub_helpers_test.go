package e2e

// An independent decoder of the Wallaroo 0.6 hub protocol (runtime spec
// 5.2), written from the spec and not from the engine's code: a test
// listener that accepts worker connections and decodes every message,
// recording anything malformed. Also a small reader of the Prometheus
// text exposition format for the --prometheus endpoint.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hubPeriod is the reporting period of spec 5.3, in nanoseconds.
const hubPeriod = 2_000_000_000

// hubBins is the number of histogram bins in a record.
const hubBins = 65

// hubRecord is one decoded metrics record (one Payload message).
type hubRecord struct {
	event, topic string // of the Payload
	inner        uint32 // the record's own inner_size field
	dataLen      int    // the Payload's data_len
	name         string
	category     string
	worker       string
	pipeline     string
	id           uint16
	bins         [hubBins]uint64
	min, max     uint64
	period       uint64
	periodEnd    uint64
	received     time.Time
}

// count is the number of samples in the record (the sum of its bins).
func (r *hubRecord) count() uint64 {
	var n uint64
	for _, b := range r.bins {
		n += b
	}
	return n
}

func (r *hubRecord) String() string {
	return fmt.Sprintf("{%s %q worker=%q pipeline=%q id=%d count=%d min=%d max=%d end=%d}",
		r.category, r.name, r.worker, r.pipeline, r.id, r.count(), r.min, r.max, r.periodEnd)
}

// hubConn is one accepted connection and what came on it.
type hubConn struct {
	c        net.Conn
	accepted time.Time
	connect  bool   // the first message was a well-formed Connect
	joined   bool   // a Join came (second message)
	topic    string // of the Join
	worker   string // of the Join
	records  []*hubRecord
	closed   bool // reading ended (EOF, error, or closed by the test)
	dropping bool // the test closed it on purpose
}

// hubListener is a test metrics hub.
type hubListener struct {
	l  net.Listener
	mu sync.Mutex
	cs []*hubConn
	// errs are protocol violations seen so far (malformed or unexpected
	// messages); checked by the tests with check.
	errs []string
}

// newHubListener listens on a free loopback port.
func newHubListener(t *testing.T) *hubListener {
	return newHubListenerAt(t, "127.0.0.1:0")
}

// newHubListenerAt listens on addr (retrying for a while if the address
// is briefly busy).
func newHubListenerAt(t *testing.T, addr string) *hubListener {
	t.Helper()
	var (
		l   net.Listener
		err error
	)
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics hub: listen on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h := &hubListener{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hc := &hubConn{c: c, accepted: time.Now()}
			h.mu.Lock()
			h.cs = append(h.cs, hc)
			h.mu.Unlock()
			go h.serve(hc)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		h.mu.Lock()
		for _, c := range h.cs {
			c.dropping = true
			c.c.Close()
		}
		h.mu.Unlock()
	})
	return h
}

func (h *hubListener) addr() string { return h.l.Addr().String() }

func (h *hubListener) errorf(hc *hubConn, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, fmt.Sprintf("connection from %s (worker %q): ", hc.c.RemoteAddr(), hc.worker)+fmt.Sprintf(format, args...))
}

// serve reads and decodes one connection until it ends.
func (h *hubListener) serve(hc *hubConn) {
	defer func() {
		h.mu.Lock()
		hc.closed = true
		h.mu.Unlock()
		hc.c.Close()
	}()
	r := bufio.NewReader(hc.c)
	for n := 0; ; n++ {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			h.mu.Lock()
			dropping := hc.dropping
			h.mu.Unlock()
			if err != io.EOF && !dropping {
				h.errorf(hc, "message %d: torn size header: %v", n, err)
			}
			return
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size == 0 || size > 1<<20 {
			h.errorf(hc, "message %d: implausible size %d", n, size)
			return
		}
		body := make([]byte, size)
		if got, err := io.ReadFull(r, body); err != nil {
			h.mu.Lock()
			dropping := hc.dropping
			h.mu.Unlock()
			if !dropping {
				h.errorf(hc, "message %d: torn: %d of %d bytes, then %v", n, got, size, err)
			}
			return
		}
		now := time.Now()
		switch n {
		case 0:
			// Connect: exactly 00 00 00 01 01.
			if size != 1 || body[0] != 1 {
				h.errorf(hc, "first message is not Connect (00 00 00 01 01): % x", append(hdr[:], body...))
				return
			}
			h.mu.Lock()
			hc.connect = true
			h.mu.Unlock()
		case 1:
			topic, worker, err := decodeJoin(body)
			if err != nil {
				h.errorf(hc, "second message is not a Join: %v (% x)", err, body)
				return
			}
			h.mu.Lock()
			hc.joined, hc.topic, hc.worker = true, topic, worker
			h.mu.Unlock()
		default:
			rec, err := decodePayload(body)
			if err != nil {
				h.errorf(hc, "message %d is not a metrics Payload: %v", n, err)
				return
			}
			rec.received = now
			h.mu.Lock()
			hc.records = append(hc.records, rec)
			h.mu.Unlock()
		}
	}
}

// hubReader reads the big-endian fields of a message body.
type hubReader struct {
	b   []byte
	err error
}

func (r *hubReader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%s: need %d bytes, %d left", what, n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *hubReader) u8(what string) uint8 {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *hubReader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *hubReader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *hubReader) u64(what string) uint64 {
	if b := r.take(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// str reads a U32-length-prefixed string.
func (r *hubReader) str(what string) string {
	n := r.u32(what + " length")
	return string(r.take(int(n), what))
}

// done fails unless every byte was consumed.
func (r *hubReader) done(what string) error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%s: %d bytes left over", what, len(r.b))
	}
	return nil
}

// decodeJoin decodes a Join message body (type byte first).
func decodeJoin(body []byte) (topic, worker string, err error) {
	r := &hubReader{b: body}
	if typ := r.u8("type"); r.err == nil && typ != 2 {
		return "", "", fmt.Errorf("type %d, want 2", typ)
	}
	topic = r.str("topic")
	worker = r.str("worker name")
	return topic, worker, r.done("Join")
}

// decodePayload decodes a Payload message body (type byte first) holding
// one metrics record.
func decodePayload(body []byte) (*hubRecord, error) {
	r := &hubReader{b: body}
	if typ := r.u8("type"); r.err == nil && typ != 3 {
		return nil, fmt.Errorf("type %d, want 3", typ)
	}
	rec := &hubRecord{}
	rec.event = r.str("event")
	rec.topic = r.str("topic")
	dataLen := r.u32("data_len")
	data := r.take(int(dataLen), "data")
	if err := r.done("Payload"); err != nil {
		return nil, err
	}
	rec.dataLen = int(dataLen)
	d := &hubReader{b: data}
	rec.inner = d.u32("inner_size")
	rec.name = d.str("metric name")
	rec.category = d.str("category")
	rec.worker = d.str("worker name")
	rec.pipeline = d.str("pipeline name")
	rec.id = d.u16("id")
	for i := range rec.bins {
		rec.bins[i] = d.u64("bin")
	}
	rec.min = d.u64("min")
	rec.max = d.u64("max")
	rec.period = d.u64("period")
	rec.periodEnd = d.u64("period end")
	if err := d.done("record"); err != nil {
		return nil, err
	}
	return rec, nil
}

// check fails the test with every protocol violation seen so far.
func (h *hubListener) check(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	errs := append([]string(nil), h.errs...)
	h.mu.Unlock()
	for _, e := range errs {
		t.Errorf("metrics hub: %s", e)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
}

// conns returns a snapshot of the connections (copies, with copies of
// their record lists).
func (h *hubListener) conns() []hubConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]hubConn, len(h.cs))
	for i, c := range h.cs {
		out[i] = *c
		out[i].records = append([]*hubRecord(nil), c.records...)
	}
	return out
}

// records returns every record received on connections that joined.
func (h *hubListener) records() []*hubRecord {
	var out []*hubRecord
	for _, c := range h.conns() {
		out = append(out, c.records...)
	}
	return out
}

// waitJoined waits until n connections have sent Connect and Join
// (failing on any protocol violation) and returns them.
func (h *hubListener) waitJoined(t *testing.T, n int, timeout time.Duration) []hubConn {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h.check(t)
		var joined []hubConn
		for _, c := range h.conns() {
			if c.joined {
				joined = append(joined, c)
			}
		}
		if len(joined) >= n {
			return joined
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics hub %s: %d workers joined within %v, want %d", h.addr(), len(joined), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dropAll closes every open connection from the hub's side.
func (h *hubListener) dropAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.cs {
		c.dropping = true
		c.c.Close()
	}
}

// waitAllClosed waits until every accepted connection has ended.
func (h *hubListener) waitAllClosed(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		open := 0
		for _, c := range h.conns() {
			if !c.closed {
				open++
			}
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics hub: %d connections still open after %v", open, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hubSums sums the record counts per category, per (category, name) and
// per worker, over a set of records.
type hubSums struct {
	byCategory map[string]uint64
	byName     map[[2]string]uint64          // (category, name)
	byWorker   map[[2]string]uint64          // (category, worker)
	ids        map[[2]string]map[uint16]bool // (category, name) -> ids seen
	pipelines  map[[2]string]map[string]bool // (category, name) -> pipeline fields
}

func sumRecords(recs []*hubRecord) hubSums {
	s := hubSums{byCategory: map[string]uint64{}, byName: map[[2]string]uint64{}, byWorker: map[[2]string]uint64{},
		ids: map[[2]string]map[uint16]bool{}, pipelines: map[[2]string]map[string]bool{}}
	for _, r := range recs {
		n := r.count()
		k := [2]string{r.category, r.name}
		s.byCategory[r.category] += n
		s.byName[k] += n
		s.byWorker[[2]string{r.category, r.worker}] += n
		if s.ids[k] == nil {
			s.ids[k] = map[uint16]bool{}
			s.pipelines[k] = map[string]bool{}
		}
		s.ids[k][r.id] = true
		s.pipelines[k][r.pipeline] = true
	}
	return s
}

// checkRecord checks one record against spec 5.2 and 5.3 as far as it
// can be judged alone; conn is the connection it came on.
func checkRecord(t *testing.T, conn *hubConn, r *hubRecord) {
	t.Helper()
	bad := func(format string, args ...any) {
		t.Helper()
		t.Errorf("record %v: %s", r, fmt.Sprintf(format, args...))
	}
	if r.event != "metrics" {
		bad("event %q, want \"metrics\"", r.event)
	}
	if r.topic != conn.topic {
		bad("topic %q, want the Join's %q", r.topic, conn.topic)
	}
	if r.worker != conn.worker {
		bad("worker field %q, want the Join's worker name %q", r.worker, conn.worker)
	}
	strs := len(r.name) + len(r.category) + len(r.worker) + len(r.pipeline)
	if want := uint32(18 + strs + 704); r.inner != want {
		bad("inner_size %d, want 18 + %d + 704 = %d (the 0.6 quirk)", r.inner, strs, want)
	}
	if want := 4 + 16 + strs + 2 + hubBins*8 + 4*8; r.dataLen != want {
		bad("data_len %d, want %d", r.dataLen, want)
	}
	if r.period != hubPeriod {
		bad("period %d, want %d", r.period, hubPeriod)
	}
	if r.periodEnd%hubPeriod != 0 {
		bad("period end %d is not a multiple of %d", r.periodEnd, hubPeriod)
	}
	// Not in the future: a period's record is sent once it has ended
	// (half a second of slack for clock steps).
	if recv := uint64(r.received.UnixNano()); r.periodEnd > recv+500_000_000 {
		bad("period end %d is %v after the record arrived", r.periodEnd, time.Duration(r.periodEnd-recv))
	}
	// Only samples taken while connected are reported: the period ends
	// after the connection was made, and its record is not held back.
	if acc := uint64(conn.accepted.UnixNano()); r.periodEnd+hubPeriod < acc {
		bad("period end %d is more than a period before the connection (%d)", r.periodEnd, acc)
	}
	if late := r.received.Sub(time.Unix(0, int64(r.periodEnd))); late > 60*time.Second {
		bad("arrived %v after its period ended", late)
	}
	n := r.count()
	if n == 0 {
		bad("no samples (a histogram without samples in the period must not be sent)")
		return
	}
	if r.min > r.max {
		bad("min %d > max %d", r.min, r.max)
	}
	lo, hi := -1, -1
	for i, b := range r.bins {
		if b != 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	if lo != bits.Len64(r.min) {
		bad("lowest non-empty bin %d, but min %d belongs in bin %d", lo, r.min, bits.Len64(r.min))
	}
	if hi != bits.Len64(r.max) {
		bad("highest non-empty bin %d, but max %d belongs in bin %d", hi, r.max, bits.Len64(r.max))
	}
	// Latencies in nanoseconds: nothing in these tests takes minutes (a
	// wrong unit or clock shows up here).
	if r.max > uint64(120*time.Second) {
		bad("max %v: an implausible latency", time.Duration(r.max))
	}
	switch r.category {
	case "computation":
		if r.id == 0 {
			bad("computation id 0, want 1 or more")
		}
		if r.name == "Decode Time in TCP Source" && r.id != 1 {
			bad("the source decode has id %d, want 1", r.id)
		}
	case "start-to-end":
		if r.id != 0 || r.name != r.pipeline {
			bad("start-to-end: want id 0 and name = pipeline")
		}
	case "node-ingress-egress":
		if r.id != 0 || r.name != r.worker {
			bad("node-ingress-egress: want id 0 and name = worker name")
		}
	case "pipeline-ingestion":
		if r.id != 0 || r.name != r.pipeline+" source" {
			bad("pipeline-ingestion: want id 0 and name \"<pipeline> source\"")
		}
		if r.min != 0 || r.max != 0 || r.bins[0] != n {
			bad("pipeline-ingestion: want value 0 (min = max = 0, every count in bin 0)")
		}
	default:
		bad("unknown category %q", r.category)
	}
}

// checkConnRecords checks every record of a connection, and that their
// periods do not go back.
func checkConnRecords(t *testing.T, c *hubConn) {
	t.Helper()
	var last uint64
	for _, r := range c.records {
		checkRecord(t, c, r)
		if r.periodEnd < last {
			t.Errorf("record %v: period end goes back from %d", r, last)
		}
		last = r.periodEnd
	}
}

// metricsWordInput writes n lines of three words each (so 3n words) to a
// file and returns its path and the lines.
func metricsWordInput(t *testing.T, n int, tag string) (string, []string) {
	t.Helper()
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("%s%d Word%d, common.", tag, i%37, i%11)
	}
	path := filepath.Join(t.TempDir(), "lines.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, lines
}

// promSample is one line of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeProm fetches http://addr/metrics and parses it.
func scrapeProm(addr string) ([]promSample, string, error) {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, string(body), fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var out []promSample
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parsePromLine(line)
		if err != nil {
			return nil, string(body), err
		}
		out = append(out, s)
	}
	return out, string(body), nil
}

// parsePromLine parses `name{k="v",...} value [timestamp]`.
func parsePromLine(line string) (promSample, error) {
	s := promSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("malformed line %q", line)
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, "=\"")
			if eq <= 0 {
				return s, fmt.Errorf("malformed labels in %q", line)
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				val.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return s, fmt.Errorf("unterminated label value in %q", line)
			}
			s.labels[key] = val.String()
			rest = strings.TrimPrefix(rest[j+1:], ",")
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 {
		return s, fmt.Errorf("malformed value in %q", line)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("value in %q: %v", line, err)
	}
	s.value = v
	return s, nil
}

// promFind returns the samples named name whose labels include want.
func promFind(ss []promSample, name string, want map[string]string) []promSample {
	var out []promSample
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// promSum sums the values of promFind.
func promSum(ss []promSample, name string, want map[string]string) (float64, int) {
	found := promFind(ss, name, want)
	var v float64
	for _, s := range found {
		v += s.value
	}
	return v, len(found)
}
