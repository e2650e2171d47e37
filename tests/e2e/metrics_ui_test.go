package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"html"
	"math"
	"math/bits"
	"math/rand"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/childproc"
)

// The Metrics UI end to end: bin/metrics_ui fed over the hub protocol,
// its page rendered by headless Chromium (Debian's chromium package),
// read back as a DOM and saved as screenshots.

// chromiumBinary returns the path of chromium, or skips the test.
func chromiumBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed, so the Metrics UI page cannot be rendered: install Debian's chromium package (make setup and .ci/run do)")
	}
	return p
}

// runChromium runs headless Chromium with a fresh profile on url and
// returns its stdout. Chromium and every process it started (its own
// process group) are killed if it has not finished within a minute, and
// in any case once it has exited.
func runChromium(t *testing.T, pageURL string, args ...string) (string, error) {
	t.Helper()
	profile, err := os.MkdirTemp(t.TempDir(), "chromium-profile-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
		"--hide-scrollbars", "--user-data-dir=" + profile, "--virtual-time-budget=3000"}, args...)
	all = append(all, pageURL)
	cmd := exec.CommandContext(ctx, chromiumBinary(t), all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr syncBuf
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = childproc.Run(cmd)
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of this run only; ESRCH when none
	}
	if ctx.Err() != nil {
		return stdout.String(), fmt.Errorf("chromium did not finish within a minute on %s (killed)", pageURL)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("chromium on %s: %w\nstderr:\n%s", pageURL, err, lastLines(stderr.String(), 15))
	}
	return stdout.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitDOM loads pageURL in Chromium until cond accepts the rendered DOM
// (cond returns "" when satisfied, else what is still missing).
func waitDOM(t *testing.T, pageURL string, timeout time.Duration, cond func(dom string) string) string {
	t.Helper()
	dom := waitDOMOrFail(t, pageURL, timeout, cond)
	if dom == "" {
		t.Fatalf("page %s: not as expected within %v (see the log above)", pageURL, timeout)
	}
	return dom
}

// waitDOMOrFail is waitDOM that returns "" at the deadline, after logging
// what was missing, so the caller can say what it means.
func waitDOMOrFail(t *testing.T, pageURL string, timeout time.Duration, cond func(dom string) string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		dom, err := runChromium(t, pageURL, "--dump-dom")
		missing := ""
		if err != nil {
			missing = err.Error()
		} else if missing = cond(dom); missing == "" {
			return dom
		}
		if time.Now().After(deadline) {
			t.Logf("page %s after %v: %s\nlast DOM (end):\n%s", pageURL, timeout, missing, lastChars(dom, 3000))
			return ""
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func lastChars(s string, n int) string { return s[max(0, len(s)-n):] }

// screenshot saves pageURL as name.png in the test's temporary directory,
// or in $E2E_KEEP_SCREENSHOTS when that names a directory, and logs where.
func screenshot(t *testing.T, pageURL, name string) {
	t.Helper()
	dir := t.TempDir()
	if keep := os.Getenv("E2E_KEEP_SCREENSHOTS"); keep != "" {
		if st, err := os.Stat(keep); err == nil && st.IsDir() {
			dir = keep
		} else {
			t.Logf("E2E_KEEP_SCREENSHOTS=%s is not a directory; the screenshot goes to the test's temporary directory", keep)
		}
	}
	file := filepath.Join(dir, name+".png")
	if _, err := runChromium(t, pageURL, "--screenshot="+file, "--window-size=1280,900"); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	st, err := os.Stat(file)
	if err != nil || st.Size() == 0 {
		t.Fatalf("screenshot %s not written: %v", file, err)
	}
	t.Logf("screenshot of %s: %s (%d bytes)", pageURL, file, st.Size())
}

// uiRow is a stats line of the dashboard as rendered.
type uiRow struct {
	count         uint64
	p50, p95, p99 string
	tput          string
}

var (
	rowStart = regexp.MustCompile(`<tr class="element"[^>]*>`)
	attrRe   = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
	cellRe   = regexp.MustCompile(`<td class="(p50|p95|p99|tput)"[^>]*>(.*?)</td>`)
	tagRe    = regexp.MustCompile(`<[^>]+>`)
	digitRe  = regexp.MustCompile(`[0-9]`)
)

// findRow returns the dashboard row of element name in section kind.
func findRow(dom, kind, name string) (uiRow, bool) {
	locs := rowStart.FindAllStringIndex(dom, -1)
	for i, loc := range locs {
		attrs := map[string]string{}
		for _, m := range attrRe.FindAllStringSubmatch(dom[loc[0]:loc[1]], -1) {
			attrs[m[1]] = html.UnescapeString(m[2])
		}
		if attrs["data-kind"] != kind || attrs["data-name"] != name || attrs["data-sub"] != "" {
			continue
		}
		end := len(dom)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if j := strings.Index(dom[loc[1]:end], "</tr>"); j >= 0 {
			end = loc[1] + j
		}
		r := uiRow{}
		r.count, _ = strconv.ParseUint(attrs["data-count"], 10, 64)
		for _, m := range cellRe.FindAllStringSubmatch(dom[loc[1]:end], -1) {
			text := html.UnescapeString(tagRe.ReplaceAllString(m[2], ""))
			switch m[1] {
			case "p50":
				r.p50 = text
			case "p95":
				r.p95 = text
			case "p99":
				r.p99 = text
			case "tput":
				r.tput = text
			}
		}
		return r, true
	}
	return uiRow{}, false
}

// rowWithNumbers is a waitDOM condition: the row exists with a count
// other than notCount and digits in its latency and throughput cells.
func rowWithNumbers(kind, name string, notCount uint64, got *uiRow) func(string) string {
	return func(dom string) string {
		r, ok := findRow(dom, kind, name)
		switch {
		case !ok:
			return fmt.Sprintf("no %s row %q yet", kind, name)
		case r.count == 0 || r.count == notCount:
			return fmt.Sprintf("%s row %q has count %d (want a count above 0, other than %d)", kind, name, r.count, notCount)
		case !digitRe.MatchString(r.p50) || !digitRe.MatchString(r.p99) || !digitRe.MatchString(r.tput):
			return fmt.Sprintf("%s row %q lacks numbers: %+v", kind, name, r)
		}
		*got = r
		return ""
	}
}

// startMetricsUI starts bin/metrics_ui on free ports and returns its
// metrics address and the page's base URL.
func startMetricsUI(t *testing.T) (metricsAddr, base string) {
	t.Helper()
	chromiumBinary(t) // skip before starting anything
	metricsAddr, httpAddr := freePort(t), freePort(t)
	ui := start(t, testdataDir(), "metrics_ui", "--listen", metricsAddr, "--http", httpAddr)
	ui.waitOutput("Metrics UI: metrics on", 15*time.Second)
	return metricsAddr, "http://" + httpAddr
}

// The feeder speaks the hub protocol (runtime spec 5.2) to metrics_ui as a
// worker would. It encodes the messages itself, from the spec, rather than
// with internal/hubproto: the end-to-end tests are black-box.

// hubMessage returns one message: U32 size, U8 type, body.
func hubMessage(typ byte, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	return append(append(b, typ), body...)
}

func hubString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

// hubMetrics returns a Payload (type 3) with event "metrics" on topic
// carrying one record of values (ns) for the period ending at end.
func hubMetrics(topic, name, category, worker, pipeline string, end uint64, values []uint64) []byte {
	var counts [65]uint64
	lo, hi := uint64(math.MaxUint64), uint64(0)
	for _, v := range values {
		counts[bits.Len64(v)]++
		lo, hi = min(lo, v), max(hi, v)
	}
	rec := binary.BigEndian.AppendUint32(nil, uint32(18+len(name)+len(category)+len(worker)+len(pipeline)+704))
	for _, s := range []string{name, category, worker, pipeline} {
		rec = hubString(rec, s)
	}
	rec = binary.BigEndian.AppendUint16(rec, 0)
	for _, c := range counts {
		rec = binary.BigEndian.AppendUint64(rec, c)
	}
	for _, v := range []uint64{lo, hi, 2_000_000_000, end} {
		rec = binary.BigEndian.AppendUint64(rec, v)
	}
	body := hubString(hubString(nil, "metrics"), topic)
	body = binary.BigEndian.AppendUint32(body, uint32(len(rec)))
	return hubMessage(3, append(body, rec...))
}

type feeder struct {
	t     *testing.T
	conn  net.Conn
	topic string
}

func newFeeder(t *testing.T, addr, app, worker string) *feeder {
	c := dial(t, addr)
	t.Cleanup(func() { c.Close() })
	f := &feeder{t: t, conn: c, topic: "metrics:" + app}
	f.write(append(hubMessage(1, nil), hubMessage(2, hubString(hubString(nil, f.topic), worker))...))
	return f
}

func (f *feeder) write(b []byte) {
	f.t.Helper()
	if _, err := f.conn.Write(b); err != nil {
		f.t.Fatalf("feeding metrics_ui: %v", err)
	}
}

// period sends, for the last completed 2-s period, n values per record of
// the word count pipeline as one worker reports them (spec 5.3).
func (f *feeder) period(worker string, n int) {
	f.t.Helper()
	const pipeline = "Split and Count"
	const period = uint64(2 * time.Second)
	end := uint64(time.Now().UnixNano()) / period * period
	var b []byte
	for _, m := range []struct{ category, name string }{
		{"pipeline-ingestion", pipeline + " source"},
		{"computation", "Decode Time in TCP Source"},
		{"computation", "split into words"},
		{"computation", "count word"},
		{"start-to-end", pipeline},
		{"node-ingress-egress", worker},
	} {
		values := make([]uint64, n)
		if m.category != "pipeline-ingestion" { // ingestion records count 0s
			for i := range values {
				values[i] = uint64(rand.ExpFloat64() * 40_000) // about 40 µs
			}
		}
		b = append(b, hubMetrics(f.topic, m.name, m.category, worker, pipeline, end, values)...)
	}
	f.write(b)
}

// TestMetricsUI_HubFeeder feeds metrics_ui with hub-protocol records from
// the test and checks the landing page, the dashboard (numbers appear,
// then change after more data) and a detail view.
func TestMetricsUI_HubFeeder(t *testing.T) {
	metricsAddr, base := startMetricsUI(t)
	const app = "Word Count Application"
	f := newFeeder(t, metricsAddr, app, "worker1")
	f.period("worker1", 300)

	waitDOM(t, base+"/", 60*time.Second, func(dom string) string {
		if !strings.Contains(dom, `<tr class="app" data-name="`+app+`">`) || !strings.Contains(dom, "worker1") {
			return "the application and its worker are not listed"
		}
		return ""
	})

	dash := base + "/apps/" + url.PathEscape(app)
	var first uiRow
	waitDOM(t, dash, 60*time.Second, rowWithNumbers("pipelines", "Split and Count", 0, &first))
	t.Logf("pipeline line: count %d, p50 %s, p95 %s, p99 %s, throughput %s", first.count, first.p50, first.p95, first.p99, first.tput)
	for _, c := range []struct{ kind, name string }{{"workers", "worker1"}, {"computations", "split into words"}} {
		var r uiRow
		waitDOM(t, dash, 30*time.Second, rowWithNumbers(c.kind, c.name, 0, &r))
	}

	// More data: the numbers change.
	f.period("worker1", 500)
	var second uiRow
	waitDOM(t, dash, 60*time.Second, rowWithNumbers("pipelines", "Split and Count", first.count, &second))
	if second.count <= first.count {
		t.Errorf("pipeline count went from %d to %d after more data", first.count, second.count)
	}
	t.Logf("after more data: count %d, throughput %s", second.count, second.tput)
	screenshot(t, dash, "metrics-ui-dashboard")

	detail := dash + "/pipelines/" + url.PathEscape("Split and Count")
	waitDOM(t, detail, 60*time.Second, func(dom string) string {
		for _, want := range []string{"Percent by latency bin", "≤66 µs", "data-percent=", "p99.99", "by worker", "<canvas"} {
			if !strings.Contains(dom, want) {
				return "the detail view lacks " + want
			}
		}
		return ""
	})
	screenshot(t, detail, "metrics-ui-pipeline-detail")
}

// TestMetricsUI_WordCountWorker runs the word count example with
// --metrics pointing at metrics_ui and waits for its pipeline to appear
// with numbers, then to change after more input. It needs the worker's
// hub-protocol sender (runtime spec 5.1–5.3); until the worker sends
// metrics, it fails at the first wait.
func TestMetricsUI_WordCountWorker(t *testing.T) {
	metricsAddr, base := startMetricsUI(t)
	dir := exampleDir("word_count")
	in, out := freePort(t), freePort(t)
	recv := start(t, dir, "data_receiver", "--listen", out, "--ponythreads=1", "--ponynoblock", "--no-write")
	recv.waitOutput("Listening on", 10*time.Second)
	m := start(t, dir, "machida3", "--application-module", "word_count", "--in", in, "--out", out,
		"--metrics", metricsAddr, "--control", freePort(t), "--data", freePort(t),
		"--name", "worker1", "--external", freePort(t), "--cluster-initializer",
		"--ponythreads=1", "--ponynoblock")
	m.waitOutput("Application has successfully initialized", 30*time.Second)

	// Input keeps flowing for the whole test (a worker reports a period
	// only once it records a value after the period ended): the example's
	// lines, framed, a few every 100 ms on one connection.
	lines := readLines(t, filepath.Join(dir, "input.txt"))
	conn := dial(t, in)
	stopFeeding := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for i := 0; ; i++ {
			select {
			case <-stopFeeding:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write(frame([]byte(lines[i%len(lines)]))); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(stopFeeding); conn.Close(); <-fed })

	dash := base + "/apps/" + url.PathEscape("Word Count Application")
	var first uiRow
	if dom := waitDOMOrFail(t, dash, 90*time.Second, rowWithNumbers("pipelines", "Split and Count", 0, &first)); dom == "" {
		t.Fatalf("the pipeline \"Split and Count\" did not appear with numbers on %s within 90 s: does the worker send metrics to --metrics (runtime spec 5.1-5.3)?", dash)
	}
	t.Logf("pipeline line: count %d, p50 %s, p99 %s, throughput %s", first.count, first.p50, first.p99, first.tput)

	var second uiRow
	if dom := waitDOMOrFail(t, dash, 60*time.Second, rowWithNumbers("pipelines", "Split and Count", first.count, &second)); dom == "" {
		t.Fatalf("the pipeline's numbers did not change within 60 s of more input (count stays %d)", first.count)
	}
	t.Logf("after more input: count %d, throughput %s", second.count, second.tput)
	screenshot(t, dash, "metrics-ui-word-count")
}
