package e2e

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// The cluster lists the workers after the initializer in the order of
// their names, whichever registered first: at formation (worker2 asks
// before worker1 here) and in a grow (worker4 asks before worker3). The
// partitions each worker owns follow that order, so a tool that starts
// workers one after another (0.6's harness, whose autoscale suite checks
// that the last worker's shrink moves keys) sees the same cluster every
// time.
func TestCluster_WorkersAreListedInTheOrderOfTheirNames(t *testing.T) {
	tool(t, "external_sender")
	tool(t, "cluster_shutdown")
	dir := testdataDir()
	recv := rsStartReceiver(t)
	in, control, res := freePort(t), freePort(t), t.TempDir()
	worker := func(name string, extra ...string) *clusterWorker {
		ext := freePort(t)
		args := []string{"--application-module", "multi_partition_detector", "--in", in, "--out", recv.addr(),
			"--metrics", freePort(t), "--external", ext, "--resilience-dir", res, "--name", name, "--depth", "1",
			"--ponythreads=1", "--ponypinasio", "--ponynoblock"}
		if name != "initializer" {
			args = append(args, "--my-control", freePort(t), "--my-data", freePort(t))
		}
		args = append(args, extra...)
		return &clusterWorker{proc: start(t, dir, "machida3", args...), name: name, external: ext, dir: dir, args: args}
	}
	ws := []*clusterWorker{worker("initializer", "--cluster-initializer", "--worker-count", "3", "--control", control, "--data", freePort(t))}
	w2 := worker("worker2", "--control", control)
	ws[0].waitOutput("worker joined worker=worker2", 60*time.Second)
	w1 := worker("worker1", "--control", control)
	ws = append(ws, w2, w1)
	ws[0].waitOutput("Application has successfully initialized", 60*time.Second)
	namesOf := func(want []string) {
		t.Helper()
		for _, w := range ws {
			waitStatus(t, w, len(want))
			st, err := rsQueryStatus(w)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(st.WorkerNames, want) {
				t.Fatalf("%s lists the workers %v, want %v", w.name, st.WorkerNames, want)
			}
		}
	}
	namesOf([]string{"initializer", "worker1", "worker2"})

	joiner := func(name string) *clusterWorker {
		return worker(name, "--join", control, "--worker-count", strconv.Itoa(2))
	}
	w4 := joiner("worker4")
	ws[0].waitOutput("a worker asks to join worker=worker4", 60*time.Second)
	w3 := joiner("worker3")
	ws = append(ws, w4, w3)
	ws[0].waitOutput("AUTOSCALE: grow complete", 2*rsJoinTimeout)
	namesOf([]string{"initializer", "worker1", "worker2", "worker3", "worker4"})
	stopCluster(t, ws, 2, false)
}
