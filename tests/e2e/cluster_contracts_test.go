package e2e

// Rows of the Python API's acceptance checklist (spec section 12) that
// need a cluster: stateless work on every worker (Wallaroo 0.6's
// parallel_classifier check) and the module's serialize/deserialize hooks
// between workers, called and, when they raise, stopping the worker
// with the traceback and 0.6's "Error: Serialization failed".

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every number sent comes out once, and the pids that tagged them are as
// many as the workers: the stateless computation after the source ran on
// each of them. 0.6's Makefile ran parallel_classifier at 2 and 15
// workers; make e2e-full does too.
func TestCluster_StatelessWorkReachesEveryWorker(t *testing.T) {
	sizes := []int{3}
	if e2eFull() {
		sizes = []int{2, 15}
	}
	forEachClusterSize(t, sizes, func(t *testing.T, n int) {
		s := newSink(t)
		in := freePort(t)
		ws := startCluster(t, testdataDir(), "classify", n, in, s.addr())
		conn := dial(t, in)
		defer conn.Close()
		const msgs = 1000
		for i := 1; i <= msgs; i++ {
			send(t, conn, strconv.Itoa(i))
		}
		lines := s.waitLines(t, msgs, 60*time.Second)
		seen := map[int]int{}
		pids := map[string]int{}
		for _, l := range lines {
			num, pid, ok := strings.Cut(l, ":")
			v, err := strconv.Atoi(num)
			if !ok || err != nil {
				t.Fatalf("output line %q is not <n>:<pid>", l)
			}
			seen[v]++
			pids[pid]++
		}
		for i := 1; i <= msgs; i++ {
			if seen[i] != 1 {
				t.Errorf("%d came out %d times, want once", i, seen[i])
			}
		}
		if len(pids) != n {
			t.Errorf("the stateless computation ran in %d processes, want every one of %d workers: messages per pid %v", len(pids), n, pids)
		}
		stopCluster(t, ws, 0, true)
		s.waitClosed(t, 60*time.Second) // everything written has been read
		if got := len(s.lines()); got != msgs {
			t.Errorf("%d output lines after the stop, want %d", got, msgs)
		}
	})
}

// A stateless computation after a merge of two pipelines that both end in
// key_by is not dealt out (0.6 passes the keys through the merge, spec
// 2.2, and routes by them): every message of the one key "c" runs in one
// process, the key's owner, and each source's numbers come out in the
// order they were sent (spec 2.5).
func TestCluster_KeyedMergeKeepsPerKeyOrder(t *testing.T) {
	s := newSink(t)
	inA, inB := freePort(t), freePort(t)
	ws := startCluster(t, testdataDir(), "keyed_merge", 2, inA+","+inB, s.addr())
	const per = 1500
	for k, in := range []string{inA, inB} {
		conn := dial(t, in)
		for i := 1; i <= per; i++ {
			send(t, conn, strconv.Itoa(k*per+i))
		}
		conn.Close()
	}
	lines := s.waitLines(t, 2*per, 60*time.Second)
	last := [2]int{}
	pids := map[string]int{}
	for _, l := range lines {
		num, pid, ok := strings.Cut(l, ":")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || v > 2*per {
			t.Fatalf("output line %q is not <n>:<pid>", l)
		}
		pids[pid]++
		src := (v - 1) / per
		if v <= last[src] {
			t.Errorf("source %c: %d came out after %d", 'A'+src, v, last[src])
		}
		last[src] = v
	}
	if len(pids) != 1 {
		t.Errorf("the messages of one key ran in %d processes, want one: messages per pid %v", len(pids), pids)
	}
	stopCluster(t, ws, 0, true)
}

// A stateless computation directly after key_by runs on the owner of the
// key (0.6 routes it by the key, spec 2.2 and 2.4), not where the source
// is: each of 50 keys runs in one process, in the order sent, and the
// keys are shared out over all 3 workers.
func TestCluster_KeyedStatelessRunsOnTheKeysOwner(t *testing.T) {
	s := newSink(t)
	in := freePort(t)
	const workers, msgs = 3, 3000
	ws := startCluster(t, testdataDir(), "keyed_stateless", workers, in, s.addr())
	conn := dial(t, in)
	defer conn.Close()
	for i := 1; i <= msgs; i++ {
		send(t, conn, strconv.Itoa(i))
	}
	lines := s.waitLines(t, msgs, 60*time.Second)
	pidOf := map[string]string{}
	last := map[string]int{}
	pids := map[string]int{}
	for _, l := range lines {
		parts := strings.Split(l, ":")
		if len(parts) != 3 {
			t.Fatalf("output line %q is not <n>:<key>:<pid>", l)
		}
		v, err := strconv.Atoi(parts[0])
		if err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		key, pid := parts[1], parts[2]
		if p, ok := pidOf[key]; ok && p != pid {
			t.Errorf("key %s ran in processes %s and %s, want one", key, p, pid)
		}
		pidOf[key] = pid
		pids[pid]++
		if v <= last[key] {
			t.Errorf("key %s: %d came out after %d", key, v, last[key])
		}
		last[key] = v
	}
	if len(pids) != workers {
		t.Errorf("the keys ran in %d processes, want all %d workers: messages per pid %v", len(pids), workers, pids)
	}
	stopCluster(t, ws, 0, true)
}

// hookedKeys sends "<prefix><i>" for i < count, waits for their outputs
// and returns, per worker name, the messages whose key that worker holds.
func hookedKeys(t *testing.T, ws []*clusterWorker, s *sink, prefix string, count, before int) map[string][]string {
	t.Helper()
	in := argValue(t, ws[0], "--in")
	conn := dial(t, in)
	defer conn.Close()
	for i := 0; i < count; i++ {
		send(t, conn, fmt.Sprintf("%s%d", prefix, i))
	}
	s.waitLines(t, before+count, 60*time.Second)
	held := map[string][]string{}
	for k, w := range stateKeys(t, ws) {
		if strings.HasPrefix(k, prefix) {
			held[w] = append(held[w], k)
		}
	}
	return held
}

// The module's hooks carry the messages between workers: on a cluster of
// 2 they are called (the counts the processes write are not zero) and
// every key still counts right; then a message serialize refuses, and in
// a second cluster one deserialize refuses, stops the worker that ran the
// hook with the traceback, 0.6's "Error: Serialization failed" (or
// "Deserialization failed") and exit 1, and the cluster with it.
func TestCluster_SerializationHooksBetweenWorkers(t *testing.T) {
	for _, c := range []struct {
		hook, prefix, summary string
		runsOn                int // the worker whose hook fails: 0 sends, the other receives
	}{
		{"serialize", "sfail", "Error: Serialization failed", 0},
		{"deserialize", "dfail", "Error: Deserialization failed", 1},
	} {
		t.Run(c.hook, func(t *testing.T) {
			s := newSink(t)
			in := freePort(t)
			ws := startCluster(t, testdataDir(), "cluster_hooks", 2, in, s.addr())
			held := hookedKeys(t, ws, s, "ok", 40, 0)
			if len(held[ws[1].name]) == 0 || len(held[ws[0].name]) == 0 {
				t.Fatalf("40 keys not spread over both workers: %v", held)
			}
			// Again, so every key counts 2: the state of the keys whose
			// messages crossed is where the hooks brought them.
			hookedKeys(t, ws, s, "ok", 40, 40)
			var ser, deser int
			counts := map[string][]string{}
			for _, l := range s.lines() {
				f := strings.Fields(l)
				if len(f) != 4 {
					t.Fatalf("output line %q", l)
				}
				counts[f[0]] = append(counts[f[0]], f[1])
				a, _ := strconv.Atoi(f[2])
				b, _ := strconv.Atoi(f[3])
				ser, deser = max(ser, a), max(deser, b)
			}
			for k, cs := range counts {
				sort.Strings(cs)
				if strings.Join(cs, ",") != "1,2" {
					t.Errorf("key %s counted %v, want 1 then 2", k, cs)
				}
			}
			if ser == 0 || deser == 0 {
				t.Errorf("serialize called %d times, deserialize %d, on messages between workers; want both called", ser, deser)
			}

			// A key worker1 holds: its message crosses from the
			// initializer (the source) to worker1.
			slices.Sort(held[ws[1].name])
			conn := dial(t, in)
			defer conn.Close()
			send(t, conn, c.prefix+" "+held[ws[1].name][0])
			for i, w := range ws {
				code := w.wait(60 * time.Second)
				errOut := w.stderr.String()
				failed := strings.Contains(errOut, c.summary)
				if strings.Contains(errOut, "not finished in time") {
					t.Errorf("%s waited out its shutdown deadline:\n%s", w.name, errOut)
				}
				if i != c.runsOn {
					if failed {
						t.Errorf("%s reports the failure of a hook it did not run:\n%s", w.name, errOut)
					}
					continue
				}
				if code != 1 || !failed {
					t.Errorf("%s ran the failing %s: exit %d, want 1 with %q:\n%s", w.name, c.hook, code, c.summary, errOut)
				}
				for _, want := range []string{
					"Traceback (most recent call last)",
					"ValueError: " + c.hook + " was told to fail on",
					"error: user code failed in the module's " + c.hook + " hook",
					`of pipeline "Hooks" while processing `,
				} {
					if !strings.Contains(errOut, want) {
						t.Errorf("%s: stderr lacks %q:\n%s", w.name, want, errOut)
					}
				}
			}
		})
	}
}

// The topology comes from the initializer (as in 0.6): a worker started
// with another --out still writes to the initializer's sink, says so in
// its log, and never connects to the address of its own command line.
func TestCluster_SinksAreTheInitializers(t *testing.T) {
	s := newSink(t)
	other := newSink(t)
	in := freePort(t)
	ws := startClusterOuts(t, testdataDir(), "cluster_hooks", 2, in, func(i int) string {
		if i == 0 {
			return s.addr()
		}
		return other.addr()
	})
	held := hookedKeys(t, ws, s, "k", 40, 0)
	if len(held[ws[1].name]) == 0 {
		t.Fatalf("worker1 holds none of 40 keys: %v", held)
	}
	if a, _ := s.connections(); a != 2 {
		t.Errorf("the initializer's sink accepted %d connections, want one per worker (2)", a)
	}
	if a, _ := other.connections(); a != 0 {
		t.Errorf("worker1 connected to the --out of its own command line (%d connections)", a)
	}
	ws[1].waitOutput("sink address differs from the initializer's", 10*time.Second)
	stopCluster(t, ws, 1, false)
}

// topologySteps are the basis steps of Wallaroo 0.6's topology suite
// (topo_gen.py's flags).
var topologySteps = []string{"stateless", "state", "key-by-stateless", "key-by-state"}

// topologies returns every sequence of 1 to max basis steps.
func topologies(max int) [][]string {
	var out [][]string
	var grow func(prefix []string)
	grow = func(prefix []string) {
		if len(prefix) > 0 {
			out = append(out, slices.Clone(prefix))
		}
		if len(prefix) == max {
			return
		}
		for _, s := range topologySteps {
			grow(append(prefix, s))
		}
	}
	grow(nil)
	return out
}

// topologyRun runs one generated pipeline on n workers: 20 values for
// each of the keys key_0 and key_1, each sent by a client of its own, one
// after the other (as 0.6's senders ran); every message must come out
// once, tagged by every step in order.
func topologyRun(t *testing.T, steps []string, n int) {
	t.Helper()
	s := newSink(t)
	in := freePort(t)
	var flags []string
	var tags []string
	for i, st := range steps {
		flags = append(flags, "--"+st)
		tags = append(tags, fmt.Sprintf("%s_%d", strings.TrimPrefix(st, "key-by-"), i))
	}
	ws := startCluster(t, testdataDir(), "topo_gen", n, in, s.addr(), flags...)
	const perKey = 20
	for _, key := range []string{"key_0", "key_1"} {
		conn := dial(t, in)
		for v := 1; v <= perKey; v++ {
			payload := binary.BigEndian.AppendUint64(nil, uint64(v))
			if _, err := conn.Write(frame(append(payload, key...))); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
	}
	lines := s.waitLines(t, 2*perKey, 60*time.Second)
	want := strings.Join(tags, ",")
	seen := map[string]int{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || f[2] != want {
			t.Errorf("%v on %d workers: output %q, want <key> <value> %s", steps, n, l, want)
			continue
		}
		seen[f[0]+" "+f[1]]++
	}
	for _, key := range []string{"key_0", "key_1"} {
		for v := 1; v <= perKey; v++ {
			if c := seen[fmt.Sprintf("%s %d", key, v)]; c != 1 {
				t.Errorf("%v on %d workers: %s %d came out %d times, want once", steps, n, key, v, c)
			}
		}
	}
	stopCluster(t, ws, 0, true)
	s.waitClosed(t, 60*time.Second)
	if got := len(s.lines()); got != 2*perKey {
		t.Errorf("%v on %d workers: %d outputs after the stop, want %d", steps, n, got, 2*perKey)
	}
}

// Wallaroo 0.6's topology suite: pipelines generated from every sequence
// of basis steps (stateless, state, key_by then stateless, key_by then
// state), messages of a class of the application's pickled between
// workers, computations made at start-up. make test runs every sequence
// of one and two steps on 2 workers and those of three steps that start
// with a keyed step on 3; E2E_FULL=1 runs all 84 on 1, 2 and 3 workers,
// as 0.6's suite did.
func TestCluster_GeneratedTopologies(t *testing.T) {
	type run struct {
		steps []string
		n     int
	}
	var runs []run
	for _, steps := range topologies(3) {
		switch {
		case e2eFull():
			for n := 1; n <= 3; n++ {
				runs = append(runs, run{steps, n})
			}
		case len(steps) <= 2:
			runs = append(runs, run{steps, 2})
		case strings.HasPrefix(steps[0], "key-by-") && steps[1] != steps[2]:
			runs = append(runs, run{steps, 3})
		}
	}
	for _, r := range runs {
		t.Run(fmt.Sprintf("%s/%d_workers", strings.Join(r.steps, "+"), r.n), func(t *testing.T) {
			topologyRun(t, r.steps, r.n)
		})
	}
}

// Wallaroo 0.6's cli_tests against a cluster: the dummy application,
// ten messages A to J, then every query on every worker, with the
// answers 0.6's suite expects. On 2 workers, and on 3 with
// --run-with-resilience (0.6's resilience builds ran the suite too).
func TestCluster_QueriesAsTheCLITestsAsk(t *testing.T) {
	for _, c := range []struct {
		n     int
		extra []string
	}{{2, nil}, {3, []string{"--run-with-resilience"}}} {
		t.Run(fmt.Sprintf("%d_workers%s", c.n, strings.Join(c.extra, "")), func(t *testing.T) {
			s := newSink(t)
			in := freePort(t)
			ws := startCluster(t, testdataDir(), "dummy", c.n, in, s.addr(), c.extra...)
			conn := dial(t, in)
			defer conn.Close()
			for r := 'A'; r <= 'J'; r++ {
				send(t, conn, string(r))
			}
			s.waitFrames(t, 10, 60*time.Second)

			var names []string
			for _, w := range ws {
				names = append(names, w.name)
			}
			const steps = 10 // per stage and worker, 0.6's default parallelism
			stateStages := map[string]bool{}
			keys := map[string]string{}
			entityCounts := map[string]int{}
			for _, w := range ws {
				var st struct {
					Count int      `json:"worker_count"`
					Names []string `json:"worker_names"`
					On    bool     `json:"processing_messages"`
				}
				query(t, w.external, "cluster-status-query", &st)
				got := st.Names // (the others in the order of their names)
				if st.Count != c.n || !st.On || !slices.Equal(got, names) {
					t.Errorf("%s: cluster status %+v, want %d workers %v processing", w.name, st, c.n, names)
				}

				var pq struct {
					State     map[string]map[string][]string `json:"state_partitions"`
					Stateless map[string]map[string][]string `json:"stateless_partitions"`
				}
				query(t, w.external, "partition-query", &pq)
				var pc struct {
					State     map[string]map[string]int `json:"state_partitions"`
					Stateless map[string]map[string]int `json:"stateless_partitions"`
				}
				query(t, w.external, "partition-count-query", &pc)
				if len(pq.State) != 2 || len(pq.Stateless) != 1 || len(pc.State) != 2 || len(pc.Stateless) != 1 {
					t.Errorf("%s: partition queries list %d state and %d stateless stages (counts: %d, %d), want 2 and 1",
						w.name, len(pq.State), len(pq.Stateless), len(pc.State), len(pc.Stateless))
				}
				for _, m := range []map[string]map[string][]string{pq.State, pq.Stateless} {
					for stage, per := range m {
						if _, err := strconv.ParseUint(stage, 10, 64); err != nil {
							t.Errorf("%s: stage id %q is not a decimal integer", w.name, stage)
						}
						if len(per) != 1 || len(per[w.name]) != steps {
							t.Errorf("%s: stage %s lists %v, want only its own %d steps", w.name, stage, per, steps)
						}
						for _, id := range per[w.name] {
							if _, err := strconv.ParseUint(id, 10, 64); err != nil {
								t.Errorf("%s: step id %q is not a decimal integer", w.name, id)
							}
						}
					}
				}
				for _, m := range []map[string]map[string]int{pc.State, pc.Stateless} {
					for stage, per := range m {
						if len(per) != 1 || per[w.name] != steps {
							t.Errorf("%s: stage %s counts %v, want {%q: %d}", w.name, stage, per, w.name, steps)
						}
					}
				}
				for stage := range pq.State {
					stateStages[stage] = true
				}

				var sl map[string]map[string][]string
				query(t, w.external, "stateless-partition-query", &sl)
				var slc map[string]map[string]int
				query(t, w.external, "stateless-partition-count-query", &slc)
				if len(sl) != 1 || len(slc) != 1 {
					t.Errorf("%s: stateless partition queries list %v and %v, want the one stateless stage", w.name, sl, slc)
				}
				for stage, per := range sl {
					if len(per) != 1 || len(per[w.name]) != steps || slc[stage][w.name] != steps {
						t.Errorf("%s: stateless stage %s: %v, count %v, want %d steps here", w.name, stage, per, slc[stage], steps)
					}
				}

				var ids struct {
					IDs []string `json:"source_ids"`
				}
				query(t, w.external, "source-ids-query", &ids)
				if want := map[bool]int{true: 10, false: 0}[w.name == "initializer"]; len(ids.IDs) != want {
					t.Errorf("%s: %d source ids, want %d (10 per TCP source, the sources on the initializer)", w.name, len(ids.IDs), want)
				}

				var ents map[string][]string
				query(t, w.external, "state-entity-query", &ents)
				var counts map[string]int
				query(t, w.external, "state-entity-count-query", &counts)
				if len(ents) != 2 || len(counts) != 2 {
					t.Errorf("%s: state entities %v, counts %v: want both state stages, possibly empty", w.name, ents, counts)
				}
				for stage, ks := range ents {
					if counts[stage] != len(ks) {
						t.Errorf("%s: stage %s counts %d entities and lists %d", w.name, stage, counts[stage], len(ks))
					}
					entityCounts[stage] += len(ks)
					for _, k := range ks {
						if o, dup := keys[k]; dup {
							t.Errorf("key %q is on %s and on %s", k, o, w.name)
						}
						keys[k] = w.name
					}
				}
			}
			numeric := 0
			for k := range keys {
				if _, err := strconv.ParseInt(k, 10, 64); err == nil {
					numeric++
				} else if k != "single-partition-key" {
					t.Errorf("key %q is neither a hash nor single-partition-key", k)
				}
			}
			if _, ok := keys["single-partition-key"]; !ok || numeric != 10 {
				t.Errorf("keys over the cluster %v: want 10 numeric keys and single-partition-key", keys)
			}
			var cs []int
			for _, n := range entityCounts {
				cs = append(cs, n)
			}
			slices.Sort(cs)
			if len(stateStages) != 2 || !slices.Equal(cs, []int{1, 10}) {
				t.Errorf("entity counts over the cluster %v (stages %v), want 1 and 10", entityCounts, stateStages)
			}
			stopCluster(t, ws, 0, true)
		})
	}
}
