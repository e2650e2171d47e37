package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestWCWords_MatchesWordCountSplit(t *testing.T) {
	// word_count.py: split("Hello,  World! it's--fine.") == ["hello", "world", "it's--fine"]
	got := wcWords("Hello,  World! it's--fine.")
	want := []string{"hello", "world", "it's--fine"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// feedInPieces feeds stream to p in chunks of random sizes.
func feedInPieces(p outputParser, stream []byte, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for len(stream) > 0 {
		n := min(len(stream), 1+rng.IntN(40))
		p.feed(stream[:n], 1000)
		stream = stream[n:]
	}
}

func TestWCParser_FindsEveryIDAcrossChunks(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		s := newLatSession(1000)
		var stream []byte
		const ids = 300
		for id := 0; id < ids; id++ {
			s.sendNs[id].Store(1)
			stream = append(stream, "the => 7\nzqx => 1\nwq => 2\n"...)
			stream = fmt.Appendf(stream, "zq%d => %d\n", id%wcSlots, id/wcSlots+1)
		}
		feedInPieces(newWCParser(s), stream, seed)
		if s.matched.Load() != ids || s.dup.Load() != 0 {
			t.Fatalf("seed %d: matched %d, dup %d, unknown %d", seed, s.matched.Load(), s.dup.Load(), s.unknown.Load())
		}
	}
}

func TestMSParsers(t *testing.T) {
	var stream []byte
	for id := 0; id < 200; id++ {
		r := make([]byte, msRecordLen)
		binary.BigEndian.PutUint32(r, 55)
		v := uint64(id)
		if id == 199 {
			v = msProbeID
		}
		for k := 0; k < 6; k++ {
			r[9+k] = byte(v >> (40 - 8*k))
		}
		stream = append(stream, r...)
	}
	s := newLatSession(1000)
	for id := 0; id < 199; id++ {
		s.sendNs[id].Store(1)
	}
	feedInPieces(newMSParser(s), stream, 3)
	if s.matched.Load() != 199 || s.unknown.Load() != 1 {
		t.Fatalf("matched %d unknown %d", s.matched.Load(), s.unknown.Load())
	}
	e := newMSEnd()
	feedInPieces(e, stream, 4)
	if e.results.Load() != 199 || e.probes.Load() != 1 || e.bad.Load() != 0 || e.probeAt.Load() == 0 {
		t.Fatalf("results %d probes %d bad %d", e.results.Load(), e.probes.Load(), e.bad.Load())
	}
}

func TestMarketSpread_Frames(t *testing.T) {
	ds, err := genMarketSpread(nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for src, size := range []int{57, 46} {
		b := ds.inputs[src]
		if len(b) != ds.msgs[src]*size {
			t.Fatalf("source %d: %d bytes for %d messages of %d", src, len(b), ds.msgs[src], size)
		}
		for i := 0; i < len(b); i += size {
			if binary.BigEndian.Uint32(b[i:]) != uint32(size-4) {
				t.Fatalf("source %d: bad frame header at %d", src, i)
			}
		}
	}
	if len(ds.endProbe) != 57 || len(ds.prime) != (msSymbols+1)*46 {
		t.Fatalf("probe %d bytes, prime %d bytes", len(ds.endProbe), len(ds.prime))
	}
}

func TestWindowStats(t *testing.T) {
	var lat []int64
	for i := 1; i <= 1000; i++ {
		lat = append(lat, int64(i)*1000)
	}
	w := windowStats(lat)
	if w.P50us != 500 || w.P99us != 990 || w.P999us != 999 || w.MaxUs != 1000 {
		t.Fatalf("%+v", w)
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 2, 3}) != 2.5 {
		t.Fatal("median")
	}
}

func TestMemorySlope(t *testing.T) {
	m := memResult{RSSKB: []int64{1000, 1010, 1020, 1030}}
	m.summarize()
	if m.SlopeKBPerMin != 600 || m.GrowthKB != 30 || !m.Flat || m.StartKB != 1000 || m.EndKB != 1030 {
		t.Fatalf("%+v", m)
	}
	// A dip does not move the robust slope.
	m = memResult{RSSKB: []int64{90000, 90000, 80000, 90000, 90000, 90000, 90000, 90000}}
	m.summarize()
	if m.SlopeKBPerMin != 0 || !m.Flat {
		t.Fatalf("%+v", m)
	}
	m = memResult{RSSKB: []int64{90000, 91000, 92000, 93000, 94000, 95000, 96000, 97000}}
	m.summarize()
	if m.Flat {
		t.Fatalf("growing RSS reported flat: %+v", m)
	}
}
