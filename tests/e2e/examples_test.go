package e2e

// End-to-end runs of the applications under examples/python: each test
// starts data_receiver, machida3 and sender as the example's README does
// and checks every output, exactly. Where the engine promises no order
// (parallel stateless steps, merged sources, different keys) outputs are
// compared as multisets; where it does (one key's messages from one
// source) the order within each key is checked too. The expected values
// are computed here, in Go, from the input files, and checked against the
// expected files the examples ship.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// --- alphabet ---------------------------------------------------------------

// alphabetRunningTotals reads a votes file (9-byte records: u32 length 5,
// letter, u32 votes) and returns, per letter, every running total the
// application must emit, in order.
func alphabetRunningTotals(t *testing.T, path string) (map[string][]string, int) {
	t.Helper()
	records := exFixedFrames(t, path, 9)
	totals := map[string]int{}
	want := map[string][]string{}
	for _, r := range records {
		letter := string(r[:1])
		totals[letter] += int(binary.BigEndian.Uint32(r[1:]))
		want[letter] = append(want[letter], fmt.Sprintf("%s => %d", letter, totals[letter]))
	}
	return want, len(records)
}

// byAlphabetLetter groups "letter => total" lines by letter, in order.
func byAlphabetLetter(t *testing.T, lines []string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, l := range lines {
		letter, _, ok := strings.Cut(l, " => ")
		if !ok {
			t.Fatalf("malformed output line %q", l)
		}
		got[letter] = append(got[letter], l)
	}
	return got
}

func TestExample_Alphabet(t *testing.T) {
	dir := exampleDir("alphabet")
	own := filepath.Join(dir, "votes.msg")

	// The shipped expected.json holds the final totals of votes.msg.
	want, _ := alphabetRunningTotals(t, own)
	var expected map[string]int
	if err := json.Unmarshal(exReadFile(t, filepath.Join(dir, "expected.json")), &expected); err != nil {
		t.Fatal(err)
	}
	final := map[string]int{}
	for letter, seq := range want {
		_, n, _ := strings.Cut(seq[len(seq)-1], " => ")
		final[letter], _ = strconv.Atoi(n)
	}
	if fmt.Sprint(final) != fmt.Sprint(expected) {
		t.Errorf("expected.json = %v, but votes.msg adds up to %v", expected, final)
	}

	for _, tc := range []struct{ name, file string }{
		{"votes.msg", own},
		{"alphabet_votes.msg", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = sharedData(t, "alphabet_votes.msg")
			}
			want, n := alphabetRunningTotals(t, file)
			recv := exStartReceiver(t, dir)
			in := freePort(t)
			m := exStartWorker(t, dir, "alphabet", in, recv.addr)
			exSend(t, dir, in, n, "--file", file, "--batch-size", "50",
				"--interval", "1_000_000", "--binary", "--msg-size", "9")
			lines := recv.waitLines(t, n, 60*time.Second)
			// Votes for one letter come from one connection: every running
			// total of every letter, in order, and nothing else.
			exSameSequences(t, "running totals", byAlphabetLetter(t, lines), want)
			if tc.file != "" {
				exValidate(t, dir, []byte(recv.stdout.String()), "--expected", "expected.json", "--output", "{}")
			}
			exStop(t, m)
		})
	}
}

// --- reverse ----------------------------------------------------------------

func reverseRunes(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func TestExample_Reverse(t *testing.T) {
	dir := exampleDir("reverse")
	own := filepath.Join(dir, "input.txt")
	var want []string
	for _, l := range readLines(t, own) {
		want = append(want, reverseRunes(l))
	}
	if got := exTextLines(string(exReadFile(t, filepath.Join(dir, "expected.txt")))); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("expected.txt is not input.txt reversed line by line:\n%q\nwant\n%q", got, want)
	}

	for _, tc := range []struct{ name, file string }{
		{"input.txt", own},
		{"count_this.txt", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = sharedData(t, "count_this.txt")
			}
			var want []string
			for _, l := range readLines(t, file) {
				if !utf8.ValidString(l) {
					t.Fatalf("%s is not UTF-8", file)
				}
				want = append(want, reverseRunes(l))
			}
			recv := exStartReceiver(t, dir)
			in := freePort(t)
			m := exStartWorker(t, dir, "reverse", in, recv.addr)
			exSend(t, dir, in, len(want), "--file", file, "--batch-size", "5", "--interval", "1_000_000")
			lines := recv.waitLines(t, len(want), 60*time.Second)
			exSameMultiset(t, "reversed lines", lines, want)
			if tc.file != "" {
				exValidate(t, dir, []byte(recv.stdout.String()), "--expected", "expected.txt", "--output", "{}")
			}
			exStop(t, m)
		})
	}
}

// --- celsius ----------------------------------------------------------------

// celsiusExpected converts every 8-byte record (u32 length 4, f32 BE) of a
// file as celsius.py does: the float32 widened to a double, times 1.8,
// plus 32, printed with "%.6f".
func celsiusExpected(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, r := range exFixedFrames(t, path, 8) {
		c := float64(math.Float32frombits(binary.BigEndian.Uint32(r)))
		// float64(...) forces the product to be rounded on its own, as
		// Python rounds it, rather than fused with the addition.
		f := float64(c*1.8) + 32
		out = append(out, fmt.Sprintf("%.6f", f))
	}
	return out
}

func TestExample_Celsius(t *testing.T) {
	dir := exampleDir("celsius")
	own := filepath.Join(dir, "temperatures.msg")
	want := celsiusExpected(t, own)
	if got := exTextLines(string(exReadFile(t, filepath.Join(dir, "expected.txt")))); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("expected.txt does not hold the conversions of temperatures.msg")
	}
	if want[0] != "-459.669989" || want[1] != "-40.000000" || want[6] != "212.000000" {
		t.Errorf("first conversions %q: want -459.669989, -40.000000 ... 212.000000", want[:7])
	}

	for _, tc := range []struct{ name, file string }{
		{"temperatures.msg", own},
		{"celsius.msg", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = sharedData(t, "celsius.msg")
			}
			want := celsiusExpected(t, file)
			recv := exStartReceiver(t, dir)
			in := freePort(t)
			m := exStartWorker(t, dir, "celsius", in, recv.addr)
			exSend(t, dir, in, len(want), "--file", file, "--batch-size", "100",
				"--interval", "1_000_000", "--binary", "--msg-size", "8")
			lines := recv.waitLines(t, len(want), 60*time.Second)
			exSameMultiset(t, "Fahrenheit values", lines, want)
			if tc.file != "" {
				exValidate(t, dir, []byte(recv.stdout.String()), "--expected", "expected.txt", "--output", "{}")
			}
			exStop(t, m)
		})
	}
}

// --- market_spread ------------------------------------------------------------

// marketSpreadExpected recomputes, from the market data and order files,
// the output record (without its 8-byte timestamp) of every order the
// application must reject: with all market data processed first, an order
// is rejected when the last NBBO of its symbol had a spread >= 0.05 or
// >= 5% of the mid price, or when there was no NBBO for it at all.
func marketSpreadExpected(t *testing.T, marketFile, ordersFile string) [][]byte {
	t.Helper()
	type nbbo struct {
		bid, offer float64
		reject     bool
	}
	last := map[string]nbbo{}
	for _, p := range exFixedFrames(t, marketFile, 46) {
		if p[0] != 2 {
			t.Fatalf("%s: fix type %d, want 2", marketFile, p[0])
		}
		symbol := string(p[1:5])
		bid := math.Float64frombits(binary.BigEndian.Uint64(p[26:]))
		offer := math.Float64frombits(binary.BigEndian.Uint64(p[34:]))
		spread, mid := offer-bid, (bid+offer)/2
		last[symbol] = nbbo{bid, offer, spread >= 0.05 || mid <= 0 || spread/mid >= 0.05}
	}
	var out [][]byte
	for _, p := range exFixedFrames(t, ordersFile, 57) {
		if p[0] != 1 {
			t.Fatalf("%s: fix type %d, want 1", ordersFile, p[0])
		}
		symbol := string(p[12:16])
		n, ok := last[symbol]
		if !ok {
			n = nbbo{0, 0, true}
		}
		if !n.reject {
			continue
		}
		// side u8, account u32, order id 6, symbol 4, qty f64, price f64
		// are bytes 1..32 of the order, then bid and offer.
		rec := append([]byte(nil), p[1:32]...)
		rec = binary.BigEndian.AppendUint64(rec, math.Float64bits(n.bid))
		rec = binary.BigEndian.AppendUint64(rec, math.Float64bits(n.offer))
		out = append(out, rec)
	}
	return out
}

// marketSpreadRun runs the example: market data first, then the orders
// (one sender after the other, as Wallaroo's own test does), with the
// receiver in framed mode or, as in the README, streaming mode.
func marketSpreadRun(t *testing.T, framed bool) {
	dir := exampleDir("market_spread")
	market, orders := filepath.Join(dir, "market.msg"), filepath.Join(dir, "orders.msg")
	want := marketSpreadExpected(t, market, orders)
	var wantHex []string
	for _, r := range want {
		wantHex = append(wantHex, fmt.Sprintf("%x", r))
	}

	var recv *exReceiver
	if framed {
		recv = exStartReceiver(t, dir, "--framed")
	} else {
		recv = exStartReceiver(t, dir)
	}
	ordersIn, marketIn := freePort(t), freePort(t)
	m, ext := exStartWorkerExternal(t, dir, "market_spread", ordersIn+","+marketIn, recv.addr)
	before := time.Now()
	// Market data and orders come through different sources, which the
	// engine does not order: the orders go in once all the market data has
	// reached the state. The market data is sent with one more message at
	// its end, for a symbol no order names (it changes no result): one
	// source's messages are processed in order, so once that symbol's
	// state exists (the external channel's state-entity-query lists its
	// key) every market data message before it has been processed.
	const doneSymbol = "DONE"
	marketAndDone := filepath.Join(t.TempDir(), "market-and-done.msg")
	last := exReadFile(t, market)
	last = last[len(last)-46:] // fix type, symbol, transact time, bid, offer
	done := append([]byte(nil), last[:5]...)
	done = append(done, doneSymbol...)
	done = append(done, last[9:]...)
	if err := os.WriteFile(marketAndDone, append(exReadFile(t, market), done...), 0o644); err != nil {
		t.Fatal(err)
	}
	exSend(t, dir, marketIn, 401, "--file", marketAndDone, "--batch-size", "50",
		"--interval", "1_000_000", "--binary", "--msg-size", "46")
	for deadline := time.Now().Add(60 * time.Second); ; {
		var ents map[string][]string
		query(t, ext, "state-entity-query", &ents)
		seen := false
		for _, keys := range ents {
			seen = seen || slices.Contains(keys, doneSymbol)
		}
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the market data's last symbol %q has no state 60 s after it was sent: %v", doneSymbol, ents)
		}
		time.Sleep(50 * time.Millisecond)
	}
	exSend(t, dir, ordersIn, 400, "--file", orders, "--batch-size", "50",
		"--interval", "1_000_000", "--binary", "--msg-size", "57")

	// records parses what the receiver wrote: framed mode writes each
	// 55-byte payload and "\n"; streaming mode the frames as they came.
	records := func() ([][]byte, error) {
		out := []byte(recv.stdout.String())
		var recs [][]byte
		for len(out) > 0 {
			if framed {
				if len(out) < 56 {
					break
				}
				if out[55] != '\n' {
					return nil, fmt.Errorf("framed output record not 55 bytes + newline: %q", out[:56])
				}
				recs = append(recs, out[:55])
				out = out[56:]
				continue
			}
			if len(out) < 59 {
				break
			}
			if n := binary.BigEndian.Uint32(out); n != 55 {
				return nil, fmt.Errorf("output frame of %d bytes, want 55", n)
			}
			recs = append(recs, out[4:59])
			out = out[59:]
		}
		return recs, nil
	}
	var got [][]byte
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if got, err = records(); err != nil {
			t.Fatal(err)
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := time.Now()
	if len(got) < len(want) {
		bytesSeen := len(recv.stdout.String())
		exStopAll(t, m, recv)
		all, _ := records()
		t.Fatalf("data_receiver wrote %d of the %d result records (%d bytes) within 60 s while the worker ran;"+
			" after the worker stopped (closing its sink connection) it had written %d records"+
			" (streaming mode holds back the bytes after the last 0x0a byte of a connection)",
			len(got), len(want), bytesSeen, len(all))
	}
	var gotHex []string
	for _, r := range got {
		gotHex = append(gotHex, fmt.Sprintf("%x", r[:47]))
		ts := binary.BigEndian.Uint64(r[47:])
		lo, hi := uint64(before.UnixNano()/10_000)-100, uint64(after.UnixNano()/10_000)+100
		if ts < lo || ts > hi {
			t.Errorf("timestamp %d is not int(time.time()*100000) during the run (%d..%d)", ts, lo, hi)
			break
		}
	}
	exSameMultiset(t, "order results without timestamps", gotHex, wantHex)
	if !framed {
		exValidate(t, dir, []byte(recv.stdout.String()), "--expected", "expected.msg", "--output", "{}")
	}
	exStop(t, m)
}

func TestExample_MarketSpread(t *testing.T) {
	dir := exampleDir("market_spread")
	want := marketSpreadExpected(t, filepath.Join(dir, "market.msg"), filepath.Join(dir, "orders.msg"))
	// The shipped expected.msg: the same records with a zero timestamp.
	var shipped [][]byte
	for _, f := range exFrames(t, filepath.Join(dir, "expected.msg")) {
		if len(f) != 55 || !bytes.Equal(f[47:], make([]byte, 8)) {
			t.Fatalf("expected.msg: record %x is not 55 bytes ending in a zero timestamp", f)
		}
		shipped = append(shipped, f[:47])
	}
	if len(want) != 200 || fmt.Sprint(shipped) != fmt.Sprint(want) {
		t.Errorf("expected.msg holds %d records, the input files give %d (want 200, the same)", len(shipped), len(want))
	}
	t.Run("framed receiver", func(t *testing.T) { marketSpreadRun(t, true) })
	// As in the README: data_receiver without --framed copies the bytes
	// unchanged (runtime spec 6.2), so the records must reach its output
	// while the worker runs, not only once the worker closes its sink.
	t.Run("streaming receiver", func(t *testing.T) { marketSpreadRun(t, false) })
}

// --- alerts -------------------------------------------------------------------

var alertLine = regexp.MustCompile(`^(Deposit|Withdrawal) Alert for (.+): (-?\d+)$`)

// receiveAlerts runs an alerts example until the receiver got n lines
// (data_receiver --expect n stops there) and returns them.
func receiveAlerts(t *testing.T, example string, n int) []string {
	t.Helper()
	dir := exampleDir(example)
	recv := exStartReceiver(t, dir, "--expect", strconv.Itoa(n), "--timeout", "60s")
	exStartWorker(t, dir, "alerts", "", recv.addr)
	if code := recv.wait(70 * time.Second); code != 0 {
		t.Fatalf("data_receiver --expect %d exited %d: %s", n, code, recv.stderr.String())
	}
	lines := recv.lines()
	if len(lines) != n {
		t.Fatalf("data_receiver --expect %d wrote %d lines", n, len(lines))
	}
	for _, l := range lines {
		if !alertLine.MatchString(l) {
			t.Fatalf("malformed alert %q", l)
		}
	}
	// The generator never ends; the worker is killed at cleanup.
	return lines
}

// statelessAlerts returns the alerts of alerts_stateless for transactions
// 0..last, in generation order.
func statelessAlerts(last int) []string {
	var out []string
	amount := int64(1)
	for id := 0; id <= last; id++ {
		switch {
		case amount > 1000:
			out = append(out, fmt.Sprintf("Deposit Alert for %d: %d", id, amount))
		case amount < -1000:
			out = append(out, fmt.Sprintf("Withdrawal Alert for %d: %d", id, amount))
		}
		amount = exNextAmount(amount)
	}
	return out
}

func TestExample_AlertsStateless(t *testing.T) {
	first := statelessAlerts(20)
	if strings.Join(first[:3], "|") != "Deposit Alert for 3: 1072|Withdrawal Alert for 10: -1179|Withdrawal Alert for 15: -1144" {
		t.Fatalf("reference recurrence gives %q", first[:3])
	}
	const n = 1000
	lines := receiveAlerts(t, "alerts_stateless", n)
	maxID := 0
	for _, l := range lines {
		id, _ := strconv.Atoi(alertLine.FindStringSubmatch(l)[2])
		maxID = max(maxID, id)
	}
	want := statelessAlerts(maxID)
	index := map[string]int{}
	for i, a := range want {
		index[a] = i
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if _, ok := index[l]; !ok {
			t.Fatalf("%q is not an alert of the transaction stream", l)
		}
		if seen[l] {
			t.Fatalf("alert %q received twice", l)
		}
		seen[l] = true
	}
	// Parallel stateless steps may reorder a little, but none of the
	// first half of the alerts can be missing from the first n received.
	for _, a := range want[:n/2] {
		if !seen[a] {
			t.Errorf("alert %q (one of the first %d) is missing from the first %d received", a, n/2, n)
			break
		}
	}
	if strings.Join(lines[:3], "|") != strings.Join(first[:3], "|") {
		t.Logf("note: first alerts received %q (order across parallel steps is not promised)", lines[:3])
	}
}

// statefulAlerts returns the alerts of alerts_stateful, per user in
// order, for the first count transactions.
func statefulAlerts(count int) (map[string][]string, []string) {
	users := []string{"Fido", "Rex", "Dr. Whiskers", "Feathers", "Mountaineer"}
	genTotal := map[string]int64{}   // the generator's own bookkeeping
	stateTotal := map[string]int64{} // TransactionTotal per user
	perUser := map[string][]string{}
	var all []string
	amount := int64(1)
	for i := 0; i < count; i++ {
		user := users[i%len(users)]
		if i > 0 {
			switch {
			case genTotal[user] > 5000:
				amount = -6000
			case genTotal[user] < -5000:
				amount = 6000
			default:
				amount = exNextAmount(amount)
			}
		}
		genTotal[user] += amount
		stateTotal[user] += amount
		var alert string
		switch total := stateTotal[user]; {
		case total > 2000:
			alert = fmt.Sprintf("Deposit Alert for %s: %d", user, total)
		case total < -2000:
			alert = fmt.Sprintf("Withdrawal Alert for %s: %d", user, total)
		default:
			continue
		}
		perUser[user] = append(perUser[user], alert)
		all = append(all, alert)
	}
	return perUser, all
}

func TestExample_AlertsStateful(t *testing.T) {
	_, first := statefulAlerts(100)
	if strings.Join(first[:3], "|") != "Withdrawal Alert for Fido: -2286|Withdrawal Alert for Mountaineer: -2374|Withdrawal Alert for Fido: -2145" {
		t.Fatalf("reference generator gives %q", first[:3])
	}
	const n = 1000
	lines := receiveAlerts(t, "alerts_stateful", n)
	want, _ := statefulAlerts(20 * n) // far more alerts than n
	got := map[string][]string{}
	for _, l := range lines {
		user := alertLine.FindStringSubmatch(l)[2]
		got[user] = append(got[user], l)
	}
	// Each user's alerts come from one state, in generation order: what
	// arrived must be the beginning of the user's alerts.
	prefixes := map[string][]string{}
	for user, alerts := range want {
		prefixes[user] = alerts[:min(len(alerts), len(got[user]))]
	}
	exSameSequences(t, "alerts per user", got, prefixes)
	if len(got["Fido"]) < 2 || len(got["Mountaineer"]) < 1 {
		t.Errorf("got %d alerts for Fido and %d for Mountaineer among the first %d", len(got["Fido"]), len(got["Mountaineer"]), n)
	}
}

// --- sequence_window ----------------------------------------------------------

// sequenceWindows returns, per parity ("0", "1"), the windows the
// application emits for the numbers 1..n, in order.
func sequenceWindows(n int) map[string][]string {
	windows := map[int][]uint64{0: {0, 0, 0, 0}, 1: {0, 0, 0, 0}}
	out := map[string][]string{}
	for v := uint64(1); v <= uint64(n); v++ {
		p := int(v % 2)
		windows[p] = append(windows[p][1:4:4], v)
		parts := make([]string, 4)
		for i, x := range windows[p] {
			parts[i] = strconv.FormatUint(x, 10)
		}
		out[strconv.Itoa(p)] = append(out[strconv.Itoa(p)], "["+strings.Join(parts, ",")+"]")
	}
	return out
}

// byWindowParity groups "[a,b,c,d]" lines by the parity of d, in order.
func byWindowParity(t *testing.T, lines []string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, l := range lines {
		i := strings.LastIndexByte(l, ',')
		if !strings.HasPrefix(l, "[") || !strings.HasSuffix(l, "]") || i < 0 || strings.Count(l, ",") != 3 {
			t.Fatalf("malformed window %q", l)
		}
		last, err := strconv.ParseUint(l[i+1:len(l)-1], 10, 64)
		if err != nil {
			t.Fatalf("malformed window %q", l)
		}
		p := strconv.FormatUint(last%2, 10)
		got[p] = append(got[p], l)
	}
	return got
}

func TestExample_SequenceWindow(t *testing.T) {
	dir := exampleDir("sequence_window")
	numbers := exFixedFrames(t, filepath.Join(dir, "numbers.msg"), 12)
	for i, r := range numbers {
		if v := binary.BigEndian.Uint64(r); v != uint64(i+1) {
			t.Fatalf("numbers.msg: record %d holds %d, want %d", i+1, v, i+1)
		}
	}
	want := sequenceWindows(2000)
	shipped := exTextLines(string(exReadFile(t, filepath.Join(dir, "expected.txt"))))
	first := sequenceWindows(1000)
	if strings.Join(shipped, "\n") != strings.Join(append(first["1"], first["0"]...), "\n") {
		t.Errorf("expected.txt does not hold the odd, then the even windows of 1..1000")
	}

	recv := exStartReceiver(t, dir, "--framed")
	in := freePort(t)
	m := exStartWorker(t, dir, "sequence_window", in, recv.addr)

	// 1..1000 from the example's file.
	exSend(t, dir, in, 1000, "--file", filepath.Join(dir, "numbers.msg"), "--batch-size", "50",
		"--interval", "1_000_000", "--binary", "--msg-size", "12")
	lines := recv.waitLines(t, 1000, 60*time.Second)
	exSameSequences(t, "windows of 1..1000", byWindowParity(t, lines), first)
	exValidate(t, dir, []byte(recv.stdout.String()), "--expected", "expected.txt", "--output", "{}")

	// 1001..2000 generated by the sender (--u64): the windows go on.
	exSend(t, dir, in, 1000, "--u64", "--start-from", "1000", "--batch-size", "50",
		"--interval", "1_000_000", "--binary", "--msg-size", "12")
	recv.waitLines(t, 2000, 60*time.Second)
	// Stop the worker and the receiver once it has read everything: what
	// it wrote is then all the worker sent, to count exactly.
	exStopAll(t, m, recv)
	if lines = recv.lines(); len(lines) != 2000 {
		t.Errorf("got %d windows for 2000 numbers", len(lines))
	}
	exSameSequences(t, "windows of 1..2000", byWindowParity(t, lines), want)
}

// --- multi_sink -----------------------------------------------------------------

func TestExample_MultiSink(t *testing.T) {
	dir := exampleDir("multi_sink")
	var want []string
	for _, l := range readLines(t, filepath.Join(dir, "input.txt")) {
		want = append(want, strings.ToUpper(l)+"!")
	}
	if got := exTextLines(string(exReadFile(t, filepath.Join(dir, "expected.txt")))); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("expected.txt is not input.txt shouted line by line")
	}
	r1, r2 := exStartReceiver(t, dir), exStartReceiver(t, dir)
	in := freePort(t)
	m := exStartWorker(t, dir, "multi_sink", in, r1.addr+","+r2.addr)
	exSend(t, dir, in, len(want), "--file", filepath.Join(dir, "input.txt"),
		"--batch-size", "5", "--interval", "1_000_000")
	for _, r := range []*exReceiver{r1, r2} {
		r.waitLines(t, len(want), 60*time.Second)
	}
	// Stop the worker and the receivers once they have read everything:
	// what they wrote is then all the worker sent, to count exactly.
	exStopAll(t, m, r1, r2)
	for i, r := range []*exReceiver{r1, r2} {
		exSameMultiset(t, fmt.Sprintf("sink %d (%s)", i+1, r.addr), r.lines(), want)
	}
	exValidate(t, dir, []byte(r1.stdout.String()), "--expected", "expected.txt", "--output", "{}")
}

// --- multi_pipeline -------------------------------------------------------------

// account is one account of multi_pipeline: its entries and its balance.
type account struct{ Entries, Balance int }

// checkAccounts checks multi_pipeline's output lines "<name> => <balance>
// after entry <n>": one line per entry, each account's entries in order
// (its lines come from its one state), and the last line of each account
// showing want.
func checkAccounts(t *testing.T, lines []string, entries int, want map[string]account) {
	t.Helper()
	if len(lines) != entries {
		t.Errorf("got %d lines, want one per entry: %d", len(lines), entries)
	}
	line := regexp.MustCompile(`^(\S+) => (-?\d+) after entry (\d+)$`)
	got := map[string]account{}
	for _, l := range lines {
		f := line.FindStringSubmatch(l)
		if f == nil {
			t.Fatalf("malformed line %q", l)
		}
		balance, _ := strconv.Atoi(f[2])
		n, _ := strconv.Atoi(f[3])
		if prev := got[f[1]]; n != prev.Entries+1 {
			t.Errorf("%s: entry %d arrived after entry %d", f[1], n, prev.Entries)
		}
		got[f[1]] = account{n, balance}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if got[name] != want[name] {
			t.Errorf("%s: last line shows %+v, want %+v", name, got[name], want[name])
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d accounts, want %d", len(got), len(want))
	}
}

// sendAccounts sends multi_pipeline's deposits and withdrawals to their
// two sources at once (their messages interleave in the merge) and waits
// for both senders.
func sendAccounts(t *testing.T, dir, deposits, withdrawals string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, s := range []struct{ addr, file string }{{deposits, "deposits.txt"}, {withdrawals, "withdrawals.txt"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			exSend(t, dir, s.addr, 100, "--file", s.file, "--batch-size", "10", "--interval", "1_000_000")
		}()
	}
	wg.Wait()
}

func TestExample_MultiPipeline(t *testing.T) {
	dir := exampleDir("multi_pipeline")
	want := map[string]account{}
	entries := 0
	for _, src := range []struct {
		file string
		sign int
	}{{"deposits.txt", 1}, {"withdrawals.txt", -1}} {
		lines := readLines(t, filepath.Join(dir, src.file))
		if len(lines) != 100 {
			t.Fatalf("%s has %d lines, want 100", src.file, len(lines))
		}
		for _, l := range lines {
			var name string
			var amount int
			if _, err := fmt.Sscanf(l, "%s %d", &name, &amount); err != nil {
				t.Fatalf("%s: %q: %v", src.file, l, err)
			}
			a := want[name]
			a.Entries++
			a.Balance += src.sign * amount
			want[name] = a
			entries++
		}
	}
	var shipped map[string]account
	if err := json.Unmarshal(exReadFile(t, filepath.Join(dir, "expected.json")), &shipped); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(shipped) != fmt.Sprint(want) {
		t.Errorf("expected.json = %v, the input files give %v", shipped, want)
	}

	recv := exStartReceiver(t, dir)
	deposits, withdrawals := freePort(t), freePort(t)
	m := exStartWorker(t, dir, "multi_pipeline", deposits+","+withdrawals, recv.addr)
	// Both sources at once: their messages interleave in the merge.
	sendAccounts(t, dir, deposits, withdrawals)
	recv.waitLines(t, entries, 60*time.Second)
	// Stop the worker and the receiver once it has read everything: what
	// it wrote is then all the worker sent, to count exactly.
	exStopAll(t, m, recv)
	checkAccounts(t, recv.lines(), entries, want)
	exValidate(t, dir, []byte(recv.stdout.String()), "--expected", "expected.json", "--output", "{}")
}

// --- generators -----------------------------------------------------------------

// The shipped input and expected files are what the generators write, on
// Python 3 and, when it is installed, on Python 2.7.
func TestExample_GeneratorsReproduceShippedFiles(t *testing.T) {
	pythons := []string{exPython(t)}
	for _, p := range []string{os.Getenv("PYTHON2"), "python2.7"} {
		if p == "" {
			continue
		}
		if out, err := execOutput(p, "-c", "import sys; print(sys.version_info[0])"); err == nil && strings.TrimSpace(out) == "2" {
			pythons = append(pythons, p)
			break
		}
	}
	gens := []struct {
		example string
		files   map[string]string // gen.py option -> shipped file
	}{
		{"alphabet", map[string]string{"--messages-file": "votes.msg", "--expected-file": "expected.json"}},
		{"celsius", map[string]string{"--messages-file": "temperatures.msg", "--expected-file": "expected.txt"}},
		{"market_spread", map[string]string{"--market-file": "market.msg", "--orders-file": "orders.msg", "--expected-file": "expected.msg"}},
		{"sequence_window", map[string]string{"--messages-file": "numbers.msg", "--expected-file": "expected.txt"}},
		{"multi_pipeline", map[string]string{"--deposits-file": "deposits.txt", "--withdrawals-file": "withdrawals.txt", "--expected-file": "expected.json"}},
	}
	for _, py := range pythons {
		for _, g := range gens {
			dir := exampleDir(g.example)
			var args []string
			for opt, name := range g.files {
				args = append(args, opt, filepath.Join("{}", name))
			}
			tmp := exGenerate(t, py, dir, args...)
			t.Logf("%s: %s gen.py", g.example, py)
			for _, name := range g.files {
				got := exReadFile(t, filepath.Join(tmp, name))
				want := exReadFile(t, filepath.Join(dir, name))
				if !bytes.Equal(got, want) {
					t.Errorf("%s: %s gen.py writes a %s of %d bytes that differs from the shipped one (%d bytes)",
						g.example, py, name, len(got), len(want))
				}
				if len(want) > 100_000 {
					t.Errorf("%s/%s is %d bytes; keep example data under 100 KB", g.example, name, len(want))
				}
			}
		}
	}
}
