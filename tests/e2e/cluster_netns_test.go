package e2e

// A 3-worker cluster across network namespaces: each worker in its own
// namespace, joined to a bridge in a fourth ("hub") namespace, where the
// sender and the receiver run. Every address is in 10.213.7.0/24 and
// exists inside those namespaces only: nothing is added to the root
// namespace, and no traffic can leave them. Where the kernel has netem,
// every worker's link gets 5 ms of delay and 1% loss; where it has not,
// nftables drops one in a hundred of the packets that reach each worker
// (no delay), and the test checks that packets were dropped.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/childproc"
)

// nsNet is a set of namespaces made by this test.
type nsNet struct {
	t      *testing.T
	prefix string
	hub    string
	ws     []string
	// lossy lists the namespaces whose links drop packets by an
	// nftables rule (where netem is missing), to check its counters.
	lossy []string
}

// ipCmd runs ip (or tc) with args, failing the test on error.
func (n *nsNet) run(name string, args ...string) {
	n.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

const nsSubnet = "10.213.7."

// nsAddr is worker i's address (the hub's is .254).
func nsAddr(i int) string { return nsSubnet + strconv.Itoa(i+1) }

// newNSNet makes the hub namespace with a bridge and workers namespaces
// with a veth pair each into the bridge. It skips the test when not root
// or when ip netns does not work here. Everything is deleted at cleanup
// (deleting a namespace deletes its interfaces).
func newNSNet(t *testing.T, workers int) *nsNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not found")
	}
	n := &nsNet{t: t, prefix: fmt.Sprintf("e2e%d", os.Getpid()%100000)}
	n.hub = n.prefix + "-hub"
	if out, err := exec.Command("ip", "netns", "add", n.hub).CombinedOutput(); err != nil {
		t.Skipf("ip netns add fails here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.hub).Run() })
	n.run("ip", "-n", n.hub, "link", "set", "lo", "up")
	n.run("ip", "-n", n.hub, "link", "add", "br0", "type", "bridge")
	n.run("ip", "-n", n.hub, "addr", "add", nsSubnet+"254/24", "dev", "br0")
	n.run("ip", "-n", n.hub, "link", "set", "br0", "up")
	for i := 0; i < workers; i++ {
		ns := fmt.Sprintf("%s-w%d", n.prefix, i)
		n.run("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		n.ws = append(n.ws, ns)
		hubEnd, wEnd := fmt.Sprintf("h%d", i), "eth0"
		// Both ends are created inside their namespaces.
		n.run("ip", "link", "add", "name", hubEnd, "netns", n.hub, "type", "veth", "peer", "name", wEnd, "netns", ns)
		n.run("ip", "-n", n.hub, "link", "set", hubEnd, "master", "br0")
		n.run("ip", "-n", n.hub, "link", "set", hubEnd, "up")
		n.run("ip", "-n", ns, "link", "set", "lo", "up")
		n.run("ip", "-n", ns, "addr", "add", nsAddr(i)+"/24", "dev", wEnd)
		n.run("ip", "-n", ns, "link", "set", wEnd, "up")
		if out, err := exec.Command("tc", "-n", ns, "qdisc", "add", "dev", wEnd, "root", "netem", "delay", "5ms", "loss", "1%").CombinedOutput(); err != nil {
			if nerr := nftLoss(ns, wEnd); nerr != nil {
				t.Logf("no netem on %s (%v: %s) and no nftables (%v): delay and loss not applied", ns, err, strings.TrimSpace(string(out)), nerr)
			} else {
				t.Logf("no netem on %s (%v): one packet in a hundred dropped on its way in by nftables, no delay", ns, err)
				n.lossy = append(n.lossy, ns)
			}
		}
	}
	return n
}

// nftLoss makes namespace ns drop one in a hundred of the packets its
// device dev receives, counting them (see dropped).
func nftLoss(ns, dev string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return err
	}
	// On input, so that the sender's TCP sees a packet lost on the wire
	// (a drop on output reaches it as an error of its own send); every
	// hundredth packet, so that a run of more than a hundred loses some.
	rules := fmt.Sprintf(`table inet e2eloss {
	chain in { type filter hook input priority 0; iifname %q numgen inc mod 100 0 counter drop; }
}
`, dev)
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dropped is how many packets the nftables loss rules of the namespaces
// dropped.
func (n *nsNet) dropped() int {
	n.t.Helper()
	total := 0
	for _, ns := range n.lossy {
		out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "e2eloss").CombinedOutput()
		if err != nil {
			n.t.Fatalf("nft list table in %s: %v\n%s", ns, err, out)
		}
		counters := strings.Split(string(out), "counter packets ")[1:]
		if len(counters) == 0 {
			n.t.Fatalf("no counter in the loss table of %s:\n%s", ns, out)
		}
		for _, f := range counters {
			v, err := strconv.Atoi(strings.Fields(f)[0])
			if err != nil {
				n.t.Fatalf("the loss counter of %s: %v\n%s", ns, err, out)
			}
			total += v
		}
	}
	return total
}

// start runs a binary of binDir inside namespace ns (ip netns exec execs
// it, so the process is the binary itself); it is killed at cleanup.
func (n *nsNet) start(ns, dir, name string, args ...string) *proc {
	t := n.t
	t.Helper()
	if name == "machida3" {
		name = hostBinary
	}
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin(name)}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	t.Logf("run in netns %s (in %s): %s %s", ns, dir, name, strings.Join(args, " "))
	if err := childproc.Start(p.cmd); err != nil {
		t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s (netns %s) stdout:\n%s\nstderr:\n%s", name, ns, p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// output runs a tool in the hub namespace and returns its stdout.
func (n *nsNet) output(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.hub, bin(name)}, args...)...).Output()
	return string(out), err
}

// openConns counts the connections accepted at addr that are still open
// (established or closed by the peer only), in the network namespace of
// process pid.
func openConns(t *testing.T, pid int, addr string) int {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(net.ParseIP(host).To4()), pn)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		t.Fatal(err)
	}
	c := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == local && (f[3] == "01" || f[3] == "08") {
			c++
		}
	}
	return c
}

func TestClusterNetns_WordCountThreeWorkersAcrossNamespaces(t *testing.T) {
	const workers = 3
	nn := newNSNet(t, workers)
	dir := exampleDir("word_count")
	one := readLines(t, sharedData(t, "count_this.txt"))
	var lines []string
	for i := 0; i < 10; i++ {
		lines = append(lines, one...)
	}
	input := filepath.Join(t.TempDir(), "count_this_x10.txt")
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := referenceCounts(lines)

	// Every namespace has its own ports: the same numbers serve all.
	recvAddr := nsSubnet + "254:7200"
	recv := nn.start(nn.hub, dir, "data_receiver", "--listen", recvAddr, "--ponythreads=1", "--ponynoblock")
	recv.waitOutput("Listening on", 10*time.Second)
	in := nsAddr(0) + ":7100"
	control := nsAddr(0) + ":7000"
	resilience := t.TempDir()
	var ws []*proc
	var exts []string
	for i := 0; i < workers; i++ {
		a := nsAddr(i)
		ext := a + ":7002"
		args := []string{"--application-module", "word_count", "--in", in, "--out", recvAddr,
			"--metrics", nsSubnet + "254:7300", "--external", ext, "--resilience-dir", resilience}
		if i == 0 {
			args = append(args, "--name", "initializer", "--cluster-initializer", "--worker-count", strconv.Itoa(workers),
				"--control", control, "--data", a+":7001")
		} else {
			args = append(args, "--name", fmt.Sprintf("worker%d", i), "--control", control)
			if i < workers-1 {
				args = append(args, "--my-control", a+":7000", "--my-data", a+":7001")
			}
			// (The last one without: it listens on every interface at
			// ports of the system's choosing, and the initializer tells
			// the others its host as the connection came.)
		}
		args = append(args, "--ponythreads=1", "--ponypinasio", "--ponynoblock")
		ws = append(ws, nn.start(nn.ws[i], dir, "machida3", args...))
		exts = append(exts, ext)
		time.Sleep(50 * time.Millisecond) // as the harness staggers its workers
	}
	ws[0].waitOutput("Application has successfully initialized", 60*time.Second)
	for i, ext := range exts {
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := nn.output("external_sender", "--external", ext, "--type", "cluster-status-query", "--json")
			var st struct {
				WorkerCount int  `json:"worker_count"`
				Processing  bool `json:"processing_messages"`
			}
			if err == nil && json.Unmarshal([]byte(strings.TrimSpace(out)), &st) == nil && st.Processing && st.WorkerCount == workers {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("worker %d (%s) never reported a processing cluster of %d: %q (%v)", i, ext, workers, out, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if n := openConns(t, recv.cmd.Process.Pid, recvAddr); n != workers {
		t.Errorf("the receiver has %d connections, want one per worker: %d", n, workers)
	}
	snd := nn.start(nn.hub, dir, "sender", "--host", in, "--messages", strconv.Itoa(len(lines)), "--file", input,
		"--batch-size", "5", "--interval", "1_000_000", "--ponythreads=1", "--ponynoblock", "--no-write")
	if code := snd.wait(120 * time.Second); code != 0 {
		t.Fatalf("sender exited %d: %s", code, snd.stderr.String())
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		got := strings.Count(recv.stdout.String(), "\n")
		if got >= total(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver has %d lines, want %d, 120 s after the input was sent", got, total(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Stop the cluster through worker2, then the receiver once every
	// worker closed its connection.
	if out, err := nn.output("cluster_shutdown", exts[workers-1]); err != nil {
		t.Fatalf("cluster_shutdown %s: %v\n%s", exts[workers-1], err, out)
	}
	for i, w := range ws {
		if code := w.wait(60 * time.Second); code != 0 {
			t.Errorf("worker %d exited %d after the cluster was told to stop, want 0", i, code)
		}
	}
	for deadline := time.Now().Add(60 * time.Second); openConns(t, recv.cmd.Process.Pid, recvAddr) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver still has connections open 60 s after the workers exited")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := recv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := recv.wait(60 * time.Second); code != 0 {
		t.Errorf("data_receiver exited %d after SIGTERM", code)
	}
	out := strings.Split(recv.stdout.String(), "\n")
	got := out[:len(out)-1]
	if len(got) != total(want) {
		t.Errorf("%d output lines, want one per word occurrence: %d", len(got), total(want))
	}
	exSameSequences(t, "counts per word", byWord(t, got), perKeyCounts(want))
	if len(nn.lossy) > 0 {
		d := nn.dropped()
		t.Logf("nftables dropped %d packets on the workers' links", d)
		if d == 0 {
			t.Errorf("the loss rules of %v dropped no packet: the run was not lossy", nn.lossy)
		}
	}
	// The links went between the namespaces' addresses.
	for i := 1; i < workers; i++ {
		want := fmt.Sprintf("data link up peer=worker%d addr=%s:", i, nsAddr(i))
		if i < workers-1 {
			want += "7001"
		}
		if !strings.Contains(ws[0].stderr.String(), want) {
			t.Errorf("the initializer's log does not show %q", want)
		}
	}
}
