// Package rescale is the pure logic of growing and shrinking a running
// cluster (runtime spec 3.4–3.6): which workers a shrink request names,
// whether joiners that arrive one by one make a valid join of k, and the
// plan of one rescale (the new worker list and partition table, and the
// partitions each worker sends and receives). It does no I/O and owns
// no goroutine; package cluster runs the protocol with it.
package rescale

import (
	"fmt"
	"slices"

	"github.com/wallaroo-go/machida/engine/routing"
)

// The replies of 0.6's shrink requests (spec 3.5), sent as external
// message type 6 even on success.
const (
	ReplyInvalid = "Invalid shrink targets!"
	ReplyZero    = "Cannot shrink 0 workers!"
)

// ReplyShrinking is the reply to a shrink that goes ahead.
func ReplyShrinking(n int) string { return fmt.Sprintf("Shrinking by %d workers!", n) }

// Eligible lists the workers a shrink may remove, in cluster order: all
// but the first (the initializer, which hosts the sources and runs every
// rescale; spec 3.5). The worker asked may leave too: it forwards the
// request to the initializer.
func Eligible(workers []string) []string {
	if len(workers) <= 1 {
		return nil
	}
	return slices.Clone(workers[1:])
}

// Targets picks the leaving workers of a shrink request: by names (each
// must be eligible, none repeated; anything else and nothing happens) or
// by count (the first count eligible workers, fewer if there are not
// enough). It returns the leavers and 0.6's reply.
func Targets(workers []string, names []string, count int) ([]string, string) {
	eligible := Eligible(workers)
	if len(names) > 0 {
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] || !slices.Contains(eligible, n) {
				return nil, ReplyInvalid
			}
			seen[n] = true
		}
		return slices.Clone(names), ReplyShrinking(len(names))
	}
	if count <= 0 || len(eligible) == 0 {
		return nil, ReplyZero
	}
	n := min(count, len(eligible))
	return slices.Clone(eligible[:n]), ReplyShrinking(n)
}

// Joiner is a worker asking to join: its name, listeners and the k of
// its --worker-count.
type Joiner struct {
	Name          string
	Control, Data string
	K             int
}

// Gather collects the joiners of one join: all must ask for the same k,
// and the join starts when k have arrived. The zero Gather is empty.
type Gather struct {
	K       int
	Joiners []Joiner
}

// Add takes one joiner; members are the cluster's workers now. An error
// (a name in use, a k that is not the others', k < 1) refuses that
// joiner alone, with 0.6's "Join Error" wording; complete means k have
// arrived.
func (g *Gather) Add(j Joiner, members []string) (complete bool, err error) {
	switch {
	case j.K < 1:
		return false, fmt.Errorf("Join Error: --worker-count must be at least 1, got %d", j.K)
	case j.Name == "":
		return false, fmt.Errorf("Join Error: a joining worker needs a --name")
	case slices.Contains(members, j.Name):
		return false, fmt.Errorf("Join Error: a worker named %q is already in the cluster", j.Name)
	case len(g.Joiners) > 0 && j.K != g.K:
		return false, fmt.Errorf("Join Error: %q asks to join %d at once, but %d workers joining now asked for %d: every joiner of one join must pass the same --worker-count", j.Name, j.K, len(g.Joiners), g.K)
	}
	for _, o := range g.Joiners {
		if o.Name == j.Name {
			return false, fmt.Errorf("Join Error: a worker named %q is already joining", j.Name)
		}
	}
	g.K = j.K
	g.Joiners = append(g.Joiners, j)
	return len(g.Joiners) == g.K, nil
}

// Remove takes back a joiner that left before its group was complete
// (its control link closed); it reports whether it was waiting here.
func (g *Gather) Remove(name string) bool {
	for i, o := range g.Joiners {
		if o.Name == name {
			g.Joiners = slices.Delete(g.Joiners, i, i+1)
			if len(g.Joiners) == 0 {
				g.K = 0
			}
			return true
		}
	}
	return false
}

// Plan is one rescale: the cluster before and after.
type Plan struct {
	Old, New routing.Table
	// Workers and Data are the new cluster's workers in order and their
	// data listeners (for a grow, the old list with the joiners after
	// it; for a shrink, the old list without the leavers).
	Workers, Data    []string
	Joining, Leaving []string
}

// Grow plans adding joiners to the cluster of workers (with data
// listeners data) partitioned by old.
func Grow(old routing.Table, workers, data []string, joiners []Joiner) (Plan, error) {
	p := Plan{Old: old, Workers: slices.Clone(workers), Data: slices.Clone(data)}
	// Joiners are appended in the order of their names, not in the
	// order they asked (routing.CompareNames).
	joiners = slices.Clone(joiners)
	slices.SortStableFunc(joiners, func(a, b Joiner) int { return routing.CompareNames(a.Name, b.Name) })
	for _, j := range joiners {
		if slices.Contains(p.Workers, j.Name) {
			return Plan{}, fmt.Errorf("rescale: %q is already a worker", j.Name)
		}
		p.Workers = append(p.Workers, j.Name)
		p.Data = append(p.Data, j.Data)
		p.Joining = append(p.Joining, j.Name)
	}
	return p.rebalance()
}

// Shrink plans removing leaving from the cluster.
func Shrink(old routing.Table, workers, data []string, leaving []string) (Plan, error) {
	p := Plan{Old: old, Leaving: slices.Clone(leaving)}
	for _, l := range leaving {
		if !slices.Contains(workers, l) {
			return Plan{}, fmt.Errorf("rescale: %q is not a worker", l)
		}
	}
	for i, w := range workers {
		if !slices.Contains(leaving, w) {
			p.Workers = append(p.Workers, w)
			p.Data = append(p.Data, data[i])
		}
	}
	if len(p.Workers) == 0 {
		return Plan{}, fmt.Errorf("rescale: a shrink cannot remove every worker")
	}
	return p.rebalance()
}

func (p Plan) rebalance() (Plan, error) {
	names := make([]routing.WorkerName, len(p.Workers))
	for i, w := range p.Workers {
		names[i] = routing.WorkerName(w)
	}
	t, err := p.Old.Rebalance(names)
	if err != nil {
		return Plan{}, err
	}
	p.New = t
	return p, nil
}

// Sends lists the moves worker me makes: the partitions it owns now and
// will not own after.
func (p Plan) Sends(me string) []routing.Move {
	var out []routing.Move
	for _, m := range routing.Moves(p.Old, p.New) {
		if string(m.From) == me {
			out = append(out, m)
		}
	}
	return out
}

// Receives counts the partitions worker me gains.
func (p Plan) Receives(me string) int {
	n := 0
	for _, m := range routing.Moves(p.Old, p.New) {
		if string(m.To) == me {
			n++
		}
	}
	return n
}
