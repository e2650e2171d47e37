package rescale

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wallaroo-go/machida/engine/routing"
)

var five = []string{"initializer", "worker1", "worker2", "worker3", "worker4"}

func TestTargets(t *testing.T) {
	assert.Equal(t, []string{"worker1", "worker2", "worker3", "worker4"}, Eligible(five))
	cases := []struct {
		names []string
		count int
		want  []string
		reply string
	}{
		{[]string{"worker3", "worker1"}, 0, []string{"worker3", "worker1"}, "Shrinking by 2 workers!"},
		{[]string{"initializer"}, 0, nil, ReplyInvalid},
		{[]string{"worker2"}, 0, []string{"worker2"}, "Shrinking by 1 workers!"},
		{[]string{"nosuch"}, 0, nil, ReplyInvalid},
		{[]string{"worker1", "worker1"}, 0, nil, ReplyInvalid},
		{nil, 0, nil, ReplyZero},
		{nil, 2, []string{"worker1", "worker2"}, "Shrinking by 2 workers!"},
		{nil, 9, []string{"worker1", "worker2", "worker3", "worker4"}, "Shrinking by 4 workers!"},
	}
	for _, c := range cases {
		got, reply := Targets(five, c.names, c.count)
		assert.Equal(t, c.want, got, "%v %d", c.names, c.count)
		assert.Equal(t, c.reply, reply, "%v %d", c.names, c.count)
	}
	got, reply := Targets([]string{"initializer"}, nil, 1)
	assert.Nil(t, got)
	assert.Equal(t, ReplyZero, reply)
}

func TestGather(t *testing.T) {
	var g Gather
	members := []string{"initializer", "worker1"}
	_, err := g.Add(Joiner{Name: "worker1", K: 1}, members)
	assert.ErrorContains(t, err, "Join Error: a worker named \"worker1\" is already in the cluster")
	_, err = g.Add(Joiner{Name: "w9", K: 0}, members)
	assert.ErrorContains(t, err, "Join Error")
	done, err := g.Add(Joiner{Name: "j1", K: 2}, members)
	require.NoError(t, err)
	assert.False(t, done)
	_, err = g.Add(Joiner{Name: "j2", K: 3}, members)
	assert.ErrorContains(t, err, "same --worker-count")
	_, err = g.Add(Joiner{Name: "j1", K: 2}, members)
	assert.ErrorContains(t, err, "already joining")
	done, err = g.Add(Joiner{Name: "j2", K: 2}, members)
	require.NoError(t, err)
	assert.True(t, done)

	// A joiner that leaves before its group is complete no longer
	// counts: its name is free, and the group starts over once empty.
	var h Gather
	_, err = h.Add(Joiner{Name: "j1", K: 3}, members)
	require.NoError(t, err)
	assert.True(t, h.Remove("j1"))
	assert.False(t, h.Remove("j1"))
	assert.Zero(t, h.K)
	done, err = h.Add(Joiner{Name: "j1", K: 1}, members)
	require.NoError(t, err)
	assert.True(t, done, "a new join of one, with the name free again")
}

func TestPlans(t *testing.T) {
	names := []routing.WorkerName{"initializer", "worker1"}
	old, err := routing.NewTable(64, names)
	require.NoError(t, err)
	g, err := Grow(old, []string{"initializer", "worker1"}, []string{"d0", "d1"}, []Joiner{{Name: "j1", Data: "dj"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"initializer", "worker1", "j1"}, g.Workers)
	assert.Equal(t, []string{"d0", "d1", "dj"}, g.Data)
	assert.Equal(t, old.Epoch()+1, g.New.Epoch())
	sent := len(g.Sends("initializer")) + len(g.Sends("worker1"))
	assert.Equal(t, g.Receives("j1"), sent, "what the old workers send is what the joiner gets")
	assert.Empty(t, g.Sends("j1"))
	assert.InDelta(t, 64/3, g.Receives("j1"), 1)

	s, err := Shrink(g.New, g.Workers, g.Data, []string{"worker1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"initializer", "j1"}, s.Workers)
	assert.Equal(t, []string{"d0", "dj"}, s.Data)
	assert.Equal(t, g.New.Count()["worker1"], len(s.Sends("worker1")), "a leaver sends all it owns")
	assert.Zero(t, s.New.Count()["worker1"])
	_, err = Shrink(g.New, g.Workers, g.Data, []string{"nosuch"})
	assert.Error(t, err)
}

// Workers that join together get the same partitions whichever of them
// asked first: they are listed in the order of their names.
func TestGrow_JoinersListedInTheOrderOfTheirNames(t *testing.T) {
	old, err := routing.NewTable(256, []routing.WorkerName{"initializer"})
	require.NoError(t, err)
	names := []string{"worker3", "worker10", "worker1", "worker2"}
	var first Plan
	for i, perm := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}} {
		var js []Joiner
		for _, k := range perm {
			js = append(js, Joiner{Name: names[k], Data: "d-" + names[k]})
		}
		g, err := Grow(old, []string{"initializer"}, []string{"d0"}, js)
		require.NoError(t, err)
		assert.Equal(t, []string{"initializer", "worker1", "worker2", "worker3", "worker10"}, g.Workers)
		assert.Equal(t, []string{"d0", "d-worker1", "d-worker2", "d-worker3", "d-worker10"}, g.Data)
		if i == 0 {
			first = g
			continue
		}
		assert.Equal(t, first.New.Owners(), g.New.Owners(), "order %v", perm)
	}
	assert.Equal(t, routing.WorkerName("worker10"), first.New.Owner(255), "the last named joiner takes the last range")
}
