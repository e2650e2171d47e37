package e2e

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The cluster's links with a secret and with mutual TLS (README,
// Securing a cluster). A representative few of the cluster tests run
// secured; the rest of the suite runs as 0.6 did.

// writeSecret writes a fresh cluster secret file (mode 0600) and
// returns its path.
func writeSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.secret")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noWarning checks that a protected worker did not print the warning
// for unprotected listeners.
func noWarning(t *testing.T, ws []*clusterWorker) {
	t.Helper()
	for _, w := range ws {
		if strings.Contains(w.stderr.String(), "without --cluster-secret-file or TLS") {
			t.Errorf("%s warned about unprotected links although it has them", w.name)
		}
	}
}

func TestClusterSecure_WordCountThreeWorkersWithSecret(t *testing.T) {
	ws := runWordCountCluster(t, 3, 1, false, "--cluster-secret-file", writeSecret(t))
	noWarning(t, ws)
}

// pickleThatTouches is a protocol 0 pickle whose unpickling runs
// os.system("touch path").
func pickleThatTouches(path string) []byte {
	return []byte("cos\nsystem\n(S'touch " + path + "'\ntR.")
}

// A raw client that writes a crafted pickle to a data port of a secured
// cluster, wrapped in well-formed inter-worker frames or bare, is
// disconnected with nothing but the handshake's challenge, nothing is
// unpickled, and the worker
// logs its address; operator tools without the secret are refused too.
func TestClusterSecure_RawPickleToDataPortIsDroppedUnread(t *testing.T) {
	marks := t.TempDir()
	// The payload is live: unpickled, it creates its file.
	probe := filepath.Join(marks, "probe")
	pf := filepath.Join(marks, "probe.pickle")
	os.WriteFile(pf, pickleThatTouches(probe), 0o600)
	if out, err := exec.Command("python3", "-c", "import pickle,sys; pickle.loads(open(sys.argv[1],'rb').read())", pf).CombinedOutput(); err != nil {
		t.Fatalf("python3 could not unpickle the probe: %v\n%s", err, out)
	}
	if _, err := os.Stat(probe); err != nil {
		t.Fatalf("the payload is not live: unpickling it made no file: %v", err)
	}

	dir := exampleDir("word_count")
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "word_count", 2, in, recv.addr, "--cluster-secret-file", writeSecret(t))
	touched := filepath.Join(marks, "unpickled")
	batch := binary.BigEndian.AppendUint64(nil, 1) // data-connect: first sequence number 1
	attempts := map[string][]byte{
		"framed": append(append(wireFrame(wireHello, wordCountHello(t, "initializer", wireData).encode()),
			wireFrame(10, batch)...), wireFrame(wireEnvelopes, wireEnvelopeBatch(1, 1, pickleThatTouches(touched)))...),
		"bare": pickleThatTouches(touched),
	}
	for name, payload := range attempts {
		for _, w := range ws {
			port := argValue(t, w, map[bool]string{true: "--data", false: "--my-data"}[w.name == "initializer"])
			c, err := net.Dial("tcp", port)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(payload)
			c.Write(make([]byte, 80)) // enough bytes for the worker to judge the handshake now
			// The worker speaks first (its 41-byte challenge), then closes.
			if b := peerClosed(t, c, name); len(b) != 41 || !strings.HasPrefix(string(b), "wlauth1\n") {
				t.Errorf("%s to %s: the worker answered %q, want its challenge only", name, w.name, b)
			}
			local := c.LocalAddr().String()
			c.Close()
			waitLog(t, w.proc, 30*time.Second, "did not authenticate", local)
		}
	}
	// 0.6 tools without the secret are refused.
	tool := exec.Command(bin("external_sender"), "--external", ws[1].external, "--type", "cluster-status-query")
	if out, err := tool.CombinedOutput(); err == nil || !strings.Contains(string(out), "give this tool the same options") {
		t.Errorf("external_sender without the secret: %v, %q", err, out)
	}
	// cluster_shutdown without it fails and says why (it used to exit 0
	// with the cluster still running).
	if out, err := exec.Command(bin("cluster_shutdown"), ws[0].external).CombinedOutput(); err == nil || !strings.Contains(string(out), "did not take CleanShutdown") || !strings.Contains(string(out), "give this tool the same options") {
		t.Errorf("cluster_shutdown without the secret: %v, %q; want a failure saying the worker did not take it", err, out)
	}
	waitLog(t, ws[0].proc, 30*time.Second, "external channel: closing connection from", "link authentication failed")
	// The cluster is unharmed and still running.
	wordCountThrough(t, recv, in, 0)
	if _, err := os.Stat(touched); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a pickle from an unauthenticated client was unpickled: %v", err)
	}
	stopCluster(t, ws, 1, false)
	noWarning(t, ws)
}

// A worker started with another secret cannot join: it stops with an
// error that says so, the initializer logs its address, and the name it
// would have taken stays free for the real worker.
func TestClusterSecure_WrongSecretCannotJoin(t *testing.T) {
	dir := exampleDir("word_count")
	recv := exStartReceiver(t, dir)
	in, control, res := freePort(t), freePort(t), t.TempDir()
	good, bad := writeSecret(t), writeSecret(t)
	// The intruder gets a resilience directory of its own: its recovery
	// files must not make the real worker1 a restart.
	worker := func(name, secret, res string, first bool) *clusterWorker {
		ext := freePort(t)
		args := []string{"--application-module", "word_count", "--in", in, "--out", recv.addr, "--metrics", freePort(t),
			"--external", ext, "--resilience-dir", res, "--name", name, "--cluster-secret-file", secret, "--ponythreads=1"}
		if first {
			args = append(args, "--cluster-initializer", "--worker-count", "2", "--control", control, "--data", freePort(t))
		} else {
			args = append(args, "--control", control, "--my-control", freePort(t), "--my-data", freePort(t))
		}
		return &clusterWorker{proc: start(t, dir, "machida3", args...), name: name, external: ext, dir: dir, args: args}
	}
	init := worker("initializer", good, res, true)
	intruder := worker("worker1", bad, t.TempDir(), false)
	if code := intruder.wait(60 * time.Second); code == 0 {
		t.Fatal("a worker with another secret exited 0")
	}
	if !strings.Contains(intruder.stderr.String(), "another cluster secret") {
		t.Errorf("the intruder's error does not say why:\n%s", intruder.stderr.String())
	}
	waitLog(t, init.proc, 30*time.Second, "did not authenticate", "control")
	real := worker("worker1", good, res, false)
	ws := []*clusterWorker{init, real}
	init.waitOutput("Application has successfully initialized", 60*time.Second)
	for _, w := range ws {
		waitStatus(t, w, 2)
	}
	if strings.Contains(real.stdout.String(), "Restarting") {
		t.Error("the real worker1 took the intruder's run for its own")
	}
	if n := logCount(init.proc, "refused a worker"); n != 0 {
		t.Errorf("the intruder got as far as a Hello: %d refusals logged", n)
	}
	wordCountThrough(t, recv, in, 0)
	stopCluster(t, ws, 0, false)
}

// Mutual TLS between three workers and with the operator tools; a tool
// (or a worker) with an expired certificate or one from another CA is
// refused.
func TestClusterSecure_MutualTLSThreeWorkersAndTools(t *testing.T) {
	pki := t.TempDir()
	ca, err := newTestCA("cluster CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(pki, "ca.crt")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	workerCert, workerKey, err := ca.Leaf(pki, "worker", false)
	if err != nil {
		t.Fatal(err)
	}
	opCert, opKey, _ := ca.Leaf(pki, "operator", false)
	oldCert, oldKey, _ := ca.Leaf(pki, "expired", true)
	other, _ := newTestCA("another CA")
	strangerCert, strangerKey, _ := other.Leaf(pki, "stranger", false)

	dir := exampleDir("word_count")
	recv := exStartReceiver(t, dir)
	in := freePort(t)
	ws := startCluster(t, dir, "word_count", 3, in, recv.addr, "--tls-cert", workerCert, "--tls-key", workerKey, "--tls-ca", caFile)
	wordCountThrough(t, recv, in, 0)
	query := func(cert, key string) (string, error) {
		args := []string{"--external", ws[2].external, "--type", "cluster-status-query", "--json", "--timeout", "10s"}
		if cert != "" {
			args = append(args, "--tls-cert", cert, "--tls-key", key, "--tls-ca", caFile)
		}
		return execOutput(bin("external_sender"), args...)
	}
	if out, err := query(opCert, opKey); err != nil || !strings.Contains(out, `"worker_count":3`) {
		t.Fatalf("external_sender with the operator's certificate: %q %v", out, err)
	}
	tls := []string{"--tls-cert", opCert, "--tls-key", opKey, "--tls-ca", caFile}
	if out, err := execOutput(bin("cluster_shrinker"), append([]string{"--external", ws[1].external, "--query"}, tls...)...); err != nil || !strings.HasPrefix(out, "Eligible for shrink:") {
		t.Errorf("cluster_shrinker --query over TLS: %q %v", out, err)
	}
	for name, ck := range map[string][2]string{"expired": {oldCert, oldKey}, "another CA": {strangerCert, strangerKey}, "no TLS": {}} {
		if out, err := query(ck[0], ck[1]); err == nil {
			t.Errorf("external_sender with %s got an answer: %q", name, out)
		}
	}
	// A worker with an expired certificate stops at once, saying so (the
	// others would refuse it: engine links refuse expired certificates,
	// internal/linkauth TestGuard_MutualTLS).
	args := []string{"--application-module", "word_count", "--in", in, "--out", recv.addr, "--name", "worker9",
		"--control", argValue(t, ws[0], "--control"), "--my-control", freePort(t), "--my-data", freePort(t),
		"--tls-cert", oldCert, "--tls-key", oldKey, "--tls-ca", caFile, "--resilience-dir", t.TempDir(), "--ponythreads=1"}
	late := start(t, dir, "machida3", args...)
	if code := late.wait(60 * time.Second); code == 0 {
		t.Error("a worker with an expired certificate exited 0")
	}
	if !strings.Contains(late.stderr.String(), "--tls-cert: the certificate expired on") {
		t.Errorf("the worker's error does not say its certificate expired:\n%s", late.stderr.String())
	}
	// So does one whose certificate does not name the address the others
	// reach it at (they would refuse it, and the cluster would wait).
	args = []string{"--application-module", "word_count", "--in", in, "--out", recv.addr, "--name", "worker8",
		"--control", argValue(t, ws[0], "--control"), "--my-control", freePort(t), "--my-data", "127.0.0.2:" + portOf(t, freePort(t)),
		"--tls-cert", workerCert, "--tls-key", workerKey, "--tls-ca", caFile, "--resilience-dir", t.TempDir(), "--ponythreads=1"}
	stranger := start(t, dir, "machida3", args...)
	if code := stranger.wait(60 * time.Second); code != 1 || !strings.Contains(stranger.stderr.String(), "--tls-cert does not name 127.0.0.2") {
		t.Errorf("a worker whose certificate does not name its data listener's host: exit %d, stderr:\n%s", code, stranger.stderr.String())
	}
	// cluster_shutdown without TLS fails, saying so, and the cluster runs on.
	if out, err := exec.Command(bin("cluster_shutdown"), ws[1].external).CombinedOutput(); err == nil || !strings.Contains(string(out), "did not take CleanShutdown") {
		t.Errorf("cluster_shutdown without TLS: %v, %q; want a failure saying the worker did not take it", err, out)
	}
	if out, err := query(opCert, opKey); err != nil || !strings.Contains(out, `"worker_count":3`) {
		t.Fatalf("after a cluster_shutdown without TLS the cluster does not answer: %q %v", out, err)
	}
	stopCluster(t, ws, 1, false) // cluster_shutdown with the workers' certificate
	noWarning(t, ws)
}
