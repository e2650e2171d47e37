package work

import (
	"testing"

	"github.com/wallaroo-go/machida/engine/routing"
)

func TestOwnershipOf_MapsWorkersToDestinations(t *testing.T) {
	one, err := routing.NewTable(8, []routing.WorkerName{"a"})
	if err != nil {
		t.Fatal(err)
	}
	o := OwnershipOf(one, "a", func(routing.WorkerName) Dest { t.Fatal("no other worker"); return 0 })
	if !o.AllLocal() || len(o.Owner) != 8 || o.Epoch != 1 {
		t.Fatalf("one worker: %+v", o)
	}
	three, err := one.Rebalance([]routing.WorkerName{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	o = OwnershipOf(three, "b", func(w routing.WorkerName) Dest {
		if w == "b" {
			t.Fatal("me asked for")
		}
		return map[routing.WorkerName]Dest{"a": 1, "c": 2}[w]
	})
	if o.AllLocal() || o.Epoch != 2 {
		t.Fatalf("three workers: %+v", o)
	}
	for p, d := range o.Owner {
		want := map[routing.WorkerName]Dest{"a": 1, "b": Here, "c": 2}[three.Owner(routing.PartitionID(p))]
		if d != want {
			t.Errorf("partition %d: dest %d, want %d", p, d, want)
		}
	}
	if len(o.Spread) != 3 || o.Spread[1] != Here {
		t.Errorf("spread %v", o.Spread)
	}
}
