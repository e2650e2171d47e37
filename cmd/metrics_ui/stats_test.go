package main

import (
	"math"
	"testing"

	"github.com/wallaroo-go/machida/internal/hubproto"
)

func binsOf(values ...uint64) (b [hubproto.Bins]uint64, maxSeen uint64) {
	for _, v := range values {
		b[hubproto.Bin(v)]++
		maxSeen = max(maxSeen, v)
	}
	return b, maxSeen
}

func TestPercentile(t *testing.T) {
	hundred := make([]uint64, 0, 100)
	for i := 0; i < 90; i++ {
		hundred = append(hundred, 1000) // bin 10: [512, 1024)
	}
	for i := 0; i < 9; i++ {
		hundred = append(hundred, 100_000) // bin 17: [65536, 131072)
	}
	hundred = append(hundred, 5_000_000) // bin 23
	cases := []struct {
		name   string
		values []uint64
		q      float64
		want   uint64
	}{
		{"empty", nil, 0.5, 0},
		{"zero", []uint64{0, 0}, 0.99, 0},
		{"one value is capped at max", []uint64{700}, 0.5, 700},
		{"p50 upper end of bin", hundred, 0.50, 1023},
		{"p90 still in the first bin", hundred, 0.90, 1023},
		{"p95 next bin", hundred, 0.95, 131071},
		{"p99 rank 99", hundred, 0.99, 131071},
		{"p99.9 the top value, capped at max", hundred, 0.999, 5_000_000},
		{"top bin", []uint64{math.MaxUint64}, 0.5, math.MaxUint64},
	}
	for _, c := range cases {
		b, m := binsOf(c.values...)
		if got := Percentile(&b, c.q, m); got != c.want {
			t.Errorf("%s: Percentile(q=%v) = %d, want %d", c.name, c.q, got, c.want)
		}
	}
}

func TestBinShares(t *testing.T) {
	h := newHist()
	for _, v := range []uint64{0, 1023, 1024, 4095, 4096, 1 << 29, 1<<30 - 1, 1 << 30, math.MaxUint64} {
		h.bins[hubproto.Bin(v)]++
	}
	got := binShares(h)
	want := map[string]uint64{"≤1 µs": 2, "≤4 µs": 2, "≤16 µs": 1, "≤1 s": 2, ">1 s": 2}
	if len(got) != 12 {
		t.Fatalf("%d bars, want 12", len(got))
	}
	var pct float64
	for _, b := range got {
		if b.Count != want[b.Label] {
			t.Errorf("bar %s = %d, want %d", b.Label, b.Count, want[b.Label])
		}
		pct += b.Percent
	}
	if math.Abs(pct-100) > 1e-9 {
		t.Errorf("percents add up to %v", pct)
	}
}

func TestThroughputOf(t *testing.T) {
	if got := throughputOf(nil); got != (Throughput{}) {
		t.Errorf("empty: %+v", got)
	}
	if got := throughputOf([]float64{5, 0, 10}); got != (Throughput{0, 5, 10}) {
		t.Errorf("odd: %+v", got)
	}
	if got := throughputOf([]float64{4, 1, 2, 3}); got != (Throughput{1, 2.5, 4}) {
		t.Errorf("even: %+v", got)
	}
}
