package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
)

// workloadSpec describes one benchmarked application.
type workloadSpec struct {
	name     string
	module   string
	dir      string // the example's directory, from the repository root
	sources  int
	unit     string // what one input message is
	calN     int    // messages of the calibration run of the ceiling
	minN     int
	generate func(w *workloadRun, n int) (*dataset, error)
	// latency: a fresh generator of id-carrying messages, and the parser
	// that finds the ids in the output stream.
	latGen    func(w *workloadRun) latGen
	latParser func(s *latSession) outputParser
	// countOutputs counts the outputs in a chunk of the output stream
	// (for the memory check's sustained rate).
	outputSep byte // '\n' for line outputs; 0 for fixed records
	recordLen int
}

func (s *workloadSpec) appDir(cfg *config) string { return filepath.Join(cfg.root, s.dir) }

var workloadSpecs = map[string]*workloadSpec{
	"word_count": {
		name: "word_count", module: "word_count", dir: "examples/python/word_count",
		sources: 1, unit: "line", calN: 4000, minN: 2000,
		generate: genWordCount, latGen: newWCLatGen, latParser: newWCParser,
		outputSep: '\n',
	},
	"market_spread": {
		name: "market_spread", module: "market_spread", dir: "examples/python/market_spread",
		sources: 2, unit: "message", calN: 60000, minN: 20000,
		generate: genMarketSpread, latGen: newMSLatGen, latParser: newMSParser,
		recordLen: msRecordLen,
	},
}

// workloadRun is the per-run state of a workload: its spec, inputs, work
// directory.
type workloadRun struct {
	spec  *workloadSpec
	cfg   *config
	dir   string
	lines []string // word count: the non-empty lines of count_this.txt
}

// dataset is one saturation input: the framed bytes for every source (and
// the files holding them, for the ceiling) and the output it must produce.
type dataset struct {
	inputs     [][]byte // framed messages, one buffer per source
	msgs       []int    // messages per source
	prime      []byte   // sent (untimed) before the run on source primeSrc
	primeSrc   int
	expOutputs int
	expBytes   int64
	expCRC     uint32 // CRC-32 of the whole output stream, when checkCRC
	// expLineSum is the sum of lineHash over the output lines (word
	// count): a check independent of their order, for a cluster, whose
	// workers' sink connections interleave in any order.
	expLineSum uint64
	checkCRC   bool
	// endProbe, when set, is sent repeatedly on source 0 after the input
	// until its output arrives, which marks the end of the run (market
	// spread: see msMarker).
	endProbe  []byte
	files     []string
	primeFile string
	note      string
}

func (d *dataset) messages() int {
	n := 0
	for _, m := range d.msgs {
		n += m
	}
	return n
}

func (d *dataset) write(dir, tag string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d.files = nil
	for i, b := range d.inputs {
		p := filepath.Join(dir, fmt.Sprintf("%s-in%d.frames", tag, i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		d.files = append(d.files, p)
	}
	if d.prime != nil {
		d.primeFile = filepath.Join(dir, tag+"-prime.frames")
		return os.WriteFile(d.primeFile, d.prime, 0o644)
	}
	return nil
}

func appendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// ---------------------------------------------------------------------------
// Word count: the lines of count_this.txt, repeated.

// wcPunctuation is word_count.py's PUNCTUATION.
const wcPunctuation = " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// wcWords is word_count.py's split() for ASCII text.
func wcWords(text string) []string {
	var words []string
	for _, line := range strings.Split(text, "\n") {
		for _, w := range strings.Split(strings.Trim(strings.ToLower(line), wcPunctuation), " ") {
			if w = strings.Trim(w, wcPunctuation); w != "" {
				words = append(words, w)
			}
		}
	}
	return words
}

func (w *workloadRun) loadLines() error {
	if w.lines != nil {
		return nil
	}
	b, err := os.ReadFile(w.cfg.countThis)
	if err != nil {
		return fmt.Errorf("word count input: %v (set BENCH_COUNT_THIS or -count-this)", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line != "" { // bin/sender's text mode skips empty lines
			w.lines = append(w.lines, line)
		}
	}
	if len(w.lines) == 0 {
		return fmt.Errorf("%s has no lines", w.cfg.countThis)
	}
	return nil
}

func genWordCount(w *workloadRun, n int) (*dataset, error) {
	if err := w.loadLines(); err != nil {
		return nil, err
	}
	words := make([][]string, len(w.lines))
	for i, l := range w.lines {
		words[i] = wcWords(l)
	}
	var in []byte
	counts := map[string]int{}
	crc := crc32.NewIEEE()
	var out []byte
	ds := &dataset{checkCRC: true, msgs: []int{n}}
	for i := 0; i < n; i++ {
		k := i % len(w.lines)
		in = appendFrame(in, []byte(w.lines[k]))
		for _, word := range words[k] {
			counts[word]++
			out = append(out[:0], word...)
			out = append(out, " => "...)
			out = strconv.AppendInt(out, int64(counts[word]), 10)
			out = append(out, '\n')
			crc.Write(out)
			ds.expLineSum += lineHash(out[:len(out)-1])
			ds.expOutputs++
			ds.expBytes += int64(len(out))
		}
	}
	ds.inputs = [][]byte{in}
	ds.expCRC = crc.Sum32()
	total := 0
	for _, ws := range words {
		total += len(ws)
	}
	ds.note = fmt.Sprintf("1 message = 1 non-empty line of count_this.txt (%d lines, %.1f words/line on average), repeated",
		len(w.lines), float64(total)/float64(len(w.lines)))
	return ds, nil
}

// lineHash is FNV-1a (64 bits) of one output line, without its newline.
func lineHash(line []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range line {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// Latency messages: a line of count_this.txt with one more word, the id
// "zq<slot>". Its output "zq<slot> => <count>" identifies the message:
// slots repeat every wcSlots messages so that the state stays small and
// stops growing after the warm-up, and the count says which round it was:
// id = (count-1)*wcSlots + slot.
const wcSlots = 100

type wcLatGen struct{ lines []string }

func newWCLatGen(w *workloadRun) latGen {
	if err := w.loadLines(); err != nil {
		panic(err)
	}
	return &wcLatGen{lines: w.lines}
}

func (g *wcLatGen) next(m int, bufs [][]byte) int {
	line := g.lines[m%len(g.lines)]
	b := bufs[0]
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = append(b, line...)
	b = append(b, " zq"...)
	b = strconv.AppendInt(b, int64(m%wcSlots), 10)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	bufs[0] = b
	return m
}

// wcParser looks for the "zq" lines in the output stream without
// splitting every line: it searches for "\nzq". pending holds the start of
// the line the previous chunk ended in (possibly empty).
type wcParser struct {
	s       *latSession
	partial []byte
}

func newWCParser(s *latSession) outputParser { return &wcParser{s: s} }

var nlZQ = []byte("\nzq")

func (p *wcParser) feed(data []byte, now int64) {
	// Complete the line the previous chunk ended in (the stream starts
	// with an empty one).
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		p.partial = append(p.partial, data...)
		return
	}
	p.partial = append(p.partial, data[:i]...)
	p.line(p.partial, now)
	data = data[i:] // starts with '\n'
	for {
		i := bytes.Index(data, nlZQ)
		if i < 0 {
			break
		}
		rest := data[i+1:]
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			p.partial = append(p.partial[:0], rest...)
			return
		}
		p.line(rest[:j], now)
		data = rest[j:]
	}
	k := bytes.LastIndexByte(data, '\n')
	p.partial = append(p.partial[:0], data[k+1:]...)
}

func (p *wcParser) line(l []byte, now int64) {
	if len(l) < 3 || l[0] != 'z' || l[1] != 'q' {
		return
	}
	sp := bytes.IndexByte(l, ' ')
	arrow := bytes.LastIndex(l, []byte("=> "))
	if sp < 0 || arrow < 0 {
		p.s.unknown.Add(1)
		return
	}
	slot, err1 := strconv.Atoi(string(l[2:sp]))
	count, err2 := strconv.Atoi(string(bytes.TrimRight(l[arrow+3:], "\r\n")))
	if err1 != nil || err2 != nil || count < 1 {
		p.s.unknown.Add(1)
		return
	}
	p.s.record((count-1)*wcSlots+slot, now)
}

// ---------------------------------------------------------------------------
// Market spread: our own orders and market data (NBBO), in the binary
// formats of examples/python/market_spread (see gen.py there).

const (
	msSymbols   = 1000 // odd symbol indices have wide spreads: their orders are rejected
	msRecordLen = 59   // u32 length 55 + the record
	// msMarker is the end-of-run marker symbol (never in the normal
	// traffic): primed with a narrow spread, it gets a wide one from the
	// last market data message of a saturation run. Probe orders on it,
	// sent after all the orders, produce an output only once that last
	// market data message was processed: the first probe output marks
	// the end of the run on both sources.
	msMarker = msSymbols
	// msProbeID is the order id of the probe orders.
	msProbeID = 1 << 47
)

// msSymbolNames are 4 capital letters, "AAAA", "AAAB", ...; the last one
// is msMarker's.
var msSymbolNames = func() [][]byte {
	names := make([][]byte, msSymbols+1)
	for i := range names {
		s := []byte("AAAA")
		for j, k := 3, i; j >= 0; j-- {
			s[j] = byte('A' + k%26)
			k /= 26
		}
		names[i] = s
	}
	return names
}()

func msSymbol(i int) []byte { return msSymbolNames[i] }

func msRejects(sym int) bool { return sym%2 == 1 }

// msTime is a 21-byte transact time, 20260125-HH:MM:SS.mmm, one
// millisecond per message from 10:00 (wrapping every hour).
func msTime(dst []byte, i int) []byte {
	ms, s, mi := i%1000, (i/1000)%60, (i/60000)%60
	return append(dst, '2', '0', '2', '6', '0', '1', '2', '5', '-', '1', '0', ':',
		byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}

// msNBBO appends a framed market data message: fix type 2, symbol,
// transact time, bid, offer. Accepted symbols get spreads of 1 to 4 cents
// on prices of 10 to 500, rejected ones a spread of 1.00.
func msNBBO(dst []byte, rng *rand.Rand, sym, i int) []byte {
	return msNBBOSpread(dst, rng, sym, i, msRejects(sym))
}

func msNBBOSpread(dst []byte, rng *rand.Rand, sym, i int, wide bool) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 42)
	dst = append(dst, 2)
	dst = append(dst, msSymbol(sym)...)
	dst = msTime(dst, i)
	bidCents := 1000 + rng.IntN(49000)
	spread := 1 + rng.IntN(4)
	if wide {
		spread = 100
	}
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(float64(bidCents)/100))
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(float64(bidCents+spread)/100))
}

// msOrder appends a framed order: fix type 1, side, account, order id (the
// id as a 48-bit big-endian number), symbol, quantity, price, transact time.
func msOrder(dst []byte, rng *rand.Rand, id uint64, sym, i int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 53)
	dst = append(dst, 1, byte(1+rng.IntN(2)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(rng.IntN(100000)))
	dst = append(dst, byte(id>>40), byte(id>>32), byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	dst = append(dst, msSymbol(sym)...)
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(float64(1+rng.IntN(1000))))
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(float64(1000+rng.IntN(49000))/100))
	return msTime(dst, i)
}

// msPrime is one market data message per symbol: sent before a run, so
// that every symbol's state is decided and the result of each order does
// not depend on how the two sources interleave.
func msPrime() []byte {
	rng := rand.New(rand.NewPCG(7, 7))
	var b []byte
	for s := 0; s < msSymbols; s++ {
		b = msNBBO(b, rng, s, s)
	}
	return msNBBOSpread(b, rng, msMarker, msSymbols, false)
}

func genMarketSpread(w *workloadRun, n int) (*dataset, error) {
	rng := rand.New(rand.NewPCG(5, uint64(n)))
	orders := n / 2
	nbbo := n - orders
	var ob, mb []byte
	ds := &dataset{msgs: []int{orders, nbbo}, prime: msPrime(), primeSrc: 1}
	for i := 0; i < orders; i++ {
		sym := rng.IntN(msSymbols)
		if i == orders-1 && !msRejects(sym) {
			sym = (sym + 1) % msSymbols // the last order has an output
		}
		if msRejects(sym) {
			ds.expOutputs++
		}
		ob = msOrder(ob, rng, uint64(i), sym, i)
	}
	for i := 0; i < nbbo-1; i++ {
		mb = msNBBO(mb, rng, rng.IntN(msSymbols), i)
	}
	mb = msNBBOSpread(mb, rng, msMarker, nbbo-1, true)
	ds.inputs = [][]byte{ob, mb}
	ds.endProbe = msOrder(nil, rng, msProbeID, msMarker, orders)
	ds.expBytes = int64(ds.expOutputs) * msRecordLen
	ds.note = fmt.Sprintf("1 message = 1 order (57 B) or 1 NBBO (46 B), half each, on two sources; %d symbols, half with wide spreads (their orders are rejected: 1 output each); primed with 1 NBBO per symbol", msSymbols)
	return ds, nil
}

// Latency messages alternate between orders (source 0) and market data
// (source 1); orders on rejected symbols come back with their id.
type msLatGen struct{ rng *rand.Rand }

func newMSLatGen(w *workloadRun) latGen { return &msLatGen{rng: rand.New(rand.NewPCG(11, 13))} }

func (g *msLatGen) next(m int, bufs [][]byte) int {
	sym := g.rng.IntN(msSymbols)
	if m%2 == 1 {
		bufs[1] = msNBBO(bufs[1], g.rng, sym, m)
		return -1
	}
	id := m / 2
	bufs[0] = msOrder(bufs[0], g.rng, uint64(id), sym, m)
	if msRejects(sym) {
		return id
	}
	return -1
}

// msRecords splits the output stream into result records and calls fn
// with the order id of each (-1 for a record without the 55 header).
type msRecords struct {
	partial []byte
	fn      func(id int64, now int64)
}

func (p *msRecords) feed(data []byte, now int64) {
	if len(p.partial) > 0 {
		need := msRecordLen - len(p.partial)
		if len(data) < need {
			p.partial = append(p.partial, data...)
			return
		}
		p.partial = append(p.partial, data[:need]...)
		p.record(p.partial, now)
		p.partial = p.partial[:0]
		data = data[need:]
	}
	for len(data) >= msRecordLen {
		p.record(data[:msRecordLen], now)
		data = data[msRecordLen:]
	}
	p.partial = append(p.partial, data...)
}

func (p *msRecords) record(r []byte, now int64) {
	if binary.BigEndian.Uint32(r) != 55 {
		p.fn(-1, now)
		return
	}
	var id int64
	for _, c := range r[9:15] {
		id = id<<8 | int64(c)
	}
	p.fn(id, now)
}

func newMSParser(s *latSession) outputParser {
	return &msRecords{fn: func(id, now int64) {
		if id < 0 {
			s.unknown.Add(1)
			return
		}
		s.record(int(id), now)
	}}
}

// msEnd watches a saturation run's output: it counts the results and
// notes when the first probe result arrived.
type msEnd struct {
	msRecords
	results atomic.Int64
	probes  atomic.Int64
	bad     atomic.Int64
	probeAt atomic.Int64
}

func newMSEnd() *msEnd {
	e := &msEnd{}
	e.fn = func(id, now int64) {
		switch {
		case id < 0:
			e.bad.Add(1)
		case id >= msProbeID:
			if e.probes.Add(1) == 1 {
				e.probeAt.Store(now)
			}
		default:
			e.results.Add(1)
		}
	}
	return e
}
