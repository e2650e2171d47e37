package spread

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestBalancer_StartsEvenAndIgnoresNoise(t *testing.T) {
	b := NewBalancer([]string{"a", "b"})
	if s := b.Shares(); !near(s["a"], 0.5) || !near(s["b"], 0.5) {
		t.Fatalf("shares %v, want even", s)
	}
	if _, changed := b.Update(map[string]float64{"a": 0.90, "b": 0.91}); changed {
		t.Fatal("a difference inside the dead band moved the shares")
	}
	if _, changed := b.Update(map[string]float64{"a": 0.5}); changed {
		t.Fatal("one report alone moved the shares")
	}
}

// A simulated cluster: worker "a" has fixed work of its own (decoding,
// a frequent key) besides its share of the spread work; the balancer
// must even out the utilisations and keep the shares summing to 1.
func TestBalancer_ConvergesOnSkewedLoad(t *testing.T) {
	b := NewBalancer([]string{"a", "b"})
	fixed := map[string]float64{"a": 0.35, "b": 0.05}
	const spreadWork = 1.0 // in units of one worker's capacity
	var util map[string]float64
	for round := 0; round < 40; round++ {
		s := b.Shares()
		util = map[string]float64{}
		for w, f := range fixed {
			util[w] = math.Min(1, f+s[w]*spreadWork*0.6)
		}
		b.Update(util)
	}
	s := b.Shares()
	if !near(s["a"]+s["b"], 1) {
		t.Fatalf("shares %v do not sum to 1", s)
	}
	if math.Abs(util["a"]-util["b"]) > 2*DeadBand+0.01 {
		t.Fatalf("utilisations %v after 40 rounds, shares %v: not balanced", util, s)
	}
	if s["a"] >= s["b"] {
		t.Fatalf("the busier worker kept the larger share: %v", s)
	}
}

func TestBalancer_FloorKeepsEveryWorkerInTheDeal(t *testing.T) {
	b := NewBalancer([]string{"a", "b", "c"})
	for i := 0; i < 100; i++ {
		b.Update(map[string]float64{"a": 1, "b": 0.1, "c": 0.1})
	}
	s := b.Shares()
	if s["a"] < MinShare/3-1e-9 {
		t.Fatalf("share of a fell to %v, under the floor %v", s["a"], MinShare/3)
	}
	if !near(s["a"]+s["b"]+s["c"], 1) {
		t.Fatalf("shares %v do not sum to 1", s)
	}
}

func TestSlots(t *testing.T) {
	count := func(sl []string) map[string]int {
		c := map[string]int{}
		for _, w := range sl {
			c[w]++
		}
		return c
	}
	c := count(Slots(map[string]float64{"a": 0.5, "b": 0.5}, 64))
	if c["a"] != 32 || c["b"] != 32 {
		t.Fatalf("even shares: %v", c)
	}
	c = count(Slots(map[string]float64{"a": 0.7, "b": 0.3}, 10))
	if c["a"] != 7 || c["b"] != 3 {
		t.Fatalf("0.7/0.3 of 10: %v", c)
	}
	sl := Slots(map[string]float64{"a": 0.99, "b": 0.005, "c": 0.005}, 64)
	c = count(sl)
	if len(sl) != 64 || c["b"] < 1 || c["c"] < 1 {
		t.Fatalf("small shares must keep a slot: %v (%d slots)", c, len(sl))
	}
	if Slots[string](nil, 8) != nil || Slots(map[string]float64{"a": 1}, 0) != nil {
		t.Fatal("no shares or no slots must give nil")
	}
}
