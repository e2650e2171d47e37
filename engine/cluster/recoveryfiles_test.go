package cluster

import (
	"context"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecoveryFiles_AddressesAsIn06(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Name: "worker1", WorkerCount: 2, Control: "127.0.0.1:1", MyControl: "127.0.0.1:0",
		Data: "127.0.0.1:0", Hello: hello(), ResilienceDir: dir}
	m := New(cfg)
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	ctl, data := m.ctlL.Addr().String(), m.datL.Addr().String()
	m.Close()
	base := filepath.Join(dir, "app-worker1")
	for file, addr := range map[string]string{base + ".tcp-control": ctl, base + ".tcp-data": data} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := strings.Cut(addr, ":")
		if want := host + "\n" + port + "\n"; string(b) != want {
			t.Errorf("%s holds %q, want %q (host and port on two lines)", file, b, want)
		}
	}

	// Started again with the same command line, it binds what the files
	// say, in either form.
	if err := os.WriteFile(base+".tcp-data", []byte(data+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	again := New(cfg)
	if err := again.Listen(); err != nil {
		t.Fatal(err)
	}
	if !again.Restarted() || again.ctlL.Addr().String() != ctl || again.datL.Addr().String() != data {
		t.Errorf("restart bound %s and %s (restarted %v), want %s and %s",
			again.ctlL.Addr(), again.datL.Addr(), again.Restarted(), ctl, data)
	}
	again.Close()

	// One of the two gone: 0.6's line, and which one.
	if err := os.Remove(base + ".tcp-data"); err != nil {
		t.Fatal(err)
	}
	err := New(cfg).Listen()
	if err == nil || !strings.HasPrefix(err.Error(), "Some resilience/recovery files are missing! Cannot continue!") ||
		!strings.Contains(err.Error(), "app-worker1.tcp-data") {
		t.Errorf("Listen with .tcp-data missing = %v", err)
	}
	// A file that names no address is refused too.
	if err := os.WriteFile(base+".tcp-data", []byte("127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := New(cfg).Listen(); err == nil || !strings.Contains(err.Error(), "does not name a host and a port") {
		t.Errorf("Listen with a .tcp-data of one host = %v", err)
	}
}

// The initializer's saved topology is read back with its sinks, and a
// file written before topologies carried sink addresses still reads.
func TestRecoveryFiles_TopologyWithAndWithoutSinks(t *testing.T) {
	dir := t.TempDir()
	m := New(Config{Name: InitializerName, Initializer: true, WorkerCount: 2, Hello: hello(), ResilienceDir: dir})
	t0 := Topology{Workers: []string{InitializerName, "worker1"}, Data: []string{"a:1", "b:2"}, Metrics: "m:1", Sinks: []string{"s:7002"}}
	path := m.topologyFile()
	if err := os.WriteFile(path, t0.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := m.loadTopology(); err != nil || strings.Join(got.Sinks, ",") != "s:7002" {
		t.Fatalf("loadTopology = %+v, %v", got, err)
	}
	old := t0.Encode()
	old = old[:len(old)-len(Topology{Sinks: t0.Sinks}.Encode())+len(Topology{}.Encode())-4]
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := m.loadTopology(); err != nil || got.Sinks != nil || strings.Join(got.Workers, ",") != "initializer,worker1" {
		t.Fatalf("an earlier version's file: %+v, %v", got, err)
	}
	// On the wire, a topology without its sinks is malformed.
	if _, err := DecodeTopology(old); err == nil {
		t.Errorf("DecodeTopology took a topology without its sink list")
	}
	if err := os.WriteFile(path, old[:len(old)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.loadTopology(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a torn file: %v, want an error naming %s", err, path)
	}
}

// Every worker records the cluster as it knows it under 0.6's names
// (spec 4.2): .local-topology, .workers, .local-keys (the partitions it
// owns) and, but on the initializer, .connection-addresses; a clean stop
// removes them with the listeners' files.
func TestRecoveryFiles_EveryWorkerRecordsTheCluster(t *testing.T) {
	dir := t.TempDir()
	topo := Topology{Workers: []string{InitializerName, "worker1"}, Data: []string{"127.0.0.1:7001", "127.0.0.1:7011"}, Epoch: 1}
	for _, p := range []int{0, 1, 0, 1} {
		topo.Owners = append(topo.Owners, uint16(p))
	}
	for _, name := range []string{InitializerName, "worker1"} {
		cfg := Config{Name: name, Initializer: name == InitializerName, WorkerCount: 2, Control: "127.0.0.1:7000",
			MyControl: "127.0.0.1:0", Data: "127.0.0.1:0", Hello: hello(), ResilienceDir: dir, Partitions: 4}
		if cfg.Initializer {
			cfg.Control = "127.0.0.1:0"
		}
		m := New(cfg)
		if err := m.Listen(); err != nil {
			t.Fatal(err)
		}
		m.setTopology(t.Context(), topo)
		m.saveTopology()
		m.Close()
		base := filepath.Join(dir, "app-"+name)
		read := func(ext string) string {
			b, err := os.ReadFile(base + ext)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			return string(b)
		}
		if got := read(".workers"); got != "initializer\nworker1\n" {
			t.Errorf("%s .workers = %q", name, got)
		}
		want := "0\n2\n"
		if name == "worker1" {
			want = "1\n3\n"
		}
		if got := read(".local-keys"); !strings.HasSuffix(got, "line\n"+want) {
			t.Errorf("%s .local-keys = %q, want partitions %q", name, got, want)
		}
		if got, err := DecodeTopology([]byte(read(".local-topology"))); err != nil || strings.Join(got.Workers, ",") != "initializer,worker1" {
			t.Errorf("%s .local-topology = %+v, %v", name, got, err)
		}
		_, err := os.Stat(base + ".connection-addresses")
		if name == InitializerName && err == nil {
			t.Errorf("the initializer wrote .connection-addresses (0.6's other workers do)")
		}
		if name == "worker1" {
			if got := read(".connection-addresses"); got != "control initializer 127.0.0.1:7000\ndata initializer 127.0.0.1:7001\ndata worker1 127.0.0.1:7011\n" {
				t.Errorf(".connection-addresses = %q", got)
			}
		}
		m.RemoveFiles()
		for _, ext := range append([]string{".tcp-control", ".tcp-data"}, localFileExts...) {
			if _, err := os.Stat(base + ext); err == nil {
				t.Errorf("%s: %s outlived RemoveFiles", name, ext)
			}
		}
	}
}

// Listener files that record other ports than the command line are
// another run's: without checkpoints the worker starts afresh (and
// leaves them as they are until it is let in: see
// TestRecoveryFiles_AWorkerLetInReplacesAnotherRunsFiles); with checkpoints (HoldsCheckpoints) it is refused,
// naming the recorded listeners to start it with, and the files stay.
func TestRecoveryFiles_OtherPortsWithCheckpointsAreRefused(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "app-worker1")
	for _, f := range []string{base + ".tcp-control", base + ".tcp-data"} {
		if err := os.WriteFile(f, []byte("127.0.0.1\n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Name: "worker1", WorkerCount: 2, Control: "127.0.0.1:1", MyControl: "127.0.0.1:2",
		Data: "127.0.0.1:3", Hello: hello(), ResilienceDir: dir, HoldsCheckpoints: true}
	err := New(cfg).Listen()
	if err == nil || !strings.Contains(err.Error(), "start it with --my-control 127.0.0.1:1 --my-data 127.0.0.1:1 to recover it") {
		t.Fatalf("Listen with another run's ports and checkpoints = %v", err)
	}
	if b, _ := os.ReadFile(base + ".tcp-control"); string(b) != "127.0.0.1\n1\n" {
		t.Errorf("the recorded listeners were overwritten: %q", b)
	}
	cfg.HoldsCheckpoints = false
	cfg.MyControl, cfg.Data = freeAddr(t), freeAddr(t)
	m := New(cfg)
	if err := m.Listen(); err != nil {
		t.Fatalf("Listen with another run's ports and no checkpoints: %v", err)
	}
	m.Close()
	if m.Restarted() {
		t.Error("another run's files taken for a restart")
	}
}

// A listener recorded as bound is the one a command line asks for when
// the ports match and the host is the same, both are wildcards, or the
// asked name resolves to the recorded address.
func TestRecoveryFiles_SameListener(t *testing.T) {
	for _, c := range []struct {
		recorded, asked string
		same            bool
	}{
		{"127.0.0.1:7000", "127.0.0.1:7000", true},
		{"127.0.0.1:7000", "localhost:7000", true},
		{"[::]:7000", ":7000", true},
		{"[::]:7000", "0.0.0.0:7000", true},
		{"127.0.0.1:7000", "127.0.0.1:7001", false},
		{"10.0.0.1:7000", "10.0.0.2:7000", false},
		{"127.0.0.1:7000", "0.0.0.0:7000", false},
	} {
		if got := sameListener(c.recorded, c.asked); got != c.same {
			t.Errorf("sameListener(%q, %q) = %v, want %v", c.recorded, c.asked, got, c.same)
		}
	}
}

// A joiner that takes the name of a running worker, with other ports and
// the same resilience directory, is refused, and leaves that worker's
// recovery files as they were: it neither rewrites them when it binds
// its listeners nor removes them when it gives up.
func TestRecoveryFiles_ARefusedJoinerLeavesTheNamesakesFilesAlone(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, _ := rsCluster(t, ctx, 2, func(i int, c *Config) { c.ResilienceDir = dir })
	files := func() map[string]string {
		got := map[string]string{}
		for _, ext := range append([]string{".tcp-control", ".tcp-data"}, localFileExts...) {
			b, err := os.ReadFile(filepath.Join(dir, "app-worker1"+ext))
			if err != nil {
				t.Fatalf("worker1's %s: %v", ext, err)
			}
			got[ext] = string(b)
		}
		return got
	}
	before := files()
	// Ports of its own, named (with none, it would take up worker1's).
	j := joiner(t, ms[0], "worker1", 1, &fakeProc{}, func(c *Config) {
		c.ResilienceDir, c.MyControl, c.Data = dir, freeAddr(t), freeAddr(t)
	})
	defer j.Close()
	if j.Restarted() {
		t.Fatal("the joiner took worker1's files for its own")
	}
	if got := files(); !maps.Equal(got, before) {
		t.Errorf("the joiner's listeners rewrote worker1's files: %v, were %v", got, before)
	}
	err := j.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "already in the cluster") {
		t.Fatalf("the joiner named worker1: %v, want a refusal", err)
	}
	j.RemoveFilesWritten() // as a worker that never became a member
	if got := files(); !maps.Equal(got, before) {
		t.Errorf("worker1's files after the refused joiner gave up: %v, were %v", got, before)
	}
}

// A joiner beside files of another run of its name (other listeners,
// no worker running under it) starts afresh, leaves them until the
// initializer lets it in, then records its own listeners there.
func TestRecoveryFiles_AWorkerLetInReplacesAnotherRunsFiles(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _, results := rsCluster(t, ctx, 2, func(i int, c *Config) { c.ResilienceDir = dir })
	base := filepath.Join(dir, "app-j1")
	for _, f := range []string{base + ".tcp-control", base + ".tcp-data"} {
		if err := os.WriteFile(f, []byte("127.0.0.1\n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j := joiner(t, ms[0], "j1", 1, &fakeProc{}, func(c *Config) {
		c.ResilienceDir, c.MyControl, c.Data = dir, freeAddr(t), freeAddr(t)
	})
	defer j.Close()
	if j.Restarted() {
		t.Fatal("another run's files taken for a restart")
	}
	if b, _ := os.ReadFile(base + ".tcp-control"); string(b) != "127.0.0.1\n1\n" {
		t.Fatalf("rewritten before the joiner was let in: %q", b)
	}
	runJoiner(ctx, j, func(err error) { t.Errorf("j1 joining: %v", err) })
	if r := waitResult(t, results, time.Minute); !r.ok {
		t.Fatal("the grow failed")
	}
	for file, addr := range map[string]string{base + ".tcp-control": j.ctlL.Addr().String(), base + ".tcp-data": j.datL.Addr().String()} {
		host, port, _ := net.SplitHostPort(addr)
		if b, err := os.ReadFile(file); err != nil || string(b) != host+"\n"+port+"\n" {
			t.Errorf("%s after the join: %q, %v; want this run's listener %s", file, b, err, addr)
		}
	}
}

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A restarted worker rejoins at the initializer its .connection-addresses
// names (its --join may name a worker that left since).
func TestRecoveryFiles_RecordedInitializer(t *testing.T) {
	dir := t.TempDir()
	m := New(Config{Name: "worker3", Hello: hello(), ResilienceDir: dir})
	if got := m.recordedInitializer(); got != "" {
		t.Errorf("no file: %q", got)
	}
	if err := os.WriteFile(m.ownFile(".connection-addresses"), []byte("control initializer 10.0.0.1:6000\ndata initializer 10.0.0.1:6001\ndata worker3 10.0.0.3:6031\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := m.recordedInitializer(); got != "10.0.0.1:6000" {
		t.Errorf("recorded initializer %q, want 10.0.0.1:6000", got)
	}
}
