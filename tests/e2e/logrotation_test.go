package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Event log rotation (spec 4.6) in a cluster: RotateLog through the
// external channel of any worker reaches the worker it names (passed on
// by the initializer), which moves its event log on to
// `<app>-<worker>-<16 hex digits>.evlog`; a worker killed after its
// rotation recovers from the new file, and the output stays at least
// once with whole windows.
func TestResilience_LogRotationOnRequest(t *testing.T) {
	recv := rsStartReceiver(t)
	const limit = 2500
	const app = "Multi Partition Detector"
	ws, dir := reStartCluster(t, recv, limit, 3000, "--log-rotation")
	for _, w := range ws {
		w.waitOutput("||| Log-rotation: true|||", 30*time.Second)
	}
	reWaitCheckpoints(t, dir, app, "worker1", 2)
	reWaitCheckpoints(t, dir, app, "initializer", 2)
	rotate := func(via *clusterWorker, who string) {
		t.Helper()
		args := append([]string{"--external", via.external, "--type", "rotate-log", "--message", who}, via.toolFlags()...)
		if out, err := execOutput(bin("external_sender"), args...); err != nil {
			t.Fatalf("external_sender rotate-log %s via %s: %v\n%s", who, via.name, err, out)
		}
	}
	rotated := regexp.MustCompile(`^` + regexp.QuoteMeta(app) + `-(initializer|worker1|worker2)-[0-9a-f]{16}\.evlog$`)
	waitRotated := func(who string) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var names []string
			for _, f := range reFiles(t, dir) {
				if m := rotated.FindStringSubmatch(f); m != nil && m[1] == who {
					names = append(names, f)
				}
			}
			// (The old file goes just after the new one is written.)
			_, err := os.Stat(filepath.Join(dir, app+"-"+who+".evlog"))
			if len(names) == 1 && err != nil {
				return names[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d rotated event logs after 60 s, want 1 and its first log gone; files: %v", who, len(names), reFiles(t, dir))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// worker1's through the initializer; the initializer's through worker2.
	rotate(ws[0], "worker1")
	rotate(ws[2], "initializer")
	first := waitRotated("worker1")
	waitRotated("initializer")
	for _, w := range ws[:2] {
		w.waitOutput("Starting event log rotation.", 30*time.Second)
	}
	if strings.Contains(ws[2].stdout.String(), "Starting event log rotation.") {
		t.Error("worker2 rotated its log, but nobody asked it to")
	}
	// A name the cluster does not have: said so where it was asked.
	rotate(ws[1], "worker9")
	ws[1].waitOutput(`RotateLog for worker "worker9" not done: the cluster has no worker "worker9"`, 30*time.Second)

	// worker1, killed after a rotation, recovers from the new file.
	reWaitCheckpoints(t, dir, app, "worker1", 4)
	recv.waitRecords(t, 1500, reRecoverWait, "before killing worker1")
	v := ws[1]
	v.cmd.Process.Signal(syscall.SIGKILL)
	v.wait(30 * time.Second)
	r := &clusterWorker{proc: start(t, v.dir, "machida3", v.args...), name: v.name, external: v.external, dir: v.dir, args: v.args}
	ws[1] = r
	r.waitOutput("RESILIENCE: Replayed", reRecoverWait)
	waitStatus(t, r, 3)
	if m := regexp.MustCompile(`RESILIENCE: Replayed (\d+) entries`).FindStringSubmatch(r.stdout.String()); m == nil || m[1] == "0" {
		t.Errorf("worker1 replayed nothing from its rotated log %s: %q", first, m)
	}
	// Asked again, once it has written checkpoints since its restart
	// (a rotation with nothing written since is ignored), it rotates on
	// from there: a new file, the old gone.
	st, err := os.Stat(filepath.Join(dir, app+"-worker1.checkpoint_ids"))
	if err != nil {
		t.Fatal(err)
	}
	reWaitCheckpoints(t, dir, app, "worker1", int(st.Size()/16)+2)
	rotate(r, "worker1")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, first)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker1 did not rotate its log again: %v", reFiles(t, dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
	second := waitRotated("worker1")
	if second <= first {
		t.Errorf("the second rotated log %s does not come after the first %s", second, first)
	}
	reFinishCluster(t, recv, ws, dir, limit)
}

// --event-log-file-size: the log moves on to a new file once it holds
// that many bytes (here at every checkpoint, the limit being tiny); a
// worker killed meanwhile recovers from the newest file; without
// --log-rotation, RotateLog is refused with the reason.
func TestResilience_LogRotationBySize(t *testing.T) {
	dir := t.TempDir()
	recv := rsStartReceiver(t)
	const limit = 1500
	args := reArgs(t, dir, recv.addr(), limit, 4000, "--log-rotation", "--event-log-file-size", "1")
	w := start(t, testdataDir(), "machida3", args...)
	reWaitCheckpoints(t, dir, "Multi Partition Detector", "initializer", 3)
	w.waitOutput("Starting event log rotation.", 30*time.Second)
	recv.waitRecords(t, 1000, reRecoverWait, "before the kill")
	w.cmd.Process.Signal(syscall.SIGKILL)
	w.wait(30 * time.Second)
	var logs []string
	for _, f := range reFiles(t, dir) {
		if strings.HasSuffix(f, ".evlog") {
			logs = append(logs, f)
		}
	}
	if len(logs) == 0 || !regexp.MustCompile(`-initializer-[0-9a-f]{16}\.evlog$`).MatchString(logs[len(logs)-1]) {
		t.Fatalf("no rotated event log after a kill: %v", reFiles(t, dir))
	}
	reRecoverAlone(t, args, recv, dir, limit)
}

// Without --log-rotation (resilience on), RotateLog says why not.
func TestResilience_LogRotationOffIsSaid(t *testing.T) {
	dir := t.TempDir()
	recv := rsStartReceiver(t)
	args := reArgs(t, dir, recv.addr(), 100, 1000)
	w := start(t, testdataDir(), "machida3", args...)
	w.waitOutput("||| Log-rotation: false|||", 30*time.Second)
	ext := ""
	for i, a := range args {
		if a == "--external" {
			ext = args[i+1]
		}
	}
	if ext == "" {
		t.Fatal("reArgs gives no --external")
	}
	if out, err := execOutput(bin("external_sender"), "--external", ext, "--type", "rotate-log", "--message", "initializer"); err != nil {
		t.Fatalf("external_sender: %v\n%s", err, out)
	}
	w.waitOutput(`RotateLog for worker "initializer" not done: this worker runs without --log-rotation`, 30*time.Second)
	w.cmd.Process.Signal(syscall.SIGTERM)
	if code := w.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
}
