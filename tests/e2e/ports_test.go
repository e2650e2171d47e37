package e2e

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A port still held when a worker starts (as by a process killed just
// before, still exiting) is tried again for a while: the worker says so
// and takes the port once it is free, instead of exiting 1 (0.6's
// harness kills a worker with SIGKILL and starts it again at once).
// TestPortTaken and TestExternalPortTaken cover a port that stays taken.
func TestPortHeldAtStartIsTakenOnceFreed(t *testing.T) {
	for _, which := range []string{"external", "in"} {
		t.Run(which, func(t *testing.T) {
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			addr := held.Addr().String()
			s := newSink(t)
			var m *proc
			if which == "external" {
				m = machida(t, testdataDir(), "echo_lines", freePort(t), s.addr(), "--external", addr)
			} else {
				m = machida(t, testdataDir(), "echo_lines", addr, s.addr())
			}
			m.waitOutput("the port is in use", 60*time.Second)
			held.Close()
			m.waitOutput("Application has successfully initialized", 60*time.Second)
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				t.Fatalf("the worker does not listen on %s: %v", addr, err)
			}
			c.Close()
			m.cmd.Process.Signal(syscall.SIGTERM)
			if code := m.wait(30 * time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0", code)
			}
		})
	}
}

// A worker of a cluster killed with SIGKILL and started again with its
// command line without waiting for the killed process to be gone (as
// 0.6's restart_without_resilience test does), three times: each time it
// re-binds its listeners and rejoins.
func TestCluster_WorkerStartedAgainTheMomentItIsKilled(t *testing.T) {
	dir := exampleDir("sequence_window")
	recv := exStartReceiver(t, dir, "--framed")
	ws := startCluster(t, dir, "sequence_window", 2, freePort(t), recv.addr)
	for round := 1; round <= 3; round++ {
		victim := ws[1]
		if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		again := &clusterWorker{proc: start(t, victim.dir, "machida3", victim.args...), name: victim.name,
			external: victim.external, dir: victim.dir, args: victim.args}
		again.waitOutput("Restarting a listener", 60*time.Second)
		waitStatus(t, again, 2)
		if out := again.stderr.String(); strings.Contains(out, "unable to listen") {
			t.Fatalf("round %d: %s", round, out)
		}
		victim.wait(30 * time.Second)
		ws[1] = again
	}
	stopCluster(t, ws, 1, false)
}
