package routing

import (
	"hash/crc32"
	"testing"
	"testing/quick"
)

func TestPartitionOf_MatchesPythonZlibCRC32(t *testing.T) {
	// zlib.crc32(b"single-partition-key") & 0xffffffff, and of b"a", computed with CPython.
	cases := map[string]uint32{"a": 0xe8b7be43, "": 0}
	for k, want := range cases {
		if got := crc32.ChecksumIEEE([]byte(k)); got != want {
			t.Errorf("crc32(%q) = %#x, want %#x", k, got, want)
		}
		if got := PartitionOf([]byte(k), 256); uint32(got) != want%256 {
			t.Errorf("PartitionOf(%q) = %d", k, got)
		}
	}
}

func TestTable_EvenAndComplete(t *testing.T) {
	f := func(nw uint8) bool {
		workers := make([]WorkerName, int(nw%16)+1)
		for i := range workers {
			workers[i] = WorkerName(rune('a' + i))
		}
		tab, err := NewTable(DefaultPartitions, workers)
		if err != nil {
			return false
		}
		counts := tab.Count()
		if len(counts) != len(workers) {
			return false
		}
		lo, hi := DefaultPartitions, 0
		for _, c := range counts {
			lo, hi = min(lo, c), max(hi, c)
		}
		return hi-lo <= 1
	}
	if err := quick.Check(f, nil); err != nil {
		t.Error(err)
	}
}

func TestTable_SingleWorkerOwnsAll(t *testing.T) {
	tab, err := NewTable(8, []WorkerName{"initializer"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range tab.Local("initializer") {
		if !l {
			t.Fatal("partition not local")
		}
	}
	if tab.OwnerOf([]byte("x")) != "initializer" {
		t.Error("owner")
	}
	if _, err := NewTable(0, []WorkerName{"a"}); err == nil {
		t.Error("zero partitions accepted")
	}
}
